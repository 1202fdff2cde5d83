"""The per-packet decoder: one captured frame in, rows for every table out.

Contract: :class:`PacketDecoder` is fed records from :mod:`diag.decode.capture` through
``packet(frame, ts, capture_iface, linktype, data, wirelen, flags)`` and appends rows to its
column buffers (``packets``, ``tunnels``, ``arp``, ``bgp_messages``, ``bgp_routes``,
``stream_events``, ``icmp``, ``fragments``, ``lldp``); ``take()`` hands the buffered rows over and
starts new buffers, so the caller decides how large a chunk is; ``finish()`` ends the capture
(BGP streams flushed, datagrams still missing fragments reported). A packet that does not decode
becomes a ``packets`` row with a ``malformed`` reason; decoding never raises for bad packet bytes.

Per frame: link layer (:mod:`diag.decode.layers`) -> IPv4/IPv6 (extension headers walked;
fragments reassembled by :mod:`diag.decode.fragments`, the datagram decoded at the frame that
completed it, as tshark does; a first fragment still shows its ports) -> TCP on a BGP port
(reassembled by :mod:`diag.decode.bgpflow`), UDP on a VXLAN or GENEVE port (the inner frame is
decoded recursively, up to ``MAX_TUNNEL_DEPTH`` levels, so BGP or ARP inside a tunnel is still
found), ARP, or LLDP (:mod:`diag.decode.lldp`). Ports match as tshark's decode-as does: either
the source or the destination port.

``fragments`` has one row per datagram whose fate is known (:data:`FRAGMENT_COLUMNS`): at the
frame that decided it, its first frame, the fragments received, its size, the largest fragment
(IP length: what the path's MTU let through), its status (``reassembled``, ``incomplete``,
``overlap``, ``too-large``, ``truncated``, ``evicted``) and what it carried (ports, app).
"""
from __future__ import annotations

import socket
import struct
from typing import Iterable

from diag.decode.bgpflow import BgpFlows
from diag.decode.fragments import Reassembler
from diag.decode.layers import ETH_ARP, ETH_IPV4, ETH_IPV6, Malformed, ethernet, link_header
from diag.decode.lldp import ETH_LLDP, decode_lldp

MAX_TUNNEL_DEPTH = 8
MAX_IPV6_EXTENSIONS = 12
IPV6_EXTENSIONS = frozenset((0, 43, 60, 135, 139, 140))   # length = (hdr_ext_len + 1) * 8
GENEVE_PROTO_ETHERNET = 0x6558

PACKET_COLUMNS = (
    "frame", "ts", "caplen", "wirelen", "linktype", "capture_iface", "iface_name", "ifindex",
    "direction", "pkttype", "eth_src", "eth_dst", "vlan", "l3", "src", "dst", "ttl", "ip_proto",
    "fragment", "sport", "dport", "app", "tunnel_depth", "malformed",
)
TUNNEL_COLUMNS = (
    "frame", "ts", "depth", "type", "vni", "outer_src", "outer_dst", "outer_sport", "outer_dport",
    "inner_eth_src", "inner_eth_dst", "inner_l3", "inner_src", "inner_dst", "inner_proto",
    "inner_sport", "inner_dport", "flags", "geneve_options", "malformed",
)
ARP_COLUMNS = (
    "frame", "ts", "capture_iface", "iface_name", "direction", "tunnel_depth", "op", "sender_mac",
    "sender_ip", "target_mac", "target_ip", "gratuitous", "vlan", "malformed",
)
STREAM_EVENT_COLUMNS = ("frame", "ts", "src", "sport", "dst", "dport", "session",
                        "tunnel_depth", "event", "detail")
ICMP_COLUMNS = ("frame", "ts", "capture_iface", "iface_name", "direction", "tunnel_depth", "l3",
                "src", "dst", "type", "code", "type_name", "mtu", "orig_src", "orig_dst",
                "orig_proto", "orig_sport", "orig_dport", "malformed")
# ICMP errors, which quote the packet they are about: (l3, type) -> name
ICMP_ERRORS = {("ipv4", 3): "destination-unreachable", ("ipv4", 4): "source-quench",
               ("ipv4", 5): "redirect", ("ipv4", 11): "time-exceeded",
               ("ipv4", 12): "parameter-problem", ("ipv6", 1): "destination-unreachable",
               ("ipv6", 2): "packet-too-big", ("ipv6", 3): "time-exceeded",
               ("ipv6", 4): "parameter-problem"}
ICMP4_ERROR_TYPES = frozenset(t for (l3, t) in ICMP_ERRORS if l3 == "ipv4")
FRAGMENT_COLUMNS = ("frame", "ts", "first_frame", "capture_iface", "iface_name",
                    "tunnel_depth", "l3", "src", "dst", "ip_id", "ip_proto", "fragments", "size",
                    "largest_fragment", "status", "sport", "dport", "app")
_DECODE_ERRORS = (Malformed, struct.error, IndexError, ValueError, OSError)

_u16 = struct.Struct("!H").unpack_from
_u32 = struct.Struct("!I").unpack_from
_ipv4_head = struct.Struct("!BBHHHBBH4s4s").unpack_from
_ports = struct.Struct("!HH").unpack_from
_tcp_head = struct.Struct("!HHIIBB").unpack_from
_arp_head = struct.Struct("!HHBBH").unpack_from
_ntoa = socket.inet_ntoa
_ntop = socket.inet_ntop
AF_INET6 = socket.AF_INET6
ARP_OPS = {1: "request", 2: "reply"}
L3_NAMES = {ETH_IPV4: "ipv4", ETH_IPV6: "ipv6", ETH_ARP: "arp", ETH_LLDP: "lldp"}

# what _network returns: (l3, src, dst, ttl, proto, fragment, sport, dport, app, depth, malformed)
_Net = tuple


class PacketDecoder:
    def __init__(self, bgp_ports: Iterable[int] = (179,), vxlan_ports: Iterable[int] = (4789, 8472),
                 geneve_ports: Iterable[int] = (6081,),
                 iface_names: dict[int, str | None] | None = None,
                 reassembler: Reassembler | None = None) -> None:
        self.bgp_ports = frozenset(bgp_ports)
        self.vxlan_ports = frozenset(vxlan_ports)
        self.geneve_ports = frozenset(geneve_ports)
        self.iface_names = iface_names if iface_names is not None else {}
        self.packets: list[tuple] = []
        self.tunnels: list[tuple | None] = []
        self.arp: list[tuple] = []
        self.bgp_messages: list[tuple] = []
        self.bgp_routes: list[tuple] = []
        self.stream_events: list[dict] = []
        self.icmp: list[tuple] = []
        self.fragments: list[tuple] = []
        self.lldp: list[tuple] = []
        # shared with a shadow decoder in diag.decode.parallel, which feeds it the fragments of
        # the blocks another worker decodes (reassembly crosses blocks)
        self.reassembler = reassembler if reassembler is not None else Reassembler()
        self.bgp = BgpFlows(self.bgp_messages.append, self.bgp_routes.append,
                            self.stream_events.append)
        self.last_frame, self.last_ts = 0, 0.0
        # per-packet context used by nested decoders (set at the start of each packet)
        self._frame, self._ts, self._iface, self._iface_name, self._direction = 0, 0.0, 0, None, None
        self._vlan = self._eth_src = self._ifindex = None

    # --- chunking --------------------------------------------------------------------------
    def take(self) -> dict[str, list]:
        out = {"packets": self.packets, "tunnels": [t for t in self.tunnels if t is not None],
               "arp": self.arp, "bgp_messages": self.bgp_messages, "bgp_routes": self.bgp_routes,
               "stream_events": self.stream_events, "icmp": self.icmp,
               "fragments": self.fragments, "lldp": self.lldp}
        self.packets, self.tunnels, self.arp, self.icmp = [], [], [], []
        self.fragments, self.lldp = [], []
        self.bgp_messages, self.bgp_routes, self.stream_events = [], [], []
        self.bgp.on_message = self.bgp_messages.append
        self.bgp.on_route = self.bgp_routes.append
        self.bgp.on_event = self.stream_events.append
        return out

    def finish(self) -> None:
        self.bgp.flush(self.last_frame, self.last_ts)
        self.finish_fragments()

    def finish_fragments(self) -> None:
        """End of capture for IP reassembly: datagrams still missing fragments are reported."""
        self._frame, self._ts, self._iface, self._iface_name = (self.last_frame, self.last_ts,
                                                                 None, None)
        for outcome in self.reassembler.flush():
            self._fragment_row(outcome, None)

    def damaged(self, frame: int, reason: str) -> None:
        """The capture file itself is damaged at ``frame``: record it as a malformed row."""
        self.packets.append((frame, self.last_ts, 0, 0, None, None, None, None, None, None, None,
                             None, None, None, None, None, None, None, False, None, None, "", 0,
                             reason))

    # --- one frame -------------------------------------------------------------------------
    def packet(self, frame: int, ts: float, capture_iface: int, linktype: int, data: bytes,
               wirelen: int, flags: int) -> None:
        self.last_frame, self.last_ts = frame, ts
        direction = ("in", "out", None)[(flags & 3) - 1] if flags & 3 else None
        iface_name = self.iface_names.get(capture_iface)
        self._frame, self._ts, self._iface = frame, ts, capture_iface
        self._iface_name = iface_name
        try:
            offset, etype, eth_src, eth_dst, vlan, ifindex, pkttype = link_header(linktype, data)
        except Malformed as err:
            self.packets.append((frame, ts, len(data), wirelen, linktype, capture_iface, iface_name,
                                 None, direction, None, None, None, None, None, None, None, None,
                                 None, False, None, None, "", 0, str(err)))
            return
        if pkttype is not None and direction is None:
            direction = "out" if pkttype == "outgoing" else "in"
        self._direction = direction
        self._vlan = vlan
        self._eth_src = eth_src
        self._ifindex = ifindex
        try:
            net = self._network(etype, data, offset, len(data), 0)
        except (Malformed, struct.error, IndexError, ValueError, OSError) as err:
            net = (L3_NAMES.get(etype, f"0x{etype:04x}"), None, None, None, None, False, None,
                   None, "", 0, _reason(err))
        l3, src, dst, ttl, proto, fragment, sport, dport, app, depth, malformed = net
        self.packets.append((frame, ts, len(data), wirelen, linktype, capture_iface, iface_name,
                             ifindex, direction, pkttype, eth_src, eth_dst, vlan, l3, src, dst, ttl,
                             proto, fragment, sport, dport, app, depth, malformed))

    def may_hold_fragment(self, linktype: int, data: bytes) -> bool:
        """Could :meth:`packet` feed an IP fragment to reassembly for this frame (at any tunnel
        depth)? Never a wrong no: when unsure (a header it cannot read), yes."""
        try:
            offset, etype = link_header(linktype, data)[:2]
            return self._holds_fragment(etype, data, offset, len(data), 0)
        except _DECODE_ERRORS:
            return True

    def _holds_fragment(self, etype: int, data: bytes, off: int, end: int, depth: int) -> bool:
        if depth > MAX_TUNNEL_DEPTH:
            return False
        if etype == ETH_IPV4:
            if end - off < 20:
                return False
            if _u16(data, off + 6)[0] & 0x3FFF:
                return True
            proto, l4 = data[off + 9], off + (data[off] & 15) * 4
            ip_end = min(end, off + _u16(data, off + 2)[0])
        elif etype == ETH_IPV6:
            if end - off < 40:
                return False
            plen = _u16(data, off + 4)[0]
            ip_end = min(end, off + 40 + plen) if plen else end
            proto, l4, frag = _ipv6_extensions(data, off + 40, ip_end, data[off + 6])
            if frag is not None and frag[0] & 0xFFF9:
                return True
            if frag is not None:                 # an atomic fragment: look past it as packet() does
                proto, l4, _again = _ipv6_extensions(data, l4, ip_end, proto)
        else:
            return False
        if proto != 17 or ip_end - l4 < 16:
            return False
        sport, dport = _ports(data, l4)
        tunnel = self.vxlan_ports | self.geneve_ports
        if sport not in tunnel and dport not in tunnel:
            return False
        if (dport in self.vxlan_ports or (dport not in self.geneve_ports
                                          and sport in self.vxlan_ports)):
            i_off, i_etype = ethernet(data, l4 + 16, ip_end)[:2]
        else:
            opt_end = l4 + 16 + (data[l4 + 8] & 0x3F) * 4
            proto_type = _u16(data, l4 + 10)[0]
            if proto_type == GENEVE_PROTO_ETHERNET:
                i_off, i_etype = ethernet(data, opt_end, ip_end)[:2]
            else:
                i_off, i_etype = opt_end, proto_type
        return self._holds_fragment(i_etype, data, i_off, ip_end, depth + 1)

    def _network(self, etype: int, data: bytes, off: int, end: int, depth: int) -> _Net:
        if etype == ETH_IPV4:
            if end - off < 20:
                raise Malformed("IPv4 header truncated")
            vihl, _tos, total, ident, frag, ttl, proto, _ck, s, d = _ipv4_head(data, off)
            if vihl >> 4 != 4:
                raise Malformed(f"IP version {vihl >> 4} in an IPv4 frame")
            ihl = (vihl & 15) * 4
            if ihl < 20 or total < ihl:
                raise Malformed("IPv4 header length invalid")
            src, dst = _ntoa(s), _ntoa(d)
            ip_end = off + total
            truncated = ip_end > end
            if truncated:
                ip_end = end
            if frag & 0x3FFF:         # more fragments, or not the first: reassembly
                offset = (frag & 0x1FFF) * 8

                def datagram(payload: bytes, upper: int) -> _Net:
                    return self._transport("ipv4", src, dst, ttl, upper, False, payload, 0,
                                           len(payload), False, depth)

                net = self._fragment(("ipv4", depth, src, dst, ident, proto, *self._where()),
                                     offset,
                                     bool(frag & 0x2000), data[off + ihl:ip_end], total,
                                     truncated, proto, datagram)
                if net is not None:
                    return net
                if offset:            # not the first fragment: no transport header here
                    return ("ipv4", src, dst, ttl, proto, True, None, None, "", depth, None)
            return self._transport("ipv4", src, dst, ttl, proto, bool(frag & 0x3FFF), data,
                                   off + ihl, ip_end, truncated, depth)
        if etype == ETH_IPV6:
            if end - off < 40:
                raise Malformed("IPv6 header truncated")
            if data[off] >> 4 != 6:
                raise Malformed(f"IP version {data[off] >> 4} in an IPv6 frame")
            (plen,) = _u16(data, off + 4)
            nh, hlim = data[off + 6], data[off + 7]
            src = _ntop(AF_INET6, data[off + 8:off + 24])
            dst = _ntop(AF_INET6, data[off + 24:off + 40])
            p = off + 40
            ip_end = p + plen if plen else end
            truncated = ip_end > end
            if truncated:
                ip_end = end
            nh, p, frag = _ipv6_extensions(data, p, ip_end, nh)
            if frag is None:
                return self._transport("ipv6", src, dst, hlim, nh, False, data, p, ip_end,
                                       truncated, depth)
            offset_flags, ident = frag
            offset, more = offset_flags & 0xFFF8, bool(offset_flags & 1)
            if offset or more:        # a real fragment (not an atomic one, RFC 6946)

                def datagram(payload: bytes, upper: int) -> _Net:
                    inner_nh, at, again = _ipv6_extensions(payload, 0, len(payload), upper)
                    if again is not None:
                        raise Malformed("IPv6 fragment header inside a reassembled datagram")
                    return self._transport("ipv6", src, dst, hlim, inner_nh, False, payload, at,
                                           len(payload), False, depth)

                net = self._fragment(("ipv6", depth, src, dst, ident, None, *self._where()),
                                     offset, more,
                                     data[p:ip_end], 40 + plen if plen else end - off,
                                     truncated, nh if offset == 0 else None, datagram)
                if net is not None:
                    return net
                if offset:
                    return ("ipv6", src, dst, hlim, nh, True, None, None, "", depth, None)
            nh, p, _again = _ipv6_extensions(data, p, ip_end, nh)
            return self._transport("ipv6", src, dst, hlim, nh, True, data, p, ip_end,
                                   truncated, depth)
        if etype == ETH_ARP:
            return self._arp(data, off, end, depth)
        if etype == ETH_LLDP:
            row, problem = decode_lldp(data, off, end)
            self.lldp.append((self._frame, self._ts, self._iface, self._iface_name,
                              self._ifindex, depth, self._eth_src, self._vlan, *row, problem))
            return ("lldp", None, None, None, None, False, None, None, "lldp", depth, problem)
        return (f"0x{etype:04x}" if etype >= 0x0600 else "llc", None, None, None, None, False,
                None, None, "", depth, None)

    def _where(self) -> tuple:
        """The end of a fragment's reassembly key: a datagram's copies seen on different
        interfaces or in different directions (``tcpdump -i any``) are reassembled apart."""
        return self._iface, self._ifindex, self._direction

    def _fragment(self, key: tuple, offset: int, more: bool, payload: bytes, packet_len: int,
                  truncated: bool, proto: int | None, datagram) -> _Net | None:
        """Feed one fragment to reassembly; a row per datagram decided now; when this fragment
        completed its datagram, the datagram decoded by ``datagram(payload, upper protocol)``
        (the frame's result, marked a fragment), else None."""
        net = None
        for outcome in self.reassembler.add(key, offset, more, payload, packet_len, self._frame,
                                            self._ts, proto, truncated):
            decoded = None
            if outcome.status == "reassembled" and outcome.key == key:
                try:
                    decoded = datagram(outcome.payload, outcome.proto)
                except _DECODE_ERRORS as err:
                    decoded = (key[0], key[2], key[3], None, outcome.proto, True, None, None, "",
                               key[1], f"reassembled datagram: {_reason(err)}")
                net = decoded[:5] + (True,) + decoded[6:]
            self._fragment_row(outcome, decoded)
        return net

    def _fragment_row(self, outcome, decoded: _Net | None) -> None:
        l3, depth, src, dst, ident = outcome.key[:5]
        sport, dport, app = (decoded[6], decoded[7], decoded[8]) if decoded else (None, None, "")
        self.fragments.append((self._frame, self._ts, outcome.first_frame, self._iface,
                               self._iface_name, depth, l3, src, dst, ident, outcome.proto,
                               outcome.fragments, outcome.size, outcome.largest, outcome.status,
                               sport, dport, app))

    def _transport(self, l3: str, src: str, dst: str, ttl: int, proto: int, fragment: bool,
                   data: bytes, l4: int, ip_end: int, truncated: bool, depth: int) -> _Net:
        if proto == 6:
            if ip_end - l4 < 20:
                return (l3, src, dst, ttl, proto, fragment, None, None, "", depth,
                        "TCP header truncated")
            sport, dport, seq, _ack, doff, flags = _tcp_head(data, l4)
            if sport in self.bgp_ports or dport in self.bgp_ports:
                hlen = (doff >> 4) * 4
                if hlen < 20 or l4 + hlen > ip_end:
                    return (l3, src, dst, ttl, proto, fragment, sport, dport, "bgp", depth,
                            "TCP header length invalid")
                if truncated or fragment:
                    # bytes we do not have: reassembly sees a hole and reports a gap later
                    return (l3, src, dst, ttl, proto, fragment, sport, dport, "bgp", depth,
                            "TCP segment truncated by the capture (snaplen)" if truncated else None)
                self.bgp.segment(src, sport, dst, dport, seq, flags, data[l4 + hlen:ip_end],
                                 self._frame, self._ts, depth,
                                 data[l4 + 20:l4 + hlen] if flags & 0x02 else b"")
                return (l3, src, dst, ttl, proto, fragment, sport, dport, "bgp", depth, None)
            return (l3, src, dst, ttl, proto, fragment, sport, dport, "", depth, None)
        if proto == 17:
            if ip_end - l4 < 8:
                return (l3, src, dst, ttl, proto, fragment, None, None, "", depth,
                        "UDP header truncated")
            sport, dport = _ports(data, l4)
            if fragment:
                return (l3, src, dst, ttl, proto, True, sport, dport, "", depth, None)
            kind = None
            if dport in self.vxlan_ports:
                kind = "vxlan"
            elif dport in self.geneve_ports:
                kind = "geneve"
            elif sport in self.vxlan_ports:
                kind = "vxlan"
            elif sport in self.geneve_ports:
                kind = "geneve"
            if kind is None:
                return (l3, src, dst, ttl, proto, fragment, sport, dport, "", depth, None)
            inner_depth, malformed = self._tunnel(kind, data, l4 + 8, ip_end, depth,
                                                  src, dst, sport, dport)
            return (l3, src, dst, ttl, proto, fragment, sport, dport, kind, inner_depth, malformed)
        if (proto == 1 and l3 == "ipv4") or (proto == 58 and l3 == "ipv6"):
            if ip_end - l4 >= 8 and not fragment:
                self._icmp(l3, src, dst, data, l4, ip_end, depth)
            return (l3, src, dst, ttl, proto, fragment, None, None, "", depth, None)
        if proto == 132 or proto == 33:  # SCTP, DCCP: ports at the same place
            if ip_end - l4 >= 4:
                sport, dport = _ports(data, l4)
                return (l3, src, dst, ttl, proto, fragment, sport, dport, "", depth, None)
        return (l3, src, dst, ttl, proto, fragment, None, None, "", depth, None)

    def _icmp(self, l3: str, src: str, dst: str, data: bytes, l4: int, end: int,
              depth: int) -> None:
        """An ICMP/ICMPv6 error: its type, the MTU it announces and the packet it quotes."""
        icmp_type, code = data[l4], data[l4 + 1]
        name = ICMP_ERRORS.get((l3, icmp_type))
        if name is None:
            return                                   # echo and friends: not an error
        mtu = None
        if l3 == "ipv4" and icmp_type == 3 and code == 4:
            mtu = _u16(data, l4 + 6)[0]              # RFC 1191 next-hop MTU
        elif l3 == "ipv6" and icmp_type == 2:
            mtu = struct.unpack_from("!I", data, l4 + 4)[0]
        q = l4 + 8
        osrc = odst = oproto = osport = odport = None
        malformed = None
        if end - q >= 20 and data[q] >> 4 == 4:
            ihl = (data[q] & 0x0F) * 4
            oproto, osrc, odst = data[q + 9], _ntoa(data[q + 12:q + 16]), _ntoa(data[q + 16:q + 20])
            if end - (q + ihl) >= 4 and not _u16(data, q + 6)[0] & 0x1FFF:
                osport, odport = _ports(data, q + ihl)
        elif end - q >= 40 and data[q] >> 4 == 6:
            oproto = data[q + 6]
            osrc, odst = _ntop(AF_INET6, data[q + 8:q + 24]), _ntop(AF_INET6, data[q + 24:q + 40])
            if end - (q + 40) >= 4 and oproto in (6, 17, 132, 33):
                osport, odport = _ports(data, q + 40)
        else:
            malformed = "ICMP error quotes no IP header"
        self.icmp.append((self._frame, self._ts, self._iface, self._iface_name, self._direction,
                          depth, l3, src, dst, icmp_type, code, name, mtu, osrc, odst, oproto,
                          osport, odport, malformed))

    def _tunnel(self, kind: str, data: bytes, off: int, end: int, depth: int, outer_src: str,
                outer_dst: str, sport: int, dport: int) -> tuple[int, str | None]:
        """Decode one encapsulation layer and what it carries; returns (deepest depth, problem)."""
        layer = depth + 1
        slot = len(self.tunnels)
        self.tunnels.append(None)
        vni = flags = options = None
        inner = (None,) * 9   # eth_src, eth_dst, l3, src, dst, proto, sport, dport, malformed
        deepest = layer
        try:
            if kind == "vxlan":
                if end - off < 8:
                    raise Malformed("VXLAN header truncated")
                flags = data[off]
                vni = int.from_bytes(data[off + 4:off + 7], "big")
                inner_off, inner_etype = off + 8, None
            else:
                if end - off < 8:
                    raise Malformed("GENEVE header truncated")
                ver_optlen, flags, proto = data[off], data[off + 1], _u16(data, off + 2)[0]
                if ver_optlen >> 6:
                    raise Malformed(f"GENEVE version {ver_optlen >> 6}")
                vni = int.from_bytes(data[off + 4:off + 7], "big")
                opt_end = off + 8 + (ver_optlen & 0x3F) * 4
                if opt_end > end:
                    raise Malformed("GENEVE options past the end of the packet")
                options = _geneve_options(data, off + 8, opt_end)
                inner_off = opt_end
                inner_etype = None if proto == GENEVE_PROTO_ETHERNET else proto
            if layer > MAX_TUNNEL_DEPTH:
                raise Malformed(f"encapsulation nested deeper than {MAX_TUNNEL_DEPTH} levels")
            if inner_etype is None:
                i_off, i_etype, i_esrc, i_edst, _vlan, _ifx, _pt = ethernet(data, inner_off, end)
            else:
                i_off, i_etype, i_esrc, i_edst = inner_off, inner_etype, None, None
            outer_eth, self._eth_src = self._eth_src, i_esrc     # an LLDP inside is the inner's
            try:
                net = self._network(i_etype, data, i_off, end, layer)
            except (Malformed, struct.error, IndexError, ValueError, OSError) as err:
                net = (L3_NAMES.get(i_etype, f"0x{i_etype:04x}"), None, None, None, None, False,
                       None, None, "", layer, _reason(err))
            finally:
                self._eth_src = outer_eth
            l3, src, dst, _ttl, proto4, _frag, isport, idport, _app, deepest, problem = net
            inner = (i_esrc, i_edst, l3, src, dst, proto4, isport, idport, problem)
        except (Malformed, struct.error, IndexError, ValueError) as err:
            inner = inner[:8] + (_reason(err),)
        i_esrc, i_edst, l3, src, dst, proto4, isport, idport, problem = inner
        self.tunnels[slot] = (self._frame, self._ts, layer, kind, vni, outer_src, outer_dst, sport,
                              dport, i_esrc, i_edst, l3, src, dst, proto4, isport, idport, flags,
                              options, problem)
        return deepest, (f"{kind}: {problem}" if problem and not problem.startswith(("vxlan", "geneve"))
                         else problem)

    def _arp(self, data: bytes, off: int, end: int, depth: int) -> _Net:
        if end - off < 8:
            raise Malformed("ARP header truncated")
        htype, ptype, hlen, plen, op = _arp_head(data, off)
        body = off + 8
        if end - body < 2 * (hlen + plen):
            raise Malformed("ARP addresses truncated")
        opname = ARP_OPS.get(op, str(op))
        malformed = None
        if ptype == ETH_IPV4 and plen == 4 and hlen == 6:
            sha = data[body:body + 6].hex(":")
            spa = _ntoa(data[body + 6:body + 10])
            tha = data[body + 10:body + 16].hex(":")
            tpa = _ntoa(data[body + 16:body + 20])
        else:
            sha = tha = spa = tpa = None
            malformed = f"ARP for hardware type {htype}, protocol {ptype:#06x} not decoded"
        gratuitous = spa is not None and spa == tpa
        self.arp.append((self._frame, self._ts, self._iface, self._iface_name, self._direction,
                         depth, opname, sha, spa, tha, tpa, gratuitous, self._vlan, malformed))
        return ("arp", spa, tpa, None, None, False, None, None, "arp", depth, malformed)


def _ipv6_extensions(data: bytes, p: int, end: int,
                     nh: int) -> tuple[int, int, tuple[int, int] | None]:
    """Walk IPv6 extension headers from ``p`` (next header ``nh``) up to the upper-layer header
    or a fragment header: (next header, position, (offset and flags, identification) of the
    fragment header or None)."""
    for _ in range(MAX_IPV6_EXTENSIONS):
        if nh in IPV6_EXTENSIONS:
            if p + 2 > end:
                raise Malformed("IPv6 extension header truncated")
            nh, p = data[p], p + (data[p + 1] + 1) * 8
        elif nh == 44:
            if p + 8 > end:
                raise Malformed("IPv6 fragment header truncated")
            return data[p], p + 8, (_u16(data, p + 2)[0], _u32(data, p + 4)[0])
        elif nh == 51:
            if p + 2 > end:
                raise Malformed("IPv6 authentication header truncated")
            nh, p = data[p], p + (data[p + 1] + 2) * 4
        else:
            break
    else:
        raise Malformed("too many IPv6 extension headers")
    if p > end:
        raise Malformed("IPv6 extension headers past the end of the packet")
    return nh, p, None


def _geneve_options(data: bytes, pos: int, end: int) -> list[str]:
    out = []
    while pos + 4 <= end:
        (cls,), typ, length = _u16(data, pos), data[pos + 2], (data[pos + 3] & 0x1F) * 4
        value = data[pos + 4:pos + 4 + length]
        if pos + 4 + length > end:
            raise Malformed("GENEVE option past the end of the options")
        out.append(f"class={cls:#06x} type={typ:#04x} data={value.hex()}")
        pos += 4 + length
    return out


def _reason(err: Exception) -> str:
    if isinstance(err, Malformed):
        return str(err)
    if isinstance(err, (struct.error, IndexError)):
        return "header truncated"
    return f"undecodable: {err}"
