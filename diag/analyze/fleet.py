"""The routing analyzers at fleet scale, from the evidence lake: 5,000 hosts x 5,000 routes.

Contract: :func:`analyze(source, model, timings=None) -> (findings, checks)` gives exactly what
:func:`diag.analyze.routing.analyze` gives over the whole FIB (RIB vs FIB, blackholes and
unused tables, missing off-link pod CIDRs, egress leaks: the node x node sweeps), reading the
bundle through ``source`` (a :class:`diag.lake.LakeBundle`: whole columns, some hosts' rows,
SQL) and never holding the 25 million routes as Python objects:

1. **The sweeps, column-wise** (:func:`sweep`): every route row of the hosts whose ip rules
   select on the table only, as integer codes from the Parquet dictionaries; each distinct
   destination parsed once. A route covers a contiguous run of the sorted pod-CIDR probe
   addresses (two ``searchsorted``); the few routes covering several probes (the default
   route, a pod-range route) are painted per host into a hosts x probes matrix per table,
   longest prefix last, then the routes covering one probe are written over them (such a
   route is always the longer one). The first table in rule order whose answer is not
   ``throw`` decides, as :func:`diag.analyze.lookup.quick_route` does; the verdict "sent by the
   cluster NIC or an overlay device" is one vectorised test per pair. What is left: the pairs
   that fail it, hosts with other rules (always walked in full), the autoDirectNodeRoutes
   candidates (a pair's answer via the peer's node IP).
2. **The RIB against the FIB, in SQL** (:data:`UNPROVEN_SQL`, DuckDB over the Parquet files):
   a daemon's learned best path is proven installed by a route of the same host and prefix
   with its next hop as gateway (or any unicast route, for a local next hop) in a table the
   host's rules look up — an anti-join of 25 million paths with 25 million routes; the paths
   it does not prove go on as in ``routing``.
3. **The findings, by ``routing`` itself**: the FIB of only the hosts that steps 1-2 name (and,
   for a leak, the first other node that routes the prefix by its cluster NIC) is built from
   their rows, and :func:`diag.analyze.routing.analyze` runs with the sweep, the unproven paths
   and the peers handed in, so the findings, their evidence and their order are the same.

``timings`` (a dict) receives the seconds of each step. docs/explain.md ("Fleet scale") says why
this split, with the measurements.
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any

from diag.model import Check, Finding

DROP_OR_LOCAL = ("blackhole", "unreachable", "prohibit", "local", "broadcast", "anycast",
                 "multicast")

# paths of a daemon's loc RIB (best, learned, IPv4) that no route proves installed; in
# bgp_paths' row order (file_row_number), as routing._Learned numbers them
UNPROVEN_SQL = """
WITH used AS (
    SELECT DISTINCT host, "table" FROM rules WHERE family = 'inet' AND action = 'lookup'),
kernel AS (
    SELECT r.host, r.dst AS prefix, r.gateway
    FROM routes r
    WHERE r.family = 'inet' AND r.type = 'unicast' AND r.phase = 'main'
      AND ((r.host, r."table") IN (SELECT host, "table" FROM used)
           OR (r.host NOT IN (SELECT host FROM used) AND r."table" = 'main'))),
learned AS (
    SELECT file_row_number AS row_at, host, prefix, nexthop, daemon, source, as_path_str
    FROM read_parquet('{paths}', file_row_number = true)
    WHERE rib = 'loc' AND best AND NOT coalesce(local, false) AND prefix NOT LIKE '%:%')
SELECT l.row_at, l.host, l.prefix, l.nexthop, l.daemon, l.source, l.as_path_str FROM learned l
WHERE NOT EXISTS (
    SELECT 1 FROM kernel k WHERE k.host = l.host AND k.prefix = l.prefix
      AND (k.gateway = l.nexthop OR l.nexthop IN ('0.0.0.0', '')))
ORDER BY l.row_at
"""

LEARNED_HOSTS_SQL = """
SELECT DISTINCT host FROM bgp_paths
WHERE rib = 'loc' AND best AND NOT coalesce(local, false) AND prefix NOT LIKE '%:%'
"""

LEARNED_ROWS_SQL = """
SELECT file_row_number AS row_at, host, prefix, nexthop, daemon, source, as_path_str
FROM read_parquet('{paths}', file_row_number = true)
WHERE rib = 'loc' AND best AND NOT coalesce(local, false) AND prefix NOT LIKE '%:%'
  AND host IN ({hosts})
ORDER BY row_at
"""


@dataclass
class LakeLearned:
    """routing._Learned's surface over the lake: the hosts with learned paths, the learned rows
    of the hosts asked about, the unproven ones."""

    rows_of: dict = field(default_factory=dict)        # host -> row numbers (or () unasked)
    unproven_of: dict = field(default_factory=dict)    # host -> row numbers
    rows: dict = field(default_factory=dict)           # row number -> (prefix, nexthop, ...)

    def row(self, i: int):
        return self.rows[i]


@dataclass
class Swept:
    """What step 1 leaves for the walk: per node the flagged peers, the autoDirectNodeRoutes
    candidates, and the answer matrix the peers hook reads."""

    entries: list                     # (node, probe) in model order
    flagged: dict                     # host -> [node]
    direct: dict                      # host -> [(node, probe)]
    full: set                         # hosts the sweep could not answer (rules): walked in full
    answer_ok: Any = None             # host row x probe column -> sends by cluster NIC/overlay
    row_of_host: dict = field(default_factory=dict)
    column_of: dict = field(default_factory=dict)     # node name -> probe column


def analyze(source, model, timings: dict | None = None) -> tuple[list[Finding], list[Check]]:
    from diag.analyze import routing
    from diag.analyze.fib import build_fib
    from diag.bundle import OutputIndex

    timings = timings if timings is not None else {}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        timings[name] = round(now - clock, 3)
        clock = now

    swept = sweep(source, model, timings)
    lap("sweep")
    learned = _learned(source)
    lap("rib_vs_fib_sql")
    hosts = set(swept.full)
    for host, peers in swept.flagged.items():
        if peers:
            hosts.add(host)
            for other in peers:     # the first node that routes it by its cluster NIC (a leak)
                first = _first_agreeing(swept, model, host, other.name)
                if first:
                    hosts.add(first)
    hosts |= {h for h, d in swept.direct.items() if d}
    hosts |= {h for h, rows in learned.unproven_of.items() if rows}
    _load_learned_rows(source, learned, hosts)
    tables = {name: source.frame(name, hosts) for name in
              ("routes", "rules", "addresses", "neighbors", "fdb", "interfaces", "sysctls",
               "bgp_paths", "route_gets", "packets")}
    commands = source.frame("commands", hosts)
    outputs = OutputIndex(zip(commands["host"], commands["id"], commands["path"])) \
        if len(commands) else OutputIndex()
    fib = build_fib(tables, outputs=outputs)
    lap(f"fib_of_{len(hosts)}_hosts")
    routing_sweep = routing._Sweep(swept.entries, None, swept.flagged, swept.direct)

    def peers(ctx, host, prefix, owner):
        return _peers(ctx, swept, host, owner)

    out = routing.analyze(tables, model, fib, sweep=routing_sweep, learned=learned, peers=peers)
    lap("findings")
    timings["walked_hosts"] = len(hosts)
    return out


# --- step 1: the sweeps ---------------------------------------------------------------------

def _probe(prefix: str) -> int:
    net = ipaddress.ip_network(prefix, strict=False)
    return int(net.network_address) + (1 if net.num_addresses > 2 else 0)


def _codes(column):
    """(int32 codes with -1 for null, list of values) of a dictionary column."""
    import numpy as np
    import pyarrow as pa

    column = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    if not pa.types.is_dictionary(column.type):
        column = column.dictionary_encode()
    codes = column.indices.to_numpy(zero_copy_only=False)
    codes = np.where(column.indices.is_null().to_numpy(zero_copy_only=False), -1, codes) \
        if column.null_count else codes
    return codes.astype(np.int32, copy=False), column.dictionary.to_pylist()


def _rule_plan(source, hosts: list[str]) -> tuple[dict, set]:
    """host -> its tables in rule order when its ip rules select on the table only; the other
    hosts (walked in full). No rules: the kernel's defaults (local, main, default)."""
    from diag.values import or_none

    rules = source.frame("rules")
    rules = rules[rules["family"] == "inet"] if len(rules) else rules
    plan: dict[str, list[str]] = {}
    other: set[str] = set()
    by_host: dict[str, list] = {}
    for row in rules.itertuples(index=False):
        by_host.setdefault(row.host, []).append(row)
    for host in hosts:
        rows = sorted(by_host.get(host, ()), key=lambda r: int(r.priority))
        if not rows:
            plan[host] = ["local", "main", "default"]
            continue
        plain = all(or_none(r.src) in (None, "all", "") and or_none(r.dst) in (None, "all", "")
                    and not or_none(r.iif) and not or_none(r.oif) and not or_none(r.fwmark)
                    and not bool(or_none(r.not_)) and str(or_none(r.action) or "lookup")
                    == "lookup" and or_none(r.table) is not None for r in rows)
        if plain:
            plan[host] = [str(r.table) for r in rows]
        else:
            other.add(host)
    return plan, other


def sweep(source, model, timings: dict | None = None) -> Swept:
    """Step 1 (see the module docstring)."""
    import json

    import numpy as np

    nodes = model.nodes()
    entries = []
    for node in nodes:
        if node.pod_cidr.value:
            try:
                entries.append((node, _probe(node.pod_cidr.value)))
            except ValueError:          # the sweeps then ask every pair in full, as routing does
                names = {n.name for n in nodes}
                return Swept([], {n.name: [o for o in nodes if o is not n and o.pod_cidr.value]
                                  for n in nodes}, {}, names)
    probe_text = {node.name: str(ipaddress.ip_address(p)) for node, p in entries}
    node_names = [n.name for n in nodes]
    row_of_host = {name: k for k, name in enumerate(node_names)}
    plan, full = _rule_plan(source, node_names)
    n_hosts, n_probes = len(node_names), len(entries)
    column_of = {node.name: k for k, (node, _p) in enumerate(entries)}
    probes = np.array([p for _n, p in entries], dtype=np.int64)
    order = np.argsort(probes, kind="stable")
    sorted_probes = probes[order]

    cols = source.columns("routes", ["host", "table", "family", "type", "dst", "gateway",
                                     "dev", "nexthops", "metric", "phase"])
    host_c, host_v = _codes(cols.column("host"))
    fam_c, fam_v = _codes(cols.column("family"))
    phase_c, phase_v = _codes(cols.column("phase"))
    keep = _is(fam_c, fam_v, "inet") & _is(phase_c, phase_v, "main")
    # the host's row in the matrix, and the rank of the row's table in its rules (-1: unused)
    table_c, table_v = _codes(cols.column("table"))
    table_names = [str(t) if t else "main" for t in table_v] + ["main"]
    max_rank = max((len(t) for t in plan.values()), default=0)
    host_row = np.array([row_of_host.get(h, -1) if h not in full else -1 for h in host_v]
                        + [-1], dtype=np.int64)
    rank_of = np.full((len(host_v) + 1) * len(table_names), -1, dtype=np.int64)
    for hk, host in enumerate(host_v):
        for rank, table in enumerate(plan.get(host, ()) if host not in full else ()):
            for tk, name in enumerate(table_names):
                if name == table and rank_of[hk * len(table_names) + tk] < 0:
                    rank_of[hk * len(table_names) + tk] = rank
    rows_host = host_row[host_c]
    rank = rank_of[np.where(host_c < 0, len(host_v), host_c).astype(np.int64) * len(table_names)
                   + np.where(table_c < 0, len(table_v), table_c)]
    keep &= (rows_host >= 0) & (rank >= 0)
    dst_c, dst_v = _codes(cols.column("dst"))
    net = np.zeros(len(dst_v) + 1, dtype=np.int64)
    plen = np.full(len(dst_v) + 1, -1, dtype=np.int64)
    for k, text in enumerate(dst_v):
        try:
            parsed = ipaddress.ip_network("0.0.0.0/0" if text == "default" else text,
                                          strict=False)
        except (ValueError, TypeError):
            continue
        if parsed.version == 4:
            net[k], plen[k] = int(parsed.network_address), parsed.prefixlen
    r_plen = plen[dst_c]
    keep &= r_plen >= 0
    at = np.flatnonzero(keep)
    del keep
    r_net, r_plen = net[dst_c[at]], r_plen[at]
    lo = np.searchsorted(sorted_probes, r_net, side="left")
    hi = np.searchsorted(sorted_probes, r_net + (np.int64(1) << (32 - r_plen)), side="left")
    count = hi - lo
    metric = cols.column("metric").to_numpy(zero_copy_only=False)
    metric = np.nan_to_num(metric.astype(np.float64), nan=0.0)[at] if len(metric) else metric
    if timings is not None:
        timings["sweep_read_codes"] = len(at)
    # per table rank: the row deciding each (host, probe), painted from the widest routes
    answer = np.full((max(max_rank, 1), n_hosts, n_probes), -1, dtype=np.int64)
    wide = np.flatnonzero(count > 1)
    if len(wide):
        # shortest prefix first, then for one prefix the worst metric first: the best last
        sequence = wide[np.lexsort((-np.arange(len(wide)), -metric[wide], r_plen[wide]))]
        hosts_w, ranks_w = rows_host[at[sequence]], rank[at[sequence]]
        for k, h, r in zip(sequence.tolist(), hosts_w.tolist(), ranks_w.tolist()):
            answer[r, h, order[lo[k]:hi[k]]] = at[k]
    single = np.flatnonzero(count == 1)
    if len(single):
        cells = (rank[at[single]] * n_hosts + rows_host[at[single]]) * n_probes \
            + order[lo[single]]
        flat = answer.reshape(-1)
        flat[cells] = at[single]
        lost = flat[cells] != at[single]
        if lost.any():                 # two one-probe routes for one cell: longest, metric, first
            clash = np.isin(cells, cells[lost])
            pick, where = single[clash], cells[clash]
            ranked = np.lexsort((-np.arange(len(pick)), -metric[pick], r_plen[pick], where))
            last = np.r_[where[ranked][1:] != where[ranked][:-1], True]   # each cell's best
            flat[where[ranked][last]] = at[pick[ranked][last]]
    del lo, hi, count
    # the first table whose answer is not "throw"
    type_c, type_v = _codes(cols.column("type"))
    kinds = [str(t) if t else "unicast" for t in type_v] + ["unicast"]
    throw = np.array([k == "throw" for k in kinds])[np.where(type_c < 0, len(type_v), type_c)]
    final = np.full((n_hosts, n_probes), -1, dtype=np.int64)
    for r in range(answer.shape[0]):
        cell = answer[r]
        take = (final < 0) & (cell >= 0)
        take[take] = ~throw[cell[take]]
        final[take] = cell[take]
    del answer
    # the verdict of each answer: unicast, by a device that is not the default-route NIC (or
    # the default NIC is the cluster NIC), or by an overlay device
    dev_c, dev_v = _codes(cols.column("dev"))
    hops_c, hops_v = _codes(cols.column("nexthops"))
    gw_c, gw_v = _codes(cols.column("gateway"))
    names: dict[str, int] = {}

    def code(text) -> int:
        return -1 if text is None else names.setdefault(str(text), len(names))

    dev_code = np.array([code(d) for d in dev_v] + [-1], dtype=np.int64)
    first_dev, gateways, ecmp = [], [], []
    for text in hops_v:
        try:
            hops = json.loads(text) if text else None
        except ValueError:
            hops = None
        if isinstance(hops, list) and hops:
            first_dev.append(code((hops[0] or {}).get("dev")))
            gateways.append(tuple((h or {}).get("gateway") for h in hops))
            ecmp.append(len(hops) > 1)
        else:
            first_dev.append(-2)        # no list: the row's own dev
            gateways.append(None)
            ecmp.append(False)
    first_dev = np.array(first_dev + [-2], dtype=np.int64)
    row_dev = first_dev[np.where(hops_c < 0, len(hops_v), hops_c)]
    row_dev = np.where(row_dev == -2, dev_code[np.where(dev_c < 0, len(dev_v), dev_c)], row_dev)
    unicast = np.array([k == "unicast" for k in kinds])[np.where(type_c < 0, len(type_v),
                                                                 type_c)]
    default_dev = np.array([code(n.default_iface.value) if n.default_iface.value else -3
                            for n in nodes], dtype=np.int64)
    same = np.array([n.default_iface.value == n.cluster_iface.value for n in nodes])
    cluster_dev = np.array([code(n.cluster_iface.value) if n.cluster_iface.value else -3
                            for n in nodes], dtype=np.int64)
    vxlan = _overlay_devices(source, node_names, code)
    safe = np.where(final >= 0, final, 0)
    dev_of = row_dev[safe]
    host_index = np.arange(n_hosts)[:, None]
    overlay = np.isin((host_index << 20) + dev_of, vxlan) if len(vxlan) else \
        np.zeros(final.shape, dtype=bool)
    ok = (final >= 0) & unicast[safe] & (overlay | (dev_of != default_dev[:, None])
                                         | same[:, None])
    # the peers hook: routed by the cluster NIC or an overlay device
    by_cluster = (final >= 0) & unicast[safe] & (overlay | (dev_of == cluster_dev[:, None]))
    # autoDirectNodeRoutes candidates: unicast answers whose gateways hold the peer's node IP
    node_ip = [n.node_ip.value for n, _p in entries]
    gw_row = np.array([code(g) for g in gw_v] + [-1], dtype=np.int64)[
        np.where(gw_c < 0, len(gw_v), gw_c)]
    hop_gateways = [g for g in gateways] + [None]
    row_hops = np.where(hops_c < 0, len(hops_v), hops_c)
    multi = np.array(ecmp + [False])[row_hops]
    peer_ip = np.array([code(ip) if ip else -4 for ip in node_ip], dtype=np.int64)
    first_gw = np.array([code(g[0]) if g else -5 for g in hop_gateways], dtype=np.int64)[row_hops]
    first_gw = np.where(first_gw == -5, gw_row, first_gw)
    direct_mask = (final >= 0) & unicast[safe] & ((first_gw[safe] == peer_ip[None, :])
                                                  | multi[safe])
    flagged: dict[str, list] = {}
    direct: dict[str, list] = {}
    entry_nodes = [n for n, _p in entries]
    for h, node in enumerate(nodes):
        if node.name in full:
            flagged[node.name] = [o for o in entry_nodes if o is not node]
            direct[node.name] = [(o, probe_text[o.name]) for o in entry_nodes if o is not node]
            continue
        bad = np.flatnonzero(~ok[h])
        flagged[node.name] = [entry_nodes[k] for k in bad.tolist()
                              if entry_nodes[k] is not node]
        cand = np.flatnonzero(direct_mask[h])
        direct[node.name] = [(entry_nodes[k], probe_text[entry_nodes[k].name])
                             for k in cand.tolist() if entry_nodes[k] is not node]
    return Swept([(n, probe_text[n.name]) for n in entry_nodes], flagged, direct, full,
                 by_cluster, row_of_host, column_of)


def _is(codes, values: list, wanted: str):
    import numpy as np

    table = np.array([v == wanted for v in values] + [False])
    return table[np.where(codes < 0, len(values), codes)]


def _overlay_devices(source, hosts: list[str], code) -> Any:
    """``host row << 20 | device code`` of every vxlan device (fib.vxlan's keys)."""
    import numpy as np

    links = source.frame("interfaces")
    row = {h: k for k, h in enumerate(hosts)}
    keys = [(row[host] << 20) + code(ifname) for host, ifname, kind
            in zip(links["host"], links["ifname"], links["kind"])
            if kind == "vxlan" and host in row] if len(links) else []
    return np.array(keys, dtype=np.int64)


def _first_agreeing(swept: Swept, model, host: str, owner: str) -> str | None:
    """The first node (model order; not ``host``, not ``owner``) whose answer for ``owner``'s
    probe goes by its cluster NIC or an overlay device, from the matrix (hosts walked in full
    are asked by the walk itself)."""
    column = swept.column_of.get(owner)
    if column is None or swept.answer_ok is None:
        return None
    for node in model.nodes():
        if node.name in (host, owner):
            continue
        if node.name in swept.full:
            continue                   # walked in full: in the FIB already
        if swept.answer_ok[swept.row_of_host[node.name], column]:
            return node.name
    return None


def _peers(ctx, swept: Swept, host: str, owner: str) -> list:
    """routing._peers_route_it through the matrix: the first agreeing node with its lookup
    (the finding cites the first only)."""
    from diag.analyze.lookup import lookup

    column = swept.column_of.get(owner)
    prefix_probe = dict(swept.entries)
    for node in ctx.model.nodes():
        if node.name in (host, owner):
            continue
        if node.name not in swept.full and (column is None or not swept.answer_ok[
                swept.row_of_host[node.name], column]):
            continue
        lk = lookup(ctx.fib, node.name, prefix_probe[ctx.model.hosts[owner]])
        if lk.type == "unicast" and (lk.dev == node.cluster_iface.value
                                     or (node.name, lk.dev) in ctx.fib.vxlan):
            return [(node.name, lk)]
    return []


# --- step 2: the RIB against the FIB ----------------------------------------------------------

def _learned(source) -> LakeLearned:
    learned = LakeLearned()
    path = source.path("bgp_paths")
    if not path:
        return learned
    for (host,) in (tuple(r.values()) for r in source.sql(LEARNED_HOSTS_SQL).to_pylist()):
        learned.rows_of[host] = ()
    quoted = path.replace("'", "''")
    for row in source.sql(UNPROVEN_SQL.format(paths=quoted)).to_pylist():
        learned.unproven_of.setdefault(row["host"], []).append(row["row_at"])
        learned.rows[row["row_at"]] = _row(row)
    return learned


def _row(row: dict) -> tuple:
    return (str(row["prefix"]), str(row["nexthop"]), str(row["daemon"]), str(row["source"]),
            row["as_path_str"])


def _load_learned_rows(source, learned: LakeLearned, hosts: set[str]) -> None:
    """The learned rows of the hosts the walk asks about (routing._daemon_rows)."""
    path = source.path("bgp_paths")
    asked = [h for h in hosts if h in learned.rows_of]
    if not path or not asked:
        return
    listed = ", ".join("'" + h.replace("'", "''") + "'" for h in sorted(asked))
    rows: dict[str, list] = {h: [] for h in asked}
    for row in source.sql(LEARNED_ROWS_SQL.format(paths=path.replace("'", "''"),
                                                  hosts=listed)).to_pylist():
        rows[row["host"]].append(row["row_at"])
        learned.rows[row["row_at"]] = _row(row)
    learned.rows_of.update(rows)
