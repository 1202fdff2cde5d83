"""Two-ended overlay scenes: a real lab bundle whose captures are replaced by crafted ones.

The base is the committed calico vxlan bundle (tests/fixtures/bundles/calico-vxlan-default:
real ``ip -d -j link``, routes, FDB, sysctls of four hosts, written by ``diag collect``). A
:class:`Scene` lays packets on it: each :class:`Sighting` is one packet seen at one point (host,
device, encapsulated or not, how its inner checksum looks there), written as ``tcpdump -i any``
writes it (SLL2 with the host's ifindex of that device, pkttype outgoing or host) into
``hosts/<host>/capture.pcap``; the manifest's capture records (sha256, bytes, packets, start,
duration, tcpdump's counters on stderr) and clock offsets follow, so the bundle verifies clean.
Frames are built with scapy; the ground truth is the scene itself.
"""
from __future__ import annotations

import hashlib
import json
import struct
import tarfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tests.craft.pcapfile import LINKTYPE_SLL2, Record, pcap_bytes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"
BASE = "calico-vxlan-default"
NODES = {"k8s-ctr": ("192.168.10.100", "172.20.0.10"), "k8s-w1": ("192.168.10.101", "172.20.1.10"),
         "k8s-w0": ("192.168.20.100", "172.20.2.10")}
VTEP_MAC = {"k8s-ctr": "02:dd:c0:a8:0a:64", "k8s-w1": "02:dd:c0:a8:0a:65",
            "k8s-w0": "02:dd:c0:a8:14:64"}
PKTTYPE_HOST, PKTTYPE_OUTGOING = 0, 4


@dataclass(frozen=True)
class Sighting:
    host: str
    iface: str
    at: float                      # seconds after the scene's start, in the host's own clock
    encapsulated: bool = False
    outgoing: bool = False
    vni: int = 2
    port: int = 8472
    tunnel: str = "vxlan"          # vxlan | geneve
    checksum: str = "ok"           # ok | bad | partial: the inner TCP/UDP checksum as captured
    outer: tuple[str, str] | None = None     # outer (src, dst); default: sender -> receiver node
    fragment_outer: int = 0        # >0: the outer IPv4 datagram in fragments of this payload size
    head_only: bool = False        # of those fragments, only the first was captured here


@dataclass
class Packet:
    """One inner packet (scapy layers from IP up) and where it was seen."""

    inner: object
    seen: list[Sighting]


@dataclass
class Scene:
    packets: list[Packet] = field(default_factory=list)
    offsets: dict[str, float] = field(default_factory=dict)     # host clock - collector clock
    drops: dict[str, tuple[int, int]] = field(default_factory=dict)   # host -> (received, dropped)
    captured: tuple[str, ...] = ("router", "k8s-ctr", "k8s-w1", "k8s-w0")


def extract(tmp: Path) -> Path:
    with tarfile.open(FIXTURES / f"{BASE}.tar.gz") as tar:
        tar.extractall(tmp, filter="data")
    return tmp / BASE


def ifindexes(bundle: Path, host: str) -> dict[str, int]:
    links = json.loads((bundle / "hosts" / host / "ip-link.out").read_text())
    return {link["ifname"]: link["ifindex"] for link in links}


def _sll2(pkttype: int, ifindex: int, payload: bytes) -> bytes:
    head = struct.pack("!HHIHBB8s", 0x0800, 0, ifindex, 1, pkttype, 6, b"\x02" + b"\x00" * 7)
    return head + payload


def _inner_bytes(inner, checksum: str) -> bytes:
    """The inner IP packet with its transport checksum correct, wrong, or left to offload."""
    from scapy.layers.inet import IP, TCP, UDP

    pkt = IP(bytes(inner))                 # scapy fills lengths and checksums
    raw = bytearray(bytes(pkt))
    l4 = pkt[TCP] if TCP in pkt else pkt[UDP] if UDP in pkt else None
    if l4 is None or checksum == "ok":
        return bytes(raw)
    at = pkt.ihl * 4 + (16 if TCP in pkt else 6)
    if checksum == "bad":                  # a byte the checksum covers: TCP's urgent pointer,
        raw[pkt.ihl * 4 + 18 if TCP in pkt else len(raw) - 1] ^= 0x5A     # UDP's last byte
        return bytes(raw)
    # partial: the field holds the folded pseudo-header sum only (Linux CHECKSUM_PARTIAL)
    from diag.decode.checksum import ones_complement_sum

    seg_len = len(raw) - pkt.ihl * 4
    pseudo = bytes(raw[12:20]) + struct.pack("!BBH", 0, pkt.proto, seg_len)
    struct.pack_into("!H", raw, at, ones_complement_sum(pseudo))
    return bytes(raw)


def _frame(sight: Sighting, packet: Packet) -> list[bytes]:
    """The IP bytes of one sighting (several when the outer datagram is fragmented)."""
    from scapy.layers.inet import IP, UDP, fragment
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN

    inner = _inner_bytes(packet.inner, sight.checksum)
    if not sight.encapsulated:
        return [inner]
    src, dst = sight.outer or (None, None)
    if src is None:
        from scapy.layers.inet import IP as _IP

        ip = _IP(inner)
        src = next(n for n, p in NODES.values() if p == ip.src)
        dst = next(n for n, p in NODES.values() if p == ip.dst)
    smac = next(VTEP_MAC[h] for h, (n, _p) in NODES.items() if n == src)
    dmac = next(VTEP_MAC[h] for h, (n, _p) in NODES.items() if n == dst)
    ether = Ether(src=smac, dst=dmac, type=0x0800) / inner
    if sight.tunnel == "geneve":
        from scapy.contrib.geneve import GENEVE

        outer = IP(src=src, dst=dst, flags="DF" if not sight.fragment_outer else 0) / \
            UDP(sport=41000, dport=sight.port) / GENEVE(vni=sight.vni, proto=0x6558) / ether
    else:
        outer = IP(src=src, dst=dst, flags="DF" if not sight.fragment_outer else 0) / \
            UDP(sport=41000, dport=sight.port) / VXLAN(vni=sight.vni, flags=0x08) / ether
    outer = IP(bytes(outer))
    if sight.fragment_outer:
        # a sender numbers its datagrams: the fragments of two must not share an identification
        outer.id = 0x4000 + (_ip_id(inner) & 0x3FFF)
        del outer.chksum
        outer = IP(bytes(outer))
        pieces = [bytes(f) for f in fragment(outer, fragsize=sight.fragment_outer)]
        return pieces[:1] if sight.head_only else pieces
    return [bytes(outer)]


def _ip_id(ip_bytes: bytes) -> int:
    return int.from_bytes(ip_bytes[4:6], "big") if ip_bytes[0] >> 4 == 4 else 0


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def write(scene: Scene, bundle: Path) -> Path:
    """Write the scene's captures into ``bundle`` (in place) and fix its manifest."""
    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    records: dict[str, list[tuple[float, bytes]]] = {h: [] for h in scene.captured}
    starts = {}
    for host in scene.captured:
        cmd = next(c for c in manifest["hosts"][host]["commands"] if c["id"] == "capture")
        starts[host] = _epoch(cmd["started"]) + 0.5
    for packet in scene.packets:
        for sight in packet.seen:
            if sight.host not in records:
                continue
            index = ifindexes(bundle, sight.host)[sight.iface]
            ts = starts[sight.host] + scene.offsets.get(sight.host, 0.0) + sight.at
            pkttype = PKTTYPE_OUTGOING if sight.outgoing else PKTTYPE_HOST
            for i, ip in enumerate(_frame(sight, packet)):
                records[sight.host].append((ts + i * 1e-6, _sll2(pkttype, index, ip)))
    for host, rec in manifest["hosts"].items():
        if host in scene.offsets:
            rec["clock_offset_s"] = scene.offsets[host]
            rec["clock_uncertainty_s"] = 0.0005
        commands = rec["commands"]
        cap = next((c for c in commands if c["id"] == "capture"), None)
        if cap is None:
            continue
        if host not in records:               # this host's capture is not part of the scene
            (bundle / cap["path"]).unlink(missing_ok=True)
            rec["commands"] = [c for c in commands if c["id"] != "capture"]
            continue
        frames = sorted(records[host])
        data = pcap_bytes([Record(int(ts * 1e9), raw) for ts, raw in frames], LINKTYPE_SLL2)
        (bundle / cap["path"]).write_bytes(data)
        received, dropped = scene.drops.get(host, (len(frames), 0))
        cap.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data),
                   packets=len(frames), duration_s=4.0,
                   stderr=(f"{len(frames)} packets captured\n{received} packets received by "
                           f"filter\n{dropped} packets dropped by kernel\n"))
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return bundle


def set_link(bundle: Path, host: str, device: str, **info) -> None:
    """Change a device of ``host``'s ``ip -d -j link`` (e.g. ``id=3``, ``kind="geneve"``)."""
    path = bundle / "hosts" / host / "ip-link.out"
    links = json.loads(path.read_text())
    for link in links:
        if link["ifname"] == device:
            linkinfo = link.setdefault("linkinfo", {})
            if "kind" in info:
                linkinfo["info_kind"] = info.pop("kind")
            linkinfo.setdefault("info_data", {}).update(info)
    data = json.dumps(links).encode()
    path.write_bytes(data)
    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for cmd in manifest["hosts"][host]["commands"]:
        if cmd["id"] == "ip-link":
            cmd.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    manifest_path.write_text(json.dumps(manifest, indent=1))


# --- the paths packets take -------------------------------------------------------------------

def path_out(sender: str, at: float, **kw) -> list[Sighting]:
    """The sender's three points: its pod's veth, the vxlan device, the underlay NIC."""
    return [Sighting(sender, "cali_pod", at),
            Sighting(sender, "vxlan.calico", at + 0.00001, outgoing=True),
            Sighting(sender, "eth1", at + 0.00002, encapsulated=True, outgoing=True, **kw)]


def via_router(sender: str, at: float, *, out: bool = True, **kw) -> list[Sighting]:
    into = "eth1" if sender in ("k8s-ctr", "k8s-w1") else "eth2"
    away = "eth2" if into == "eth1" else "eth1"
    seen = [Sighting("router", into, at + 0.0001, encapsulated=True, **kw)]
    if out:
        seen.append(Sighting("router", away, at + 0.00011, encapsulated=True, outgoing=True,
                             **kw))
    return seen


def path_in(receiver: str, at: float, *, decap: bool = True, pod: bool = True,
            **kw) -> list[Sighting]:
    seen = [Sighting(receiver, "eth1", at + 0.0002, encapsulated=True, **kw)]
    if decap:
        seen.append(Sighting(receiver, "vxlan.calico", at + 0.00021,
                             checksum=kw.get("checksum", "ok")))
    if pod:
        seen.append(Sighting(receiver, "cali_pod", at + 0.00022, outgoing=True,
                             checksum=kw.get("checksum", "ok")))
    return seen


def echo(src: str, dst: str, seq: int, ident: int = 77, reply: bool = False):
    from scapy.layers.inet import ICMP, IP

    return IP(src=src, dst=dst, id=1000 + seq + (5000 if reply else 0), flags="DF") / \
        ICMP(type=0 if reply else 8, id=ident, seq=seq) / (b"x" * 56)


def syn(src: str, dst: str, sport: int, dport: int, seq: int, ip_id: int):
    from scapy.layers.inet import IP, TCP

    return IP(src=src, dst=dst, id=ip_id, flags="DF") / TCP(sport=sport, dport=dport, seq=seq,
                                                           flags="S", window=64240)


__all__ = ["NODES", "Packet", "Scene", "Sighting", "echo", "extract", "path_in", "path_out",
           "set_link", "syn", "via_router", "write"]
