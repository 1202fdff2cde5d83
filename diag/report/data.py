"""What a report shows besides the findings: records read from the bundle and the facts.

Contract: :func:`gather(facts, bundle, explain_doc) -> ReportData`. ``facts`` is a
:class:`diag.facts.Facts`, ``bundle`` a verified :class:`diag.bundle.Bundle` (None for a bare
capture, whose path is ``facts.source``), ``explain_doc`` the dict ``diag explain --format json``
prints. No analysis here: the routing rows to highlight come only from the explain document's
evidence pointers (``file`` + JSON pointer ``/N``); everything else is copied from the manifest,
the ``ip -j route`` outputs, the facts tables and the model; the tunnelled flows' ladders are
explain's ``flows`` (the overlay ledger's, never recomputed). Records are frozen dataclasses
of plain values, so the renderers (``html.py``, ``markdown.py``, ``jsondoc.py``) are pure
functions.
"""
from __future__ import annotations

import ipaddress
import json
import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from diag.bundle import load_json, source_sha256
from diag.report.safe import utc_text
from diag.report.timeline import Timeline, build_timeline

ROUTE_COMMANDS = ("ip-route-v4", "ip-route-v6")   # `ip -j route show table all` outputs
# above this many hosts only the hosts a finding points into get their routing rows (the others a
# one-line summary), so the file stays small on big bundles
ROUTE_DETAIL_MAX_HOSTS = 40
ROUTE_ROWS_PER_HOST = 200
_INDEX_POINTER = re.compile(r"^/(\d+)(?:/|$)")


@dataclass(frozen=True)
class CommandRecord:
    host: str
    id: str
    argv: str
    outcome: str
    exit_code: int | None
    duration_s: float | None
    bytes: int | None
    truncated: bool
    stderr: str                 # first line only


@dataclass(frozen=True)
class HostRecord:
    name: str
    role: str | None
    node_ip: str | None
    asn: Any
    pod_cidr: str | None
    cluster_iface: str | None
    reachability: str | None
    error: str | None
    addresses: tuple[tuple[str, str], ...] = ()     # (ifname, address/prefixlen)


@dataclass(frozen=True)
class Subnet:
    network: str
    members: tuple[tuple[str, str, str], ...]        # (host, ifname, address)


@dataclass(frozen=True)
class Session:
    a: str                  # host name (or "peer ADDR" when the peer is not collected)
    b: str
    state: str              # the worse of both ends' states (closed vocabulary of docs/facts.md)
    detail: str             # who said what, one line


@dataclass(frozen=True)
class TunnelLink:
    host: str
    device: str
    kind: str
    vni: Any
    port: Any
    local: str | None
    remote: str             # remote VTEP address
    remote_host: str | None


@dataclass(frozen=True)
class Topology:
    hosts: tuple[HostRecord, ...]
    subnets: tuple[Subnet, ...]
    sessions: tuple[Session, ...]
    tunnels: tuple[TunnelLink, ...]
    source: str             # "bundle" (hosts' own state) or "wire" (endpoints seen in a capture)


@dataclass(frozen=True)
class RouteRow:
    index: int
    route: dict[str, Any]
    marks: tuple[str, ...]  # finding labels pointing at this row ("#1 ROUTE_RIB_NOT_IN_FIB")


@dataclass(frozen=True)
class RouteTable:
    host: str
    file: str
    total: int
    rows: tuple[RouteRow, ...]    # shown rows (highlighted first kept, then the head)
    error: str | None = None

    @property
    def highlighted(self) -> tuple[RouteRow, ...]:
        return tuple(r for r in self.rows if r.marks)


@dataclass(frozen=True)
class ArpUnanswered:
    target: str
    requesters: tuple[str, ...]
    requests: int
    unanswered: int
    replies: int
    first_ts: float
    last_ts: float
    hosts: tuple[str, ...]
    frames: tuple[str, ...]       # "host frame N" of the first unanswered requests
    unverified: str = ""          # why no capture of it could see replies to the asker


@dataclass(frozen=True)
class LadderPoint:
    role: str                     # pod-out, vtep-out, underlay-out, path-in/out, ...-in
    host: str
    iface: str | None
    captured: bool
    packets: int
    first_frame: int | None
    last_frame: int | None
    file: str
    detail: str


@dataclass(frozen=True)
class Ladder:
    """One tunnelled flow as explain's overlay ledger followed it (explain's ``flows``)."""

    flow: str
    sender: str
    receiver: str
    points: tuple[LadderPoint, ...]
    sent: int
    delivered: int
    lost_after: str | None        # "path-in router", "underlay-out", ... or None
    verdict: str
    code: str | None
    finding: int | None           # rank of the finding it backs (1-based), None if none
    one_ended: bool


@dataclass(frozen=True)
class ReportData:
    source: str
    kind: str                     # bundle | capture
    generated: str                # UTC ISO time of this report
    diag_version: str
    source_sha256: str | None     # the archive / capture file / manifest.json
    bundle_diag_version: str | None
    started: str | None
    finished: str | None
    status: str | None
    partial_reasons: tuple[str, ...]
    failed_hosts: tuple[tuple[str, str, str], ...]          # (host, reachability, error)
    failed_commands: tuple[CommandRecord, ...]
    problems: tuple[dict[str, str], ...]
    parse_errors: tuple[dict[str, str], ...]
    topology: Topology
    timeline: Timeline
    routes: tuple[RouteTable, ...]
    route_summary: tuple[tuple[str, int], ...]              # (host, rows) not shown in detail
    arp_unanswered: tuple[ArpUnanswered, ...]
    commands: tuple[CommandRecord, ...]
    missing: tuple[str, ...] = field(default_factory=tuple)  # what this source cannot show
    ladders: tuple[Ladder, ...] = field(default_factory=tuple)   # flows behind overlay findings
    arp_reply_window: float | None = None   # seconds: the one ARP rule's window (the facts say)


def gather(facts, bundle, explain_doc: dict[str, Any],
           captures: list[tuple[str, Path]] | None = None) -> ReportData:
    from diag import __version__

    manifest = bundle.manifest if bundle is not None else {}
    commands = _commands(manifest)
    if captures is None:
        captures = bundle.captures(present_only=True) if bundle is not None \
            else [("capture", Path(facts.source))]
    timeline = build_timeline(facts.tables, captures)
    hosts_meta = manifest.get("hosts", {}) if isinstance(manifest.get("hosts"), dict) else {}
    failed_hosts = tuple((h, str(rec.get("reachability")), str(rec.get("error") or ""))
                         for h, rec in hosts_meta.items() if isinstance(rec, dict)
                         and (rec.get("reachability") != "OK" or rec.get("lost")
                              or rec.get("deadline") or rec.get("interrupted")))
    if bundle is not None:
        topology = _topology(facts)
        routes, summary = _route_tables(bundle, facts, explain_doc)
        missing: tuple[str, ...] = ()
        if not captures:
            missing = ("no capture in this bundle: no BGP timeline, no ARP from the wire "
                       "(collect with `diag collect --capture 20s ...`)",)
    else:
        topology = _wire_topology(facts, timeline)
        routes, summary = (), ()
        missing = ("a bare capture: no routing tables, no daemon or kernel state, no command "
                   "appendix; the topology shows only endpoints seen on the wire "
                   "(collect a bundle with `diag collect --capture 20s HOST...` for the rest)",)
    errors = facts.parse_errors
    parse_errors = tuple({k: str(v) for k, v in row.items()}
                         for row in errors.to_dict("records")) if len(errors) else ()
    return ReportData(
        source=str(facts.source), kind=facts.kind,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        diag_version=__version__,
        source_sha256=(explain_doc.get("bundle") or {}).get("sha256")
        or source_sha256(Path(facts.source)),
        bundle_diag_version=manifest.get("diag_version"),
        # a bare capture was "collected" over the span of its packets
        started=manifest.get("started") if bundle is not None else _iso(timeline.t0),
        finished=manifest.get("finished") if bundle is not None else _iso(timeline.t1),
        status=manifest.get("status") if bundle is not None else "capture",
        partial_reasons=tuple(manifest.get("partial_reasons") or ()),
        failed_hosts=failed_hosts,
        failed_commands=tuple(c for c in commands if c.outcome != "OK"),
        problems=tuple(facts.problems), parse_errors=parse_errors,
        topology=topology, timeline=timeline, routes=routes, route_summary=summary,
        arp_unanswered=_arp_unanswered(facts.tables.get("arp")),
        arp_reply_window=(facts.tables["arp"].attrs.get("reply_window")
                          if facts.tables.get("arp") is not None else None),
        commands=commands, missing=missing, ladders=_ladders(explain_doc))


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return utc_text(ts, "%Y-%m-%dT%H:%M:%S.%fZ", cut=0)


def _commands(manifest: dict[str, Any]) -> tuple[CommandRecord, ...]:
    out = []
    for host, rec in (manifest.get("hosts") or {}).items():
        if not isinstance(rec, dict):
            continue
        for cmd in rec.get("commands") or []:
            if not isinstance(cmd, dict):
                continue
            argv = cmd.get("argv")
            text = shlex.join(str(a) for a in argv) if isinstance(argv, list) else str(argv or "")
            stderr = str(cmd.get("stderr") or "").strip().splitlines()
            out.append(CommandRecord(
                host=str(host), id=str(cmd.get("id", "")), argv=text,
                outcome=str(cmd.get("outcome", "")), exit_code=_int(cmd.get("exit_code")),
                duration_s=_float(cmd.get("duration_s")), bytes=_int(cmd.get("bytes")),
                truncated=bool(cmd.get("truncated")), stderr=stderr[0] if stderr else ""))
    return tuple(out)


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _value(inferred) -> Any:
    return getattr(inferred, "value", None)


# --- topology ---------------------------------------------------------------------------------

def _topology(facts) -> Topology:
    model, tables = facts.model, facts.tables
    addresses = tables["addresses"]
    addr_rows = addresses[(addresses["family"] == "inet") & (addresses["scope"] == "global")] \
        if len(addresses) else addresses
    owner: dict[str, str] = {}
    per_host: dict[str, list[tuple[str, str]]] = {}
    for row in addr_rows.itertuples(index=False):
        owner.setdefault(str(row.address), str(row.host))
        per_host.setdefault(str(row.host), []).append((str(row.ifname),
                                                      f"{row.address}/{row.prefixlen}"))
    pod_nets = _pod_networks(model)
    subnets: dict[str, list[tuple[str, str, str]]] = {}
    for row in addr_rows.itertuples(index=False):
        try:
            net = ipaddress.ip_network(str(row.network), strict=False)
        except ValueError:
            continue
        if net.prefixlen >= 31 or any(net.subnet_of(p) for p in pod_nets
                                      if p.version == net.version):
            continue
        subnets.setdefault(str(net), []).append((str(row.host), str(row.ifname), str(row.address)))
    meta = (facts.bundle or {}).get("hosts") or {}
    hosts = []
    for name in sorted(model.hosts, key=lambda h: (_role_order(_value(model.hosts[h].role)), h)):
        hm = model.hosts[name]
        m = meta.get(name) or {}
        hosts.append(HostRecord(
            name=name, role=_value(hm.role), node_ip=_value(hm.node_ip), asn=_value(hm.asn),
            pod_cidr=_value(hm.pod_cidr), cluster_iface=_value(hm.cluster_iface),
            reachability=m.get("reachability"), error=m.get("error"),
            addresses=tuple(a for a in per_host.get(name, ()) if not a[1].endswith("/32"))))
    sessions = _sessions(tables["bgp_peers"], owner)
    tunnels = tuple(TunnelLink(t.host, t.device, t.kind, t.vni, t.port, t.local, r, owner.get(r))
                    for t in model.tunnels for r in t.remotes)
    return Topology(tuple(hosts), tuple(Subnet(n, tuple(m)) for n, m in sorted(subnets.items())),
                    sessions, tunnels, "bundle")


def _role_order(role) -> int:
    return {"router": 0, "node": 1}.get(role, 2)


def _pod_networks(model) -> list:
    nets = []
    for value in [_value(model.pod_range)] + [_value(h.pod_cidr) for h in model.hosts.values()]:
        if value:
            try:
                nets.append(ipaddress.ip_network(str(value), strict=False))
            except ValueError:
                pass
    return nets


STATE_ORDER = ("ESTABLISHED", "OPENCONFIRM", "OPENSENT", "UNKNOWN", "CONNECT", "ACTIVE", "IDLE")


def _sessions(peers, owner: dict[str, str]) -> tuple[Session, ...]:
    pairs: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for row in peers.itertuples(index=False) if len(peers) else ():
        host, peer = str(row.host), str(row.peer)
        other = owner.get(peer, f"peer {peer}")
        key = tuple(sorted((host, other)))
        state = str(row.state) if row.state in STATE_ORDER else "UNKNOWN"
        pairs.setdefault(key, []).append((host, state, str(row.daemon)))
    out = []
    for (a, b), views in sorted(pairs.items()):
        worst = max((s for _h, s, _d in views), key=STATE_ORDER.index)
        detail = "; ".join(f"{h} ({d}) sees {s}" for h, s, d in views)
        out.append(Session(a, b, worst, detail))
    return tuple(out)


def _wire_topology(facts, timeline: Timeline) -> Topology:
    hosts: dict[str, HostRecord] = {}
    sessions = []
    for lane in timeline.lanes:
        for addr in (lane.a, lane.b):
            hosts.setdefault(addr, HostRecord(addr, "speaker", addr, None, None, None, None, None,
                                              (("", addr),)))
        sessions.append(Session(lane.a, lane.b, lane.state, f"seen on the wire: {lane.summary}"))
    tunnels = []
    wire = facts.tables.get("wire_tunnels")
    if wire is not None and len(wire):
        seen = set()
        for row in wire.itertuples(index=False):
            key = (str(row.outer_src), str(row.outer_dst), row.vni, row.outer_dport)
            if key in seen:
                continue
            seen.add(key)
            for addr in key[:2]:
                hosts.setdefault(addr, HostRecord(addr, "VTEP", addr, None, None, None, None,
                                                  None, (("", addr),)))
            tunnels.append(TunnelLink(key[0], "(wire)", str(row.type), _plain(row.vni),
                                      _plain(row.outer_dport), key[0], key[1], key[1]))
    return Topology(tuple(hosts.values()), (), tuple(sessions), tuple(tunnels), "wire")


def _plain(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


# --- routing tables ----------------------------------------------------------------------------

def side_by_side(evidence: list[dict[str, Any]]) -> list[tuple[dict | None, dict | None]]:
    """A finding's evidence as (object, state) rows: the objects it cites (``role``
    ``intent``) beside the state that shows their effect, in the finding's order; [] for a
    finding that cites no object (the report then shows its evidence table alone)."""
    from itertools import zip_longest

    intent = [e for e in evidence if e.get("role") == "intent"]
    if not intent:
        return []
    state = [e for e in evidence if e.get("role") != "intent"]
    return list(zip_longest(intent, state))


def highlighted_pointers(explain_doc: dict[str, Any]) -> dict[str, dict[int, list[str]]]:
    """file -> {row index -> finding labels}, from the findings' evidence JSON pointers only."""
    out: dict[str, dict[int, list[str]]] = {}
    for rank, finding in enumerate(explain_doc.get("findings") or [], 1):
        for ev in finding.get("evidence") or []:
            match = _INDEX_POINTER.match(str(ev.get("pointer") or ""))
            if match and ev.get("file"):
                label = f"#{rank} {finding.get('code')}"
                labels = out.setdefault(str(ev["file"]), {}).setdefault(int(match.group(1)), [])
                if label not in labels:
                    labels.append(label)
    return out


def _route_tables(bundle, facts, explain_doc) -> tuple[tuple[RouteTable, ...],
                                                       tuple[tuple[str, int], ...]]:
    marks = highlighted_pointers(explain_doc)
    files = [(host, cmd) for host, cmd in bundle.commands()
             if isinstance(cmd, dict) and cmd.get("id") in ROUTE_COMMANDS and cmd.get("path")]
    hosts = sorted({h for h, _ in files})
    detail_hosts = set(hosts) if len(hosts) <= ROUTE_DETAIL_MAX_HOSTS else \
        {h for h, c in files if str(c["path"]) in marks}
    tables, summary = [], []
    # outputs the facts refused (damaged, junk, past a limit) are shown as such, not read again
    refused = {str(row.path): str(row.reason) for row in facts.parse_errors.itertuples()
               if row.path is not None}
    routes = facts.tables.get("routes")
    counts = routes.groupby("host").size().to_dict() if routes is not None and len(routes) else {}
    for host, cmd in sorted(files, key=lambda hc: (hc[0], hc[1]["id"])):
        if host not in detail_hosts:
            continue
        if str(cmd["path"]) in refused:
            tables.append(RouteTable(host, str(cmd["path"]), 0, (),
                                     f"not read: {refused[str(cmd['path'])]}"))
            continue
        tables.append(_route_table(bundle, host, cmd, marks.get(str(cmd["path"]), {})))
    summary = [(h, int(counts.get(h, 0))) for h in hosts if h not in detail_hosts]
    return tuple(tables), tuple(summary)


def _route_table(bundle, host: str, cmd: dict, marks: dict[int, list[str]]) -> RouteTable:
    path = str(cmd["path"])
    if cmd.get("outcome") != "OK":
        return RouteTable(host, path, 0, (), f"command {cmd.get('outcome')}")
    try:
        routes = load_json(bundle.read(path) or b"[]")     # depth-limited: evidence
    except (OSError, ValueError) as err:
        return RouteTable(host, path, 0, (), f"not readable as JSON: {err}")
    if not isinstance(routes, list):
        return RouteTable(host, path, 0, (), "not a JSON list")
    shown = sorted(set(range(min(len(routes), ROUTE_ROWS_PER_HOST)))
                   | {i for i in marks if 0 <= i < len(routes)})
    rows = tuple(RouteRow(i, routes[i] if isinstance(routes[i], dict) else {"dst": routes[i]},
                          tuple(marks.get(i, ()))) for i in shown)
    return RouteTable(host, path, len(routes), rows)


# --- tunnelled flows -------------------------------------------------------------------------

def _ladders(explain_doc: dict[str, Any]) -> tuple[Ladder, ...]:
    """explain's ``flows`` (the overlay ledger's ladders) as records, each with the rank of the
    finding it backs."""
    ranks: dict[str, int] = {}
    for rank, finding in enumerate(explain_doc.get("findings") or [], 1):
        ranks.setdefault(str(finding.get("code")), rank)
    out = []
    for flow in explain_doc.get("flows") or []:
        if not isinstance(flow, dict):
            continue
        points = tuple(LadderPoint(
            str(p.get("role")), str(p.get("host")), p.get("iface"), bool(p.get("captured")),
            _int(p.get("packets")) or 0, _int(p.get("first_frame")), _int(p.get("last_frame")),
            str(p.get("file") or ""), str(p.get("detail") or ""))
            for p in flow.get("points") or [] if isinstance(p, dict))
        code = flow.get("code")
        out.append(Ladder(str(flow.get("flow")), str(flow.get("sender")),
                          str(flow.get("receiver")), points, _int(flow.get("sent")) or 0,
                          _int(flow.get("delivered")) or 0, flow.get("lost_after"),
                          str(flow.get("verdict") or ""), code,
                          ranks.get(str(code)) if code else None,
                          bool(flow.get("one_ended"))))
    return tuple(out)


# --- ARP ---------------------------------------------------------------------------------------

def _arp_unanswered(arp) -> tuple[ArpUnanswered, ...]:
    """The requests the one ARP rule called unanswered (the facts' ``answered`` column), grouped
    per target address; copies of a request (``copy_of``: other interfaces, encapsulated) count
    once. Several hosts capture the same broadcast: counts are those of the capture that could
    see the replies (the rule's ``blind`` column empty) and saw the most, hosts are all."""
    if arp is None or not len(arp) or "answered" not in arp:
        return ()
    rows = arp.to_dict("records")
    replies: dict[tuple[str, str, str], int] = {}      # (host, replier, asker) -> replies
    for r in rows:
        if r.get("op") == "reply":
            key = (str(r["host"]), str(r["sender_ip"]), str(r["target_ip"]))
            replies[key] = replies.get(key, 0) + 1
    per_capture: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if r.get("answered") not in (True, False):
            continue                     # not a question (gratuitous, probe, unreadable)
        if r.get("copy_of") is not None and r.get("copy_of") == r.get("copy_of"):
            continue                     # a copy of a request already counted
        target, asker = str(r["target_ip"]), str(r["sender_ip"])
        host, ts = str(r["host"]), float(r["ts"])
        g = per_capture.setdefault((target, host), {"askers": set(), "requests": 0,
                                                    "unanswered": 0, "first": ts, "last": ts,
                                                    "frames": [], "blind": []})
        g["requests"] += 1
        g["first"], g["last"] = min(g["first"], ts), max(g["last"], ts)
        if r["answered"] is False:
            g["unanswered"] += 1
            g["askers"].add(asker)
            blind = r.get("blind")
            g["blind"].append(blind if isinstance(blind, str) else "")
            if len(g["frames"]) < 4:
                g["frames"].append(f"{host} frame {r['frame']}")
    targets = sorted({t for t, _h in per_capture})
    out = []
    for target in targets:
        caps = {h: g for (t, h), g in per_capture.items() if t == target and g["unanswered"]}
        if not caps:
            continue
        best = max(caps.values(), key=lambda g: (not all(g["blind"]), g["unanswered"],
                                                   g["requests"]))
        n_replies = max((n for (_h, s, _a), n in replies.items() if s == target), default=0)
        out.append(ArpUnanswered(
            target, tuple(sorted({a for g in caps.values() for a in g["askers"]})),
            best["requests"], best["unanswered"], n_replies,
            min(g["first"] for g in caps.values()), max(g["last"] for g in caps.values()),
            tuple(sorted(caps)), tuple(f for h in sorted(caps) for f in caps[h]["frames"]),
            best["blind"][0] if all(best["blind"]) else ""))
    return tuple(sorted(out, key=lambda a: (-a.unanswered, a.target)))
