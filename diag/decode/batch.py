"""Vectorised decoding of the common packet shapes in a block, with numpy.

Contract: ``split_block(block, ports) -> FastRows`` looks at every record of a
:class:`diag.decode.capture.Block` at once and decodes, column-wise, the frames whose fields sit at
fixed offsets:

* Ethernet (untagged), Linux SLL or SLL2 framing, then IPv4 with a 20-byte header, not a fragment,
  not truncated by the snap length, and then
* VXLAN (UDP on a VXLAN port) carrying untagged Ethernet + IPv4 (20-byte header, not a fragment)
  with TCP/UDP/ICMP/other inside — but not a tunnel or BGP inside (those recurse: slow path);
* TCP on a BGP port: header fields and payload bounds are computed here; the payload still goes,
  frame by frame and in order, through TCP reassembly (``bgp_*`` arrays);
* other TCP, UDP (not a tunnel port), ICMP and other IP protocols;
* ARP for IPv4 over Ethernet.

Everything else (VLAN tags, IPv6, IP options, fragments, GENEVE, nested tunnels, truncated or
malformed headers, other link types) is listed in ``slow`` and decoded one frame at a time by
:class:`diag.decode.frames.PacketDecoder`, which is the reference: for every frame this module
decodes, its rows are the ones PacketDecoder would produce (a test checks both paths give equal
tables). Strings (addresses, MACs) are made once per distinct value, not once per packet.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass

import numpy as np

from diag.decode.frames import ICMP4_ERROR_TYPES

ETH, SLL, SLL2 = 1, 113, 276
PKTTYPE_NAMES = np.array(["host", "broadcast", "multicast", "otherhost", "outgoing"], dtype=object)


@dataclass
class FastRows:
    slow: np.ndarray            # indices (into the block) for the per-packet decoder
    packets: dict | None        # column name -> array, for the frames decoded here
    tunnels: dict | None
    arp: dict | None
    bgp_index: np.ndarray       # indices of BGP segments decoded here (payload still to reassemble)
    bgp_src: np.ndarray
    bgp_sport: np.ndarray
    bgp_dst: np.ndarray
    bgp_dport: np.ndarray
    bgp_seq: np.ndarray
    bgp_flags: np.ndarray
    bgp_start: np.ndarray       # payload [start, end) in block.buf
    bgp_end: np.ndarray


def _ipv4_strings(values: np.ndarray) -> np.ndarray:
    uniq, inverse = np.unique(values, return_inverse=True)
    names = np.array([socket.inet_ntoa(int(v).to_bytes(4, "big")) for v in uniq.tolist()],
                     dtype=object)
    return names[inverse]


def _mac_strings(values: np.ndarray) -> np.ndarray:
    uniq, inverse = np.unique(values, return_inverse=True)
    names = np.array([int(v).to_bytes(6, "big").hex(":") for v in uniq.tolist()], dtype=object)
    return names[inverse]


def _in(values: np.ndarray, ports: frozenset[int]) -> np.ndarray:
    return np.isin(values, np.fromiter(ports, dtype=np.int64)) if ports else np.zeros(len(values), bool)


def split_block(block, bgp_ports: frozenset[int], vxlan_ports: frozenset[int],
                geneve_ports: frozenset[int], iface_names: dict[int, str | None],
                rows: bool = True) -> FastRows:
    """See the module docstring; ``rows=False`` only says which frames are ``slow`` (what a
    worker needs of the blocks other workers decode: fragments are among them)."""
    n = len(block)
    b = np.frombuffer(block.buf, dtype=np.uint8)
    offs, cap, lt = block.offsets, block.caplens, block.linktypes

    def u8(pos: np.ndarray) -> np.ndarray:
        return b[pos].astype(np.int64)

    def u16(pos: np.ndarray) -> np.ndarray:
        return (b[pos].astype(np.int64) << 8) | b[pos + 1]

    def u32(pos: np.ndarray) -> np.ndarray:
        return (u16(pos) << 16) | u16(pos + 2)

    def u48(pos: np.ndarray) -> np.ndarray:
        return (u32(pos) << 16) | u16(pos + 4)

    l2 = np.where(lt == ETH, 14, np.where(lt == SLL, 16, np.where(lt == SLL2, 20, -1)))
    cand = np.nonzero((l2 > 0) & (cap >= l2 + 28))[0]   # 28: an ARP body or IPv4 + UDP
    fast_mask = np.zeros(n, dtype=bool)
    if not len(cand):
        return _nothing(n)
    c_off, c_lt, c_l2, c_cap = offs[cand], lt[cand], l2[cand], cap[cand]
    etype = np.where(c_lt == ETH, u16(c_off + 12),
                     np.where(c_lt == SLL, u16(c_off + 14), u16(c_off)))
    net = c_off + c_l2                       # absolute position of the network header
    avail = c_cap - c_l2                     # bytes captured from there

    # ---------------- IPv4 with a 20-byte header, whole, not a fragment ----------------
    is4 = (etype == 0x0800)
    i4 = np.nonzero(is4)[0]
    p4 = net[i4]
    ok = u8(p4) == 0x45
    total = u16(p4 + 2)
    frag = u16(p4 + 6)
    ok &= (total >= 20) & (total <= avail[i4]) & ((frag & 0x3FFF) == 0)
    i4, p4, total = i4[ok], p4[ok], total[ok]
    proto = u8(p4 + 9)
    l4 = p4 + 20
    ip_end = p4 + total
    room = ip_end - l4
    sport = np.full(len(i4), -1, dtype=np.int64)
    dport = np.full(len(i4), -1, dtype=np.int64)
    has_ports = ((proto == 6) & (room >= 20)) | ((proto == 17) & (room >= 8))
    hp = np.nonzero(has_ports)[0]
    sport[hp] = u16(l4[hp])
    dport[hp] = u16(l4[hp] + 2)
    keep = np.ones(len(i4), dtype=bool)
    keep &= ~(((proto == 6) & (room < 20)) | ((proto == 17) & (room < 8)))   # malformed: slow
    keep &= ~((proto == 132) | (proto == 33))                                # SCTP/DCCP: slow
    icmp4 = (proto == 1) & (room >= 8)
    keep &= ~(icmp4 & _in(u8(np.where(icmp4, l4, p4)), ICMP4_ERROR_TYPES))    # ICMP errors: slow
    tcp, udp = proto == 6, proto == 17
    bgp = tcp & (_in(sport, bgp_ports) | _in(dport, bgp_ports))
    d_vx, d_gn = _in(dport, vxlan_ports), _in(dport, geneve_ports)
    s_vx, s_gn = _in(sport, vxlan_ports), _in(sport, geneve_ports)
    vx = udp & (d_vx | (~d_gn & s_vx))
    keep &= ~(udp & ~vx & (d_gn | s_gn))                                     # GENEVE: slow
    # BGP: header length must be sane, else the per-packet decoder reports it
    hlen = np.where(bgp, (u8(np.where(bgp, l4 + 12, p4)) >> 4) * 4, 0)
    keep &= ~(bgp & ((hlen < 20) | (l4 + hlen > ip_end)))
    # SYN/RST segments on BGP ports (handshakes, TCP-MD5 options): the per-packet decoder reports
    tcp_flags = np.where(bgp, u8(np.where(bgp, l4 + 13, p4)), 0)
    keep &= ~(bgp & ((tcp_flags & 0x06) != 0))

    # VXLAN: header + untagged inner Ethernet + plain inner IPv4 with its transport header
    vi = np.nonzero(vx & keep)[0]
    vpos = l4[vi] + 8                        # VXLAN header
    inner_eth = vpos + 8
    v_ok = (ip_end[vi] - inner_eth) >= 34   # 14 Ethernet + 20 IPv4
    vi, vpos, inner_eth = vi[v_ok], vpos[v_ok], inner_eth[v_ok]
    bad_vx = np.setdiff1d(np.nonzero(vx & keep)[0], vi)
    keep[bad_vx] = False
    ip2 = inner_eth + 14
    iet = u16(inner_eth + 12)
    v_ok = (iet == 0x0800) & (u8(ip2) == 0x45)
    itotal = u16(ip2 + 2)
    ifrag = u16(ip2 + 6)
    v_ok &= (itotal >= 20) & ((ifrag & 0x3FFF) == 0)
    iproto = u8(ip2 + 9)
    il4 = ip2 + 20
    iend = np.minimum(ip2 + itotal, ip_end[vi])
    iroom = iend - il4
    v_ok &= ~((iproto == 6) & (iroom < 20)) & ~((iproto == 17) & (iroom < 8))
    v_ok &= ~((iproto == 132) | (iproto == 33))
    inner_icmp = (iproto == 1) & (iroom >= 8)
    v_ok &= ~(inner_icmp & _in(u8(np.where(inner_icmp, il4, ip2)), ICMP4_ERROR_TYPES))
    isport = np.full(len(vi), -1, dtype=np.int64)
    idport = np.full(len(vi), -1, dtype=np.int64)
    ihp = np.nonzero(v_ok & ((iproto == 6) | (iproto == 17)))[0]
    isport[ihp] = u16(il4[ihp])
    idport[ihp] = u16(il4[ihp] + 2)
    nested = (iproto == 17) & (_in(isport, vxlan_ports | geneve_ports)
                               | _in(idport, vxlan_ports | geneve_ports))
    inner_bgp = (iproto == 6) & (_in(isport, bgp_ports) | _in(idport, bgp_ports))
    v_ok &= ~nested & ~inner_bgp
    keep[vi[~v_ok]] = False
    vsel = v_ok
    vi, vpos, inner_eth, ip2, iproto, isport, idport = (
        vi[vsel], vpos[vsel], inner_eth[vsel], ip2[vsel], iproto[vsel], isport[vsel], idport[vsel])

    # ---------------- ARP for IPv4 over Ethernet ----------------
    ia = np.nonzero(etype == 0x0806)[0]
    pa = net[ia]
    a_ok = (u16(pa + 2) == 0x0800) & (u8(pa + 4) == 6) & (u8(pa + 5) == 4)
    ia, pa = ia[a_ok], pa[a_ok]

    # ---------------- assemble ----------------
    k4 = np.nonzero(keep)[0]
    fast4 = cand[i4[k4]]
    fast_arp = cand[ia]
    fast_mask[fast4] = True
    fast_mask[fast_arp] = True
    slow = np.nonzero(~fast_mask)[0]
    if not rows:
        nothing = _nothing(0)
        nothing.slow = slow
        return nothing

    order = np.concatenate([fast4, fast_arp])
    m = len(order)
    packets = None
    if m:
        first = block.first_frame
        lt_o = lt[order]
        off_o = offs[order]
        eth_src = np.full(m, None, dtype=object)
        eth_dst = np.full(m, None, dtype=object)
        is_eth = np.nonzero(lt_o == ETH)[0]
        if len(is_eth):
            eth_dst[is_eth] = _mac_strings(u48(off_o[is_eth]))
            eth_src[is_eth] = _mac_strings(u48(off_o[is_eth] + 6))
        # SLL: pkttype u16 at 0, hatype u16 at 2, halen u16 at 4, addr at 6
        # SLL2: ifindex u32 at 4, hatype u16 at 8, pkttype u8 at 10, halen u8 at 11, addr at 12
        pkttype = np.full(m, None, dtype=object)
        ifindex = np.full(m, None, dtype=object)
        for kind in (SLL, SLL2):
            w = np.nonzero(lt_o == kind)[0]
            if not len(w):
                continue
            base = off_o[w]
            if kind == SLL:
                ptype, hatype, halen, addr = u16(base), u16(base + 2), u16(base + 4), base + 6
            else:
                ptype, hatype, halen, addr = u8(base + 10), u16(base + 8), u8(base + 11), base + 12
                ifindex[w] = u32(base + 4).tolist()
            names = np.array([str(x) for x in range(256)], dtype=object)
            names[:5] = PKTTYPE_NAMES
            pkttype[w] = names[np.minimum(ptype, 255)]
            wide = np.nonzero(ptype > 255)[0]     # SLL's type is 16 bits: named as its number
            if len(wide):
                pkttype[w[wide]] = [str(x) for x in ptype[wide].tolist()]
            has_mac = np.nonzero((hatype == 1) & (halen == 6))[0]
            if len(has_mac):
                eth_src[w[has_mac]] = _mac_strings(u48(addr[has_mac]))
        flags = block.flags[order] & 3
        direction = np.full(m, None, dtype=object)
        direction[flags == 1] = "in"
        direction[flags == 2] = "out"
        # epb_flags 0 (not recorded) and 3 (undefined): the cooked header's packet type says
        cooked = np.nonzero((flags != 1) & (flags != 2) & (pkttype != None))[0]  # noqa: E711
        direction[cooked] = np.where(pkttype[cooked] == "outgoing", "out", "in")

        n4, na = len(fast4), len(fast_arp)
        src = np.empty(m, dtype=object)
        dst = np.empty(m, dtype=object)
        p4k = p4[k4]
        src[:n4] = _ipv4_strings(u32(p4k + 12)) if n4 else []
        dst[:n4] = _ipv4_strings(u32(p4k + 16)) if n4 else []
        a_spa = _ipv4_strings(u32(pa + 14)) if na else np.empty(0, dtype=object)
        a_tpa = _ipv4_strings(u32(pa + 24)) if na else np.empty(0, dtype=object)
        src[n4:] = a_spa
        dst[n4:] = a_tpa
        ttl = np.full(m, None, dtype=object)
        ttl[:n4] = u8(p4k + 8).tolist()
        ip_proto = np.full(m, None, dtype=object)
        ip_proto[:n4] = proto[k4].tolist()
        sp = np.full(m, None, dtype=object)
        dp = np.full(m, None, dtype=object)
        with_ports = np.nonzero(sport[k4] >= 0)[0]
        sp[with_ports] = sport[k4][with_ports].tolist()
        dp[with_ports] = dport[k4][with_ports].tolist()
        app = np.full(m, "", dtype=object)
        app[:n4][bgp[k4]] = "bgp"
        app[:n4][vx[k4]] = "vxlan"
        app[n4:] = "arp"
        depth = np.zeros(m, dtype=np.int64)
        depth[:n4][vx[k4]] = 1
        l3 = np.empty(m, dtype=object)
        l3[:n4] = "ipv4"
        l3[n4:] = "arp"
        ciface = block.ifaces[order]
        packets = {
            "frame": first + order, "ts": block.ts[order], "caplen": cap[order],
            "wirelen": block.wirelens[order], "linktype": lt_o, "capture_iface": ciface,
            "iface_name": _names(ciface, iface_names), "ifindex": ifindex,
            "direction": direction, "pkttype": pkttype, "eth_src": eth_src, "eth_dst": eth_dst,
            "vlan": np.full(m, None, dtype=object), "l3": l3, "src": src, "dst": dst, "ttl": ttl,
            "ip_proto": ip_proto, "fragment": np.zeros(m, dtype=bool), "sport": sp, "dport": dp,
            "app": app, "tunnel_depth": depth, "malformed": np.full(m, None, dtype=object),
        }
        # ARP table rows
        arp = None
        if na:
            aw = slice(n4, m)
            op = u16(pa + 6)
            opname = np.array([{1: "request", 2: "reply"}.get(o, str(o)) for o in op.tolist()],
                              dtype=object)
            arp = {
                "frame": packets["frame"][aw], "ts": packets["ts"][aw],
                "capture_iface": ciface[aw], "iface_name": packets["iface_name"][aw],
                "direction": direction[aw], "tunnel_depth": np.zeros(na, dtype=np.int64),
                "op": opname, "sender_mac": _mac_strings(u48(pa + 8)), "sender_ip": a_spa,
                "target_mac": _mac_strings(u48(pa + 18)), "target_ip": a_tpa,
                "gratuitous": a_spa == a_tpa, "vlan": np.full(na, None, dtype=object),
                "malformed": np.full(na, None, dtype=object),
            }
        # tunnel rows for the VXLAN frames decoded here
        tunnels = None
        if len(vi):
            tpos = np.searchsorted(k4, vi)        # where each VXLAN frame sits in the fast rows
            nv = len(vi)
            isp = np.full(nv, None, dtype=object)
            idp = np.full(nv, None, dtype=object)
            w = np.nonzero(isport >= 0)[0]
            isp[w] = isport[w].tolist()
            idp[w] = idport[w].tolist()
            tunnels = {
                "frame": packets["frame"][tpos], "ts": packets["ts"][tpos],
                "depth": np.ones(nv, dtype=np.int64), "type": np.full(nv, "vxlan", dtype=object),
                "vni": (u32(vpos + 4) >> 8), "outer_src": src[tpos], "outer_dst": dst[tpos],
                "outer_sport": sport[k4][tpos], "outer_dport": dport[k4][tpos],
                "inner_eth_src": _mac_strings(u48(inner_eth + 6)),
                "inner_eth_dst": _mac_strings(u48(inner_eth)),
                "inner_l3": np.full(nv, "ipv4", dtype=object),
                "inner_src": _ipv4_strings(u32(ip2 + 12)),
                "inner_dst": _ipv4_strings(u32(ip2 + 16)),
                "inner_proto": iproto, "inner_sport": isp, "inner_dport": idp,
                "flags": u8(vpos), "geneve_options": np.full(nv, None, dtype=object),
                "malformed": np.full(nv, None, dtype=object),
            }
    else:
        arp = tunnels = None

    # BGP segments decoded here, in frame order
    bsel = np.nonzero(bgp[k4])[0]
    bgp_index = fast4[bsel]
    bl4 = l4[k4][bsel]
    bh = hlen[k4][bsel]
    return FastRows(
        slow=slow, packets=packets, tunnels=tunnels, arp=arp, bgp_index=bgp_index,
        bgp_src=src[bsel] if len(bsel) else np.empty(0, dtype=object),
        bgp_sport=sport[k4][bsel], bgp_dst=dst[bsel] if len(bsel) else np.empty(0, dtype=object),
        bgp_dport=dport[k4][bsel], bgp_seq=u32(bl4 + 4), bgp_flags=u8(bl4 + 13),
        bgp_start=bl4 + bh, bgp_end=ip_end[k4][bsel],
    )


def fragment_candidates(block, tunnel_ports: frozenset[int]) -> np.ndarray:
    """Indices of the records that may hold an IP fragment at some tunnel depth: all but those
    whose headers show none -- ARP, and IPv4 (20-byte header) that is not a fragment and is not
    UDP to a tunnel port, or is VXLAN whose inner Ethernet frame carries such IPv4. What a worker
    of :mod:`diag.decode.parallel` feeds its reassembler from the blocks other workers decode
    (cheaper than :func:`split_block`; a false positive only costs a header walk)."""
    n = len(block)
    b = np.frombuffer(block.buf, dtype=np.uint8)
    last = len(b) - 2                      # reads past a short frame are clamped, then unused
    offs, cap, lt = block.offsets, block.caplens, block.linktypes
    l2 = np.where(lt == ETH, 14, np.where(lt == SLL, 16, np.where(lt == SLL2, 20, -1)))
    sure = np.nonzero((l2 > 0) & (cap >= l2 + 28))[0]     # an ARP body, or IPv4 + UDP
    clear = np.zeros(n, dtype=bool)
    if len(sure):
        off, lts = offs[sure], lt[sure]

        def u8(pos):
            return b[np.minimum(pos, last)]

        def u16(pos):
            pos = np.minimum(pos, last)
            return (b[pos].astype(np.int64) << 8) | b[pos + 1]

        ports = np.fromiter(tunnel_ports, dtype=np.int64) if tunnel_ports else np.zeros(0, int)

        def plain_ipv4(ip):
            """IPv4, 20-byte header, not a fragment; and whether it is UDP to a tunnel port."""
            ok = (u8(ip) == 0x45) & ((u16(ip + 6) & 0x3FFF) == 0)
            tunnel = (u8(ip + 9) == 17) & (np.isin(u16(ip + 20), ports)
                                          | np.isin(u16(ip + 22), ports))
            return ok, tunnel

        etype = np.where(lts == ETH, u16(off + 12), np.where(lts == SLL, u16(off + 14), u16(off)))
        net = off + l2[sure]
        ok, tunnel = plain_ipv4(net)
        # VXLAN (flags 0x08) with the whole inner Ethernet + IPv4 + ports captured
        vxlan = (u8(net + 28) == 0x08) & (cap[sure] >= l2[sure] + 84)
        inner_ok, inner_tunnel = plain_ipv4(net + 50)
        inner_ok &= u16(net + 48) == 0x0800
        clear[sure] = (etype == 0x0806) | ((etype == 0x0800) & ok & (
            ~tunnel | (vxlan & inner_ok & ~inner_tunnel)))
    return np.nonzero(~clear)[0]


def _names(ifaces: np.ndarray, names: dict[int, str | None]) -> np.ndarray:
    out = np.full(len(ifaces), None, dtype=object)
    for iface, name in names.items():
        if name is not None:
            out[ifaces == iface] = name
    return out


def _nothing(n: int) -> FastRows:
    empty = np.empty(0, dtype=np.int64)
    return FastRows(np.arange(n), None, None, None, empty, np.empty(0, dtype=object), empty,
                    np.empty(0, dtype=object), empty, empty, empty, empty, empty)
