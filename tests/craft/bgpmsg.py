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
