"""Overlay faults from captures alone (`diag explain CAPTURE`), checked against tshark.

Real: the lab's VXLAN port-mismatch capture (Linux VXLAN, the kernel's port unreachable) and the
shared capture where two VTEPs use 8472 and 4789. Crafted with scapy: ICMP frag-needed about VXLAN
packets, once (warning: path MTU discovery may recover) and repeated (error: the sender does not
adapt). With the hosts' link state (a bundle) the configuration-based analyzer decides instead.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.analyze import wiretools
from tests.analyze.wiretools import ROOT, explain, needs_tshark
from tests.craft.pcapfile import LINKTYPE_ETHERNET, Record, write_pcap

pytestmark = needs_tshark


def tshark_fields(path: Path, frame: int, *fields: str) -> list[str]:
    return wiretools.tshark_fields(path, frame, *fields, decode_as=("udp.port==8472,vxlan",))


@pytest.mark.parametrize("name,refused", [("lab/vxlan-8472-and-port-mismatch.pcap", {"8472"}),
                                          ("bgp_session.pcap", {"8472", "4789"})])
def test_port_mismatch_from_icmp(name, refused):
    path = ROOT / "captures" / name
    doc = explain(path)
    first = doc["findings"][0]
    assert first["code"] == "VXLAN_PORT_MISMATCH", [f["code"] for f in doc["findings"]]
    seen = set()
    for ev in first["evidence"]:
        icmp_type, code, src, dport = tshark_fields(path, ev["frame"], "icmp.type", "icmp.code",
                                                    "ip.src", "udp.dstport")
        assert (icmp_type, code) == ("3", "3") and dport in refused, ev
        assert src in ev["value"]
        seen.add(dport)
    assert seen == refused
    assert "OTV" in first["note"]


def _frag_needed_capture(path: Path, repeats: int) -> Path:
    from scapy.layers.inet import ICMP, IP, UDP, IPerror
    from scapy.layers.l2 import Ether

    big = bytes(IP(src="10.1.0.1", dst="10.2.0.1", flags="DF") / UDP(sport=33000, dport=8472)
                / (b"v" * 1400))
    frames = []
    for i in range(repeats):
        frames.append(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / big)
        frames.append(Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")
                      / IP(src="10.1.0.254", dst="10.1.0.1")
                      / ICMP(type=3, code=4, nexthopmtu=1400) / IPerror(big[:28]))
    records = [Record(10**18 + i * 10**8, bytes(f)) for i, f in enumerate(frames)]
    return write_pcap(path, records, LINKTYPE_ETHERNET)


@pytest.mark.parametrize("repeats,severity", [(1, "warning"), (3, "error")])
def test_frag_needed_about_vxlan(tmp_path, repeats, severity):
    path = _frag_needed_capture(tmp_path / f"mtu{repeats}.pcap", repeats)
    doc = explain(path)
    found = [f for f in doc["findings"] if f["code"] == "OVERLAY_MTU_BLACKHOLE"]
    assert len(found) == 1 and found[0]["severity"] == severity, doc["findings"]
    assert "MTU 1400" in found[0]["summary"]
    for ev in found[0]["evidence"]:
        icmp_type, code, mtu = tshark_fields(path, ev["frame"], "icmp.type", "icmp.code",
                                             "icmp.mtu")
        assert (icmp_type, code, mtu) == ("3", "4", "1400")


def test_bundle_with_link_state_leaves_it_to_the_configuration():
    from diag.analyze import wire_overlay
    from diag.facts import load_facts

    facts = load_facts(ROOT / "tests" / "fixtures" / "bundles" / "calico-vxlan-default.tar.gz")
    assert any(t.device != wire_overlay.WIRE_DEVICE for t in facts.model.tunnels)
    assert wire_overlay.analyze(facts.tables, facts.model) == ([], [])
