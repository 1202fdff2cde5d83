"""Offline capture decoding: a pcap/pcapng file -> pandas tables, streamed in chunks.

The public API (documented in docs/api.md)::

    from diag.decode import DecodeOptions, decode_file, iter_decode

    opts = DecodeOptions(bgp_ports=(179, 1790))        # 179, 4789/8472 and 6081 are always on
    tables = decode_file("capture.pcap", opts)          # whole file -> Tables of DataFrames
    for chunk in iter_decode("big.pcapng", opts, chunk_packets=65536):
        chunk.packets, chunk.bgp_messages, chunk.bgp_routes, chunk.tunnels, chunk.arp

    for rows in iter_rows("x.pcap", opts):   # lower level: row buffers (RowChunk), no pandas
        to_tables(rows)                       # the Tables iter_decode would have yielded

Tables (one row per ...): ``packets`` (captured frame), ``bgp_messages`` (BGP message, at the frame
where its last byte arrived), ``bgp_routes`` (prefix announced or withdrawn, with its attributes and
session), ``tunnels`` (encapsulation layer: VXLAN/GENEVE with outer and inner addresses), ``arp``
(ARP packet), ``stream_events`` (TCP reassembly gaps, BGP framing errors, TCP control segments
of BGP connections), ``icmp`` (ICMP/ICMPv6 error: type, announced MTU, the packet it quotes),
``fragments`` (IP datagram reassembled from fragments, or given up on), ``lldp`` (LLDPDU: the
neighbour's chassis, port and name), ``interfaces`` (the capture's interfaces). Column lists
are in :mod:`diag.decode.frames` and docs/api.md.

Small files (under ``SMALL_CAPTURE_BYTES``) are decoded by the per-packet decoder alone, and
``diag pcap`` summarises RowChunks, so a small capture is summarised without importing numpy or
pandas (start-up time).

Memory stays flat: records are read in blocks, rows are buffered for one chunk only (a chunk is
yielded before the next block is decoded), TCP reassembly holds at most a bounded amount of
out-of-order data per direction, and a BGP connection whose directions have all closed keeps no
frame timestamps. An unusable file raises :class:`diag.errors.UnusableInput` before the first
chunk; a damaged record later ends the file with a ``malformed`` packets row, keeping everything
before it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from diag.decode.bgpflow import MESSAGE_ROW, ROUTE_ROW
from diag.decode.capture import SUPPORTED_LINKTYPES, CaptureInfo, open_blocks
from diag.decode.rows import RowChunk
from diag.errors import UnusableInput
from diag.decode.frames import (ARP_COLUMNS, FRAGMENT_COLUMNS, ICMP_COLUMNS, PACKET_COLUMNS,
                                STREAM_EVENT_COLUMNS, TUNNEL_COLUMNS, PacketDecoder)
from diag.decode.lldp import LLDP_COLUMNS

DEFAULT_BGP_PORTS = (179,)
DEFAULT_VXLAN_PORTS = (4789, 8472)
DEFAULT_GENEVE_PORTS = (6081,)
INTERFACE_COLUMNS = ("capture_iface", "linktype", "linktype_name", "name", "description", "snaplen")
# below this file size the per-packet decoder alone is used: numpy's import (~70 ms) costs more
# than the vectorised pass saves on a few thousand packets
SMALL_CAPTURE_BYTES = 1 << 20

__all__ = ["DecodeOptions", "Tables", "RowChunk", "decode_file", "iter_decode", "iter_rows",
           "to_tables", "CaptureInfo"]


@dataclass(frozen=True)
class DecodeOptions:
    """Which ports carry what. The defaults are always included; extra ports add to them."""

    bgp_ports: tuple[int, ...] = DEFAULT_BGP_PORTS
    vxlan_ports: tuple[int, ...] = DEFAULT_VXLAN_PORTS
    geneve_ports: tuple[int, ...] = DEFAULT_GENEVE_PORTS

    def __post_init__(self) -> None:
        for name, default in (("bgp_ports", DEFAULT_BGP_PORTS), ("vxlan_ports", DEFAULT_VXLAN_PORTS),
                              ("geneve_ports", DEFAULT_GENEVE_PORTS)):
            ports = tuple(sorted(set(default) | set(getattr(self, name))))
            for port in ports:
                if not 0 < int(port) < 65536:
                    from diag.errors import UsageError
                    raise UsageError(f"port {port} out of range 1-65535")
            object.__setattr__(self, name, ports)


@dataclass
class Tables:
    packets: "object"
    bgp_messages: "object"
    bgp_routes: "object"
    tunnels: "object"
    arp: "object"
    stream_events: "object"
    interfaces: "object"
    icmp: "object" = None
    fragments: "object" = None
    lldp: "object" = None
    info: CaptureInfo | None = field(default=None, repr=False)
    rows: RowChunk | None = field(default=None, repr=False)     # what the tables were built from

    NAMES = ("packets", "bgp_messages", "bgp_routes", "tunnels", "arp", "stream_events",
             "interfaces", "icmp", "fragments", "lldp")

    def items(self):
        return [(name, getattr(self, name)) for name in self.NAMES]


def iter_decode(path: str | Path, options: DecodeOptions | None = None,
                chunk_packets: int = 65536, vectorize: bool | None = None,
                decoder: str | None = None) -> Iterator[Tables]:
    """Decode ``path`` and yield :class:`Tables` of at most ``chunk_packets`` captured frames
    each. A block is one read of the capture (``capture.READ_BLOCK``, 4 MiB) or ``chunk_packets``
    records of it; a chunk holds one block with the reference decoder, up to
    ``core.CHUNK_BLOCKS`` (2) with the compiled core.

    ``decoder``: ``"compiled"`` (the C core, :mod:`diag.decode.core`), ``"python"`` (the
    reference), or None: the compiled core when it is built (and ``DIAG_DECODER`` is not
    ``python``) unless ``vectorize`` is given. ``vectorize=False`` decodes every frame with the
    per-packet reference decoder, True with its numpy pass; None (default) vectorises files of
    ``SMALL_CAPTURE_BYTES`` or more. The results are the same — tests compare them all.
    """
    from diag.decode.gcpolicy import fewer_collections

    chunks = iter_rows(path, options, chunk_packets, vectorize, decoder=decoder)
    while True:
        with fewer_collections():          # the decode and the tables; not the caller's code
            chunk = next(chunks, None)
            if chunk is None:
                return
            tables = to_tables(chunk)
            chunk.tables_made()
        del chunk
        yield tables
        del tables           # not held while the next chunk is decoded


def use_compiled(vectorize: bool | None = None, decoder: str | None = None) -> bool:
    """Whether :func:`iter_rows` decodes with the compiled core (see :func:`iter_decode`)."""
    from diag.decode import core

    if decoder == "python":
        return False
    if decoder == "compiled":
        if core.load() is None:
            raise RuntimeError(f"the compiled decoder is not available: {core.decoder_name()}")
        return True
    if decoder is not None:
        raise ValueError(f"decoder must be 'compiled', 'python' or None, not {decoder!r}")
    return vectorize is None and core.load() is not None


def iter_rows(path: str | Path, options: DecodeOptions | None = None,
              chunk_packets: int = 65536, vectorize: bool | None = None,
              tables: bool = True, decoder: str | None = None) -> Iterator[RowChunk]:
    """The lower level of :func:`iter_decode`: :class:`RowChunk` s (row buffers, no pandas).

    A small file (``vectorize=None`` and under ``SMALL_CAPTURE_BYTES``) is decoded without numpy.
    ``tables=False`` says only the summary will be made of the chunks (:func:`to_tables` then
    refuses them; the compiled core skips building the table columns).
    """
    options = options or DecodeOptions()
    if use_compiled(vectorize, decoder):
        from diag.decode.core import iter_core

        yield from iter_core(path, options, chunk_packets, tables)
        return
    if vectorize is None:
        try:
            vectorize = Path(path).stat().st_size >= SMALL_CAPTURE_BYTES
        except OSError:
            vectorize = False       # open_blocks reports the problem
    info, blocks = open_blocks(path, chunk_packets, arrays=vectorize)
    names: dict[int, str | None] = {}
    decoder = PacketDecoder(options.bgp_ports, options.vxlan_ports, options.geneve_ports, names)
    # one raw block of lookahead (a few MiB of file bytes), not one decoded chunk: a chunk is
    # yielded as soon as its block is decoded unless it is the last, to which end-of-capture
    # flushing adds (holding the decoded rows back instead cost a chunk's rows of peak memory)
    ahead = checked_blocks(path, info, blocks, names)
    block = next(ahead, None)
    fast = None
    while block is not None:
        fast = decode_block(decoder, block, vectorize)
        if len(block):
            decoder.last_frame = block.first_frame + len(block) - 1
            decoder.last_ts = float(block.ts[-1])
        if block.damage is not None:
            decoder.damaged(block.damage.frame, block.damage.reason)
        block = next(ahead, None)
        if block is not None:
            yield RowChunk(decoder.take(), fast, info)
    decoder.finish()
    yield RowChunk(decoder.take(), fast, info)


def checked_blocks(path, info: CaptureInfo, blocks, names: dict[int, str | None]):
    """Interface names (into ``names``) and the link-type check, as each block is read."""
    seen = False
    for block in blocks:
        names.update({i.capture_iface: i.name for i in info.interfaces})
        if not seen and info.interfaces:
            seen = True
            if not any(i.linktype in SUPPORTED_LINKTYPES for i in info.interfaces):
                raise UnusableInput(f"{path}: no interface with a supported link type "
                                    f"({', '.join(i.linktype_name for i in info.interfaces)})")
        yield block


def decode_block(decoder: PacketDecoder, block, vectorize: bool):
    """One block through the vectorised pass and the per-packet decoder (or the latter alone);
    returns the fast rows or None."""
    fast = None
    if vectorize and len(block):
        from diag.decode.batch import split_block

        fast = split_block(block, decoder.bgp_ports, decoder.vxlan_ports,
                           decoder.geneve_ports, decoder.iface_names)
        _per_packet(decoder, block, fast)
    else:
        packet = decoder.packet
        for rec in block.records():
            packet(*rec)
    return fast


def _per_packet(decoder: PacketDecoder, block, fast) -> None:
    """Frames the vectorised pass left over, and BGP payloads, in frame order."""
    import numpy as np

    slow, bgp_idx = fast.slow, fast.bgp_index
    if not len(bgp_idx):
        todo = [(i, -1) for i in slow.tolist()]
    else:
        idx = np.concatenate([slow, bgp_idx])
        tag = np.concatenate([np.full(len(slow), -1), np.arange(len(bgp_idx))])
        order = np.argsort(idx, kind="stable")
        todo = list(zip(idx[order].tolist(), tag[order].tolist()))
    if not todo:
        return
    buf, first = block.buf, block.first_frame
    offs, caps = block.offsets.tolist(), block.caplens.tolist()
    ts, ifaces, lts = block.ts.tolist(), block.ifaces.tolist(), block.linktypes.tolist()
    wires, flags = block.wirelens.tolist(), block.flags.tolist()
    src, sport, dst, dport = (fast.bgp_src.tolist(), fast.bgp_sport.tolist(),
                              fast.bgp_dst.tolist(), fast.bgp_dport.tolist())
    seq, tflags = fast.bgp_seq.tolist(), fast.bgp_flags.tolist()
    start, end = fast.bgp_start.tolist(), fast.bgp_end.tolist()
    packet, segment = decoder.packet, decoder.bgp.segment
    for i, k in todo:
        if k < 0:
            off = offs[i]
            packet(first + i, ts[i], ifaces[i], lts[i], buf[off:off + caps[i]], wires[i], flags[i])
        else:
            segment(src[k], sport[k], dst[k], dport[k], seq[k], tflags[k],
                    buf[start[k]:end[k]], first + i, ts[i], 0)


def decode_file(path: str | Path, options: DecodeOptions | None = None,
                decoder: str | None = None) -> Tables:
    """Decode the whole file into one :class:`Tables` (fine for captures that fit in memory)."""
    import pandas as pd

    chunks = list(iter_decode(path, options, chunk_packets=1 << 20, decoder=decoder))
    if len(chunks) == 1:
        return chunks[0]
    merged = {}
    for name in Tables.NAMES:
        if name == "interfaces":
            merged[name] = chunks[-1].interfaces
            continue
        frames = [getattr(c, name) for c in chunks if len(getattr(c, name))]
        merged[name] = (pd.concat(frames, ignore_index=True) if frames
                        else getattr(chunks[-1], name))
    return Tables(**merged, info=chunks[-1].info)


def to_tables(chunk: RowChunk) -> Tables:
    """The pandas :class:`Tables` of one :class:`RowChunk` (what :func:`iter_decode` yields)."""
    if getattr(chunk, "core", None) is not None:
        from diag.decode.core import core_tables

        return core_tables(chunk)
    return _tables(chunk)


_INTERFACES: dict = {}      # the last capture's interfaces -> their table (one entry)


def interfaces_frame(info: CaptureInfo):
    """The ``interfaces`` table of a chunk. Every chunk of a capture has the same interfaces
    (until a pcapng block adds one): the table is made once and each chunk gets its own copy
    (pandas' copy-on-write: a change to one chunk's table never shows in another's)."""
    import pandas as pd

    records = tuple((i.capture_iface, i.linktype, i.linktype_name, i.name, i.description,
                     i.snaplen) for i in info.interfaces)
    made = _INTERFACES.get(records)
    if made is None:
        made = pd.DataFrame.from_records(list(records), columns=list(INTERFACE_COLUMNS))
        _INTERFACES.clear()
        _INTERFACES[records] = made
    copy_on_write = int(pd.__version__.split(".")[0]) >= 3    # pandas 3: always
    return made.copy(deep=not copy_on_write)


def _tables(chunk: RowChunk) -> Tables:
    from diag.decode.tables import arrays_frame, merge, records_frame, routes_frame

    def frame(records: list[tuple], columns: tuple[str, ...], vectorised: dict | None = None):
        slow = records_frame(records, columns)
        if not vectorised:
            return slow
        keys = ["frame", "depth"] if "depth" in columns else ["frame"]
        return merge(arrays_frame(vectorised, columns), slow, keys)

    def dict_frame(records: list[dict], columns: tuple[str, ...]):
        return records_frame([tuple(r.get(c) for c in columns) for r in records], columns)

    rows, info, fast = chunk.rows, chunk.info, chunk.fast
    ifaces = interfaces_frame(info)
    return Tables(
        packets=frame(rows["packets"], PACKET_COLUMNS, fast and fast.packets),
        bgp_messages=frame(rows["bgp_messages"], MESSAGE_ROW),
        bgp_routes=routes_frame(rows["bgp_routes"], ROUTE_ROW,
                                chunk.packed_texts()[1] if rows["bgp_routes"] else None),
        tunnels=frame(rows["tunnels"], TUNNEL_COLUMNS, fast and fast.tunnels),
        arp=frame(rows["arp"], ARP_COLUMNS, fast and fast.arp),
        stream_events=dict_frame(rows["stream_events"], STREAM_EVENT_COLUMNS),
        icmp=frame(rows["icmp"], ICMP_COLUMNS),
        fragments=frame(rows["fragments"], FRAGMENT_COLUMNS),
        lldp=frame(rows["lldp"], LLDP_COLUMNS),
        interfaces=ifaces,
        info=info,
        rows=chunk,
    )
