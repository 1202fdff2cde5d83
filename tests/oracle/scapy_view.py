"""The scapy view of a capture, reduced to the normal form of :mod:`tests.oracle.normal`.

scapy's own faults are handled here rather than inherited:

* it does no TCP reassembly, so a small per-direction reassembler (SYN or first payload sets the
  start; retransmissions dropped; out-of-order segments held until the hole fills; nothing is
  emitted across a hole that never fills) feeds it whole BGP messages;
* it decodes AS numbers as 2 octets unless told (``bgp_module_conf.use_2_bytes_asn``), so the
  caller passes what the OPENs negotiated;
* its COMMUNITIES layer keeps only the first community and leaves the rest as Raw bytes, which are
  read here 4 octets at a time;
* it knows nothing of ADD-PATH (RFC 7911): callers must not compare prefixes of messages that carry
  path identifiers;
* VXLAN is bound to UDP 8472 (and other given ports) explicitly;
* its IPerror/UDPerror (the packet quoted in an ICMP error) are subclasses of IP/UDP, so the walk
  over layers stops at ICMP.
"""
from __future__ import annotations

import struct
from functools import lru_cache
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.oracle.normal import (ArpFact, BgpMsg, FrameBgp, Route, TunnelLayer, as_path_text,
                                 canon_ip, canon_prefix, community_text)


def _packets(path: Path, vxlan_ports: Sequence[int]) -> Iterator[tuple[int, Any]]:
    from scapy.layers.inet import UDP
    from scapy.layers.vxlan import VXLAN
    from scapy.packet import bind_layers
    from scapy.utils import PcapNgReader, PcapReader
    for port in vxlan_ports:
        bind_layers(UDP, VXLAN, dport=port)
    import scapy.contrib.geneve  # noqa: F401  (binds UDP 6081)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    reader = PcapNgReader(str(path)) if magic == b"\x0a\x0d\x0d\x0a" else PcapReader(str(path))
    with reader:
        for i, pkt in enumerate(reader, 1):
            yield i, pkt


@dataclass
class _Direction:
    next_seq: int | None = None
    pending: dict[int, bytes] = field(default_factory=dict)
    buffer: bytearray = field(default_factory=bytearray)

    def feed(self, seq: int, syn: bool, data: bytes) -> None:
        if syn:
            self.next_seq = (seq + 1) & 0xFFFFFFFF
            return
        if not data:
            return
        if self.next_seq is None:
            self.next_seq = seq
        self.pending.setdefault(seq, data)
        progressed = True
        while progressed:
            progressed = False
            for s, d in list(self.pending.items()):
                off = (self.next_seq - s) & 0xFFFFFFFF
                if off >= 0x80000000:        # starts after next_seq: a hole before it
                    continue
                del self.pending[s]
                if off < len(d):
                    self.buffer += d[off:]
                    self.next_seq = (s + len(d)) & 0xFFFFFFFF
                    progressed = True

    def messages(self) -> Iterator[bytes]:
        while len(self.buffer) >= 19:
            length = struct.unpack("!H", self.buffer[16:18])[0]
            if length < 19 or len(self.buffer) < length:
                return
            yield bytes(self.buffer[:length])
            del self.buffer[:length]


class _ScapyCannot(Exception):
    """scapy cannot decode this message (one of its known gaps): the frame is not compared."""


def _rest(layer: Any) -> bytes:
    from scapy.packet import Raw
    return bytes(layer[Raw].load) if layer.haslayer(Raw) else b""


def _route_facts(upd: Any) -> BgpMsg:
    as_path = as4_path = ""
    next_hops: list[str] = []
    mp_next_hops: list[str] = []
    comms: list[str] = []
    large: list[str] = []
    mp_nlri: list[str] = []
    mp_gone: list[str] = []
    for attr in upd.path_attr:
        a = attr.attribute
        code = attr.type_code
        if code == 2:
            as_path = as_path_text((s.segment_type, s.segment_value) for s in a.segments)
        elif code == 17:   # scapy's AS4_PATH holds one segment; any further ones stay Raw
            if len(_rest(a)):
                raise _ScapyCannot("AS4_PATH with more than one segment")
            as4_path = as_path_text([(a.segment_type, a.segment_value)])
        elif code == 3:
            next_hops.append(canon_ip(a.next_hop))
        elif code == 8:
            comms.append(community_text(a.community))
            comms += [community_text(v) for (v,) in struct.iter_unpack("!I", _rest(a))]
        elif code == 32:
            large += [f"{s.global_administrator}:{s.local_data_part1}:{s.local_data_part2}"
                      for s in a.segments]
            # scapy parses the first large community only; the others are left as Raw
            large += [f"{x}:{y}:{z}" for x, y, z in struct.iter_unpack("!III", _rest(a))]
        elif code == 14:
            if a.afi == 2:
                mp_next_hops.append(canon_ip(a.nh_v6_global))
                if a.nh_addr_len == 32:
                    mp_next_hops.append(canon_ip(a.nh_v6_link_local))
            else:
                mp_next_hops.append(canon_ip(a.nh_v4_addr))
            mp_nlri += [n.prefix for n in a.nlri]
        elif code == 15:
            spec = a.afi_safi_specific
            if spec is not None and hasattr(spec, "withdrawn_routes"):
                mp_gone += [n.prefix for n in spec.withdrawn_routes]

    def route(p: str, nhs: list[str]) -> Route:
        return Route(canon_prefix(p), None, as_path, as4_path, tuple(nhs), tuple(sorted(comms)),
                     tuple(sorted(large)))

    routes = [route(n.prefix, next_hops) for n in upd.nlri] + [route(p, mp_next_hops) for p in mp_nlri]
    gone = [(canon_prefix(w.prefix), None) for w in upd.withdrawn_routes]
    gone += [(canon_prefix(p), None) for p in mp_gone]
    return BgpMsg(2, tuple(routes), tuple(gone))


def _message(raw: bytes) -> BgpMsg:
    try:
        return _parse(raw)
    except _ScapyCannot:
        raise
    except Exception as err:  # scapy raises all sorts on bytes it does not expect
        raise _ScapyCannot(repr(err)) from err


def _parse(raw: bytes) -> BgpMsg:
    from scapy.contrib.bgp import BGPHeader, BGPNotification, BGPUpdate
    hdr = BGPHeader(raw)
    if hdr.type == 2:
        if not hdr.haslayer(BGPUpdate):
            raise _ScapyCannot("UPDATE not parsed")
        return _route_facts(hdr[BGPUpdate])
    if hdr.type == 3:
        n = hdr[BGPNotification]
        return BgpMsg(3, notification=(n.error_code, n.error_subcode))
    return BgpMsg(hdr.type)


@lru_cache(maxsize=64)   # read-only results, immutable captures
def bgp_frames(path: Path, bgp_ports: Sequence[int] = (179,), four_octet: bool = True,
               vxlan_ports: Sequence[int] = (4789, 8472)) -> tuple[dict[int, FrameBgp], set[int]]:
    """frame -> the BGP messages completing in it, per scapy's BGP layer on reassembled bytes;
    and the frames holding a message scapy cannot decode (not to be compared)."""
    from scapy.contrib import bgp
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    bgp.bgp_module_conf.use_2_bytes_asn = not four_octet
    streams: dict[tuple[str, int, str, int], _Direction] = {}
    out: dict[int, FrameBgp] = {}
    cannot: set[int] = set()
    for frame, pkt in _packets(path, vxlan_ports):
        if not pkt.haslayer(TCP):
            continue
        tcp = pkt[TCP]
        # The innermost TCP (a tunnelled session) is the one that carries BGP.
        n = 1
        while pkt.getlayer(TCP, n + 1) is not None:
            n += 1
        tcp = pkt.getlayer(TCP, n)
        if tcp.sport not in bgp_ports and tcp.dport not in bgp_ports:
            continue
        ip = tcp.underlayer
        if isinstance(ip, IP):
            data_len = ip.len - ip.ihl * 4 - tcp.dataofs * 4
        elif isinstance(ip, IPv6):
            data_len = ip.plen - tcp.dataofs * 4
        else:
            continue
        data = bytes(tcp.payload)[:max(data_len, 0)]
        key = (str(ip.src), tcp.sport, str(ip.dst), tcp.dport)
        d = streams.setdefault(key, _Direction())
        d.feed(tcp.seq, bool(tcp.flags & 0x02), data)
        try:
            msgs = [_message(raw) for raw in d.messages()]
        except _ScapyCannot:
            cannot.add(frame)
            continue
        if msgs:
            out[frame] = FrameBgp.of(msgs)
    return out, cannot


@lru_cache(maxsize=64)   # read-only results, immutable captures
def tunnels_and_arp(path: Path, vxlan_ports: Sequence[int] = (4789, 8472)
                    ) -> tuple[dict[int, tuple[TunnelLayer, ...]], dict[int, tuple[ArpFact, int]]]:
    """Per frame the tunnel layers (outermost first) and the ARP fact with its tunnel depth."""
    from scapy.contrib.geneve import GENEVE
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import ARP, Ether
    from scapy.layers.vxlan import VXLAN
    tunnels: dict[int, tuple[TunnelLayer, ...]] = {}
    arps: dict[int, tuple[ArpFact, int]] = {}
    for frame, pkt in _packets(path, vxlan_ports):
        found: list[TunnelLayer] = []
        ip_layer = udp_layer = None
        layer = pkt
        while layer is not None and layer.__class__.__name__ != "NoPayload":
            if isinstance(layer, ICMP) or layer.__class__.__name__.startswith("ICMPv6"):
                break   # what follows an ICMP error is a quote (IPerror/UDPerror), not traffic
            if isinstance(layer, (IP, IPv6)):
                ip_layer = layer
            elif isinstance(layer, UDP):
                udp_layer = layer
            elif isinstance(layer, (VXLAN, GENEVE)) and ip_layer is not None and udp_layer is not None:
                inner = layer.payload
                isrc = idst = proto = sport = dport = None
                if isinstance(inner, Ether) and isinstance(inner.payload, (IP, IPv6)):
                    l3 = inner.payload
                    isrc, idst = canon_ip(l3.src), canon_ip(l3.dst)
                    last = l3    # the upper-layer protocol follows any IPv6 extension headers
                    while last.payload.__class__.__name__.startswith("IPv6ExtHdr"):
                        last = last.payload
                    proto = int(l3.proto if isinstance(l3, IP) else last.nh)
                    if isinstance(last.payload, (TCP, UDP)):
                        sport, dport = int(last.payload.sport), int(last.payload.dport)
                found.append(TunnelLayer(
                    "vxlan" if isinstance(layer, VXLAN) else "geneve", int(layer.vni),
                    canon_ip(ip_layer.src), canon_ip(ip_layer.dst), int(udp_layer.dport),
                    inner.src.lower() if isinstance(inner, Ether) else "",
                    inner.dst.lower() if isinstance(inner, Ether) else "", isrc, idst,
                    proto, sport, dport))
                ip_layer = udp_layer = None
            elif isinstance(layer, ARP):
                arps[frame] = (ArpFact(int(layer.op), layer.hwsrc.lower(), canon_ip(layer.psrc),
                                       layer.hwdst.lower(), canon_ip(layer.pdst)), len(found))
            layer = layer.payload if layer.payload else None
        if found:
            tunnels[frame] = tuple(found)
    return tunnels, arps
