"""Capture files written byte by byte: classic pcap in both byte orders and both time resolutions,
and pcapng with several interfaces, per-interface link type, name, time resolution and EPB flags.

Written with :mod:`struct` rather than scapy's writers because the tests need exact control over the
parts scapy does not expose (big-endian headers, nanosecond magic, pcapng ``if_name``/``if_tsresol``
/``epb_flags``) and over the ways a file can be broken.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_CHDLC = 0, 1, 101, 104
LINKTYPE_LOOP, LINKTYPE_SLL, LINKTYPE_SLL2 = 108, 113, 276


@dataclass(frozen=True)
class Record:
    """One packet to write: timestamp in integer nanoseconds, bytes, original length if cut."""

    ts_ns: int
    data: bytes
    wirelen: int | None = None
    iface: int = 0                 # pcapng interface id
    direction: str | None = None   # pcapng epb_flags: 'in' / 'out'


def pcap_bytes(records: Iterable[Record], linktype: int, *, big_endian: bool = False,
               nano: bool = False, snaplen: int = 262144) -> bytes:
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for r in records:
        sec, frac_ns = divmod(r.ts_ns, 1_000_000_000)
        frac = frac_ns if nano else frac_ns // 1000
        out.append(struct.pack(e + "IIII", sec, frac, len(r.data),
                               r.wirelen if r.wirelen is not None else len(r.data)))
        out.append(r.data)
    return b"".join(out)


def write_pcap(path: Path, records: Iterable[Record], linktype: int, **kw: object) -> Path:
    path.write_bytes(pcap_bytes(records, linktype, **kw))  # type: ignore[arg-type]
    return path


def _option(code: int, value: bytes) -> bytes:
    pad = (-len(value)) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\x00" * pad


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


@dataclass(frozen=True)
class Interface:
    linktype: int
    name: str
    tsresol: int = 6          # decimal exponent: 6 = microseconds, 9 = nanoseconds
    snaplen: int = 262144


def pcapng_bytes(interfaces: Sequence[Interface], records: Iterable[Record]) -> bytes:
    """Section header, one IDB per interface (if_name, if_tsresol), one EPB per record."""
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _option(0, b""))
    out = [shb]
    for itf in interfaces:
        opts = _option(2, itf.name.encode()) + _option(9, bytes([itf.tsresol])) + _option(0, b"")
        out.append(_block(1, struct.pack("<HHI", itf.linktype, 0, itf.snaplen) + opts))
    for r in records:
        units = r.ts_ns // (10 ** (9 - interfaces[r.iface].tsresol))
        body = struct.pack("<IIIII", r.iface, units >> 32, units & 0xFFFFFFFF, len(r.data),
                           r.wirelen if r.wirelen is not None else len(r.data))
        body += r.data + b"\x00" * ((-len(r.data)) % 4)
        if r.direction is not None:
            flags = {"in": 1, "out": 2}[r.direction]   # epb_flags bits 0-1: inbound/outbound
            body += _option(2, struct.pack("<I", flags)) + _option(0, b"")
        out.append(_block(6, body))
    return b"".join(out)


def write_pcapng(path: Path, interfaces: Sequence[Interface], records: Iterable[Record]) -> Path:
    path.write_bytes(pcapng_bytes(interfaces, records))
    return path
