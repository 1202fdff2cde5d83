"""What keeps the table API's memory flat (issue 3): state that is released or bounded, with the
output unchanged.

* a BGP connection whose every direction has closed (FIN/RST, all data handed over) drops its
  frame-timestamp map — reconnects from new ports used to keep thousands of entries each, which
  grew with the capture — while every message still gets the time of the frame that completed it;
* ``iter_rows`` yields a chunk as soon as its block is decoded (one raw block of lookahead, not one
  decoded chunk held back), and the chunks together are exactly the one-chunk decode;
* the prefix-text cache of :mod:`diag.decode.nlri` stays within its size, texts unchanged
  (checked against :mod:`ipaddress`);
* IP reassembly holds at most its caps of fragments and bytes however many datagrams never
  complete, every one of them reported (evicted, or incomplete at the end), and forgets the
  datagrams that failed once their timeout has passed.

The memory figures themselves are the benchmark's (``benchmarks/run.py --quick``), not a timed test.
"""
from __future__ import annotations

import ipaddress
import random
from pathlib import Path

import pytest

import diag.decode as decode
from diag.decode import DecodeOptions, iter_rows, nlri
from diag.decode.bgpflow import MESSAGE_ROW, BgpFlows

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pcap"
MARKER = b"\xff" * 16
KEEPALIVE = MARKER + b"\x00\x13\x04"
SYN, FIN, ACK = 0x02, 0x01, 0x10
CLIENT, SERVER = ("10.0.0.1", 40000), ("10.0.0.2", 179)
TS_AT = MESSAGE_ROW.index("ts")
FRAME_AT = MESSAGE_ROW.index("frame")


def _flows():
    messages: list[tuple] = []
    flows = BgpFlows(messages.append, lambda row: None, lambda row: None)
    return flows, messages


def _send(flows: BgpFlows, sender, receiver, seq: int, flags: int, payload: bytes,
          frame: int) -> None:
    flows.segment(sender[0], sender[1], receiver[0], receiver[1], seq, flags, payload, frame,
                  float(frame) + 0.5, 0)


def _connection(flows: BgpFlows):
    (conn,) = flows.connections.values()
    return conn


def test_closed_connection_drops_its_frame_timestamps_and_keeps_message_times():
    flows, messages = _flows()
    _send(flows, CLIENT, SERVER, 1000, SYN, b"", 1)
    _send(flows, SERVER, CLIENT, 5000, SYN | ACK, b"", 2)
    # the client's KEEPALIVE arrives tail first: it is complete (and shown) in frame 4
    _send(flows, CLIENT, SERVER, 1001 + 10, ACK, KEEPALIVE[10:], 3)
    _send(flows, CLIENT, SERVER, 1001, ACK | FIN, KEEPALIVE[:10], 4)
    _send(flows, SERVER, CLIENT, 5001, ACK, KEEPALIVE, 5)
    assert _connection(flows).frame_ts, "one direction still open: its frames may be looked up"
    _send(flows, SERVER, CLIENT, 5001 + len(KEEPALIVE), ACK | FIN, b"", 6)
    assert _connection(flows).frame_ts == {}, "both directions closed: nothing left to look up"
    # a late retransmission of closed data adds nothing and keeps nothing
    _send(flows, CLIENT, SERVER, 1001, ACK, KEEPALIVE, 7)
    assert len(_connection(flows).frame_ts) <= 1
    flows.flush(8, 8.5)
    got = [(m[FRAME_AT], m[TS_AT], m[MESSAGE_ROW.index("src")]) for m in messages]
    assert got == [(4, 4.5, CLIENT[0]), (5, 5.5, SERVER[0])]


def test_connection_with_an_open_direction_keeps_what_it_needs():
    flows, messages = _flows()
    _send(flows, CLIENT, SERVER, 1000, SYN, b"", 1)
    _send(flows, SERVER, CLIENT, 5000, SYN | ACK, b"", 2)
    _send(flows, CLIENT, SERVER, 1001 + 10, ACK, KEEPALIVE[10:], 3)    # held out of order
    _send(flows, SERVER, CLIENT, 5001, ACK | FIN, KEEPALIVE, 4)         # server side closes
    assert 3 in _connection(flows).frame_ts
    _send(flows, CLIENT, SERVER, 1001, ACK, KEEPALIVE[:10], 5)          # completes it
    assert [(m[FRAME_AT], m[TS_AT]) for m in messages] == [(4, 4.5), (5, 5.5)]


def test_closed_connection_reopened_on_the_same_ports_decodes_again():
    flows, messages = _flows()
    _send(flows, CLIENT, SERVER, 1000, SYN, b"", 1)
    _send(flows, SERVER, CLIENT, 5000, SYN | ACK, b"", 2)
    _send(flows, CLIENT, SERVER, 1001, ACK | FIN, KEEPALIVE, 3)
    _send(flows, SERVER, CLIENT, 5001, ACK | FIN, b"", 4)
    assert _connection(flows).frame_ts == {}
    _send(flows, CLIENT, SERVER, 9000, SYN, b"", 5)                     # new connection
    _send(flows, SERVER, CLIENT, 7000, SYN | ACK, b"", 6)
    _send(flows, CLIENT, SERVER, 9001 + 5, ACK, KEEPALIVE[5:], 7)
    _send(flows, CLIENT, SERVER, 9001, ACK, KEEPALIVE[:5], 8)
    assert [(m[FRAME_AT], m[TS_AT]) for m in messages] == [(3, 3.5), (8, 8.5)]


def _flatten(chunks) -> dict[str, list]:
    out: dict[str, list] = {}
    for chunk in chunks:
        for name, rows in chunk.rows.items():
            out.setdefault(name, []).extend(rows)
    return out


@pytest.mark.parametrize("vectorize", [False, True])
def test_iter_rows_yields_each_chunk_before_decoding_the_next(monkeypatch, vectorize):
    path = FIXTURES / "bgp_failures.pcap"
    whole = _flatten(iter_rows(path, DecodeOptions(), chunk_packets=1 << 20, vectorize=vectorize))
    calls = []
    real = decode.decode_block
    monkeypatch.setattr(decode, "decode_block", lambda *a: calls.append(1) or real(*a))
    seen = []
    chunks = []
    for chunk in iter_rows(path, DecodeOptions(), chunk_packets=7, vectorize=vectorize):
        seen.append(len(calls))
        chunks.append(chunk)
    assert len(chunks) > 3
    assert seen == list(range(1, len(chunks) + 1)), "a chunk waited for the next block's decode"
    assert whole["bgp_messages"] and _flatten(chunks) == whole


def test_prefix_text_cache_is_bounded_and_texts_unchanged(monkeypatch):
    monkeypatch.setattr(nlri, "_CACHE_SIZE", 64)
    monkeypatch.setattr(nlri, "_TEXT_CACHE", {})
    rng = random.Random(3)
    for _ in range(20):
        data, offsets, want = b"", [], []
        for _ in range(50):
            plen = rng.randint(0, 32)
            addr = rng.getrandbits(32) & (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
            raw = addr.to_bytes(4, "big")[:(plen + 7) >> 3]
            offsets.append(len(data))
            data += bytes([plen]) + raw
            want.append(str(ipaddress.IPv4Network((addr, plen))))
        assert list(nlri.texts([nlri.PackedPrefixes(data, offsets, False)])) == want
        assert len(nlri._TEXT_CACHE) <= 64 + 50


def test_reassembly_stays_within_its_caps():
    from diag.decode.fragments import MAX_PENDING_BYTES, MAX_PENDING_FRAGMENTS, Reassembler

    r = Reassembler()
    statuses: dict[str, int] = {}
    n = 3 * MAX_PENDING_FRAGMENTS
    for i in range(n):                       # first fragments only: none ever completes
        key = ("ipv4", 0, "10.0.0.1", f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", i & 0xFFFF,
               17, 0, None, None)
        for o in r.add(key, 0, True, b"x" * 1000, 1020, i + 1, float(i) * 0.001, 17):
            statuses[o.status] = statuses.get(o.status, 0) + 1
        assert r.pending_fragments <= MAX_PENDING_FRAGMENTS
        assert r.pending_bytes <= MAX_PENDING_BYTES
    for o in r.flush():
        statuses[o.status] = statuses.get(o.status, 0) + 1
    assert sum(statuses.values()) == n and statuses["evicted"] >= n - MAX_PENDING_FRAGMENTS
    assert r.pending_fragments == r.pending_bytes == 0


def test_failed_datagrams_are_forgotten_after_their_timeout():
    from diag.decode.fragments import Reassembler

    r = Reassembler()
    for i in range(5000):                    # each fails at once (too large)
        key = ("ipv4", 0, "10.0.0.1", "10.0.0.2", i, 17, 0, None, None)
        r.add(key, 65528, False, b"x" * 100, 120, i + 1, 1.0, 17)
    assert len(r.failed) <= 4096
    r.add(("ipv4", 0, "10.0.0.9", "10.0.0.2", 1, 17, 0, None, None), 0, True, b"y" * 8, 28,
          9999, 100.0, 17)
    assert not r.failed                      # 99 s later: past the 30 s timeout
