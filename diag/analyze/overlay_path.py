"""Overlay failures located from both ends: where each tunnelled flow dies, and why.

Contract: :func:`analyze(tables, model, fib, config) -> (findings, checks, ladders)`; pure, no
I/O. ``config`` are the findings :mod:`diag.analyze.overlay` made from the hosts' link state;
they come back extended (two-ended packet evidence, more sources) with the new findings of the
flow ledger (:mod:`diag.analyze.ledger`). ``ladders`` are the flows behind each overlay finding
(:class:`diag.model.FlowLadder`, at most :data:`LADDERS_PER_FINDING` each): what the report
draws.

A flow is *broken* when none of its packets reached the receiver's pod side while that side was
captured (partial loss is left alone: captures drop packets under load). Where its packets were
last seen decides the code; the frames of the last sighting on each side are the evidence:

- never entered the sender's tunnel, larger than its MTU: ``OVERLAY_MTU_BLACKHOLE`` (extends the
  configuration finding); tunnelled packets fragmented on the underlay are MTU evidence too;
- left the sender's underlay (or a host between: a router) and never reached the receiver's:
  ``OVERLAY_UDP_BLOCKED`` — other packets from the sender arriving at the receiver prove the
  path works for everything else (source ``pcap-underlay``);
- reached the receiver's underlay and were never decapsulated: ``VXLAN_PORT_MISMATCH`` (the
  destination port is none of the receiver's tunnel ports), ``VXLAN_VNI_MISMATCH`` (the VNI is
  none of its devices'), else ``OVERLAY_UDP_BLOCKED`` on the receiver's input (a host firewall);
- decapsulated and never handed to the pod: ``OVERLAY_DROP_AFTER_DECAP``, naming what was
  checked (the route to the pod, rp_filter, the pod's neighbour entry) and what was not
  (firewall rules and network policy are not collected);
- delivered with inner TCP/UDP checksums that are wrong on the receiver's side and were correct
  or left to offload on the sender's: ``OVERLAY_CHECKSUM_OFFLOAD`` (``ethtool -k`` settings and
  the fix named; a checksum captured on its sender's own transmit path is never evidence).

Sources: ``pcap-sender`` and ``pcap-receiver`` (each end's capture), ``pcap-path`` (a host
between), ``pcap-underlay`` (other traffic passes), plus ``ip-link``, ``ethtool``, ``nstat``,
``sysctl``, ``ip`` where they agree. With one end captured the code is still given when that end
decides it (lower confidence); when it cannot, a not-checked entry says "not decidable from one
end" and names the capture that would decide.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from diag.analyze.captures import BARE_CAPTURE, capture_files
from diag.analyze.catalog import default_severity
from diag.analyze.fib import Fib
from diag.analyze.ledger import ORDER, ROLES, Flow, Ledger, Sighting, build_ledger
from diag.analyze.lookup import lookup
from diag.analyze.overlay import OVERHEAD, counter_peak, links
from diag.analyze.rpfilter import effective, rp_modes
from diag.model import Check, Confidence, Evidence, Finding, FlowLadder, FlowPoint
from diag.values import or_none
from diag.words import counted

MIN_PACKETS = 2                 # a flow is judged on at least this many packets
LADDERS_PER_FINDING = 3
CHECK_FLOWS = "tunnelled flows delivered end to end (the overlay flow ledger)"
CHECKSUM_FEATURES = ("tx-checksumming", "tx-checksum-ip-generic", "tx-checksum-ipv4",
                     "tx-checksum-ipv6", "rx-checksumming", "tx-udp_tnl-csum-segmentation")
PROTO = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}


@dataclass
class _Verdict:
    code: str
    flow: Flow
    locus: str                         # one line: where and how the packets die
    evidence: list[Evidence]
    sources: set[str]
    fix: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)
    hosts: tuple[str, ...] = ()
    key: str = ""                      # groups verdicts of one cause into one finding
    severity: str | None = None        # None: the catalogue's default
    severity_reason: str = ""


class _Context:
    def __init__(self, tables, model, fib: Fib, ledger: Ledger) -> None:
        self.tables, self.model, self.fib, self.ledger = tables, model, fib, ledger
        self.files = capture_files(tables)
        self.devices = links(tables, fib.outputs)
        self.tunnels = {}
        for t in model.tunnels:
            self.tunnels.setdefault(t.host, []).append(t)
        # the nodes' underlay addresses: "other traffic between the nodes" is traffic between
        # these (never loopback or the pods' gateways, which every node has alike)
        self.addresses: dict[str, set[str]] = {}
        for t in model.tunnels:
            if t.local:
                self.addresses.setdefault(t.host, set()).add(t.local)
        for name, host in model.hosts.items():
            node_ip = getattr(host.node_ip, "value", None)
            if node_ip:
                self.addresses.setdefault(name, set()).add(str(node_ip))
        # traffic classes (pair, protocol, service port) of which some flow got through: a
        # flow of such a class that did not is the captures' sampling, not a broken path
        self.delivered = {_service(f) for f in ledger.flows if f.delivered}
        self.unjudged: list[_Verdict] = []          # groups the captures' drops could explain

    def file(self, host: str) -> str:
        return self.files.get(host, BARE_CAPTURE)

    def frame(self, sight: Sighting, value: str) -> Evidence:
        return Evidence(sight.host, self.file(sight.host), f"frame {sight.frame}", value,
                        sight.frame)

    def captured(self, host: str) -> bool:
        return host in self.ledger.captured

    def tunnel(self, host: str):
        found = self.tunnels.get(host) or []
        return found[0] if found else None


# --- describing sightings ----------------------------------------------------------------------

def _inner(flow: Flow) -> str:
    name = PROTO.get(flow.proto, str(flow.proto))
    ports = f" {flow.sport} -> {flow.dport}" if flow.sport is not None else ""
    return f"{flow.src} -> {flow.dst} {name}{ports}"


def _where(sight: Sighting, role: str) -> str:
    tunnel = ""
    if sight.outer_src:
        tunnel = (f" in {sight.outer_src} -> {sight.outer_dst} udp {sight.outer_dport} "
                  f"vni {sight.vni}")
    verb = {"pod-out": "from the pod on", "vtep-out": "into", "underlay-out": "leaving by",
            "path-in": "arriving on", "path-out": "leaving by", "underlay-in": "arriving on",
            "vtep-in": "decapsulated by", "pod-in": "handed to the pod on"}[role]
    return f"{tunnel} {verb} {sight.iface or '?'}"


def _seen(ctx: _Context, flow: Flow, role_key: str, sight: Sighting, extra: str = "") -> Evidence:
    role = role_key.split()[0]
    value = f"{_inner(flow)}{_where(sight, role)} on {sight.host}"
    if sight.checksum and flow.proto in (6, 17):
        value += f" (inner checksum {sight.checksum})"
    return ctx.frame(sight, value + extra)


def _last_on(flow: Flow, hosts: tuple[str, ...]) -> tuple[str, Sighting] | None:
    """The last point (in path order) on one of ``hosts`` that saw the flow, and its latest
    sighting there."""
    best = None
    for key, point in flow.points.items():
        if point.host in hosts and point.packets and point.last is not None:
            order = ORDER[key.split()[0]]
            if best is None or order > best[0]:
                best = (order, key, point.last)
    return (best[1], best[2]) if best else None


# --- classification ----------------------------------------------------------------------------

def _service(flow: Flow) -> tuple:
    """(sender, receiver, protocol, service port): the lower port of a TCP/UDP flow (the
    server's, in both directions), none for ICMP."""
    port = min(flow.sport, flow.dport) if flow.sport is not None and flow.dport is not None \
        else None
    return (flow.sender, flow.receiver, flow.proto, port)


def _classify(ctx: _Context, flow: Flow) -> _Verdict | None:
    """The flow's verdict; packets are counted per cause later (:data:`MIN_PACKETS` over all
    flows alike: a client opening a new connection per attempt makes one-packet flows)."""
    if flow.bad_received:
        return _checksum(ctx, flow)
    loss = flow.loss_point or ""
    role = loss.split()[0] if loss else ""
    if flow.broken and role in ("pod-out", "vtep-out"):
        # too big for the tunnel is decided by size, whatever smaller flows of the same
        # service did (their getting through is the MTU's signature, not sampling)
        verdict = _too_big(ctx, flow, loss)
        if verdict is not None:
            return verdict
    if _service(flow) in ctx.delivered:
        return None
    if not flow.broken:
        return _one_ended(ctx, flow)
    if role == "pod-out":
        return _too_big(ctx, flow, loss)
    if role == "vtep-out":
        return _too_big(ctx, flow, loss) or _blocked_at_sender(ctx, flow, loss)
    if role in ("underlay-out", "path-in", "path-out"):
        if not ctx.captured(flow.receiver) and role != "path-in":
            return None
        return _blocked_on_path(ctx, flow, loss)
    if role == "underlay-in":
        return _not_decapsulated(ctx, flow, loss)
    if role == "vtep-in":
        return _after_decap(ctx, flow, loss)
    return None


def _one_ended(ctx: _Context, flow: Flow) -> _Verdict | None:
    """The receiver was not captured and nothing came back: what the sender's end decides
    alone — packets that died on the sender, or left it for a VTEP whose devices (their link
    state was collected) have another port or VNI."""
    if flow.points["pod-in"].captured or not flow.journeys or flow.delivered or \
            _answered(ctx.ledger, flow):
        return None
    last = _last_on(flow, (flow.sender,))
    if last is None:
        return None
    key, _sight = last
    role = key.split()[0]
    if role == "pod-out":
        return _too_big(ctx, flow, key)
    if role == "vtep-out":
        return _too_big(ctx, flow, key) or _blocked_at_sender(ctx, flow, key)
    if role == "underlay-out":
        return _wrong_vtep(ctx, flow, flow.points["underlay-out"], key)
    return None


def _sender_side(ctx: _Context, flow: Flow) -> tuple[list[Evidence], set[str]]:
    """The sender's last sighting (if its capture saw the flow)."""
    last = _last_on(flow, (flow.sender,))
    if last is None:
        return [], set()
    key, sight = last
    return [_seen(ctx, flow, key, sight)], {"pcap-sender"}


def _too_big(ctx: _Context, flow: Flow, loss: str) -> _Verdict | None:
    tunnel = ctx.tunnel(flow.sender)
    if tunnel is None or not tunnel.mtu:
        return None
    limit = tunnel.mtu
    if loss.startswith("vtep-out"):
        under = ctx.devices.get((flow.sender, tunnel.underlay_dev or ""))
        if under is None or not under.mtu:
            return None
        limit = under.mtu - OVERHEAD.get(tunnel.kind, 50)
    if flow.largest <= limit:
        return None
    point = flow.points[loss]
    ev = [_seen(ctx, flow, loss, point.last,
                f", {flow.largest} bytes: more than {tunnel.device} carries ({limit})")]
    sources = {"pcap-sender"}
    smaller = _smaller_delivered(ctx, flow, limit)
    if smaller is not None:                 # the other end: the path works below the limit
        ev.append(smaller)
        sources.add("pcap-receiver")
    return _Verdict("OVERLAY_MTU_BLACKHOLE", flow,
                    f"{flow.sender}: {counted(flow.journeys, 'packet')} of up to "
                    f"{flow.largest} bytes "
                    f"seen on {point.iface} never entered the tunnel ({tunnel.device} MTU "
                    f"{tunnel.mtu})" + ("; smaller packets between the same pods arrive"
                                        if smaller is not None else ""),
                    ev, sources, hosts=(flow.sender,),
                    key=f"mtu {flow.sender} {tunnel.device}")


def _smaller_delivered(ctx: _Context, flow: Flow, limit: int) -> Evidence | None:
    """The receiver's side of an MTU loss: a packet between the same pods, no bigger than the
    tunnel carries, handed to the receiving pod (its capture's frame)."""
    best = None
    for other in ctx.ledger.flows:
        pod_in = other.points.get("pod-in")
        if (other.src, other.dst) != (flow.src, flow.dst) or not other.delivered or \
                pod_in is None or pod_in.last is None or not 0 < other.largest <= limit:
            continue
        if best is None or pod_in.last.frame > best[1].last.frame:
            best = (other, pod_in)
    if best is None:
        return None
    other, pod_in = best
    return _seen(ctx, other, "pod-in", pod_in.last,
                 f", {other.largest} bytes: smaller packets between the same pods arrive")


def _blocked_at_sender(ctx: _Context, flow: Flow, loss: str) -> _Verdict:
    tunnel = ctx.tunnel(flow.sender)
    ev, sources = _sender_side(ctx, flow)
    under = tunnel.underlay_dev if tunnel else "its underlay NIC"
    device = tunnel.device if tunnel else "its tunnel device"
    return _Verdict("OVERLAY_UDP_BLOCKED", flow,
                    f"{flow.sender} encapsulates {_inner(flow)} in {device} "
                    f"but never sends it by {under}: dropped on {flow.sender}'s way out "
                    "(an egress firewall: nftables/iptables output or postrouting)",
                    ev, sources, hosts=(flow.sender,),
                    fix=[f"# on {flow.sender}: look for a rule dropping UDP "
                         f"{tunnel.port if tunnel else ''} on the way out: nft list ruleset; "
                         "iptables-save | grep -i -e drop -e reject"],
                    key=f"blocked-egress {flow.sender}")


def _other_traffic(ctx: _Context, flow: Flow) -> Evidence | None:
    """A packet from the sender node (not tunnelled) that arrived at the receiver node."""
    packets = ctx.tables.get("packets")
    if packets is None or packets.empty or not ctx.captured(flow.receiver):
        return None
    mine, theirs = ctx.addresses.get(flow.sender, set()), ctx.addresses.get(flow.receiver, set())
    ports = {t.port for t in ctx.model.tunnels if t.port}
    rows = packets[(packets["host"] == flow.receiver) & packets["src"].isin(list(mine))
                   & packets["dst"].isin(list(theirs)) & (packets["tunnel_depth"] == 0)]
    if rows.empty:
        return None
    tunnelled = (rows["ip_proto"] == 17) & (rows["dport"].isin(list(ports))
                                            | rows["sport"].isin(list(ports)))
    rows = rows[~tunnelled.fillna(False).astype(bool)]
    if rows.empty:
        return None
    row = rows.iloc[-1]
    name = PROTO.get(or_none(row["ip_proto"]), f"protocol {row['ip_proto']}")
    return Evidence(flow.receiver, ctx.file(flow.receiver), f"frame {int(row['frame'])}",
                    f"{row['src']} -> {row['dst']} {name} from {flow.sender} arrives on "
                    f"{row['iface']} of {flow.receiver}", int(row["frame"]))


def _blocked_on_path(ctx: _Context, flow: Flow, loss: str) -> _Verdict:
    ev, sources = _sender_side(ctx, flow)
    role = loss.split()[0]
    tunnel = ctx.tunnel(flow.sender)
    port = (flow.points["underlay-out"].ports.most_common(1) or [(tunnel.port if tunnel else None,
                                                                   0)])[0][0]
    if role.startswith("path"):
        point = flow.points[loss]
        sources.add("pcap-path")
        ev.append(_seen(ctx, flow, loss, point.last))
        if role == "path-in":
            where = (f"dropped by {point.host}: they arrive on its {point.iface} and never leave "
                     "it")
        else:
            where = f"lost after {point.host} sent them on by {point.iface}"
    else:
        where = f"lost between {flow.sender} and {flow.receiver}"
    if ctx.captured(flow.receiver):
        sources.add("pcap-receiver")
    other = _other_traffic(ctx, flow)
    passes = ""
    if other is not None:
        sources.add("pcap-underlay")
        ev.append(other)
        passes = f"; other traffic from {flow.sender} reaches {flow.receiver}"
    elif ctx.captured(flow.receiver):
        passes = (f"; no other packet from {flow.sender} was captured on {flow.receiver} either "
                  "(the whole path may be down)")
    span = ctx.ledger.spans.get(flow.receiver)
    unseen = (f" and never arrive on {flow.receiver}'s underlay (captured for "
              f"{span[1] - span[0]:.1f} s)" if span else "")
    fix = [f"# allow UDP {port} between the nodes on the path ({where.split(':')[0]}): "
           f"nft list ruleset / iptables-save on {flow.sender}, {flow.receiver} and the hosts "
           "between; cloud security groups and network ACLs",
           f"# e.g. nft insert rule inet filter forward udp dport {port} accept"]
    return _Verdict("OVERLAY_UDP_BLOCKED", flow,
                    f"{_inner(flow)}: encapsulated packets (UDP {port}) leave {flow.sender}"
                    f"{unseen}: {where}{passes}", ev, sources,
                    fix=fix, hosts=(flow.sender, flow.receiver),
                    key=f"blocked {flow.sender} {flow.receiver} {loss}")


def _receiver_tunnels(ctx: _Context, flow: Flow, kind: str | None):
    return [t for t in ctx.tunnels.get(flow.receiver, []) if kind is None or t.kind == kind]


def _not_decapsulated(ctx: _Context, flow: Flow, loss: str) -> _Verdict | None:
    point = flow.points["underlay-in"]
    if point.unreassembled and point.unreassembled >= point.packets:
        # only heads of datagrams whose other fragments never came: the MTU, not a firewall
        return _fragment_verdict(ctx, flow, loss)
    verdict = _wrong_vtep(ctx, flow, point, loss)
    if verdict is not None:
        return verdict
    vni = point.vnis.most_common(1)[0][0] if point.vnis else None
    port = point.ports.most_common(1)[0][0] if point.ports else None
    if not _receiver_tunnels(ctx, flow, None):
        return None
    ev, sources = _sender_side(ctx, flow)
    ev.append(_seen(ctx, flow, loss, point.last, ", never decapsulated"))
    sources |= {"pcap-receiver", "ip-link"}
    for t in _receiver_tunnels(ctx, flow, None):
        if (flow.receiver, t.device) in ctx.devices:
            ev.append(ctx.devices[(flow.receiver, t.device)].evidence)
    return _Verdict("OVERLAY_UDP_BLOCKED", flow,
                    f"{_inner(flow)} arrives on {flow.receiver}'s {point.iface} with its VNI "
                    f"{vni} and port {port} and is never decapsulated: dropped on "
                    f"{flow.receiver}'s input before the tunnel device (a host firewall)",
                    ev, sources, hosts=(flow.receiver,),
                    not_checked=["firewall rules (nftables/iptables input) on "
                                 f"{flow.receiver}: not collected"],
                    fix=[f"# on {flow.receiver}: allow UDP {port} in: nft list ruleset; "
                         "iptables-save | grep -e DROP -e REJECT"],
                    key=f"blocked-input {flow.receiver}")


def _wrong_vtep(ctx: _Context, flow: Flow, point, key: str) -> _Verdict | None:
    """Packets (seen at ``point``: arriving on the receiver, or leaving the sender) carry a
    port or VNI that none of the receiver's tunnel devices has (its ``ip -d link``)."""
    theirs = _receiver_tunnels(ctx, flow, None)
    if not theirs or point.last is None:
        return None
    vni = point.vnis.most_common(1)[0][0] if point.vnis else None
    port = point.ports.most_common(1)[0][0] if point.ports else None
    ports = {t.port for t in theirs}
    arrived = key.startswith("underlay-in")
    ev, sources = _sender_side(ctx, flow)
    if arrived:
        ev.append(_seen(ctx, flow, key, point.last, ", never decapsulated"))
        sources.add("pcap-receiver")
        how = f"arrives on {flow.receiver}"
    else:
        how = (f"leaves {flow.sender} for {flow.receiver} ({flow.receiver} not captured)")
    for t in theirs:
        if (flow.receiver, t.device) in ctx.devices:
            ev.append(ctx.devices[(flow.receiver, t.device)].evidence)
    if port not in ports:
        sources.add("ip-link")
        return _Verdict("VXLAN_PORT_MISMATCH", flow,
                        f"{_inner(flow)} {how} at UDP {port}, a port none "
                        f"of {flow.receiver}'s tunnel devices listens on "
                        f"({', '.join(f'{t.device} {t.port}' for t in theirs)})", ev, sources,
                        hosts=(flow.receiver,), key=f"port {flow.receiver}")
    vnis = {t.vni for t in theirs if t.port == port}
    if vni not in vnis:
        sources.add("ip-link")
        return _Verdict("VXLAN_VNI_MISMATCH", flow,
                        f"{_inner(flow)} {how} with VNI {vni} on UDP {port}; {flow.receiver}'s "
                        f"devices on UDP {port} have VNI "
                        f"{', '.join(str(v) for v in sorted(vnis, key=str))}: never "
                        "decapsulated (dropped silently)", ev, sources,
                        hosts=(flow.receiver,), key=f"vni {flow.receiver}")
    return None


def _after_decap(ctx: _Context, flow: Flow, loss: str) -> _Verdict:
    point = flow.points["vtep-in"]
    ev, sources = _sender_side(ctx, flow)
    ev.append(_seen(ctx, flow, loss, point.last, ", never handed to the pod"))
    sources.add("pcap-receiver")
    checked, causes = [], []
    host, dev = flow.receiver, point.iface
    lk = lookup(ctx.fib, host, flow.dst, src=flow.src, iif=dev)
    if lk.route is not None:
        ev.append(lk.route.evidence)
    pod_dev = flow.points["pod-in"].iface or lk.dev
    if lk.type == "unicast" and lk.dev and lk.dev != dev:
        sources.add("ip")
        checked.append(f"route: {flow.dst} via {lk.dev} (fine)")
    else:
        causes.append(f"the route to {flow.dst} on {host}: {lk.type} {lk.dev or lk.reason}")
    modes = rp_modes(ctx.tables, ctx.fib.outputs).get(host, {})
    if modes:
        value, rp_ev = effective(modes, dev or "")
        back = lookup(ctx.fib, host, flow.src)
        if value == 1 and back.dev != dev:
            causes.append(f"strict rp_filter on {dev}: the route back to {flow.src} leaves by "
                          f"{back.dev}")
            ev += list(rp_ev)
        else:
            checked.append(f"rp_filter {value} on {dev}" + (
                "" if value != 1 else f" (the route back leaves by {dev})") + " (fine)")
            ev += list(rp_ev)
    rpf = counter_peak(ctx.tables, ctx.fib.outputs, host, "TcpExtIPReversePathFilter")
    if rpf and rpf[0] > 0:
        ev.append(rpf[1])
    neigh = [(state, e) for (h, ip, d), (state, _mac, e) in ctx.fib.neighbors.items()
             if h == host and ip == flow.dst]
    if neigh:
        state, nev = neigh[0]
        if state in ("FAILED", "INCOMPLETE"):
            causes.append(f"the pod {flow.dst} does not answer ARP ({state})")
            ev.append(nev)
        else:
            checked.append(f"neighbour {flow.dst} {state} (fine)")
    not_checked = [f"network policy and firewall rules on {host} (nftables/iptables forward, "
                   "the CNI's policy): not collected"]
    cause = ("; ".join(causes) if causes else
             "not the route, rp_filter or the pod's neighbour entry: a forward-path drop, "
             "network policy or firewall rule is left")
    fix = [f"# on {host}: nft list ruleset; iptables-save | grep -e DROP -e REJECT "
           f"(forward chain, iif {dev} oif {pod_dev})",
           "# the CNI's policy: calicoctl get networkpolicy,globalnetworkpolicy -A -o wide; "
           "cilium-dbg policy get; cilium-dbg monitor --type drop"]
    return _Verdict("OVERLAY_DROP_AFTER_DECAP", flow,
                    f"{host} decapsulates {_inner(flow)} ({dev}, "
                    f"{counted(point.packets, 'packet')}) and "
                    f"never hands it to the pod ({pod_dev or 'its device'}: none): {cause}",
                    ev, sources, fix=fix, checked=checked, not_checked=not_checked,
                    hosts=(host,), key=f"after-decap {host}")


def _offloads(ctx: _Context, host: str, devices: list[str]) -> tuple[list[str], list[Evidence]]:
    """The checksum offload settings of ``devices`` on ``host`` (``ethtool -k``), one short
    text per device and the line of its transmit checksum setting as evidence."""
    table = ctx.tables.get("offloads")
    if table is None or table.empty:
        return [], []
    rows = table[(table["host"] == host) & table["ifname"].isin(devices)
                 & table["feature"].isin(list(CHECKSUM_FEATURES))]
    texts, ev = [], []
    for (ifname, source), group in rows.groupby(["ifname", "source"], sort=False):
        state = dict(zip(group["feature"], group["state"]))
        tx = state.get("tx-checksum-ip-generic") or state.get("tx-checksumming")
        feature = "tx-checksum-ip-generic" if "tx-checksum-ip-generic" in state \
            else "tx-checksumming"
        texts.append(f"{host} {ifname} tx {tx or '?'} ({feature}), rx "
                     f"{state.get('rx-checksumming', '?')}")
        if tx is not None:
            ev.append(Evidence(host, ctx.fib.outputs.path(host, str(source)),
                               f"line starting {feature}", f"{ifname} {feature}: {tx}"))
    return texts, ev


def _checksum(ctx: _Context, flow: Flow) -> _Verdict:
    bad, sent, before = flow.bad_received[-1]
    ev: list[Evidence] = []
    sources: set[str] = {"pcap-receiver"}
    if sent is not None:
        sources.add("pcap-sender")
        where_sent = _where(sent, "underlay-out" if sent.outer_src else "pod-out")
        ev.append(ctx.frame(sent, f"{_inner(flow)}{where_sent} on {sent.host} "
                                  f"(inner checksum {sent.checksum})"))
    role = ("path-out" if bad.host not in (flow.sender, flow.receiver) else
            "underlay-in" if bad.outer_src else "vtep-in" if bad.iface and any(
                bad.iface == t.device for t in ctx.tunnels.get(bad.host, [])) else "pod-in")
    ev.append(ctx.frame(bad, f"{_inner(flow)}{_where(bad, role)} on {bad.host} (inner "
                             f"checksum bad)"))
    if bad.host != flow.receiver:                 # and where the receiver got it
        got = next((p.last for r in ("underlay-in", "vtep-in", "pod-in")
                    for p in [flow.points[r]] if p.last is not None
                    and p.last.checksum == "bad"), None)
        if got is not None:
            where_got = _where(got, "underlay-in" if got.outer_src else "pod-in")
            ev.append(ctx.frame(got, f"{_inner(flow)}{where_got} on {got.host} "
                                     "(inner checksum bad)"))
    if sent is None:
        where = (f"arrive on {flow.receiver} with bad inner checksums; whether {flow.sender}'s "
                 "offload or the path between corrupted them is not decidable from one end "
                 f"(capture {flow.sender} too)")
    elif sent.checksum == "partial":
        where = (f"{flow.sender} left the inner checksum to offload (its capture shows only the "
                 f"pseudo-header sum) and it arrives wrong on {flow.receiver}: the sender's "
                 "offload (its tunnel device or NIC) fills it in wrong")
    elif before is not None and before.host == bad.host and before is not sent:
        sources.add("pcap-path")
        ev.append(ctx.frame(before, f"{_inner(flow)}{_where(before, 'path-in')} on {before.host} "
                                    f"(inner checksum {before.checksum})"))
        where = (f"correct leaving {flow.sender}, rewritten by {bad.host}: correct arriving on "
                 f"its {before.iface}, wrong leaving by {bad.iface}, wrong on {flow.receiver}")
    else:
        where = (f"correct leaving {flow.sender}, wrong arriving on {flow.receiver}: corrupted "
                 "between the two underlays (a NIC, router or middlebox on the path rewriting "
                 "the packets)")
    icmp = [f for f in ctx.ledger.flows if f.proto in (1, 58) and f.delivered
            and {f.sender, f.receiver} == {flow.sender, flow.receiver}]
    passes = ""
    if icmp:
        best = max(icmp, key=lambda f: f.delivered)
        passes = f"; ICMP between the same nodes' pods passes ({best.delivered} delivered)"
        pod_in = best.points["pod-in"].last
        if pod_in is not None:
            ev.append(_seen(ctx, best, "pod-in", pod_in, ", delivered"))
    sender_devs = [t.device for t in ctx.tunnels.get(flow.sender, [])] + \
        [t.underlay_dev for t in ctx.tunnels.get(flow.sender, []) if t.underlay_dev]
    receiver_devs = [t.device for t in ctx.tunnels.get(flow.receiver, [])] + \
        [t.underlay_dev for t in ctx.tunnels.get(flow.receiver, []) if t.underlay_dev]
    s_text, s_ev = _offloads(ctx, flow.sender, sender_devs)
    r_text, r_ev = _offloads(ctx, flow.receiver, receiver_devs)
    if s_ev or r_ev:
        sources.add("ethtool")
        ev += s_ev + r_ev
    for name in ("TcpInCsumErrors", "UdpInCsumErrors"):
        found = counter_peak(ctx.tables, ctx.fib.outputs, flow.receiver, name)
        if found and found[0] > 0:
            sources.add("nstat")
            ev.append(found[1])
    tunnel = ctx.tunnel(flow.sender)
    dev = tunnel.device if tunnel else "TUNNEL_DEVICE"
    cni = str(getattr(ctx.model.cni, "value", "") or "")
    fix = [f"# on {flow.sender}: stop offloading the inner checksum on its tunnel device",
           f"ethtool -K {dev} tx-checksum-ip-generic off"]
    if cni == "calico" or dev.startswith("vxlan.calico"):
        fix.append("kubectl patch felixconfiguration default --type merge -p "
                   "'{\"spec\":{\"featureDetectOverride\":\"ChecksumOffloadBroken=true\"}}'")
    elif cni == "cilium" or dev.startswith("cilium"):
        fix.append("# Cilium: run the ethtool line on every node (a DaemonSet or the node's "
                   "network setup), or switch the tunnel to GENEVE / native routing")
    else:
        fix.append("# flannel and others: run the ethtool line on every node after the CNI "
                   "creates the device (e.g. a DaemonSet)")
    if sent is not None and sent.checksum == "ok":
        fix.insert(0, f"# the checksums left {flow.sender} correct: find what rewrites packets "
                   f"between {flow.sender} and {flow.receiver} (NIC offload of the hosts "
                   "between, a middlebox); the offload switch below rules the VTEPs out")
    settings = "; ".join(s_text + r_text)
    return _Verdict("OVERLAY_CHECKSUM_OFFLOAD", flow,
                    f"{_inner(flow)}: {counted(len(flow.bad_received), 'packet')} {where}{passes}"
                    + (f"; checksum offload: {settings}" if settings else ""),
                    ev, sources, fix=fix, hosts=(flow.sender, flow.receiver),
                    key=f"checksum {flow.sender} {flow.receiver}")


# --- MTU evidence from outer fragments ---------------------------------------------------------

def _fragmented(ctx: _Context) -> list[_Verdict]:
    """Tunnelled datagrams that crossed the underlay in IP fragments."""
    out = []
    for flow in ctx.ledger.flows:
        for key, point in flow.points.items():
            if point.fragmented >= MIN_PACKETS and key.split()[0] in ("underlay-in", "path-in",
                                                                      "underlay-out"):
                out.append(_fragment_verdict(ctx, flow, key))
                break
    return out


def _fragment_verdict(ctx: _Context, flow: Flow, key: str) -> _Verdict:
    """OVERLAY_MTU_BLACKHOLE from a point where the flow's outer datagrams came in fragments:
    a warning while they are reassembled and delivered, an error when they are lost (a
    fragment missing: the decoder's fragments table says the datagram was not reassembled)."""
    point = flow.points[key]
    broken = (f"; {counted(point.unreassembled, 'datagram')} not reassembled there (a "
              "fragment lost)" if point.unreassembled else "")
    ev = [_seen(ctx, flow, key, point.last,
                f", outer datagram in fragments of up to {point.outer_largest} bytes{broken}")]
    lost = not flow.delivered
    return _Verdict(
        "OVERLAY_MTU_BLACKHOLE", flow,
        f"{counted(point.fragmented, 'tunnelled packet')} of {_inner(flow)} crossed "
        f"the underlay in IP fragments (of up to {point.outer_largest} bytes on "
        f"{point.host} {point.iface}{broken}): the underlay path MTU is below "
        "the tunnel MTU + its overhead",
        ev, {"pcap-receiver" if flow.receiver == point.host else "pcap-sender"},
        hosts=(flow.sender, flow.receiver),
        key=f"fragments {flow.sender} {flow.receiver}",
        severity=None if lost else "warning",
        severity_reason="" if lost else (
            "the fragments are reassembled and delivered: it works, at a cost, "
            "until a hop drops fragments"))


# --- findings, ladders -------------------------------------------------------------------------

def _expected_iface(ctx: _Context, flow: Flow, role: str, host: str) -> str | None:
    """The device a point would be seen on, for the points that saw nothing."""
    if role == "path-out":                  # towards the receiver's VTEP
        theirs = ctx.tunnel(flow.receiver)
        lk = lookup(ctx.fib, host, theirs.local) if theirs and theirs.local else None
        return lk.dev if lk is not None and lk.type == "unicast" else None
    host = flow.sender if role in ROLES[:3] else flow.receiver
    tunnel = ctx.tunnel(host)
    if role.startswith("vtep"):
        return tunnel.device if tunnel else None
    if role.startswith("underlay"):
        return tunnel.underlay_dev if tunnel else None
    if role.startswith("pod"):
        lk = lookup(ctx.fib, host, flow.src if role == "pod-out" else flow.dst)
        return lk.dev if lk.type == "unicast" else None
    return None


def _ladder(ctx: _Context, flow: Flow, code: str | None) -> FlowLadder:
    from diag.analyze.ledger import Point

    for key in [k for k in flow.points if k.startswith("path-in ")]:
        host = key.split()[1]
        flow.points.setdefault(f"path-out {host}", Point("path-out", host, True))
    keys = sorted(flow.points, key=lambda k: (ORDER[k.split()[0]], k))
    points = []
    for key in keys:
        p = flow.points[key]
        detail = []
        if p.vnis:
            detail.append("vni " + ",".join(str(v) for v in sorted(p.vnis)))
        if p.ports:
            detail.append("udp " + ",".join(str(v) for v in sorted(p.ports)))
        if p.checksums and flow.proto in (6, 17):
            detail.append("checksum " + ", ".join(f"{k} {n}" for k, n in
                                                   sorted(p.checksums.items())))
        if p.fragmented:
            detail.append(f"{p.fragmented} in fragments"
                          + (f" ({p.unreassembled} not reassembled)" if p.unreassembled else ""))
        points.append(FlowPoint(
            p.role, p.host, p.iface or _expected_iface(ctx, flow, p.role, p.host), p.captured,
            p.packets,
            p.first.frame if p.first else None, p.last.frame if p.last else None,
            ctx.file(p.host) if p.captured else "", "; ".join(detail)))
    loss = flow.loss_point if not flow.delivered else None
    if flow.delivered and not flow.bad_received:
        verdict = f"delivered ({flow.delivered} of {flow.journeys})"
    elif flow.bad_received:
        verdict = (f"delivered to {flow.receiver}'s pod device with bad inner checksums "
                   f"({counted(len(flow.bad_received), 'packet')})")
    elif not flow.points["pod-in"].captured:
        verdict = (f"last seen at {_role_text(loss, flow)}; {flow.receiver} not captured: not "
                   "decidable from one end")
    else:
        verdict = (f"lost after {_role_text(loss, flow)} ({sum(flow.ended.values())} of "
                   f"{counted(flow.journeys, 'packet')})")
    one_ended = not (ctx.captured(flow.sender) and ctx.captured(flow.receiver))
    return FlowLadder(_inner(flow), flow.sender, flow.receiver, tuple(points),
                      max((p.packets for p in flow.points.values()), default=0),
                      flow.delivered, loss, verdict, code, one_ended)


_ROLE_WORDS = {"pod-out": "pod side", "vtep-out": "tunnel device", "underlay-out": "underlay",
               "path-in": "way in", "path-out": "way out", "underlay-in": "underlay",
               "vtep-in": "tunnel device", "pod-in": "pod side"}


def _role_text(key: str | None, flow: Flow | None = None) -> str:
    """``underlay-out`` -> "k8s-ctr's underlay", ``path-in router`` -> "router's way in"."""
    if not key:
        return "-"
    role, _, host = key.partition(" ")
    if not host and flow is not None:
        host = flow.sender if role in ROLES[:3] else flow.receiver
    word = _ROLE_WORDS.get(role, role)
    return f"{host}'s {word}" if host else word


def _findings(ctx: _Context, verdicts: list[_Verdict], config: list[Finding]
              ) -> tuple[list[Finding], list[FlowLadder], list[_Verdict]]:
    groups: dict[tuple[str, str], list[_Verdict]] = {}
    for v in verdicts:
        groups.setdefault((v.code, v.key), []).append(v)
    findings = list(config)
    ladders: list[FlowLadder] = []
    used: list[_Verdict] = []
    for (code, _key), group in groups.items():
        if sum(_packets(v) for v in group) < MIN_PACKETS:
            continue                          # one packet is no pattern
        if not _beyond_sampling(ctx, group):
            ctx.unjudged.append(group[0])
            continue
        group.sort(key=lambda v: -_packets(v))
        lead = group[0]
        evidence = list(dict.fromkeys(e for v in group[:LADDERS_PER_FINDING] for e in v.evidence))
        sources = set().union(*(v.sources for v in group))
        hosts = tuple(sorted({h for v in group for h in v.hosts}))
        total = sum(_packets(v) for v in group)
        more = (f" (and {counted(len(group) - 1, 'more flow')} alike; {total} packets in all)"
                if len(group) > 1 else "")
        used.extend(group)
        summary = lead.locus + more
        checked = list(dict.fromkeys(c for v in group for c in v.checked))
        not_checked = list(dict.fromkeys(c for v in group for c in v.not_checked))
        note = ""
        if checked or not_checked:
            note = ("checked: " + "; ".join(checked) if checked else "") + \
                   ("; " if checked and not_checked else "") + \
                   ("not checked: " + "; ".join(not_checked) if not_checked else "")
        merged = _merge(findings, code, hosts, evidence, sources, summary,
                        upgrade=lead.severity is None)
        if merged is None:
            findings.append(Finding(code, lead.severity or default_severity(code), summary,
                                    Confidence(tuple(sorted(sources))), tuple(evidence),
                                    tuple(lead.fix), severity_reason=lead.severity_reason,
                                    note=note, hosts=hosts,
                                    subject=f"{lead.flow.src} {lead.flow.dst}"))
        ladders += [_ladder(ctx, v.flow, code) for v in group[:LADDERS_PER_FINDING]]
    return findings, ladders, used


SAMPLING_DOUBT = 0.01       # an absence counts when the captures' drops explain it this rarely


def _beyond_sampling(ctx: _Context, group: list[_Verdict]) -> bool:
    """Are the group's missing packets more than the captures' drops would hide? With each
    capture keeping a share ``r`` of the packets (tcpdump's own count), K packets that were all
    there would all be missed with probability (1 - r)^K. Bad checksums are seen, not missed:
    always judged."""
    if group[0].code == "OVERLAY_CHECKSUM_OFFLOAD":
        return True
    hosts = {h for v in group for h in (v.flow.sender, v.flow.receiver)} | {
        p.host for v in group for p in v.flow.points.values() if p.packets}
    kept = ctx.ledger.kept_of(*hosts)
    lost = sum(_packets(v) for v in group)
    return (1.0 - kept) ** lost < SAMPLING_DOUBT


def _packets(verdict: _Verdict) -> int:
    """The packets a verdict rests on: those that arrived bad, or those lost."""
    if verdict.code == "OVERLAY_CHECKSUM_OFFLOAD":
        return len(verdict.flow.bad_received)
    if verdict.key.startswith("fragments"):
        return max(p.fragmented for p in verdict.flow.points.values())
    return sum(verdict.flow.ended.values())


def _merge(findings: list[Finding], code: str, hosts: tuple[str, ...], evidence: list[Evidence],
           sources: set[str], summary: str, upgrade: bool = True) -> Finding | None:
    """Extend the configuration finding of the same code and hosts with the ledger's packets."""
    for i, f in enumerate(findings):
        if f.code != code or not set(f.hosts) & set(hosts):
            continue
        kept = set(f.confidence.sources)
        if "pcap" in kept and sources & {"pcap-sender", "pcap-receiver"}:
            kept.discard("pcap")            # the same captures, now read from both ends
        merged = replace(f, confidence=Confidence(tuple(sorted(kept | sources))),
                         evidence=tuple(dict.fromkeys(list(f.evidence) + evidence)),
                         note=(f.note + " " if f.note else "") + f"Packets: {summary}.")
        if upgrade and default_severity(code) == "error" and merged.severity != "error":
            merged = replace(merged, severity="error", severity_reason=(
                "the captures show packets lost to it: " + summary))
        findings[i] = merged
        return merged
    return None


def analyze(tables, model, fib: Fib, config: list[Finding]
            ) -> tuple[list[Finding], list[Check], list[FlowLadder]]:
    if model is None or not any(t.device != "(wire)" for t in model.tunnels):
        return list(config), [], []
    ledger = build_ledger(tables, model)
    if not ledger.captured:
        return list(config), [Check(CHECK_FLOWS, None, needs="captures on the nodes at both "
                                    "ends: diag collect --capture 10s NODE...")], []
    ctx = _Context(tables, model, fib, ledger)
    verdicts = [v for v in (_classify(ctx, f) for f in ledger.flows) if v is not None]
    judged = {id(v.flow) for v in verdicts if v.code == "OVERLAY_MTU_BLACKHOLE"}
    verdicts += [v for v in _fragmented(ctx) if id(v.flow) not in judged]
    findings, ladders, used = _findings(ctx, verdicts, config)
    checks = _checks(ctx, used)
    return findings, checks, ladders


def _answered(ledger: Ledger, flow: Flow) -> bool:
    """The answers to ``flow`` (echo replies, the other half of a TCP connection) reached its
    sender's pod: the flow gets through even where the other end was not captured."""
    back = ledger.reverse(flow)
    return back is not None and back.delivered > 0


def _checks(ctx: _Context, verdicts: list[_Verdict]) -> list[Check]:
    ledger = ctx.ledger
    judged = [f for f in ledger.flows if f.journeys]
    packets = sum(f.journeys for f in judged)
    delivered = [f for f in judged if f.delivered]
    explained = {id(v.flow) for v in verdicts}
    broken = [f for f in judged if f.broken and id(f) not in explained]
    one_ended: dict[tuple[str, str], list[Flow]] = {}
    for f in judged:
        if id(f) in explained or f.delivered or f.points["pod-in"].captured or \
                _answered(ledger, f) or _last_on(f, (f.sender,)) is None:
            continue
        one_ended.setdefault((f.sender, f.receiver), []).append(f)
    detail = (f"{counted(len(judged), 'tunnelled flow')}, {counted(packets, 'packet')} "
              f"followed across {counted(len(ledger.captured), 'capture')}; "
              f"{counted(len(delivered), 'flow')} delivered")
    lossy = [f for f in delivered if f.ended]
    if lossy:
        detail += (f"; {len(lossy)} lost some packets (not judged: captures drop packets under "
                   "load)")
    if broken:
        detail += (f"; {counted(len(broken), 'flow')} not seen through while others of their kind "
                   "were, or on too few packets (not judged: sampling) ("
                   + ", ".join(f"{f.sender} -> {f.receiver} lost after "
                               f"{_role_text(f.loss_point, f)}"
                               for f in broken[:3]) + ")")
    if ctx.unjudged:
        detail += ("; not judged, the captures dropped too many packets to tell: "
                   + ", ".join(f"{v.flow.sender} -> {v.flow.receiver} ({v.code})"
                               for v in ctx.unjudged[:3]))
    if ledger.notes:
        detail += "; " + "; ".join(ledger.notes)
    checks = [Check(CHECK_FLOWS, not verdicts, detail)]
    for (sender, receiver), flows in sorted(one_ended.items()):
        if sum(f.journeys for f in flows) < MIN_PACKETS:
            continue
        flows.sort(key=lambda f: -f.journeys)
        key, sight = _last_on(flows[0], (sender,))
        checks.append(Check(
            f"where {counted(len(flows), 'tunnelled flow')} {sender} -> {receiver} die "
            f"(e.g. {_inner(flows[0])})", None,
            needs=(f"a capture on {receiver} too: from {sender}'s end the packets leave "
                   f"({_role_text(key, flows[0])} {sight.iface}, frame {sight.frame}) and "
                   "nothing comes "
                   f"back; the path, {receiver}'s input, its VTEP or its pod: not decidable from "
                   "one end (diag collect --capture on both nodes)")))
    return checks


__all__ = ["analyze"]
