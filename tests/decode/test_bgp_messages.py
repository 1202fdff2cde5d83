"""diag.decode.bgp against independent decoders: scapy (contrib.bgp) and tcpdump's text decode.

Oracles and their faults, handled here explicitly rather than inherited:
* scapy reads AS_PATH as 2-octet unless ``bgp_module_conf.use_2_bytes_asn`` is False; it keeps
  only the first value of a COMMUNITIES attribute (the rest is a Raw payload); it has no class
  for AS4_AGGREGATOR (Raw); it guesses ADD-PATH from the bytes. ``scapy_update_view`` works
  around each one and says where.
* tcpdump prints "End-of-Rib Marker" for any UPDATE without NLRI, also withdraw-only ones;
  RFC 4724 2 defines End-of-RIB as an UPDATE with nothing in it, so eor is compared only for
  empty (23-octet) UPDATEs.
Messages from the real captures are taken from frames whose TCP payload is a whole number of
messages (the decoder's contract is one complete message; reassembly is tested elsewhere).
"""
from __future__ import annotations

import ipaddress
import re
import struct
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import Raw, raw
from scapy.contrib import bgp as B

from diag.decode.bgp import (
    MESSAGE_COLUMNS, ROUTE_COLUMNS, Decoded, Direction, OpenInfo, decode_message, negotiate,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pcap"
MARKER = b"\xff" * 16
AS4 = Direction(as4=True, assumed=False)
AS2 = Direction(as4=False, assumed=False)
PA = B.BGPPathAttr

# The names the project documents for well-known communities (IANA registry), written out here
# independently of diag's table.
WELL_KNOWN = {
    0xFFFFFF01: "no-export", 0xFFFFFF02: "no-advertise", 0xFFFFFF03: "no-export-subconfed",
    0xFFFFFF04: "no-peer", 0xFFFF029A: "blackhole", 0xFFFF0000: "graceful-shutdown",
    0xFFFF0001: "accept-own", 0xFFFF0006: "llgr-stale", 0xFFFF0007: "no-llgr",
}


# --- helpers -------------------------------------------------------------------------------------


@contextmanager
def scapy_asn_width(four: bool):
    saved = B.bgp_module_conf.use_2_bytes_asn
    B.bgp_module_conf.use_2_bytes_asn = not four
    try:
        yield
    finally:
        B.bgp_module_conf.use_2_bytes_asn = saved


def update(**fields) -> bytes:
    return raw(B.BGPHeader(type=2) / B.BGPUpdate(**fields))


def origin(value: int = 0):
    return PA(type_flags=0x40, type_code=1, attribute=B.BGPPAOrigin(origin=value))


def as_path2(*segments: tuple[int, list[int]]):
    segs = [B.BGPPAASPath.ASPathSegment(segment_type=t, segment_value=v) for t, v in segments]
    return PA(type_flags=0x40, type_code=2, attribute=B.BGPPAASPath(segments=segs))


def as_path4(*segments: tuple[int, list[int]]):
    segs = [B.BGPPAAS4BytesPath.ASPathSegment(segment_type=t, segment_value=v)
            for t, v in segments]
    return PA(type_flags=0x40, type_code=2, attribute=B.BGPPAAS4BytesPath(segments=segs))


def next_hop(ip: str):
    return PA(type_flags=0x40, type_code=3, attribute=B.BGPPANextHop(next_hop=ip))


def v4(*prefixes: str):
    return [B.BGPNLRI_IPv4(prefix=p) for p in prefixes]


def community_text(value: int) -> str:
    return WELL_KNOWN.get(value) or f"{value >> 16}:{value & 0xFFFF}"


def scapy_update_view(msg: bytes, four: bool) -> dict:
    """What scapy parses out of an UPDATE, normalised to diag's column vocabulary."""
    with scapy_asn_width(four):
        upd = B.BGPHeader(msg)[B.BGPUpdate]
    view: dict = {
        "withdrawn": [p.prefix for p in upd.withdrawn_routes],
        "nlri": [p.prefix for p in upd.nlri],
        "path_ids": [getattr(p, "nlri_path_id", None) for p in upd.nlri],
    }
    for pa in upd.path_attr:
        a = pa.attribute
        code = pa.type_code
        if code == 1:
            view["origin"] = ("IGP", "EGP", "INCOMPLETE")[a.origin]
        elif code == 2:
            view["segments"] = [(s.segment_type, list(s.segment_value)) for s in a.segments]
        elif code == 3:
            view["next_hop"] = a.next_hop
        elif code == 4:
            view["med"] = a.med
        elif code == 5:
            view["local_pref"] = a.local_pref
        elif code == 6:
            view["atomic_aggregate"] = True
        elif code == 7:
            view["aggregator"] = f"{a.aggregator_asn}:{a.speaker_address}"
        elif code == 8:
            # scapy fault: only the first community is a field, the others are a Raw payload.
            values = [a.community]
            if a.payload:
                values += [v for (v,) in struct.iter_unpack(">I", raw(a.payload))]
            view["communities"] = [community_text(v) for v in values]
        elif code == 9:
            view["originator_id"] = a.originator_id
        elif code == 14:
            view["mp_reach"] = a
        elif code == 15:
            view["mp_unreach"] = a
        elif code == 16:
            view["ext_communities"] = [raw(c) for c in a.extended_communities]
        elif code == 17:
            view["as4_path"] = list(a.segment_value)
        elif code == 18:
            # scapy fault: no dispatch entry for AS4_AGGREGATOR, parse its Raw with the class.
            agg = B.BGPPAAS4Aggregator(raw(a))
            view["as4_aggregator"] = f"{agg.aggregator_asn}:{agg.speaker_address}"
        elif code == 32:
            # scapy fault: the first segment swallows the others as its Raw payload; re-parse
            # the attribute value 12 octets at a time with scapy's segment class.
            value = raw(a)
            segs = [B.BGPLargeCommunitySegment(value[i:i + 12]) for i in range(0, len(value), 12)]
            view["large_communities"] = [
                f"{s.global_administrator}:{s.local_data_part1}:{s.local_data_part2}"
                for s in segs]
    return view


def routes_of(decoded: Decoded, action: str) -> list[str]:
    return [r["prefix"] for r in decoded.routes if r["action"] == action]


def assert_shape(decoded: Decoded) -> None:
    """Invariants every decode result keeps, malformed or not."""
    row = decoded.row
    assert set(row) == set(MESSAGE_COLUMNS)
    assert row["type_name"]
    assert row["malformed"] is None or (isinstance(row["malformed"], str) and row["malformed"])
    for r in decoded.routes:
        assert set(r) == set(ROUTE_COLUMNS)
        assert r["action"] in ("announce", "withdraw", "treat-as-withdraw")
        # RFC 7606: the NLRI of a malformed UPDATE is treated as withdrawn, never announced
        assert not (row["malformed"] and r["action"] == "announce")
        if r["prefix"] is not None:
            ipaddress.ip_network(r["prefix"], strict=False)
        else:
            assert r["nlri_raw"] is not None


# --- OPEN ----------------------------------------------------------------------------------------


def open_message(my_as: int, caps: list, hold: int = 90, bgp_id: str = "192.0.2.1") -> bytes:
    params = [B.BGPOptParam(param_value=c) for c in caps]
    return raw(B.BGPHeader(type=1) / B.BGPOpen(my_as=my_as, hold_time=hold, bgp_id=bgp_id,
                                                opt_params=params))


MANY_CAPS = [
    B.BGPCapMultiprotocol(afi=1, safi=1),
    B.BGPCapMultiprotocol(afi=2, safi=1),
    B.BGPCapMultiprotocol(afi=25, safi=70),
    B.BGPCapGeneric(code=2),
    B.BGPCapGeneric(code=128),
    B.BGPCapGeneric(code=70),
    B.BGPCapFourBytesASN(asn=4200000001),
    B.BGPCapGracefulRestart(restart_flags=8, restart_time=120,
                            entries=[B.BGPCapGracefulRestart.GRTuple(afi=1, safi=1, flags=0x80)]),
    B.BGPCapGeneric(code=71, cap_data=b"\x00\x01\x01\x80\x00\x0e\x10"),
    B.BGPCapGeneric(code=69, cap_data=b"\x00\x01\x01\x03\x00\x02\x01\x01"),
    B.BGPCapGeneric(code=73, cap_data=b"\x05node1\x0bexample.org"),
    B.BGPCapGeneric(code=6),
    B.BGPCapGeneric(code=5, cap_data=b"\x00\x01\x00\x01\x00\x02"),
    B.BGPCapGeneric(code=9, cap_data=b"\x03"),
    B.BGPCapGeneric(code=75, cap_data=b"\x0dFRRouting/9.1"),
    B.BGPCapGeneric(code=200, cap_data=b"\x01\x02"),
]


def test_open_many_capabilities_against_scapy():
    msg = open_message(23456, MANY_CAPS, hold=90, bgp_id="192.0.2.1")
    d = decode_message(msg, Direction())
    assert_shape(d)
    row, info = d.row, d.open
    oracle = B.BGPHeader(msg)[B.BGPOpen]
    assert row["malformed"] is None
    assert (row["type"], row["type_name"], row["length"]) == (1, "OPEN", len(msg))
    assert row["open_version"] == oracle.version == 4
    assert row["open_hold_time"] == oracle.hold_time == 90
    assert row["open_bgp_id"] == oracle.bgp_id
    assert info.my_as_field == oracle.my_as == 23456          # AS_TRANS in the 2-octet field
    assert row["open_my_as"] == info.my_as == 4200000001       # the real AS from capability 65
    scapy_codes = [p.param_value.code for p in oracle.opt_params]
    assert scapy_codes == [1, 1, 1, 2, 128, 70, 65, 64, 71, 69, 73, 6, 5, 9, 75, 200]
    assert row["open_capabilities"] == [
        "multiprotocol ipv4/unicast", "multiprotocol ipv6/unicast", "multiprotocol l2vpn/evpn",
        "route-refresh", "route-refresh-cisco", "enhanced-route-refresh",
        "4-octet-as 4200000001", "graceful-restart", "long-lived-graceful-restart",
        "add-path ipv4/unicast send/receive", "add-path ipv6/unicast receive", "fqdn",
        "extended-message", "extended-nexthop", "bgp-role", "software-version",
        "capability-200",
    ]
    assert info.as4 is True
    assert info.addpath == {(1, 1): 3, (2, 1): 1}
    assert info.multiprotocol == ((1, 1), (2, 1), (25, 70))
    assert info.graceful_restart and info.graceful_restart_time == 120
    assert info.graceful_restart_restarting                    # R bit (flags 8)
    assert info.long_lived_graceful_restart and info.extended_message
    assert info.route_refresh and info.enhanced_route_refresh
    assert info.extended_nexthop == ((1, 1, 2),)
    assert info.fqdn == row["open_fqdn"] == "node1.example.org"
    assert info.software_version == row["open_software_version"] == "FRRouting/9.1"
    assert info.role == "customer"


def test_open_all_capabilities_in_one_parameter():
    """BIRD and GoBGP put every capability in one optional parameter (RFC 5492 allows both)."""
    caps = b"".join(raw(c) for c in (B.BGPCapMultiprotocol(afi=1, safi=1),
                                     B.BGPCapFourBytesASN(asn=65001), B.BGPCapGeneric(code=2)))
    body = struct.pack(">BHH4sB", 4, 65001, 180, bytes([10, 0, 0, 1]), len(caps) + 2)
    body += bytes([2, len(caps)]) + caps
    msg = MARKER + struct.pack(">HB", 19 + len(body), 1) + body
    oracle = B.BGPHeader(msg)[B.BGPOpen]
    d = decode_message(msg, Direction())
    assert d.row["malformed"] is None
    assert d.row["open_capabilities"] == ["multiprotocol ipv4/unicast", "4-octet-as 65001",
                                          "route-refresh"]
    assert d.row["open_my_as"] == oracle.my_as == 65001
    assert d.row["open_hold_time"] == oracle.hold_time


def test_open_extended_optional_parameters_rfc9072():
    cap = raw(B.BGPCapFourBytesASN(asn=4200000002))
    params = bytes([2]) + struct.pack(">H", len(cap)) + cap
    body = struct.pack(">BHH4sB", 4, 23456, 3, bytes([10, 0, 0, 2]), 255)
    body += bytes([255]) + struct.pack(">H", len(params)) + params
    msg = MARKER + struct.pack(">HB", 19 + len(body), 1) + body
    d = decode_message(msg, Direction())
    assert d.row["malformed"] is None
    assert d.row["open_capabilities"] == ["4-octet-as 4200000002"]
    assert d.row["open_my_as"] == 4200000002


def test_negotiate_from_decoded_opens():
    speaker = decode_message(open_message(65001, [
        B.BGPCapFourBytesASN(asn=65001),
        B.BGPCapGeneric(code=69, cap_data=b"\x00\x01\x01\x03\x00\x02\x01\x02"),
    ]), Direction()).open
    receiver_as4 = decode_message(open_message(65002, [
        B.BGPCapFourBytesASN(asn=65002),
        B.BGPCapGeneric(code=69, cap_data=b"\x00\x01\x01\x01\x00\x02\x01\x01"),
    ]), Direction()).open
    old = decode_message(open_message(65003, [B.BGPCapGeneric(code=2)]), Direction()).open
    assert isinstance(speaker, OpenInfo)
    d = negotiate(speaker, receiver_as4)
    # ipv4: speaker sends+receives, receiver receives -> on; ipv6: speaker only sends -> on.
    assert d == Direction(as4=True, addpath=frozenset({(1, 1), (2, 1)}), assumed=False)
    # The other direction: receiver only receives, so it never sends path ids.
    assert negotiate(receiver_as4, speaker) == Direction(as4=True, addpath=frozenset(),
                                                         assumed=False)
    assert negotiate(speaker, old) == Direction(as4=False, addpath=frozenset(), assumed=False)
    assert negotiate(None, speaker) == Direction(as4=True, addpath=frozenset(), assumed=True)
    assert negotiate(speaker, None).assumed


# --- UPDATE --------------------------------------------------------------------------------------


def test_update_two_octet_as_set_as4_path_communities_against_scapy():
    msg = update(
        withdrawn_routes=v4("10.9.0.0/16"),
        path_attr=[
            origin(1),
            as_path2((2, [23456, 65002]), (1, [65003, 65004])),
            next_hop("192.0.2.1"),
            PA(type_flags=0x80, type_code=4, attribute=B.BGPPAMultiExitDisc(med=50)),
            PA(type_flags=0x40, type_code=5, attribute=B.BGPPALocalPref(local_pref=200)),
            PA(type_flags=0x40, type_code=6),
            PA(type_flags=0xC0, type_code=7,
               attribute=B.BGPPAAggregator(aggregator_asn=23456, speaker_address="192.0.2.9")),
            PA(type_flags=0xC0, type_code=8, attribute=Raw(struct.pack(
                ">5I", (65001 << 16) | 100, 0xFFFFFF01, 0xFFFF029A, 0xFFFF0000, 0xFFFFFF04))),
            PA(type_flags=0x80, type_code=9,
               attribute=B.BGPPAOriginatorID(originator_id="192.0.2.77")),
            PA(type_flags=0xC0, type_code=17,
               attribute=B.BGPPAAS4Path(segment_type=2, segment_value=[4200000001, 65002])),
            PA(type_flags=0xC0, type_code=18, attribute=B.BGPPAAS4Aggregator(
                aggregator_asn=4200000009, speaker_address="192.0.2.9")),
        ],
        nlri=v4("203.0.113.0/26", "10.0.0.0/8", "0.0.0.0/0", "198.51.100.128/25"))
    oracle = scapy_update_view(msg, four=False)
    d = decode_message(msg, AS2)
    assert_shape(d)
    row = d.row
    assert row["malformed"] is None and row["ctx_note"] is None
    assert routes_of(d, "withdraw") == oracle["withdrawn"] == ["10.9.0.0/16"]
    assert routes_of(d, "announce") == oracle["nlri"]
    assert (row["n_withdrawn"], row["n_announced"], row["eor"]) == (1, 4, None)
    assert row["origin"] == oracle["origin"] == "EGP"
    assert oracle["segments"] == [(2, [23456, 65002]), (1, [65003, 65004])]
    assert row["as_path"] == [23456, 65002, 65003, 65004]
    assert row["as_path_str"] == "23456 65002 {65003,65004}"
    assert row["as4_path"] == oracle["as4_path"] == [4200000001, 65002]
    assert row["as4_path_str"] == "4200000001 65002"
    assert row["next_hop"] == oracle["next_hop"]
    assert row["med"] == oracle["med"] and row["local_pref"] == oracle["local_pref"]
    assert row["atomic_aggregate"] is True
    assert row["aggregator"] == oracle["aggregator"] == "23456:192.0.2.9"
    assert row["as4_aggregator"] == oracle["as4_aggregator"] == "4200000009:192.0.2.9"
    assert row["communities"] == oracle["communities"] == [
        "65001:100", "no-export", "blackhole", "graceful-shutdown", "no-peer"]
    assert row["originator_id"] == oracle["originator_id"]
    for r in d.routes:
        if r["action"] == "announce":
            assert {k: r[k] for k in ("origin", "as_path", "next_hop", "communities", "med")} \
                == {k: row[k] for k in ("origin", "as_path", "next_hop", "communities", "med")}
        else:
            assert r["as_path"] is None and r["next_hop"] is None and r["communities"] is None


def test_update_four_octet_as_path_and_the_scapy_default_fault():
    msg = update(path_attr=[origin(0),
                            as_path4((2, [4200000001, 65002, 7]), (1, [65010, 4200000099])),
                            next_hop("198.51.100.1")],
                 nlri=v4("203.0.113.64/26"))
    right = scapy_update_view(msg, four=True)
    d = decode_message(msg, AS4)
    assert d.row["malformed"] is None
    assert right["segments"] == [(2, [4200000001, 65002, 7]), (1, [65010, 4200000099])]
    assert d.row["as_path"] == [4200000001, 65002, 7, 65010, 4200000099]
    assert d.row["as_path_str"] == "4200000001 65002 7 {65010,4200000099}"
    # The oracle's default (2-octet) reading is wrong for this session; diag must not follow it.
    with scapy_asn_width(False):
        wrong = B.BGPHeader(msg)[B.BGPUpdate].path_attr[1].attribute
    wrong_asns = [a for s in wrong.segments for a in s.segment_value]
    assert wrong_asns != d.row["as_path"]
    # The same bytes in a 2-octet session are a malformed AS_PATH (segments do not tile).
    assert "malformed AS_PATH" in decode_message(msg, AS2).row["malformed"]


def test_update_assumed_context_reads_two_octet_path_and_says_so():
    msg = update(path_attr=[origin(0), as_path2((2, [65001, 65002])), next_hop("10.0.0.1")],
                 nlri=v4("10.1.0.0/16"))
    oracle = scapy_update_view(msg, four=False)
    d = decode_message(msg, Direction())          # no OPENs seen: 4-octet assumed
    assert d.row["malformed"] is None
    assert d.row["as_path"] == [a for _, seg in oracle["segments"] for a in seg]
    assert "2-octet" in d.row["ctx_note"]
    strict = decode_message(msg, AS4)             # negotiated 4-octet: no guessing
    assert "malformed AS_PATH" in strict.row["malformed"]


def test_update_confederation_segments():
    msg = update(path_attr=[origin(0), as_path4((3, [65010, 65011]), (4, [65012, 65013]),
                                                (2, [65001]))],
                 nlri=v4("10.2.0.0/16"))
    d = decode_message(msg, AS4)
    assert scapy_update_view(msg, four=True)["segments"][0] == (3, [65010, 65011])
    assert d.row["as_path_str"] == "(65010 65011) [65012,65013] 65001"


def test_update_large_and_extended_communities_against_scapy():
    ext = [
        B.BGPPAExtCommunity(type_high=0, type_low=2, value=B.BGPPAExtCommTwoOctetASSpecific(
            global_administrator=65000, local_administrator=100)),
        B.BGPPAExtCommunity(type_high=1, type_low=3, value=B.BGPPAExtCommIPv4AddressSpecific(
            global_administrator=0xC0000201, local_administrator=7)),
        B.BGPPAExtCommunity(type_high=2, type_low=2, value=B.BGPPAExtCommFourOctetASSpecific(
            global_administrator=4200000001, local_administrator=9)),
        B.BGPPAExtCommunity(type_high=0x80, type_low=6, value=B.BGPPAExtCommTrafficRate(
            id=0, rate=0)),
    ]
    large = [B.BGPLargeCommunitySegment(global_administrator=4200000001, local_data_part1=1,
                                        local_data_part2=2),
             B.BGPLargeCommunitySegment(global_administrator=65000, local_data_part1=0,
                                        local_data_part2=4294967295)]
    msg = update(path_attr=[origin(0), as_path4((2, [65000])), next_hop("10.0.0.1"),
                            PA(type_flags=0xC0, type_code=16,
                               attribute=B.BGPPAExtComms(extended_communities=ext)),
                            PA(type_flags=0xC0, type_code=32,
                               attribute=B.BGPPALargeCommunity(segments=large))],
                 nlri=v4("10.3.0.0/24"))
    oracle = scapy_update_view(msg, four=True)
    d = decode_message(msg, AS4)
    assert d.row["malformed"] is None
    assert d.row["large_communities"] == oracle["large_communities"] == [
        "4200000001:1:2", "65000:0:4294967295"]
    raw_ext = oracle["ext_communities"]
    assert d.row["ext_communities"] == [
        "rt 65000:100", "soo 192.0.2.1:7", "rt 4200000001:9", raw_ext[3].hex()]
    assert d.routes[0]["large_communities"] == d.row["large_communities"]


def test_mp_reach_ipv6_link_local_and_mp_unreach_against_scapy():
    reach = B.BGPPAMPReachNLRI(afi=2, safi=1, nh_addr_len=32, nh_v6_global="2001:db8::1",
                               nh_v6_link_local="fe80::a8c1:abff:fe00:1",
                               nlri=[B.BGPNLRI_IPv6(prefix="2001:db8:100::/40"),
                                     B.BGPNLRI_IPv6(prefix="::/0"),
                                     B.BGPNLRI_IPv6(prefix="2001:db8:1:2::/64")])
    unreach = B.BGPPAMPUnreachNLRI(afi=2, safi=1, afi_safi_specific=B.BGPPAMPUnreachNLRI_IPv6(
        withdrawn_routes=[B.BGPNLRI_IPv6(prefix="2001:db8:dead::/48")]))
    msg = update(path_attr=[origin(0), as_path4((2, [65001])),
                            PA(type_flags=0x80, type_code=14, attribute=reach),
                            PA(type_flags=0x80, type_code=15, attribute=unreach)])
    oracle = scapy_update_view(msg, four=True)
    d = decode_message(msg, AS4)
    assert_shape(d)
    assert d.row["malformed"] is None
    mp = oracle["mp_reach"]
    ann = [r for r in d.routes if r["action"] == "announce"]
    wd = [r for r in d.routes if r["action"] == "withdraw"]
    assert [r["prefix"] for r in ann] == [p.prefix for p in mp.nlri]
    assert [r["prefix"] for r in wd] == [
        p.prefix for p in oracle["mp_unreach"].afi_safi_specific.withdrawn_routes]
    for r in ann:
        assert (r["afi"], r["safi"]) == ("ipv6", "unicast")
        assert r["next_hop"] == str(ipaddress.IPv6Address(mp.nh_v6_global))
        assert r["next_hop_link_local"] == str(ipaddress.IPv6Address(mp.nh_v6_link_local))
        assert r["as_path"] == [65001]
    assert wd[0]["afi"] == "ipv6" and wd[0]["next_hop"] is None
    assert (d.row["n_announced"], d.row["n_withdrawn"], d.row["eor"]) == (3, 1, None)
    assert d.row["next_hop"] == "2001:db8::1"


def test_mp_reach_ipv4_and_unknown_family_kept_raw():
    reach4 = struct.pack(">HBB4sB", 1, 1, 4, bytes([192, 0, 2, 1]), 0) + bytes([24, 10, 4, 0])
    # a flow-spec rule (RFC 8955: length, destination prefix component 10.0.0.0/8): a family
    # diag does not split, kept as one raw row
    flowspec_nlri = bytes.fromhex("0501080a")
    reach_flow = struct.pack(">HBB", 1, 133, 0) + b"\0" + flowspec_nlri
    msg = update(path_attr=[origin(0), as_path4((2, [65001])),
                            PA(type_flags=0x80, type_code=14, attribute=Raw(reach4))])
    d = decode_message(msg, AS4)
    assert [(r["afi"], r["prefix"], r["next_hop"]) for r in d.routes] == [
        ("ipv4", "10.4.0.0/24", "192.0.2.1")]
    # RFC 8950: IPv4 NLRI with an IPv6 global + link-local next hop (BGP unnumbered).
    reach_8950 = (struct.pack(">HBB", 1, 1, 32) + ipaddress.IPv6Address("2001:db8::7").packed
                  + ipaddress.IPv6Address("fe80::7").packed + b"\0" + bytes([32, 10, 0, 0, 7]))
    msg = update(path_attr=[origin(0), as_path4((2, [65001])),
                            PA(type_flags=0x80, type_code=14, attribute=Raw(reach_8950))])
    [r] = decode_message(msg, AS4).routes
    assert (r["afi"], r["prefix"], r["next_hop"], r["next_hop_link_local"]) == (
        "ipv4", "10.0.0.7/32", "2001:db8::7", "fe80::7")
    msg = update(path_attr=[origin(0), as_path4((2, [65001])),
                            PA(type_flags=0x80, type_code=14, attribute=Raw(reach_flow))])
    d = decode_message(msg, AS4)
    assert d.row["malformed"] is None
    [r] = d.routes
    assert (r["afi"], r["safi"], r["prefix"], r["nlri_raw"]) == ("ipv4", "flowspec", None,
                                                                 flowspec_nlri.hex())


def test_end_of_rib_ipv4_and_mp():
    eor4 = update()
    assert len(eor4) == 23
    d = decode_message(eor4, AS4)
    assert (d.row["eor"], d.row["malformed"], d.routes) == ("ipv4/unicast", None, [])
    eor6 = update(path_attr=[PA(type_flags=0x80, type_code=15,
                                attribute=B.BGPPAMPUnreachNLRI(afi=2, safi=1))])
    assert B.BGPHeader(eor6)[B.BGPUpdate].path_attr[0].attribute.afi == 2
    d = decode_message(eor6, AS4)
    assert (d.row["eor"], d.row["malformed"], d.routes) == ("ipv6/unicast", None, [])
    # A withdraw-only UPDATE is not an End-of-RIB (tcpdump says it is; RFC 4724 says not).
    d = decode_message(update(withdrawn_routes=v4("203.0.113.64/26")), AS4)
    assert d.row["eor"] is None and routes_of(d, "withdraw") == ["203.0.113.64/26"]


def test_add_path_ipv4_and_mp_ipv6():
    msg = update(path_attr=[origin(0), as_path4((2, [65001])), next_hop("10.0.0.1")],
                 withdrawn_routes=[B.BGPNLRI_IPv4_AP(nlri_path_id=7, prefix="10.7.0.0/16")],
                 nlri=[B.BGPNLRI_IPv4_AP(nlri_path_id=1, prefix="10.1.0.0/16"),
                       B.BGPNLRI_IPv4_AP(nlri_path_id=4000000000, prefix="10.1.0.0/16")])
    oracle = scapy_update_view(msg, four=True)    # scapy guesses ADD-PATH from the bytes
    ctx = Direction(as4=True, addpath=frozenset({(1, 1)}), assumed=False)
    d = decode_message(msg, ctx)
    assert d.row["malformed"] is None
    ann = [(r["path_id"], r["prefix"]) for r in d.routes if r["action"] == "announce"]
    assert ann == list(zip(oracle["path_ids"], oracle["nlri"]))
    assert ann == [(1, "10.1.0.0/16"), (4000000000, "10.1.0.0/16")]
    assert [(r["path_id"], r["prefix"]) for r in d.routes if r["action"] == "withdraw"] == [
        (7, "10.7.0.0/16")]
    # Without the context and with nothing negotiated, the bytes do not make sense as plain
    # NLRI: an assumed context falls back to path ids and says so; a negotiated one reports it.
    guessed = decode_message(msg, Direction())
    assert [(r["path_id"], r["prefix"]) for r in guessed.routes][1:] == ann
    assert "add-path" in guessed.row["ctx_note"]
    assert decode_message(msg, AS4).row["malformed"]
    # MP_REACH IPv6 with path ids (scapy cannot build these: crafted per RFC 7911 3).
    nlri6 = struct.pack(">IB", 3, 48) + bytes.fromhex("20010db80001")
    reach = struct.pack(">HBB", 2, 1, 16) + ipaddress.IPv6Address("2001:db8::9").packed + b"\0"
    msg6 = update(path_attr=[origin(0), as_path4((2, [65001])),
                             PA(type_flags=0x80, type_code=14, attribute=Raw(reach + nlri6))])
    ctx6 = Direction(as4=True, addpath=frozenset({(2, 1)}), assumed=False)
    [r] = decode_message(msg6, ctx6).routes
    assert (r["path_id"], r["prefix"], r["next_hop"]) == (3, "2001:db8:1::/48", "2001:db8::9")


def test_extended_message_rfc8654_over_4096_octets():
    prefixes = [f"10.{i // 256}.{i % 256}.0/24" for i in range(1500)]
    msg = update(path_attr=[origin(0), as_path4((2, [65001])), next_hop("10.0.0.1")],
                 nlri=v4(*prefixes))
    assert len(msg) > 4096
    d = decode_message(msg, AS4)
    assert d.row["malformed"] is None and d.row["length"] == len(msg)
    assert routes_of(d, "announce") == prefixes


def test_unknown_attribute_kept_by_type_and_length():
    msg = update(path_attr=[origin(0), as_path4((2, [65001])), next_hop("10.0.0.1"),
                            PA(type_flags=0xC0, type_code=99, attribute=Raw(b"abc")),
                            PA(type_flags=0xD0, type_code=250, attribute=Raw(b"x" * 300))],
                 nlri=v4("10.5.0.0/16"))
    oracle = B.BGPHeader(msg)[B.BGPUpdate].path_attr
    assert (oracle[3].type_code, oracle[4].attr_ext_len) == (99, 300)
    d = decode_message(msg, AS4)
    assert d.row["malformed"] is None
    assert d.row["unknown_attributes"] == ["type 99 len 3", "type 250 len 300"]
    assert d.routes[0]["unknown_attributes"] == d.row["unknown_attributes"]


# --- NOTIFICATION, ROUTE-REFRESH, KEEPALIVE -------------------------------------------------------


@pytest.mark.parametrize("code,subcode,data,name,subname,text,cause", [
    (6, 2, b"\x1amaintenance window \xe2\x80\x94 bye", "Cease", "Administrative Shutdown",
     "maintenance window \u2014 bye", None),
    (6, 4, b"\x05reset", "Cease", "Administrative Reset", "reset", None),
    (6, 6, b"", "Cease", "Other Configuration Change", None, None),
    (6, 9, b"\x06\x02\x04down", "Cease", "Hard Reset", "down",
     "Cease/Administrative Shutdown"),
    (6, 9, b"\x04\x00", "Cease", "Hard Reset", None, "Hold Timer Expired/Unspecific"),
    (2, 2, b"\xfd\xeb", "OPEN Message Error", "Bad Peer AS", None, None),
    (3, 11, b"", "UPDATE Message Error", "Malformed AS_PATH", None, None),
    (4, 0, b"", "Hold Timer Expired", "Unspecific", None, None),
    (7, 1, b"", "ROUTE-REFRESH Message Error", "Invalid Message Length", None, None),
    (6, 10, b"", "Cease", "BFD Down", None, None),
])
def test_notification_against_scapy(code, subcode, data, name, subname, text, cause):
    msg = raw(B.BGPHeader() / B.BGPNotification(error_code=code, error_subcode=subcode,
                                                 data=data))
    oracle = B.BGPHeader(msg)[B.BGPNotification]
    d = decode_message(msg, AS4)
    assert_shape(d)
    row = d.row
    assert row["malformed"] is None
    assert (row["type_name"], row["notify_code"], row["notify_subcode"]) == (
        "NOTIFICATION", oracle.error_code, oracle.error_subcode)
    assert (row["notify_name"], row["notify_subname"]) == (name, subname)
    assert row["notify_text"] == text
    assert row["notify_cause"] == cause
    assert row["notify_data"] == (oracle.data or b"").hex()


def test_notification_shutdown_text_length_lies():
    msg = raw(B.BGPHeader() / B.BGPNotification(error_code=6, error_subcode=2,
                                                 data=b"\x40short"))
    d = decode_message(msg, AS4)
    assert d.row["notify_text"] == "short"
    assert "shutdown communication length 64 past end" in d.row["malformed"]


@pytest.mark.parametrize("afi,safi,subtype,names", [
    (1, 1, 0, ("ipv4", "unicast", "normal")),
    (2, 1, 1, ("ipv6", "unicast", "BoRR")),
    (1, 128, 2, ("ipv4", "mpls-vpn", "EoRR")),
    (99, 7, 2, ("afi-99", "safi-7", "EoRR")),
])
def test_route_refresh_subtypes_against_scapy(afi, safi, subtype, names):
    msg = raw(B.BGPHeader() / B.BGPRouteRefresh(afi=afi, safi=safi, subtype=subtype))
    assert len(msg) == 23
    oracle = B.BGPHeader(msg)[B.BGPRouteRefresh]
    d = decode_message(msg, AS4)
    assert d.row["malformed"] is None and d.row["type_name"] == "ROUTE-REFRESH"
    assert (oracle.afi, oracle.safi, oracle.subtype) == (afi, safi, subtype)
    assert d.row["refresh_subtype"] == oracle.subtype
    assert (d.row["refresh_afi"], d.row["refresh_safi"], d.row["refresh_subtype_name"]) == names


def test_keepalive_against_scapy():
    msg = raw(B.BGPKeepAlive())
    assert B.BGPHeader(msg).type == 4
    d = decode_message(memoryview(msg), AS4)
    assert (d.row["type"], d.row["type_name"], d.row["length"], d.row["malformed"]) == (
        4, "KEEPALIVE", 19, None)
    assert d.routes == [] and d.open is None


# --- malformed -----------------------------------------------------------------------------------


def _good_update() -> bytes:
    return update(path_attr=[origin(0), as_path4((2, [65001])), next_hop("10.0.0.1")],
                  nlri=v4("10.1.0.0/16", "10.2.0.0/16"))


def _set_length(msg: bytes, length: int) -> bytes:
    return msg[:16] + struct.pack(">H", length) + msg[18:]


def _malformed_cases():
    good = _good_update()
    attr_past_end = bytearray(good)
    attr_past_end[23 + 4 + 2] = 200        # AS_PATH length octet (after ORIGIN's 4 octets)
    prefix33 = good[:-3] + bytes([33, 10, 2, 0, 0, 0])
    prefix33 = _set_length(prefix33, len(prefix33))
    v6_129 = update(path_attr=[origin(0), as_path4((2, [65001])), PA(
        type_flags=0x80, type_code=14, attribute=Raw(
            struct.pack(">HBB", 2, 1, 16) + bytes(16) + b"\0" + bytes([129]) + bytes(17)))])
    withdrawn_past_end = bytearray(update(withdrawn_routes=v4("10.9.0.0/16")))
    withdrawn_past_end[19:21] = struct.pack(">H", 500)
    open_past_end = bytearray(open_message(65001, [B.BGPCapFourBytesASN(asn=65001)]))
    open_past_end[28] = 40                 # optional parameters length
    return [
        ("bad marker", b"\x00" * 16 + good[16:], "marker not all ones",
         ["10.1.0.0/16", "10.2.0.0/16"]),
        ("length says more", _set_length(good, len(good) + 10), "length field", None),
        ("length says less", _set_length(good, len(good) - 3), "length field",
         ["10.1.0.0/16"]),
        ("length below header", _set_length(good, 5), "length field 5", None),
        ("attr length past end", bytes(attr_past_end), "length 200 past end", None),
        ("prefix length 33", prefix33, "prefix length 33 > 32", ["10.1.0.0/16"]),
        ("ipv6 prefix length 129", v6_129, "prefix length 129 > 128", []),
        ("withdrawn past end", bytes(withdrawn_past_end), "withdrawn routes length 500", None),
        ("too short", good[:10], "too short", None),
        ("unknown type", MARKER + struct.pack(">HB", 19, 9), "unknown message type 9", None),
        ("keepalive with body", MARKER + struct.pack(">HB", 21, 4) + b"xx", "KEEPALIVE length",
         None),
        ("update too short", MARKER + struct.pack(">HB", 21, 2) + b"\0\0",
         "UPDATE too short", None),
        ("open params past end", bytes(open_past_end), "optional parameters length 40", None),
        ("bad origin", update(path_attr=[PA(type_flags=0x40, type_code=1, attribute=Raw(b"\x07"))]),
         "bad ORIGIN", None),
        ("optional flag on well-known", update(path_attr=[
            PA(type_flags=0xC0, type_code=1, attribute=B.BGPPAOrigin(origin=0))]),
         "well-known marked optional", None),
        ("duplicate attribute", update(path_attr=[origin(0), origin(1)]),
         "duplicate attribute 1", None),
        ("borr with body", MARKER + struct.pack(">HBHBB", 25, 5, 1, 1, 1) + b"zz",
         "ROUTE-REFRESH BoRR length 25", None),
    ]


@pytest.mark.parametrize("name,msg,reason,prefixes", _malformed_cases(),
                         ids=[c[0] for c in _malformed_cases()])
def test_malformed_is_a_reason_not_an_exception(name, msg, reason, prefixes):
    d = decode_message(msg, AS4)
    assert_shape(d)
    assert d.row["malformed"] and reason in d.row["malformed"], d.row["malformed"]
    if prefixes is not None:        # what could be decoded still is, treated as withdrawn (RFC 7606)
        assert routes_of(d, "treat-as-withdraw") == prefixes
        assert routes_of(d, "announce") == []


def test_huge_inputs_stay_bounded():
    # 2000 broken capabilities (RFC 9072 extended parameters allow 65535 octets): one short
    # reason list, not 2000 reasons.
    caps = bytes([1, 1, 0]) * 2000
    params = bytes([2]) + struct.pack(">H", len(caps)) + caps
    body = struct.pack(">BHH4sB", 4, 65001, 90, bytes(4), 255) + bytes([255])
    body += struct.pack(">H", len(params)) + params
    d = decode_message(MARKER + struct.pack(">HB", 19 + len(body), 1) + body, AS4)
    assert d.row["malformed"].count(";") < 8
    # A long AS_PATH: 60 segments of 255 four-octet ASes in an extended-length attribute.
    long_path = as_path4(*[(2, list(range(i * 255 + 1, i * 255 + 256))) for i in range(60)])
    long_path.type_flags = 0x50                   # extended length: the value is 61,320 octets
    msg = update(path_attr=[origin(0), long_path, next_hop("10.0.0.1")], nlri=v4("10.0.0.0/8"))
    d = decode_message(msg, AS4)
    assert d.row["malformed"] is None
    assert d.row["as_path"] == list(range(1, 60 * 255 + 1))


# --- real FRR / GoBGP / BIRD captures vs tcpdump -vv ---------------------------------------------

# tcpdump capability codes -> the capability names diag documents (for codes without details).
CAP_NAMES = {2: "route-refresh", 128: "route-refresh-cisco", 70: "enhanced-route-refresh",
             6: "extended-message", 73: "fqdn", 64: "graceful-restart",
             71: "long-lived-graceful-restart", 5: "extended-nexthop"}
_PACKET_RE = re.compile(r"^\d\d:\d\d:\d\d\.\d+ ")    # a packet's first line: timestamp
_MSG_RE = re.compile(r"^\t(\w[\w -]*?) Message \((\d+)\), length: (\d+)(?:, (.*))?$")
_CAP_RE = re.compile(r"^\t {6}(.+?) \((\d+)\), length: \d+$")
_FAMILY_RE = re.compile(r"AFI (\S+) \(\d+\), SAFI (\S+) \(\d+\)(?:, Send/Receive: (\w+))?")


def tcpdump_packets(path: Path) -> list[list[dict]]:
    """Per packet (in capture order), the BGP messages tcpdump -vv printed, as dicts."""
    packets: list[list[dict]] = []
    msg: dict | None = None
    section = None
    for line in path.read_text().splitlines():
        if _PACKET_RE.match(line):
            packets.append([])
            msg = None
            continue
        m = _MSG_RE.match(line)
        if m:
            msg = {"type": int(m[2]), "length": int(m[3]), "tail": m[4], "caps": [],
                   "withdrawn": [], "announced": [], "eor": False}
            packets[-1].append(msg)
            section = None
            continue
        if msg is None:
            continue
        text = line.strip()
        if m := re.match(r"Version (\d+), my AS (\d+), Holdtime (\d+)s, ID (\S+)", text):
            msg.update(version=int(m[1]), my_as=int(m[2]), hold=int(m[3]), bgp_id=m[4])
        elif m := _CAP_RE.match(line):
            msg["caps"].append({"code": int(m[2])})
        elif m := re.match(r"4 Byte AS (\d+)", text):
            msg["caps"][-1]["as4"] = int(m[1])
        elif (m := _FAMILY_RE.match(text)) and msg["type"] == 1:
            msg["caps"][-1]["family"] = f"{m[1].lower()}/{m[2].lower()}"
            msg["caps"][-1]["mode"] = (m[3] or "").lower()
        elif (m := _FAMILY_RE.match(text)) and msg["type"] == 5:
            msg["refresh"] = (m[1].lower(), m[2].lower())
        elif text == "Withdrawn routes:":
            section = "withdrawn"
        elif text == "Updated routes:":
            section = "announced"
        elif text.startswith("End-of-Rib Marker"):
            msg["eor"] = True
        elif m := re.match(r"Origin \(1\).*: (\w+)$", text):
            msg["origin"] = m[1].upper()
        elif m := re.match(r"AS Path \(2\), length: \d+, Flags \[\w*\]: (.*)$", text):
            msg["as_path"] = [int(a) for a in m[1].split()]
        elif m := re.match(r"Next Hop \(3\).*: (\S+)$", text):
            msg["next_hop"] = m[1]
        elif m := re.match(r"Multi Exit Discriminator \(4\).*: (\d+)$", text):
            msg["med"] = int(m[1])
        elif section and re.match(r"^[\d.]+/\d+$", text):
            msg[section].append(text)
    return packets


def capture_messages(path: Path) -> list[list[bytes] | None]:
    """Per frame, the BGP messages of its TCP payload; None when it is not whole messages."""
    from scapy.all import TCP, rdpcap
    out: list[list[bytes] | None] = []
    for pkt in rdpcap(str(path)):
        if TCP not in pkt or 179 not in (pkt[TCP].sport, pkt[TCP].dport):
            out.append([])
            continue
        payload = bytes(pkt[TCP].payload)
        msgs: list[bytes] | None = []
        pos = 0
        while pos < len(payload):
            length = 0
            if pos + 18 <= len(payload):
                length = struct.unpack_from(">H", payload, pos + 16)[0]
            if length < 19 or pos + length > len(payload):
                msgs = None
                break
            msgs.append(payload[pos:pos + length])
            pos += length
        out.append(msgs)
    return out


def expected_capabilities(caps: list[dict]) -> list[str]:
    names = []
    for c in caps:
        code = c["code"]
        if code == 1:
            names.append(f"multiprotocol {c['family']}")
        elif code == 65:
            names.append(f"4-octet-as {c['as4']}")
        elif code == 69:
            names.append(f"add-path {c['family']} {c['mode']}")
        else:
            names.append(CAP_NAMES[code])
    return names


@pytest.mark.parametrize("capture", ["bgp_session", "bgp_failures"])
def test_real_capture_message_for_message_against_tcpdump(capture):
    frames = capture_messages(FIXTURES / f"{capture}.pcap")
    printed = tcpdump_packets(FIXTURES / f"{capture}.decoded.txt")
    assert len(frames) == len(printed)
    compared = skipped = 0
    seen_types: set[str] = set()
    for frame_no, (msgs, expected) in enumerate(zip(frames, printed), start=1):
        if msgs is None:
            skipped += len(expected)
            continue
        assert len(msgs) == len(expected), frame_no
        for msg, exp in zip(msgs, expected):
            d = decode_message(msg, Direction())
            assert_shape(d)
            row = d.row
            where = f"{capture} frame {frame_no}"
            assert row["malformed"] is None, where
            assert (row["type"], row["length"]) == (exp["type"], exp["length"]), where
            seen_types.add(row["type_name"])
            if row["type"] == 1:
                assert (row["open_version"], d.open.my_as_field, row["open_hold_time"],
                        row["open_bgp_id"]) == (exp["version"], exp["my_as"], exp["hold"],
                                                exp["bgp_id"]), where
                assert row["open_capabilities"] == expected_capabilities(exp["caps"]), where
            elif row["type"] == 2:
                assert routes_of(d, "withdraw") == exp["withdrawn"], where
                assert routes_of(d, "announce") == exp["announced"], where
                for key in ("origin", "as_path", "next_hop", "med"):
                    assert row[key] == exp.get(key), (where, key)
                if row["length"] == 23:
                    assert exp["eor"] and row["eor"] == "ipv4/unicast", where
                else:
                    assert row["eor"] is None, where
            elif row["type"] == 3:
                tail = f"{row['notify_name']} ({row['notify_code']}), subcode " \
                       f"{row['notify_subname']} ({row['notify_subcode']})"
                assert tail == exp["tail"], where
            elif row["type"] == 5:
                assert (row["refresh_afi"], row["refresh_safi"]) == exp["refresh"], where
            compared += 1
    total = sum(len(p) for p in printed)
    assert compared >= 0.9 * total and compared > 100, (compared, skipped, total)
    assert {"OPEN", "UPDATE", "NOTIFICATION", "KEEPALIVE"} <= seen_types


def _real_rows(capture: str) -> list[Decoded]:
    frames = capture_messages(FIXTURES / f"{capture}.pcap")
    return [decode_message(m, Direction()) for msgs in frames if msgs for m in msgs]


def test_real_capture_named_facts():
    session = _real_rows("bgp_session")
    failures = _real_rows("bgp_failures")
    frr_open = next(d for d in session if d.open and d.open.my_as == 65000)
    assert "add-path ipv4/unicast receive" in frr_open.row["open_capabilities"]
    assert frr_open.open.fqdn == "tor" and frr_open.open.extended_message
    assert frr_open.open.addpath == {(1, 1): 1}
    bird_open = next(d.open for d in session if d.open and d.open.my_as == 65002)
    gobgp_open = next(d.open for d in session if d.open and d.open.my_as == 65001)
    assert gobgp_open.extended_nexthop == ((1, 1, 2),)
    # FRR only receives path ids, nobody sends them: no ADD-PATH in either direction.
    for a, b in ((frr_open.open, bird_open), (bird_open, frr_open.open),
                 (gobgp_open, frr_open.open)):
        assert negotiate(a, b) == Direction(as4=True, addpath=frozenset(), assumed=False)
    withdrawals = [r["prefix"] for d in failures for r in d.routes if r["action"] == "withdraw"]
    assert "203.0.113.64/26" in withdrawals
    notifications = {(d.row["notify_name"], d.row["notify_subname"]) for d in failures
                     if d.row["type"] == 3}
    assert ("Cease", "Other Configuration Change") in notifications
    assert ("OPEN Message Error", "Bad Peer AS") in notifications
    refresh = [d.row for d in session if d.row["type"] == 5]
    assert refresh and all(r["refresh_afi"] == "ipv4" for r in refresh)


# --- properties (bounded by the hypothesis profile in tests/conftest.py) --------------------------


def _corpus() -> list[bytes]:
    msgs = [_good_update(), open_message(23456, MANY_CAPS), raw(B.BGPKeepAlive()),
            raw(B.BGPHeader() / B.BGPNotification(error_code=6, error_subcode=2,
                                                   data=b"\x03bye")),
            raw(B.BGPHeader() / B.BGPRouteRefresh(afi=2, safi=1, subtype=1)), update()]
    frames = capture_messages(FIXTURES / "bgp_session.pcap")
    msgs += [m for f in frames if f for m in f if m[18] in (1, 2, 3)][:20]
    return msgs


CORPUS = _corpus()


@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data):
    for ctx in (Direction(), AS2, Direction(as4=True, addpath=frozenset({(1, 1), (2, 1)}),
                                            assumed=False), None):
        d = decode_message(data, ctx)
        assert_shape(d)
        assert d.row["type"] == (data[18] if len(data) >= 19 else None)
        if d.row["malformed"] is None:
            assert data[:16] == MARKER


@given(st.integers(min_value=0, max_value=7), st.binary(max_size=400))
def test_random_body_with_valid_header_never_raises(mtype, body):
    msg = MARKER + struct.pack(">HB", 19 + len(body), mtype) + body
    d = decode_message(msg, Direction())
    assert_shape(d)
    assert d.row["type"] == mtype
    if d.row["malformed"] is None and mtype == 2:
        assert d.row["n_announced"] + d.row["n_withdrawn"] == len(d.routes)


@given(st.sampled_from(CORPUS), st.lists(
    st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(0, 255)),
    min_size=1, max_size=6), st.integers(min_value=-40, max_value=40), st.booleans())
def test_mutated_valid_messages_never_raise(msg, flips, cut, fix_length):
    data = bytearray(msg)
    for index, value in flips:
        data[index % len(data)] = value
    if cut < 0:
        data = data[:cut]
    else:
        data += bytes(cut)
    if fix_length and len(data) >= 18:
        data[16:18] = struct.pack(">H", len(data) & 0xFFFF)
    for ctx in (Direction(), AS2):
        assert_shape(decode_message(bytes(data), ctx))


_prefix4 = st.builds(lambda a, n: str(ipaddress.ip_network((a, n), strict=False)),
                     st.ip_addresses(v=4), st.integers(0, 32))
_prefix6 = st.builds(lambda a, n: str(ipaddress.ip_network((a, n), strict=False)),
                     st.ip_addresses(v=6), st.integers(0, 128))
_asn4 = st.integers(min_value=1, max_value=2**32 - 1)


@given(st.lists(_prefix4, max_size=12), st.lists(_prefix4, max_size=12),
       st.lists(st.tuples(st.sampled_from([1, 2]), st.lists(_asn4, min_size=1, max_size=6)),
                max_size=4),
       st.lists(_prefix6, max_size=6))
def test_round_trip_with_scapy_built_updates(withdrawn, announced, segments, announced6):
    attrs = [origin(2), as_path4(*segments), next_hop("192.0.2.1")]
    if announced6:
        attrs.append(PA(type_flags=0x80, type_code=14, attribute=B.BGPPAMPReachNLRI(
            afi=2, safi=1, nh_addr_len=16, nh_v6_addr="2001:db8::1",
            nlri=[B.BGPNLRI_IPv6(prefix=p) for p in announced6])))
    msg = update(withdrawn_routes=v4(*withdrawn), path_attr=attrs, nlri=v4(*announced))
    d = decode_message(msg, AS4)
    assert d.row["malformed"] is None
    assert routes_of(d, "withdraw") == withdrawn
    assert routes_of(d, "announce") == announced + announced6
    assert d.row["as_path"] == [a for _, seg in segments for a in seg]
    if announced6:
        assert d.routes[-1]["next_hop"] == "2001:db8::1"


def test_missing_well_known_attributes_make_the_routes_treat_as_withdraw():
    """RFC 4271 6.3 / RFC 7606 3.d: ORIGIN, AS_PATH and (for the IPv4 NLRI of the body)
    NEXT_HOP must come with routes; FRR 8.4 treats such an UPDATE as a withdrawal (seen in the
    lab: re-advertising a labeled-unicast route to a peer without capabilities, it sent none)."""
    d = decode_message(update(path_attr=[origin(0), as_path4((2, [65001]))],
                              nlri=v4("10.0.0.0/8")), AS4)
    assert d.row["malformed"] == "missing well-known attribute NEXT_HOP"
    assert [r["action"] for r in d.routes] == ["treat-as-withdraw"]
    reach = struct.pack(">HBB", 2, 1, 16) + ipaddress.IPv6Address("2001:db8::1").packed + b"\0" \
        + bytes([48]) + ipaddress.IPv6Address("2001:db8:1::").packed[:6]
    d = decode_message(update(path_attr=[PA(type_flags=0x80, type_code=14, attribute=Raw(reach))]),
                       AS4)
    assert d.row["malformed"] == ("missing well-known attribute ORIGIN; "
                                  "missing well-known attribute AS_PATH")
    # withdrawals alone need no attribute
    d = decode_message(update(withdrawn_routes=v4("10.0.0.0/8")), AS4)
    assert d.row["malformed"] is None
