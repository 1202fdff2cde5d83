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
    # file bytes read so far (a block of read-ahead included): for a progress display
    bytes_read: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Damage:
    """The file is damaged from here on: the stream ends after this item."""

    frame: int
    reason: str


Record = tuple  # (frame, ts, capture_iface, linktype, data, wirelen, flags)
Item = Union[Record, Damage]


def open_capture(path: str | Path) -> tuple[CaptureInfo, Iterator[Item]]:
    """Records one by one (see the module docstring)."""
    info, blocks = open_blocks(path)

    def records() -> Iterator[Item]:
        for block in blocks:
            yield from block.records()
            if block.damage is not None:
                yield block.damage

    return info, records()


def _counted(blocks: Iterator["Block"], fh: BinaryIO, info: CaptureInfo) -> Iterator["Block"]:
    """``blocks``, keeping ``info.bytes_read`` at the file position reached before each."""
    for block in blocks:
        try:
            info.bytes_read = fh.tell()
        except (OSError, ValueError):          # closed at the end of the file
            pass
        yield block


def open_blocks(path: str | Path, max_packets: int = 65536, arrays: bool = True,
                scanner=None, ring=None) -> tuple[CaptureInfo, Iterator["Block"]]:
    """Records in :class:`Block` s of at most ``max_packets``, for vectorised decoding.

    ``arrays=False`` gives the columns as plain lists (:class:`Column`) instead of numpy arrays:
    a small capture decoded one packet at a time then never imports numpy (start-up time).
    ``scanner`` (the compiled core, :mod:`diag.decode.core`) walks the plain records (pcap
    records, pcapng Enhanced Packet Blocks) in C; the columns are then int64/double buffers
    (``memoryview`` / ``array``: ``len``, indexing and ``tolist`` as lists have), and every other
    block and every damaged record is still read by the code below. ``ring`` (with ``scanner``)
    reads into shared memory for forked workers (:class:`_Reader`).
    """
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
        return info, _counted(_pcap_blocks(fh, order, unit, linktype, max_packets, arrays,
                                           scanner, ring), fh, info)
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
        return info, _counted(_pcapng_blocks(fh, info, max_packets, arrays, scanner, ring), fh,
                                info)
    fh.close()
    raise UnusableInput(f"{p}: not a pcap or pcapng file (magic {magic.hex()})",
                        hint="diag reads pcap and pcapng, e.g. from tcpdump -w or dumpcap")


@dataclass
class Block:
    """Consecutive records sharing one buffer: packet ``i`` is ``buf[offsets[i]:offsets[i] + caplens[i]]``.

    Columns are numpy arrays (built once per block, so vectorised decoders can use them);
    ``damage`` is set on the last block of a damaged file.
    """

    first_frame: int
    buf: bytes
    offsets: "object"
    caplens: "object"
    wirelens: "object"
    ts: "object"
    ifaces: "object"
    linktypes: "object"
    flags: "object"
    damage: Damage | None = None

    def __len__(self) -> int:
        return len(self.offsets)

    def records(self) -> Iterator[Record]:
        buf, frame = self.buf, self.first_frame
        for off, cap, wire, ts, iface, lt, fl in zip(
                self.offsets.tolist(), self.caplens.tolist(), self.wirelens.tolist(),
                self.ts.tolist(), self.ifaces.tolist(), self.linktypes.tolist(), self.flags.tolist()):
            yield (frame, ts, iface, lt, buf[off:off + cap], wire, fl)
            frame += 1


class Column(list):
    """A block column as a plain list, with numpy's ``tolist`` so readers need not care."""

    def tolist(self) -> list:
        return self


def _block(first_frame: int, buf: bytes, cols: list[list], damage: Damage | None,
           arrays: bool = True) -> Block:
    offsets, caplens, wirelens, secs, fracs, units, ifaces, linktypes, flags = cols
    if not arrays:
        ts = Column(float(s) + float(f) * u for s, f, u in zip(secs, fracs, units))
        return Block(first_frame, buf, Column(offsets), Column(caplens), Column(wirelens), ts,
                     Column(ifaces), Column(linktypes), Column(flags), damage)
    import numpy as np

    ts = np.asarray(secs, dtype=np.float64) + np.asarray(fracs, dtype=np.float64) * np.asarray(
        units, dtype=np.float64)
    return Block(first_frame, buf, np.asarray(offsets, dtype=np.int64),
                 np.asarray(caplens, dtype=np.int64), np.asarray(wirelens, dtype=np.int64), ts,
                 np.asarray(ifaces, dtype=np.int64), np.asarray(linktypes, dtype=np.int64),
                 np.asarray(flags, dtype=np.int64), damage)


def _pcap_block(first_frame: int, buf: bytes, headers: list[int], order: str, unit: float,
                linktype: int, damage: Damage | None, arrays: bool = True) -> Block:
    """Record headers read column-wise with numpy from their offsets."""
    if not arrays:
        unpack = struct.Struct(order + "IIII").unpack_from
        heads = [unpack(buf, pos) for pos in headers]
        count = len(headers)
        return Block(first_frame, buf, Column(pos + 16 for pos in headers),
                     Column(h[2] for h in heads), Column(h[3] for h in heads),
                     Column(float(h[0]) + float(h[1]) * unit for h in heads), Column([0] * count),
                     Column([linktype] * count), Column([0] * count), damage)
    import numpy as np

    count = len(headers)
    pos = np.asarray(headers, dtype=np.int64)
    raw = np.frombuffer(buf, dtype=np.uint8)
    idx = pos[:, None] + np.arange(16)[None, :]
    words = raw[idx].reshape(count, 16).copy().view(np.dtype(order + "u4")).reshape(count, 4) \
        if count else np.zeros((0, 4), dtype=np.uint32)
    secs, fracs = words[:, 0].astype(np.float64), words[:, 1].astype(np.float64)
    zeros = np.zeros(count, dtype=np.int64)
    return Block(first_frame, buf, pos + 16, words[:, 2].astype(np.int64),
                 words[:, 3].astype(np.int64), secs + fracs * unit, zeros,
                 np.full(count, linktype, dtype=np.int64), zeros.copy(), damage)


class _Reader:
    """The compiled path's reads: into two buffers used in turn (a block read ahead keeps its
    bytes while the next one is read), without a fresh 4 MiB allocation, page faults and a
    copy of the whole buffer per read as ``carry + fh.read()`` costs. ``read(carry)`` returns
    ``(buf, got)``: a memoryview of the carried bytes followed by what was read, and whether
    anything was read.

    With ``ring`` (:class:`diag.decode.sharedread.Ring`, for ``--workers N``), each read goes
    into the ring's next slot, which forked workers see, when it fits there (a record longer than
    a slot goes to the private buffers); ``ring.note(slot, start)`` then says where the buffer
    lies (its slot, None for a private buffer, and the file offset of its first byte)."""

    def __init__(self, fh: BinaryIO, ring=None) -> None:
        self.fh = fh
        self.ring = ring
        self.buffers = [bytearray(READ_BLOCK + (1 << 16)), bytearray(READ_BLOCK + (1 << 16))]
        self.turn = 0

    def __call__(self, carry) -> tuple[memoryview, bool]:
        kept = len(carry)
        slot, view = (None, None) if self.ring is None else self.ring.take(kept + READ_BLOCK)
        if view is None:
            self.turn ^= 1
            buf = self.buffers[self.turn]
            if len(buf) < kept + READ_BLOCK:      # a record longer than the buffer: grow it
                buf = self.buffers[self.turn] = bytearray(kept + READ_BLOCK)
            view = memoryview(buf)
        view[:kept] = carry
        got = self.fh.readinto(view[kept:kept + READ_BLOCK])
        if self.ring is not None:
            self.ring.note(slot, self.fh.tell() - kept - got)
        return view[:kept + got], got > 0


def _scanned_block(first_frame: int, buf: bytes, cols: tuple, damage: Damage | None) -> Block:
    """A block from the compiled scanner's columns (int64 / double buffers)."""
    offsets, caplens, wirelens, ts, ifaces, linktypes, flags = (
        memoryview(c).cast("d" if i == 3 else "q") for i, c in enumerate(cols))
    return Block(first_frame, buf, offsets, caplens, wirelens, ts, ifaces, linktypes, flags,
                 damage)


def _pcap_blocks(fh: BinaryIO, order: str, unit: float, linktype: int,
                 max_packets: int, arrays: bool = True, scanner=None,
                 ring=None) -> Iterator[Block]:
    unpack = struct.Struct(order + "IIII").unpack_from
    caplen_at = struct.Struct(order + "I").unpack_from
    frame = 1
    with fh:
        carry = b""
        read = _Reader(fh, ring) if scanner is not None else None
        while True:
            if read is None:
                more = fh.read(READ_BLOCK)
                buf = carry + more if carry else more
            else:
                buf, more = read(carry)
            n = len(buf)
            pos = 0
            damage = None
            while True:
                offsets: list[int] = []
                append = offsets.append
                count = 0
                if scanner is not None:      # the same walk in C, up to the first odd record
                    pos, *scanned = scanner.scan_pcap(buf, pos, max_packets, order == ">", unit,
                                                      linktype)
                    count = len(scanned[0]) // 8
                while pos + 16 <= n and count < max_packets:
                    caplen = caplen_at(buf, pos + 8)[0]
                    if caplen > MAX_RECORD:
                        damage = Damage(frame + count, f"corrupt record header (captured length {caplen})")
                        break
                    nxt = pos + 16 + caplen
                    if nxt > n:
                        break
                    if scanner is not None:
                        break                # records the scanner left: only damage is left
                    append(pos)
                    pos = nxt
                    count += 1
                if not more and damage is None and pos < n and count < max_packets:
                    damage = (Damage(frame + count, "truncated record header at end of file")
                              if n - pos < 16 else
                              Damage(frame + count, f"truncated record: {n - pos - 16} of "
                                     f"{unpack(buf, pos)[2]} bytes"))
                if count or damage:
                    yield (_scanned_block(frame, buf, scanned, damage) if scanner is not None
                           else _pcap_block(frame, buf, offsets, order, unit, linktype, damage,
                                            arrays))
                    frame += count
                if damage or count < max_packets:
                    break
            if damage or not more:
                return
            carry = buf[pos:]


def _pcapng_blocks(fh: BinaryIO, info: CaptureInfo, max_packets: int,
                   arrays: bool = True, scanner=None, ring=None) -> Iterator[Block]:
    from array import array

    frame = 1
    scanned_for: tuple = (None, -1)      # the interface table handed to the scanner, and for what
    order = "<" if info.byte_order == "little" else ">"
    section_ifaces: list[Interface] = []
    with fh:
        carry = b""
        read = _Reader(fh, ring) if scanner is not None else None
        while True:
            if read is None:
                more = fh.read(READ_BLOCK)
                buf = carry + more if carry else more
            else:
                buf, more = read(carry)
            n = len(buf)
            pos = 0
            while True:
                cols: list = ([[] for _ in range(9)] if scanner is None else
                              [array(t) for t in ("q", "q", "q", "Q", "q", "d", "q", "q", "q")])
                offsets, caplens, wirelens, his, los, units, ifaces, linktypes, flags = cols
                damage = None
                while pos + 12 <= n and len(offsets) < max_packets:
                    if scanner is not None:  # runs of Enhanced Packet Blocks in C
                        if scanned_for[0] is not section_ifaces or \
                                scanned_for[1] != len(section_ifaces):
                            table = tuple((i.capture_iface, i.linktype, i.ts_unit)
                                          for i in section_ifaces)
                            scanned_for = (section_ifaces, len(section_ifaces))
                        before = pos
                        pos, *scanned = scanner.scan_pcapng(
                            buf, pos, max_packets - len(offsets), order == ">", table)
                        if pos != before:
                            # columns: offsets, caplens, wirelens, his, units, ifaces, lts, flags
                            for col, part in zip((offsets, caplens, wirelens, his, units, ifaces,
                                                  linktypes, flags), scanned):
                                col.frombytes(part)
                            los.frombytes(bytes(len(scanned[0])))
                            continue
                    btype_raw = buf[pos:pos + 4]
                    if btype_raw == PCAPNG_SHB:
                        bom = buf[pos + 8:pos + 12]
                        if bom == b"\x4d\x3c\x2b\x1a":
                            order = "<"
                        elif bom == b"\x1a\x2b\x3c\x4d":
                            order = ">"
                        else:
                            damage = Damage(frame + len(offsets), "section header with a bad byte-order magic")
                            break
                        section_ifaces = []
                    btype, blen = struct.unpack_from(order + "II", buf, pos)
                    if blen < 12 or blen % 4 or blen > MAX_RECORD:
                        damage = Damage(frame + len(offsets), f"corrupt block (type {btype:#x}, length {blen})")
                        break
                    if pos + blen > n:
                        break
                    body, body_end = pos + 8, pos + blen - 4
                    pos += blen
                    if btype == 6 or btype == 2:   # Enhanced Packet Block / obsolete Packet Block
                        if body_end - body < 20:
                            damage = Damage(frame + len(offsets), "enhanced packet block too short"
                                            if btype == 6 else "packet block too short")
                            break
                        if btype == 6:
                            iface_id, ts_hi, ts_lo, caplen, wirelen = struct.unpack_from(
                                order + "IIIII", buf, body)
                        else:
                            iface_id, _drops, ts_hi, ts_lo, caplen, wirelen = struct.unpack_from(
                                order + "HHIIII", buf, body)
                        data_start = body + 20
                        if data_start + caplen > body_end:
                            damage = Damage(frame + len(offsets), "captured length past the end of its block")
                            break
                        if iface_id >= len(section_ifaces):
                            damage = Damage(frame + len(offsets), "packet block names an undeclared interface")
                            break
                        iface = section_ifaces[iface_id]
                        fl = 0
                        opt = data_start + ((caplen + 3) & ~3)
                        if btype == 6 and opt < body_end:
                            fl = _epb_flags(buf, opt, body_end, order)
                        offsets.append(data_start)
                        caplens.append(caplen)
                        wirelens.append(wirelen)
                        his.append((ts_hi << 32) | ts_lo)
                        los.append(0)
                        units.append(iface.ts_unit)
                        ifaces.append(iface.capture_iface)
                        linktypes.append(iface.linktype)
                        flags.append(fl)
                    elif btype == 1:  # Interface Description Block
                        if body_end - body < 8:
                            damage = Damage(frame + len(offsets),
                                            "interface description block too short")
                            break
                        linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", buf, body)
                        iface = Interface(len(info.interfaces), linktype, snaplen=snaplen)
                        _idb_options(iface, buf, body + 8, body_end, order)
                        info.interfaces.append(iface)
                        section_ifaces.append(iface)
                    elif btype == 3:  # Simple Packet Block: interface 0, no timestamp
                        if not section_ifaces:
                            damage = Damage(frame + len(offsets), "simple packet block before any interface")
                            break
                        if body_end - body < 4:
                            damage = Damage(frame + len(offsets), "simple packet block too short")
                            break
                        (wirelen,) = struct.unpack_from(order + "I", buf, body)
                        iface = section_ifaces[0]
                        caplen = min(wirelen, body_end - body - 4,
                                     iface.snaplen if iface.snaplen else wirelen)
                        offsets.append(body + 4)
                        caplens.append(caplen)
                        wirelens.append(wirelen)
                        his.append(0)
                        los.append(0)
                        units.append(0.0)
                        ifaces.append(iface.capture_iface)
                        linktypes.append(iface.linktype)
                        flags.append(0)
                    # other blocks (NRB, ISB, DSB, custom) carry nothing diag needs
                if not more and damage is None and pos < n and len(offsets) < max_packets:
                    damage = Damage(frame + len(offsets), "truncated block at end of file")
                count = len(offsets)
                if count or damage:
                    if scanner is not None:
                        ts = scanner.pcapng_ts(los, his, units)
                        yield Block(frame, buf, offsets, caplens, wirelens,
                                    memoryview(ts).cast("d"), ifaces, linktypes, flags, damage)
                    else:
                        # timestamps: units * (hi<<32|lo) — kept as (value, 0, unit) columns
                        yield _block(frame, buf, [offsets, caplens, wirelens, los, his, units,
                                                  ifaces, linktypes, flags], damage, arrays)
                    frame += count
                if damage or count < max_packets:
                    break
            if damage or not more:
                return
            carry = buf[pos:]


def _options(buf: bytes, pos: int, end: int, order: str) -> Iterator[tuple[int, bytes]]:
    fmt = order + "HH"
    while pos + 4 <= end:
        code, length = struct.unpack_from(fmt, buf, pos)
        if code == 0:
            return
        value = bytes(buf[pos + 4:pos + 4 + length])     # buf may be a memoryview
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
