"""diag's decoder against Wireshark's dissectors (tshark JSON/fields and pyshark), frame by frame.

Compared per frame, not as counts: the BGP message types completing in the frame, every prefix
announced (with path id, AS path, AS4 path, next hops, communities, large communities) and
withdrawn, NOTIFICATION code/subcode; VXLAN/GENEVE layers (VNI, outer and inner addresses); ARP
op/sender/target; link and IP facts. On crafted captures (ground truth checked against the same
oracles in tests/oracle/test_oracles_agree.py) and on the three real-daemon captures in
tests/fixtures/pcap/. tshark's faults are handled by the adapters in tests/oracle/tshark.py
(decode-as for 8472 and non-standard BGP ports, explicit AS number length, out-of-order reassembly).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest

from tests.craft import session_captures
from tests.oracle import diag_view, tshark

pytestmark = [pytest.mark.tshark,
              pytest.mark.skipif(not tshark.available(), reason="tshark not installed")]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pcap"
REAL_BGP = ["bgp_session.pcap", "bgp_failures.pcap"]
BGP_CAPTURES = ["bgp_session", "bgp_gap", "bgp_port1790", "bgp_as2", "tunnels"]
PACKET_CAPTURES = ["eth_le_usec", "eth_le_nsec", "eth_be_usec", "eth_be_nsec", "sll", "sll2",
                   "raw", "null", "loop", "chdlc", "two_ifaces", "l3_variants"]


@pytest.fixture(scope="session")
def crafted(tmp_path_factory):
    return session_captures(tmp_path_factory)


@lru_cache(maxsize=None)
def decoded(path: Path, bgp_ports: tuple[int, ...] = (179,)):
    from diag.decode import DecodeOptions, decode_file
    return decode_file(path, DecodeOptions(bgp_ports=bgp_ports))


def assert_frames_equal(got: dict, want: dict, what: str) -> None:
    """Per-frame equality with a readable first difference."""
    for frame in sorted(set(got) | set(want)):
        assert got.get(frame) == want.get(frame), (
            f"{what}: frame {frame} differs\n diag:   {got.get(frame)}\n oracle: {want.get(frame)}")


def _bgp_messages_seen(frames: dict) -> int:
    return sum(len(fb.types) for fb in frames.values())


# --- BGP ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BGP_CAPTURES)
def test_bgp_matches_tshark_crafted(crafted, name):
    c = crafted[name]
    oracle = tshark.bgp_frames(c.path, c.decode_as, c.four_octet_as)
    assert oracle, "tshark saw no BGP: the comparison would prove nothing"
    ours = diag_view.bgp_frames(decoded(c.path, c.bgp_ports))
    if not c.gap_after:
        assert_frames_equal(ours, oracle, f"{name} BGP")
        return
    # After a lost segment tshark either waits for the hole for ever (out-of-order reassembly on)
    # or resynchronises on the next segment (off). Either is honest; in both the message belongs to
    # the frame its last byte arrived in.
    resync = tshark.bgp_frames(c.path, c.decode_as, c.four_octet_as,
                               extra_prefs=("tcp.reassemble_out_of_order:FALSE",))
    assert resync != oracle, "the capture must make the two behaviours differ"
    for frame in sorted(set(ours) | set(oracle) | set(resync)):
        assert ours.get(frame) in (oracle.get(frame), resync.get(frame)), (
            f"{name}: frame {frame}\n diag:     {ours.get(frame)}\n tshark:   {oracle.get(frame)}"
            f"\n resynced: {resync.get(frame)}")


def test_bgp_session_has_every_feature(crafted):
    """Guard against a comparison that passes because both sides are thin."""
    fb = tshark.bgp_frames(crafted["bgp_session"].path, (), True)
    types = [t for f in fb.values() for t in f.types]
    assert {1, 2, 3, 4, 5} <= set(types)
    routes = [r for f in fb.values() for r in f.announced]
    assert any("{" in r.as_path for r in routes)
    assert any(len(r.next_hop) == 2 for r in routes)       # IPv6 global + link-local
    assert any(r.large_communities for r in routes)
    assert any(r.path_id is not None for r in routes)
    assert any(len(f.types) >= 3 for f in fb.values())      # several messages in one segment


def test_bgp_on_extra_port_needs_the_option(crafted):
    """Without --bgp-port 1790 the session is not BGP; with it, it matches tshark (above)."""
    c = crafted["bgp_port1790"]
    plain = diag_view.bgp_frames(decoded(c.path))
    assert plain == {}


def test_bgp_gap_is_reported_not_guessed(crafted):
    c = crafted["bgp_gap"]
    t = decoded(c.path)
    ((src, sport), gap_frame), = c.gap_after.items()
    events = t.stream_events
    mine = events[(events["src"] == src) & (events["sport"] == sport)]
    assert len(mine), f"no stream event for the lost segment:\n{events}"
    assert (mine["frame"] > gap_frame).any()
    assert any("gap" in str(e).lower() for e in mine["event"].tolist() + mine["detail"].tolist())


@pytest.mark.parametrize("name", REAL_BGP)
def test_bgp_matches_tshark_real(name):
    path = FIXTURES / name
    oracle = tshark.bgp_frames(path, (), True)
    assert _bgp_messages_seen(oracle) > 10
    ours = diag_view.bgp_frames(decoded(path))
    assert_frames_equal(ours, oracle, f"{name} BGP")


@pytest.mark.parametrize("name", ["bgp_session", "bgp_as2"])
def test_bgp_message_details_match_tshark(crafted, name):
    """OPEN (AS, hold time, id, capability codes), NOTIFICATION text, ROUTE-REFRESH subtype."""
    c = crafted[name]
    fields = ["frame.number", "bgp.type", "bgp.open.myas", "bgp.open.holdtime",
              "bgp.open.identifier", "bgp.cap.type", "bgp.notify.communication",
              "bgp.route_refresh.subtype"]
    args = tshark._args(c.path, c.decode_as, [*tshark.BASE_PREFS, tshark.asn_pref(c.four_octet_as)])
    for f in fields:
        args += ["-e", f]
    out = tshark._run(args + ["-Y", "bgp", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"])
    msgs = decoded(c.path, c.bgp_ports).bgp_messages
    for line in out.splitlines():
        cols = dict(zip(fields, line.split("\t")))
        frame = int(cols["frame.number"])
        rows = msgs[msgs["frame"] == frame]
        if cols["bgp.open.myas"]:
            opens = rows[rows["type"] == 1]
            wire = [int(v) for v in cols["bgp.open.myas"].split("|")]
            # diag may report the 4-octet AS of capability 65; on the wire it is AS_TRANS
            assert wire == [int(v) if int(v) <= 0xFFFF else 23456 for v in opens["open_my_as"]], frame
            assert [int(v) for v in cols["bgp.open.holdtime"].split("|")] == list(opens["open_hold_time"])
            assert cols["bgp.open.identifier"].split("|") == list(opens["open_bgp_id"])
            codes = sorted(int(v) for v in cols["bgp.cap.type"].split("|"))
            caps = [c for cl in opens["open_capabilities"] for c in cl]
            assert sorted(_cap_code(c) for c in caps) == codes, (frame, caps)
        if cols["bgp.notify.communication"]:
            notes = rows[rows["type"] == 3]
            assert list(notes["notify_text"]) == [cols["bgp.notify.communication"]]
        if cols["bgp.route_refresh.subtype"]:
            rr = rows[rows["type"] == 5]
            assert [int(v) for v in rr["refresh_subtype"]] == [
                int(v, 0) for v in cols["bgp.route_refresh.subtype"].split("|")]


# IANA "Capability Codes" by the short names diag prints (the first word of each entry).
CAPABILITY_CODES = {
    "multiprotocol": 1, "route-refresh": 2, "outbound-route-filtering": 3, "extended-nexthop": 5,
    "extended-message": 6, "bgp-role": 9, "graceful-restart": 64, "4-octet-as": 65,
    "add-path": 69, "enhanced-route-refresh": 70, "long-lived-graceful-restart": 71, "fqdn": 73,
    "software-version": 75, "route-refresh-cisco": 128,
}


def _cap_code(cap) -> int:
    """A capability as diag lists it ('4-octet-as 65002', 'capability-77') -> its IANA code."""
    if isinstance(cap, int):
        return cap
    word = str(cap).split()[0].lower()
    if word.startswith("capability-"):
        return int(word.split("-", 1)[1])
    return CAPABILITY_CODES[word]


# --- tunnels and ARP through pyshark --------------------------------------------------------------

@pytest.mark.parametrize("name", ["tunnels", "arp"])
def test_tunnels_and_arp_match_pyshark_crafted(crafted, name):
    c = crafted[name]
    tunnels, arps = tshark.tunnels_and_arp(c.path, c.decode_as)
    t = decoded(c.path, c.bgp_ports)
    assert_frames_equal(diag_view.tunnel_frames(t), tunnels, f"{name} tunnels")
    assert_frames_equal(diag_view.arp_frames(t), arps, f"{name} ARP")
    assert tunnels or arps


def test_tunnels_and_arp_match_pyshark_real():
    path = FIXTURES / "vxlan_port_mismatch.pcap"
    tunnels, arps = tshark.tunnels_and_arp(path, ("udp.port==8472,vxlan",))
    assert {layer.outer_dport for layers in tunnels.values() for layer in layers} == {4789, 8472}
    t = decoded(path)
    assert_frames_equal(diag_view.tunnel_frames(t), tunnels, "vxlan_port_mismatch tunnels")
    assert_frames_equal(diag_view.arp_frames(t), arps, "vxlan_port_mismatch ARP")


# --- link layers, pcap/pcapng variants, IP facts ---------------------------------------------------

def compare_packets(ours: dict, oracle: dict, what: str) -> None:
    assert sorted(ours) == sorted(oracle), f"{what}: frame numbers differ"
    for frame, want in oracle.items():
        got = ours[frame]
        assert abs(got["ts"] * 1e9 - want["ts_ns"]) < 1_000, (what, frame, "ts")
        for key, value in want.items():
            if key == "ts_ns":
                continue
            assert got.get(key) == value, f"{what} frame {frame} {key}: diag {got.get(key)!r} tshark {value!r}"


@pytest.mark.parametrize("name", PACKET_CAPTURES)
def test_packets_match_tshark_crafted(crafted, name):
    c = crafted[name]
    compare_packets(diag_view.packet_facts(decoded(c.path)), tshark.packet_facts(c.path), name)


@pytest.mark.parametrize("name", [*REAL_BGP, "vxlan_port_mismatch.pcap"])
def test_packets_match_tshark_real(name):
    path = FIXTURES / name
    compare_packets(diag_view.packet_facts(decoded(path)), tshark.packet_facts(path), name)


# --- the JSON summary (`diag pcap --format json`) against the same oracles -------------------------

BGP_TYPE_NAMES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}


def run_json(path: Path, *extra: str) -> dict:
    import json
    import os
    import subprocess
    import sys
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "diag", "pcap", str(path), "--format", "json",
                           *extra], capture_output=True, text=True, timeout=120, cwd=repo,
                          env=dict(os.environ, PYTHONPATH=str(repo)))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


SUMMARY_CASES = [("bgp_session", ()), ("bgp_port1790", ("--bgp-port", "1790")),
                 ("tunnels", ()), ("real:bgp_session.pcap", ()),
                 ("real:bgp_failures.pcap", ()), ("real:vxlan_port_mismatch.pcap", ())]


@pytest.mark.parametrize("name,extra", SUMMARY_CASES, ids=[n for n, _ in SUMMARY_CASES])
def test_json_summary_matches_tshark(crafted, name, extra):
    if name.startswith("real:"):
        path, decode_as, four = FIXTURES / name[5:], ("udp.port==8472,vxlan",), True
    else:
        c = crafted[name]
        path, decode_as, four = c.path, c.decode_as, c.four_octet_as
    summary = run_json(path, *extra)
    bgp = tshark.bgp_frames(path, decode_as, four)
    tunnels, _ = tshark.tunnels_and_arp(path, decode_as)
    frames = tshark.packet_fields(path, decode_as)

    assert summary["packets"]["total"] == len(frames)
    want_types = {n: 0 for n in BGP_TYPE_NAMES.values()}
    for fb in bgp.values():
        for t in fb.types:
            want_types[BGP_TYPE_NAMES[t]] += 1
    assert {k: v for k, v in summary["bgp"]["messages"].items() if v} == \
        {k: v for k, v in want_types.items() if v}
    announced = {r.prefix for fb in bgp.values() for r in fb.announced}
    withdrawn = {p for fb in bgp.values() for p, _ in fb.withdrawn}
    assert set(summary["bgp"]["prefixes"]["announced_list"]) == announced
    assert set(summary["bgp"]["prefixes"]["withdrawn_list"]) == withdrawn

    want_vnis: dict[str, set[int]] = {}
    want_ends: dict[tuple[str, int], set[tuple[str, str, int]]] = {}
    for layers in tunnels.values():
        for layer in layers:
            want_vnis.setdefault(layer.type, set()).add(layer.vni)
            want_ends.setdefault((layer.type, layer.vni), set()).add(
                (layer.outer_src, layer.outer_dst, layer.outer_dport))
    got_vnis = {k: set(v["vnis"]) for k, v in summary["tunnels"].items()
                if isinstance(v, dict) and "vnis" in v and v["vnis"]}
    assert got_vnis == want_vnis
    got_ends = {(e["type"], e["vni"]): {(p["src"], p["dst"], p["dport"]) for p in e["endpoints"]}
                for e in summary["tunnels"]["by_vni"]}
    assert got_ends == want_ends


def test_json_arp_summary_matches_ground_truth(crafted):
    c = crafted["arp"]
    arp = run_json(c.path)["arp"]
    ops = [fact.op for fact in c.arp.values()]
    assert (arp["requests"], arp["replies"]) == (ops.count(1), ops.count(2))
    assert arp["gratuitous"] == sum(f.sender_ip == f.target_ip for f in c.arp.values())
    (unanswered,) = arp["unanswered_by_ip"]
    assert (unanswered["target_ip"], unanswered["count"]) == ("10.0.0.99", 3)
    (multi,) = arp["multiple_responders"]
    assert multi["ip"] == "10.0.0.200"
    assert sorted(multi["macs"]) == ["02:00:00:0a:00:0c", "02:00:00:0a:00:0d"]


def test_geneve_options_match_tshark(crafted):
    import re
    c = crafted["tunnels"]
    args = tshark._args(c.path, c.decode_as, tshark.BASE_PREFS)
    out = tshark._run(args + ["-Y", "geneve", "-T", "fields", "-e", "frame.number",
                              "-e", "geneve.option.class", "-e", "geneve.option.type",
                              "-e", "geneve.option.unknown.data", "-E", "occurrence=a"])
    tunnels = decoded(c.path).tunnels
    seen = 0
    for line in out.splitlines():
        frame, classes, types, data = line.split("\t")
        want = [(int(k, 16), int(t, 16), d.lower()) for k, t, d in
                zip(classes.split(","), types.split(","), data.split(","))]
        row = tunnels[(tunnels["frame"] == int(frame)) & (tunnels["type"] == "geneve")].iloc[0]
        got = []
        for opt in row["geneve_options"]:
            m = re.search(r"class=(0x[0-9a-f]+)\s+type=(0x[0-9a-f]+)\s+data=([0-9a-f]*)", str(opt), re.I)
            assert m, opt
            got.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3).lower()))
        assert got == want
        seen += 1
    assert seen == 1


@pytest.mark.parametrize("name", ["bgp_session", "tunnels"])
def test_chunked_decoding_matches_tshark(crafted, name):
    """Chunks of 2 frames cut split messages and TCP streams apart; the result must not change."""
    import pandas as pd

    from diag.decode import DecodeOptions, iter_decode
    c = crafted[name]
    chunks = list(iter_decode(c.path, DecodeOptions(bgp_ports=c.bgp_ports), chunk_packets=2))
    assert len(chunks) >= c.frames // 2

    def joined(table: str):
        parts = [getattr(ch, table) for ch in chunks if len(getattr(ch, table))]
        return pd.concat(parts, ignore_index=True) if parts else getattr(chunks[-1], table)

    class Joined:
        bgp_messages = joined("bgp_messages")
        bgp_routes = joined("bgp_routes")
        tunnels = joined("tunnels")

    oracle = tshark.bgp_frames(c.path, c.decode_as, c.four_octet_as)
    assert_frames_equal(diag_view.bgp_frames(Joined), oracle, f"{name} chunked BGP")
    tunnels, _ = tshark.tunnels_and_arp(c.path, c.decode_as)
    assert_frames_equal(diag_view.tunnel_frames(Joined), tunnels, f"{name} chunked tunnels")
