"""A parallel worker skips the frames of another worker's block that cannot matter to it.

In ``diag pcap --workers N`` every worker walks every block, and in a block another worker
folds, the walk acts on three kinds of frame only: those holding a BGP segment, ARP, and those
the reference decodes (fragments, ICMP errors, LLDP, damaged headers). The core's
``dc_skippable`` (diag/decode/_core/frames.c) lets the worker pass over the rest without
walking them. It must never skip a frame of those three kinds: ``Decoder.probe`` gives its
answer beside what the walk (``decode_frame``) acts on, for frames of every shape the decoder
tests use, in six link framings, truncated anywhere and with bytes changed anywhere. The
common shapes must be skipped (else the worker gains nothing, and the test could pass with a
skip that never answers yes). That the workers' summaries equal one process's is
tests/decode/test_parallel.py's and test_core_equivalence.py's.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import ICMP, IP, TCP, UDP, Ether, IPv6, raw
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoRequest
from scapy.layers.vxlan import VXLAN

from diag.decode import DecodeOptions, core
from tests.decode.test_fast_path import KINDS, _cook, _frame

pytestmark = pytest.mark.skipif(core.load() is None, reason="the compiled core is not built")

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def _extra(kind: str) -> bytes:
    """Shapes beside test_fast_path's: plain TCP, IPv6 transports, ICMP errors, GENEVE ports
    as a source, a BGP segment in IPv6 and in VXLAN over IPv6."""
    v4 = IP(src="10.0.0.1", dst="10.0.0.2")
    v6 = IPv6(src="fd00::1", dst="fd00::2")
    shapes = {
        "tcp": ETH / v4 / TCP(sport=40000, dport=443) / (b"x" * 30),
        "tcp-179-src": ETH / v4 / TCP(sport=179, dport=443),
        "tcp6": ETH / v6 / TCP(sport=40000, dport=443),
        "bgp6": ETH / v6 / TCP(sport=40000, dport=179, flags="PA")
                / (b"\xff" * 16 + b"\x00\x13\x04"),
        "udp6": ETH / v6 / UDP(sport=5000, dport=6000) / b"q",
        "icmp6-echo": ETH / v6 / ICMPv6EchoRequest(),
        "icmp6-error": ETH / v6 / ICMPv6DestUnreach() / IPv6() / UDP(),
        "icmp-error": ETH / v4 / ICMP(type=3, code=1) / IP() / UDP(),
        "icmp-time-exceeded": ETH / v4 / ICMP(type=11) / IP() / TCP(),
        "geneve-sport": ETH / v4 / UDP(sport=6081, dport=7000) / (b"\x00" * 8),
        "vxlan-sport": ETH / v4 / UDP(sport=8472, dport=7000) / VXLAN(vni=3) / ETH / v4 / TCP(),
        "vxlan6-bgp": ETH / v6 / UDP(sport=1, dport=8472) / VXLAN(vni=9) / ETH / v4
                      / TCP(sport=179, dport=5, flags="PA") / (b"\xff" * 16 + b"\x00\x13\x04"),
        "vxlan-icmp-error": ETH / v4 / UDP(sport=1, dport=8472) / VXLAN(vni=9) / ETH / v4
                            / ICMP(type=3) / IP() / UDP(),
        "other-etype": Ether(type=0x9000) / (b"\x00" * 40),
    }
    return raw(shapes[kind])


EXTRA = ["tcp", "tcp-179-src", "tcp6", "bgp6", "udp6", "icmp6-echo", "icmp6-error", "icmp-error",
         "icmp-time-exceeded", "geneve-sport", "vxlan-sport", "vxlan6-bgp", "vxlan-icmp-error",
         "other-etype"]


LINKTYPES = [1, 113, 276, 101, 0, 104]     # Ethernet, SLL, SLL2, raw IP, BSD loopback, HDLC


def _shaped(kind: str, i: int) -> bytes:
    return _extra(kind) if kind in EXTRA else _frame(kind, i)


def _framed(ether: bytes, linktype: int) -> bytes:
    if linktype == 1:
        return ether
    if linktype in (113, 276):
        return _cook(ether, linktype, outgoing=False)
    if linktype == 104:                                 # Cisco HDLC: address, control, type
        return b"\x0f\x00" + ether[12:]
    if linktype == 0:                                   # BSD loopback: the family, host order
        family = 24 if ether[12:14] == b"\x86\xdd" else 2
        return family.to_bytes(4, "little") + ether[14:]
    return ether[14:]                                   # raw IP (101)


def _decoder():
    dec, _reference, _slow = core._decoder(core.load(), DecodeOptions(), False, True, {})
    return dec


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(KINDS + EXTRA), i=st.integers(0, 5),
       linktype=st.sampled_from(LINKTYPES),
       cut=st.one_of(st.none(), st.integers(0, 200)),
       flips=st.lists(st.tuples(st.integers(0, 199), st.integers(0, 255)), max_size=3))
def test_no_frame_that_matters_is_skipped(kind, i, linktype, cut, flips):
    data = bytearray(_framed(_shaped(kind, i), linktype))
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    if cut is not None:
        del data[cut:]
    skip, effect = _decoder().probe(bytes(data), linktype)
    assert not (skip and effect is not None), (kind, linktype, effect, bytes(data).hex())


@pytest.mark.parametrize("linktype", LINKTYPES)
def test_the_common_shapes_are_skipped_and_the_others_walked(linktype):
    dec = _decoder()
    walked = {"bgp", "vxlan-bgp", "arp-req", "arp-reply", "vxlan-arp", "fragment", "frag4-0",
              "frag4-1", "frag6-0", "frag6-1", "inner-frag-0", "inner-frag-1", "lldp", "options",
              "bgp6", "tcp-179-src", "icmp-error", "icmp6-error", "icmp-time-exceeded",
              "vxlan6-bgp", "vxlan-icmp-error"}
    skipped = {"vxlan-tcp", "vxlan-udp", "vxlan-icmp", "icmp", "udp", "tcp", "tcp6", "udp6",
               "icmp6-echo", "ipv6", "vlan"}
    for kind in KINDS + EXTRA:
        ether = _shaped(kind, 1)
        if linktype in (101, 0) and kind in ("arp-req", "arp-reply", "lldp", "vlan", "other-etype"):
            continue                                     # not IP: no raw-IP framing
        skip, effect = dec.probe(_framed(ether, linktype), linktype)
        if kind in walked:
            assert effect is not None and not skip, (kind, effect)
        if kind in skipped:
            assert skip and effect is None, (kind, effect)
        # the rest (GENEVE, VXLAN in VXLAN, ...) may go either way, never skipped when it matters
        assert not (skip and effect is not None), kind


def test_a_truncated_inner_header_is_walked():
    """VXLAN whose outer IPv4 length ends inside the inner UDP header: the walk hands it to the
    reference (the inner header is truncated by the outer datagram, not by the capture)."""
    inner = ETH / IP(src="10.1.0.1", dst="10.1.0.2") / UDP(sport=1, dport=2) / b"payload"
    frame = bytearray(raw(ETH / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=8472)
                          / VXLAN(vni=4) / inner))
    outer_len = 20 + 8 + 8 + 14 + 20 + 4                # ends 4 bytes into the inner UDP header
    frame[16:18] = outer_len.to_bytes(2, "big")
    frame[24:26] = b"\x00\x00"                           # checksum not checked by the walk
    skip, effect = _decoder().probe(bytes(frame), 1)
    assert effect == "reference" and not skip
