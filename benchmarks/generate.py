"""Benchmark capture generator: a seeded, realistic node mix written with struct, plus its truth.

Usage::

    python benchmarks/generate.py --packets 1000000 --out /tmp/mix.pcap [--seed 7] [--mix bgp-heavy]

writes ``/tmp/mix.pcap`` (classic pcap, Ethernet, microsecond timestamps) and
``/tmp/mix.truth.json`` (:func:`truth_path`) with what the capture contains.

The mix (shares of packets, drawn per packet from a seeded RNG):

* ~60 % VXLAN on UDP 8472 (the Linux/flannel port) between several VTEP pairs, several VNIs,
  carrying inner Ethernet/IPv4 with TCP (ACKs, small and full-size segments) or ICMP echo;
* ~20 % BGP on TCP 179: sessions (IPv4 and one IPv6) that start with SYN / SYN-ACK / ACK, then
  OPENs with the 4-octet AS capability, KEEPALIVEs, UPDATEs announcing and withdrawing 1-50
  prefixes with 4-octet AS_PATHs, now and then a NOTIFICATION and FIN, then a new connection.
  Sequence numbers are exact; about a fifth of the messages are split across 2-3 segments and some
  segments carry several messages; segments of different sessions interleave. ``--mix bgp-heavy``
  (issue 21) cuts the same 20 % of packets into more messages: ~260,000 per million packets
  (~160,000 UPDATEs, a fifth of them split across segments, up to 8 messages in a segment);
* ~10 % ARP: requests answered by one responder, requests never answered, and a few IPs answered by
  two MACs (multiple responders);
* ~10 % other: plain TCP, UDP (DNS-like) and ICMP over IPv4, and some TCP over IPv6.

Scapy builds the header templates once (known-good layouts); each packet is a template copy
patched with struct, so the generator runs at tens of thousands of packets per second and streams
to the file in constant memory. The truth is counted as packets are written: a BGP message counts
when the segment holding its last byte is written, an ARP request is unanswered when no reply for
its target IP is ever written. Every sequence of packets that belongs together (a split message,
an ARP request and its replies) is completed before the capture ends, so nothing is left torn.
"""
from __future__ import annotations

import argparse
import json
import random
import struct
import sys
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

TRUTH_SCHEMA = "diag.benchmark-truth/1"
VXLAN_PORT = 8472
BGP_PORT = 179
SHARES = (("vxlan", 0.60), ("bgp", 0.20), ("arp", 0.10), ("other", 0.10))
BGP_SESSIONS = 6
VNIS = (1, 42, 100, 4096, 10001, 65000)
VTEPS = tuple(f"10.0.0.{i}" for i in range(1, 7))
START_US = 1_700_000_000 * 1_000_000

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
RECORD = struct.Struct("<IIII")
U16 = struct.Struct("!H")
U32 = struct.Struct("!I")
IP_WORDS = struct.Struct("!10H")

TCP_FIN, TCP_SYN, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x08, 0x10
BGP_OPEN, BGP_UPDATE, BGP_NOTIFICATION, BGP_KEEPALIVE = 1, 2, 3, 4
BGP_TYPE_NAMES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE"}


@dataclass(frozen=True)
class Mix:
    """How BGP traffic is cut into steps and segments (the packet shares are the same for all)."""

    name: str
    keepalive_step: float        # a step is a KEEPALIVE below this draw ...
    ack_step: float              # ... a bare ACK below this one, else a run of UPDATEs
    updates: tuple[int, ...]     # UPDATEs per run (drawn)
    trailing_keepalive: float    # a run ends with a KEEPALIVE this often
    split: float                 # a message is split over 2-3 segments this often
    bundle: float                # ... else several messages share a segment this often
    bundle_sizes: tuple[int, ...]
    receiver_ack: float          # the receiver acknowledges a batch this often
    split_keepalives: bool = True    # a 19-byte KEEPALIVE may be split too

    @property
    def max_batch(self) -> int:
        """Packets one batch may need: a run of UPDATEs and a KEEPALIVE, each split in 3, and
        an ACK (ARP exchanges and the handshake need fewer)."""
        return (max(self.updates) + 1) * 3 + 1


# "light": the mix of docs/performance.md up to issue 15 (140,000 BGP messages per million
# packets); "bgp-heavy": issue 21's, ~260,000 messages per million packets (~160,000 UPDATEs,
# ~100,000 KEEPALIVEs), a fifth of the UPDATEs split across segments, up to 8 messages bundled
# in a segment, few bare ACKs; a KEEPALIVE (19 bytes) is never split there
MIXES = {
    "light": Mix("light", 0.25, 0.30, (1, 1, 2, 3, 4), 0.1, 0.22, 0.45, (2, 2, 3), 0.5),
    "bgp-heavy": Mix("bgp-heavy", 0.55, 0.56, (1, 2, 3, 4, 5, 6), 0.9, 0.40, 0.95,
                     (3, 4, 5, 6, 7, 8), 0.03, split_keepalives=False),
}


def truth_path(capture: Path) -> Path:
    """Where the ground truth of ``capture`` lives: ``x.pcap`` -> ``x.truth.json``."""
    return capture.with_suffix(".truth.json")


# --- templates (scapy, once) -------------------------------------------------------------------
class Templates:
    """Header bytes built by scapy once; per packet only addresses, lengths, numbers change."""

    def __init__(self) -> None:
        from scapy.layers.inet import ICMP, IP, TCP, UDP
        from scapy.layers.inet6 import IPv6
        from scapy.layers.l2 import ARP, Ether
        from scapy.layers.vxlan import VXLAN

        mac_a, mac_b = "02:00:00:00:00:01", "02:00:00:00:00:02"
        self.eth_ipv4 = bytes(Ether(src=mac_a, dst=mac_b, type=0x0800))
        self.eth_ipv6 = bytes(Ether(src=mac_a, dst=mac_b, type=0x86DD))
        self.ipv4 = bytes(IP(src="1.1.1.1", dst="2.2.2.2", ttl=64, flags="DF", proto=6))[:20]
        self.ipv6 = bytes(IPv6(src="::1", dst="::2", nh=6, hlim=64))[:40]
        self.tcp = bytes(TCP(sport=1, dport=2, flags="A", window=502))[:20]
        self.udp = bytes(UDP(sport=1, dport=2))[:8]
        self.icmp = bytes(ICMP(type=8, id=1, seq=1))[:8]
        self.vxlan = bytes(VXLAN(flags=0x08, vni=1))[:8]
        self.arp = bytes(Ether(src=mac_a, dst="ff:ff:ff:ff:ff:ff") /
                         ARP(op=1, hwsrc=mac_a, psrc="1.1.1.1", pdst="2.2.2.2"))[:42]
        assert len(self.eth_ipv4) == 14 and len(self.ipv4) == 20 and len(self.tcp) == 20
        assert len(self.ipv6) == 40 and len(self.udp) == 8 and len(self.vxlan) == 8


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class Builder:
    """Frames from templates: Ethernet + IPv4/IPv6 + TCP/UDP/ICMP, VXLAN, ARP."""

    def __init__(self, t: Templates) -> None:
        self.t = t
        self.ip_id = 0

    @staticmethod
    def mac(n: int) -> bytes:
        return b"\x02" + n.to_bytes(5, "big")

    def eth(self, src: bytes, dst: bytes, ipv6: bool = False) -> bytes:
        return dst + src + (self.t.eth_ipv6 if ipv6 else self.t.eth_ipv4)[12:14]

    def ipv4(self, src: bytes, dst: bytes, proto: int, payload: bytes) -> bytes:
        head = bytearray(self.t.ipv4)
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        U16.pack_into(head, 2, 20 + len(payload))
        U16.pack_into(head, 4, self.ip_id)
        head[9] = proto
        head[10:12] = b"\0\0"
        head[12:16], head[16:20] = src, dst
        total = sum(IP_WORDS.unpack(head))
        total = (total & 0xFFFF) + (total >> 16)
        U16.pack_into(head, 10, ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF)
        return bytes(head) + payload

    def ipv6(self, src: bytes, dst: bytes, nh: int, payload: bytes) -> bytes:
        head = bytearray(self.t.ipv6)
        U16.pack_into(head, 4, len(payload))
        head[6] = nh
        head[8:24], head[24:40] = src, dst
        return bytes(head) + payload

    def tcp(self, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes) -> bytes:
        head = bytearray(self.t.tcp)
        struct.pack_into("!HHII", head, 0, sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF)
        head[13] = flags
        return bytes(head) + payload

    def udp(self, sport: int, dport: int, payload: bytes) -> bytes:
        return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload

    def icmp_echo(self, reply: bool, ident: int, seq: int, payload: bytes) -> bytes:
        body = struct.pack("!BBHHH", 0 if reply else 8, 0, 0, ident, seq) + payload
        return body[:2] + U16.pack(_checksum(body)) + body[4:]

    def vxlan(self, vni: int, inner: bytes) -> bytes:
        head = bytearray(self.t.vxlan)
        head[4:7] = vni.to_bytes(3, "big")
        return bytes(head) + inner

    def arp(self, op: int, eth_dst: bytes, sha: bytes, spa: bytes, tha: bytes,
            tpa: bytes) -> bytes:
        frame = bytearray(self.t.arp)
        frame[0:6], frame[6:12] = eth_dst, sha
        U16.pack_into(frame, 20, op)
        frame[22:28], frame[28:32], frame[32:38], frame[38:42] = sha, spa, tha, tpa
        return bytes(frame)


def _ip4(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


def _ip6(text: str) -> bytes:
    import socket
    return socket.inet_pton(socket.AF_INET6, text)


# --- BGP messages ------------------------------------------------------------------------------
def bgp_message(mtype: int, body: bytes = b"") -> bytes:
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), mtype) + body


def bgp_open(asn: int, hold: int, bgp_id: bytes, ipv6: bool) -> bytes:
    afi = 2 if ipv6 else 1
    caps = (b"\x01\x04" + struct.pack("!HBB", afi, 0, 1)      # multiprotocol
            + b"\x02\x00"                                      # route refresh
            + b"\x41\x04" + U32.pack(asn))                     # 4-octet AS (RFC 6793)
    params = b"\x02" + bytes([len(caps)]) + caps
    my_as = asn if asn < 65536 else 23456                      # AS_TRANS
    return bgp_message(BGP_OPEN, struct.pack("!BHH4sB", 4, my_as, hold, bgp_id, len(params))
                       + params)


def _prefix_bytes(net: int, plen: int, width: int) -> bytes:
    nbytes = (plen + 7) // 8
    return bytes([plen]) + net.to_bytes(width, "big")[:nbytes]


def bgp_update(withdrawn: list[tuple[int, int]], announced: list[tuple[int, int]],
               as_path: list[int], next_hop: bytes, med: int | None, communities: list[int],
               ipv6: bool) -> bytes:
    width = 16 if ipv6 else 4
    wd = b"".join(_prefix_bytes(n, l, width) for n, l in withdrawn)
    nlri = b"".join(_prefix_bytes(n, l, width) for n, l in announced)
    attrs = b""
    if announced:
        seg = bytes([2, len(as_path)]) + b"".join(U32.pack(a) for a in as_path)
        attrs += b"\x40\x01\x01\x00"                                   # ORIGIN IGP
        attrs += b"\x40\x02" + bytes([len(seg)]) + seg                 # AS_PATH (4-octet)
        if not ipv6:
            attrs += b"\x40\x03\x04" + next_hop                        # NEXT_HOP
        if med is not None:
            attrs += b"\x80\x04\x04" + U32.pack(med)                   # MED
        if communities:
            attrs += b"\xc0\x08" + bytes([4 * len(communities)]) + b"".join(
                U32.pack(c) for c in communities)
        if ipv6:                                                       # MP_REACH_NLRI
            mp = struct.pack("!HBB", 2, 1, 16) + next_hop + b"\x00" + nlri
            attrs += b"\x90\x0e" + U16.pack(len(mp)) + mp
            nlri = b""
    if ipv6 and wd:                                                    # MP_UNREACH_NLRI
        mp = struct.pack("!HB", 2, 1) + wd
        attrs += b"\x90\x0f" + U16.pack(len(mp)) + mp
        wd = b""
    body = U16.pack(len(wd)) + wd + U16.pack(len(attrs)) + attrs + nlri
    return bgp_message(BGP_UPDATE, body)


def bgp_notification(code: int, subcode: int) -> bytes:
    return bgp_message(BGP_NOTIFICATION, bytes([code, subcode]))


# --- packet sources ----------------------------------------------------------------------------
# A source yields batches: lists of (frame bytes, meta) that must be written in order. Meta is what
# the truth counts: ("bgp", [(type, n_announced, n_withdrawn, announced, withdrawn), ...], split)
# for BGP segments, ("arp", op, target_ip, sender_mac, unanswered) for ARP, ("vxlan", vni) ...
Batch = list[tuple[bytes, tuple]]


class BgpSession:
    """One BGP peering, over successive TCP connections; yields one batch of segments at a time."""

    def __init__(self, index: int, rng: random.Random, b: Builder, mix: Mix) -> None:
        self.rng, self.b, self.index, self.mix = rng, b, index, mix
        self.ipv6 = index == BGP_SESSIONS - 1
        if self.ipv6:
            self.client_ip, self.server_ip = _ip6("fd00:10::2"), _ip6(f"fd00:10::{index + 10:x}")
        else:
            self.client_ip, self.server_ip = _ip4(f"10.1.{index}.2"), _ip4(f"10.1.{index}.1")
        self.client_mac, self.server_mac = b.mac(0x1000 + index), b.mac(0x2000 + index)
        # client: a node's speaker (4-octet private AS); server: the fabric router
        self.client_as, self.server_as = 4_200_000_000 + index, (64512 + index, 65001)[index % 2]
        self.ibgp = False
        self.rib: dict[bool, list[tuple[int, int]]] = {True: [], False: []}
        self.rib_set: dict[bool, set[tuple[int, int]]] = {True: set(), False: set()}
        self.port = 40000 + index * 1000
        self.batches = self._run()

    def next_batch(self) -> Batch:
        return next(self.batches)

    # TCP framing of one direction
    def _frame(self, from_client: bool, flags: int, payload: bytes, meta: tuple) -> tuple:
        b = self.b
        if from_client:
            src, dst, smac, dmac = self.client_ip, self.server_ip, self.client_mac, self.server_mac
            sport, dport = self.cport, BGP_PORT
        else:
            src, dst, smac, dmac = self.server_ip, self.client_ip, self.server_mac, self.client_mac
            sport, dport = BGP_PORT, self.cport
        seq, ack = self.nxt[from_client], self.nxt[not from_client]
        self.nxt[from_client] = seq + len(payload) + (1 if flags & (TCP_SYN | TCP_FIN) else 0)
        seg = b.tcp(sport, dport, seq, ack if flags & TCP_ACK else 0, flags, payload)
        ip = b.ipv6(src, dst, 6, seg) if self.ipv6 else b.ipv4(src, dst, 6, seg)
        return (b.eth(smac, dmac, self.ipv6) + ip, meta)

    def _segments(self, from_client: bool, messages: list[tuple[bytes, tuple]]) -> Batch:
        """Cut one side's messages into segments: ~1/5 split over 2-3, some bundled."""
        rng, out, i, mix = self.rng, [], 0, self.mix
        while i < len(messages):
            r = rng.random()
            if r < mix.split and (mix.split_keepalives or len(messages[i][0]) > 19):
                raw, info = messages[i]
                pieces = rng.choice((2, 2, 3))
                cuts = sorted(rng.sample(range(1, len(raw)), pieces - 1))
                bounds = [0, *cuts, len(raw)]
                for k in range(pieces):
                    last = k == pieces - 1
                    out.append(self._frame(from_client, TCP_PSH | TCP_ACK,
                                           raw[bounds[k]:bounds[k + 1]],
                                           ("bgp", [info] if last else [], 1 if last else 0)))
                i += 1
            elif r < mix.bundle and i + 1 < len(messages):
                k = min(len(messages) - i, rng.choice(mix.bundle_sizes))
                group = messages[i:i + k]
                out.append(self._frame(from_client, TCP_PSH | TCP_ACK,
                                       b"".join(m for m, _ in group),
                                       ("bgp", [info for _, info in group], 0)))
                i += k
            else:
                raw, info = messages[i]
                out.append(self._frame(from_client, TCP_PSH | TCP_ACK, raw, ("bgp", [info], 0)))
                i += 1
        if rng.random() < mix.receiver_ack:   # the receiver acknowledges
            out.append(self._frame(not from_client, TCP_ACK, b"", ("bgp", [], 0)))
        return out

    def _random_prefix(self, from_client: bool) -> tuple[int, int]:
        rng = self.rng
        if self.ipv6:
            plen = rng.choice((48, 56, 64, 64, 128))
            net = (0xFD00 << 112) | (self.index << 96) | (rng.getrandbits(12) << 64)
            net &= ((1 << 128) - 1) ^ ((1 << (128 - plen)) - 1)
            return net, plen
        plen = rng.choice((16, 20, 22, 24, 24, 24, 26, 28, 32))
        # the node's pod/service space (172.16+i/16) or the fabric's (100.64+i/16)
        top = (172 << 24 | (16 + self.index) << 16 if from_client
               else 100 << 24 | (64 + self.index) << 16)
        net = top | rng.getrandbits(12) << 4
        if plen < 16:
            net = top
        net &= 0xFFFFFFFF ^ ((1 << (32 - plen)) - 1)
        return net, plen

    def _update(self, from_client: bool) -> tuple[bytes, tuple]:
        rng = self.rng
        rib, have = self.rib[from_client], self.rib_set[from_client]
        withdrawn: list[tuple[int, int]] = []
        announced: list[tuple[int, int]] = []
        mode = rng.random()
        if mode < 0.2 and rib:
            for _ in range(min(len(rib), rng.choice((1, 1, 2, 3, 5, 10, 20, 50)))):
                p = rib.pop(rng.randrange(len(rib)))
                have.discard(p)
                withdrawn.append(p)
        if mode >= 0.15 or not withdrawn:
            want = rng.choice((1, 1, 2, 3, 5, 8, 10, 20, 30, 50)) if rng.random() < 0.8 \
                else rng.randint(1, 50)
            seen = set(withdrawn)
            while len(announced) < want:
                p = self._random_prefix(from_client)
                if p in seen:
                    continue
                seen.add(p)
                announced.append(p)
                if p not in have:
                    have.add(p)
                    rib.append(p)
        own = self.client_as if from_client else self.server_as
        path = [own] + [rng.choice((174, 3356, 6939, 4_200_000_100 + self.index))
                        for _ in range(rng.randint(0, 3))]
        nh = (self.client_ip if from_client else self.server_ip)
        med = rng.choice((None, None, 0, 100))
        comms = [own % 65536 << 16 | rng.randint(1, 999) for _ in range(rng.choice((0, 0, 1, 2)))]
        raw = bgp_update(withdrawn, announced, path, nh, med, comms, self.ipv6)
        family = 6 if self.ipv6 else 4
        return raw, (BGP_UPDATE, [(family, n, l) for n, l in announced],
                     [(family, n, l) for n, l in withdrawn])

    def _run(self) -> Iterator[Batch]:
        rng = self.rng
        while True:
            # a new TCP connection: new client port, new initial sequence numbers
            self.port += 1
            self.cport = self.port
            self.nxt = {True: rng.getrandbits(32), False: rng.getrandbits(32)}
            self.rib = {True: [], False: []}
            self.rib_set = {True: set(), False: set()}
            yield [self._frame(True, TCP_SYN, b"", ("bgp", [], 0))]
            yield [self._frame(False, TCP_SYN | TCP_ACK, b"", ("bgp", [], 0))]
            yield [self._frame(True, TCP_ACK, b"", ("bgp", [], 0))]
            for side in (True, False):
                asn = self.client_as if side else self.server_as
                bgp_id = (self.client_ip if side else self.server_ip)[-4:]
                msgs = [(bgp_open(asn, 90, bgp_id, self.ipv6), (BGP_OPEN, (), ())),
                        (bgp_message(BGP_KEEPALIVE), (BGP_KEEPALIVE, (), ()))]
                yield self._segments(side, msgs)
            while True:
                r = rng.random()
                side = rng.random() < 0.5
                if r < 0.001:            # a session reset now and then (NOTIFICATION, FIN)
                    code, sub = rng.choice(((6, 2), (6, 4), (4, 0), (6, 3)))
                    yield self._segments(side, [(bgp_notification(code, sub),
                                                 (BGP_NOTIFICATION, (), ()))])
                    yield [self._frame(side, TCP_FIN | TCP_ACK, b"", ("bgp", [], 0))]
                    yield [self._frame(not side, TCP_FIN | TCP_ACK, b"", ("bgp", [], 0))]
                    yield [self._frame(side, TCP_ACK, b"", ("bgp", [], 0))]
                    break
                if r < self.mix.keepalive_step:
                    yield self._segments(side, [(bgp_message(BGP_KEEPALIVE),
                                                 (BGP_KEEPALIVE, (), ()))])
                elif r < self.mix.ack_step:
                    yield [self._frame(side, TCP_ACK, b"", ("bgp", [], 0))]
                else:
                    n = rng.choice(self.mix.updates)
                    msgs = [self._update(side) for _ in range(n)]
                    if rng.random() < self.mix.trailing_keepalive:
                        msgs.append((bgp_message(BGP_KEEPALIVE), (BGP_KEEPALIVE, (), ())))
                    yield self._segments(side, msgs)


class ArpSource:
    """ARP exchanges on one L2 segment: answered, unanswered, and IPs with two responders."""

    def __init__(self, rng: random.Random, b: Builder) -> None:
        self.rng, self.b = rng, b
        self.requesters = [(b.mac(0x3000 + i), _ip4(f"192.168.1.{100 + i}")) for i in range(60)]
        self.answered = [(b.mac(0x4000 + i), _ip4(f"192.168.1.{1 + i}")) for i in range(50)]
        self.unanswered = [_ip4(f"192.168.2.{1 + i}") for i in range(30)]
        self.doubled = [(b.mac(0x5000 + i), b.mac(0x6000 + i), _ip4(f"192.168.1.{240 + i}"))
                        for i in range(3)]

    def next_batch(self) -> Batch:
        rng, b = self.rng, self.b
        rmac, rip = rng.choice(self.requesters)
        bcast, zero = b"\xff" * 6, b"\0" * 6
        r = rng.random()
        if r < 0.2:
            tip = rng.choice(self.unanswered)
            return [(b.arp(1, bcast, rmac, rip, zero, tip), ("arp", 1, tip, rmac, True))]
        if r < 0.25:
            mac1, mac2, tip = rng.choice(self.doubled)
            responders = [mac1, mac2]
        else:
            mac, tip = rng.choice(self.answered)
            responders = [mac]
        out = [(b.arp(1, bcast, rmac, rip, zero, tip), ("arp", 1, tip, rmac, False))]
        for mac in responders:
            out.append((b.arp(2, rmac, mac, tip, rmac, rip), ("arp", 2, tip, mac, False)))
        return out


class VxlanSource:
    """Pod-to-pod traffic across nodes: flows fixed per (VTEP pair, VNI), TCP or ICMP inside."""

    def __init__(self, rng: random.Random, b: Builder, payload: bytes) -> None:
        self.rng, self.b, self.payload = rng, b, payload
        self.flows = []
        for i in range(240):
            a, c = rng.sample(range(len(VTEPS)), 2)
            vni = VNIS[i % len(VNIS)]
            inner_src = _ip4(f"10.244.{a}.{rng.randint(2, 250)}")
            inner_dst = _ip4(f"10.244.{c}.{rng.randint(2, 250)}")
            proto = 1 if i % 8 == 0 else 6
            self.flows.append({
                "vni": vni, "outer": (_ip4(VTEPS[a]), _ip4(VTEPS[c])),
                "outer_mac": (b.mac(0x7000 + a), b.mac(0x7000 + c)),
                "inner_mac": (b.mac(0x8000 + i * 2), b.mac(0x8001 + i * 2)),
                "inner": (inner_src, inner_dst), "proto": proto,
                "ports": (rng.randint(32768, 60999), rng.choice((80, 443, 5432, 6379, 8080, 9090))),
                "sport": rng.randint(32768, 60999), "seq": rng.getrandbits(32), "n": 0,
            })

    def next_batch(self) -> Batch:
        rng, b, f = self.rng, self.b, self.rng.choice(self.flows)
        f["n"] += 1
        if f["proto"] == 6:
            r = rng.random()
            size = 0 if r < 0.4 else (rng.randint(1, 200) if r < 0.7 else 1398)
            off = rng.randrange(len(self.payload) - size) if size else 0
            data = self.payload[off:off + size]
            flags = TCP_ACK | (TCP_PSH if size else 0)
            l4 = b.tcp(*f["ports"], f["seq"], f["seq"] ^ 0x5A5A5A5A, flags, data)
            f["seq"] += size
        else:
            l4 = b.icmp_echo(bool(f["n"] % 2 == 0), 0x100, f["n"] // 2, self.payload[:56])
        inner = b.eth(*f["inner_mac"]) + b.ipv4(*f["inner"], f["proto"], l4)
        outer_l4 = b.udp(f["sport"], VXLAN_PORT, b.vxlan(f["vni"], inner))
        frame = b.eth(*f["outer_mac"]) + b.ipv4(*f["outer"], 17, outer_l4)
        return [(frame, ("vxlan", f["vni"]))]


class OtherSource:
    """Everything else a node sees: TCP, DNS-like UDP, ICMP over IPv4; TCP over IPv6."""

    def __init__(self, rng: random.Random, b: Builder, payload: bytes) -> None:
        self.rng, self.b, self.payload = rng, b, payload
        self.hosts = [_ip4(f"10.96.{i // 250}.{i % 250 + 1}") for i in range(40)]
        self.hosts6 = [_ip6(f"2001:db8::{i + 1:x}") for i in range(10)]

    def next_batch(self) -> Batch:
        rng, b = self.rng, self.b
        smac, dmac = b.mac(0x9001), b.mac(0x9002)
        r = rng.random()
        size = rng.choice((0, 0, 40, 120, 600, 1400))
        data = self.payload[:size]
        if r < 0.1:
            l4 = b.tcp(rng.randint(32768, 60999), 443, rng.getrandbits(32), rng.getrandbits(32),
                       TCP_ACK | (TCP_PSH if size else 0), data)
            return [(b.eth(smac, dmac, True) + b.ipv6(*rng.sample(self.hosts6, 2), 6, l4),
                     ("other",))]
        src, dst = rng.sample(self.hosts, 2)
        if r < 0.55:
            l4 = b.tcp(rng.randint(32768, 60999), rng.choice((22, 80, 443, 2379, 6443, 10250)),
                       rng.getrandbits(32), rng.getrandbits(32), TCP_ACK | (TCP_PSH if size else 0),
                       data)
            proto = 6
        elif r < 0.85:
            l4 = b.udp(rng.randint(32768, 60999), rng.choice((53, 123, 8125)),
                       self.payload[:rng.randint(20, 300)])
            proto = 17
        else:
            l4 = b.icmp_echo(rng.random() < 0.5, 7, rng.randint(0, 65535), self.payload[:56])
            proto = 1
        return [(b.eth(smac, dmac) + b.ipv4(src, dst, proto, l4), ("other",))]


# --- ground truth ------------------------------------------------------------------------------
class Truth:
    def __init__(self, packets: int, seed: int, mix: str = "light") -> None:
        self.packets, self.seed, self.mix = packets, seed, mix
        self.categories: Counter = Counter()
        self.bgp_types: Counter = Counter()
        self.announce_rows = self.withdraw_rows = 0
        # prefixes as (family, network int, length): the pools are bounded (a few thousand per
        # speaker, as a node re-announces its pod and service routes), so the sets stay small
        self.announced: set[tuple[int, int, int]] = set()
        self.withdrawn: set[tuple[int, int, int]] = set()
        self.split = self.multi_segments = self.bgp_segments = self.bgp_data_segments = 0
        self.split_by_type: Counter = Counter()
        self.vnis: Counter = Counter()
        self.arp: Counter = Counter()
        self.arp_responders: dict[bytes, set[bytes]] = {}

    def count(self, meta: tuple) -> None:
        kind = meta[0]
        self.categories[kind] += 1
        if kind == "vxlan":
            self.vnis[meta[1]] += 1
        elif kind == "bgp":
            infos, split = meta[1], meta[2]
            self.bgp_segments += 1
            self.split += split
            if split:
                self.split_by_type[BGP_TYPE_NAMES[infos[-1][0]]] += 1
            if len(infos) > 1:
                self.multi_segments += 1
            for mtype, announced, withdrawn in infos:
                self.bgp_types[BGP_TYPE_NAMES[mtype]] += 1
                self.announce_rows += len(announced)
                self.withdraw_rows += len(withdrawn)
                self.announced.update(announced)
                self.withdrawn.update(withdrawn)
        elif kind == "arp":
            _, op, tip, mac, unanswered = meta
            if op == 1:
                self.arp["requests"] += 1
                self.arp["unanswered" if unanswered else "answered"] += 1
            else:
                self.arp["replies"] += 1
                self.arp_responders.setdefault(tip, set()).add(mac)

    def result(self) -> dict:
        messages = sum(self.bgp_types.values())
        return {
            "schema": TRUTH_SCHEMA,
            "seed": self.seed,
            "mix": self.mix,
            "packets": self.packets,
            "by_category": dict(sorted(self.categories.items())),
            "malformed": 0,
            "bgp": {
                "messages": {name: self.bgp_types.get(name, 0) for name in
                             ("OPEN", "UPDATE", "NOTIFICATION", "KEEPALIVE")},
                "messages_total": messages,
                "prefix_rows": {"announce": self.announce_rows, "withdraw": self.withdraw_rows},
                "unique_prefixes": {"announced": len(self.announced),
                                    "withdrawn": len(self.withdrawn)},
                "split_messages": self.split,
                "split_by_type": dict(sorted(self.split_by_type.items())),
                "segments": self.bgp_segments,
                "multi_message_segments": self.multi_segments,
            },
            "vxlan": {
                "packets": sum(self.vnis.values()),
                "vnis": sorted(self.vnis),
                "by_vni": {str(k): v for k, v in sorted(self.vnis.items())},
            },
            "arp": {
                "requests": self.arp["requests"], "replies": self.arp["replies"],
                "answered": self.arp["answered"], "unanswered": self.arp["unanswered"],
                "multiple_responders": sorted(".".join(map(str, ip)) for ip, macs in
                                              self.arp_responders.items() if len(macs) > 1),
            },
        }


# --- the writer --------------------------------------------------------------------------------
def generate(packets: int, out: Path, seed: int = 7, mix: str = "light") -> dict:
    """Write ``packets`` frames to ``out`` (pcap) and the truth beside it; return the truth."""
    if packets < 1:
        raise ValueError("--packets must be at least 1")
    shape = MIXES[mix]
    rng = random.Random(seed)
    builder = Builder(Templates())
    payload = rng.randbytes(4096)
    sources: dict[str, object] = {
        "vxlan": VxlanSource(rng, builder, payload), "arp": ArpSource(rng, builder),
        "other": OtherSource(rng, builder, payload),
    }
    sessions = [BgpSession(i, rng, builder, shape) for i in range(BGP_SESSIONS)]
    queues: dict[object, deque] = {key: deque() for key in [*sources, *range(BGP_SESSIONS)]}
    pending = 0
    truth = Truth(packets, seed, mix)
    bounds = []
    acc = 0.0
    for name, share in SHARES:
        acc += share
        bounds.append((acc, name))
    ts_us = START_US
    write_buf: list[bytes] = []
    with open(out, "wb", buffering=1 << 20) as fh:
        fh.write(PCAP_HEADER)
        for i in range(packets):
            remaining = packets - i
            r = rng.random()
            kind = next((name for limit, name in bounds if r < limit), "other")
            key: object = rng.randrange(BGP_SESSIONS) if kind == "bgp" else kind
            if remaining <= pending:          # only what is already started may be written now
                key = next(k for k, q in queues.items() if q)
            elif not queues[key] and remaining <= pending + shape.max_batch:
                # too close to the end to start a multi-packet batch: finish one, or send filler
                key = next((k for k, q in queues.items() if q), "vxlan")
            q = queues[key]
            if not q:
                batch = (sessions[key].next_batch() if isinstance(key, int)
                         else sources[key].next_batch())
                assert len(batch) <= shape.max_batch
                q.extend(batch)
                pending += len(batch)
            frame, meta = q.popleft()
            pending -= 1
            truth.count(meta)
            ts_us += rng.randint(20, 180)
            n = len(frame)
            write_buf.append(RECORD.pack(ts_us // 1_000_000, ts_us % 1_000_000, n, n))
            write_buf.append(frame)
            if len(write_buf) >= 8192:
                fh.write(b"".join(write_buf))
                write_buf.clear()
        fh.write(b"".join(write_buf))
    assert pending == 0
    result = truth.result()
    truth_path(out).write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, required=True, help="number of packets to write")
    parser.add_argument("--out", type=Path, required=True, help="capture file to write (pcap)")
    parser.add_argument("--seed", type=int, default=7, help="RNG seed (same seed, same file)")
    parser.add_argument("--mix", choices=sorted(MIXES), default="light",
                        help="light (the default) or bgp-heavy (issue 21: ~260,000 BGP messages "
                        "per million packets)")
    args = parser.parse_args(argv)
    if args.packets < 1:
        parser.error("--packets must be at least 1")
    truth = generate(args.packets, args.out, args.seed, args.mix)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, {truth['packets']} packets) "
          f"and {truth_path(args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
