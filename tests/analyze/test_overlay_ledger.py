"""The overlay flow ledger and its classification on crafted two-ended scenes (no lab, ~1 min).

Each scene is a real lab bundle (calico vxlan: ip -d -j link, routes, FDB, sysctls of four hosts)
whose captures are replaced by crafted ones (tests/craft/overlay.py): the same packets written
at the points where the scene says they were seen. The scene is the ground truth; cited frames
are checked with tshark (tests/analyze/test_lab_fault_table.check_evidence). One-ended variants
drop every capture but one; GENEVE variants turn the bundle's vxlan devices into geneve devices
(this kernel has no GENEVE module: GENEVE is covered here, on crafted captures only).
"""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from diag.analyze import explain
from diag.facts import load_facts
from tests.craft import overlay as O

CTR_NODE, CTR_POD = O.NODES["k8s-ctr"]
W0_NODE, W0_POD = O.NODES["k8s-w0"]
LEDGER = "tunnelled flows delivered end to end (the overlay flow ledger)"
needs_tshark = pytest.mark.skipif(not shutil.which("tshark"), reason="tshark is the frame oracle")


def pings(n: int = 6, *, replies: bool = True, start: float = 0.2, **where) -> list[O.Packet]:
    """k8s-ctr's pod pings k8s-w0's pod; ``where`` says how far each request gets:
    router_out, arrive, decap, pod (all True for a healthy path); ``tunnel``, ``port``, ``vni``
    are the encapsulation."""
    enc = {k: where.pop(k) for k in ("tunnel", "port", "vni") if k in where}
    reach = {"router_out": True, "arrive": True, "decap": True, "pod": True} | where
    out = []
    for i in range(n):
        t = start + i * 0.4
        seen = O.path_out("k8s-ctr", t, **enc) + O.via_router("k8s-ctr", t,
                                                              out=reach["router_out"], **enc)
        if reach["router_out"] and reach["arrive"]:
            seen += O.path_in("k8s-w0", t, decap=reach["decap"],
                              pod=reach["decap"] and reach["pod"], **enc)
        out.append(O.Packet(O.echo(CTR_POD, W0_POD, i), seen))
        if replies and all(reach.values()):
            t2 = t + 0.002
            out.append(O.Packet(O.echo(W0_POD, CTR_POD, i, reply=True),
                                O.path_out("k8s-w0", t2, **enc) + O.via_router("k8s-w0", t2, **enc)
                                + O.path_in("k8s-ctr", t2, **enc)))
    return out


def node_pings(n: int = 4) -> list[O.Packet]:
    """k8s-ctr's node pings k8s-w0's node (not tunnelled): other traffic between the nodes."""
    from scapy.layers.inet import ICMP, IP

    return [O.Packet(IP(src=CTR_NODE, dst=W0_NODE, id=3000 + i) / ICMP(id=9, seq=i),
                     [O.Sighting("k8s-ctr", "eth1", 0.3 + i * 0.5, outgoing=True),
                      O.Sighting("router", "eth1", 0.3001 + i * 0.5),
                      O.Sighting("router", "eth2", 0.3002 + i * 0.5, outgoing=True),
                      O.Sighting("k8s-w0", "eth1", 0.3003 + i * 0.5)]) for i in range(n)]


def build(tmp_path, packets, *, links=(), **scene):
    bundle = O.extract(tmp_path)
    for host, device, info in links:
        O.set_link(bundle, host, device, **info)
    return O.write(O.Scene(packets=packets, **scene), bundle)


def result_of(path, only: str | None = None):
    facts = load_facts(path)
    assert not facts.problems, facts.problems
    return facts, explain(facts)


def one_end(facts, host: str):
    """The same facts with every capture but ``host``'s removed (as if only it was captured)."""
    tables = dict(facts.tables)
    for name in ("packets", "sightings", "checksums", "wire_tunnels", "icmp", "fragments",
                 "arp", "stream_events", "bgp_messages", "wire_routes"):
        if name in tables and "host" in tables[name]:
            tables[name] = tables[name][tables[name]["host"] == host]
    cmds = tables["commands"]
    tables["commands"] = cmds[(cmds["id"] != "capture") | (cmds["host"] == host)]
    return dataclasses.replace(facts, tables=tables)


def first(result):
    listing = "\n".join(f"{f.severity} {f.code}: {f.summary}" for f in result.findings)
    assert result.findings, "no finding"
    return result.findings[0], listing


def ledger_check(result):
    return next(c for c in list(result.checked) + list(result.not_checked) if c.name == LEDGER)


def sources(finding) -> set[str]:
    return set(finding.confidence.sources)


def frames_on(finding) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for e in finding.evidence:
        if e.frame is not None:
            out.setdefault(e.host, []).append(e.frame)
    return out


def check_frames(path, finding):
    from tests.analyze.test_lab_fault_table import check_evidence

    problems = check_evidence(path, finding)
    assert not problems, "\n".join(problems)


# --- healthy -----------------------------------------------------------------------------------

def test_healthy_scene_every_flow_delivered_no_finding(tmp_path):
    path = build(tmp_path, pings() + node_pings())
    facts, result = result_of(path)
    assert not [f for f in result.findings if f.severity != "info"], result.findings
    check = ledger_check(result)
    assert check.passed and "2 flows delivered" in check.detail, check.detail
    assert not result.flows                         # no ladder without an overlay finding


# --- OVERLAY_UDP_BLOCKED -----------------------------------------------------------------------

@needs_tshark
def test_blocked_on_the_router_both_ends(tmp_path):
    path = build(tmp_path, pings(router_out=False) + node_pings())
    facts, result = result_of(path)
    f, listing = first(result)
    assert f.code == "OVERLAY_UDP_BLOCKED" and f.severity == "error", listing
    assert {"pcap-sender", "pcap-receiver", "pcap-path", "pcap-underlay"} <= sources(f)
    assert "router" in f.summary and "never arrive on k8s-w0" in f.summary, f.summary
    assert {"k8s-ctr", "router", "k8s-w0"} <= set(frames_on(f)), f.evidence
    check_frames(path, f)
    ladder = result.flows[0]
    assert ladder.code == "OVERLAY_UDP_BLOCKED" and ladder.lost_after == "path-in router"
    by_role = {(p.role, p.host): p.packets for p in ladder.points}
    assert by_role[("underlay-out", "k8s-ctr")] == ladder.sent > 0
    assert by_role[("path-in", "router")] == ladder.sent and by_role[("path-out", "router")] == 0
    assert by_role[("underlay-in", "k8s-w0")] == by_role[("pod-in", "k8s-w0")] == 0


def test_blocked_without_other_traffic_says_so(tmp_path):
    facts, result = result_of(build(tmp_path, pings(router_out=False)))
    f, listing = first(result)
    assert f.code == "OVERLAY_UDP_BLOCKED", listing
    assert "pcap-underlay" not in sources(f) and "whole path may be down" in f.summary


def test_blocked_from_one_end_is_not_decidable(tmp_path):
    facts, _ = result_of(build(tmp_path, pings(router_out=False) + node_pings()))
    sender_only = explain(one_end(facts, "k8s-ctr"))
    assert not [f for f in sender_only.findings if f.code.startswith("OVERLAY")]
    undecided = [c for c in sender_only.not_checked if "k8s-ctr -> k8s-w0" in c.name]
    assert undecided and "not decidable from one end" in undecided[0].needs
    assert "a capture on k8s-w0" in undecided[0].needs
    receiver_only = explain(one_end(facts, "k8s-w0"))   # it never saw the flow at all
    assert not [f for f in receiver_only.findings if f.code.startswith("OVERLAY")]


def test_dropped_on_the_receivers_input_with_its_vni_and_port(tmp_path):
    facts, result = result_of(build(tmp_path, pings(decap=False) + node_pings()))
    f, listing = first(result)
    assert f.code == "OVERLAY_UDP_BLOCKED", listing
    assert "input" in f.summary and "firewall" in f.summary
    assert "not checked" in f.note


def test_one_lost_packet_is_no_finding(tmp_path):
    packets = pings(1, router_out=False) + pings(4, start=1.0)
    facts, result = result_of(build(tmp_path, packets))
    assert not [f for f in result.findings if f.code.startswith("OVERLAY")], result.findings


def test_absences_the_captures_drops_explain_are_not_judged(tmp_path):
    drops = {"k8s-w0": (200_000, 196_000), "router": (200_000, 196_000)}
    facts, result = result_of(build(tmp_path, pings(router_out=False), drops=drops))
    assert not [f for f in result.findings if f.code.startswith("OVERLAY")], result.findings
    check = ledger_check(result)
    assert "dropped 196000 of 200000" in check.detail and "not judged" in check.detail


# --- VXLAN_VNI_MISMATCH / VXLAN_PORT_MISMATCH --------------------------------------------------

@needs_tshark
def test_vni_mismatch_two_ended_then_one_ended(tmp_path):
    path = build(tmp_path, pings(decap=False), links=[("k8s-w0", "vxlan.calico", {"id": 3})])
    facts, result = result_of(path)
    f, listing = first(result)
    assert f.code == "VXLAN_VNI_MISMATCH" and f.hosts == ("k8s-w0",), listing
    assert {"ip-link", "pcap-sender", "pcap-receiver"} <= sources(f)
    assert {"k8s-ctr", "k8s-w0"} <= set(frames_on(f))
    check_frames(path, f)
    assert any("id 2" in line for line in f.fix)
    for host in ("k8s-ctr", "k8s-w0"):
        lone, listing = first(explain(one_end(facts, host)))
        assert lone.code == "VXLAN_VNI_MISMATCH", listing
        assert sources(lone) < sources(f) and lone.confidence.level in ("low", "medium")


def test_port_mismatch_gets_both_ends(tmp_path):
    path = build(tmp_path, pings(decap=False), links=[("k8s-w0", "vxlan.calico", {"port": 4789})])
    facts, result = result_of(path)
    f, listing = first(result)
    assert f.code == "VXLAN_PORT_MISMATCH", listing
    assert {"pcap-sender", "pcap-receiver", "ip-link"} <= sources(f)
    assert "pcap" not in sources(f)            # the same captures, now read from both ends


# --- OVERLAY_CHECKSUM_OFFLOAD ------------------------------------------------------------------

def syns(n: int, *, sender: str = "ok", receiver: str = "bad", start: float = 0.25):
    out = []
    for i in range(n):
        t = start + i * 0.45
        pkt = O.syn(CTR_POD, W0_POD, 40000 + i, 8080, 1000 * i + 7, 7000 + i)
        seen = [O.Sighting("k8s-ctr", "cali_pod", t, checksum=sender),
                O.Sighting("k8s-ctr", "vxlan.calico", t + 1e-5, outgoing=True, checksum=sender),
                O.Sighting("k8s-ctr", "eth1", t + 2e-5, encapsulated=True, outgoing=True,
                           checksum=sender)]
        seen += O.path_in("k8s-w0", t, checksum=receiver)
        out.append(O.Packet(pkt, seen))
    return out


@needs_tshark
def test_checksums_good_leaving_bad_arriving(tmp_path):
    path = build(tmp_path, syns(3) + pings())
    facts, result = result_of(path)
    f, listing = first(result)
    assert f.code == "OVERLAY_CHECKSUM_OFFLOAD" and f.severity == "error", listing
    assert {"pcap-sender", "pcap-receiver", "ethtool"} <= sources(f) or \
        {"pcap-sender", "pcap-receiver"} <= sources(f)
    assert "correct leaving k8s-ctr" in f.summary and "ICMP between" in f.summary
    assert any("tx-checksum-ip-generic off" in line for line in f.fix)
    check_frames(path, f)
    sent = [e for e in f.evidence if e.host == "k8s-ctr" and e.frame]
    got = [e for e in f.evidence if e.host == "k8s-w0" and e.frame and "bad" in e.value]
    assert sent and got
    assert result.flows and result.flows[0].code == "OVERLAY_CHECKSUM_OFFLOAD"
    lone, listing = first(explain(one_end(facts, "k8s-w0")))
    assert lone.code == "OVERLAY_CHECKSUM_OFFLOAD" and "not decidable from one end" in \
        lone.summary, listing
    assert "pcap-sender" not in sources(lone)


def test_offloaded_on_the_sender_then_bad_names_the_senders_offload(tmp_path):
    facts, result = result_of(build(tmp_path, syns(3, sender="partial") + pings()))
    f, listing = first(result)
    assert f.code == "OVERLAY_CHECKSUM_OFFLOAD", listing
    assert "left the inner checksum to offload" in f.summary


@pytest.mark.parametrize("sender,receiver", [("bad", "bad"), ("partial", "partial"),
                                              ("ok", "partial")])
def test_partial_or_senders_own_bad_checksums_are_never_corruption(tmp_path, sender, receiver):
    facts, result = result_of(build(tmp_path, syns(3, sender=sender, receiver=receiver)
                                    + pings()))
    assert not [f for f in result.findings if f.code == "OVERLAY_CHECKSUM_OFFLOAD"]


# --- OVERLAY_DROP_AFTER_DECAP ------------------------------------------------------------------

@needs_tshark
def test_dropped_after_decapsulation(tmp_path):
    path = build(tmp_path, pings(pod=False))
    facts, result = result_of(path)
    f, listing = first(result)
    assert f.code == "OVERLAY_DROP_AFTER_DECAP" and f.hosts == ("k8s-w0",), listing
    assert "checked: route" in f.note and "rp_filter" in f.note and "not checked" in f.note
    assert "policy" in f.note
    check_frames(path, f)
    lone, _ = first(explain(one_end(facts, "k8s-w0")))
    assert lone.code == f.code and sources(lone) < sources(f)
    assert lone.confidence.level != "high" or f.confidence.level == "high"


# --- MTU: tunnelled packets fragmented on the underlay -----------------------------------------

def test_outer_fragments_are_mtu_evidence(tmp_path):
    from scapy.layers.inet import ICMP, IP

    packets = []
    for i in range(4):
        t = 0.3 + i * 0.4
        inner = IP(src=CTR_POD, dst=W0_POD, id=500 + i, flags="DF") / ICMP(id=5, seq=i) / \
            (b"y" * 1372)
        seen = [O.Sighting("k8s-ctr", "cali_pod", t),
                O.Sighting("k8s-ctr", "vxlan.calico", t + 1e-5, outgoing=True),
                O.Sighting("k8s-ctr", "eth1", t + 2e-5, encapsulated=True, outgoing=True,
                           fragment_outer=1000),
                O.Sighting("k8s-w0", "eth1", t + 2e-4, encapsulated=True, fragment_outer=1000),
                O.Sighting("k8s-w0", "vxlan.calico", t + 2.1e-4),
                O.Sighting("k8s-w0", "cali_pod", t + 2.2e-4, outgoing=True)]
        packets.append(O.Packet(inner, seen))
    facts, result = result_of(build(tmp_path, packets))
    frag = facts.tables["fragments"]
    assert (frag["status"] == "reassembled").sum() >= 8      # both ends reassembled each one
    mtu = [f for f in result.findings if f.code == "OVERLAY_MTU_BLACKHOLE"]
    assert mtu and mtu[0].severity == "warning", result.findings
    assert "fragments" in mtu[0].summary and "delivered" in mtu[0].severity_reason


def test_fragments_lost_on_the_underlay_are_mtu_evidence_at_the_receiver(tmp_path):
    """The receiver sees each datagram's first fragment, never the rest: the decoder's fragments
    table says "incomplete", so the packets reached the receiver's underlay (not blocked) and the
    loss is the MTU's, an error since nothing got through."""
    from scapy.layers.inet import ICMP, IP

    packets = []
    for i in range(4):
        t = 0.3 + i * 0.4
        inner = IP(src=CTR_POD, dst=W0_POD, id=600 + i, flags="DF") / ICMP(id=6, seq=i) / \
            (b"y" * 1372)
        seen = [O.Sighting("k8s-ctr", "cali_pod", t),
                O.Sighting("k8s-ctr", "vxlan.calico", t + 1e-5, outgoing=True),
                O.Sighting("k8s-ctr", "eth1", t + 2e-5, encapsulated=True, outgoing=True,
                           fragment_outer=1000),
                O.Sighting("k8s-w0", "eth1", t + 2e-4, encapsulated=True, fragment_outer=1000,
                           head_only=True)]
        packets.append(O.Packet(inner, seen))
    facts, result = result_of(build(tmp_path, packets))
    frag = facts.tables["fragments"]
    assert (frag[frag["host"] == "k8s-w0"]["status"] == "incomplete").sum() == 4
    codes = [f.code for f in result.findings]
    assert codes[0] == "OVERLAY_MTU_BLACKHOLE" and "OVERLAY_UDP_BLOCKED" not in codes, codes
    mtu = result.findings[0]
    assert mtu.severity == "error" and "not reassembled" in mtu.summary, mtu


# --- GENEVE (crafted only: no GENEVE module in this kernel) ------------------------------------

GENEVE_LINKS = [(h, "vxlan.calico", {"kind": "geneve", "port": 6081}) for h in O.NODES]


@needs_tshark
def test_geneve_blocked_on_the_router(tmp_path):
    path = build(tmp_path, pings(router_out=False, tunnel="geneve", port=6081) + node_pings(),
                 links=GENEVE_LINKS)
    facts, result = result_of(path)
    assert {t.kind for t in facts.model.tunnels} == {"geneve"}
    f, listing = first(result)
    assert f.code == "OVERLAY_UDP_BLOCKED" and "UDP 6081" in f.summary, listing
    check_frames(path, f)


def test_geneve_healthy_and_vni_mismatch(tmp_path):
    healthy = build(tmp_path / "a", pings(tunnel="geneve", port=6081), links=GENEVE_LINKS)
    assert not [f for f in result_of(healthy)[1].findings if f.severity != "info"]
    links = GENEVE_LINKS + [("k8s-w0", "vxlan.calico", {"id": 9})]
    broken = build(tmp_path / "b", pings(decap=False, tunnel="geneve", port=6081), links=links)
    f, listing = first(result_of(broken)[1])
    assert f.code == "VXLAN_VNI_MISMATCH" and {"pcap-sender", "pcap-receiver"} <= sources(f), \
        listing


# --- clock offsets -----------------------------------------------------------------------------

def test_packets_are_matched_in_one_clock(tmp_path):
    """k8s-w0's clock runs 3 s ahead: with the manifest's offset its sightings join the
    sender's; without it the same packets look lost (and the ones it saw, unsent)."""
    offsets = {"k8s-w0": 3.0, "k8s-ctr": 0.0, "router": 0.0, "k8s-w1": 0.0}
    path = build(tmp_path, pings(8), offsets=offsets)
    from diag.analyze.ledger import build_ledger

    facts = load_facts(path)
    forward = [fl for fl in build_ledger(facts.tables, facts.model).flows
               if fl.sender == "k8s-ctr" and fl.receiver == "k8s-w0"]
    assert forward and forward[0].journeys >= 4 and forward[0].delivered == forward[0].journeys
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["hosts"]["k8s-w0"]["clock_offset_s"] = 0.0
    (path / "manifest.json").write_text(json.dumps(manifest))
    facts = load_facts(path)
    forward = [fl for fl in build_ledger(facts.tables, facts.model).flows
               if fl.sender == "k8s-ctr" and fl.receiver == "k8s-w0"]
    assert forward and not any(fl.delivered and fl.points["underlay-out"].packets
                               for fl in forward)
