"""Packet identities for following one packet across captures: the flow ledger's raw sightings.

Contract: :func:`sightings(path, vxlan_ports, geneve_ports, limit)` -> list of tuples in
:data:`SIGHTING_COLUMNS` order, one per frame that carries an IP packet (the first ``limit``
frames of the capture). A frame's row describes its *innermost* IP packet — the one a pod sent —
and, when that packet travels inside a VXLAN or GENEVE tunnel, the outer layer it travels in:

- ``depth`` 0 for a bare packet, 1 inside one tunnel (deeper nesting: the outermost tunnel is
  named, the innermost packet described); ``tunnel`` ``vxlan`` / ``geneve``, ``vni``,
  ``outer_src``/``outer_dst``/``outer_sport``/``outer_dport`` and ``outer_len`` (the outer IP
  packet's length) describe the tunnel layer;
- ``outer_fragment``: the outermost IP datagram (the tunnel's, or the packet itself at depth 0)
  came in IP fragments and this row is its *first* fragment (the one that holds the headers;
  other fragments have no row), ``outer_ip_id`` its identification (IPv4 id, IPv6 fragment id).
  Sightings do not reassemble: how many fragments the datagram came in and whether it was
  reassembled is the decoder's one rule (:mod:`diag.decode.fragments`, its ``fragments`` table),
  joined to these rows by the facts (first frame, addresses, identification). So a datagram
  whose later fragments were lost is still seen where its head was;
- the packet's identity, which no router or tunnel changes: ``src``, ``dst``, ``proto``,
  ``ip_id`` (IPv4 identification; None for IPv6), ``length`` (IP total length), ``sport`` /
  ``dport``, ``tcp_seq`` / ``tcp_ack`` / ``tcp_flags``, ``icmp_type`` / ``icmp_id`` /
  ``icmp_seq`` (echo request/reply only), ``df`` (IPv4 don't-fragment);
- ``checksum`` of its TCP or UDP header: ``ok``, ``bad``, ``partial`` (the field holds only
  the pseudo-header sum: Linux's CHECKSUM_PARTIAL, the capture was taken before the NIC or the
  tunnel device filled it in — TX offload, by design), or None when it cannot be verified (bytes
  cut by the snap length, a fragment or a packet inside a fragmented outer datagram, UDP over
  IPv4 without a checksum, another protocol).

Why this is apart from the decoder: only the overlay analysis needs per-packet identities, so
explain reads them in a bounded pass like the checksum census (:mod:`diag.decode.checksum`)
instead of widening every table of ``diag pcap``. Bad bytes never raise: a frame that cannot be
read far enough has no row (the decoder reports it as malformed).
"""
from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from pathlib import Path

from diag.decode.capture import Damage, open_capture
from diag.decode.checksum import ones_complement_sum
from diag.decode.layers import ETH_IPV4, ETH_IPV6, Malformed, ethernet, link_header

DEFAULT_LIMIT = 200_000
SIGHTING_COLUMNS = (
    "frame", "ts", "depth", "tunnel", "vni", "outer_src", "outer_dst", "outer_sport",
    "outer_dport", "outer_len", "outer_fragment", "outer_ip_id", "l3", "src", "dst", "proto",
    "ip_id", "length", "df", "sport", "dport", "tcp_seq", "tcp_ack", "tcp_flags", "icmp_type",
    "icmp_id", "icmp_seq", "checksum",
)
GENEVE_PROTO_ETHERNET = 0x6558
MAX_DEPTH = 4
_IPV6_EXTENSIONS = frozenset((0, 43, 60))
_ECHO = {("ipv4", 0), ("ipv4", 8), ("ipv6", 128), ("ipv6", 129)}
_u16 = struct.Struct("!H").unpack_from
_ntoa = socket.inet_ntoa


def _ntop6(data: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, data)


class _Packet:
    """One IP packet: header fields, and its payload bounds in ``data``."""

    __slots__ = ("l3", "src", "dst", "proto", "ip_id", "length", "df", "data", "l4", "end",
                 "complete", "fragment", "pseudo", "first_piece")

    def __init__(self, l3, src, dst, proto, ip_id, length, df, data, l4, end, complete,
                 fragment, pseudo, first_piece=True) -> None:
        self.l3, self.src, self.dst, self.proto = l3, src, dst, proto
        self.ip_id, self.length, self.df = ip_id, length, df
        self.data, self.l4, self.end = data, l4, end
        self.complete, self.fragment, self.pseudo = complete, fragment, pseudo
        self.first_piece = first_piece      # not a fragment, or the one at offset 0


def _ip(etype: int, data: bytes, off: int, end: int) -> tuple[_Packet, tuple | None]:
    """The IP header at ``off``: (packet, fragment info ``(key, offset, more)`` or None)."""
    if etype == ETH_IPV4:
        if end - off < 20 or data[off] >> 4 != 4:
            raise Malformed("not IPv4")
        ihl = (data[off] & 15) * 4
        total, ident, frag = _u16(data, off + 2)[0], _u16(data, off + 4)[0], _u16(data, off + 6)[0]
        proto = data[off + 9]
        src_b, dst_b = data[off + 12:off + 16], data[off + 16:off + 20]
        ip_end = min(end, off + total)
        packet = _Packet("ipv4", _ntoa(src_b), _ntoa(dst_b), proto, ident, total,
                         bool(frag & 0x4000), data, off + ihl, ip_end, off + total <= end,
                         bool(frag & 0x3FFF), src_b + dst_b, not frag & 0x1FFF)
        fragment = None
        if frag & 0x3FFF:
            fragment = (("ipv4", packet.src, packet.dst, ident, proto), (frag & 0x1FFF) * 8,
                        bool(frag & 0x2000))
        return packet, fragment
    if etype == ETH_IPV6:
        if end - off < 40 or data[off] >> 4 != 6:
            raise Malformed("not IPv6")
        plen, nh = _u16(data, off + 4)[0], data[off + 6]
        src_b, dst_b = data[off + 8:off + 24], data[off + 24:off + 40]
        ip_end = min(end, off + 40 + plen)
        p, fragment = off + 40, None
        for _ in range(8):
            if nh in _IPV6_EXTENSIONS and p + 2 <= ip_end:
                nh, p = data[p], p + (data[p + 1] + 1) * 8
            elif nh == 44 and p + 8 <= ip_end:
                offset_flags, ident = _u16(data, p + 2)[0], struct.unpack_from("!I", data, p + 4)[0]
                nh, p = data[p], p + 8
                if offset_flags & 0xFFF9:
                    fragment = (("ipv6", _ntop6(src_b), _ntop6(dst_b), ident, None),
                                offset_flags & 0xFFF8, bool(offset_flags & 1))
                break
            else:
                break
        packet = _Packet("ipv6", _ntop6(src_b), _ntop6(dst_b), nh, None, 40 + plen, False, data,
                         p, ip_end, off + 40 + plen <= end, fragment is not None, src_b + dst_b,
                         fragment is None or fragment[1] == 0)
        return packet, fragment
    raise Malformed("not IP")


def _checksum(p: _Packet) -> str | None:
    """ok / bad / partial for the packet's TCP or UDP checksum; None when not verifiable."""
    if not p.complete or p.fragment or p.proto not in (6, 17):
        return None
    segment = p.data[p.l4:p.end]
    if len(segment) < (20 if p.proto == 6 else 8):
        return None
    field = _u16(segment, 16 if p.proto == 6 else 6)[0]
    if p.proto == 17 and p.l3 == "ipv4" and field == 0:
        return None                                   # no checksum at all
    if p.l3 == "ipv4":
        pseudo = p.pseudo + struct.pack("!BBH", 0, p.proto, len(segment))
    else:
        pseudo = p.pseudo + struct.pack("!IxxxB", len(segment), p.proto)
    if ones_complement_sum(pseudo + segment) == 0xFFFF:
        return "ok"
    # CHECKSUM_PARTIAL: the stack wrote the folded pseudo-header sum and left the rest to the
    # device (the sum over the segment with that field zeroed is then not needed: the field
    # equals the pseudo-header sum alone)
    return "partial" if field == ones_complement_sum(pseudo) else "bad"


class SightingReader:
    """Frames in, rows out."""

    def __init__(self, vxlan_ports: Iterable[int] = (4789, 8472),
                 geneve_ports: Iterable[int] = (6081,)) -> None:
        self.vxlan_ports = frozenset(vxlan_ports)
        self.geneve_ports = frozenset(geneve_ports)
        self.rows: list[tuple] = []

    def frame(self, frame: int, ts: float, linktype: int, data: bytes, flags: int) -> None:
        try:
            link = link_header(linktype, data)
            if link.ethertype not in (ETH_IPV4, ETH_IPV6):
                return
            outer, fragment = _ip(link.ethertype, data, link.offset, len(data))
            if fragment is not None and not outer.first_piece:
                return                  # no headers here; the decoder counts it with its datagram
            row = self._row(frame, ts, outer, fragment[0][3] if fragment else None)
        except (Malformed, struct.error, IndexError, ValueError, OSError):
            return
        if row is not None:
            self.rows.append(row)

    def _tunnel(self, p: _Packet) -> tuple[str, int, int, int, int] | None:
        """(kind, vni, sport, dport, inner offset, inner ethertype) when ``p`` is VXLAN/GENEVE."""
        if p.proto != 17 or p.end - p.l4 < 16 or not p.first_piece:
            return None
        sport, dport = struct.unpack_from("!HH", p.data, p.l4)
        if dport in self.vxlan_ports or (dport not in self.geneve_ports
                                         and sport in self.vxlan_ports):
            head = p.l4 + 8
            vni = int.from_bytes(p.data[head + 4:head + 7], "big")
            inner = ethernet(p.data, head + 8, p.end)
            return "vxlan", vni, sport, dport, inner.offset, inner.ethertype
        if dport in self.geneve_ports or sport in self.geneve_ports:
            head = p.l4 + 8
            opt_end = head + 8 + (p.data[head] & 0x3F) * 4
            vni = int.from_bytes(p.data[head + 4:head + 7], "big")
            proto = _u16(p.data, head + 2)[0]
            if proto == GENEVE_PROTO_ETHERNET:
                inner = ethernet(p.data, opt_end, p.end)
                return "geneve", vni, sport, dport, inner.offset, inner.ethertype
            return "geneve", vni, sport, dport, opt_end, proto
        return None

    def _row(self, frame: int, ts: float, outer: _Packet, outer_ip_id: int | None
             ) -> tuple | None:
        tunnel = self._tunnel(outer)
        inner, depth = outer, 0
        first = None
        while tunnel is not None and depth < MAX_DEPTH:
            kind, vni, sport, dport, i_off, i_etype = tunnel
            if first is None:
                first = (kind, vni, outer.src, outer.dst, sport, dport, outer.length)
            if i_etype not in (ETH_IPV4, ETH_IPV6):
                return None                         # ARP or another protocol in the tunnel
            inner, _frag = _ip(i_etype, inner.data, i_off, inner.end)
            depth += 1
            tunnel = self._tunnel(inner)
        if first is None:
            first = (None,) * 7
        sport = dport = seq = ack = flags = itype = iid = iseq = None
        seg, end = inner.l4, inner.end
        if inner.first_piece:
            if inner.proto == 6 and end - seg >= 14:
                sport, dport, seq, ack = struct.unpack_from("!HHII", inner.data, seg)
                flags = inner.data[seg + 13]
            elif inner.proto == 17 and end - seg >= 4:
                sport, dport = struct.unpack_from("!HH", inner.data, seg)
            elif inner.proto in (1, 58) and end - seg >= 8:
                itype = inner.data[seg]
                if (inner.l3, itype) in _ECHO:
                    iid, iseq = struct.unpack_from("!HH", inner.data, seg + 4)
        kind, vni, osrc, odst, osport, odport, olen = first
        return (frame, ts, depth, kind, vni, osrc, odst, osport, odport, olen,
                outer_ip_id is not None, outer_ip_id, inner.l3,
                inner.src, inner.dst, inner.proto, inner.ip_id, inner.length, inner.df, sport,
                dport, seq, ack, flags, itype, iid, iseq, _checksum(inner))


def sightings(path: str | Path, vxlan_ports: Iterable[int] = (4789, 8472),
              geneve_ports: Iterable[int] = (6081,), limit: int = DEFAULT_LIMIT) -> list[tuple]:
    reader = SightingReader(vxlan_ports, geneve_ports)
    _info, records = open_capture(path)
    for item in records:
        if isinstance(item, Damage) or item[0] > limit:
            break
        frame, ts, _iface, linktype, data, _wirelen, flags = item
        reader.frame(frame, ts, linktype, data, flags)
    return reader.rows


__all__ = ["DEFAULT_LIMIT", "SIGHTING_COLUMNS", "SightingReader", "sightings"]
