"""Streaming capture readers: pcap and pcapng, in constant memory.

Contract::

    info, records = open_capture(path)
    for frame, ts, capture_iface, linktype, data, wirelen, flags in records: ...

* ``frame`` is 1-based (as Wireshark numbers frames); ``ts`` is float seconds since the epoch;
  ``capture_iface`` is the pcapng interface id (0 for pcap); ``data`` the captured bytes;
  ``wirelen`` the original length; ``flags`` the pcapng ``epb_flags`` word (0 when absent).
* ``info`` (:class:`CaptureInfo`) lists the interfaces; it grows while a pcapng file is read (an
  Interface Description Block may come after packets of another interface).
* An unreadable file (empty, garbage, truncated file header, unknown format or link type) raises
  :class:`diag.errors.UnusableInput` before the first record. A damaged record later in the file
  ends the stream with a :class:`Damage` item (frame number, reason) instead of an exception, so
  that everything before it is kept.

pcap: both byte orders, micro- and nanosecond magic. pcapng: SHB (several sections, either byte
order), IDB (``if_name``, ``if_description``, ``if_tsresol``), EPB (with ``epb_flags`` direction),
SPB and the obsolete PB; other blocks are skipped. Files are read in large blocks; no record is
ever held beyond its own iteration.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator, Union

from diag.errors import UnusableInput

READ_BLOCK = 4 << 20
MAX_RECORD = 16 << 20            # a record larger than this is a damaged file, not a packet

LINKTYPE_NAMES = {
    0: "NULL", 1: "ETHERNET", 12: "RAW", 14: "RAW", 101: "RAW", 104: "C_HDLC", 108: "LOOP",
    113: "LINUX_SLL", 228: "IPV4", 229: "IPV6", 276: "LINUX_SLL2",
}
SUPPORTED_LINKTYPES = frozenset(LINKTYPE_NAMES)

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


@dataclass
class Interface:
    capture_iface: int
    linktype: int
    name: str | None = None
    description: str | None = None
    snaplen: int = 0
    ts_unit: float = 1e-6

    @property
    def linktype_name(self) -> str:
        return LINKTYPE_NAMES.get(self.linktype, f"LINKTYPE_{self.linktype}")


@dataclass
class CaptureInfo:
    path: str
    format: str                      # 'pcap' or 'pcapng'
    byte_order: str                  # 'little' or 'big' (of the first section)
    ts_resolution: str               # 'us', 'ns' or 'pcapng' (per interface)
    interfaces: list[Interface] = field(default_factory=list)


@dataclass(frozen=True)
class Damage:
    """The file is damaged from here on: the stream ends after this item."""

    frame: int
    reason: str


Record = tuple  # (frame, ts, capture_iface, linktype, data, wirelen, flags)
Item = Union[Record, Damage]


def open_capture(path: str | Path) -> tuple[CaptureInfo, Iterator[Item]]:
    p = Path(path)
    try:
        fh = open(p, "rb")
    except FileNotFoundError:
        raise UnusableInput(f"{p}: no such file") from None
    except IsADirectoryError:
        raise UnusableInput(f"{p}: is a directory, not a capture file") from None
    except OSError as err:
        raise UnusableInput(f"{p}: cannot open: {err.strerror}") from None
    head = fh.read(24)
    if not head:
        fh.close()
        raise UnusableInput(f"{p}: empty file, not a capture")
    magic = head[:4]
    if magic in PCAP_MAGICS:
        if len(head) < 24:
            fh.close()
            raise UnusableInput(f"{p}: truncated pcap file header ({len(head)} of 24 bytes)")
        order, unit = PCAP_MAGICS[magic]
        _ver_major, _ver_minor, _zone, _sigfigs, snaplen, network = struct.unpack(
            order + "HHiIII", head[4:24])
        linktype = network & 0x0FFFFFFF if network & 0xF0000000 else network & 0xFFFF
        if linktype not in SUPPORTED_LINKTYPES:
            fh.close()
            raise UnusableInput(f"{p}: unsupported link type {linktype}",
                                hint="supported: " + ", ".join(
                                    f"{n} ({k})" for k, n in sorted(LINKTYPE_NAMES.items())))
        info = CaptureInfo(str(p), "pcap", "little" if order == "<" else "big",
                           "ns" if unit == 1e-9 else "us",
                           [Interface(0, linktype, snaplen=snaplen, ts_unit=unit)])
        return info, _pcap_records(fh, order, unit, linktype)
    if magic == PCAPNG_SHB:
        if len(head) < 12:
            fh.close()
            raise UnusableInput(f"{p}: truncated pcapng section header")
        bom = head[8:12]
        if bom == b"\x4d\x3c\x2b\x1a":
            order = "<"
        elif bom == b"\x1a\x2b\x3c\x4d":
            order = ">"
        else:
            fh.close()
            raise UnusableInput(f"{p}: pcapng section header with a bad byte-order magic")
        info = CaptureInfo(str(p), "pcapng", "little" if order == "<" else "big", "pcapng")
        fh.seek(0)
        return info, _pcapng_records(fh, info)
    fh.close()
    raise UnusableInput(f"{p}: not a pcap or pcapng file (magic {magic.hex()})",
                        hint="diag reads pcap and pcapng, e.g. from tcpdump -w or dumpcap")


class _Blocks:
    """A sliding window over a file, read in large blocks."""

    __slots__ = ("fh", "buf", "pos", "eof")

    def __init__(self, fh: BinaryIO, initial: bytes = b"") -> None:
        self.fh, self.buf, self.pos, self.eof = fh, initial, 0, False

    def ensure(self, n: int) -> bool:
        """Make ``n`` bytes available at ``pos``; False when the file ends first."""
        if len(self.buf) - self.pos >= n:
            return True
        while not self.eof and len(self.buf) - self.pos < n:
            more = self.fh.read(max(READ_BLOCK, n))
            if not more:
                self.eof = True
                break
            self.buf = self.buf[self.pos:] + more
            self.pos = 0
        return len(self.buf) - self.pos >= n


def _pcap_records(fh: BinaryIO, order: str, unit: float, linktype: int) -> Iterator[Item]:
    rec = struct.Struct(order + "IIII")
    unpack = rec.unpack_from
    frame = 0
    with fh:
        blocks = _Blocks(fh)
        while True:
            if not blocks.ensure(16):
                if len(blocks.buf) - blocks.pos:
                    yield Damage(frame + 1, "truncated record header at end of file")
                return
            buf, pos = blocks.buf, blocks.pos
            sec, frac, caplen, wirelen = unpack(buf, pos)
            if caplen > MAX_RECORD:
                yield Damage(frame + 1, f"corrupt record header (captured length {caplen})")
                return
            end = pos + 16 + caplen
            if end > len(buf):
                if not blocks.ensure(16 + caplen):
                    yield Damage(frame + 1, f"truncated record: {len(blocks.buf) - blocks.pos - 16}"
                                 f" of {caplen} bytes")
                    return
                buf, pos = blocks.buf, blocks.pos
                end = pos + 16 + caplen
            frame += 1
            blocks.pos = end
            yield (frame, sec + frac * unit, 0, linktype, buf[pos + 16:end], wirelen, 0)


def _pcapng_records(fh: BinaryIO, info: CaptureInfo) -> Iterator[Item]:
    frame = 0
    order = "<" if info.byte_order == "little" else ">"
    section_ifaces: list[Interface] = []
    with fh:
        blocks = _Blocks(fh)
        while True:
            if not blocks.ensure(12):
                if len(blocks.buf) - blocks.pos:
                    yield Damage(frame + 1, "truncated block header at end of file")
                return
            buf, pos = blocks.buf, blocks.pos
            btype_raw = buf[pos:pos + 4]
            if btype_raw == PCAPNG_SHB:
                bom = buf[pos + 8:pos + 12]
                if bom == b"\x4d\x3c\x2b\x1a":
                    order = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    order = ">"
                else:
                    yield Damage(frame + 1, "section header with a bad byte-order magic")
                    return
                section_ifaces = []
            btype, blen = struct.unpack_from(order + "II", buf, pos)
            if blen < 12 or blen % 4 or blen > MAX_RECORD:
                yield Damage(frame + 1, f"corrupt block (type {btype:#x}, length {blen})")
                return
            if not blocks.ensure(blen):
                yield Damage(frame + 1, f"truncated block (type {btype:#x}, {blen} bytes)")
                return
            buf, pos = blocks.buf, blocks.pos
            blocks.pos = pos + blen
            body = pos + 8
            body_end = pos + blen - 4
            if btype == 6:  # Enhanced Packet Block
                if body_end - body < 20:
                    yield Damage(frame + 1, "enhanced packet block too short")
                    return
                iface_id, ts_hi, ts_lo, caplen, wirelen = struct.unpack_from(order + "IIIII", buf, body)
                data_start = body + 20
                if data_start + caplen > body_end or iface_id >= len(section_ifaces):
                    frame += 1
                    reason = ("packet block names an undeclared interface" if caplen <= body_end - data_start
                              else "captured length past the end of its block")
                    yield Damage(frame, reason)
                    return
                iface = section_ifaces[iface_id]
                flags = 0
                opt = data_start + ((caplen + 3) & ~3)
                if opt < body_end:
                    flags = _epb_flags(buf, opt, body_end, order)
                frame += 1
                yield (frame, ((ts_hi << 32) | ts_lo) * iface.ts_unit, iface.capture_iface,
                       iface.linktype, buf[data_start:data_start + caplen], wirelen, flags)
            elif btype == 1:  # Interface Description Block
                linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", buf, body)
                iface = Interface(len(info.interfaces), linktype, snaplen=snaplen)
                _idb_options(iface, buf, body + 8, body_end, order)
                if linktype not in SUPPORTED_LINKTYPES:
                    yield Damage(frame + 1, f"interface {iface.capture_iface} has unsupported"
                                 f" link type {linktype}")
                info.interfaces.append(iface)
                section_ifaces.append(iface)
            elif btype == 3:  # Simple Packet Block: interface 0, no timestamp
                if not section_ifaces:
                    yield Damage(frame + 1, "simple packet block before any interface")
                    return
                (wirelen,) = struct.unpack_from(order + "I", buf, body)
                iface = section_ifaces[0]
                caplen = min(wirelen, body_end - body - 4,
                             iface.snaplen if iface.snaplen else wirelen)
                frame += 1
                yield (frame, 0.0, iface.capture_iface, iface.linktype,
                       buf[body + 4:body + 4 + caplen], wirelen, 0)
            elif btype == 2:  # obsolete Packet Block
                iface_id, _drops, ts_hi, ts_lo, caplen, wirelen = struct.unpack_from(
                    order + "HHIIII", buf, body)
                if iface_id >= len(section_ifaces) or body + 20 + caplen > body_end:
                    frame += 1
                    yield Damage(frame, "damaged packet block")
                    return
                iface = section_ifaces[iface_id]
                frame += 1
                yield (frame, ((ts_hi << 32) | ts_lo) * iface.ts_unit, iface.capture_iface,
                       iface.linktype, buf[body + 20:body + 20 + caplen], wirelen, 0)
            # other blocks (NRB, ISB, DSB, custom) carry nothing diag needs


def _options(buf: bytes, pos: int, end: int, order: str) -> Iterator[tuple[int, bytes]]:
    fmt = order + "HH"
    while pos + 4 <= end:
        code, length = struct.unpack_from(fmt, buf, pos)
        if code == 0:
            return
        value = buf[pos + 4:pos + 4 + length]
        if pos + 4 + length > end:
            return
        yield code, value
        pos += 4 + ((length + 3) & ~3)


def _idb_options(iface: Interface, buf: bytes, pos: int, end: int, order: str) -> None:
    for code, value in _options(buf, pos, end, order):
        if code == 2:
            iface.name = value.rstrip(b"\0").decode("utf-8", "replace")
        elif code == 3:
            iface.description = value.rstrip(b"\0").decode("utf-8", "replace")
        elif code == 9 and value:
            res = value[0]
            iface.ts_unit = 2.0 ** -(res & 0x7F) if res & 0x80 else 10.0 ** -res


def _epb_flags(buf: bytes, pos: int, end: int, order: str) -> int:
    for code, value in _options(buf, pos, end, order):
        if code == 2 and len(value) == 4:
            return struct.unpack(order + "I", value)[0]
    return 0
