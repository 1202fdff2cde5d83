"""One chunk of decoded rows before any DataFrame exists: what :func:`diag.decode.iter_rows` yields.

Contract: a :class:`RowChunk` holds what the decoders produced for at most ``chunk_packets``
frames (see :func:`diag.decode.iter_decode` for where a chunk ends):

* ``rows`` — the per-packet decoder's buffers (:meth:`diag.decode.frames.PacketDecoder.take`):
  ``packets``, ``tunnels``, ``arp`` and ``bgp_messages`` are lists of tuples in the column order of
  :data:`COLUMNS`; ``bgp_routes`` is a list of ``(row, prefixes)`` groups (one row per UPDATE's
  NLRI, ``row`` in :data:`diag.decode.bgpflow.ROUTE_ROW` order, see :mod:`diag.decode.bgpflow`);
  ``stream_events`` is a list of dicts; ``icmp`` (ICMP errors), ``fragments`` (IP datagrams
  reassembled or given up on) and ``lldp`` (LLDPDUs) lists of tuples;
* ``fast`` — the vectorised pass's column arrays (:class:`diag.decode.batch.FastRows`) for the
  frames it decoded, or None (small captures are decoded one packet at a time, without numpy).

``columns(table, names)`` gives the named columns of ``packets``, ``tunnels`` or ``arp`` as plain
lists covering both parts (vectorised rows first, then per-packet rows: NOT frame order);
``ordered(table, names)`` gives the same rows as tuples in frame order. The pandas tables of the
public API (:func:`diag.decode.iter_decode`) are built from a RowChunk; the summary of
``diag pcap`` (:class:`diag.decode.summary.CaptureSummary`) folds RowChunks directly, so a small
capture is summarised without importing pandas or numpy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from diag.decode.bgpflow import MESSAGE_ROW, ROUTE_ROW
from diag.decode.capture import CaptureInfo
from diag.decode.frames import (ARP_COLUMNS, FRAGMENT_COLUMNS, ICMP_COLUMNS, PACKET_COLUMNS,
                                STREAM_EVENT_COLUMNS, TUNNEL_COLUMNS)
from diag.decode.lldp import LLDP_COLUMNS

COLUMNS = {
    "packets": PACKET_COLUMNS, "tunnels": TUNNEL_COLUMNS, "arp": ARP_COLUMNS,
    "bgp_messages": MESSAGE_ROW, "bgp_routes": ROUTE_ROW, "stream_events": STREAM_EVENT_COLUMNS,
    "icmp": ICMP_COLUMNS, "fragments": FRAGMENT_COLUMNS, "lldp": LLDP_COLUMNS,
}


@dataclass
class RowChunk:
    rows: dict[str, list]
    fast: object | None          # diag.decode.batch.FastRows, or None
    info: CaptureInfo
    _packed: tuple | None = field(default=None, repr=False, compare=False)

    def packed_texts(self, compute: bool = True) -> tuple[list, object] | None:
        """``(packs, texts)``: every non-empty packed NLRI of ``bgp_routes`` in group order and
        the text of each of their prefixes (a numpy object array), made once per chunk for both
        the route table and the summary. With ``compute=False``: only if already made."""
        if self._packed is None and compute:
            from diag.decode.nlri import PackedPrefixes, texts

            packs = [p for _row, p in self.rows["bgp_routes"]
                     if isinstance(p, PackedPrefixes) and len(p)]
            self._packed = (packs, texts(packs))
        return self._packed

    def tables_made(self) -> None:
        """Called by :func:`diag.decode.iter_decode` once the chunk's Tables are made; the
        reference's rows stay (the summary folds them)."""

    def _parts(self, table: str) -> tuple[dict | None, list[tuple]]:
        fast = getattr(self.fast, table, None) if self.fast is not None else None
        return fast, self.rows[table]

    def columns(self, table: str, names: tuple[str, ...]) -> list[list]:
        """The named columns, vectorised part then per-packet part (not in frame order)."""
        fast, slow = self._parts(table)
        at = [COLUMNS[table].index(n) for n in names]
        out = []
        for name, i in zip(names, at):
            values = fast[name].tolist() if fast is not None else []
            values.extend(r[i] for r in slow)
            out.append(values)
        return out

    def ordered(self, table: str, names: tuple[str, ...]) -> list[tuple]:
        """The named columns as rows, in frame order (stable: vectorised rows first on ties)."""
        fast, slow = self._parts(table)
        at = [COLUMNS[table].index(n) for n in names]
        rows = [tuple(r[i] for i in at) for r in slow]
        if fast is None:
            return rows
        quick = list(zip(*(fast[n].tolist() for n in names)))
        if not rows:
            return quick
        frame = names.index("frame")
        return sorted(quick + rows, key=lambda r: r[frame])
