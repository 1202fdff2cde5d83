"""The normal form every view of a capture is reduced to before comparison.

Per frame (1-based, as Wireshark numbers them):

* BGP: :class:`FrameBgp` - the types of the BGP messages that *completed* in that frame (in order),
  the routes announced (prefix, path id, AS path, AS4 path, next hops, communities, large
  communities), the prefixes withdrawn, the NOTIFICATION (code, subcode) pairs.
* Tunnels: a tuple of :class:`TunnelLayer`, outermost first.
* ARP: :class:`ArpFact`.

AS paths are written as text: ASNs separated by a space, AS_SET segments as ``{a,b}`` with members
in wire order. Communities are ``high:low`` decimal strings, large communities ``a:b:c``; both
sorted. Addresses are ``ipaddress`` canonical strings, MACs lower case.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field, replace


def canon_ip(text: str) -> str:
    return str(ipaddress.ip_address(text.strip()))


def canon_prefix(text: str) -> str:
    return str(ipaddress.ip_network(text.strip(), strict=False))


@dataclass(frozen=True, order=True)
class Route:
    prefix: str
    path_id: int | None = None
    as_path: str = ""
    as4_path: str = ""
    next_hop: tuple[str, ...] = ()
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()


@dataclass(frozen=True)
class BgpMsg:
    """One BGP message's facts (ground truth side; oracles build FrameBgp directly)."""

    type: int
    announced: tuple[Route, ...] = ()
    withdrawn: tuple[tuple[str, int | None], ...] = ()
    notification: tuple[int, int] | None = None


@dataclass(frozen=True)
class FrameBgp:
    types: tuple[int, ...] = ()
    announced: frozenset[Route] = field(default_factory=frozenset)
    withdrawn: frozenset[tuple[str, int | None]] = field(default_factory=frozenset)
    notifications: tuple[tuple[int, int], ...] = ()

    @staticmethod
    def of(messages: Iterable[BgpMsg]) -> FrameBgp:
        msgs = list(messages)
        return FrameBgp(
            types=tuple(m.type for m in msgs),
            announced=frozenset(r for m in msgs for r in m.announced),
            withdrawn=frozenset(w for m in msgs for w in m.withdrawn),
            notifications=tuple(m.notification for m in msgs if m.notification is not None),
        )

    def without_path_ids(self) -> FrameBgp:
        return replace(self, announced=frozenset(replace(r, path_id=None) for r in self.announced),
                       withdrawn=frozenset((p, None) for p, _ in self.withdrawn))


@dataclass(frozen=True)
class TunnelLayer:
    type: str                 # 'vxlan' / 'geneve'
    vni: int
    outer_src: str
    outer_dst: str
    outer_dport: int
    inner_eth_src: str
    inner_eth_dst: str
    inner_src: str | None     # inner IPv4/IPv6 source, None when the inner frame is not IP
    inner_dst: str | None
    inner_proto: int | None = None   # IP protocol of the inner packet (6, 17, 1, 58...)
    inner_sport: int | None = None   # inner TCP/UDP ports, None for other protocols
    inner_dport: int | None = None


@dataclass(frozen=True)
class ArpFact:
    op: int                   # 1 request, 2 reply
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str


def as_path_text(segments: Iterable[tuple[int, Iterable[int]]]) -> str:
    """[(2, [1, 2]), (1, [3, 4])] -> '1 2 {3,4}' (1 = AS_SET, 2 = AS_SEQUENCE)."""
    parts: list[str] = []
    for seg_type, asns in segments:
        asns = list(asns)
        if seg_type == 1:
            parts.append("{" + ",".join(str(a) for a in asns) + "}")
        else:
            parts.extend(str(a) for a in asns)
    return " ".join(parts)


def community_text(value: int) -> str:
    return f"{value >> 16}:{value & 0xFFFF}"


# --- NLRI of the labeled, VPN, EVPN and BGP-LS families -------------------------------------------

# IANA AFI / SAFI numbers -> the family names diag prints (the normal form's key)
FAMILIES = {(1, 4): "ipv4/labeled-unicast", (2, 4): "ipv6/labeled-unicast",
            (1, 128): "ipv4/mpls-vpn", (2, 128): "ipv6/mpls-vpn", (25, 70): "l2vpn/evpn",
            (16388, 71): "bgp-ls/bgp-ls", (1, 133): "ipv4/flowspec"}
# RFC 9552 5.2 NLRI types and 5.2.1 protocol ids, as diag names them
LS_NLRI_TYPES = {1: "node", 2: "link", 3: "ipv4-prefix", 4: "ipv6-prefix"}
LS_PROTOCOLS = {1: "isis-l1", 2: "isis-l2", 3: "ospfv2", 4: "direct", 5: "static", 6: "ospfv3",
                7: "bgp"}


@dataclass(frozen=True, order=True)
class NlriEntry:
    """One route of a labeled, VPN, EVPN or BGP-LS NLRI, as both tshark and diag can show it.

    ``labels`` is the label stack as tshark writes it (``'16 (bottom)'``, ``'17,18 (bottom)'``,
    ``'0 (withdrawn)'``); ``evpn_labels`` the EVPN label fields as tshark reads them: MPLS label
    values (field >> 4) for route types 1 and 2, the whole 24-bit field for type 5 (a VNI over
    VXLAN). ``ls_nlri`` is ``type:protocol:igp-router-id[:prefix]`` for BGP-LS.
    """

    action: str
    family: str
    prefix: str | None = None
    rd: str | None = None
    labels: str | None = None
    evpn_type: int | None = None
    esi: str | None = None
    ethernet_tag: int | None = None
    mac: str | None = None
    ip: str | None = None
    gateway: str | None = None
    evpn_labels: tuple[int, ...] = ()
    ls_nlri: str | None = None


def label_text(fields: Iterable[int]) -> str:
    """3-octet label fields -> tshark's label stack text (RFC 8277: 0x800000 or 0 first =
    withdrawn)."""
    fields = list(fields)
    if fields and fields[0] in (0x800000, 0):
        return "0 (withdrawn)"
    return ",".join(str(f >> 4) for f in fields) + " (bottom)"


def rd_text(raw: bytes) -> str:
    """Route distinguisher as FRR prints it (RFC 4364 4.2 types 0, 1, 2)."""
    kind = int.from_bytes(raw[:2], "big")
    if kind == 0:
        return f"{int.from_bytes(raw[2:4], 'big')}:{int.from_bytes(raw[4:8], 'big')}"
    if kind == 1:
        return f"{ipaddress.IPv4Address(raw[2:6])}:{int.from_bytes(raw[6:8], 'big')}"
    return f"{int.from_bytes(raw[2:6], 'big')}:{int.from_bytes(raw[6:8], 'big')}"
