"""The overlay flow ledger: every tunnelled pod-to-pod flow followed across the hosts' captures.

Contract: :func:`build_ledger(tables, model) -> Ledger`; pure, no I/O. Reads ``sightings`` (one
row per captured frame: its innermost IP packet, the tunnel layer around it, its transport
checksum; :mod:`diag.decode.sightings`), ``packets`` and ``commands`` (each host's capture and
its time span), ``hosts`` (clock offsets), ``addresses`` and the cluster model (pod CIDRs, tunnel
devices and their underlay devices).

A flow is a pod-to-pod direction — inner source, destination, protocol and ports (ICMP echo: its
identifier) — whose source and destination are in the pod CIDRs of two different hosts that an
overlay joins (a tunnel device of the sender names the receiver's VTEP, or the flow was seen
encapsulated). Each sighting is placed at one point of its path:

    pod-out -> vtep-out -> underlay-out -> path-in/out (hosts between) -> underlay-in
            -> vtep-in -> pod-in

on the sender (A) and receiver (B): the pod side is a device of the host that is neither the
tunnel device nor the tunnel's underlay device (the pod's veth), the VTEP is the tunnel device
(inner packet), the underlay the encapsulated packet; other hosts that see the encapsulated packet
(a router) are path points, ``in`` or ``out`` as their capture says.

One packet is matched across captures by what no router or tunnel changes: addresses, protocol,
IP identification and length, ports, TCP sequence/acknowledgement/flags, ICMP type/id/sequence.
Its sightings are ordered in one clock — each host's timestamps minus its clock offset from the
manifest — and belong to one journey while they lie within :data:`MAX_TRANSIT` plus both hosts'
clock uncertainties of each other (a later identical packet is a new journey). A journey counts
only when its first sighting lies inside every involved host's capture span by that margin: a
packet sent as B's capture ended is not "lost". The last point a journey reached is where it died.

Limits (docs/explain.md): a point is seen only where its host was captured (``captured`` per
point); captures are bounded (``--max-packets``; the first
:data:`diag.decode.sightings.DEFAULT_LIMIT` frames of each are read) and ``tcpdump`` drops
packets under load — how many it says at its end ("N packets dropped by kernel", kept in the
manifest), which :attr:`Ledger.kept` turns into the share each capture kept, so that an absence
is judged only where it is not explained by sampling; a flow is broken only when *none* of its
packets got through. Segmentation offload (GSO/GRO) changes packets between points, which only
hides large packets from matching, never invents a loss.
"""
from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field

from diag.analyze.captures import capture_files
from diag.values import is_missing, or_none

MAX_TRANSIT = 0.5          # seconds: a packet crosses the cluster faster than this
DEFAULT_UNCERTAINTY = 0.5  # a host without a measured clock offset
ROLES = ("pod-out", "vtep-out", "underlay-out", "path-in", "path-out", "underlay-in", "vtep-in",
         "pod-in")
ORDER = {role: i for i, role in enumerate(ROLES)}
SENDER_ROLES = ROLES[:3]
RECEIVER_ROLES = ROLES[5:]
IDENTITY = ["src", "dst", "proto", "ip_id", "length", "sport", "dport", "tcp_seq", "tcp_ack",
            "tcp_flags", "icmp_type", "icmp_id", "icmp_seq"]
PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}


@dataclass
class Sighting:
    """The last (or first) frame of a flow at one point."""

    host: str
    iface: str | None
    frame: int
    t: float
    checksum: str | None
    vni: int | None
    outer_dport: int | None
    length: int | None
    outer_src: str | None = None
    outer_dst: str | None = None


@dataclass
class Point:
    role: str
    host: str
    captured: bool
    packets: int = 0
    ifaces: Counter = field(default_factory=Counter)
    first: Sighting | None = None
    last: Sighting | None = None
    checksums: Counter = field(default_factory=Counter)
    vnis: Counter = field(default_factory=Counter)
    ports: Counter = field(default_factory=Counter)
    largest: int = 0                    # largest inner IP length seen here
    outer_largest: int = 0              # largest outer IP length (a fragmented one's largest
                                        # fragment: what the underlay carried)
    fragmented: int = 0                 # outer datagrams that came in IP fragments (the
                                        # decoder's fragments table: its one reassembly rule)
    unreassembled: int = 0              # of them, not reassembled here (a fragment missing,
                                        # overlapping, ...): the head arrived, the packet not

    @property
    def iface(self) -> str | None:
        return self.ifaces.most_common(1)[0][0] if self.ifaces else None


@dataclass
class Flow:
    src: str
    dst: str
    proto: int | None
    sport: int | None
    dport: int | None
    sender: str
    receiver: str
    points: dict[str, Point]             # role (path roles: "path-in host") -> Point
    icmp_id: int | None = None           # ICMP echo: the identifier both directions share
    journeys: int = 0                    # packets inside every involved capture span
    delivered: int = 0                   # reached the receiver's pod side
    ended: Counter = field(default_factory=Counter)    # undelivered journeys by last point
    lost_last: dict[str, Sighting] = field(default_factory=dict)   # last point -> latest one
    edge: int = 0                        # journeys at a capture's edge, not judged
    # packets that arrived with a bad inner checksum: (first bad sighting, the sender's last
    # sighting or None, the last sighting before the first bad one or None)
    bad_received: list[tuple[Sighting, Sighting | None, Sighting | None]] = \
        field(default_factory=list)
    largest: int = 0                     # largest inner packet of the flow

    @property
    def label(self) -> str:
        name = PROTO_NAMES.get(self.proto, str(self.proto))
        if self.sport is not None:
            return f"{self.src} -> {self.dst} {name} {self.sport} -> {self.dport}"
        return f"{self.src} -> {self.dst} {name}"

    def point(self, role: str) -> Point | None:
        return self.points.get(role)

    def seen(self, role: str) -> int:
        return sum(p.packets for key, p in self.points.items() if key.split()[0] == role)

    @property
    def loss_point(self) -> str | None:
        """The role most undelivered packets reached last (None: nothing lost)."""
        if not self.ended:
            return None
        return max(self.ended.items(), key=lambda kv: (kv[1], ORDER.get(kv[0].split()[0], 0)))[0]

    @property
    def broken(self) -> bool:
        """No packet got through while the receiver's pod side was captured."""
        return (self.journeys > 0 and self.delivered == 0
                and self.points["pod-in"].captured)


@dataclass
class Ledger:
    flows: list[Flow]
    captured: dict[str, str]             # host -> its capture file
    spans: dict[str, tuple[float, float]]    # host -> (start, end), the collector's clock
    offsets: dict[str, tuple[float, float | None]]   # host -> (offset, uncertainty or None)
    notes: list[str]
    # host -> the share of packets its capture kept (tcpdump's "received by filter" against
    # "dropped by kernel" at its end; 1.0 when it dropped none or did not say)
    kept: dict[str, float] = field(default_factory=dict)

    def kept_of(self, *hosts: str) -> float:
        """The smallest share of packets the captures of ``hosts`` kept."""
        return min((self.kept.get(h, 1.0) for h in hosts), default=1.0)

    def pair(self, sender: str, receiver: str) -> list[Flow]:
        return [f for f in self.flows if f.sender == sender and f.receiver == receiver]

    def reverse(self, flow: Flow) -> Flow | None:
        """The flow answering ``flow`` (addresses and ports swapped; ICMP: the same id)."""
        return next((f for f in self.flows if f.src == flow.dst and f.dst == flow.src
                     and f.proto == flow.proto and f.sport == flow.dport
                     and f.dport == flow.sport and f.icmp_id == flow.icmp_id), None)


# --- the hosts ---------------------------------------------------------------------------------

def _offsets(tables) -> dict[str, tuple[float, float | None]]:
    hosts = tables.get("hosts")
    out: dict[str, tuple[float, float | None]] = {}
    if hosts is None or hosts.empty or "clock_offset_s" not in hosts:
        return out
    unc = hosts["clock_uncertainty_s"] if "clock_uncertainty_s" in hosts else [None] * len(hosts)
    for host, offset, uncertainty in zip(hosts["host"], hosts["clock_offset_s"], unc):
        if not is_missing(offset):
            out[str(host)] = (float(offset), None if is_missing(uncertainty)
                              else float(uncertainty))
    return out


def _spans(tables, offsets) -> dict[str, tuple[float, float]]:
    """Each captured host's capture span in the collector's clock: from its first packet (the
    capture may have started a little earlier: not counted) to the later of its last packet
    and the manifest's start + duration (tcpdump started no earlier than the collector asked
    for it, and ran that long)."""
    ran = _capture_runs(tables)
    spans = {host: run for host, run in ran.items()}   # a capture that saw nothing at all
    packets = tables.get("packets")
    if packets is None or packets.empty:
        return spans
    for host, ts in packets.groupby("host")["ts"]:
        off = offsets.get(str(host), (0.0, None))[0]
        first, last = float(ts.min()) - off, float(ts.max()) - off
        end = ran.get(str(host), (last, last))[1]
        spans[str(host)] = (first, max(last, end))
    return spans


def _capture_runs(tables) -> dict[str, tuple[float, float]]:
    """host -> the manifest's capture (start, start + duration), in the collector's clock."""
    from datetime import datetime

    cmds = tables.get("commands")
    out: dict[str, tuple[float, float]] = {}
    if cmds is None or cmds.empty or "duration_s" not in cmds:
        return out
    rows = cmds[cmds["id"] == "capture"]
    for host, started, duration in zip(rows["host"], rows["started"], rows["duration_s"]):
        if not isinstance(started, str) or is_missing(duration):
            continue
        try:
            when = datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        out[str(host)] = (when, when + float(duration))
    return out


_DROPPED = re.compile(r"(\d+) packets? dropped by kernel")
_RECEIVED = re.compile(r"(\d+) packets? received by filter")


def capture_drops(tables) -> dict[str, tuple[int, int]]:
    """host -> (packets tcpdump's filter received, packets the kernel dropped before tcpdump
    read them), from the end of each capture's stderr in the manifest."""
    cmds = tables.get("commands")
    out: dict[str, tuple[int, int]] = {}
    if cmds is None or cmds.empty or "stderr" not in cmds:
        return out
    rows = cmds[cmds["id"] == "capture"]
    for host, stderr in zip(rows["host"], rows["stderr"]):
        if not isinstance(stderr, str):
            continue
        dropped, received = _DROPPED.search(stderr), _RECEIVED.search(stderr)
        if dropped and received:
            out[str(host)] = (int(received.group(1)), int(dropped.group(1)))
    return out


def _pod_owner(model):
    """address text -> the host whose pod CIDR holds it (None: no pod of a known host)."""
    nets = []
    for host in model.hosts.values():
        cidr = getattr(host.pod_cidr, "value", None)
        if cidr:
            try:
                nets.append((ipaddress.ip_network(str(cidr), strict=False), host.name))
            except ValueError:
                pass
    cache: dict[str, str | None] = {}

    def owner(addr) -> str | None:
        if addr not in cache:
            try:
                ip = ipaddress.ip_address(str(addr))
            except ValueError:
                cache[addr] = None
                return None
            cache[addr] = next((h for n, h in nets if ip.version == n.version and ip in n), None)
        return cache[addr]
    return owner


def _devices(tables, model) -> tuple[set, set, set]:
    """({(host, tunnel device)}, {(host, underlay device)}, {(sender, receiver)} joined by a
    tunnel of the sender naming the receiver's VTEP)."""
    tunnels = {(t.host, t.device) for t in model.tunnels}
    locals_ = {t.local: t.host for t in model.tunnels if t.local}
    underlay = {(t.host, t.underlay_dev) for t in model.tunnels if t.underlay_dev}
    addresses = tables.get("addresses")
    if addresses is not None and not addresses.empty:
        held = addresses[addresses["address"].isin(list(locals_))]
        underlay |= {(str(h), str(i)) for h, i in zip(held["host"], held["ifname"])}
    pairs = set()
    for t in model.tunnels:
        for remote in t.remotes:
            other = locals_.get(remote) or model.host_of_ip(remote)
            if other and other != t.host:
                pairs.add((t.host, other))
    return tunnels, underlay, pairs


# --- placing sightings -------------------------------------------------------------------------

def _placed(tables, model, tunnels: set, underlay: set, pairs: set):
    """The sightings of overlay flows, each with sender, receiver and role."""
    import numpy as np

    s = tables.get("sightings")
    if s is None or s.empty or "src" not in s:
        return None
    owner = _pod_owner(model)
    senders = s["src"].map(owner)
    receivers = s["dst"].map(owner)
    keep = senders.notna() & receivers.notna() & (senders != receivers)
    s = s[keep].copy()
    if s.empty:
        return None
    s["sender"], s["receiver"] = senders[keep], receivers[keep]
    host = s["host"].astype(str)
    iface = s["iface"]
    pair = list(zip(host, iface.astype(object)))
    is_tun = np.array([p in tunnels for p in pair], dtype=bool)
    is_under = np.array([p in underlay for p in pair], dtype=bool)
    enc = (s["depth"].fillna(0).astype(int) > 0).to_numpy()
    at_a = (host == s["sender"]).to_numpy()
    at_b = (host == s["receiver"]).to_numpy()
    named = iface.notna().to_numpy() & (iface.astype(str) != "lo").to_numpy()
    inbound = (s["direction"].astype(str) != "out").to_numpy()
    pod_side = ~enc & ~is_tun & ~is_under & named
    role = np.select(
        [enc & at_a, enc & at_b, enc & ~at_a & ~at_b & inbound, enc & ~at_a & ~at_b,
         ~enc & at_a & is_tun, ~enc & at_b & is_tun, pod_side & at_a, pod_side & at_b],
        ["underlay-out", "underlay-in", "path-in", "path-out", "vtep-out", "vtep-in", "pod-out",
         "pod-in"], default="")
    s["role"] = role
    s = s[s["role"] != ""]
    # overlay flows only: a tunnel joins the pair, or the flow was seen encapsulated
    tunnelled = set(zip(s.loc[s["depth"].fillna(0).astype(int) > 0, "sender"],
                        s.loc[s["depth"].fillna(0).astype(int) > 0, "receiver"]))
    joined = [(a, b) in pairs or (a, b) in tunnelled for a, b in zip(s["sender"], s["receiver"])]
    return s[np.array(joined, dtype=bool)] if len(s) else s


def build_ledger(tables, model) -> Ledger:
    import numpy as np

    files = capture_files(tables)
    offsets = _offsets(tables)
    spans = _spans(tables, offsets)
    captured = {h: files.get(h, "capture") for h in spans} | files
    notes: list[str] = []
    kept: dict[str, float] = {}
    for host, (received, dropped) in sorted(capture_drops(tables).items()):
        if dropped and received:
            kept[host] = max(0.0, 1.0 - dropped / received)
            notes.append(f"tcpdump on {host} dropped {dropped} of {received} packets "
                         f"({100 * dropped / received:.0f}%)")
    if model is None or not model.tunnels:
        return Ledger([], captured, spans, offsets, notes, kept)
    tunnels, underlay, pairs = _devices(tables, model)
    s = _placed(tables, model, tunnels, underlay, pairs)
    if s is None or s.empty:
        return Ledger([], captured, spans, offsets, notes, kept)
    missing = sorted(h for h in captured if h not in offsets)
    if missing and len(captured) > 1:
        notes.append("no clock offset measured for " + ", ".join(missing) + f": their packets "
                     f"are matched within {DEFAULT_UNCERTAINTY:g} s")
    off = s["host"].map(lambda h: offsets.get(h, (0.0, None))[0]).astype(float)
    unc = s["host"].map(lambda h: offsets.get(h, (0.0, None))[1]).astype(float)
    s["t"] = s["ts"].astype(float) - off
    s["unc"] = unc.fillna(DEFAULT_UNCERTAINTY if missing else 0.0)
    s["pid"] = s.groupby(IDENTITY, dropna=False, sort=False).ngroup()
    s = s.sort_values(["pid", "t"], kind="stable")
    window = MAX_TRANSIT + 2 * s["unc"].to_numpy()
    gap = s["t"].diff().to_numpy()
    new = (s["pid"] != s["pid"].shift()).to_numpy() | ~(gap <= window)
    s["journey"] = np.cumsum(new)
    margin = MAX_TRANSIT + 2 * float(s["unc"].max())
    return Ledger(_flows(s, captured, spans, margin), captured, spans, offsets, notes, kept)


def _num(value) -> int | None:
    value = or_none(value)
    return None if value is None else int(value)


def _sighting(row) -> Sighting:
    iface = row.iface if isinstance(row.iface, str) else None
    checksum = row.checksum if isinstance(row.checksum, str) else None
    outer = (row.outer_src, row.outer_dst) if isinstance(row.outer_src, str) else (None, None)
    return Sighting(str(row.host), iface, int(row.frame), float(row.t), checksum,
                    _num(row.vni), _num(row.outer_dport), _num(row.length), *outer)


class _Journey:
    """One packet's sightings, gathered row by row (rows come ordered by time)."""

    __slots__ = ("t0", "by_role", "reached")

    def __init__(self, t0: float) -> None:
        self.t0, self.by_role, self.reached = t0, {}, ""


def _flows(s, captured: dict, spans: dict, margin: float) -> list[Flow]:
    """One pass over the placed sightings, ordered by flow, journey and time."""
    keys = ["src", "dst", "proto", "sport", "dport", "icmp_id"]
    s = s.assign(fkey=s.groupby(keys, dropna=False, sort=False).ngroup())
    if "outer_status" not in s:
        s = s.assign(outer_status=None)
    s = s.sort_values(["fkey", "journey", "t"], kind="stable")
    cols = ["fkey", "journey", "host", "iface", "frame", "t", "checksum", "vni",
            "outer_dport", "outer_src", "outer_dst", "length", "role", "outer_len",
            "outer_fragments", "outer_status", "sender",
            "receiver", "src", "dst", "proto", "sport", "dport", "icmp_id"]
    flows: list[Flow] = []
    flow: Flow | None = None
    journey: _Journey | None = None
    current = (None, None)
    skip = False
    for row in s[cols].itertuples(index=False):
        if row.fkey != current[0]:
            _close(flow, journey, skip)
            journey = None
            flow = _new_flow(row, captured)
            flows.append(flow)
        if (row.fkey, row.journey) != current:
            if journey is not None:
                _close(flow, journey, skip)
            current = (row.fkey, row.journey)
            journey = _Journey(float(row.t))
            involved = [h for h in (flow.sender, flow.receiver) if h in spans]
            skip = any(journey.t0 < spans[h][0] or journey.t0 + margin > spans[h][1]
                       for h in involved)
            if skip:
                flow.edge += 1
            else:
                flow.journeys += 1
        if skip:
            continue
        _add(flow, journey, row)
    _close(flow, journey, skip)
    return [f for f in flows if f.journeys or f.edge]


def _new_flow(row, captured: dict) -> Flow:
    sender, receiver = str(row.sender), str(row.receiver)
    points = {role: Point(role, sender if role in SENDER_ROLES else receiver,
                          (sender if role in SENDER_ROLES else receiver) in captured)
              for role in SENDER_ROLES + RECEIVER_ROLES}
    proto = _num(row.proto)
    ported = proto in (6, 17, 132)
    return Flow(str(row.src), str(row.dst), proto, _num(row.sport) if ported else None,
                _num(row.dport) if ported else None, sender, receiver, points,
                _num(row.icmp_id))


def _add(flow: Flow, journey: _Journey, row) -> None:
    role = row.role if not row.role.startswith("path") else f"{row.role} {row.host}"
    sight = _sighting(row)
    point = flow.points.get(role)
    if point is None:
        point = flow.points[role] = Point(row.role, str(row.host), True)
    if role not in journey.by_role:
        point.packets += 1
        journey.by_role[role] = sight
    point.ifaces[sight.iface] += 1
    point.first = point.first or sight
    point.last = sight
    if sight.checksum:
        point.checksums[sight.checksum] += 1
    if sight.vni is not None:
        point.vnis[sight.vni] += 1
    if sight.outer_dport is not None:
        point.ports[sight.outer_dport] += 1
    point.largest = max(point.largest, sight.length or 0)
    flow.largest = max(flow.largest, sight.length or 0)
    outer_len, fragments = _num(row.outer_len), _num(row.outer_fragments)
    if outer_len:
        point.outer_largest = max(point.outer_largest, outer_len)
    if isinstance(row.outer_status, str):
        point.fragmented += 1
        if row.outer_status != "reassembled":
            point.unreassembled += 1
    elif fragments and fragments > 1:       # a table written before the status was kept
        point.fragmented += 1
    if not journey.reached or ORDER[row.role] > ORDER[journey.reached.split()[0]]:
        journey.reached = role


def _close(flow: Flow | None, journey: _Journey | None, skipped: bool) -> None:
    if flow is None or journey is None or skipped or not journey.by_role:
        return
    by_role = journey.by_role
    if "pod-in" in by_role:
        flow.delivered += 1
    else:
        flow.ended[journey.reached] += 1
        flow.lost_last[journey.reached] = by_role[journey.reached]
    if any(by_role[r].checksum == "bad" for r in RECEIVER_ROLES if r in by_role):
        sent = by_role.get("underlay-out") or by_role.get("vtep-out") or by_role.get("pod-out")
        if sent is None or sent.checksum != "bad":
            # where it went bad: the first bad sighting after the sender, in path order
            path = sorted(((ORDER[k.split()[0]], k) for k in by_role
                           if k.split()[0] not in SENDER_ROLES), key=lambda x: x)
            before, first_bad = sent, None
            for _order, key in path:
                if by_role[key].checksum == "bad":
                    first_bad = by_role[key]
                    break
                before = by_role[key]
            flow.bad_received.append((first_bad, sent, before))


__all__ = ["Flow", "Ledger", "Point", "ROLES", "Sighting", "build_ledger"]
