"""NLRI of the labeled, VPN, EVPN and BGP-LS families: one route per entry, with its fields.

RFC 8277 (labeled unicast, SAFI 4), RFC 4364 / 4659 (VPN-IPv4 / VPN-IPv6, SAFI 128), RFC 7432
and 9136 (EVPN, AFI 25 / SAFI 70, route types 1-5), RFC 8365 (EVPN over VXLAN: label fields hold
VNIs), RFC 9552 (BGP-LS, AFI 16388 / SAFI 71 and 72), RFC 7911 (ADD-PATH path identifiers).

Contract: ``splits(afi, safi)`` says whether this module decodes a family;
``family_routes(data, pos, end, afi, safi, addpath) -> (routes, problem)`` walks the NLRI
``data[pos:end]`` of such a family and returns one dict per entry, in wire order, holding
``prefix`` and ``path_id`` and the family's keys of :data:`FAMILY_COLUMNS` (absent keys mean
None), and the first problem (decoding stops at the first bad entry, keeping the ones before).
Nothing raises on bad input.

Entries::

    labeled unicast   [path id(4)] length(1, bits) label stack(3 each) prefix
    VPN-IPv4/IPv6     [path id(4)] length(1, bits) label stack(3 each) RD(8) prefix
    EVPN              [path id(4)] route type(1) length(1) value (RFC 7432 7.1-7.4, RFC 9136 3)
    BGP-LS            [path id(4)] NLRI type(2) length(2) value (RFC 9552 5.2)

A label is 20 bits of a 3-octet field (then traffic class, then the bottom-of-stack bit, which
ends the stack). As Wireshark reads them, a first label field of 0x800000 or 0x000000 ends the
stack at once: RFC 8277 2.4 has withdrawals carry 0x800000 there. ``labels`` holds the label
values as MPLS reads them (``field >> 4``); EVPN's ``vnis`` holds the same fields whole (24 bits),
which is what they carry over VXLAN (RFC 8365 5.1.3).

Route distinguishers (RFC 4364 4.2) print as FRR prints them: type 0 ``65001:100``, type 1
``192.0.2.1:7``, type 2 ``4200000001:5``; another type as 16 hex digits.

``prefix`` is the IP prefix for labeled and VPN routes (the RD and labels are columns of their
own); for EVPN it is the route in FRR's notation: ``[1]:[tag]:[esi]``,
``[2]:[tag]:[48]:[mac]`` (``:[32]:[ip]`` when the route carries an IP), ``[3]:[tag]:[32]:[ip]``,
``[4]:[esi]:[32]:[ip]``, ``[5]:[tag]:[len]:[ip]``; for BGP-LS the NLRI named by type, protocol
and node (``node:ospfv2:192.0.2.1``, ``link:isis-l2:0000.0000.0001-0000.0000.0002``,
``ipv4-prefix:ospfv2:192.0.2.1:10.70.0.0/24``) with the whole NLRI in ``nlri_raw`` (hex).
"""
from __future__ import annotations

import socket
from struct import Struct

from diag.decode import bgp_names as names
from diag.decode.bgp_attrs import ipv6_str

FAMILY_COLUMNS: tuple[str, ...] = (
    "rd", "labels", "evpn_type", "esi", "ethernet_tag", "mac", "evpn_ip", "gateway_ip", "vnis",
)

_U16 = Struct(">H")
_U32 = Struct(">I")
_RD0 = Struct(">HHI")
_RD2 = Struct(">HIH")
_inet_ntoa = socket.inet_ntoa
_WITHDRAWN_LABELS = (0x800000, 0x000000)
_PAD = b"\0" * 16
_MAX_LABELS = 16                # a label stack longer than this is not a label stack


def splits(afi: int, safi: int) -> bool:
    if safi in names.LABELED_SAFIS:
        return afi in (1, 2)
    if afi == names.AFI_L2VPN:
        return safi == names.SAFI_EVPN
    return afi == names.AFI_BGP_LS and safi in (names.SAFI_BGP_LS, names.SAFI_BGP_LS_VPN)


def rd_text(raw: bytes) -> str:
    """Route distinguisher (8 octets) as FRR prints it."""
    kind = _U16.unpack_from(raw)[0]
    if kind == 0:
        return "%d:%d" % _RD0.unpack_from(raw)[1:]
    if kind == 1:
        return f"{_inet_ntoa(raw[2:6])}:{_U16.unpack_from(raw, 6)[0]}"
    if kind == 2:
        return "%d:%d" % _RD2.unpack_from(raw)[1:]
    return raw.hex()


def _address(raw: bytes) -> str:
    return _inet_ntoa(raw) if len(raw) == 4 else ipv6_str(raw)


def _colons(raw: bytes) -> str:
    return raw.hex(":")


def family_routes(data: bytes, pos: int, end: int, afi: int, safi: int,
                  addpath: bool) -> tuple[list[dict], str | None]:
    if afi == names.AFI_L2VPN:
        walk = _evpn
    elif afi == names.AFI_BGP_LS:
        walk = _bgp_ls
    else:
        walk = _labeled
    routes: list[dict] = []
    while pos < end:
        path_id = None
        if addpath:
            if pos + 4 >= end:
                return routes, "NLRI path id truncated"
            path_id = _U32.unpack_from(data, pos)[0]
            pos += 4
        route, pos, problem = walk(data, pos, end, afi, safi)
        if problem is not None:
            return routes, problem
        route["path_id"] = path_id
        routes.append(route)
    return routes, None


# --- labeled unicast and VPN (RFC 8277, RFC 4364, RFC 4659) ----------------------------------------

def _labels(data: bytes, pos: int, end: int) -> tuple[list[int], list[int], int] | None:
    """(label values, whole 24-bit fields, position after the stack) or None when truncated."""
    labels: list[int] = []
    fields: list[int] = []
    while True:
        if pos + 3 > end or len(labels) == _MAX_LABELS:
            return None
        field = data[pos] << 16 | data[pos + 1] << 8 | data[pos + 2]
        pos += 3
        labels.append(field >> 4)
        fields.append(field)
        if field & 1 or (len(labels) == 1 and field in _WITHDRAWN_LABELS):
            return labels, fields, pos


def _labeled(data: bytes, pos: int, end: int, afi: int, safi: int) -> tuple[dict, int, str | None]:
    bits = data[pos]
    start = pos + 1
    entry_end = start + ((bits + 7) >> 3)
    if entry_end > end:
        return {}, pos, f"NLRI entry of {bits} bits past end"
    stack = _labels(data, start, entry_end)
    if stack is None:
        return {}, pos, "label stack past the end of its NLRI entry"
    labels, _fields, at = stack
    used = (at - start) * 8
    rd = None
    if safi == 128:
        if at + 8 > entry_end:
            return {}, pos, "route distinguisher past the end of its NLRI entry"
        rd = rd_text(data[at:at + 8])
        at += 8
        used += 64
    plen = bits - used
    width = 16 if afi == 2 else 4
    if not 0 <= plen <= width * 8:
        return {}, pos, f"prefix length {plen} after {used} bits of labels/RD"
    raw = data[at:entry_end] + _PAD[:width - (entry_end - at)]
    return {"prefix": f"{_address(raw)}/{plen}", "rd": rd, "labels": labels}, entry_end, None


# --- EVPN (RFC 7432 7, RFC 9136 3) -------------------------------------------------------------

def _evpn(data: bytes, pos: int, end: int, afi: int, safi: int) -> tuple[dict, int, str | None]:
    if pos + 2 > end:
        return {}, pos, "EVPN route header truncated"
    rtype, length = data[pos], data[pos + 1]
    v = pos + 2
    vend = v + length
    if vend > end:
        return {}, pos, f"EVPN route type {rtype} length {length} past end"
    route: dict = {"evpn_type": rtype}
    try:
        problem = _EVPN_TYPES.get(rtype, _evpn_other)(data, v, vend, route)
    except IndexError:
        problem = "truncated"
    if problem is not None:
        return {}, pos, f"EVPN route type {rtype}: {problem}"
    return route, vend, None


def _evpn_head(data: bytes, v: int, route: dict, esi: bool, tag: bool) -> int:
    route["rd"] = rd_text(data[v:v + 8])
    v += 8
    if esi:
        route["esi"] = _colons(data[v:v + 10])
        v += 10
    if tag:
        route["ethernet_tag"] = _U32.unpack_from(data, v)[0]
        v += 4
    return v


def _label_fields(data: bytes, v: int, vend: int, route: dict) -> None:
    fields = [data[p] << 16 | data[p + 1] << 8 | data[p + 2] for p in range(v, vend - 2, 3)]
    route["labels"] = [f >> 4 for f in fields]
    route["vnis"] = fields


def _ip_field(data: bytes, v: int, vend: int) -> tuple[str | None, int, int] | None:
    """(address or None, its length in bits, position after it) of a length-prefixed IP."""
    bits = data[v]
    if bits not in (0, 32, 128) or v + 1 + bits // 8 > vend:
        return None
    raw = data[v + 1:v + 1 + bits // 8]
    return (_address(raw) if raw else None), bits, v + 1 + bits // 8


def _evpn_ethernet_ad(data: bytes, v: int, vend: int, route: dict) -> str | None:    # type 1
    if vend - v != 25:
        return f"length {vend - v}, expected 25"
    v = _evpn_head(data, v, route, esi=True, tag=True)
    _label_fields(data, v, vend, route)
    route["prefix"] = f"[1]:[{route['ethernet_tag']}]:[{route['esi']}]"
    return None


def _evpn_mac_ip(data: bytes, v: int, vend: int, route: dict) -> str | None:         # type 2
    if vend - v < 33:
        return f"length {vend - v}, minimum 33"
    v = _evpn_head(data, v, route, esi=True, tag=True)
    mac_bits = data[v]
    if mac_bits != 48:
        return f"MAC length {mac_bits}"
    route["mac"] = _colons(data[v + 1:v + 7])
    ip = _ip_field(data, v + 7, vend)
    if ip is None:
        return f"IP length {data[v + 7]}"
    address, bits, v = ip
    if vend - v not in (3, 6):
        return f"{vend - v} octets of labels"
    _label_fields(data, v, vend, route)
    route["evpn_ip"] = address
    text = f"[2]:[{route['ethernet_tag']}]:[48]:[{route['mac']}]"
    route["prefix"] = text + (f":[{bits}]:[{address}]" if address else "")
    return None


def _evpn_imet(data: bytes, v: int, vend: int, route: dict) -> str | None:           # type 3
    if vend - v < 13:
        return f"length {vend - v}, minimum 13"
    v = _evpn_head(data, v, route, esi=False, tag=True)
    ip = _ip_field(data, v, vend)
    if ip is None or ip[0] is None or ip[2] != vend:
        return "originating router's IP"
    route["evpn_ip"] = ip[0]
    route["prefix"] = f"[3]:[{route['ethernet_tag']}]:[{ip[1]}]:[{ip[0]}]"
    return None


def _evpn_ethernet_segment(data: bytes, v: int, vend: int, route: dict) -> str | None:  # type 4
    if vend - v < 19:
        return f"length {vend - v}, minimum 19"
    v = _evpn_head(data, v, route, esi=True, tag=False)
    ip = _ip_field(data, v, vend)
    if ip is None or ip[0] is None or ip[2] != vend:
        return "originating router's IP"
    route["evpn_ip"] = ip[0]
    route["prefix"] = f"[4]:[{route['esi']}]:[{ip[1]}]:[{ip[0]}]"
    return None


def _evpn_ip_prefix(data: bytes, v: int, vend: int, route: dict) -> str | None:      # type 5
    length = vend - v
    if length not in (34, 58):
        return f"length {length}, expected 34 (IPv4) or 58 (IPv6)"
    width = 4 if length == 34 else 16
    v = _evpn_head(data, v, route, esi=True, tag=True)
    plen = data[v]
    if plen > width * 8:
        return f"prefix length {plen}"
    address = _address(data[v + 1:v + 1 + width])
    route["gateway_ip"] = _address(data[v + 1 + width:v + 1 + 2 * width])
    _label_fields(data, v + 1 + 2 * width, vend, route)
    route["evpn_ip"] = f"{address}/{plen}"
    route["prefix"] = f"[5]:[{route['ethernet_tag']}]:[{plen}]:[{address}]"
    return None


def _evpn_other(data: bytes, v: int, vend: int, route: dict) -> str | None:
    route["prefix"] = f"[{route['evpn_type']}]"
    route["nlri_raw"] = data[v:vend].hex()
    return None


_EVPN_TYPES = {1: _evpn_ethernet_ad, 2: _evpn_mac_ip, 3: _evpn_imet, 4: _evpn_ethernet_segment,
               5: _evpn_ip_prefix}


# --- BGP-LS (RFC 9552 5.2) ----------------------------------------------------------------------

def _router_id(raw: bytes) -> str:
    """IGP router id (TLV 515): OSPF 4 octets (+ 4 for a pseudonode), IS-IS 6 (+ 1)."""
    if len(raw) in (4, 8):
        return ".".join(map(str, raw[:4])) + (f"-{_inet_ntoa(raw[4:])}" if len(raw) == 8 else "")
    if len(raw) in (6, 7):
        system = f"{raw[0:2].hex()}.{raw[2:4].hex()}.{raw[4:6].hex()}"
        return system + (f".{raw[6]:02x}" if len(raw) == 7 else "")
    return raw.hex()


def _tlvs(data: bytes, pos: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while pos + 4 <= end:
        kind, length = _U16.unpack_from(data, pos)[0], _U16.unpack_from(data, pos + 2)[0]
        out.setdefault(kind, data[pos + 4:pos + 4 + length])
        pos += 4 + length
    return out


def _bgp_ls(data: bytes, pos: int, end: int, afi: int, safi: int) -> tuple[dict, int, str | None]:
    if pos + 4 > end:
        return {}, pos, "BGP-LS NLRI header truncated"
    ntype, length = _U16.unpack_from(data, pos)[0], _U16.unpack_from(data, pos + 2)[0]
    v = pos + 4
    vend = v + length
    if vend > end:
        return {}, pos, f"BGP-LS NLRI type {ntype} length {length} past end"
    route: dict = {"nlri_raw": data[pos:vend].hex()}
    parts = [names.BGP_LS_NLRI_TYPES.get(ntype) or f"nlri-type-{ntype}"]
    at = v
    if safi == names.SAFI_BGP_LS_VPN and at + 8 <= vend:
        route["rd"] = rd_text(data[at:at + 8])
        at += 8
    if ntype in (1, 2, 3, 4, 6) and at + 9 <= vend:
        protocol = data[at]
        parts.append(names.BGP_LS_PROTOCOLS.get(protocol) or f"protocol-{protocol}")
        descriptors = _tlvs(data, at + 9, vend)
        local = _tlvs(descriptors.get(256, b""), 0, len(descriptors.get(256, b"")))
        node = _router_id(local[515]) if 515 in local else "?"
        if ntype == 2:
            remote = _tlvs(descriptors.get(257, b""), 0, len(descriptors.get(257, b"")))
            node += "-" + (_router_id(remote[515]) if 515 in remote else "?")
        parts.append(node)
        reach = descriptors.get(265)
        if ntype in (3, 4) and reach:
            width = 4 if ntype == 3 else 16
            plen = reach[0]
            raw = reach[1:1 + (plen + 7) // 8] + _PAD[:width]
            parts.append(f"{_address(raw[:width])}/{plen}")
    route["prefix"] = ":".join(parts)
    return route, vend, None
