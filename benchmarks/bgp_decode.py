"""Micro-benchmark of diag.decode.bgp.decode_message (messages per second, best of 3 runs).

Usage: ``python3 benchmarks/bgp_decode.py``. Messages are built here byte by byte (RFC 4271):
UPDATEs that never repeat (AS_PATH cache cold), a KEEPALIVE, a typical IPv4 UPDATE (ORIGIN,
4-octet AS_PATH of 3, NEXT_HOP, MED, 2 communities, 10 /24 prefixes), the same with ADD-PATH path
ids, an IPv6 MP_REACH UPDATE with 10 prefixes, and a NOTIFICATION. Numbers are for one core of
whatever machine runs it (and whatever else it is running).
"""
from __future__ import annotations

import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diag.decode.bgp import Direction, decode_message  # noqa: E402

MARKER = b"\xff" * 16


def message(mtype: int, body: bytes) -> bytes:
    return MARKER + struct.pack(">HB", 19 + len(body), mtype) + body


def attr(flags: int, code: int, value: bytes) -> bytes:
    size = struct.pack(">H", len(value)) if flags & 0x10 else bytes([len(value)])
    return bytes([flags, code]) + size + value


def update(attrs: bytes, nlri: bytes, withdrawn: bytes = b"") -> bytes:
    return message(2, struct.pack(">H", len(withdrawn)) + withdrawn
                   + struct.pack(">H", len(attrs)) + attrs + nlri)


COMMON = (attr(0x40, 1, b"\x00")
          + attr(0x50, 2, b"\x02\x03" + struct.pack(">3I", 65001, 65002, 65003))
          + attr(0x80, 4, struct.pack(">I", 100))
          + attr(0xC0, 8, struct.pack(">2I", (65001 << 16) | 100, 0xFFFFFF01)))
NLRI4 = b"".join(bytes([24, 10, 1, i]) for i in range(10))
NLRI4_AP = b"".join(struct.pack(">I", i + 1) + bytes([24, 10, 1, i]) for i in range(10))
NLRI6 = b"".join(bytes([48, 0x20, 0x01, 0x0D, 0xB8, 0, i]) for i in range(10))
MP6 = attr(0x90, 14, struct.pack(">HBB", 2, 1, 16) + bytes.fromhex("20010db8" + "00" * 11 + "01")
           + b"\0" + NLRI6)

CASES = [
    ("KEEPALIVE", message(4, b""), Direction(assumed=False), 200_000),
    ("UPDATE ipv4 10 prefixes", update(COMMON + attr(0x40, 3, bytes([10, 0, 0, 1])), NLRI4),
     Direction(assumed=False), 40_000),
    ("UPDATE ipv4 10 prefixes add-path",
     update(COMMON + attr(0x40, 3, bytes([10, 0, 0, 1])), NLRI4_AP),
     Direction(addpath=frozenset({(1, 1)}), assumed=False), 40_000),
    ("UPDATE ipv6 MP_REACH 10 prefixes", update(COMMON + MP6, b""), Direction(assumed=False),
     40_000),
    ("NOTIFICATION cease+text", message(3, b"\x06\x02\x0bmaintenance"), Direction(), 200_000),
]


def distinct_updates(count: int) -> list[bytes]:
    """UPDATEs that share nothing: new prefixes and AS_PATH each time (cache never hits)."""
    out = []
    for k in range(count):
        path = attr(0x50, 2, b"\x02\x03" + struct.pack(">3I", 65001, 70000 + k, 65003))
        attrs = attr(0x40, 1, b"\x00") + path + attr(0x40, 3, bytes([10, 0, 0, 1]))
        nlri = b"".join(bytes([24, 11 + i, (k >> 8) & 0xFF, k & 0xFF]) for i in range(10))
        out.append(update(attrs, nlri))
    return out


def main() -> None:
    msgs = distinct_updates(60_000)
    ctx = Direction(assumed=False)
    best = 0.0
    for rnd in range(3):
        batch = msgs[rnd * 20_000:(rnd + 1) * 20_000]
        start = time.perf_counter()
        for msg in batch:
            decode_message(msg, ctx)
        best = max(best, len(batch) / (time.perf_counter() - start))
    print(f"{'UPDATE ipv4 10 prefixes, cold cache':36s} {best:>12,.0f} msg/s "
          f"({1e6 / best:.2f} us/msg, {best * 10:,.0f} routes/s)")
    for name, msg, ctx, n in CASES:
        decoded = decode_message(msg, ctx)
        assert decoded.row["malformed"] is None, (name, decoded.row["malformed"])
        best = 0.0
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(n):
                decode_message(msg, ctx)
            best = max(best, n / (time.perf_counter() - start))
        routes = len(decoded.routes)
        extra = f", {best * routes:,.0f} routes/s" if routes else ""
        print(f"{name:36s} {best:>12,.0f} msg/s ({1e6 / best:.2f} us/msg{extra})")


if __name__ == "__main__":
    main()
