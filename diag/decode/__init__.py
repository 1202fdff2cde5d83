"""Offline capture decoding: a pcap/pcapng file -> pandas tables, streamed in chunks.

The public API (documented in docs/api.md)::

    from diag.decode import DecodeOptions, decode_file, iter_decode

    opts = DecodeOptions(bgp_ports=(179, 1790))        # 179, 4789/8472 and 6081 are always on
    tables = decode_file("capture.pcap", opts)          # whole file -> Tables of DataFrames
    for chunk in iter_decode("big.pcapng", opts, chunk_packets=65536):
        chunk.packets, chunk.bgp_messages, chunk.bgp_routes, chunk.tunnels, chunk.arp

Tables (one row per ...): ``packets`` (captured frame), ``bgp_messages`` (BGP message, at the frame
where its last byte arrived), ``bgp_routes`` (prefix announced or withdrawn, with its attributes and
session), ``tunnels`` (encapsulation layer: VXLAN/GENEVE with outer and inner addresses), ``arp``
(ARP packet), ``stream_events`` (TCP reassembly gaps and BGP framing errors), ``interfaces`` (the
capture's interfaces). Column lists are in :mod:`diag.decode.pipeline` and docs/api.md.

Memory stays flat: records are read in blocks, rows are buffered for one chunk only, and TCP
reassembly holds at most a bounded amount of out-of-order data per direction. An unusable file
raises :class:`diag.errors.UnusableInput` before the first chunk; a damaged record later ends the
file with a ``malformed`` packets row, keeping everything before it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from diag.decode.batch import split_block
from diag.decode.bgpflow import MESSAGE_ROW, ROUTE_ROW
from diag.decode.capture import SUPPORTED_LINKTYPES, CaptureInfo, open_blocks
from diag.errors import UnusableInput
from diag.decode.pipeline import (ARP_COLUMNS, PACKET_COLUMNS, STREAM_EVENT_COLUMNS,
                                  TUNNEL_COLUMNS, PacketDecoder)

DEFAULT_BGP_PORTS = (179,)
DEFAULT_VXLAN_PORTS = (4789, 8472)
DEFAULT_GENEVE_PORTS = (6081,)
INTERFACE_COLUMNS = ("capture_iface", "linktype", "linktype_name", "name", "description", "snaplen")

__all__ = ["DecodeOptions", "Tables", "decode_file", "iter_decode", "CaptureInfo"]


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
    info: CaptureInfo | None = field(default=None, repr=False)

    NAMES = ("packets", "bgp_messages", "bgp_routes", "tunnels", "arp", "stream_events",
             "interfaces")

    def items(self):
        return [(name, getattr(self, name)) for name in self.NAMES]


def iter_decode(path: str | Path, options: DecodeOptions | None = None,
                chunk_packets: int = 65536, vectorize: bool = True) -> Iterator[Tables]:
    """Decode ``path`` and yield :class:`Tables` every ``chunk_packets`` captured frames.

    ``vectorize=False`` decodes every frame with the per-packet reference decoder (slower; the
    results are the same — tests compare both).
    """
    options = options or DecodeOptions()
    info, blocks = open_blocks(path, chunk_packets)
    names: dict[int, str | None] = {}
    decoder = PacketDecoder(options.bgp_ports, options.vxlan_ports, options.geneve_ports, names)
    checked = False
    pending = None          # the last chunk is held back: end-of-capture flushing adds to it
    for block in blocks:
        names.update({i.capture_iface: i.name for i in info.interfaces})
        if not checked and info.interfaces:
            checked = True
            if not any(i.linktype in SUPPORTED_LINKTYPES for i in info.interfaces):
                raise UnusableInput(f"{path}: no interface with a supported link type "
                                    f"({', '.join(i.linktype_name for i in info.interfaces)})")
        fast = None
        if vectorize and len(block):
            fast = split_block(block, decoder.bgp_ports, decoder.vxlan_ports,
                               decoder.geneve_ports, names)
            _per_packet(decoder, block, fast)
        else:
            packet = decoder.packet
            for rec in block.records():
                packet(*rec)
        if len(block):
            decoder.last_frame = block.first_frame + len(block) - 1
            decoder.last_ts = float(block.ts[-1])
        if block.damage is not None:
            decoder.damaged(block.damage.frame, block.damage.reason)
        if pending is not None:
            yield _tables(pending[0], info, pending[1])
        pending = (decoder.take(), fast)
    decoder.finish()
    tail = decoder.take()
    if pending is None:
        yield _tables(tail, info, None)
    else:
        yield _tables({k: pending[0][k] + tail[k] for k in tail}, info, pending[1])


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


def decode_file(path: str | Path, options: DecodeOptions | None = None) -> Tables:
    """Decode the whole file into one :class:`Tables` (fine for captures that fit in memory)."""
    import pandas as pd

    chunks = list(iter_decode(path, options, chunk_packets=1 << 20))
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


def _tables(rows: dict[str, list], info: CaptureInfo, fast=None) -> Tables:
    import pandas as pd

    from diag.decode.tables import arrays_frame, merge, records_frame, routes_frame

    def frame(records: list[tuple], columns: tuple[str, ...], vectorised: dict | None = None):
        slow = records_frame(records, columns)
        if not vectorised:
            return slow
        keys = ["frame", "depth"] if "depth" in columns else ["frame"]
        return merge(arrays_frame(vectorised, columns), slow, keys)

    def dict_frame(records: list[dict], columns: tuple[str, ...]):
        return records_frame([tuple(r.get(c) for c in columns) for r in records], columns)

    ifaces = pd.DataFrame.from_records(
        [(i.capture_iface, i.linktype, i.linktype_name, i.name, i.description, i.snaplen)
         for i in info.interfaces], columns=list(INTERFACE_COLUMNS))
    return Tables(
        packets=frame(rows["packets"], PACKET_COLUMNS, fast and fast.packets),
        bgp_messages=frame(rows["bgp_messages"], MESSAGE_ROW),
        bgp_routes=routes_frame(rows["bgp_routes"], ROUTE_ROW),
        tunnels=frame(rows["tunnels"], TUNNEL_COLUMNS, fast and fast.tunnels),
        arp=frame(rows["arp"], ARP_COLUMNS, fast and fast.arp),
        stream_events=dict_frame(rows["stream_events"], STREAM_EVENT_COLUMNS),
        interfaces=ifaces,
        info=info,
    )
