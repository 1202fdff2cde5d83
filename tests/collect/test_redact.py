"""Redaction: real iproute2 6.1 ss output with its stray MD5 key bytes, daemon passwords, JSON."""
from __future__ import annotations

import json

from hypothesis import given, strategies as st

from pathlib import Path

from diag.collect.redact import MASK, redact, ss_escaped

FIXTURES = Path(__file__).parent.parent / "fixtures"
SS_MD5 = (FIXTURES / "collect" / "ss_md5_iproute2_6.1.txt").read_bytes()


def test_real_ss_output_loses_the_stray_key_and_keeps_the_md5_marker():
    assert b"s3cret" in SS_MD5  # the fixture really carries the leak
    cleaned, found = redact("ss-tanpi", SS_MD5)
    assert b"s3cret" not in cleaned
    assert cleaned.startswith(b"State    Recv-Q")
    assert cleaned.count(b"md5keys:198.51.100.11/32=") == 2
    assert {r.rule for r in found} == {"SS_STRAY_BYTES"}
    assert all("s3cret" not in r.detail for r in found)
    # everything but the stray bytes survives
    assert cleaned == SS_MD5.replace(b"s3crets3cret", b"", 1)


def test_inline_md5_key_of_fixed_iproute2_is_masked():
    line = b"\t cubic cwnd:10 md5keys:10.0.0.1/32=Sup3r\\040secret,10.0.0.2/32=other\n"
    data = b"State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n" \
           b"ESTAB 0 0 10.0.0.2:179 10.0.0.1:40000\n" + line
    cleaned, found = redact("ss-tanpi", data)
    assert b"Sup3r" not in cleaned and b"other" not in cleaned
    assert b"md5keys:10.0.0.1/32=" + MASK.encode() in cleaned
    assert [r.rule for r in found] == ["SS_MD5_KEY"]


@given(key=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=4, max_size=40),
       where=st.integers(min_value=0, max_value=5))
def test_stray_key_bytes_never_survive_wherever_ss_flushed_them(key, where):
    """The key is printed escaped (no spaces, commas) before the start of some line."""
    lines = SS_MD5.replace(b"s3crets3cret", b"").split(b"\n")
    index = min(where, len(lines) - 2)
    stray = ss_escaped(key.encode())
    lines[index] = stray + lines[index]
    cleaned, _ = redact("ss-tanpi", b"\n".join(lines))
    for line in cleaned.split(b"\n"):
        assert not line.startswith(stray) or line == b""


def test_frr_and_bird_password_lines():
    frr = b" neighbor 192.0.2.1 remote-as 65001\n neighbor 192.0.2.1 password Xy-z9!\n"
    bird = b'protocol bgp tor {\n  password "bird secret 1";\n}\n'
    for data, secret in ((frr, b"Xy-z9!"), (bird, b"bird secret 1")):
        cleaned, found = redact("frr-running-config", data)
        assert secret not in cleaned
        assert found and found[0].rule == "PASSWORD"


def test_gobgp_json_auth_password_is_masked_and_stays_json():
    neighbors = json.loads((FIXTURES / "collect" / "gobgp_neighbor.json").read_text())
    neighbors[0]["conf"]["auth_password"] = "g0bgp-md5"
    cleaned, found = redact("gobgp-neighbor", json.dumps(neighbors).encode())
    assert b"g0bgp-md5" not in cleaned
    assert json.loads(cleaned)[0]["conf"]["auth_password"] == MASK
    assert [r.detail for r in found] == ["$[0].conf.auth_password"]


def test_untouched_json_keeps_its_bytes():
    data = (FIXTURES / "collect" / "gobgp_neighbor.json").read_bytes()
    assert redact("gobgp-neighbor", data) == (data, [])


def test_known_secret_in_escaped_form():
    cleaned, found = redact("anything", b"key=my\\040pass and my pass\n", ["my pass"])
    assert b"my" not in cleaned
    assert {r.rule for r in found} == {"KNOWN_SECRET"}


def test_secret_references_are_kept_inline_passwords_are_not():
    document = {"items": [{"spec": {"authSecretRef": "bgp-auth-secret", "password": "hunter2",
                                    "passwordSecret": {"name": "peer-secret"}}}]}
    data, found = redact("kube:metallb.io/bgppeers", json.dumps(document).encode())
    cleaned = json.loads(data)["items"][0]["spec"]
    assert cleaned == {"authSecretRef": "bgp-auth-secret", "password": "[REDACTED]",
                       "passwordSecret": {"name": "peer-secret"}}
    assert [(r.rule, r.detail) for r in found] == [("JSON_SECRET", "$.items[0].spec.password")]
