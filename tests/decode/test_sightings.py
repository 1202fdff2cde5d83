"""Packet identities for the overlay ledger (diag.decode.sightings) against tshark's reading.

One crafted capture (scapy) holds what the ledger meets: a bare TCP segment, VXLAN on 8472 and
4789 with inner TCP/UDP, GENEVE with an inner ICMP echo, VXLAN carrying IPv6, an encapsulated
packet whose outer datagram is fragmented (its identity read from the first fragment), inner
checksums correct, corrupted and left to offload (the pseudo-header sum), a frame cut by the snap
length, ARP and garbage. tshark (decode-as for 8472, checksum validation on, IP reassembly on) is
the oracle for every identity field and for good/bad checksums; "partial" is checked against the
crafted truth (tshark calls it bad too). The reference one's-complement sum (word by word) is the
oracle for the fast one.
"""
from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from diag.decode.checksum import ones_complement_sum
from diag.decode.sightings import SIGHTING_COLUMNS, SightingReader, sightings
from tests.craft.pcapfile import LINKTYPE_ETHERNET, Record, write_pcap

tshark_missing = subprocess.run(["which", "tshark"], capture_output=True).returncode != 0


def _partial(raw: bytes) -> bytes:
    """The IPv4 packet with its TCP/UDP checksum as Linux leaves it for offload."""
    from scapy.layers.inet import IP, TCP

    pkt = IP(raw)
    ihl = pkt.ihl * 4
    at = ihl + (16 if TCP in pkt else 6)
    pseudo = raw[12:20] + struct.pack("!BBH", 0, pkt.proto, len(raw) - ihl)
    out = bytearray(raw)
    struct.pack_into("!H", out, at, ones_complement_sum(pseudo))
    return bytes(out)


def _bad(raw: bytes) -> bytes:
    out = bytearray(raw)
    out[-1] ^= 0x42
    return bytes(out)


def crafted(tmp_path: Path) -> tuple[Path, dict[int, dict]]:
    """The capture and, per frame, what its row must say (the crafted truth)."""
    from scapy.contrib.geneve import GENEVE
    from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import ARP, Ether
    from scapy.layers.vxlan import VXLAN

    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x0800)

    def inner_e(ip: bytes):
        return Ether(src="02:dd:00:00:00:01", dst="02:dd:00:00:00:02",
                     type=0x86DD if ip[0] >> 4 == 6 else 0x0800) / ip
    tcp = bytes(IP(src="10.1.0.5", dst="10.2.0.6", id=4242, flags="DF")
                / TCP(sport=41000, dport=8080, seq=123456, ack=0, flags="S") / b"hello")
    udp = bytes(IP(src="10.1.0.5", dst="10.2.0.6", id=777) / UDP(sport=5353, dport=53)
                / b"query-bytes")
    echo = bytes(IP(src="10.1.0.5", dst="10.2.0.6", id=31) / ICMP(id=99, seq=7) / (b"p" * 32))
    six = bytes(IPv6(src="fd00::5", dst="fd00::6") / TCP(sport=50000, dport=443, seq=9,
                                                          flags="PA") / b"six")

    def outer(inner_ip: bytes, port: int, vni: int, *, geneve: bool = False, ident: int = 1):
        head = IP(src="192.0.2.1", dst="192.0.2.2", id=ident) / UDP(sport=33333, dport=port)
        if geneve:
            return head / GENEVE(vni=vni, proto=0x6558) / inner_e(inner_ip)
        return head / VXLAN(vni=vni, flags=0x08) / inner_e(inner_ip)

    big = bytes(IP(src="10.1.0.5", dst="10.2.0.6", id=5151, flags="DF")
                / TCP(sport=41001, dport=8080, seq=99, flags="PA") / (b"z" * 1300))
    frags = fragment(IP(bytes(outer(big, 8472, 2, ident=600))), fragsize=800)
    frames = [
        (e / tcp, {"depth": 0, "src": "10.1.0.5", "ip_id": 4242, "tcp_seq": 123456,
                   "tcp_flags": 2, "checksum": "ok"}),
        (e / outer(_bad(tcp), 8472, 2), {"depth": 1, "tunnel": "vxlan", "vni": 2,
                                          "outer_dport": 8472, "checksum": "bad",
                                          "ip_id": 4242}),
        (e / outer(_partial(udp), 4789, 7), {"depth": 1, "vni": 7, "proto": 17,
                                             "dport": 53, "checksum": "partial"}),
        (e / outer(echo, 6081, 300, geneve=True), {"depth": 1, "tunnel": "geneve", "vni": 300,
                                                   "icmp_type": 8, "icmp_id": 99,
                                                   "icmp_seq": 7, "checksum": None}),
        (e / outer(six, 8472, 2), {"depth": 1, "l3": "ipv6", "src": "fd00::5", "ip_id": None,
                                   "tcp_seq": 9, "checksum": "ok"}),
        # the first fragment holds the headers: identity read there, the checksum not
        # verifiable (the rest of the packet is in the next fragment); the decoder's
        # fragments table says how the datagram ended (tests/facts/test_sightings_fragments.py)
        (e / frags[0], {"depth": 1, "outer_fragment": True, "outer_ip_id": 600, "ip_id": 5151,
                        "length": 1340, "checksum": None, "dport": 8080, "vni": 2}),
        (e / frags[1], None),                      # no headers in a later fragment: no row
        (Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff")
         / ARP(psrc="10.0.0.1", pdst="10.0.0.2"), None),
    ]
    records, truth = [], {}
    for number, (pkt, want) in enumerate(frames, start=1):
        data = bytes(pkt)
        records.append(Record(1_700_000_000_000_000_000 + number * 1_000_000, data))
        if want is not None:
            truth[number] = want
    cut = bytes(e / outer(tcp, 8472, 2))
    records.append(Record(1_700_000_000_100_000_000, cut[:90], wirelen=len(cut)))
    truth[len(records)] = {"depth": 1, "checksum": None}       # bytes missing: not verifiable
    records.append(Record(1_700_000_000_200_000_000, b"\x00\x01garbage"))
    return write_pcap(tmp_path / "sightings.pcap", records, LINKTYPE_ETHERNET), truth


def rows_by_frame(path: Path) -> dict[int, dict]:
    return {r[0]: dict(zip(SIGHTING_COLUMNS, r)) for r in sightings(path)}


def test_rows_say_what_was_crafted(tmp_path):
    path, truth = crafted(tmp_path)
    rows = rows_by_frame(path)
    assert set(rows) == set(truth), (sorted(rows), sorted(truth))
    for frame, want in truth.items():
        for key, value in want.items():
            assert rows[frame][key] == value, (frame, key, rows[frame][key], value)


def tshark_fields(path: Path) -> dict[int, dict[str, list[str]]]:
    fields = ["frame.number", "ip.id", "ip.src", "ipv6.src", "tcp.seq_raw", "tcp.flags",
              "udp.dstport", "vxlan.vni", "geneve.vni", "icmp.ident", "icmp.seq",
              "tcp.checksum.status", "udp.checksum.status"]
    argv = ["tshark", "-n", "-r", str(path), "-d", "udp.port==8472,vxlan",
            "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
            "-o", "ip.defragment:TRUE", "-T", "fields", "-E", "separator=|",
            "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    got = {}
    for line in out.splitlines():
        parts = line.split("|")
        got[int(parts[0])] = {f: [v for v in p.split(",") if v] for f, p in
                              zip(fields[1:], parts[1:])}
    return got


@pytest.mark.skipif(tshark_missing, reason="tshark is the oracle")
def test_identity_and_checksums_agree_with_tshark(tmp_path):
    path, _truth = crafted(tmp_path)
    rows, shark = rows_by_frame(path), tshark_fields(path)
    for frame, row in rows.items():
        t = shark[frame]
        if row["outer_fragment"]:
            # tshark (reassembly on) dissects the datagram where its last fragment arrives
            assert int(t["ip.id"][0], 16) == row["outer_ip_id"]
            frame = next(n for n in sorted(shark) if n > frame and len(shark[n]["ip.id"]) > 1
                         and int(shark[n]["ip.id"][0], 16) == row["outer_ip_id"])
            t = shark[frame]
        if row["l3"] == "ipv4":
            assert int(t["ip.id"][-1], 16) == row["ip_id"], (frame, t)      # innermost
            assert t["ip.src"][-1] == row["src"]
        else:
            assert t["ipv6.src"][-1] == row["src"]
        if row["tcp_seq"] is not None and t["tcp.seq_raw"]:
            assert int(t["tcp.seq_raw"][-1]) == row["tcp_seq"]
            assert int(t["tcp.flags"][-1], 16) == row["tcp_flags"]
        if row["vni"] is not None:
            assert int((t["vxlan.vni"] or t["geneve.vni"])[0], 0) == row["vni"]
        if row["icmp_id"] is not None:
            assert int(t["icmp.ident"][-1]) == row["icmp_id"]
            assert int(t["icmp.seq"][-1]) == row["icmp_seq"]
        status = (t["tcp.checksum.status"] or t["udp.checksum.status"])
        if row["checksum"] in ("ok", "bad", "partial"):
            # the innermost transport header's verdict (a tunnel's outer UDP has none here)
            assert status[-1] == ("1" if row["checksum"] == "ok" else "0"), (frame, status, row)


def test_the_limit_and_bad_bytes():
    reader = SightingReader()
    for number, data in enumerate((b"", b"\x45", b"\x45" + b"\x00" * 30, b"\xff" * 80), 1):
        reader.frame(number, 0.0, 1, data, 0)       # Ethernet: never raises
    assert reader.rows == []


def test_limit_stops_reading(tmp_path):
    path, truth = crafted(tmp_path)
    assert {r[0] for r in sightings(path, limit=3)} == {f for f in truth if f <= 3}


def _reference(data: bytes, start: int = 0) -> int:
    if len(data) % 2:
        data += b"\0"
    total = start + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


@given(st.binary(max_size=300), st.integers(min_value=0, max_value=0x2FFFF))
def test_ones_complement_sum_is_the_word_by_word_sum(data, start):
    assert ones_complement_sum(data, start) == _reference(data, start)


@pytest.mark.parametrize("data", [b"", b"\x00\x00", b"\xff\xff", b"\xff\xff" * 3, b"\x00\x01",
                                  b"\xff\xfe\x00\x01"])
def test_ones_complement_sum_edges(data):
    assert ones_complement_sum(data) == _reference(data)
