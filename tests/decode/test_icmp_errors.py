"""ICMP/ICMPv6 errors (the ``icmp`` table) against tshark: type, code, announced MTU and the
quoted packet's addresses and ports.

Real: the lab's VXLAN port-mismatch capture (the kernel's port unreachable for UDP 8472) and the
shared BGP/VXLAN capture. Crafted with scapy: frag-needed with an MTU (RFC 1191), ICMPv6 packet
too big, time exceeded quoting TCP 179, an echo (not an error: no row), and the same errors
inside VXLAN, decoded by both the vectorised and the per-packet decoder (they must agree).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.craft.pcapfile import LINKTYPE_ETHERNET, Record, write_pcap

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "tshark"], capture_output=True).returncode != 0,
    reason="tshark not installed")
FIELDS = ("frame.number", "frame.protocols", "icmp.type", "icmp.code", "icmp.mtu", "icmpv6.type",
          "icmpv6.code", "icmpv6.mtu", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "udp.srcport",
          "udp.dstport", "tcp.srcport", "tcp.dstport")


def tshark_errors(path: Path, decode_as: tuple[str, ...] = ()) -> dict[int, tuple]:
    """frame -> (type, code, mtu, orig_src, orig_dst, orig_sport, orig_dport) of the first ICMP
    error layer. tshark lists every occurrence of a field (outer, inner, quoted): the layer order
    in frame.protocols says which occurrence belongs to the quoted packet."""
    args = ["tshark", "-n", "-r", str(path), "-Y",
            "(icmp.type in {3, 4, 5, 11, 12}) || (icmpv6.type in {1, 2, 3, 4})", "-T", "fields",
            "-E", "occurrence=a", "-E", "aggregator=;"]
    for d in decode_as:
        args += ["-d", d]
    for f in FIELDS:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout
    rows = {}
    for line in out.splitlines():
        v = {k: x.split(";") if x else [] for k, x in zip(FIELDS, line.split("\t"))}
        stack = v["frame.protocols"][0].split(":")
        at = next(i for i, layer in enumerate(stack) if layer in ("icmp", "icmpv6"))
        kind = stack[at]
        before = stack[:at]
        quoted_ip = next((x for x in stack[at + 1:] if x in ("ip", "ipv6")), None)
        src = dst = sport = dport = None
        if quoted_ip:
            n = before.count(quoted_ip)
            src, dst = v[f"{quoted_ip}.src"][n], v[f"{quoted_ip}.dst"][n]
            after = stack[stack.index(quoted_ip, at + 1) + 1:]
            transport = after[0] if after and after[0] in ("udp", "tcp") else None
            if transport and len(v[f"{transport}.srcport"]) > before.count(transport):
                sport = int(v[f"{transport}.srcport"][before.count(transport)])
                dport = int(v[f"{transport}.dstport"][before.count(transport)])
        mtu = v[f"{kind}.mtu"]
        rows[int(v["frame.number"][0])] = (
            int(v[f"{kind}.type"][0]), int(v[f"{kind}.code"][0]), int(mtu[0]) if mtu else None,
            src, dst, sport, dport)
    return rows


def ours(path: Path, vectorize: bool | None = None, depth: int = 0) -> dict[int, tuple]:
    from diag.decode import DecodeOptions, iter_decode

    rows = {}
    for t in iter_decode(path, DecodeOptions(), vectorize=vectorize):
        for r in t.icmp.itertuples(index=False):
            if r.tunnel_depth == depth:
                rows[int(r.frame)] = (int(r.type), int(r.code),
                                      None if r.mtu is None or r.mtu != r.mtu else int(r.mtu),
                                      r.orig_src, r.orig_dst,
                                      None if r.orig_sport is None else int(r.orig_sport),
                                      None if r.orig_dport is None else int(r.orig_dport))
    return rows


@pytest.mark.parametrize("name", ["lab/vxlan-8472-and-port-mismatch.pcap", "bgp_session.pcap"])
def test_real_icmp_errors_match_tshark(name):
    path = ROOT / "captures" / name
    got, want = ours(path), tshark_errors(path)
    assert want, "the capture holds ICMP errors"
    assert got == want


def test_crafted_icmp_errors(tmp_path):
    from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror, UDPerror
    from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6PacketTooBig, IPv6
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN

    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    big = IP(src="10.0.0.1", dst="10.0.1.9", flags="DF") / UDP(sport=41000, dport=8472) / (b"x" * 60)
    frames = [
        eth / IP(src="10.0.0.254", dst="10.0.0.1") / ICMP(type=3, code=4, nexthopmtu=1450)
        / IPerror(bytes(big)[:28]),
        eth / IPv6(src="fd00::fe", dst="fd00::1") / ICMPv6PacketTooBig(mtu=1280)
        / IPv6(src="fd00::1", dst="fd00::9") / UDP(sport=5000, dport=4789),
        eth / IP(src="10.0.0.254", dst="10.0.0.1") / ICMP(type=11, code=0)
        / IPerror(src="10.0.0.1", dst="10.0.2.2") / TCPerror(sport=40000, dport=179),
        eth / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=8),                 # echo: no row
        eth / IP(src="10.0.0.254", dst="10.0.0.1") / ICMP(type=3, code=3)
        / IPerror(src="10.0.0.1", dst="10.0.0.254") / UDPerror(sport=7, dport=4789),
    ]
    inner = (Ether(src="02:00:00:00:01:01", dst="02:00:00:00:01:02")
             / IP(src="172.20.1.1", dst="172.20.0.5") / ICMP(type=3, code=4, nexthopmtu=1400)
             / IPerror(src="172.20.0.5", dst="172.20.1.9") / UDPerror(sport=9, dport=53))
    for i in range(300):             # enough frames for the vectorised decoder to take them
        frames.append(eth / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000 + i, dport=8472)
                      / VXLAN(vni=7) / (inner if i % 100 == 0 else inner.__class__(
                          bytes(Ether(src="02:00:00:00:01:01", dst="02:00:00:00:01:02")
                                / IP(src="172.20.1.1", dst="172.20.0.5") / ICMP(type=8)))))
    records = [Record(10**18 + i * 1000, bytes(f)) for i, f in enumerate(frames)]
    path = write_pcap(tmp_path / "icmp.pcap", records, LINKTYPE_ETHERNET)
    want = tshark_errors(path)
    outer = {f: r for f, r in want.items() if f <= 5}
    assert ours(path, vectorize=False) == outer == ours(path, vectorize=True)
    assert outer[1][2] == 1450 and outer[2][2] == 1280 and outer[3][6] == 179
    assert 4 not in outer
    inner_want = {6: (3, 4, 1400, "172.20.0.5", "172.20.1.9", 9, 53),
                  106: (3, 4, 1400, "172.20.0.5", "172.20.1.9", 9, 53),
                  206: (3, 4, 1400, "172.20.0.5", "172.20.1.9", 9, 53)}
    vx = tshark_errors(path, ("udp.port==8472,vxlan",))
    assert {f: vx[f] for f in inner_want} == inner_want
    assert ours(path, vectorize=False, depth=1) == inner_want == ours(path, vectorize=True, depth=1)
