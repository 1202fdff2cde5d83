"""IP reassembly (diag.decode.fragments) on its bounds and bad inputs, directly and through the
frame decoder: copies, overlaps, conflicting last fragments, the 64 KiB limit, timeouts per
address family, the caps on what waits, snaplen-cut fragments, and a second copy of a datagram.

Fragments are cut by scapy's ``fragment``/``fragment6`` where a real shape is wanted and by hand
where the test needs a shape no sender makes (overlaps, a datagram past 64 KiB).
"""
from __future__ import annotations

import struct

import pytest

from diag.decode.fragments import MAX_DATAGRAM, Reassembler

KEY4 = ("ipv4", 0, "10.0.0.1", "10.0.0.2", 7, 17, 0, None, None)
KEY6 = ("ipv6", 0, "fd00::1", "fd00::2", 7, None, 0, None, None)
DATA = bytes(range(256)) * 8          # 2048 bytes


def feed(r: Reassembler, pieces, key=KEY4, ts0: float = 100.0):
    """pieces: (offset, length, more[, ts]) -> all outcomes, with the frame each came at."""
    out = []
    for frame, piece in enumerate(pieces, start=1):
        offset, length, more, *ts = piece
        got = r.add(key, offset, more, DATA[offset:offset + length], 20 + length, frame,
                    ts[0] if ts else ts0 + frame, 17)
        out += [(frame, o) for o in got]
    return out


def test_in_order_out_of_order_and_copies():
    for order in ([(0, 800, True), (800, 800, True), (1600, 448, False)],
                  [(1600, 448, False), (0, 800, True), (800, 800, True)],
                  [(0, 800, True), (0, 800, True), (1600, 448, False), (800, 800, True)]):
        r = Reassembler()
        [(frame, o)] = feed(r, order)
        assert (frame, o.status, o.payload, o.fragments, o.largest) == (
            len(order), "reassembled", DATA, 3, 820)
        assert r.pending_bytes == r.pending_fragments == 0


def test_overlap_fails_and_keeps_the_rest_of_its_datagram():
    r = Reassembler()
    out = feed(r, [(0, 800, True), (400, 800, True), (1200, 848, False)])
    assert [(f, o.status) for f, o in out] == [(2, "overlap")]      # the third is the failed one's
    assert r.pending_fragments == 0 and r.flush() == []


def test_same_place_other_bytes_is_an_overlap_not_a_copy():
    r = Reassembler()
    assert r.add(KEY4, 0, True, b"a" * 800, 820, 1, 1.0, 17) == []
    [o] = r.add(KEY4, 0, True, b"b" * 800, 820, 2, 2.0, 17)
    assert o.status == "overlap"


def test_two_different_last_fragments_are_an_overlap():
    r = Reassembler()
    out = feed(r, [(1600, 448, False), (0, 800, True), (1000, 100, False)])
    assert [o.status for _f, o in out] == ["overlap"]


def test_data_past_the_last_fragment_is_an_overlap():
    r = Reassembler()
    out = feed(r, [(1000, 448, False), (1448, 100, True)])
    assert [o.status for _f, o in out] == ["overlap"]


def test_past_64k_is_too_large():
    r = Reassembler()
    offset = (MAX_DATAGRAM // 8) * 8                     # the largest offset IPv4 can say
    got = r.add(KEY4, offset, False, b"x" * 100, 120, 1, 1.0, 17)
    assert [o.status for o in got] == ["too-large"]


@pytest.mark.parametrize("key,timeout", [(KEY4, 30.0), (KEY6, 60.0)])
def test_timeout_per_family_checked_when_a_fragment_arrives(key, timeout):
    r = Reassembler()
    assert r.add(key, 0, True, b"a" * 8, 28, 1, 100.0, 17) == []
    other = key[:4] + (8,) + key[5:]
    assert r.add(other, 0, True, b"b" * 8, 28, 2, 100.0 + timeout, 17) == []   # not yet
    [o] = r.add(other, 8, True, b"c" * 8, 28, 3, 100.0 + timeout + 0.5, 17)
    assert (o.key, o.status, o.first_frame, o.fragments, o.size) == (key, "incomplete", 1, 1, 8)


def test_caps_evict_the_oldest():
    r = Reassembler(max_pending_fragments=3)
    out = []
    for i in range(5):
        key = KEY4[:4] + (100 + i,) + KEY4[5:]
        out += r.add(key, 0, True, b"z" * 8, 28, i + 1, 1.0 + i, 17)
    assert [(o.key[4], o.status) for o in out] == [(100, "evicted"), (101, "evicted")]
    assert r.pending_fragments == 3
    r = Reassembler(max_pending_bytes=20)
    out = r.add(KEY4, 0, True, b"z" * 16, 36, 1, 1.0, 17)
    out += r.add(KEY4[:4] + (9,) + KEY4[5:], 0, True, b"y" * 16, 36, 2, 2.0, 17)
    assert [(o.key[4], o.status) for o in out] == [(7, "evicted")] and r.pending_bytes == 16


def test_truncated_and_flush():
    r = Reassembler()
    [o] = r.add(KEY4, 0, True, b"short", 1500, 1, 1.0, 17, truncated=True)
    assert o.status == "truncated"
    assert r.add(KEY4, 1480, False, b"x" * 20, 40, 2, 2.0, 17) == []      # its own: kept out
    r.add(KEY6, 0, True, b"x" * 8, 48, 3, 3.0, 17)
    assert [(o.key, o.status) for o in r.flush()] == [(KEY6, "incomplete")]


def test_a_second_copy_is_reassembled_again_as_wireshark_does():
    r = Reassembler()
    pieces = [(0, 800, True), (800, 800, True), (1600, 448, False)]
    out = feed(r, pieces + pieces)
    assert [(f, o.status) for f, o in out] == [(3, "reassembled"), (6, "reassembled")]


# --- through the frame decoder --------------------------------------------------------------------

def _decode(frames: list[bytes], snaplen: int | None = None):
    from diag.decode.frames import PacketDecoder

    d = PacketDecoder()
    for i, data in enumerate(frames, start=1):
        d.packet(i, float(i), 0, 1, data if snaplen is None else data[:snaplen], len(data), 0)
    d.finish()
    return d.take()


def test_decoder_reports_a_snaplen_cut_fragment_and_ping_of_death():
    from scapy.layers.inet import ICMP, IP, fragment
    from scapy.layers.l2 import Ether

    big = IP(src="10.0.0.1", dst="10.0.0.2", id=5) / ICMP() / (b"p" * 3000)
    frames = [bytes(Ether() / f) for f in fragment(big, 1400)]
    rows = _decode(frames, snaplen=200)
    assert [r[-4] for r in rows["fragments"]] == ["truncated"]
    # the last fragment of a ping of death: offset 65528, 100 bytes
    head = IP(src="10.0.0.1", dst="10.0.0.2", id=6, proto=1, frag=65528 // 8, flags=0)
    rows = _decode([bytes(Ether() / head / (b"x" * 100))])
    assert [r[-4] for r in rows["fragments"]] == ["too-large"]
    [packet] = rows["packets"]
    assert packet[18] is True and packet[-1] is None        # a fragment, not a malformed frame


def test_decoder_keys_copies_on_two_interfaces_apart():
    """tcpdump -i any: each fragment in on one interface and out on another; both copies of the
    datagram are reassembled (by frame order, each completes at its own last fragment)."""
    from diag.decode.frames import PacketDecoder
    from scapy.layers.inet import ICMP, IP, fragment
    from scapy.layers.l2 import Ether

    big = IP(src="10.0.0.1", dst="10.0.0.2", id=9) / ICMP() / (b"q" * 2000)
    pieces = [bytes(Ether() / f)[14:] for f in fragment(big, 1000)]
    d = PacketDecoder()
    frame = 0
    for piece in pieces:
        for ifindex, pkttype in ((3, 0), (2, 4)):            # in on 3, out on 2 (SLL2)
            frame += 1
            sll2 = (struct.pack("!HHIHBB", 0x0800, 0, ifindex, 1, pkttype, 6)
                    + b"\x02\x00\x00\x00\x00\x01\x00\x00")
            d.packet(frame, float(frame), 0, 276, sll2 + piece, len(sll2 + piece), 0)
    d.finish()
    rows = d.take()["fragments"]
    assert [(r[0], r[-4]) for r in rows] == [(5, "reassembled"), (6, "reassembled")]
