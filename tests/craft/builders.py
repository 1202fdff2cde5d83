"""Crafted captures with known ground truth, for comparing diag with tshark and scapy.

Each ``build_*`` function writes one deterministic capture into a directory and returns a
:class:`Crafted`: the path, the options a decoder needs (BGP ports, decode-as for tshark, whether
the BGP session uses 4-octet AS numbers) and the ground truth per frame in the normal form of
:mod:`tests.oracle.normal`. Frames are built with scapy (Ethernet/IP/TCP/UDP/VXLAN/GENEVE/ARP),
BGP messages with :mod:`tests.craft.bgpmsg`, files with :mod:`tests.craft.pcapfile`.
"""
from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.craft import bgpmsg as m
from tests.craft.pcapfile import (LINKTYPE_CHDLC, LINKTYPE_ETHERNET, LINKTYPE_LOOP, LINKTYPE_NULL,
                                  LINKTYPE_RAW, LINKTYPE_SLL, LINKTYPE_SLL2, Interface, Record,
                                  write_pcap, write_pcapng)
from tests.craft.tcpflow import Host, TcpFlow, frames_bgp
from tests.oracle.normal import (ArpFact, BgpMsg, FrameBgp, Route, TunnelLayer, as_path_text,
                                 canon_ip, canon_prefix, community_text)

T0_NS = 1_700_000_000_123_456_789      # 2023-11-14, with a nanosecond part that usec files cut
STEP_NS = 1_000_333                     # ~1 ms between frames, not a round number


@dataclass
class Crafted:
    name: str
    path: Path
    bgp: dict[int, FrameBgp] = field(default_factory=dict)
    tunnels: dict[int, tuple[TunnelLayer, ...]] = field(default_factory=dict)
    arp: dict[int, ArpFact] = field(default_factory=dict)
    packets: dict[int, dict[str, object]] = field(default_factory=dict)   # expected packet facts
    frames: int = 0
    bgp_ports: tuple[int, ...] = (179,)
    decode_as: tuple[str, ...] = ()        # tshark -d arguments
    four_octet_as: bool = True
    add_path: bool = False                 # some UPDATEs carry RFC 7911 path identifiers
    gap_after: dict[tuple[str, int], int] = field(default_factory=dict)  # (src ip, sport) -> frame
    note: str = ""


# --- frame sinks --------------------------------------------------------------------------------

class Frames:
    """Collects records with deterministic timestamps; frame numbers are 1-based."""

    def __init__(self, t0_ns: int = T0_NS) -> None:
        self.records: list[Record] = []
        self.t_ns = t0_ns
        self.facts: dict[int, dict[str, object]] = {}

    def add(self, data: bytes, *, lost: bool = False, **kw: object) -> int | None:
        self.t_ns += STEP_NS
        if lost:
            return None
        self.records.append(Record(self.t_ns, data, **kw))  # type: ignore[arg-type]
        return len(self.records)


def ether_tcp_emit(frames: Frames, vlan: int | None = None) -> Callable[..., int | None]:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Dot1Q, Ether

    def emit(src: Host, dst: Host, sport: int, dport: int, seq: int, ack: int, flags: str,
             payload: bytes, lost: bool = False) -> int | None:
        l2 = Ether(src=src.mac, dst=dst.mac)
        if vlan is not None:
            l2 = l2 / Dot1Q(vlan=vlan)
        pkt = l2 / IP(src=src.ip, dst=dst.ip, ttl=1) / TCP(
            sport=sport, dport=dport, seq=seq, ack=ack if "A" in flags else 0, flags=flags,
            window=502) / payload
        return frames.add(bytes(pkt), lost=lost)
    return emit


# --- BGP messages with their truth --------------------------------------------------------------

def bgp_update(*, withdrawn: Sequence[str] = (), nlri: Sequence[str] = (),
               path_ids: Sequence[int] | None = None, withdrawn_ids: Sequence[int] | None = None,
               segments: Sequence[tuple[int, Sequence[int]]] | None = None,
               four_octet: bool = True, as4_segments: Sequence[tuple[int, Sequence[int]]] | None = None,
               next_hop: str | None = None, med: int | None = None, local_pref: int | None = None,
               communities: Sequence[int | tuple[int, int]] = (),
               large: Sequence[tuple[int, int, int]] = (),
               mp_reach: tuple[int, int, Sequence[str], Sequence[str]] | None = None,
               mp_unreach: tuple[int, int, Sequence[str]] | None = None,
               extra_attrs: Sequence[bytes] = ()) -> tuple[bytes, BgpMsg]:
    attrs: list[bytes] = []
    if nlri or mp_reach or segments is not None:
        attrs.append(m.origin(0))
        attrs.append(m.as_path(segments or [], four_octet))
    if as4_segments is not None:
        attrs.append(m.as4_path(as4_segments))
    if next_hop:
        attrs.append(m.next_hop(next_hop))
    if med is not None:
        attrs.append(m.med(med))
    if local_pref is not None:
        attrs.append(m.local_pref(local_pref))
    if communities:
        attrs.append(m.communities(communities))
    if large:
        attrs.append(m.large_communities(large))
    if mp_reach:
        attrs.append(m.mp_reach(*mp_reach))
    if mp_unreach:
        attrs.append(m.mp_unreach(*mp_unreach))
    attrs.extend(extra_attrs)
    comm_text = tuple(sorted(community_text(c if isinstance(c, int) else (c[0] << 16) | c[1])
                             for c in communities))
    large_text = tuple(sorted(f"{a}:{b}:{c}" for a, b, c in large))
    path_text = as_path_text(segments or [])
    as4_text = as_path_text(as4_segments) if as4_segments is not None else ""

    def route(p: str, pid: int | None, nhs: Sequence[str]) -> Route:
        return Route(canon_prefix(p), pid, path_text, as4_text, tuple(canon_ip(n) for n in nhs),
                     comm_text, large_text)

    routes = [route(p, path_ids[i] if path_ids else None, [next_hop] if next_hop else [])
              for i, p in enumerate(nlri)]
    if mp_reach:
        routes += [route(p, None, mp_reach[2]) for p in mp_reach[3]]
    gone = [(canon_prefix(p), withdrawn_ids[i] if withdrawn_ids else None)
            for i, p in enumerate(withdrawn)]
    if mp_unreach:
        gone += [(canon_prefix(p), None) for p in mp_unreach[2]]
    data = m.update(
        [m.prefix(p, withdrawn_ids[i] if withdrawn_ids else None) for i, p in enumerate(withdrawn)],
        attrs, [m.prefix(p, path_ids[i] if path_ids else None) for i, p in enumerate(nlri)])
    return data, BgpMsg(2, tuple(routes), tuple(gone))


def simple(data: bytes) -> tuple[bytes, BgpMsg]:
    return data, BgpMsg(data[18])


def notify(code: int, subcode: int, payload: bytes = b"") -> tuple[bytes, BgpMsg]:
    return m.notification(code, subcode, payload), BgpMsg(3, notification=(code, subcode))


def _write(frames: Frames, path: Path, linktype: int = LINKTYPE_ETHERNET, **kw: object) -> int:
    write_pcap(path, frames.records, linktype, **kw)
    return len(frames.records)


# --- BGP captures -------------------------------------------------------------------------------

A = Host("02:00:00:00:00:01", "10.0.0.1")
B = Host("02:00:00:00:00:02", "10.0.0.2")
AS_A, AS_B = 4_200_000_001, 65002
SHUTDOWN_TEXT = "maintenance: moving to new rack, back 09:00 \u2713"


def build_bgp_session(outdir: Path) -> Crafted:
    """A full 4-octet-AS session with ADD-PATH (A sends path ids for IPv4 unicast), split,
    coalesced, retransmitted and out-of-order segments, every message type."""
    frames = Frames()
    flow = TcpFlow(ether_tcp_emit(frames), A, B, 40001, 179)
    flow.handshake()
    open_a = m.open_message(AS_A, 90, "10.0.0.1", [
        m.cap_multiprotocol(1, 1), m.cap_multiprotocol(2, 1), m.cap_route_refresh(),
        m.cap_enhanced_route_refresh(), m.cap_four_octet_as(AS_A), m.cap_add_path([(1, 1, 3)]),
        m.cap_graceful_restart(120)])
    open_b = m.open_message(AS_B, 90, "10.0.0.2", [
        m.cap_multiprotocol(1, 1), m.cap_multiprotocol(2, 1), m.cap_route_refresh(),
        m.cap_enhanced_route_refresh(), m.cap_four_octet_as(AS_B), m.cap_add_path([(1, 1, 1)])])
    flow.queue("ab", *simple(open_a))
    flow.send("ab")
    flow.queue("ba", *simple(open_b))
    flow.send("ba", [30])                                   # OPEN split in two segments
    flow.queue("ab", *simple(m.keepalive()))
    flow.send("ab")
    flow.queue("ba", *simple(m.keepalive()))
    flow.send("ba")
    # UPDATE A->B: 4-octet AS path with an AS_SET, communities, large communities, path ids;
    # split over three segments, the middle one retransmitted at once.
    flow.queue("ab", *bgp_update(
        nlri=["198.51.100.0/24", "203.0.113.0/25"], path_ids=[1, 7],
        segments=[(m.AS_SEQUENCE, [AS_A, 65010, 4_200_000_099]), (m.AS_SET, [64512, 4_200_000_100])],
        next_hop="10.0.0.1", med=50, local_pref=200,
        communities=[(65000, 100), 0xFFFFFF01, 0xFFFFFF02, (64512, 65535)],
        large=[(AS_A, 1, 2), (65002, 0, 4_294_967_295)]))
    f1, f2, f3 = flow.send("ab", [23, 40])
    flow.retransmit("ab", f2)   # type: ignore[arg-type]
    # UPDATE B->A: MP_REACH IPv6 with global + link-local next hop, coalesced with both End-of-RIBs
    # and a KEEPALIVE in one segment.
    flow.queue("ba", *bgp_update(
        segments=[(m.AS_SEQUENCE, [AS_B, 65100])], communities=[(65002, 600)],
        mp_reach=(2, 1, ["2001:db8::2", "fe80::2"], ["2001:db8:1::/48", "2001:db8:2:3::/64"])))
    flow.queue("ba", *simple(m.end_of_rib(1, 1)))
    flow.queue("ba", *simple(m.end_of_rib(2, 1)))
    flow.queue("ba", *simple(m.keepalive()))
    flow.send("ba")
    # UPDATE A->B withdrawing with path id, sent as an out-of-order pair.
    flow.queue("ab", *bgp_update(withdrawn=["203.0.113.0/25"], withdrawn_ids=[7]))
    flow.send("ab", [15], order=[1, 0])
    flow.queue("ab", *simple(m.end_of_rib(1, 1)))
    flow.send("ab")
    # ROUTE-REFRESH, then the enhanced BoRR / UPDATE / EoRR answer (RFC 7313).
    flow.queue("ab", *simple(m.route_refresh(1, 1, 0)))
    flow.send("ab")
    flow.queue("ba", *simple(m.route_refresh(1, 1, 1)))
    flow.send("ba")
    flow.queue("ba", *bgp_update(nlri=["10.99.0.0/16", "10.100.128.0/17"],
                                 segments=[(m.AS_SEQUENCE, [AS_B])], next_hop="10.0.0.2",
                                 communities=[0xFFFFFF03, 0xFFFF0000]))
    flow.queue("ba", *simple(m.route_refresh(1, 1, 2)))
    flow.send("ba")
    flow.queue("ba", *bgp_update(mp_unreach=(2, 1, ["2001:db8:2:3::/64"])))
    flow.send("ba")
    flow.queue("ab", *notify(6, 2, m.shutdown_communication(SHUTDOWN_TEXT)))
    flow.send("ab")
    flow.fin()
    path = outdir / "bgp_session.pcap"
    n = _write(frames, path)
    return Crafted("bgp_session", path, bgp=frames_bgp([flow]), frames=n, add_path=True,
                   note="4-octet AS, ADD-PATH A->B IPv4")


def build_bgp_gap(outdir: Path) -> Crafted:
    """A->B loses the middle segment of an UPDATE; B->A goes on normally."""
    frames = Frames()
    flow = TcpFlow(ether_tcp_emit(frames), A, B, 40002, 179, 7_000, 9_000_000)
    flow.handshake()
    for d, asn, ident in (("ab", AS_A, "10.0.0.1"), ("ba", AS_B, "10.0.0.2")):
        flow.queue(d, *simple(m.open_message(asn, 30, ident, [m.cap_multiprotocol(1, 1),
                                                                m.cap_four_octet_as(asn)])))
        flow.send(d)
    for d in ("ab", "ba"):
        flow.queue(d, *simple(m.keepalive()))
        flow.send(d)
    flow.queue("ab", *bgp_update(nlri=["192.0.2.0/24"], segments=[(m.AS_SEQUENCE, [AS_A])],
                                 next_hop="10.0.0.1", large=[(AS_A, 5, 5)]))
    frames_ab = flow.send("ab", [20, 10], lost={1})
    flow.queue("ab", *simple(m.keepalive()))
    flow.send("ab")
    flow.queue("ba", *bgp_update(nlri=["192.0.2.128/25"], segments=[(m.AS_SEQUENCE, [AS_B])],
                                 next_hop="10.0.0.2"))
    flow.send("ba")
    flow.queue("ba", *simple(m.keepalive()))
    flow.send("ba")
    path = outdir / "bgp_gap.pcap"
    n = _write(frames, path)
    return Crafted("bgp_gap", path, bgp=frames_bgp([flow]), frames=n,
                   gap_after={("10.0.0.1", 40002): frames_ab[0]},   # type: ignore[dict-item]
                   note="segment lost A->B")


def build_bgp_port1790(outdir: Path) -> Crafted:
    frames = Frames()
    c, s = Host("02:00:00:00:01:01", "172.16.1.1"), Host("02:00:00:00:01:02", "172.16.1.2")
    flow = TcpFlow(ether_tcp_emit(frames, vlan=None), c, s, 50123, 1790)
    flow.handshake()
    for d, asn, ident in (("ab", 65101, "172.16.1.1"), ("ba", 65102, "172.16.1.2")):
        flow.queue(d, *simple(m.open_message(asn, 9, ident, [m.cap_multiprotocol(1, 1),
                                                               m.cap_four_octet_as(asn)])))
        flow.queue(d, *simple(m.keepalive()))
        flow.send(d)
    flow.queue("ba", *bgp_update(nlri=["172.20.0.0/14"], segments=[(m.AS_SEQUENCE, [65102, 65200])],
                                 next_hop="172.16.1.2", communities=[(65102, 1790)]))
    flow.send("ba")
    flow.queue("ab", *notify(4, 0))    # Hold Timer Expired
    flow.send("ab")
    path = outdir / "bgp_port1790.pcap"
    n = _write(frames, path)
    return Crafted("bgp_port1790", path, bgp=frames_bgp([flow]), frames=n, bgp_ports=(179, 1790),
                   decode_as=("tcp.port==1790,bgp",))


def build_bgp_as2(outdir: Path) -> Crafted:
    """Neither OPEN carries capability 65: AS_PATH is 2-octet with AS_TRANS, AS4_PATH carries the
    real 4-octet ASNs (RFC 6793 4.2.2)."""
    frames = Frames()
    c, s = Host("02:00:00:00:02:01", "192.168.50.1"), Host("02:00:00:00:02:02", "192.168.50.2")
    flow = TcpFlow(ether_tcp_emit(frames, vlan=None), c, s, 33333, 179)
    flow.handshake()
    for d, asn, ident in (("ab", 65001, "192.168.50.1"), ("ba", 65020, "192.168.50.2")):
        flow.queue(d, *simple(m.open_message(asn, 180, ident, [m.cap_multiprotocol(1, 1),
                                                                 m.cap_route_refresh()])))
        flow.send(d)
    flow.queue("ab", *bgp_update(
        nlri=["100.64.0.0/10", "100.127.255.0/24"],
        segments=[(m.AS_SEQUENCE, [65001, 23456, 23456])], four_octet=False,
        as4_segments=[(m.AS_SEQUENCE, [4_200_000_005, 4_200_000_006])],
        next_hop="192.168.50.1", med=0,
        communities=[0xFFFFFF03, 0xFFFF0000, 0xFFFF029A, (65001, 42)],
        extra_attrs=[m.atomic_aggregate(), m.aggregator(23456, "192.168.50.9", four_octet=False)]))
    flow.send("ab", [40])
    # AS_SET in both paths (scapy cannot read an AS4_PATH of two segments; tshark can)
    flow.queue("ab", *bgp_update(
        nlri=["100.80.0.0/16"],
        segments=[(m.AS_SEQUENCE, [65001, 23456]), (m.AS_SET, [64600, 23456])], four_octet=False,
        as4_segments=[(m.AS_SEQUENCE, [4_200_000_005]), (m.AS_SET, [64600, 4_200_000_007])],
        next_hop="192.168.50.1"))
    flow.send("ab")
    flow.queue("ba", *bgp_update(withdrawn=["10.20.0.0/16", "10.30.40.0/24"]))
    flow.queue("ba", *simple(m.keepalive()))
    flow.send("ba")
    path = outdir / "bgp_as2.pcap"
    n = _write(frames, path)
    return Crafted("bgp_as2", path, bgp=frames_bgp([flow]), frames=n, four_octet_as=False)


# --- overlays -----------------------------------------------------------------------------------

def build_tunnels(outdir: Path) -> Crafted:
    """VXLAN on 8472 and 4789 (TCP, ICMP, ARP, IPv6 inside), VXLAN in VXLAN, BGP in VXLAN,
    GENEVE with options, and an IPv6 underlay."""
    from scapy.contrib.geneve import GENEVE, GeneveOptions
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    from scapy.layers.l2 import ARP, Ether
    from scapy.layers.vxlan import VXLAN

    frames = Frames()
    tunnels: dict[int, tuple[TunnelLayer, ...]] = {}
    u1, u2 = ("02:aa:00:00:00:01", "192.168.1.1"), ("02:aa:00:00:00:02", "192.168.1.2")

    def outer(dport: int, sport: int = 45000) -> object:
        return (Ether(src=u1[0], dst=u2[0]) / IP(src=u1[1], dst=u2[1], ttl=64)
                / UDP(sport=sport, dport=dport))

    def layer(kind: str, vni: int, osrc: str, odst: str, dport: int, inner: object) -> TunnelLayer:
        l3 = inner.payload
        isrc = idst = proto = sport = dport_in = None
        if isinstance(l3, (IP, IPv6)):
            isrc, idst = canon_ip(l3.src), canon_ip(l3.dst)
            proto = l3.proto if isinstance(l3, IP) else l3.nh
            if isinstance(l3.payload, (TCP, UDP)):
                sport, dport_in = l3.payload.sport, l3.payload.dport
        return TunnelLayer(kind, vni, osrc, odst, dport, inner.src.lower(), inner.dst.lower(),
                           isrc, idst, proto, sport, dport_in)

    def add(pkt: object, layers: tuple[TunnelLayer, ...]) -> int:
        f = frames.add(bytes(pkt))
        assert f is not None
        tunnels[f] = layers
        return f

    e1 = Ether(src="0a:00:00:00:01:01", dst="0a:00:00:00:01:02")
    in1 = e1 / IP(src="10.1.0.1", dst="10.1.0.2") / TCP(sport=33000, dport=80, flags="S", seq=1)
    add(outer(8472) / VXLAN(vni=100, flags=0x08) / in1,
        (layer("vxlan", 100, u1[1], u2[1], 8472, in1),))
    in2 = (Ether(src="0a:00:00:00:02:01", dst="0a:00:00:00:02:02")
           / IP(src="10.2.0.1", dst="10.2.0.2") / ICMP(id=7, seq=1) / b"ping")
    add(outer(4789) / VXLAN(vni=200, flags=0x08) / in2,
        (layer("vxlan", 200, u1[1], u2[1], 4789, in2),))
    in3 = (Ether(src="0a:00:00:00:03:01", dst="ff:ff:ff:ff:ff:ff")
           / ARP(op=1, hwsrc="0a:00:00:00:03:01", psrc="10.3.0.1", pdst="10.3.0.2"))
    add(outer(4789) / VXLAN(vni=300, flags=0x08) / in3,
        (layer("vxlan", 300, u1[1], u2[1], 4789, in3),))
    # VXLAN (8472, VNI 400) carrying VXLAN (4789, VNI 401) carrying ICMP
    deep = (Ether(src="0a:00:00:00:04:11", dst="0a:00:00:00:04:12")
            / IP(src="10.4.1.1", dst="10.4.1.2") / ICMP(id=9) / b"deep")
    mid = (Ether(src="0a:00:00:00:04:01", dst="0a:00:00:00:04:02")
           / IP(src="10.4.0.1", dst="10.4.0.2") / UDP(sport=40400, dport=4789)
           / VXLAN(vni=401, flags=0x08) / deep)
    add(outer(8472) / VXLAN(vni=400, flags=0x08) / mid,
        (layer("vxlan", 400, u1[1], u2[1], 8472, mid),
         layer("vxlan", 401, "10.4.0.1", "10.4.0.2", 4789, deep)))
    # GENEVE with two options carrying an Ethernet frame
    in6 = (Ether(src="0a:00:00:00:06:01", dst="0a:00:00:00:06:02")
           / IP(src="10.6.0.1", dst="10.6.0.2") / UDP(sport=5000, dport=5001) / b"payload")
    opts = [GeneveOptions(classid=0x0102, type=0x80, data=b"\x00\x00\x00\x2a"),
            GeneveOptions(classid=0xFFFF, type=0x01, data=b"\xde\xad\xbe\xef\x00\x00\x00\x01")]
    add(outer(6081) / GENEVE(vni=0x123456, proto=0x6558, options=opts) / in6,
        (layer("geneve", 0x123456, u1[1], u2[1], 6081, in6),))
    # IPv6 underlay, IPv6 inside
    in7 = (Ether(src="0a:00:00:00:07:01", dst="0a:00:00:00:07:02")
           / IPv6(src="fd00:7::1", dst="fd00:7::2") / ICMPv6EchoRequest(id=1, seq=1))
    add(Ether(src=u1[0], dst=u2[0]) / IPv6(src="2001:db8:ffff::a", dst="2001:db8:ffff::b")
        / UDP(sport=45001, dport=4789) / VXLAN(vni=700, flags=0x08) / in7,
        (layer("vxlan", 700, "2001:db8:ffff::a", "2001:db8:ffff::b", 4789, in7),))
    # BGP inside VXLAN 8472 (VNI 500): handshake, OPENs, KEEPALIVE + UPDATE in one segment
    pod_a, pod_b = Host("0a:00:00:00:05:01", "10.5.0.1"), Host("0a:00:00:00:05:02", "10.5.0.2")

    def emit_vxlan(src: Host, dst: Host, sport: int, dport: int, seq: int, ack: int, flags: str,
                   payload: bytes, lost: bool = False) -> int | None:
        inner = (Ether(src=src.mac, dst=dst.mac) / IP(src=src.ip, dst=dst.ip, ttl=1)
                 / TCP(sport=sport, dport=dport, seq=seq, ack=ack if "A" in flags else 0,
                       flags=flags, window=502) / payload)
        return add(outer(8472, 46000) / VXLAN(vni=500, flags=0x08) / inner,
                   (layer("vxlan", 500, u1[1], u2[1], 8472, inner),))

    flow = TcpFlow(emit_vxlan, pod_a, pod_b, 41000, 179)
    flow.handshake()
    for d, asn, ident in (("ab", 65501, "10.5.0.1"), ("ba", 65502, "10.5.0.2")):
        flow.queue(d, *simple(m.open_message(asn, 30, ident, [m.cap_four_octet_as(asn)])))
        flow.send(d)
    flow.queue("ab", *simple(m.keepalive()))
    flow.queue("ab", *bgp_update(nlri=["10.55.0.0/16"], segments=[(m.AS_SEQUENCE, [65501])],
                                 next_hop="10.5.0.1"))
    flow.send("ab")
    path = outdir / "tunnels.pcap"
    n = _write(frames, path)
    return Crafted("tunnels", path, tunnels=tunnels, bgp=frames_bgp([flow]), frames=n,
                   decode_as=("udp.port==8472,vxlan",))


def build_arp(outdir: Path) -> Crafted:
    from scapy.layers.l2 import ARP, Ether

    frames = Frames()
    facts: dict[int, ArpFact] = {}
    bcast, zero = "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"

    def arp(op: int, smac: str, sip: str, tmac: str, tip: str, dst: str) -> None:
        f = frames.add(bytes(Ether(src=smac, dst=dst)
                             / ARP(op=op, hwsrc=smac, psrc=sip, hwdst=tmac, pdst=tip)))
        assert f is not None
        facts[f] = ArpFact(op, smac, sip, tmac, tip)

    ma, mb, mc, md = ("02:00:00:0a:00:01", "02:00:00:0a:00:02", "02:00:00:0a:00:0c",
                      "02:00:00:0a:00:0d")
    arp(1, ma, "10.0.0.1", zero, "10.0.0.2", bcast)            # answered
    arp(2, mb, "10.0.0.2", ma, "10.0.0.1", ma)
    for _ in range(3):                                          # unanswered, repeated
        arp(1, ma, "10.0.0.1", zero, "10.0.0.99", bcast)
    arp(1, mc, "10.0.0.50", zero, "10.0.0.50", bcast)          # gratuitous request
    arp(2, md, "10.0.0.51", bcast, "10.0.0.51", bcast)         # gratuitous reply
    arp(1, ma, "10.0.0.1", zero, "10.0.0.200", bcast)          # two MACs answer one IP
    arp(2, mc, "10.0.0.200", ma, "10.0.0.1", ma)
    arp(2, md, "10.0.0.200", ma, "10.0.0.1", ma)
    path = outdir / "arp.pcap"
    n = _write(frames, path)
    return Crafted("arp", path, arp=facts, frames=n)


# --- link types and L3 variants ------------------------------------------------------------------

def _l3_samples() -> list[tuple[bytes, dict[str, object]]]:
    """IP packets (no link layer) with their expected packet facts."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6

    ka = m.keepalive()
    out = []
    p4 = IP(src="10.9.0.1", dst="10.9.0.2", ttl=1) / TCP(sport=179, dport=50000, flags="PA",
                                                          seq=100, ack=1) / ka
    out.append((bytes(p4), dict(l3="ipv4", src="10.9.0.1", dst="10.9.0.2", ip_proto=6, sport=179,
                                dport=50000, app="bgp")))
    p6 = IPv6(src="2001:db8:9::1", dst="2001:db8:9::2", hlim=64) / UDP(sport=5353, dport=4242) / b"x"
    out.append((bytes(p6), dict(l3="ipv6", src="2001:db8:9::1", dst="2001:db8:9::2", ip_proto=17,
                                sport=5353, dport=4242, app="")))
    return out


def _arp_sample() -> tuple[bytes, dict[str, object]]:
    from scapy.layers.l2 import ARP
    return bytes(ARP(op=1, hwsrc="02:00:00:09:00:01", psrc="10.9.0.1", pdst="10.9.0.3")), dict(
        l3="arp", app="arp")


def _ether_records(frames: Frames) -> None:
    from scapy.layers.l2 import Ether
    for l3, facts in _l3_samples():
        etype = 0x0800 if facts["l3"] == "ipv4" else 0x86DD
        f = frames.add(bytes(Ether(src="02:00:00:09:00:01", dst="02:00:00:09:00:02", type=etype)) + l3)
        frames.facts[f] = dict(facts, eth_src="02:00:00:09:00:01", eth_dst="02:00:00:09:00:02")  # type: ignore[index]
    arp, facts = _arp_sample()
    f = frames.add(bytes(Ether(src="02:00:00:09:00:01", dst="ff:ff:ff:ff:ff:ff", type=0x0806)) + arp)
    frames.facts[f] = dict(facts, eth_src="02:00:00:09:00:01", eth_dst="ff:ff:ff:ff:ff:ff")  # type: ignore[index]


def _with_ts(frames: Frames, nano: bool) -> dict[int, dict[str, object]]:
    out = {}
    for i, r in enumerate(frames.records, 1):
        ts_ns = r.ts_ns if nano else r.ts_ns // 1000 * 1000
        out[i] = dict(frames.facts.get(i, {}), ts_ns=ts_ns, caplen=len(r.data),
                      wirelen=r.wirelen if r.wirelen is not None else len(r.data))
    return out


def build_pcap_variants(outdir: Path) -> list[Crafted]:
    """Ethernet in pcap: little/big endian x micro/nanosecond, plus a cut (caplen < wirelen) frame."""
    out = []
    for big in (False, True):
        for nano in (False, True):
            frames = Frames()
            _ether_records(frames)
            last = frames.records[-1]
            frames.records.append(Record(last.ts_ns + 7, frames.records[0].data[:60],
                                         wirelen=len(frames.records[0].data)))
            frames.facts[len(frames.records)] = dict(l3="ipv4", src="10.9.0.1", dst="10.9.0.2")
            name = f"eth_{'be' if big else 'le'}_{'nsec' if nano else 'usec'}"
            path = outdir / f"{name}.pcap"
            write_pcap(path, frames.records, LINKTYPE_ETHERNET, big_endian=big, nano=nano,
                       snaplen=65535)
            out.append(Crafted(name, path, packets=_with_ts(frames, nano), frames=len(frames.records)))
    return out


def _sll(pkttype: int, proto: int, mac: str) -> bytes:
    addr = bytes.fromhex(mac.replace(":", ""))
    return struct.pack("!HHH8sH", pkttype, 1, 6, addr + b"\x00\x00", proto)


def _sll2(pkttype: int, proto: int, ifindex: int, mac: str) -> bytes:
    addr = bytes.fromhex(mac.replace(":", ""))
    return struct.pack("!HHIHBB8s", proto, 0, ifindex, 1, pkttype, 6, addr + b"\x00\x00")


PKTTYPE_DIRECTION = {0: "in", 1: "in", 2: "in", 3: "in", 4: "out"}   # linux/if_packet.h


def build_link_types(outdir: Path) -> list[Crafted]:
    out: list[Crafted] = []
    samples = _l3_samples()
    arp, arp_facts = _arp_sample()
    mac = "02:00:00:09:00:01"

    # Linux cooked v1 (113): outgoing IPv4, incoming IPv6, broadcast ARP
    frames = Frames()
    for (l3, facts), pkttype in zip(samples, (4, 0)):
        etype = 0x0800 if facts["l3"] == "ipv4" else 0x86DD
        f = frames.add(_sll(pkttype, etype, mac) + l3)
        frames.facts[f] = dict(facts, pkttype=pkttype, direction=PKTTYPE_DIRECTION[pkttype])  # type: ignore[index]
    f = frames.add(_sll(1, 0x0806, mac) + arp)
    frames.facts[f] = dict(arp_facts, pkttype=1, direction="in")  # type: ignore[index]
    path = write_pcap(outdir / "sll.pcap", frames.records, LINKTYPE_SLL)
    out.append(Crafted("sll", path, packets=_with_ts(frames, False), frames=len(frames.records)))

    # Linux cooked v2 (276), tcpdump -i any style: interface index and direction
    frames = Frames()
    for (l3, facts), pkttype, ifindex in zip(samples, (4, 0), (2, 3)):
        etype = 0x0800 if facts["l3"] == "ipv4" else 0x86DD
        f = frames.add(_sll2(pkttype, etype, ifindex, mac) + l3)
        frames.facts[f] = dict(facts, pkttype=pkttype, ifindex=ifindex,  # type: ignore[index]
                               direction=PKTTYPE_DIRECTION[pkttype])
    f = frames.add(_sll2(1, 0x0806, 7, mac) + arp)
    frames.facts[f] = dict(arp_facts, pkttype=1, ifindex=7, direction="in")  # type: ignore[index]
    path = write_pcap(outdir / "sll2.pcap", frames.records, LINKTYPE_SLL2)
    out.append(Crafted("sll2", path, packets=_with_ts(frames, False), frames=len(frames.records)))

    # raw IP (101), BSD NULL (0, host = little endian here), LOOP (108, network order), C-HDLC
    for name, linktype, head4, head6 in (
            ("raw", LINKTYPE_RAW, b"", b""),
            ("null", LINKTYPE_NULL, struct.pack("<I", 2), struct.pack("<I", 30)),
            ("loop", LINKTYPE_LOOP, struct.pack(">I", 2), struct.pack(">I", 24)),
            ("chdlc", LINKTYPE_CHDLC, b"\x0f\x00\x08\x00", b"\x8f\x00\x86\xdd")):
        frames = Frames()
        for l3, facts in samples:
            f = frames.add((head4 if facts["l3"] == "ipv4" else head6) + l3)
            frames.facts[f] = dict(facts)
        path = write_pcap(outdir / f"{name}.pcap", frames.records, linktype)
        out.append(Crafted(name, path, packets=_with_ts(frames, False), frames=len(frames.records)))

    # pcapng: eth0 (Ethernet, usec) + any (SLL2, nsec), names and epb_flags direction
    frames = Frames()
    recs: list[Record] = []
    facts_by_frame: dict[int, dict[str, object]] = {}
    from scapy.layers.l2 import Ether
    for i, (l3, facts) in enumerate(samples):
        etype = 0x0800 if facts["l3"] == "ipv4" else 0x86DD
        frames.t_ns += STEP_NS
        eth = bytes(Ether(src=mac, dst="02:00:00:09:00:02", type=etype)) + l3
        direction = ("out", "in")[i]
        recs.append(Record(frames.t_ns, eth, iface=0, direction=direction))
        facts_by_frame[len(recs)] = dict(facts, iface_name="eth0", capture_iface=0, linktype=1,
                                         direction=direction, ts_ns=frames.t_ns // 1000 * 1000)
        frames.t_ns += STEP_NS
        recs.append(Record(frames.t_ns, _sll2(4 if i == 0 else 0, etype, 5, mac) + l3, iface=1))
        facts_by_frame[len(recs)] = dict(facts, iface_name="any", capture_iface=1, linktype=276,
                                         ifindex=5, direction="out" if i == 0 else "in",
                                         ts_ns=frames.t_ns)
    path = write_pcapng(outdir / "two_ifaces.pcapng",
                        [Interface(LINKTYPE_ETHERNET, "eth0", 6), Interface(LINKTYPE_SLL2, "any", 9)],
                        recs)
    for i, r in enumerate(recs, 1):
        facts_by_frame[i].update(caplen=len(r.data), wirelen=len(r.data))
    out.append(Crafted("two_ifaces", path, packets=facts_by_frame, frames=len(recs)))
    return out


def build_l3_variants(outdir: Path) -> Crafted:
    """802.1Q, QinQ, IPv6 extension headers, IPv6 and IPv4 fragments, all over Ethernet."""
    from scapy.layers.inet import IP, TCP, UDP, fragment
    from scapy.layers.inet6 import (IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                    IPv6ExtHdrRouting, RouterAlert)
    from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

    frames = Frames()
    eth = dict(src="02:00:00:0b:00:01", dst="02:00:00:0b:00:02")
    ka = m.keepalive()

    def add(pkt: object, **facts: object) -> None:
        f = frames.add(bytes(pkt))
        frames.facts[f] = facts  # type: ignore[index]

    add(Ether(**eth) / Dot1Q(vlan=100) / IP(src="10.11.0.1", dst="10.11.0.2")
        / TCP(sport=179, dport=50001, flags="PA", seq=5, ack=5) / ka,
        vlan=(100,), l3="ipv4", src="10.11.0.1", dst="10.11.0.2", ip_proto=6, sport=179, dport=50001,
        fragment=False)
    add(Ether(**eth) / Dot1AD(vlan=10) / Dot1Q(vlan=20) / IP(src="10.12.0.1", dst="10.12.0.2")
        / UDP(sport=1000, dport=2000) / b"qinq",
        vlan=(10, 20), l3="ipv4", src="10.12.0.1", dst="10.12.0.2", ip_proto=17, sport=1000,
        dport=2000, fragment=False)
    add(Ether(**eth) / IPv6(src="2001:db8:e::1", dst="2001:db8:e::2")
        / IPv6ExtHdrHopByHop(options=[RouterAlert()])
        / IPv6ExtHdrRouting(type=0, addresses=["2001:db8:e::9"], segleft=0)
        / TCP(sport=179, dport=50002, flags="PA", seq=9, ack=9) / ka,
        l3="ipv6", src="2001:db8:e::1", dst="2001:db8:e::2", ip_proto=6, sport=179, dport=50002,
        fragment=False)
    big6 = IPv6(src="2001:db8:f::1", dst="2001:db8:f::2") / IPv6ExtHdrFragment(id=77, m=1, offset=0) \
        / UDP(sport=7000, dport=7001) / (b"F" * 64)
    add(Ether(**eth) / big6, l3="ipv6", src="2001:db8:f::1", dst="2001:db8:f::2", ip_proto=17,
        fragment=True)
    frag6b = IPv6(src="2001:db8:f::1", dst="2001:db8:f::2", nh=44) / IPv6ExtHdrFragment(
        id=77, m=0, offset=9, nh=17) / (b"G" * 16)
    add(Ether(**eth) / frag6b, l3="ipv6", src="2001:db8:f::1", dst="2001:db8:f::2", ip_proto=17,
        fragment=True)
    whole = IP(src="10.13.0.1", dst="10.13.0.2", id=4242) / UDP(sport=8000, dport=8001) / (b"P" * 100)
    for piece in fragment(whole, fragsize=64):
        add(Ether(**eth) / piece, l3="ipv4", src="10.13.0.1", dst="10.13.0.2", ip_proto=17,
            fragment=True)
    path = outdir / "l3_variants.pcap"
    _write(frames, path)
    return Crafted("l3_variants", path, packets=_with_ts(frames, False), frames=len(frames.records))


# --- malformed ----------------------------------------------------------------------------------

def build_bad_bgp(outdir: Path) -> Crafted:
    """Good BGP messages around bad ones, each bad message in its own TCP connection so the
    reassembly of the good ones is not disturbed: marker not all ones, length that lies (< 19 and
    beyond the data), attribute length past the end of the attributes."""
    frames = Frames()
    bad_frames: list[int] = []
    good: list[TcpFlow] = []
    hosts = [(Host(f"02:00:00:0c:00:{i:02x}", f"10.12.{i}.1"),
              Host(f"02:00:00:0c:01:{i:02x}", f"10.12.{i}.2")) for i in range(6)]
    emit = ether_tcp_emit(frames)
    bad_messages = [
        m.message(m.KEEPALIVE, b"", marker=b"\xff" * 15 + b"\x00"),           # bad marker
        m.message(m.KEEPALIVE, b"", length=12),                               # length < 19
        m.update(attributes=[m.origin(0)], attr_len=200),                     # attrs past the end
        m.update(attributes=[m.attribute(m.TRANSITIVE, 1, b"\x00", length=90)],  # attr len lies
                 nlri=[m.prefix("10.0.0.0/8")]),
        m.update(attributes=[m.origin(0)], nlri=[b"\x21\x0a\x00\x00\x00\x00"]),  # /33 in IPv4 NLRI
    ]
    for i, bad in enumerate(bad_messages):
        a, b = hosts[i]
        flow = TcpFlow(emit, a, b, 42000 + i, 179)
        flow.queue("ab", *simple(m.keepalive()))
        flow.send("ab")
        flow.queue("ab", bad)
        bad_frames.append(flow.send("ab")[0])  # type: ignore[arg-type]
        good.append(flow)
    a, b = hosts[5]
    flow = TcpFlow(emit, a, b, 42100, 179)
    flow.queue("ab", *bgp_update(nlri=["10.77.0.0/16"], segments=[(m.AS_SEQUENCE, [AS_A])],
                                 next_hop="10.12.5.1"))
    flow.send("ab")
    good.append(flow)
    path = outdir / "bad_bgp.pcap"
    n = _write(frames, path)
    crafted = Crafted("bad_bgp", path, bgp=frames_bgp(good), frames=n)
    crafted.packets = {f: {"bad_bgp": True} for f in bad_frames}
    return crafted


def build_bad_packets(outdir: Path) -> Crafted:
    """Good frames with bad ones in between: VXLAN shorter than its header, an IPv4 header cut,
    a nesting of 20 VXLAN levels, a frame shorter than Ethernet."""
    from scapy.layers.inet import ICMP, IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN

    frames = Frames()
    eth = Ether(src="02:00:00:0d:00:01", dst="02:00:00:0d:00:02")
    good = eth / IP(src="10.14.0.1", dst="10.14.0.2") / ICMP() / b"ok"
    frames.add(bytes(good))
    frames.add(bytes(eth / IP(src="10.14.0.1", dst="10.14.0.2") / UDP(sport=1, dport=4789))
               + b"\x08\x00")                                                    # VXLAN too short
    frames.add(bytes(good))
    frames.add(bytes(Ether(src="02:00:00:0d:00:01", dst="02:00:00:0d:00:02", type=0x0800))
               + bytes(IP(src="10.14.0.1", dst="10.14.0.2"))[:11])                 # IPv4 cut
    pkt: object = good
    for level in range(20):
        pkt = eth / IP(src=f"10.15.{level}.1", dst=f"10.15.{level}.2") / UDP(
            sport=50000 + level, dport=4789) / VXLAN(vni=1000 + level, flags=0x08) / pkt
    frames.add(bytes(pkt))                                                         # 20 levels
    frames.add(b"\x02\x00\x00")                                                    # 3-byte frame
    frames.add(bytes(good))
    path = outdir / "bad_packets.pcap"
    n = _write(frames, path)
    return Crafted("bad_packets", path, frames=n,
                   packets={2: {"bad": "vxlan"}, 4: {"bad": "ipv4"}, 5: {"bad": "depth"},
                            6: {"bad": "short"}, 1: {"good": True}, 3: {"good": True},
                            7: {"good": True}},
                   decode_as=("udp.port==8472,vxlan",))


def build_bad_files(outdir: Path) -> dict[str, Path]:
    """Files that are not usable captures at all (expected: UnusableInput, exit 4) and files whose
    last record is cut (expected: the complete records decoded)."""
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether
    good = [Record(T0_NS + i * STEP_NS, bytes(Ether() / IP(src="10.16.0.1", dst="10.16.0.2")
                                              / ICMP(seq=i))) for i in range(3)]
    from tests.craft.pcapfile import pcap_bytes, pcapng_bytes
    whole = pcap_bytes(good, LINKTYPE_ETHERNET)
    files = {
        "empty": b"",
        "garbage": bytes((i * 37 + 11) % 256 for i in range(500)),
        "text": b"this is not a capture\n" * 10,
        "short_header": whole[:10],
        "unknown_linktype": pcap_bytes(good, 4242),
        "truncated_record": whole[:-5],
        "truncated_record_header": whole[:24 + 16 + len(good[0].data) + 7],
        "pcapng_truncated_block": pcapng_bytes([Interface(LINKTYPE_ETHERNET, "eth0")], good)[:-9],
    }
    out = {}
    for name, data in files.items():
        p = outdir / f"bad_{name}.pcap"
        p.write_bytes(data)
        out[name] = p
    return out


def build_all(outdir: Path) -> dict[str, Crafted]:
    outdir.mkdir(parents=True, exist_ok=True)
    items = [build_bgp_session(outdir), build_bgp_gap(outdir), build_bgp_port1790(outdir),
             build_bgp_as2(outdir), build_tunnels(outdir), build_arp(outdir),
             build_l3_variants(outdir), build_bad_bgp(outdir), build_bad_packets(outdir)]
    items += build_pcap_variants(outdir) + build_link_types(outdir)
    return {c.name: c for c in items}
