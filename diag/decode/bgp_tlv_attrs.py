"""Path attributes made of TLVs, named: Prefix-SID, BGP-LS, PMSI tunnel.

RFC 8669 (BGP Prefix-SID, attribute 40: Label-Index and Originator SRGB TLVs), RFC 9252 (its
SRv6 L3/L2 service TLVs), RFC 9552 (the BGP-LS attribute, 29: node, link and prefix TLVs),
RFC 6514 5 (PMSI_TUNNEL, 22, which EVPN inclusive-multicast routes carry, RFC 8365 5.1.3).

Contract: ``prefix_sid(value)``, ``link_state(value)`` -> a list of short texts, one per TLV,
and ``pmsi_tunnel(value)`` -> one text; each takes the attribute's value bytes and never raises.
A TLV whose value is decoded reads ``'<name> <value>'`` (``'label-index 100'``,
``'originator-srgb 16000/8000'``, ``'srv6-l3-service 2001:db8::100 behavior 0x0013'``,
``'node-name rtr1'``, ``'igp-metric 10'``); any other reads ``'<name> len N'``, and an unknown
code ``'tlv-<code> len N'``. A value cut short ends the list with ``'truncated'``.
"""
from __future__ import annotations

import socket
from struct import Struct

from diag.decode import bgp_names as names
from diag.decode.bgp_attrs import ipv6_str

_U16 = Struct(">H")
_U32 = Struct(">I")
_inet_ntoa = socket.inet_ntoa


def _int(raw: bytes) -> str:
    return str(int.from_bytes(raw, "big"))


def _address(raw: bytes) -> str:
    if len(raw) == 4:
        return _inet_ntoa(raw)
    if len(raw) == 16:
        return ipv6_str(raw)
    return raw.hex()


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


# --- Prefix-SID (RFC 8669 3, RFC 9252 2) ----------------------------------------------------------

def prefix_sid(value: bytes) -> list[str]:
    out: list[str] = []
    pos, end = 0, len(value)
    while pos < end:
        if pos + 3 > end:
            out.append("truncated")
            break
        kind, length = value[pos], _U16.unpack_from(value, pos + 1)[0]
        body = value[pos + 3:pos + 3 + length]
        if len(body) < length:
            out.append("truncated")
            break
        name = names.PREFIX_SID_TLV_NAMES.get(kind) or f"tlv-{kind}"
        if kind == 1 and length == 7:           # reserved(1) flags(2) label index(4)
            out.append(f"{name} {_U32.unpack_from(body, 3)[0]}")
        elif kind == 3 and length >= 2 and (length - 2) % 6 == 0:
            blocks = [f"{_int(body[p:p + 3])}/{_int(body[p + 3:p + 6])}"
                      for p in range(2, length, 6)]   # flags(2), then (base, range) 3 + 3
            out.append(f"{name} {' '.join(blocks)}")
        elif kind in (5, 6) and length >= 1:
            out.append(f"{name} {' '.join(_srv6_services(body, 1)) or 'len ' + str(length)}")
        else:
            out.append(f"{name} len {length}")
        pos += 3 + length
    return out


def _srv6_services(body: bytes, pos: int) -> list[str]:
    """SRv6 Service Sub-TLVs (RFC 9252 3.1): SID Information (1) -> 'SID behavior 0x....'."""
    out = []
    while pos + 3 <= len(body):
        kind, length = body[pos], _U16.unpack_from(body, pos + 1)[0]
        sub = body[pos + 3:pos + 3 + length]
        if kind == 1 and len(sub) >= 20:        # reserved(1) SID(16) flags(1) behavior(2)
            out.append(f"{ipv6_str(sub[1:17])} behavior 0x{_U16.unpack_from(sub, 18)[0]:04x}")
        pos += 3 + length
    return out


# --- BGP-LS attribute (RFC 9552 5.3) --------------------------------------------------------------

_LS_VALUES = {
    1026: _text, 1098: _text,                                  # node name, link name
    1028: _address, 1029: _address, 1030: _address, 1031: _address,   # router ids
    259: _address, 260: _address, 261: _address, 262: _address,       # interface/neighbour
    1092: _int, 1095: _int, 1155: _int, 512: _int, 513: _int,          # metrics, AS, LS id
    1024: lambda raw: f"0x{raw.hex()}", 1027: lambda raw: raw.hex(),  # node flags, area id
}


def link_state(value: bytes) -> list[str]:
    out: list[str] = []
    pos, end = 0, len(value)
    while pos < end:
        if pos + 4 > end:
            out.append("truncated")
            break
        kind, length = _U16.unpack_from(value, pos)[0], _U16.unpack_from(value, pos + 2)[0]
        body = value[pos + 4:pos + 4 + length]
        if len(body) < length:
            out.append("truncated")
            break
        name = names.BGP_LS_TLV_NAMES.get(kind) or f"tlv-{kind}"
        show = _LS_VALUES.get(kind)
        out.append(f"{name} {show(body)}" if show is not None and length else
                   f"{name} len {length}")
        pos += 4 + length
    return out


# --- PMSI_TUNNEL (RFC 6514 5) ------------------------------------------------------------------

def pmsi_tunnel(value: bytes) -> str:
    """``'ingress-replication label 6 vni 100 endpoint 192.0.2.1'``: flags(1) type(1)
    label field(3, an MPLS label or, over VXLAN, the VNI) tunnel identifier."""
    if len(value) < 5:
        return f"truncated (len {len(value)})"
    kind = value[1]
    field = value[2] << 16 | value[3] << 8 | value[4]
    name = names.PMSI_TUNNEL_TYPES.get(kind) or f"type-{kind}"
    ident = value[5:]
    where = f" endpoint {_address(ident)}" if len(ident) in (4, 16) else (
        f" id {ident.hex()}" if ident else "")
    return f"{name} label {field >> 4} vni {field}{where}"
