"""diag's decoder against scapy (the second independent decoder) and against the ground truth the
scapy-based builders wrote, frame by frame.

scapy's faults are handled in tests/oracle/scapy_view.py, not inherited: it gets whole BGP messages
from a small reassembler of its own (scapy does none), is told the AS number length the OPENs
negotiated (it defaults to 2 octets), has its half-parsed COMMUNITIES / LARGE_COMMUNITY remainders
read, and is not asked about ADD-PATH prefixes (it cannot parse path identifiers) nor about the
few messages it cannot parse at all (reported as ``cannot`` and skipped).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest

from tests.craft import session_captures
from tests.oracle import diag_view, scapy_view
from tests.oracle.normal import FrameBgp

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pcap"
BGP_CAPTURES = ["bgp_session", "bgp_gap", "bgp_port1790", "bgp_as2", "tunnels"]


@pytest.fixture(scope="session")
def crafted(tmp_path_factory):
    return session_captures(tmp_path_factory)


@lru_cache(maxsize=None)
def decoded(path: Path, bgp_ports: tuple[int, ...] = (179,)):
    from diag.decode import DecodeOptions, decode_file
    return decode_file(path, DecodeOptions(bgp_ports=bgp_ports))


def _has_path_ids(fb: FrameBgp | None) -> bool:
    return fb is not None and (any(r.path_id is not None for r in fb.announced)
                               or any(pid is not None for _, pid in fb.withdrawn))


def compare_with_scapy(ours: dict[int, FrameBgp], scapy: dict[int, FrameBgp], cannot: set[int],
                       what: str) -> int:
    """Per frame: equal, except frames scapy cannot parse (skipped) and ADD-PATH frames (message
    types only, because scapy reads path ids as prefixes). Returns the frames compared."""
    compared = 0
    for frame in sorted(set(ours) | set(scapy)):
        if frame in cannot:
            continue
        got, want = ours.get(frame), scapy.get(frame)
        if _has_path_ids(got):
            assert want is not None and got is not None and got.types == want.types, (what, frame)
        else:
            assert got == want, f"{what}: frame {frame}\n diag:  {got}\n scapy: {want}"
        compared += 1
    return compared


@pytest.mark.parametrize("name", BGP_CAPTURES)
def test_bgp_matches_scapy_crafted(crafted, name):
    c = crafted[name]
    scapy, cannot = scapy_view.bgp_frames(c.path, c.bgp_ports, c.four_octet_as)
    ours = diag_view.bgp_frames(decoded(c.path, c.bgp_ports))
    if c.gap_after:
        # scapy's reassembler, like the ground truth, never crosses the hole; diag may resync
        # after it (checked against tshark). Compare the frames before the hole here.
        gap = min(c.gap_after.values())
        ours = {f: v for f, v in ours.items() if f <= gap}
        scapy = {f: v for f, v in scapy.items() if f <= gap}
    assert compare_with_scapy(ours, scapy, cannot, name) >= 3


@pytest.mark.parametrize("name", ["bgp_session.pcap", "bgp_failures.pcap"])
def test_bgp_matches_scapy_real(name):
    path = FIXTURES / name
    scapy, cannot = scapy_view.bgp_frames(path, (179,), four_octet=True)
    assert len(cannot) <= 2, cannot
    ours = diag_view.bgp_frames(decoded(path))
    assert compare_with_scapy(ours, scapy, cannot, name) > 10


@pytest.mark.parametrize("name", BGP_CAPTURES)
def test_bgp_matches_ground_truth(crafted, name):
    """The builders' truth: the messages completing per frame, as the RFC bytes were written."""
    c = crafted[name]
    ours = diag_view.bgp_frames(decoded(c.path, c.bgp_ports))
    if c.gap_after:
        gap = min(c.gap_after.values())
        ours = {f: v for f, v in ours.items() if f <= gap}
        truth = {f: v for f, v in c.bgp.items() if f <= gap}
    else:
        truth = c.bgp
    for frame in sorted(set(ours) | set(truth)):
        assert ours.get(frame) == truth.get(frame), (
            f"{name}: frame {frame}\n diag:  {ours.get(frame)}\n truth: {truth.get(frame)}")


def test_well_known_communities_are_named(crafted):
    """RFC 1997/7999/8326 communities are shown by name, not as 65535:xxxxx."""
    routes = decoded(crafted["bgp_as2"].path).bgp_routes
    comms = [str(x) for cl in routes["communities"] if isinstance(cl, list) for x in cl]
    assert comms, "no communities decoded"
    assert not [x for x in comms if x.startswith("65535:")], comms
    assert {diag_view.community_value(x) for x in comms} >= {"65535:65283", "65535:0", "65535:666"}


def test_bgp_session_context_from_opens(crafted):
    """The same UPDATE bytes decode differently per session: 4-octet AS in bgp_session, 2-octet
    AS_PATH + AS4_PATH in bgp_as2 - taken from the OPENs, not guessed."""
    t4 = decoded(crafted["bgp_session"].path).bgp_routes
    assert (t4["as_path"].map(lambda p: isinstance(p, list) and 4_200_000_099 in p)).any()
    t2 = decoded(crafted["bgp_as2"].path).bgp_routes
    first = t2[t2["prefix"] == "100.64.0.0/10"].iloc[0]
    assert list(first["as_path"]) == [65001, 23456, 23456]
    assert [int(a) for a in first["as4_path"]] == [4_200_000_005, 4_200_000_006]


def test_notification_text_and_refresh_subtypes(crafted):
    from tests.craft.builders import SHUTDOWN_TEXT
    msgs = decoded(crafted["bgp_session"].path).bgp_messages
    note = msgs[msgs["type"] == 3].iloc[0]
    assert (int(note["notify_code"]), int(note["notify_subcode"])) == (6, 2)
    assert note["notify_text"] == SHUTDOWN_TEXT
    assert [int(x) for x in msgs[msgs["type"] == 5]["refresh_subtype"]] == [0, 1, 2]


@pytest.mark.parametrize("name", ["tunnels", "arp"])
def test_tunnels_and_arp_match_scapy_and_truth(crafted, name):
    c = crafted[name]
    tunnels, arps = scapy_view.tunnels_and_arp(c.path)
    t = decoded(c.path)
    ours_t, ours_a = diag_view.tunnel_frames(t), diag_view.arp_frames(t)
    assert ours_t == tunnels == c.tunnels
    assert ours_a == arps
    if name == "arp":
        assert {f: fact for f, (fact, _) in ours_a.items()} == c.arp
        flags = dict(zip(t.arp["frame"].astype(int), t.arp["gratuitous"].astype(bool)))
        assert flags == {f: a.sender_ip == a.target_ip for f, a in c.arp.items()}


def test_tunnels_and_arp_match_scapy_real():
    path = FIXTURES / "vxlan_port_mismatch.pcap"
    tunnels, arps = scapy_view.tunnels_and_arp(path)
    assert tunnels and arps
    t = decoded(path)
    assert diag_view.tunnel_frames(t) == tunnels
    assert diag_view.arp_frames(t) == arps


@pytest.mark.parametrize("name", ["eth_le_usec", "eth_be_nsec", "sll", "sll2", "raw", "null",
                                  "loop", "chdlc", "two_ifaces", "l3_variants"])
def test_packets_match_ground_truth(crafted, name):
    """Facts the builders wrote (incl. ip_proto after IPv6 extension headers, app, linktype)."""
    c = crafted[name]
    ours = diag_view.packet_facts(decoded(c.path))
    assert len(ours) == c.frames
    for frame, want in c.packets.items():
        got = ours[frame]
        for key, value in want.items():
            if key == "ts_ns":
                assert abs(got["ts"] * 1e9 - value) < 1_000, (name, frame, key)
            elif key in ("sport", "dport") and want.get("fragment"):
                continue    # only the first fragment has ports; which one is first is not a fact here
            else:
                assert got.get(key) == value, f"{name} frame {frame} {key}: diag {got.get(key)!r} truth {value!r}"


def test_bgp_inside_vxlan_keeps_inner_session_and_depth(crafted):
    c = crafted["tunnels"]
    msgs = decoded(c.path).bgp_messages
    assert len(msgs) == sum(len(fb.types) for fb in c.bgp.values())
    assert (msgs["tunnel_depth"] == 1).all()
    assert set(msgs["src"]) == {"10.5.0.1", "10.5.0.2"}   # the inner peers, not the VTEPs
