"""The oracles checked against the crafted ground truth before anyone trusts them with diag.

If tshark or scapy disagrees with what the builders wrote, the builder or the oracle's adapter is
wrong (or the oracle has a fault not yet handled) - not diag. These tests never import diag.
"""
from __future__ import annotations

import pytest

from tests.craft import session_captures
from tests.oracle import scapy_view, tshark

BGP_CAPTURES = ["bgp_session", "bgp_gap", "bgp_port1790", "bgp_as2", "tunnels"]
PACKET_CAPTURES = ["eth_le_usec", "eth_le_nsec", "eth_be_usec", "eth_be_nsec", "sll", "sll2",
                   "raw", "null", "loop", "chdlc", "two_ifaces", "l3_variants"]
needs_tshark = pytest.mark.skipif(not tshark.available(), reason="tshark not installed")


@pytest.fixture(scope="session")
def crafted(tmp_path_factory):
    return session_captures(tmp_path_factory)


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize("name", BGP_CAPTURES)
def test_tshark_bgp_equals_ground_truth(crafted, name):
    c = crafted[name]
    assert c.bgp, "the capture must carry BGP"
    assert tshark.bgp_frames(c.path, c.decode_as, c.four_octet_as) == c.bgp


@pytest.mark.parametrize("name", BGP_CAPTURES)
def test_scapy_bgp_equals_ground_truth(crafted, name):
    c = crafted[name]
    seen, cannot = scapy_view.bgp_frames(c.path, c.bgp_ports, c.four_octet_as)
    # scapy knows no ADD-PATH: it reads path ids as prefixes. Such frames only compare types.
    with_ids = {f for f, fb in c.bgp.items()
                if any(r.path_id is not None for r in fb.announced)
                or any(pid is not None for _, pid in fb.withdrawn)}
    assert len(cannot) <= 1, cannot
    for frame in sorted(set(seen) | set(c.bgp)):
        if frame in cannot:
            continue
        got, want = seen.get(frame), c.bgp.get(frame)
        if frame in with_ids:
            assert got is not None and want is not None and got.types == want.types, frame
        else:
            assert got == (want.without_path_ids() if want else None), frame


def test_scapy_default_reads_four_octet_paths_wrongly(crafted):
    """The fault the scapy adapter handles: with its default 2-octet ASNs a 4-octet path is
    misread, so the adapter must be told what the OPENs negotiated."""
    c = crafted["bgp_session"]
    wrong, _ = scapy_view.bgp_frames(c.path, c.bgp_ports, four_octet=False)
    right, _ = scapy_view.bgp_frames(c.path, c.bgp_ports, four_octet=True)
    frame = 13   # the MP_REACH IPv6 UPDATE from B (no path ids)
    assert right[frame] == c.bgp[frame]
    assert wrong.get(frame) != c.bgp[frame]


@pytest.mark.tshark
@needs_tshark
def test_tshark_needs_decode_as_for_8472(crafted):
    """The fault the tshark adapter handles: without decode-as it sees no VXLAN on 8472."""
    c = crafted["tunnels"]
    blind = tshark.bgp_frames(c.path, (), True)
    assert blind == {}
    assert tshark.bgp_frames(c.path, c.decode_as, True) == c.bgp


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize("name", ["tunnels", "arp"])
def test_pyshark_tunnels_and_arp_equal_ground_truth(crafted, name):
    c = crafted[name]
    tunnels, arps = tshark.tunnels_and_arp(c.path, c.decode_as)
    assert tunnels == c.tunnels
    if name == "arp":
        assert {f: fact for f, (fact, depth) in arps.items()} == c.arp
        assert all(depth == 0 for _, depth in arps.values())


@pytest.mark.parametrize("name", ["tunnels", "arp"])
def test_scapy_tunnels_and_arp_equal_ground_truth(crafted, name):
    c = crafted[name]
    tunnels, arps = scapy_view.tunnels_and_arp(c.path)
    assert tunnels == c.tunnels
    if name == "arp":
        assert {f: fact for f, (fact, depth) in arps.items()} == c.arp


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize("name", PACKET_CAPTURES)
def test_tshark_packet_facts_equal_ground_truth(crafted, name):
    c = crafted[name]
    seen = tshark.packet_facts(c.path, c.decode_as)
    assert len(seen) == c.frames
    for frame, want in c.packets.items():
        got = seen[frame]
        for key, value in want.items():
            if key in got:
                assert got[key] == value, (frame, key)
