"""Link-layer framing: from a captured frame to the network-layer payload.

Contract: ``link_header(linktype, data)`` returns a :class:`Link` tuple
``(offset, ethertype, eth_src, eth_dst, vlan, ifindex, pkttype)`` where ``offset`` is where the
network header starts in ``data`` and ``ethertype`` says what it is (0x0800 IPv4, 0x86DD IPv6,
0x0806 ARP, other values kept as they are). Raises :class:`Malformed` when the frame is too short
for its own link header.

Link types: Ethernet (802.1Q / 802.1ad / QinQ tags, kept as ``vlan`` '100' or '100.200'), Linux
SLL (113) and SLL2 (276) — what ``tcpdump -i any`` writes, with the packet type (``outgoing`` is a
packet *sent* by the host) and, for SLL2, the host's interface index — raw IP (101, 12, 14, 228,
229), BSD NULL (0, host byte order) and LOOP (108, network order), Cisco HDLC (104).
"""
from __future__ import annotations

import struct
from typing import NamedTuple

ETH_IPV4, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806
VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
SLL_PKTTYPES = ("host", "broadcast", "multicast", "otherhost", "outgoing")
# BSD address families for IPv6 differ between systems; AF_INET is 2 everywhere.
NULL_FAMILIES = {2: ETH_IPV4, 10: ETH_IPV6, 24: ETH_IPV6, 28: ETH_IPV6, 30: ETH_IPV6}
MAX_VLAN_TAGS = 4

_u16 = struct.Struct("!H").unpack_from
_sll_head = struct.Struct("!HHH8sH").unpack_from
_sll2_head = struct.Struct("!HHIHBB8s").unpack_from


class Malformed(Exception):
    """A header does not fit the bytes captured; the message is the reason."""


class Link(NamedTuple):
    offset: int
    ethertype: int
    eth_src: str | None
    eth_dst: str | None
    vlan: str | None
    ifindex: int | None
    pkttype: str | None


def ethernet(data: bytes, start: int = 0, end: int | None = None) -> Link:
    """Ethernet II at ``data[start:end]`` (``end`` bounds an inner frame inside a tunnel)."""
    limit = len(data) if end is None else end
    if limit < start + 14:
        raise Malformed("ethernet header truncated")
    dst = data[start:start + 6].hex(":")
    src = data[start + 6:start + 12].hex(":")
    (etype,) = _u16(data, start + 12)
    offset = start + 14
    vlan = None
    if etype in VLAN_TPIDS:
        tags = []
        while etype in VLAN_TPIDS:
            if len(tags) == MAX_VLAN_TAGS:
                raise Malformed("too many VLAN tags")
            if limit < offset + 4:
                raise Malformed("VLAN tag truncated")
            tci, etype = struct.unpack_from("!HH", data, offset)
            tags.append(str(tci & 0x0FFF))
            offset += 4
        vlan = ".".join(tags)
    return Link(offset, etype, src, dst, vlan, None, None)


def _sll(data: bytes) -> Link:
    if len(data) < 16:
        raise Malformed("Linux cooked (SLL) header truncated")
    pkttype, hatype, halen, addr, proto = _sll_head(data, 0)
    src = addr[:6].hex(":") if hatype == 1 and halen == 6 else None
    kind = SLL_PKTTYPES[pkttype] if pkttype < 5 else str(pkttype)
    return Link(16, proto, src, None, None, None, kind)


def _sll2(data: bytes) -> Link:
    if len(data) < 20:
        raise Malformed("Linux cooked v2 (SLL2) header truncated")
    proto, _reserved, ifindex, hatype, pkttype, halen, addr = _sll2_head(data, 0)
    src = addr[:6].hex(":") if hatype == 1 and halen == 6 else None
    kind = SLL_PKTTYPES[pkttype] if pkttype < 5 else str(pkttype)
    return Link(20, proto, src, None, None, ifindex, kind)


def _raw(data: bytes) -> Link:
    if not data:
        raise Malformed("empty raw IP packet")
    version = data[0] >> 4
    etype = ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0
    return Link(0, etype, None, None, None, None, None)


def _null(data: bytes, order: str) -> Link:
    if len(data) < 4:
        raise Malformed("loopback (NULL) header truncated")
    if order == "host":  # DLT_NULL is in the capturing host's byte order: accept both
        family = struct.unpack_from("<I", data)[0]
        if family > 0xFFFF:
            family = struct.unpack_from(">I", data)[0]
    else:
        family = struct.unpack_from(">I", data)[0]
    return Link(4, NULL_FAMILIES.get(family, 0), None, None, None, None, None)


def _hdlc(data: bytes) -> Link:
    if len(data) < 4:
        raise Malformed("Cisco HDLC header truncated")
    (proto,) = _u16(data, 2)
    return Link(4, proto, None, None, None, None, None)


def link_header(linktype: int, data: bytes) -> Link:
    if linktype == 1:
        return ethernet(data)
    if linktype == 276:
        return _sll2(data)
    if linktype == 113:
        return _sll(data)
    if linktype in (101, 12, 14):
        return _raw(data)
    if linktype == 228:
        return Link(0, ETH_IPV4, None, None, None, None, None)
    if linktype == 229:
        return Link(0, ETH_IPV6, None, None, None, None, None)
    if linktype == 0:
        return _null(data, "host")
    if linktype == 108:
        return _null(data, "network")
    if linktype == 104:
        return _hdlc(data)
    raise Malformed(f"unsupported link type {linktype}")
