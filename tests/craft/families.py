"""Crafted captures, with their ground truth, for what a real FRR in the lab cannot send: EVPN
route types 1, 4 and 5, BGP-LS, Prefix-SID, several route distinguisher and label stack shapes,
AS4_PATH merging (RFC 6793), a SYN carrying data, IP fragments and LLDP.

Each ``build_*`` writes one capture into a directory and returns a :class:`Capture`: the path,
what tshark needs (decode-as, AS number length) and the truth per frame, built from the inputs
here (:mod:`tests.craft.bgpmsg` lays the bytes out from the RFCs), never from diag.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from pathlib import Path

from tests.craft import bgpmsg as m
from tests.craft.builders import A, B, Frames, _write, ether_tcp_emit
from tests.craft.tcpflow import Host, TcpFlow
from tests.oracle.normal import NlriEntry, canon_ip, canon_prefix, label_text, rd_text


@dataclass
class Capture:
    name: str
    path: Path
    frames: int = 0
    nlri: dict[int, list[NlriEntry]] = field(default_factory=dict)   # frame -> routes
    truth: dict = field(default_factory=dict)                        # what else each one checks
    decode_as: tuple[str, ...] = ()
    four_octet_as: bool = True


def _fields(labels: list[int]) -> list[int]:
    """Label values -> 3-octet fields, bottom of stack on the last (as bgpmsg.label_stack)."""
    return [(v << 4) | (1 if i == len(labels) - 1 else 0) for i, v in enumerate(labels)]


def _routes(flow: TcpFlow) -> dict[int, list[NlriEntry]]:
    out: dict[int, list[NlriEntry]] = {}
    for frame, messages in sorted(flow.truth().items()):
        entries = [e for msg in messages for e in msg]
        if entries:
            out[frame] = entries
    return out


# --- BGP families ---------------------------------------------------------------------------------

RD0, RD1, RD2 = m.rd_as2(65001, 100), m.rd_ip("10.0.0.1", 7), m.rd_as4(4_200_000_001, 5)
ESI_A = bytes.fromhex("00112233445566778899")
ESI_B = bytes.fromhex("01aabbccddeeff000102")
VPN_ROUTES = 526          # the count the issue saw printed as "1 prefix announced"


def _vpn4(prefix: str, rd: bytes, labels: list[int], action: str = "announce",
          family: str = "ipv4/mpls-vpn") -> tuple[bytes, NlriEntry]:
    raw = b"\x80\x00\x00" if action == "withdraw" else None
    nlri = m.vpn_prefix(prefix, rd, labels, raw_labels=raw)
    fields = [0x800000] if raw else _fields(labels)
    return nlri, NlriEntry(action, family, canon_prefix(prefix), rd_text(rd), label_text(fields))


def _labeled(prefix: str, labels: list[int], action: str = "announce") -> tuple[bytes, NlriEntry]:
    family = "ipv6/labeled-unicast" if ":" in prefix else "ipv4/labeled-unicast"
    raw = b"\x80\x00\x00" if action == "withdraw" else None
    nlri = m.labeled_prefix(prefix, labels, raw_labels=raw)
    fields = [0x800000] if raw else _fields(labels)
    return nlri, NlriEntry(action, family, canon_prefix(prefix), None, label_text(fields))


def _evpn_truth(action: str, rtype: int, rd: bytes, *, esi: bytes | None = None,
                tag: int | None = None, mac: str | None = None, ip: str | None = None,
                prefix: str | None = None, gateway: str | None = None,
                label_fields: tuple[int, ...] = ()) -> NlriEntry:
    # tshark's reading (normal.NlriEntry): MPLS values for types 1 and 2, the field for type 5
    labels = tuple(f >> 4 for f in label_fields) if rtype in (1, 2) else label_fields
    return NlriEntry(action, "l2vpn/evpn", canon_prefix(prefix) if prefix else None, rd_text(rd),
                     None, rtype, esi.hex(":") if esi is not None else None, tag, mac,
                     canon_ip(ip) if ip else None, canon_ip(gateway) if gateway else None, labels)


def build_bgp_families(outdir: Path) -> Capture:
    """One 4-octet session, A announcing: VPN-IPv4 (RD types 0, 1, 2; one and two labels) and
    526 more VPN-IPv4 routes over three UPDATEs, VPN-IPv6 (RD types 0, 1 and 2 -- the last one
    tshark cannot print), labeled unicast IPv4/IPv6 with a Prefix-SID, their withdrawals (label
    field 0x800000), EVPN route types 1-5 with encapsulation, router MAC, MAC mobility and a
    PMSI tunnel, an EVPN withdrawal, BGP-LS node and prefix NLRI with a BGP-LS attribute, and a
    flow-spec rule (a family diag keeps raw)."""
    frames = Frames()
    flow = TcpFlow(ether_tcp_emit(frames), A, B, 40100, 179, 11_000, 12_000)
    flow.handshake()
    families = [(1, 128), (2, 128), (1, 4), (2, 4), (25, 70), (16388, 71), (1, 133)]
    for d, asn, ident in (("ab", 65001, "10.0.0.1"), ("ba", 65002, "10.0.0.2")):
        caps = [m.cap_multiprotocol(a, s) for a, s in families] + [m.cap_four_octet_as(asn)]
        flow.queue(d, m.open_message(asn, 90, ident, caps), [])
        flow.send(d)
    base = [m.origin(0), m.as_path([(m.AS_SEQUENCE, [65001])])]
    nh4 = ipaddress.IPv4Address("10.0.0.1").packed
    nh6 = ipaddress.IPv6Address("2001:db8::1").packed
    rt = m.extended_communities([bytes.fromhex("0002fde900000064")])
    truth: dict = {"attrs": {}}

    def send(attrs: list[bytes], entries: list[NlriEntry], key: str | None = None) -> None:
        msg = m.update(attributes=attrs)
        flow.queue("ab", msg, entries)
        frame = flow.send("ab")[-1]
        if key is not None:
            truth["attrs"][key] = frame

    parts = [_vpn4("10.1.0.0/24", RD0, [16]), _vpn4("10.2.0.0/16", RD1, [17, 18]),
             _vpn4("10.3.3.0/25", RD2, [19])]
    send(base + [m.mp_reach_raw(1, 128, b"\0" * 8 + nh4, b"".join(p for p, _ in parts)), rt],
         [e for _, e in parts])
    many = [_vpn4(str(ipaddress.IPv4Network((0x0A640000 + (i << 8), 24))), m.rd_as2(65001, i),
                  [1000 + i]) for i in range(VPN_ROUTES)]
    for chunk in (many[:200], many[200:400], many[400:]):
        send(base + [m.mp_reach_raw(1, 128, b"\0" * 8 + nh4, b"".join(p for p, _ in chunk))],
             [e for _, e in chunk])
    parts6 = [_vpn4("2001:db8:1::/48", RD0, [20], family="ipv6/mpls-vpn"),
              _vpn4("2001:db8:2::/64", RD1, [21, 22], family="ipv6/mpls-vpn")]
    send(base + [m.mp_reach_raw(2, 128, b"\0" * 8 + nh6, b"".join(p for p, _ in parts6))],
         [e for _, e in parts6])
    rd2v6 = _vpn4("2001:db8:9::/48", RD2, [29], family="ipv6/mpls-vpn")
    send(base + [m.mp_reach_raw(2, 128, b"\0" * 8 + nh6, rd2v6[0])], [rd2v6[1]], "vpnv6_rd2")
    lu4, lu6 = _labeled("10.4.0.0/24", [30]), _labeled("2001:db8:4::/48", [31, 32])
    send(base + [m.mp_reach_raw(1, 4, nh4, lu4[0]),
                 m.prefix_sid(100, [(16000, 8000), (24000, 1000)])], [lu4[1]], "prefix_sid")
    send(base + [m.mp_reach_raw(2, 4, nh6, lu6[0])], [lu6[1]])
    w4, w6 = _labeled("10.4.0.0/24", [], "withdraw"), _labeled("2001:db8:4::/48", [], "withdraw")
    wv = _vpn4("10.1.0.0/24", RD0, [], "withdraw")
    send([m.mp_unreach_raw(1, 4, w4[0])], [w4[1]])
    send([m.mp_unreach_raw(2, 4, w6[0])], [w6[1]])
    send([m.mp_unreach_raw(1, 128, wv[0])], [wv[1]])
    # EVPN (VXLAN: label fields carry VNIs, RFC 8365)
    l1, l2 = (100 << 4) | 1, 5000
    evpn = [
        (m.evpn_ethernet_ad(RD0, ESI_A, 0xFFFFFFFF, 0),
         _evpn_truth("announce", 1, RD0, esi=ESI_A, tag=0xFFFFFFFF, label_fields=(0,))),
        (m.evpn_mac_ip(RD0, m.esi(0), 0, "02:00:00:00:00:aa", "10.9.0.5", l1, l2),
         _evpn_truth("announce", 2, RD0, esi=m.esi(0), tag=0, mac="02:00:00:00:00:aa",
                     ip="10.9.0.5", label_fields=(l1, l2))),
        (m.evpn_mac_ip(RD1, m.esi(0), 7, "02:00:00:00:00:bb", None, 100),
         _evpn_truth("announce", 2, RD1, esi=m.esi(0), tag=7, mac="02:00:00:00:00:bb",
                     label_fields=(100,))),
        (m.evpn_mac_ip(RD1, m.esi(0), 0, "02:00:00:00:00:cc", "2001:db8::cc", 200),
         _evpn_truth("announce", 2, RD1, esi=m.esi(0), tag=0, mac="02:00:00:00:00:cc",
                     ip="2001:db8::cc", label_fields=(200,))),
        (m.evpn_imet(RD0, 0, "10.0.0.1"), _evpn_truth("announce", 3, RD0, tag=0, ip="10.0.0.1")),
        (m.evpn_ethernet_segment(RD0, ESI_B, "10.0.0.1"),
         _evpn_truth("announce", 4, RD0, esi=ESI_B, ip="10.0.0.1")),
        (m.evpn_ip_prefix(RD2, m.esi(0), 0, "10.50.0.0/16", "0.0.0.0", 5000),
         _evpn_truth("announce", 5, RD2, esi=m.esi(0), tag=0, prefix="10.50.0.0/16",
                     gateway="0.0.0.0", label_fields=(5000,))),
        (m.evpn_ip_prefix(RD0, m.esi(0), 0, "2001:db8:50::/64", "::", l1),
         _evpn_truth("announce", 5, RD0, esi=m.esi(0), tag=0, prefix="2001:db8:50::/64",
                     gateway="::", label_fields=(l1,))),
    ]
    ext = m.extended_communities([bytes.fromhex("0002fde900000064"),
                                  bytes.fromhex("030c000000000008"),      # encapsulation vxlan
                                  bytes.fromhex("0603020000000042"),      # router's MAC
                                  bytes.fromhex("0600010000000005")])     # MAC mobility, sticky
    pmsi = m.attribute(m.OPTIONAL | m.TRANSITIVE, 22,
                       struct.pack("!BB", 0, 6) + (100).to_bytes(3, "big") + nh4)
    send(base + [m.mp_reach_raw(25, 70, nh4, b"".join(p for p, _ in evpn)), ext, pmsi],
         [e for _, e in evpn], "evpn")
    gone = m.evpn_mac_ip(RD0, m.esi(0), 0, "02:00:00:00:00:aa", "10.9.0.5", l1)
    send([m.mp_unreach_raw(25, 70, gone)],
         [_evpn_truth("withdraw", 2, RD0, esi=m.esi(0), tag=0, mac="02:00:00:00:00:aa",
                      ip="10.9.0.5", label_fields=(l1,))])
    rid = ipaddress.IPv4Address("1.1.1.1").packed
    ls = [m.bgp_ls_node_nlri(3, 0, 65001, rid),
          m.bgp_ls_prefix_nlri(3, 0, 65001, rid, "10.70.0.0/24")]
    send(base + [m.mp_reach_raw(16388, 71, nh4, b"".join(ls)),
                 m.bgp_ls_attribute([m.ls_tlv(1026, b"rtr1"), m.ls_tlv(1028, rid),
                                     m.ls_tlv(1155, struct.pack("!I", 10))])],
         [NlriEntry("announce", "bgp-ls/bgp-ls", ls_nlri="node:ospfv2:1.1.1.1"),
          NlriEntry("announce", "bgp-ls/bgp-ls",
                    ls_nlri="ipv4-prefix:ospfv2:1.1.1.1:10.70.0.0/24")],
         "bgp_ls")
    flowspec = bytes.fromhex("0501080a")               # RFC 8955: destination 10.0.0.0/8
    send(base + [m.mp_reach_raw(1, 133, b"", flowspec)], [], "flowspec")
    flow.fin()
    path = outdir / "bgp_families.pcap"
    n = _write(frames, path)
    truth["vpn4_routes"] = 3 + VPN_ROUTES
    truth["flowspec_raw"] = flowspec.hex()
    return Capture("bgp_families", path, n, _routes(flow), truth)


# --- AS4_PATH merging (RFC 6793 4.2.3) ------------------------------------------------------------

def build_bgp_as4_merge(outdir: Path) -> Capture:
    """A 2-octet-only speaker (no capability 65) passing on 4-octet paths: AS_PATH with AS_TRANS
    plus AS4_PATH. Truth: the path RFC 6793 4.2.3 makes of each UPDATE, by hand."""
    frames = Frames()
    c = Host("02:00:00:00:00:03", "10.0.0.3")
    flow = TcpFlow(ether_tcp_emit(frames), c, B, 40200, 179, 21_000, 22_000)
    flow.handshake()
    flow.queue("ab", m.open_message(65003, 90, "10.0.0.3", [m.cap_multiprotocol(1, 1)]), [])
    flow.send("ab")
    flow.queue("ba", m.open_message(65002, 90, "10.0.0.2", [m.cap_multiprotocol(1, 1),
                                                            m.cap_four_octet_as(65002)]), [])
    flow.send("ba")
    trans = 23456
    cases = [
        # (AS_PATH segments, AS4_PATH segments, AGGREGATOR, AS4_AGGREGATOR, effective, note)
        ([(2, [65003, trans, 65010])], [(2, [4_200_000_001, 65010])], None, None,
         "65003 4200000001 65010", "merged"),
        ([(2, [65003, trans]), (1, [trans, 65020])],
         [(2, [4_200_000_001]), (1, [4_200_000_002, 65020])], None, None,
         "65003 4200000001 {4200000002,65020}", "merged"),
        ([(2, [65003, 65010])], [(2, [4_200_000_001, 65010, 65011])], None, None,
         "65003 65010", "longer"),
        ([(2, [65003, trans])], [(2, [4_200_000_001])], (65003, "10.0.0.3"),
         (4_200_000_001, "10.0.0.3"), "65003 23456", "aggregator"),
        ([(2, [65003, trans])], None, None, None, "65003 23456", "trans"),
    ]
    truth: dict = {"paths": {}}
    for i, (segs, segs4, agg, agg4, effective, note) in enumerate(cases):
        attrs = [m.origin(0), m.as_path(segs, four_octet=False), m.next_hop("10.0.0.3")]
        if segs4 is not None:
            attrs.append(m.as4_path(segs4))
        if agg is not None:
            attrs.append(m.aggregator(agg[0], agg[1], four_octet=False))
        if agg4 is not None:
            attrs.append(m.attribute(m.OPTIONAL | m.TRANSITIVE, 18, struct.pack(
                "!I4s", agg4[0], ipaddress.IPv4Address(agg4[1]).packed)))
        prefix = f"10.{80 + i}.0.0/16"
        flow.queue("ab", m.update(attributes=attrs, nlri=[m.prefix(prefix)]), [])
        frame = flow.send("ab")[-1]
        truth["paths"][frame] = (prefix, effective, note)
    flow.fin()
    path = outdir / "bgp_as4_merge.pcap"
    n = _write(frames, path)
    return Capture("bgp_as4_merge", path, n, truth=truth, four_octet_as=False)


# --- a SYN carrying data --------------------------------------------------------------------------

def build_bgp_syn_data(outdir: Path) -> Capture:
    """Three connections whose SYN carries the OPEN: (1) numbered from the ISN, as crafting tools
    do (the next segment overlaps the SYN's data by one byte), with the SYN sent twice; (2)
    numbered right (data from ISN+1); (3) numbered one byte past (a one-byte hole). Truth: every
    message, each in the frame that carried it."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    frames = Frames()
    truth: dict = {"messages": {}}
    upd = m.update(attributes=[m.origin(0), m.as_path([(m.AS_SEQUENCE, [65001])]),
                               m.next_hop("10.0.0.1")], nlri=[m.prefix("10.60.0.0/24")])
    opening = m.open_message(65001, 90, "10.0.0.1", [m.cap_four_octet_as(65001)])
    answer = m.open_message(65002, 90, "10.0.0.2", [m.cap_four_octet_as(65002)])
    for n, (shift, resend) in enumerate(((-1, True), (0, False), (1, False))):
        sport, isn_a, isn_b = 40300 + n, 31_000 + 1000 * n, 32_000 + 1000 * n

        def seg(src: Host, dst: Host, sp: int, dp: int, seq: int, ack: int, flags: str,
                data: bytes = b"", new: bool = True) -> int:
            pkt = (Ether(src=src.mac, dst=dst.mac) / IP(src=src.ip, dst=dst.ip)
                   / TCP(sport=sp, dport=dp, seq=seq, ack=ack, flags=flags) / data)
            frame = frames.add(bytes(pkt))
            assert frame is not None
            types = []
            at = 0
            while new and at < len(data):
                types.append(data[at + 18])
                at += int.from_bytes(data[at + 16:at + 18], "big")
            if types:
                truth["messages"][frame] = types
            return frame

        seg(A, B, sport, 179, isn_a, 0, "S", opening)
        if resend:
            seg(A, B, sport, 179, isn_a, 0, "S", opening, new=False)   # again, same ISN
        after = isn_a + 1 + len(opening)
        seg(B, A, 179, sport, isn_b, after, "SA", answer)
        nxt = after + shift
        seg(A, B, sport, 179, nxt, isn_b + 1 + len(answer), "PA", m.keepalive() + upd)
        seg(A, B, sport, 179, nxt + len(m.keepalive() + upd), isn_b + 1 + len(answer), "PA",
            m.keepalive())
    path = outdir / "bgp_syn_data.pcap"
    n = _write(frames, path)
    return Capture("bgp_syn_data", path, n, truth=truth)


# --- IP fragments ---------------------------------------------------------------------------------

def build_fragments(outdir: Path) -> Capture:
    """VXLAN (8472) over IPv4 fragmented in order, the same out of order, VXLAN (4789) over IPv6
    fragmented, pod traffic fragmented inside VXLAN (inner IPv4 fragments, each its own VXLAN
    packet), and a datagram whose last fragment was lost. Truth: per completing frame the VXLAN
    layer and the reassembled length; the datagrams left incomplete."""
    from scapy.layers.inet import ICMP, IP, UDP, fragment
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN

    frames = Frames()
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    pod = (Ether(src="0a:00:00:00:00:01", dst="0a:00:00:00:00:02")
           / IP(src="172.20.0.10", dst="172.20.2.10") / ICMP(id=1, seq=1) / (b"p" * 1400))
    truth: dict = {"reassembled": {}, "incomplete": [], "vxlan": {}}

    def outer4(ident: int, dport: int = 8472, inner: object = pod) -> object:
        return (IP(src="192.168.10.100", dst="192.168.20.100", id=ident, flags=0)
                / UDP(sport=40000 + ident % 1000, dport=dport) / VXLAN(vni=2, flags=0x08)
                / inner)

    def add(pkt: object) -> int:
        frame = frames.add(bytes(eth / pkt))
        assert frame is not None
        return frame

    datagram = outer4(101)
    pieces = fragment(datagram, fragsize=600)
    frame = 0
    for piece in pieces:
        frame = add(piece)
    truth["reassembled"][frame] = ("ipv4", len(pieces), len(bytes(datagram)) - 20)
    truth["vxlan"][frame] = 2
    datagram = outer4(102)
    pieces = fragment(datagram, fragsize=512)
    for piece in reversed(pieces):
        frame = add(piece)
    truth["reassembled"][frame] = ("ipv4", len(pieces), len(bytes(datagram)) - 20)
    truth["vxlan"][frame] = 2
    v6 = (IPv6(src="fd00::100", dst="fd00::200") / IPv6ExtHdrFragment(id=0x1234)
          / UDP(sport=40001, dport=4789) / VXLAN(vni=3, flags=0x08) / pod)
    pieces = fragment6(v6, 700)
    for piece in pieces:
        frame = add(piece)
    truth["reassembled"][frame] = ("ipv6", len(pieces), len(bytes(v6)) - 48)
    truth["vxlan"][frame] = 3
    # inner fragments: the pod's datagram cut before encapsulation, each piece its own VXLAN packet
    big = IP(src="172.20.0.10", dst="172.20.2.10", id=7) / ICMP(id=2, seq=1) / (b"q" * 2000)
    inner_pieces = fragment(big, fragsize=1000)
    for piece in inner_pieces:
        frame = add(IP(src="192.168.10.100", dst="192.168.20.100")
                    / UDP(sport=40500, dport=8472) / VXLAN(vni=4, flags=0x08)
                    / Ether(src="0a:00:00:00:00:01", dst="0a:00:00:00:00:02") / piece)
        truth["vxlan"][frame] = 4
    truth["reassembled"][frame] = ("ipv4", len(inner_pieces), len(bytes(big)) - 20)
    truth["inner_reassembled"] = frame
    # the last fragment lost: never complete
    pieces = fragment(outer4(103), fragsize=600)
    first = add(pieces[0])
    truth["incomplete"].append(first)
    path = outdir / "fragments.pcap"
    n = _write(frames, path)
    return Capture("fragments", path, n, truth=truth, decode_as=("udp.port==8472,vxlan",))


# --- LLDP -----------------------------------------------------------------------------------------

def build_lldp(outdir: Path) -> Capture:
    """Two neighbours, as a ToR switch and a server NIC announce themselves: chassis by MAC or
    locally assigned, port by interface name or MAC, names, capabilities, a management address,
    the port VLAN (802.1) and the maximum frame size (802.3); then the switch leaving (TTL 0)."""
    from scapy.contrib import lldp as L
    from scapy.layers.l2 import Ether

    frames = Frames()
    truth: dict = {"lldp": {}}

    def pdu(src: str, chassis: object, port: object, ttl: int, extra: list) -> int:
        body = (L.LLDPDU() / chassis / port / L.LLDPDUTimeToLive(ttl=ttl))
        for tlv in extra:
            body = body / tlv
        body = body / L.LLDPDUEndOfLLDPDU()
        frame = frames.add(bytes(Ether(src=src, dst="01:80:c2:00:00:0e", type=0x88CC) / body))
        assert frame is not None
        return frame

    switch = [L.LLDPDUPortDescription(description=b"to k8s-w0 eth1"),
              L.LLDPDUSystemName(system_name=b"tor1"),
              L.LLDPDUSystemDescription(description=b"SONiC Software Version: 202305"),
              L.LLDPDUSystemCapabilities(mac_bridge_available=1, router_available=1,
                                         mac_bridge_enabled=1, router_enabled=1),
              L.LLDPDUManagementAddress(management_address_subtype=1,
                                        management_address=b"\xc0\xa8\x0a\xfe",
                                        interface_numbering_subtype=2, interface_number=12),
              L.LLDPDUGenericOrganisationSpecific(org_code=0x0080C2, subtype=1,
                                                  data=b"\x00\x64"),
              L.LLDPDUGenericOrganisationSpecific(org_code=0x00120F, subtype=4,
                                                  data=b"\x23\xf0")]
    chassis = L.LLDPDUChassisID(subtype=4, id="3c:fd:fe:00:00:01")
    port = L.LLDPDUPortID(subtype=5, id=b"Ethernet12")
    f = pdu("3c:fd:fe:00:00:0c", chassis, port, 120, switch)
    truth["lldp"][f] = {"chassis_id": "3c:fd:fe:00:00:01", "port_id": "Ethernet12", "ttl": 120,
                        "system_name": "tor1", "port_description": "to k8s-w0 eth1",
                        "management_addresses": ["192.168.10.254"], "port_vlan": 100,
                        "max_frame_size": 9200, "capabilities": ["bridge", "router"]}
    f = pdu("02:00:00:00:00:aa", L.LLDPDUChassisID(subtype=7, id=b"k8s-w1"),
            L.LLDPDUPortID(subtype=3, id="02:00:00:00:00:aa"), 120,
            [L.LLDPDUSystemName(system_name=b"k8s-w1")])
    truth["lldp"][f] = {"chassis_id": "k8s-w1", "port_id": "02:00:00:00:00:aa", "ttl": 120,
                        "system_name": "k8s-w1"}
    f = pdu("3c:fd:fe:00:00:0c", chassis, port, 0, [])
    truth["lldp"][f] = {"chassis_id": "3c:fd:fe:00:00:01", "port_id": "Ethernet12", "ttl": 0}
    path = outdir / "lldp.pcap"
    n = _write(frames, path)
    return Capture("lldp", path, n, truth=truth)


def build_all(outdir: Path) -> dict[str, Capture]:
    outdir.mkdir(parents=True, exist_ok=True)
    items = [build_bgp_families(outdir), build_bgp_as4_merge(outdir), build_bgp_syn_data(outdir),
             build_fragments(outdir), build_lldp(outdir)]
    return {c.name: c for c in items}
