"""Transport checksum census (diag.decode.checksum) against tshark's own verification.

Real captures from the lab (veth: most checksums are partial, offloaded) and crafted packets with
scapy: correct checksums (scapy computes them), a corrupted TCP and UDP checksum, IPv6 UDP, UDP
over IPv4 without a checksum (skipped, as RFC 768 allows), a frame cut by the snap length
(skipped: cannot verify), a fragment (skipped).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from diag.decode.checksum import census
from tests.craft.pcapfile import LINKTYPE_ETHERNET, Record, write_pcap

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted((ROOT / "captures" / "lab").glob("*.pcap")) + [ROOT / "captures" / "bgp_session.pcap"]
pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "tshark"], capture_output=True).returncode != 0,
    reason="tshark not installed")


def tshark_checksums(path: Path) -> dict[int, bool]:
    """frame -> good/bad for TCP/UDP directly over IP (ICMP-quoted headers excluded)."""
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-o", "tcp.check_checksum:TRUE",
         "-o", "udp.check_checksum:TRUE", "-Y", "!icmp && !icmpv6 && !(ip.flags.mf == 1) && "
         "!(ip.frag_offset > 0)", "-T", "fields", "-e", "frame.number",
         "-e", "tcp.checksum.status", "-e", "udp.checksum.status"],
        capture_output=True, text=True, check=True, timeout=60).stdout
    got = {}
    for line in out.splitlines():
        frame, tcp, udp = (line.split("\t") + ["", ""])[:3]
        status = (tcp or udp).split(",")[0]
        if status in ("0", "1"):                   # 0 bad, 1 good, 2 unverified (no checksum)
            got[int(frame)] = status == "1"
    return got


def scapy_checksum_ok(path: Path, frame: int) -> bool:
    """scapy's recomputed checksum equals the captured one (for frames tshark leaves
    'unverified': it skips UDP to 4789 carrying VXLAN)."""
    from scapy.layers.inet import TCP, UDP
    from scapy.utils import rdpcap

    pkt = rdpcap(str(path))[frame - 1]
    layer = TCP if TCP in pkt else UDP
    stored = pkt[layer].chksum
    del pkt[layer].chksum
    return pkt.__class__(bytes(pkt))[layer].chksum == stored


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_census_matches_tshark_on_real_captures(path):
    ours = {frame: ok for frame, _proto, ok in census(path)}
    want = tshark_checksums(path)
    assert set(want) <= set(ours)
    for frame in set(ours) - set(want):
        want[frame] = scapy_checksum_ok(path, frame)
    assert ours == want


def test_census_on_crafted_packets(tmp_path):
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    good_tcp = bytes(eth / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=179) / b"x")
    bad_tcp = bytearray(good_tcp)
    bad_tcp[14 + 20 + 16] ^= 0xFF                          # TCP checksum field
    good_udp6 = bytes(eth / IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=5, dport=8472) / b"yz")
    bad_udp = bytearray(bytes(eth / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5, dport=4789)
                              / b"abc"))
    bad_udp[14 + 20 + 6] ^= 0x0F
    no_sum = bytearray(bytes(eth / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5, dport=6)))
    no_sum[14 + 20 + 6:14 + 20 + 8] = b"\0\0"
    frag = bytes(eth / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF") / UDP(sport=5, dport=6) / b"q")
    records = [Record(10**18 + i, bytes(d)) for i, d in enumerate(
        [good_tcp, bad_tcp, good_udp6, bad_udp, no_sum, frag])]
    records.append(Record(10**18 + 9, good_tcp[:40], wirelen=len(good_tcp)))   # cut: skipped
    path = write_pcap(tmp_path / "sums.pcap", records, LINKTYPE_ETHERNET)
    ours = census(path)
    assert ours == [(1, "tcp", True), (2, "tcp", False), (3, "udp", True), (4, "udp", False)]
    assert {f: ok for f, _p, ok in ours} == tshark_checksums(path)


def test_explain_says_offload_is_by_design():
    import json
    import sys

    bundle = ROOT / "tests" / "fixtures" / "bundles" / "cilium-native-default.tar.gz"
    doc = json.loads(subprocess.run([sys.executable, "-m", "diag", "explain", str(bundle),
                                     "--format", "json"], capture_output=True, text=True,
                                    cwd=ROOT, timeout=120).stdout)
    check, = [c for c in doc["checked"] if c["check"].startswith("transport checksums")]
    assert check["passed"] is True
    assert "sent itself" in check["detail"] and "by design" in check["detail"]
    assert not any("checksum" in f["summary"].lower() for f in doc["findings"])
