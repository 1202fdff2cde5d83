"""A counts-only capture reader in pure Python (struct): the yardstick for diag's compiled core.

Usage (from the repository root)::

    python benchmarks/count_reader.py /tmp/mix.pcap        # prints its counts as JSON

It does the least a reader must do to answer "what is in this capture" on the benchmark mix, and
nothing else: it counts packets, VXLAN packets per (VNI, inner protocol), BGP messages per type
from TCP streams reassembled per direction (in-order bytes appended, early segments held until
the gap fills, retransmitted bytes skipped), and ARP opcodes. No rows, no texts, no summary, no
malformed-input handling beyond not crashing: a truncated header ends that packet. It is written
to be fast (one ``unpack_from`` per header, the file read in large blocks, no per-packet objects)
so that "diag is N x this reader" compares diag with a good pure-Python reader, not a strawman.
benchmarks/run.py times it beside ``diag pcap --workers 1`` and prints the ratio.
"""
from __future__ import annotations

import json
import struct
import sys
from collections import Counter

VXLAN_PORTS = (4789, 8472)
BGP_PORT = 179
BLOCK = 16 << 20
INNER = {0x0800: "ipv4", 0x86DD: "ipv6", 0x0806: "arp"}
IP_PROTOS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}


class _Direction:
    """One TCP direction of a BGP connection: the next expected sequence number, the bytes not
    yet parsed into messages, and segments that arrived before the bytes preceding them."""

    __slots__ = ("next_seq", "buf", "early")

    def __init__(self, seq: int) -> None:
        self.next_seq = seq
        self.buf = b""
        self.early: dict[int, bytes] = {}


def count(path: str) -> dict:
    packets = 0
    vxlan: Counter = Counter()
    bgp: Counter = Counter()
    arp: Counter = Counter()
    streams: dict[tuple, _Direction] = {}
    u16, u32 = struct.Struct("!H").unpack_from, struct.Struct("!I").unpack_from

    def tcp(data, off: int, end: int, key_ends: bytes) -> None:
        sport, dport = u16(data, off)[0], u16(data, off + 2)[0]
        if sport != BGP_PORT and dport != BGP_PORT:
            return
        seq = u32(data, off + 4)[0]
        flags = data[off + 13]
        start = off + (data[off + 12] >> 4) * 4
        key = (key_ends, sport, dport)
        d = streams.get(key)
        if flags & 0x02:                                   # SYN: the stream starts after it
            streams[key] = _Direction((seq + 1) & 0xFFFFFFFF)
            return
        if d is None:                                      # joined mid-stream
            d = streams[key] = _Direction(seq)
        payload = bytes(data[start:end])
        if payload:
            _segment(d, seq, payload, bgp)
        if flags & 0x05:                                   # FIN or RST: the stream ends
            del streams[key]

    def frame(data, off: int, end: int, etype: int, depth: int) -> None:
        while etype in (0x8100, 0x88A8) and off + 4 <= end:
            etype = u16(data, off + 2)[0]
            off += 4
        if etype == 0x0806:
            if off + 8 <= end:
                arp[u16(data, off + 6)[0]] += 1
            return
        if etype == 0x0800:
            if off + 20 > end:
                return
            ihl = (data[off] & 0x0F) * 4
            proto = data[off + 9]
            tot = u16(data, off + 2)[0]
            end = min(end, off + tot)
            ends = bytes(data[off + 12:off + 20])
            off += ihl
        elif etype == 0x86DD:
            if off + 40 > end:
                return
            proto = data[off + 6]
            ends = bytes(data[off + 8:off + 40])
            end = min(end, off + 40 + u16(data, off + 4)[0])
            off += 40
        else:
            return
        if proto == 17 and off + 8 <= end and depth == 0:
            if u16(data, off + 2)[0] in VXLAN_PORTS and off + 30 <= end:
                vni = u32(data, off + 12)[0] >> 8
                inner_type = u16(data, off + 28)[0]
                inner = INNER.get(inner_type, "other")
                if inner_type == 0x0800 and off + 30 + 20 <= end:
                    inner = IP_PROTOS.get(data[off + 39], "ipv4")
                vxlan[(vni, inner)] += 1
                if inner_type == 0x0806:
                    frame(data, off + 30, end, inner_type, 1)
        elif proto == 6 and off + 20 <= end:
            tcp(data, off, end, ends)

    with open(path, "rb") as fh:
        head = fh.read(24)
        order = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        record = struct.Struct(order + "IIII").unpack_from
        ethernet = struct.unpack_from(order + "I", head, 20)[0] if len(head) == 24 else 0
        rest = b""
        while True:
            block = fh.read(BLOCK)
            data = rest + block if rest else block
            if not data:
                break
            view, pos, n = memoryview(data), 0, len(data)
            while pos + 16 <= n:
                caplen = record(data, pos)[2]
                start = pos + 16
                if start + caplen > n:
                    break
                packets += 1
                if ethernet == 1 and caplen >= 14:
                    frame(view, start + 14, start + caplen, u16(data, start + 12)[0], 0)
                pos = start + caplen
            rest = data[pos:]
            if not block:
                break
    return {"packets": packets,
            "vxlan": {f"{vni}/{inner}": n for (vni, inner), n in sorted(vxlan.items())},
            "vxlan_packets": sum(vxlan.values()),
            "bgp_types": {str(t): n for t, n in sorted(bgp.items())},
            "arp_ops": {str(op): n for op, n in sorted(arp.items())}}


def _segment(d: _Direction, seq: int, payload: bytes, bgp: Counter) -> None:
    ahead = (seq - d.next_seq) & 0xFFFFFFFF
    if ahead and ahead < 0x80000000:                       # a gap before it: hold it
        d.early[seq] = payload
        return
    behind = (d.next_seq - seq) & 0xFFFFFFFF
    if behind >= len(payload) and behind:                  # all of it seen already
        return
    payload = payload[behind:]
    d.buf += payload
    d.next_seq = (d.next_seq + len(payload)) & 0xFFFFFFFF
    while d.early:                                         # the gap filled: held segments next
        held = d.early.pop(d.next_seq, None)
        if held is None:
            break
        d.buf += held
        d.next_seq = (d.next_seq + len(held)) & 0xFFFFFFFF
    buf, at, n = d.buf, 0, len(d.buf)
    while n - at >= 19:
        length = buf[at + 16] << 8 | buf[at + 17]
        if length < 19:                                    # not BGP framing: drop the stream's bytes
            at = n
            break
        if n - at < length:
            break
        bgp[buf[at + 18]] += 1
        at += length
    d.buf = buf[at:] if at else buf


if __name__ == "__main__":
    json.dump(count(sys.argv[1]), sys.stdout)
    print()
