"""Routing analyzers: does each host's kernel send cluster traffic where the cluster expects it?

Contract: :func:`analyze(tables, model, fib) -> (findings, checks)`; pure, no I/O. For every
node and every other node's pod CIDR (from the cluster model, never constants) the FIB walk
(:mod:`diag.analyze.trace`) decides where a packet for that CIDR goes, and for every host every
best path its BGP daemon holds is compared with what the kernel does. Codes:

- ``ROUTE_WRONG_TABLE_OR_BLACKHOLE``: the walk drops the packet at a blackhole/unreachable/prohibit
  route (not the node's own pod block), or the prefix sits only in a table no ``ip rule`` looks up
  while the walk leaks or finds nothing. Root cause: ranks first.
- ``ROUTE_RIB_NOT_IN_FIB``: a daemon's best path is not in the kernel. ``info`` when a covering
  route sends the traffic the same way (or by an overlay device: Cilium by design), ``error`` when
  the kernel drops it or sends it out the default-route NIC; the finding says which.
- ``ROUTE_MISSING_PODCIDR_OFF_LINK``: the autoDirectNodeRoutes pattern — some node routes an
  on-link peer's pod CIDR directly to the peer's node IP (no daemon put it there), and this node
  lacks the pod CIDRs of nodes off its subnet, held by no daemon.
- ``EGRESS_LEAK_DEFAULT_ROUTE``: a pod CIDR goes out the default-route NIC, not the cluster NIC.
  When one of the codes above explains the same host and prefix, the leak names it (``caused_by``).

At scale (500 hosts x 5,000 routes) the checks are joins first: "installed as the daemon has
it" is one join of (host, prefix, next hop) codes over the daemons' and the kernel's tables, and
the node x node sweeps ask :func:`~diag.analyze.trace.quick_route` first; only the pairs and
paths these cheap checks flag get the full walk, the evidence and the finding.

Confidence sources: ``ip`` (the FIB walk over ip route/rule), ``route-get`` (a collected
``ip route get`` probe inside the prefix that agrees), the daemon (``gobgp``/``frr``/``bird``/...)
holding or lacking the prefix, ``peers`` (other nodes route it by their cluster NIC), ``pcap``
(packets to the prefix seen on the default-route NIC).
"""
from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from diag.analyze.catalog import default_severity
from diag.analyze.fib import FEW, Fib
from diag.analyze.lookup import (DROP_TYPES, Lookup, address_value, lookup, quick_route,
                                 quick_route_list, routes_for)
from diag.model import Check, Confidence, Evidence, Finding
from diag.values import column_objects

DAEMON_PROTOCOLS = ("bgp", "bird", "zebra", "gobgp", "ospf", "isis", "babel", "186", "12")
OVERLAY_KINDS = ("vxlan", "geneve")


@dataclass(frozen=True)
class Ctx:
    tables: object
    model: object
    fib: Fib
    learned: dict = field(default_factory=dict)     # host -> its daemon's learned best paths
    raw: dict = field(default_factory=dict)          # host -> learned best-path rows (no evidence)
    used_tables: dict = field(default_factory=dict)  # host -> tables its ip rules look up
    peers: Any = None          # (ctx, host, prefix, owner) -> _peers_route_it's answer, or None

    def file(self, host: str, source: str) -> str:
        return self.fib.outputs.path(host, source)


@functools.lru_cache(maxsize=1 << 16)
def _probe(prefix: str) -> str:
    net = ipaddress.ip_network(prefix, strict=False)
    return str(net.network_address + (1 if net.num_addresses > 2 else 0))


@functools.lru_cache(maxsize=1 << 16)
def _network(prefix: str):
    return ipaddress.ip_network(prefix, strict=False)


def _pointer_token(text: str) -> str:
    return text.replace("~", "~0").replace("/", "~1")


def _daemon_paths(ctx: Ctx, host: str):
    """Best paths in the host's daemon RIB that it learned (not originated): (prefix, nexthop,
    daemon, evidence). Computed once per host (the analyzers ask for every pair of nodes)."""
    cached = ctx.learned.get(host)
    if cached is None:
        cached = ctx.learned[host] = _daemon_paths_uncached(ctx, host)
    return cached


def _daemon_rows(ctx: Ctx, host: str) -> list[tuple[str, str, str, str, str]]:
    """(prefix, nexthop, daemon, source, as_path) of the host's learned IPv4 best paths, made
    for one host when asked (a bundle holds millions; most hosts are only checked column-wise
    by :func:`_unproven_rows`)."""
    learned = _learned(ctx)
    if host not in ctx.raw:
        ctx.raw[host] = [learned.row(i) for i in learned.rows_of.get(host, ())]
    return ctx.raw[host]


class _Learned:
    """The learned IPv4 best paths of every host's daemon (loc RIB, best, not originated), as
    columns, with each row's verdict "installed as the daemon has it" from one join."""

    def __init__(self, ctx: Ctx) -> None:
        import numpy as np
        import pandas as pd

        df = ctx.tables["bgp_paths"]
        self.rows_of: dict[str, Any] = {}
        self.unproven_of: dict[str, list[int]] = {}
        if df.empty:
            return
        # row numbers, not a copy of the columns (2.5 million paths at 500 x 5,000)
        # (int32 codes: these arrays live through the analysis, millions of rows each)
        index = np.flatnonzero(((df["rib"] == "loc") & (df["best"] == True)           # noqa: E712
                                & (df["local"] != True)).to_numpy(dtype=bool)          # noqa: E712
                               ).astype(np.int32)
        prefix_codes, prefix_names = pd.factorize(df["prefix"].to_numpy(dtype=object)[index],
                                                  size_hint=FEW)
        prefix_codes = prefix_codes.astype(np.int32)
        v6 = np.array([":" in str(p) for p in prefix_names.tolist()] + [False], dtype=bool)
        if v6.any():
            keep = ~v6[prefix_codes]
            index, prefix_codes = index[keep], prefix_codes[keep]
        self.df, self.index = df, index
        codes, names = pd.factorize(df["host"])
        codes = codes.astype(np.int32)[index]
        names = [str(h) for h in names]
        order = np.argsort(codes, kind="stable").astype(np.int32)
        sorted_codes = codes[order]
        cuts = np.flatnonzero(np.diff(sorted_codes)) + 1
        for lo, hi in zip([0] + cuts.tolist(), cuts.tolist() + [len(order)]):
            if hi > lo:
                self.rows_of[names[sorted_codes[lo]]] = order[lo:hi]
        proven = _proven_installed(ctx, {"host_codes": codes, "host_names": names,
                                         "prefix_codes": prefix_codes,
                                         "prefix_names": prefix_names.tolist(),
                                         "nexthop": df["nexthop"].to_numpy(dtype=object)[index]})
        for i in np.flatnonzero(~proven).tolist():
            self.unproven_of.setdefault(names[codes[i]], []).append(i)

    def row(self, i: int) -> tuple[str, str, str, str, str]:
        df, at = self.df, int(self.index[i])
        value = {c: df[c].iat[at] for c in ("prefix", "nexthop", "daemon", "source",
                                             "as_path_str")}
        return (str(value["prefix"]), str(value["nexthop"]), str(value["daemon"]),
                str(value["source"]), value["as_path_str"])


def _learned(ctx: Ctx) -> _Learned:
    if "learned" not in ctx.used_tables:
        ctx.used_tables["learned"] = _Learned(ctx)
    return ctx.used_tables["learned"]


def _unproven_rows(ctx: Ctx, host: str) -> list[tuple[str, str, str, str, str]]:
    """The host's learned best paths minus those a table join proves installed (same prefix
    text and next hop in a table an ip rule looks up; a local next hop with any route of the
    prefix). What is left goes through :func:`_installed` (ECMP, other spellings): at 2.5
    million paths the join is a second where a Python loop per path was minutes."""
    learned = _learned(ctx)
    return [learned.row(i) for i in learned.unproven_of.get(host, ())]


def _on_left(left_names: list, right_codes, right_names: list):
    """A right-hand factorization (codes into ``right_names``, -1 missing) in the left one's
    code space: a value the left holds gets its code, a missing one stays -1, any other is -2
    (it matches nothing on the left). Joining the few distinct values, not factorizing two
    columns of millions of cells concatenated; the keys then span only the left's values."""
    import numpy as np

    left = {v: k for k, v in enumerate(left_names)}
    mapping = np.array([left.get(v, -2) for v in right_names] + [-1], dtype=np.int64)
    return mapping[right_codes]


def _table_codes(values):
    """(codes, names) of the routes' table column as ``str`` (as ``.astype(str)`` did)."""
    import numpy as np
    import pandas as pd

    codes, names = pd.factorize(values, size_hint=FEW)
    names = names.tolist()
    if (codes < 0).any() or not all(type(t) is str for t in names):
        codes, names = pd.factorize(np.array([str(t) for t in values], dtype=object),
                                    size_hint=FEW)
        names = names.tolist()
    return codes, names


def _proven_installed(ctx: Ctx, learned: dict) -> Any:
    """Per learned row: the kernel holds (host, prefix, next hop) — gateway equal to the next
    hop — or, for a local next hop (0.0.0.0 or empty), any unicast route of (host, prefix),
    in a table the host's ip rules look up (``main`` when it has none). One join over integer
    codes (hosts, prefix texts and next hops factorized together), no Python per row."""
    import numpy as np
    import pandas as pd

    routes, rules = ctx.tables["routes"], ctx.tables["rules"]
    n = len(learned["host_codes"])
    if routes.empty or n == 0:
        return np.zeros(n, dtype=bool)
    at = np.flatnonzero(((routes["family"] == "inet") & (routes["type"] == "unicast")
                         & ((routes["phase"] == "main") if "phase" in routes else True))
                        .to_numpy(dtype=bool))
    used = rules[((rules["family"] == "inet") & (rules["action"] == "lookup"))
                 .to_numpy(dtype=bool)]
    l_host = learned["host_codes"]
    host_index = {h: k for k, h in enumerate(learned["host_names"])}
    r_codes, r_names = pd.factorize(routes["host"])
    for h in r_names:
        host_index.setdefault(str(h), len(host_index))
    r_host = np.array([host_index[str(h)] for h in r_names], dtype=np.int64)[r_codes[at]]
    del r_codes           # (millions of rows: each temporary is freed as soon as it is used)
    t_codes, t_names = _table_codes(routes["table"].to_numpy(dtype=object)[at])
    t_index = {t: k for k, t in enumerate(t_names)}
    width = len(t_names) + 1
    allowed = np.zeros(len(host_index) * width, dtype=bool)
    with_rules = set()
    for h, t in zip(column_objects(used["host"]), column_objects(used["table"])):
        with_rules.add(str(h))
        if str(h) in host_index and str(t) in t_index:
            allowed[host_index[str(h)] * width + t_index[str(t)]] = True
    for h, k in host_index.items():
        if h not in with_rules and "main" in t_index:
            allowed[k * width + t_index["main"]] = True
    in_used = allowed[r_host * width + t_codes]
    del t_codes
    at, r_host = at[in_used], r_host[in_used]
    del in_used
    dst_codes, dst_names = pd.factorize(routes["dst"].to_numpy(dtype=object)[at],
                                        size_hint=FEW)
    r_prefix = _on_left(learned["prefix_names"], dst_codes, dst_names.tolist())
    del dst_codes
    known = r_prefix > -2          # the routes of prefixes some daemon holds
    at, r_host, r_prefix = at[known], r_host[known], r_prefix[known]
    del known
    nexthop_codes, nexthop_names = pd.factorize(learned["nexthop"], size_hint=FEW)
    gateway_codes, gateway_names = pd.factorize(routes["gateway"].to_numpy(dtype=object)[at],
                                                size_hint=FEW)
    del at
    l_hop = nexthop_codes
    r_hop = _on_left(nexthop_names.tolist(), gateway_codes, gateway_names.tolist())
    del gateway_codes
    n_prefix, n_hop = len(learned["prefix_names"]) + 1, len(nexthop_names) + 1
    by_prefix_l = l_host.astype(np.int64) * n_prefix + learned["prefix_codes"]
    by_prefix_r = r_host * n_prefix + r_prefix
    del r_host, r_prefix
    with_gw = r_hop >= 0
    proven = (l_hop >= 0) & _isin(by_prefix_l * n_hop + l_hop,
                                  (by_prefix_r * n_hop + r_hop)[with_gw])
    del with_gw, r_hop
    local_names = np.array([v in ("0.0.0.0", "") for v in nexthop_names.tolist()] + [False],
                           dtype=bool)
    local = local_names[nexthop_codes]
    if local.any():
        proven |= local & _isin(by_prefix_l, by_prefix_r)
    return proven


def _isin(values, members):
    """``np.isin`` of non-negative integer keys: a table of the key range when it is small
    (the join's keys are codes: hosts x prefixes x next hops), else pandas' hash table (numpy
    sorts or hashes into a unique array first: seconds at millions of keys)."""
    import numpy as np
    import pandas as pd

    if not len(values) or not len(members):
        return np.zeros(len(values), dtype=bool)
    low = min(int(values.min()), int(members.min()))
    top = max(int(values.max()), int(members.max()))
    if top - low < 1 << 27:
        table = np.zeros(top - low + 1, dtype=bool)
        table[members - low] = True
        return table[values - low]
    return pd.Series(values).isin(pd.unique(members)).to_numpy()


def _path_evidence(ctx: Ctx, host: str, prefix: str, nexthop: str, daemon: str, source: str,
                   as_path) -> Evidence:
    source = source.split("+")[0]
    if source.startswith("gobgp"):
        pointer = f"/{_pointer_token(prefix)}"
    elif source.startswith("frr"):
        pointer = f"/routes/{_pointer_token(prefix)}"
    else:
        pointer = f"line starting {prefix}"
    return Evidence(host, ctx.file(host, source), pointer,
                    f"{daemon} best path {prefix} via {nexthop} (AS path {as_path or '-'})")


def _daemon_paths_uncached(ctx: Ctx, host: str):
    return [(prefix, nexthop, daemon, _path_evidence(ctx, host, prefix, nexthop, daemon, source,
                                                     path))
            for prefix, nexthop, daemon, source, path in _daemon_rows(ctx, host)]


def _unused_table_routes(ctx: Ctx, host: str, address: str):
    """Routes covering ``address`` in tables no ip rule of the host looks up."""
    used = {r.table for r in ctx.fib.rules.get(host, ()) if r.action == "lookup"} or \
        {"local", "main", "default"}
    addr = ipaddress.ip_address(address)
    found = []
    for h, table in list(ctx.fib.routes):
        if h != host or table in used:
            continue
        for route in ctx.fib.routes[(h, table)]:
            if addr in route.dst and route.type not in ("local", "broadcast"):
                found.append(route)
                break
    return found


def _route_get_agrees(ctx: Ctx, host: str, prefix: str, dev: str | None, dropped: bool):
    df = ctx.tables.get("route_gets")
    if df is None or df.empty:
        return None
    net = ipaddress.ip_network(prefix, strict=False)
    for idx, row in enumerate(df.itertuples(index=False)):
        if row.host != host:
            continue
        try:
            if ipaddress.ip_address(str(row.probe)) not in net:
                continue
        except ValueError:
            continue
        agrees = bool(row.error) if dropped else (row.dev == dev)
        if agrees:
            value = row.error or f"{row.probe} via {row.gateway} dev {row.dev}"
            return Evidence(host, ctx.file(host, str(row.source)), "/0", str(value))
    return None


def _pcap_on(ctx: Ctx, host: str, prefix: str, iface: str | None):
    df = ctx.tables.get("packets")
    if df is None or df.empty or not iface:
        return None
    net = ipaddress.ip_network(prefix, strict=False)
    rows = df[(df["host"] == host) & (df["iface"] == iface)]
    for row in rows.itertuples(index=False):
        try:
            if row.dst and ipaddress.ip_address(str(row.dst)) in net:
                path = ctx.file(host, "capture")
                return Evidence(host, path, f"frame {row.frame}",
                                f"{row.src} -> {row.dst} on {iface} ({row.direction})",
                                int(row.frame))
        except ValueError:
            continue
    return None


def _corroborate(ctx: Ctx, host: str, prefix: str, dev: str | None, dropped: bool,
                 evidence: list, sources: set) -> None:
    """Add the independent sources that confirm a walk: the kernel's own `ip route get` answer
    and captured packets to the prefix on that interface."""
    rge = _route_get_agrees(ctx, host, prefix, dev, dropped=dropped)
    if rge:
        evidence.append(rge)
        sources.add("route-get")
    pev = _pcap_on(ctx, host, prefix, dev)
    if pev:
        evidence.append(pev)
        sources.add("pcap")


def _peers_route_it(ctx: Ctx, host: str, prefix: str, owner: str):
    """Other nodes (not the owner) whose walk for the prefix leaves by their cluster NIC or an
    overlay device: the covering route this host lacks."""
    if ctx.peers is not None:        # the lake's sweep knows the other nodes' answers
        return ctx.peers(ctx, host, prefix, owner)
    agree = []
    for other in ctx.model.nodes():
        if other.name in (host, owner):
            continue
        lk = lookup(ctx.fib, other.name, _probe(prefix))
        if lk.type == "unicast" and (lk.dev == other.cluster_iface.value
                                     or (other.name, lk.dev) in ctx.fib.vxlan):
            agree.append((other.name, lk))
    return agree


def _gateway_towards(ctx: Ctx, host: str, address: str) -> tuple[str | None, str | None]:
    lk = lookup(ctx.fib, host, address)
    if lk.type != "unicast":
        return None, None
    return lk.gateway or address, lk.dev


def _quick_ok(ctx: Ctx, hm, address: str) -> bool:
    """:func:`_sends_ok` of the lookup, from :func:`quick_route` (False: not proven, ask the
    full lookup)."""
    return _quick_verdict(ctx, hm, quick_route(ctx.fib, hm.name, address))


def _quick_verdict(ctx: Ctx, hm, quick) -> bool:
    if quick is None or quick[0] != "unicast":
        return False
    if (hm.name, quick[1]) in ctx.fib.vxlan:
        return True
    default, cluster = hm.default_iface.value, hm.cluster_iface.value
    return quick[1] != default or default == cluster


def _sends_ok(ctx: Ctx, hm, lk: Lookup) -> bool:
    """The kernel sends it by the cluster NIC or an overlay device (not out the default NIC)."""
    if lk.type != "unicast":
        return False
    if (hm.name, lk.dev) in ctx.fib.vxlan:
        return True
    default, cluster = hm.default_iface.value, hm.cluster_iface.value
    return lk.dev != default or default == cluster


def analyze(tables, model, fib: Fib, sweep: _Sweep | None = None, learned=None,
            peers=None) -> tuple[list[Finding], list[Check]]:
    """The findings and checks (see the module docstring). A caller that ran the cheap checks
    itself over a FIB it does not hold (:mod:`diag.analyze.fleet`, from the evidence lake) hands
    in the ``sweep``, the ``learned`` paths (a :class:`_Learned`-like: ``rows_of``,
    ``unproven_of``, ``row(i)``) and ``peers`` (the answer of :func:`_peers_route_it`); ``fib``
    then needs only the hosts those name."""
    ctx = Ctx(tables, model, fib, peers=peers)
    if learned is not None:
        ctx.used_tables["learned"] = learned
    findings: list[Finding] = []
    checks: list[Check] = []
    causes: dict[tuple[str, str], str] = {}        # (host, prefix) -> root-cause code
    sweep = sweep if sweep is not None else _sweep_quick_routes(ctx)
    direct_pattern = _auto_direct_routes(ctx, sweep)

    # --- blackholes and routes in unused tables ---------------------------------------------
    nodes = model.nodes()
    for hm in nodes:
        for other in _flagged(ctx, sweep, hm, nodes):
            prefix = other.pod_cidr.value
            addr = _probe(prefix)
            lk = lookup(fib, hm.name, addr)
            if lk.type in DROP_TYPES:
                findings.append(_blackhole(ctx, hm, prefix, other.name, lk))
                causes[(hm.name, prefix)] = "ROUTE_WRONG_TABLE_OR_BLACKHOLE"
                continue
            if _sends_ok(ctx, hm, lk):
                continue
            hidden = _unused_table_routes(ctx, hm.name, addr)
            if hidden:
                findings.append(_wrong_table(ctx, hm, prefix, other.name, lk, hidden[0]))
                causes[(hm.name, prefix)] = "ROUTE_WRONG_TABLE_OR_BLACKHOLE"
    # nodes known from Kubernetes only have no routes: they do not make a check "checked"
    routed = any(hm.collected for hm in nodes)
    checks.append(Check("pod CIDRs not blackholed nor in unused tables", None
                        if not routed else not any(
                            f.code == "ROUTE_WRONG_TABLE_OR_BLACKHOLE" for f in findings),
                        needs="" if routed else "pod CIDRs in the model and a node's routes"))

    # --- daemon best paths vs the kernel ------------------------------------------------------
    any_paths = False
    for hm in model.hosts.values():
        any_paths = any_paths or hm.name in _learned(ctx).rows_of
        errors, infos = [], []
        for prefix, nexthop, daemon, source, as_path in _unproven_rows(ctx, hm.name):
            if _installed(ctx, hm.name, prefix, nexthop):
                continue                                   # installed as the daemon has it
            ev = _path_evidence(ctx, hm.name, prefix, nexthop, daemon, source, as_path)
            lk = lookup(fib, hm.name, _probe(prefix))
            nh_gw, nh_dev = _gateway_towards(ctx, hm.name, nexthop)
            same_way = lk.type == "unicast" and lk.dev == nh_dev
            overlay = lk.type == "unicast" and (hm.name, lk.dev) in fib.vxlan
            if same_way or overlay:
                infos.append((prefix, nexthop, daemon, ev, lk, "same" if same_way else "overlay"))
            else:
                errors.append((prefix, nexthop, daemon, ev, lk, nh_gw, nh_dev))
        if errors:
            f = _rib_error(ctx, hm, errors, causes)
            findings.append(f)
            for prefix, *_ in errors:
                causes.setdefault((hm.name, prefix), "ROUTE_RIB_NOT_IN_FIB")
        if infos:
            findings.append(_rib_info(ctx, hm, infos))
    checks.append(Check("daemon best paths covered by the kernel", None if not any_paths else
                        not any(f.code == "ROUTE_RIB_NOT_IN_FIB" and f.severity != "info"
                                for f in findings),
                        needs="" if any_paths else "a BGP daemon's RIB (frr/gobgp/bird)"))

    # --- off-link pod CIDRs and leaks ---------------------------------------------------------
    for hm in nodes:
        leaks, missing = [], []
        for other in _flagged(ctx, sweep, hm, nodes):
            prefix = other.pod_cidr.value
            lk = lookup(fib, hm.name, _probe(prefix))
            if _sends_ok(ctx, hm, lk) or lk.type in DROP_TYPES:
                continue
            held = [p for p in _daemon_rows(ctx, hm.name)
                    if ipaddress.ip_address(_probe(prefix)) in _network(p[0])]
            off_link = not _on_link(ctx, hm.name, other.node_ip.value)
            if direct_pattern and off_link and not held and (hm.name, prefix) not in causes:
                missing.append((prefix, other, lk))
                causes[(hm.name, prefix)] = "ROUTE_MISSING_PODCIDR_OFF_LINK"
            if lk.type == "unicast" and lk.dev == hm.default_iface.value:
                leaks.append((prefix, other, lk))
        if missing:
            findings.append(_missing_off_link(ctx, hm, missing, direct_pattern))
        if leaks:
            findings.append(_leak(ctx, hm, leaks, causes))
    checks.append(Check("pod CIDRs leave by the cluster NIC", None if not routed else
                        not any(f.code == "EGRESS_LEAK_DEFAULT_ROUTE" for f in findings),
                        needs="" if routed else "nodes with pod CIDRs in the model and their "
                                                "routes"))
    return findings, checks


# --- helpers for the patterns -------------------------------------------------------------------

def _on_link(ctx: Ctx, host: str, address: str | None) -> bool:
    if not address:
        return False
    value, version = address_value(address)
    key = ("on-link", host)
    subnets = ctx.used_tables.get(key)
    if subnets is None:     # per (version, mask): the host's subnets' network ints, once
        subnets = ctx.used_tables[key] = {}
        for net, _, _ in ctx.fib.addrs.get(host, ()):
            if net.prefixlen < 32:
                subnets.setdefault((net.version, int(net.netmask)), set()).add(
                    int(net.network_address))
    for (v, mask), networks in subnets.items():
        if v == version and value & mask in networks:
            return True
    return False


@dataclass(frozen=True)
class _Sweep:
    """The node x node sweeps' cheap checks, asked per node in one vectorised step
    (:func:`~diag.analyze.trace.quick_route_list`): the nodes with a pod CIDR and its probe
    address, and per node the quick answer for each and the nodes the answers do not prove
    sent the right way (what the sweeps then walk in full)."""

    entries: list            # (node, probe address) for every node with a pod CIDR, in order
    answers: dict | None     # host -> quick answer per entry (None: ``direct`` instead)
    flagged: dict            # host -> the entries' nodes (not itself) the quick check flags
    direct: dict | None = None   # host -> entries whose quick answer may go via the peer's
                                 # node IP (the autoDirectNodeRoutes candidates), when no answers


def _sweep_quick_routes(ctx: Ctx) -> _Sweep | None:
    """:class:`_Sweep` for the model's nodes, or None when a pod CIDR does not parse (the
    sweeps then ask pair by pair and meet its error as before)."""
    entries = []
    for node in ctx.model.nodes():
        if not node.pod_cidr.value:
            continue
        try:
            entries.append((node, _probe(node.pod_cidr.value)))
        except ValueError:
            return None
    probes = [probe for _, probe in entries]
    answers, flagged = {}, {}
    for hm in ctx.model.nodes():
        quick = answers[hm.name] = quick_route_list(ctx.fib, hm.name, probes)
        verdicts: dict[int, bool] = {}         # per answer object: the nodes share them
        out = []
        for (other, _), answer in zip(entries, quick):
            if other.name == hm.name:
                continue
            ok = verdicts.get(id(answer))
            if ok is None:
                ok = verdicts[id(answer)] = _quick_verdict(ctx, hm, answer)
            if not ok:
                out.append(other)
        flagged[hm.name] = out
    return _Sweep(entries, answers, flagged)


def _flagged(ctx: Ctx, sweep: _Sweep | None, hm, nodes) -> list:
    """The other nodes whose pod CIDR the node's quick check does not prove sent the right way
    (by the cluster NIC or an overlay device), in the model's order."""
    if sweep is not None and hm.name in sweep.flagged:
        return sweep.flagged[hm.name]
    return [other for other in nodes if other.name != hm.name and other.pod_cidr.value
            and not _quick_ok(ctx, hm, _probe(other.pod_cidr.value))]


def _auto_direct_routes(ctx: Ctx, sweep: _Sweep | None = None) -> list[tuple[str, object]]:
    """(host, route) for routes to an on-link peer's pod CIDR via the peer's node IP that no
    daemon installed: the autoDirectNodeRoutes pattern."""
    found = []
    nodes = ctx.model.nodes()
    if sweep is not None:
        for hm in nodes:
            if sweep.answers is None:
                pairs = [(peer, probe, None) for peer, probe in sweep.direct.get(hm.name, ())]
            else:
                pairs = [(peer, probe, quick) for (peer, probe), quick
                         in zip(sweep.entries, sweep.answers[hm.name])]
            for peer, probe, quick in pairs:
                peer_ip = peer.node_ip.value
                if peer is hm or (quick is not None and (quick[0] != "unicast"
                                                         or peer_ip not in quick[2])):
                    continue                  # the cheap check: not via the peer
                if not _on_link(ctx, hm.name, peer_ip):
                    continue
                lk = lookup(ctx.fib, hm.name, probe)
                if lk.type == "unicast" and lk.route is not None and peer_ip in lk.gateways \
                        and str(lk.route.protocol) not in DAEMON_PROTOCOLS and \
                        lk.route.dst == ipaddress.ip_network(peer.pod_cidr.value):
                    found.append((hm.name, lk.route))
        return found
    for hm in nodes:
        for peer in nodes:
            prefix, peer_ip = peer.pod_cidr.value, peer.node_ip.value
            if peer is hm or not prefix or not _on_link(ctx, hm.name, peer_ip):
                continue
            quick = quick_route(ctx.fib, hm.name, _probe(prefix))
            if quick is not None and (quick[0] != "unicast" or peer_ip not in quick[2]):
                continue                      # the cheap check: not via the peer
            lk = lookup(ctx.fib, hm.name, _probe(prefix))
            if lk.type == "unicast" and lk.route is not None and peer_ip in lk.gateways and \
                    str(lk.route.protocol) not in DAEMON_PROTOCOLS and \
                    lk.route.dst == ipaddress.ip_network(prefix):
                found.append((hm.name, lk.route))
    return found


def _installed(ctx: Ctx, host: str, prefix: str, nexthop: str) -> bool:
    """The kernel holds the daemon's path itself (exact prefix, same next hop) in a table an ip
    rule looks up — even if another route of that prefix (lower metric) wins the lookup."""
    used = ctx.used_tables.get(host)
    if used is None:
        used = ctx.used_tables[host] = {r.table for r in ctx.fib.rules.get(host, ())
                                        if r.action == "lookup"} or {"main"}
    net = _network(prefix)
    for table in used:
        for route in routes_for(ctx.fib, host, table, net):
            if route.type == "unicast" and (
                    nexthop in (g for g, _ in route.nexthops) or nexthop in ("0.0.0.0", "")):
                return True
    return False


def _router_gateway(ctx: Ctx, host: str) -> tuple[str | None, str | None]:
    """An on-link address of a router of the model (where a covering route should point)."""
    for router in ctx.model.routers():
        for address in router.peering_ips or (router.node_ip.value,):
            if address and _on_link(ctx, host, address):
                return _gateway_towards(ctx, host, address)
    return None, None


def _uniq(evidence) -> tuple[Evidence, ...]:
    return tuple(dict.fromkeys(evidence))


def _confidence(*sources) -> Confidence:
    return Confidence(tuple(s for s in sources if s))


# --- finding builders ---------------------------------------------------------------------------

def _blackhole(ctx: Ctx, hm, prefix: str, owner: str, lk: Lookup) -> Finding:
    route = lk.route
    rge = _route_get_agrees(ctx, hm.name, prefix, None, dropped=True)
    evidence = lk.evidence + ((rge,) if rge else ())
    where = f"table {lk.table}" if lk.table else f"ip rule {lk.rule.priority if lk.rule else '?'}"
    fix = []
    gw, dev = _gateway_towards(ctx, hm.name, ctx.model.hosts[owner].node_ip.value or "")
    if route is not None:
        fix.append(f"ip route del {route.type} {route.dst}"
                   + ("" if lk.table == "main" else f" table {lk.table}"))
    if gw and dev:
        fix.append(f"ip route replace {prefix} via {gw} dev {dev}")
    return Finding(
        "ROUTE_WRONG_TABLE_OR_BLACKHOLE", default_severity("ROUTE_WRONG_TABLE_OR_BLACKHOLE"),
        f"{hm.name}: traffic to {prefix} ({owner}'s pods) hits {lk.type} "
        f"{route.dst if route else ''} in {where} and is dropped",
        _confidence("ip", "route-get" if rge else None), evidence, tuple(fix),
        hosts=(hm.name,), subject=prefix)


def _wrong_table(ctx: Ctx, hm, prefix: str, owner: str, lk: Lookup, hidden) -> Finding:
    rge = _route_get_agrees(ctx, hm.name, prefix, lk.dev, dropped=lk.type == "none")
    rules = ctx.fib.rules.get(hm.name, ())
    used = sorted({r.table for r in rules if r.action == "lookup" and r.table})
    outcome = (f"leaves by {lk.dev} (the default route)" if lk.type == "unicast"
               else "finds no route")
    gw, dev = (hidden.nexthops[0] if hidden.nexthops else (None, hidden.dev))
    route_spec = f"{hidden.dst}" + (f" via {gw}" if gw else "") + (f" dev {dev}" if dev else "")
    fix = [f"ip route replace {route_spec}", f"ip route del {hidden.dst} table {hidden.table}",
           f"# or make the table reachable: ip rule add to {hidden.dst} lookup {hidden.table} "
           f"priority 1000"]
    if str(hidden.protocol) == "bird":
        fix.append(f"# BIRD exports to table {hidden.table}: in bird.conf, protocol kernel "
                   "{ kernel table 254; } (main), then birdc configure")
    daemon = {p[2].lower() for p in _daemon_paths(ctx, hm.name)
              if ipaddress.ip_address(_probe(prefix)) in ipaddress.ip_network(p[0])}
    evidence = (hidden.evidence,) + tuple(r.evidence for r in rules) + lk.evidence \
        + ((rge,) if rge else ())
    return Finding(
        "ROUTE_WRONG_TABLE_OR_BLACKHOLE", default_severity("ROUTE_WRONG_TABLE_OR_BLACKHOLE"),
        f"{hm.name}: {hidden.dst} (covers {owner}'s pod CIDR {prefix}) is only in table "
        f"{hidden.table}, which no ip rule looks up (rules use {', '.join(used)}); traffic "
        f"{outcome}",
        _confidence("ip", "route-get" if rge else None, *sorted(daemon)), _uniq(evidence), tuple(fix),
        hosts=(hm.name,), subject=prefix)


_CILIUM_NOTE = ("By design: Cilium's BGP control plane (GoBGP) advertises and learns routes but "
                "never installs learned routes in the kernel; pod traffic relies on a covering "
                "route, tunnel mode or autoDirectNodeRoutes on one L2.")


def _rib_info(ctx: Ctx, hm, infos) -> Finding:
    prefixes = ", ".join(p for p, *_ in infos)
    covering = {str(lk.route.dst) + (f" via {lk.gateway}" if lk.gateway else "")
                + f" dev {lk.dev}" for *_, lk, _ in infos if lk.route}
    daemons = sorted({d.lower() for _, _, d, *_ in infos})
    how = {k for *_, k in infos}
    way = ("the same way (same NIC as the daemon's next hop)" if how == {"same"} else
           "by the overlay device" if how == {"overlay"} else
           "the same way or by the overlay device")
    # first seen first: a set here made the order change from run to run (Evidence hashes
    # None by its address before Python 3.12)
    evidence = tuple(ev for _, _, _, ev, _, _ in infos) + tuple(
        dict.fromkeys(e for *_, lk, _ in infos for e in lk.evidence))
    gobgp = "gobgp" in daemons or "cilium" in daemons
    return Finding(
        "ROUTE_RIB_NOT_IN_FIB", "info",
        f"{hm.name}: {'/'.join(daemons)} best paths {prefixes} are not in the kernel; "
        f"{'; '.join(sorted(covering))} covers them and sends the traffic {way}",
        _confidence("ip", *daemons), evidence, (),
        severity_reason="a covering kernel route delivers the traffic " + way,
        note=_CILIUM_NOTE if gobgp else "The daemon does not install these paths; the kernel's "
        "covering route serves them.", hosts=(hm.name,), subject=prefixes)


def _rib_error(ctx: Ctx, hm, errors, causes) -> Finding:
    prefixes = [p for p, *_ in errors]
    daemons = sorted({d.lower() for _, _, d, *_ in errors})
    what = []
    evidence: list[Evidence] = []
    fix: list[str] = []
    sources = {"ip", *daemons}
    for prefix, nexthop, daemon, ev, lk, nh_gw, nh_dev in errors:
        evidence.append(ev)
        evidence.extend(lk.evidence)
        if lk.type == "unicast":
            what.append(f"{prefix} leaves by {lk.dev} via {lk.gateway}")
        else:
            what.append(f"{prefix}: {lk.reason}")
        _corroborate(ctx, hm.name, prefix, lk.dev, lk.type != "unicast", evidence, sources)
        if nh_gw and nh_dev:
            fix.append(f"ip route replace {prefix} via {nh_gw} dev {nh_dev}")
    pod_range = ctx.model.pod_range.value
    gw, dev = _router_gateway(ctx, hm.name)
    gobgp = any(d in ("gobgp", "cilium") for d in daemons)
    if gobgp and pod_range and gw:
        fix.append(f"# or one covering route, as the other nodes have: ip route replace "
                   f"{pod_range} via {gw} dev {dev}")
    cause = next((causes[(hm.name, p)] for p in prefixes if (hm.name, p) in causes), None)
    return Finding(
        "ROUTE_RIB_NOT_IN_FIB", default_severity("ROUTE_RIB_NOT_IN_FIB"),
        f"{hm.name}: {'/'.join(daemons)} holds best paths for {', '.join(prefixes)} but the "
        f"kernel has no route sending them that way: {'; '.join(what)}",
        _confidence(*sorted(sources)), _uniq(evidence), tuple(fix),
        severity_reason="no kernel route sends the traffic the way the daemon would: it is "
        "dropped or leaves by another NIC", note=_CILIUM_NOTE if gobgp else "",
        caused_by=cause, hosts=(hm.name,), subject=", ".join(prefixes))


def _missing_off_link(ctx: Ctx, hm, missing, pattern) -> Finding:
    evidence: list[Evidence] = [route.evidence for host, route in pattern[:3]]
    fix = []
    sources = {"ip"}
    names = []
    for prefix, other, lk in missing:
        names.append(f"{prefix} ({other.name}, {other.node_ip.value}, off-link)")
        evidence.extend(lk.evidence)
        gw, dev = _gateway_towards(ctx, hm.name, other.node_ip.value or "")
        if gw:
            fix.append(f"ip route replace {prefix} via {gw} dev {dev}")
        if ctx.tables["bgp_paths"].shape[0]:
            sources.add("bgp")          # daemons collected and none holds it
        rge = _route_get_agrees(ctx, hm.name, prefix, lk.dev, dropped=lk.type != "unicast")
        if rge:
            evidence.append(rge)
            sources.add("route-get")
    direct = sorted({f"{h}: {r.text}" for h, r in pattern})
    fix.append("# or let BGP install the routes / use tunnel mode: autoDirectNodeRoutes only "
               "reaches nodes on the same L2 segment")
    return Finding(
        "ROUTE_MISSING_PODCIDR_OFF_LINK", default_severity("ROUTE_MISSING_PODCIDR_OFF_LINK"),
        f"{hm.name}: no route to {', '.join(names)}; pod CIDRs of on-link nodes are routed "
        f"directly ({'; '.join(direct[:3])}) and no daemon holds the off-link ones",
        _confidence(*sorted(sources)), _uniq(evidence), tuple(fix),
        hosts=(hm.name,), subject=", ".join(p for p, _, _ in missing))


def _leak(ctx: Ctx, hm, leaks, causes) -> Finding:
    prefixes = [p for p, _, _ in leaks]
    cause = next((causes[(hm.name, p)] for p in prefixes if (hm.name, p) in causes), None)
    sources = {"ip"}
    evidence: list[Evidence] = []
    fix: list[str] = []
    for prefix, other, lk in leaks:
        evidence.extend(lk.evidence)
        _corroborate(ctx, hm.name, prefix, lk.dev, False, evidence, sources)
        peers = _peers_route_it(ctx, hm.name, prefix, other.name)
        if peers:
            sources.add("peers")
            evidence.extend(plk.route.evidence for _, plk in peers[:1] if plk.route)
        gw, dev = _gateway_towards(ctx, hm.name, other.node_ip.value or "")
        if gw and dev and dev != hm.default_iface.value:
            fix.append(f"ip route replace {prefix} via {gw} dev {dev}")
    pod_range = ctx.model.pod_range.value
    rgw, rdev = _router_gateway(ctx, hm.name)
    if pod_range and rgw:
        fix.append(f"# or one covering route: ip route replace {pod_range} via {rgw} dev {rdev}")
    lk0 = leaks[0][2]
    cause_text = f" — effect of {cause}" if cause else ""
    return Finding(
        "EGRESS_LEAK_DEFAULT_ROUTE", default_severity("EGRESS_LEAK_DEFAULT_ROUTE"),
        f"{hm.name}: traffic to {', '.join(prefixes)} leaves by {lk0.dev} (default route via "
        f"{lk0.gateway}) instead of the cluster NIC {hm.cluster_iface.value}{cause_text}",
        _confidence(*sorted(sources)), _uniq(evidence), tuple(fix),
        severity_reason="" if not cause else f"consequence of {cause} on the same host",
        caused_by=cause, hosts=(hm.name,), subject=", ".join(prefixes))
