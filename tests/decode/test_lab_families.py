"""Real FRR 8.4 routers (tests/decode/frr_families.py) sending VPN-IPv4/IPv6, labeled unicast,
EVPN types 2 and 3 and AS_TRANS paths: the capture decoded by diag against tshark, frame by
frame, and against what the receiving FRR put in its RIB (labels, route distinguishers, EVPN
keys, the RFC 6793 merged path of the NEW speaker and the AS_TRANS path of the OLD one).

Root only (namespaces); the namespaces are named from $DIAG_TEST_LAB_PREFIX and removed, their
processes stopped by PID, whatever happens.
"""
from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import pytest

from tests.decode import frr_families as frr
from tests.oracle import diag_view, tshark, tshark_families

pytestmark = [
    pytest.mark.lab, pytest.mark.tshark,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(not (frr.FRR_BIN / "bgpd").exists() or not shutil.which("tcpdump")
                       or not tshark.available(), reason="FRR, tcpdump or tshark missing"),
]
PREFIX = os.environ.get("DIAG_TEST_LAB_PREFIX", "")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    try:
        yield frr.record(tmp_path_factory.mktemp("frr-families"), PREFIX)
    finally:
        frr.teardown(PREFIX)


@lru_cache(maxsize=None)
def decoded(path: Path):
    from diag.decode import decode_file
    return decode_file(path)


def _routes(t, src: str, family: str) -> list[dict]:
    r = t.bgp_routes
    rows = r[(r["src"] == src) & (r["afi"] + "/" + r["safi"] == family)
             & (r["action"] == "announce")]
    return rows.to_dict("records")


def test_families_equal_tshark(recording):
    oracle, unreadable = tshark_families.nlri_entries(recording.pcap)
    assert not unreadable
    ours = diag_view.nlri_entries(decoded(recording.pcap))
    families = {e.family for v in oracle.values() for e in v}
    assert {"ipv4/mpls-vpn", "ipv6/mpls-vpn", "ipv4/labeled-unicast", "l2vpn/evpn"} <= families
    assert {e.evpn_type for v in oracle.values() for e in v if e.evpn_type} == {2, 3}
    for frame in sorted(set(ours) | set(oracle)):
        assert ours.get(frame) == oracle.get(frame), frame


def test_message_types_and_wire_paths_equal_tshark(recording):
    args = tshark._args(recording.pcap, (), [*tshark.BASE_PREFS, tshark.asn_pref(None)])
    out = tshark._run(args + ["-Y", "bgp", "-T", "fields", "-e", "frame.number", "-e", "bgp.type",
                              "-E", "occurrence=a", "-E", "aggregator=,"])
    want = {int(f): [int(t) for t in types.split(",")]
            for f, types in (line.split("\t") for line in out.splitlines())}
    t = decoded(recording.pcap)
    got: dict[int, list[int]] = defaultdict(list)
    for frame, mtype in zip(t.bgp_messages["frame"], t.bgp_messages["type"]):
        got[int(frame)].append(int(mtype))
    assert dict(got) == want


def test_the_update_frr_refuses_is_the_one_diag_calls_malformed(recording):
    """FRR 8.4's quirk (frr_families.py): B sends A an IPv4 route with no NEXT_HOP. A's log says
    which peer did; diag must mark exactly those UPDATEs, and treat their routes as withdrawn."""
    import re

    t = decoded(recording.pcap)
    m = t.bgp_messages
    bad = m[m["malformed"].notna()]
    assert set(bad["malformed"]) == {"missing well-known attribute NEXT_HOP"}
    logged = set(re.findall(r"(\S+) Missing well-known attribute NEXT_HOP",
                            recording.logs["a"].read_text()))
    assert logged and set(bad["src"]) == logged and set(bad["dst"]) == {"10.99.0.1"}
    r = t.bgp_routes
    sent = r[r["src"].isin(logged) & (r["afi"] == "ipv4") & (r["safi"] == "unicast")
             & (r["prefix"] == frr.LABELED)]
    assert len(sent) and set(sent["action"]) == {"treat-as-withdraw"}
    assert set(sent["frame"]) <= set(bad["frame"])


def _paths(detail: dict) -> list[dict]:
    for value in detail.values():
        if isinstance(value, dict) and "paths" in value:
            return value["paths"]
    return detail.get("paths", [])


def test_vpn_and_labeled_routes_equal_the_receiving_frr(recording):
    t = decoded(recording.pcap)
    for family, routes in (("ipv4/mpls-vpn", frr.VPN4), ("ipv6/mpls-vpn", frr.VPN6)):
        sent = {(r["rd"], r["prefix"]): r for r in _routes(t, "10.99.0.1", family)}
        assert set(sent) == {(rd, prefix) for prefix, rd, _label in routes}
        for prefix, rd, _label in routes:
            [path] = _paths(recording.rib[f"vpn{family[3]}:{rd}:{prefix}"])
            assert sent[(rd, prefix)]["labels"] == [path["remoteLabel"]]
            assert sent[(rd, prefix)]["as_path_str"] == path["aspath"]["string"]
    [lu] = [r for r in _routes(t, "10.99.1.1", "ipv4/labeled-unicast")
            if r["prefix"] == frr.LABELED]
    labels = {p["remoteLabel"] for p in _paths(recording.rib[f"labeled:{frr.LABELED}"])
              if "remoteLabel" in p}
    assert lu["labels"] == [3] and labels == {3}        # implicit null for its own route


def test_evpn_routes_equal_the_receiving_frr(recording):
    t = decoded(recording.pcap)
    sent = {r["prefix"]: r for r in _routes(t, "10.99.0.1", "l2vpn/evpn")}
    rib = {}
    for rd, table in recording.rib["evpn"].items():
        if isinstance(table, dict):
            for key, route in table.items():
                if isinstance(route, dict) and "paths" in route:
                    rib[key] = (rd, route["paths"][0][0])
    assert set(sent) == set(rib) and len(rib) >= 4
    for key, (rd, path) in rib.items():
        row = sent[key]
        assert (row["rd"], row["evpn_type"], row["ethernet_tag"]) == (
            rd, path["routeType"], path.get("ethTag"))
        assert row["mac"] == path.get("mac") and row["evpn_ip"] == path.get("ip")
        if row["evpn_type"] == 2:
            assert row["vnis"] == [frr.VNI]              # VXLAN: the label field is the VNI
        else:
            assert row["pmsi_tunnel"] == (f"ingress-replication label {frr.VNI >> 4} "
                                          f"vni {frr.VNI} endpoint 10.99.0.1")
    assert {frr.MAC, frr.MAC_IP} <= {r["mac"] for r in sent.values()}
    assert any(r["evpn_ip"] == frr.IP for r in sent.values())


def test_as_trans_paths_as_each_frr_acts_on_them(recording):
    """A -> B on the 2-octet session: B is the OLD side there and keeps AS_TRANS (diag's
    as_path); B -> A: A is NEW and merges AS4_PATH (diag's effective path)."""
    t = decoded(recording.pcap)
    [to_b] = [r for r in _routes(t, "10.99.2.1", "ipv4/unicast") if r["prefix"] == frr.TWO_OCTET]
    [b_path] = [p["path"] for p in recording.rib["unicast"]["routes"][frr.TWO_OCTET]
                if p.get("peerId") == "10.99.2.1"]
    assert to_b["as_path_str"] == b_path == "23456"
    assert to_b["effective_as_path_str"] == to_b["as4_path_str"] == str(frr.AS_A)
    [to_a] = [r for r in _routes(t, "10.99.2.2", "ipv4/unicast") if r["prefix"] == frr.TWO_OCTET]
    [a_path] = [p["path"] for p in recording.rib["a_unicast"]["routes"][frr.TWO_OCTET]
                if p.get("peerId") == "10.99.2.2"]
    assert to_a["as_path_str"] == f"{frr.AS_B} 23456"
    assert to_a["effective_as_path_str"] == a_path == f"{frr.AS_B} {frr.AS_A}"
    assert to_a["as_path_note"].startswith("AS4_PATH merged into AS_PATH")


def test_summary_counts_per_family_and_the_parallel_path_agrees(recording):
    from diag.decode import DecodeOptions, iter_rows
    from diag.decode.parallel import summarize
    from diag.decode.summary import CaptureSummary

    s = CaptureSummary()
    for chunk in iter_rows(recording.pcap, DecodeOptions(), chunk_packets=3):
        s.add(chunk)
    one = s.result()
    fam = one["bgp"]["prefixes"]["by_family"]
    evpn_keys = sum(1 for table in recording.rib["evpn"].values() if isinstance(table, dict)
                    for route in table.values() if isinstance(route, dict) and "paths" in route)
    assert fam["ipv4/mpls-vpn"]["announced"] == len(frr.VPN4)
    assert fam["ipv6/mpls-vpn"]["announced"] == len(frr.VPN6)
    assert fam["l2vpn/evpn"]["announced"] == evpn_keys
    assert fam["ipv4/labeled-unicast"]["announced"] >= 1
    for workers in (2, 3):
        got = summarize(recording.pcap, DecodeOptions(), workers, chunk_packets=3)
        assert json.dumps(got, default=str) == json.dumps(one, default=str)
