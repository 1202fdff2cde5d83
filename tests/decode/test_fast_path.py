"""The vectorised fast path must give exactly the rows of the per-packet reference decoder.

Frames are crafted with scapy in many shapes (VXLAN with TCP/UDP/ICMP/ARP/VXLAN inside, BGP
segments, ARP, VLAN tags, IPv6, fragments -- lone, and the pieces of fragmented VXLAN datagrams
over IPv4 and IPv6, outer and inner, that hypothesis may or may not pair up --, LLDP, IP options,
truncation, SLL/SLL2 framing); hypothesis picks mixes and truncations; both decoders run on the
same pcap and every table must be equal.
"""
from __future__ import annotations

import functools
import struct
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import (ARP, ICMP, IP, TCP, UDP, Dot1Q, Ether, IPv6, IPv6ExtHdrFragment, fragment,
                       fragment6, raw)
from scapy.contrib import lldp as L
from scapy.layers.vxlan import VXLAN

from diag.decode import DecodeOptions, iter_decode

KEEPALIVE = b"\xff" * 16 + b"\x00\x13\x04"


def _inner(kind: str):
    base = Ether(src="02:00:00:00:01:01", dst="02:00:00:00:01:02")
    if kind == "tcp":
        return base / IP(src="172.20.0.10", dst="172.20.2.10") / TCP(sport=33000, dport=80) / (b"x" * 20)
    if kind == "udp":
        return base / IP(src="172.20.0.10", dst="172.20.2.10") / UDP(sport=5353, dport=53) / b"q"
    if kind == "icmp":
        return base / IP(src="172.20.0.10", dst="172.20.2.10") / ICMP()
    if kind == "arp":
        return Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="172.20.0.1", pdst="172.20.0.10")
    if kind == "vxlan":
        return base / IP(src="10.9.0.1", dst="10.9.0.2") / UDP(sport=1, dport=4789) / VXLAN(vni=7) / _inner("icmp")
    if kind == "bgp":
        return base / IP(src="10.9.0.1", dst="10.9.0.2") / TCP(sport=179, dport=40001, seq=5, flags="PA") / KEEPALIVE
    raise ValueError(kind)


@functools.lru_cache(maxsize=None)
def _frame(kind: str, i: int) -> bytes:
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    outer = IP(src="192.168.10.100", dst=f"192.168.20.{100 + i % 3}")
    if kind.startswith("vxlan-"):
        port = 8472 if i % 2 else 4789
        return raw(eth / outer / UDP(sport=40000 + i, dport=port) / VXLAN(vni=100 + i % 2) / _inner(kind[6:]))
    if kind == "bgp":
        return raw(eth / IP(src="192.168.10.100", dst="192.168.10.200") /
                   TCP(sport=40000, dport=179, seq=1000 + 19 * i, flags="PA") / KEEPALIVE)
    if kind == "arp-req":
        return raw(Ether(src="02:00:00:00:00:03", dst="ff:ff:ff:ff:ff:ff") /
                   ARP(op=1, hwsrc="02:00:00:00:00:03", psrc="192.168.10.200", pdst="192.168.10.212"))
    if kind == "arp-reply":
        return raw(Ether(src="02:00:00:00:00:04") / ARP(op=2, hwsrc="02:00:00:00:00:04",
                                                       psrc="192.168.10.212", pdst="192.168.10.200"))
    if kind == "vlan":
        return raw(Ether() / Dot1Q(vlan=100) / outer / UDP(sport=1, dport=8472) / VXLAN(vni=5) / _inner("tcp"))
    if kind == "ipv6":
        return raw(Ether() / IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=1, dport=8472) / VXLAN(vni=6) / _inner("udp"))
    if kind == "fragment":
        return raw(eth / IP(src="1.1.1.1", dst="2.2.2.2", flags="MF", frag=0) / UDP(sport=1, dport=8472) / (b"z" * 30))
    if kind == "options":
        return raw(eth / IP(src="1.1.1.1", dst="2.2.2.2", options=b"\x01\x01\x01\x00") / TCP(sport=179, dport=5))
    if kind == "icmp":
        return raw(eth / outer / ICMP())
    if kind == "udp":
        return raw(eth / outer / UDP(sport=5000, dport=6000) / b"data")
    if kind == "geneve":
        return raw(eth / outer / UDP(sport=5000, dport=6081) / (b"\x00\x00\x65\x58\x00\x00\x2a\x00" + raw(_inner("tcp"))))
    if kind.startswith(("frag4-", "frag6-", "inner-frag-")):
        return raw(eth / _pieces(kind.rsplit("-", 1)[0], i % 3)[int(kind[-1])])
    if kind == "lldp":
        return raw(Ether(src="02:00:00:00:00:09", dst="01:80:c2:00:00:0e", type=0x88CC)
                   / L.LLDPDU() / L.LLDPDUChassisID(subtype=4, id="02:00:00:00:00:09")
                   / L.LLDPDUPortID(subtype=5, id=b"eth%d" % (i % 4))
                   / L.LLDPDUTimeToLive(ttl=120) / L.LLDPDUEndOfLLDPDU())
    raise ValueError(kind)


@functools.lru_cache(maxsize=None)
def _pieces(kind: str, ident: int) -> list:
    """Two fragments of one datagram (id ``ident``): VXLAN over IPv4 or IPv6, or the pod's packet
    cut before encapsulation (each piece in a VXLAN packet of its own)."""
    pod = _inner("tcp") / (b"y" * 1200)
    if kind == "frag4":
        whole = IP(src="192.168.10.100", dst="192.168.20.100", id=900 + ident) / UDP(
            sport=41000, dport=8472) / VXLAN(vni=9) / pod
        return fragment(whole, 800)[:2]
    if kind == "frag6":
        whole = IPv6(src="fd00::10", dst="fd00::20") / IPv6ExtHdrFragment(id=900 + ident) / UDP(
            sport=41001, dport=4789) / VXLAN(vni=10) / pod
        return fragment6(whole, 900)[:2]
    inner = IP(src="172.20.0.10", dst="172.20.2.10", id=800 + ident) / ICMP() / (b"z" * 1500)
    return [IP(src="192.168.10.100", dst="192.168.20.101") / UDP(sport=41002, dport=8472)
            / VXLAN(vni=11) / Ether() / piece for piece in fragment(inner, 1000)[:2]]


KINDS = ["vxlan-tcp", "vxlan-udp", "vxlan-icmp", "vxlan-arp", "vxlan-vxlan", "vxlan-bgp", "bgp",
         "arp-req", "arp-reply", "vlan", "ipv6", "fragment", "options", "icmp", "udp", "geneve",
         "frag4-0", "frag4-1", "frag6-0", "frag6-1", "inner-frag-0", "inner-frag-1", "lldp"]


def _cook(data: bytes, linktype: int, outgoing: bool) -> bytes:
    """Re-frame an Ethernet frame as Linux SLL (113) or SLL2 (276), as `tcpdump -i any` does."""
    proto, payload, src = data[12:14], data[14:], data[6:12]
    if linktype == 113:
        return struct.pack("!HHH", 4 if outgoing else 0, 1, 6) + src + b"\0\0" + proto + payload
    return proto + b"\0\0" + struct.pack("!IHBB", 3, 1, 4 if outgoing else 0, 6) + src + b"\0\0" + payload


def _write(path: Path, frames: list[bytes], linktype: int) -> None:
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
        for i, data in enumerate(frames):
            fh.write(struct.pack("<IIII", 1_700_000_000 + i, i, len(data), len(data) + 4) + data)


def _tables(path: Path, vectorize: bool, chunk: int) -> dict[str, pd.DataFrame]:
    chunks = list(iter_decode(path, DecodeOptions(), chunk_packets=chunk, vectorize=vectorize))
    out = {}
    for name in ("packets", "tunnels", "arp", "bgp_messages", "bgp_routes", "stream_events",
                 "icmp", "fragments", "lldp"):
        df = pd.concat([getattr(c, name) for c in chunks], ignore_index=True).astype(object)
        out[name] = df.where(df.notna(), None)
    return out


def _assert_same(path: Path, chunk: int) -> None:
    fast, slow = _tables(path, True, chunk), _tables(path, False, chunk)
    for name in fast:
        pd.testing.assert_frame_equal(fast[name], slow[name], check_dtype=False, obj=name)


@settings(max_examples=60)
@given(picks=st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 120)), min_size=1, max_size=40),
       linktype=st.sampled_from([1, 113, 276]), chunk=st.sampled_from([3, 7, 1000]),
       outgoing=st.booleans())
def test_fast_path_equals_reference(tmp_path_factory, picks, linktype, chunk, outgoing):
    frames = []
    for i, (kind, cut) in enumerate(picks):
        data = _frame(kind, i)
        if linktype != 1:
            data = _cook(data, linktype, outgoing)
        if cut and cut < len(data) and cut % 3 == 0:      # some frames truncated at random
            data = data[:cut]
        frames.append(data)
    path = tmp_path_factory.mktemp("fast") / "mix.pcap"
    _write(path, frames, linktype)
    _assert_same(path, chunk)


def test_fast_path_decodes_most_of_a_common_mix(tmp_path):
    """The vectorised path really is used for the common shapes (not everything sent slow)."""
    from diag.decode.batch import split_block
    from diag.decode.capture import open_blocks

    frames = [_frame(k, i) for i, k in enumerate(["vxlan-tcp", "vxlan-icmp", "bgp", "arp-req", "udp"] * 20)]
    path = tmp_path / "common.pcap"
    _write(path, frames, 1)
    _info, blocks = open_blocks(path)
    block = next(blocks)
    fast = split_block(block, frozenset({179}), frozenset({4789, 8472}), frozenset({6081}), {})
    assert len(fast.slow) == 0
    assert len(fast.bgp_index) == 20
    _assert_same(path, 1000)


@pytest.mark.parametrize("fixture", ["bgp_session.pcap", "bgp_failures.pcap", "vxlan_port_mismatch.pcap"])
def test_fast_path_on_real_captures(fixture):
    _assert_same(Path(__file__).parent.parent / "fixtures" / "pcap" / fixture, 50)


@pytest.mark.parametrize("linktype", [1, 113, 276])
@pytest.mark.parametrize("chunk", [1, 2, 1000])
def test_fast_path_reassembles_as_the_reference(tmp_path, linktype, chunk):
    """Every fragment shape paired up (so reassembly really happens), split across chunks,
    between frames the vectorised pass takes: the reference's rows, and datagrams reassembled."""
    kinds = ["frag4-0", "vxlan-tcp", "frag6-0", "inner-frag-0", "bgp", "frag4-1", "lldp",
             "inner-frag-1", "arp-req", "frag6-1"]
    frames = [_frame(k, 3 * i) for i, k in enumerate(kinds)]      # i % 3 == 0: one datagram each
    if linktype != 1:
        frames = [_cook(f, linktype, False) for f in frames]
    path = tmp_path / "frags.pcap"
    _write(path, frames, linktype)
    _assert_same(path, chunk)
    fast = _tables(path, True, chunk)
    assert fast["fragments"]["status"].tolist() == ["reassembled"] * 3
    assert fast["lldp"]["port_id"].tolist() == ["eth2"]
