"""PcapSink: whatever the chunking or the byte bound, the result is a pcap that scapy reads."""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

from hypothesis import given, settings, strategies as st
from scapy.all import IP, TCP, Ether, PcapReader, wrpcap

from diag.collect.capture import PcapSink


def _pcap(count=20):
    packets = [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
               IP(src="192.0.2.1", dst=f"192.0.2.{i + 2}") / TCP(dport=179) / (b"x" * i)
               for i in range(count)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.pcap"
        wrpcap(str(path), packets)
        return path.read_bytes(), packets


DATA, PACKETS = _pcap()


def _read(data):
    return list(PcapReader(io.BytesIO(data)))


@settings(max_examples=50)
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(DATA) - 1), max_size=12),
       stop=st.integers(min_value=24, max_value=len(DATA)))
def test_chunked_stream_keeps_whole_records_only(cuts, stop):
    out = bytearray()
    sink = PcapSink(out.extend, max_bytes=10**9)
    edges = sorted(set(cuts) | {stop})
    start = 0
    for edge in edges:
        if edge > stop:
            break
        sink.feed(DATA[start:edge])
        start = edge
    packets = _read(bytes(out))
    assert len(packets) == sink.packets
    assert [bytes(p) for p in packets] == [bytes(p) for p in PACKETS[:len(packets)]]
    assert len(out) + sink.leftover == stop


def test_byte_bound_stops_at_a_record_boundary():
    out = bytearray()
    sink = PcapSink(out.extend, max_bytes=len(DATA) // 2)
    assert sink.feed(DATA) is False
    assert sink.truncated and len(out) <= len(DATA) // 2
    assert len(_read(bytes(out))) == sink.packets > 0


def test_non_pcap_bytes_are_kept_and_flagged():
    out = bytearray()
    sink = PcapSink(out.extend, max_bytes=100)
    sink.feed(b"tcpdump: syntax error, this is not a pcap stream")
    assert sink.not_pcap and bytes(out).startswith(b"tcpdump")
