"""BGP message bytes built field by field from the RFCs, for crafted captures.

The builders here are deliberately independent of ``diag.decode``: each function returns the wire
bytes of one BGP message or path attribute exactly as RFC 4271 (and the RFCs named per function)
lay them out, so a capture made from them has a ground truth that does not come from diag. Every
argument can be made to lie (``length=``, ``marker=``) to craft malformed messages.
"""
from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence

MARKER = b"\xff" * 16
OPEN, UPDATE, NOTIFICATION, KEEPALIVE, ROUTE_REFRESH = 1, 2, 3, 4, 5

# Path attribute flags (RFC 4271 4.3)
OPTIONAL, TRANSITIVE, PARTIAL, EXTENDED = 0x80, 0x40, 0x20, 0x10
AS_SET, AS_SEQUENCE = 1, 2

WELL_KNOWN_COMMUNITIES = {  # RFC 1997, 3765, 7999, 8326 (IANA "BGP Well-known Communities")
    0xFFFFFF01: "NO_EXPORT",
    0xFFFFFF02: "NO_ADVERTISE",
    0xFFFFFF03: "NO_EXPORT_SUBCONFED",
    0xFFFFFF04: "NOPEER",
    0xFFFF0000: "GRACEFUL_SHUTDOWN",
    0xFFFF029A: "BLACKHOLE",
    0xFFFF0001: "ACCEPT_OWN",
    0xFFFF0006: "LLGR_STALE",
    0xFFFF0007: "NO_LLGR",
}


def message(msg_type: int, body: bytes, *, marker: bytes = MARKER, length: int | None = None) -> bytes:
    """Header (RFC 4271 4.1): 16-octet marker, 2-octet total length, 1-octet type, then body."""
    total = 19 + len(body) if length is None else length
    return marker + struct.pack("!HB", total, msg_type) + body


# --- OPEN and capabilities (RFC 4271 4.2, RFC 5492) -------------------------------------------

def capability(code: int, value: bytes = b"") -> bytes:
    return struct.pack("!BB", code, len(value)) + value


def cap_multiprotocol(afi: int, safi: int) -> bytes:  # RFC 4760
    return capability(1, struct.pack("!HBB", afi, 0, safi))


def cap_route_refresh() -> bytes:  # RFC 2918
    return capability(2)


def cap_enhanced_route_refresh() -> bytes:  # RFC 7313
    return capability(70)


def cap_four_octet_as(asn: int) -> bytes:  # RFC 6793
    return capability(65, struct.pack("!I", asn))


def cap_add_path(entries: Sequence[tuple[int, int, int]]) -> bytes:  # RFC 7911: (afi, safi, 1/2/3)
    return capability(69, b"".join(struct.pack("!HBB", a, s, sr) for a, s, sr in entries))


def cap_graceful_restart(restart_time: int = 120) -> bytes:  # RFC 4724
    return capability(64, struct.pack("!H", restart_time & 0x0FFF))


def open_message(my_as: int, hold_time: int, bgp_id: str, capabilities: Sequence[bytes]) -> bytes:
    """OPEN; ``my_as`` > 65535 is sent as AS_TRANS (RFC 6793) like real speakers do."""
    params = b"".join(struct.pack("!BB", 2, len(c)) + c for c in capabilities)
    wire_as = my_as if my_as <= 0xFFFF else 23456
    body = struct.pack("!BHH4sB", 4, wire_as, hold_time, ipaddress.IPv4Address(bgp_id).packed,
                       len(params)) + params
    return message(OPEN, body)


def keepalive() -> bytes:
    return message(KEEPALIVE, b"")


def notification(code: int, subcode: int, data: bytes = b"") -> bytes:
    return message(NOTIFICATION, struct.pack("!BB", code, subcode) + data)


def shutdown_communication(text: str) -> bytes:
    """RFC 9003 data of Cease/Administrative Shutdown or Reset: length octet + UTF-8 text."""
    raw = text.encode()
    return bytes([len(raw)]) + raw


def route_refresh(afi: int, safi: int, subtype: int = 0) -> bytes:
    """RFC 2918; subtype 1 = BoRR, 2 = EoRR (RFC 7313)."""
    return message(ROUTE_REFRESH, struct.pack("!HBB", afi, subtype, safi))


# --- UPDATE (RFC 4271 4.3) --------------------------------------------------------------------

def prefix(text: str, path_id: int | None = None) -> bytes:
    """NLRI encoding: [path id (RFC 7911)], prefix length in bits, minimal octets of the prefix."""
    net = ipaddress.ip_network(text)
    nbytes = (net.prefixlen + 7) // 8
    raw = bytes([net.prefixlen]) + net.network_address.packed[:nbytes]
    return (struct.pack("!I", path_id) if path_id is not None else b"") + raw


def attribute(flags: int, type_code: int, value: bytes, *, length: int | None = None) -> bytes:
    n = len(value) if length is None else length
    if n > 255 or flags & EXTENDED:
        return struct.pack("!BBH", flags | EXTENDED, type_code, n) + value
    return struct.pack("!BBB", flags, type_code, n) + value


def origin(value: int = 0) -> bytes:
    return attribute(TRANSITIVE, 1, bytes([value]))


def as_path_value(segments: Sequence[tuple[int, Sequence[int]]], four_octet: bool) -> bytes:
    fmt = "!I" if four_octet else "!H"
    return b"".join(bytes([seg_type, len(asns)]) + b"".join(struct.pack(fmt, a) for a in asns)
                    for seg_type, asns in segments)


def as_path(segments: Sequence[tuple[int, Sequence[int]]], four_octet: bool = True) -> bytes:
    return attribute(TRANSITIVE, 2, as_path_value(segments, four_octet))


def as4_path(segments: Sequence[tuple[int, Sequence[int]]]) -> bytes:  # RFC 6793
    return attribute(OPTIONAL | TRANSITIVE, 17, as_path_value(segments, True))


def next_hop(address: str) -> bytes:
    return attribute(TRANSITIVE, 3, ipaddress.IPv4Address(address).packed)


def med(value: int) -> bytes:
    return attribute(OPTIONAL, 4, struct.pack("!I", value))


def local_pref(value: int) -> bytes:
    return attribute(TRANSITIVE, 5, struct.pack("!I", value))


def atomic_aggregate() -> bytes:
    return attribute(TRANSITIVE, 6, b"")


def aggregator(asn: int, address: str, four_octet: bool = True) -> bytes:
    fmt = "!I4s" if four_octet else "!H4s"
    return attribute(OPTIONAL | TRANSITIVE, 7,
                     struct.pack(fmt, asn, ipaddress.IPv4Address(address).packed))


def communities(values: Sequence[tuple[int, int] | int]) -> bytes:  # RFC 1997
    raw = b""
    for v in values:
        raw += struct.pack("!I", v) if isinstance(v, int) else struct.pack("!HH", *v)
    return attribute(OPTIONAL | TRANSITIVE, 8, raw)


def large_communities(values: Sequence[tuple[int, int, int]]) -> bytes:  # RFC 8092
    return attribute(OPTIONAL | TRANSITIVE, 32, b"".join(struct.pack("!III", *v) for v in values))


def extended_communities(values: Sequence[bytes]) -> bytes:  # RFC 4360, 8 octets each
    return attribute(OPTIONAL | TRANSITIVE, 16, b"".join(values))


def mp_reach(afi: int, safi: int, next_hops: Sequence[str], nlri: Sequence[str]) -> bytes:
    """RFC 4760 MP_REACH_NLRI; two IPv6 next hops = global + link-local (RFC 2545)."""
    nh = b"".join(ipaddress.ip_address(a).packed for a in next_hops)
    value = struct.pack("!HBB", afi, safi, len(nh)) + nh + b"\x00" + b"".join(prefix(p) for p in nlri)
    return attribute(OPTIONAL, 14, value)


def mp_unreach(afi: int, safi: int, withdrawn: Sequence[str]) -> bytes:
    value = struct.pack("!HB", afi, safi) + b"".join(prefix(p) for p in withdrawn)
    return attribute(OPTIONAL, 15, value)


def update(withdrawn: Sequence[bytes] = (), attributes: Sequence[bytes] = (),
           nlri: Sequence[bytes] = (), *, attr_len: int | None = None,
           length: int | None = None, marker: bytes = MARKER) -> bytes:
    """UPDATE from already-encoded withdrawn prefixes, attributes and NLRI (see :func:`prefix`)."""
    w = b"".join(withdrawn)
    a = b"".join(attributes)
    body = (struct.pack("!H", len(w)) + w
            + struct.pack("!H", len(a) if attr_len is None else attr_len) + a + b"".join(nlri))
    return message(UPDATE, body, marker=marker, length=length)


def end_of_rib(afi: int = 1, safi: int = 1) -> bytes:
    """RFC 4724: an empty UPDATE for IPv4 unicast, else an MP_UNREACH with no prefixes."""
    if (afi, safi) == (1, 1):
        return update()
    return update(attributes=[mp_unreach(afi, safi, [])])


# --- MPLS labels, route distinguishers, labeled and VPN NLRI (RFC 8277, RFC 4364, RFC 4659) ------

def label_stack(labels: Sequence[int], *, bottom: bool = True, exp: int = 0) -> bytes:
    """3 octets per label: label (20 bits), traffic class (3), bottom-of-stack (1) on the last."""
    out = b""
    for i, label in enumerate(labels):
        s = 1 if bottom and i == len(labels) - 1 else 0
        out += ((label << 4) | (exp << 1) | s).to_bytes(3, "big")
    return out


def rd_as2(asn: int, number: int) -> bytes:       # RFC 4364 4.2 type 0: 2-octet AS : 4-octet number
    return struct.pack("!HHI", 0, asn, number)


def rd_ip(address: str, number: int) -> bytes:    # type 1: IPv4 address : 2-octet number
    return struct.pack("!H4sH", 1, ipaddress.IPv4Address(address).packed, number)


def rd_as4(asn: int, number: int) -> bytes:       # type 2: 4-octet AS : 2-octet number
    return struct.pack("!HIH", 2, asn, number)


def _bits_prefix(head: bytes, text: str, path_id: int | None) -> bytes:
    """``length(1) head prefix``: the length counts ``head``'s bits and the prefix's."""
    net = ipaddress.ip_network(text)
    nbytes = (net.prefixlen + 7) // 8
    raw = bytes([len(head) * 8 + net.prefixlen]) + head + net.network_address.packed[:nbytes]
    return (struct.pack("!I", path_id) if path_id is not None else b"") + raw


def labeled_prefix(text: str, labels: Sequence[int], path_id: int | None = None,
                   *, raw_labels: bytes | None = None) -> bytes:
    """RFC 8277 2.2 labeled unicast NLRI; ``raw_labels`` overrides the label field (withdrawals
    carry 0x800000, RFC 8277 2.4)."""
    return _bits_prefix(raw_labels if raw_labels is not None else label_stack(labels), text,
                        path_id)


def vpn_prefix(text: str, rd: bytes, labels: Sequence[int], path_id: int | None = None,
               *, raw_labels: bytes | None = None) -> bytes:
    """RFC 4364 4.3.4 / RFC 4659 VPN-IPv4/IPv6 NLRI: labels, 8-octet RD, prefix."""
    stack = raw_labels if raw_labels is not None else label_stack(labels)
    return _bits_prefix(stack + rd, text, path_id)


def mp_reach_raw(afi: int, safi: int, next_hop: bytes, nlri: bytes) -> bytes:
    """MP_REACH_NLRI from an encoded next hop (e.g. RD + address for VPN) and encoded NLRI."""
    value = struct.pack("!HBB", afi, safi, len(next_hop)) + next_hop + b"\x00" + nlri
    return attribute(OPTIONAL | (EXTENDED if len(value) > 255 else 0), 14, value)


def mp_unreach_raw(afi: int, safi: int, nlri: bytes) -> bytes:
    value = struct.pack("!HB", afi, safi) + nlri
    return attribute(OPTIONAL | (EXTENDED if len(value) > 255 else 0), 15, value)


# --- EVPN NLRI (RFC 7432 7, RFC 9136 3) ----------------------------------------------------------

def esi(value: int | bytes = 0) -> bytes:
    return value if isinstance(value, bytes) else value.to_bytes(10, "big")


def _evpn(route_type: int, value: bytes) -> bytes:
    return bytes([route_type, len(value)]) + value


def _ip_with_length(address: str | None) -> bytes:
    if not address:
        return b"\x00"
    packed = ipaddress.ip_address(address).packed
    return bytes([len(packed) * 8]) + packed


def evpn_ethernet_ad(rd: bytes, esi_value: bytes, tag: int, label: int) -> bytes:       # type 1
    return _evpn(1, rd + esi_value + struct.pack("!I", tag) + label.to_bytes(3, "big"))


def evpn_mac_ip(rd: bytes, esi_value: bytes, tag: int, mac: str, ip: str | None, label1: int,
                label2: int | None = None) -> bytes:                                      # type 2
    value = (rd + esi_value + struct.pack("!I", tag) + bytes([48]) + bytes.fromhex(mac.replace(":", ""))
             + _ip_with_length(ip) + label1.to_bytes(3, "big"))
    if label2 is not None:
        value += label2.to_bytes(3, "big")
    return _evpn(2, value)


def evpn_imet(rd: bytes, tag: int, originator: str) -> bytes:                             # type 3
    return _evpn(3, rd + struct.pack("!I", tag) + _ip_with_length(originator))


def evpn_ethernet_segment(rd: bytes, esi_value: bytes, originator: str) -> bytes:       # type 4
    return _evpn(4, rd + esi_value + _ip_with_length(originator))


def evpn_ip_prefix(rd: bytes, esi_value: bytes, tag: int, text: str, gateway: str,
                   label: int) -> bytes:                                                  # type 5
    net = ipaddress.ip_network(text)
    gw = ipaddress.ip_address(gateway).packed
    return _evpn(5, rd + esi_value + struct.pack("!I", tag) + bytes([net.prefixlen])
                 + net.network_address.packed + gw + label.to_bytes(3, "big"))


# --- Prefix-SID (RFC 8669) and BGP-LS (RFC 7752 / 9552) ------------------------------------------

def prefix_sid(label_index: int | None = None, srgb: Sequence[tuple[int, int]] = (),
               extra_tlvs: bytes = b"") -> bytes:
    """BGP Prefix-SID attribute (type 40): Label-Index TLV (1) and Originator SRGB TLV (3)."""
    tlvs = b""
    if label_index is not None:
        tlvs += struct.pack("!BHBHI", 1, 7, 0, 0, label_index)
    if srgb:
        body = struct.pack("!H", 0) + b"".join(b.to_bytes(3, "big") + r.to_bytes(3, "big")
                                               for b, r in srgb)
        tlvs += struct.pack("!BH", 3, len(body)) + body
    return attribute(OPTIONAL | TRANSITIVE, 40, tlvs + extra_tlvs)


def ls_tlv(tlv_type: int, value: bytes) -> bytes:
    return struct.pack("!HH", tlv_type, len(value)) + value


def bgp_ls_attribute(tlvs: Sequence[bytes]) -> bytes:       # BGP-LS attribute (type 29)
    return attribute(OPTIONAL, 29, b"".join(tlvs))


def bgp_ls_node_nlri(protocol: int, identifier: int, asn: int, router_id: bytes) -> bytes:
    """BGP-LS Node NLRI (type 1): protocol, identifier, Local Node Descriptors (256) holding
    Autonomous System (512) and IGP Router-ID (515)."""
    desc = ls_tlv(512, struct.pack("!I", asn)) + ls_tlv(515, router_id)
    value = bytes([protocol]) + struct.pack("!Q", identifier) + ls_tlv(256, desc)
    return struct.pack("!HH", 1, len(value)) + value


def bgp_ls_prefix_nlri(protocol: int, identifier: int, asn: int, router_id: bytes,
                       text: str) -> bytes:
    """BGP-LS IPv4/IPv6 Topology Prefix NLRI (type 3/4) with IP Reachability Information (265)."""
    net = ipaddress.ip_network(text)
    desc = ls_tlv(512, struct.pack("!I", asn)) + ls_tlv(515, router_id)
    reach = bytes([net.prefixlen]) + net.network_address.packed[:(net.prefixlen + 7) // 8]
    value = (bytes([protocol]) + struct.pack("!Q", identifier) + ls_tlv(256, desc)
             + ls_tlv(265, reach))
    return struct.pack("!HH", 3 if net.version == 4 else 4, len(value)) + value
