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
