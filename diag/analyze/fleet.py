"""The routing analyzers at fleet scale, from the evidence lake: 5,000 hosts x 5,000 routes.

Contract: :func:`analyze(source, model, timings=None) -> (findings, checks)` gives exactly what
:func:`diag.analyze.routing.analyze` gives over the whole FIB (RIB vs FIB, blackholes and
unused tables, missing off-link pod CIDRs, egress leaks: the node x node sweeps), reading the
bundle through ``source`` (a :class:`diag.lake.LakeBundle`: whole columns, some hosts' rows,
SQL) and never holding the 25 million routes as Python objects:

1. **The sweeps, column-wise** (:func:`sweep`): every route row of the hosts whose ip rules
   select on the table only, as integer codes from the Parquet dictionaries; each distinct
   destination parsed once and covering a contiguous run of the sorted pod-CIDR probe
   addresses (two ``searchsorted`` per distinct destination). In blocks of rows, the few
   routes covering several probes (the default route, a pod-range route) are painted per host
   into a hosts x probes matrix per table, shortest prefix first, then the routes covering one
   probe are written over them (such a route is always the longer one; two for one cell: the
   longest, then the lowest metric, then the first row). The first table in rule order whose
   answer is not ``throw`` decides, as :func:`diag.analyze.lookup.quick_route` does; the
   verdict "sent by the cluster NIC or an overlay device" is one vectorised test per pair.
   What is left: the pairs that fail it, hosts with other rules (always walked in full), the
   autoDirectNodeRoutes candidates (a pair's answer via the peer's node IP).
2. **The RIB against the FIB** (:func:`_learned_columns`): a daemon's learned best path is
   proven installed by a route of the same host and prefix with its next hop as gateway (or
   any unicast route, for a local next hop) in a table the host's rules look up — the paths'
   and routes' codes mapped onto one code space, the kernel's keys marked in a table of the key
   range block by block, each block of paths looked up in it. The same question in DuckDB SQL
   (:data:`UNPROVEN_SQL`, ``RIB_VS_FIB = "sql"``) gives the same paths and was measured
   slower and ten times heavier (docs/explain.md); the paths not proven go on as in
   ``routing``.
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

# paths of a daemon's loc RIB (best, learned, IPv4) that no route proves installed; in
# bgp_paths' row order (file_row_number), as routing._Learned numbers them
UNPROVEN_SQL = """
WITH used AS (
    SELECT DISTINCT host, "table" FROM rules WHERE family = 'inet' AND action = 'lookup'),
ruled AS (SELECT DISTINCT host FROM used),
unicast AS (
    SELECT host, "table", dst AS prefix, gateway FROM routes
    WHERE family = 'inet' AND type = 'unicast' AND phase = 'main'),
kernel AS (
    SELECT r.host, r.prefix, r.gateway FROM unicast r
        SEMI JOIN used u ON u.host = r.host AND u."table" = r."table"
    UNION ALL
    SELECT r.host, r.prefix, r.gateway FROM unicast r
        ANTI JOIN ruled x ON x.host = r.host
    WHERE r."table" = 'main'),
learned AS (
    SELECT file_row_number AS row_at, host, prefix, nexthop, daemon, source, as_path_str
    FROM read_parquet('{paths}', file_row_number = true)
    WHERE rib = 'loc' AND best AND NOT coalesce(local, false) AND prefix NOT LIKE '%:%')
SELECT * FROM (
    SELECT l.* FROM learned l
        ANTI JOIN kernel k ON k.host = l.host AND k.prefix = l.prefix AND k.gateway = l.nexthop
    WHERE l.nexthop IS NULL OR l.nexthop NOT IN ('0.0.0.0', '')
    UNION ALL
    SELECT l.* FROM learned l
        ANTI JOIN kernel k ON k.host = l.host AND k.prefix = l.prefix
    WHERE l.nexthop IN ('0.0.0.0', ''))
ORDER BY row_at
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
    kept: Any = None               # column-wise: (learned rows, host codes, host names)

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


ROUTE_COLUMNS = ["host", "table", "family", "type", "phase", "dst", "gateway", "dev",
                 "nexthops", "metric"]     # read once: the sweep and the RIB join share them


CHUNK = 1 << 20             # rows per block of the sweep (under glibc's mmap threshold)
BLOCK_HOSTS = 200           # matrix rows per block of the verdict
RIB_VS_FIB = "columns"        # or "sql": docs/explain.md ("Fleet scale") has both measured


def analyze(source, model, timings: dict | None = None) -> tuple[list[Finding], list[Check]]:
    from diag.analyze import routing
    from diag.analyze.fib import build_fib
    from diag.bundle import OutputIndex

    timings = timings if timings is not None else {}
    clock = [time.monotonic(), time.process_time()]

    def lap(name: str) -> None:
        import resource

        now = [time.monotonic(), time.process_time()]
        timings[name] = {"s": round(now[0] - clock[0], 2), "cpu_s": round(now[1] - clock[1], 2),
                         "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                         // 1024}
        clock[:] = now

    routes = _Coded(source.columns("routes", ROUTE_COLUMNS))
    lap("read_routes")
    swept = sweep(source, model, timings, routes)
    lap("sweep")
    learned = _learned_columns(source, routes) if RIB_VS_FIB == "columns" else _learned(source)
    del routes
    lap(f"rib_vs_fib_{RIB_VS_FIB}")
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
    lap("plan")
    tables = {name: source.frame(name, hosts) for name in
              ("routes", "rules", "addresses", "neighbors", "fdb", "interfaces", "sysctls",
               "bgp_paths", "route_gets", "packets")}
    commands = source.frame("commands", hosts)
    outputs = OutputIndex(zip(commands["host"], commands["id"], commands["path"])) \
        if len(commands) else OutputIndex()
    fib = build_fib(tables, outputs=outputs)
    lap("fib_of_walked_hosts")
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


class _Coded:
    """The routes' columns, each column's dictionary codes made once (the sweep and the RIB
    join both need them)."""

    def __init__(self, table) -> None:
        self.table, self.cache = table, {}

    def column(self, name: str):
        return self.table.column(name)

    def codes(self, name: str):
        if name not in self.cache:
            self.cache[name] = _codes(self.table.column(name))
        return self.cache[name]


def _codes(column):
    """(int32 codes with -1 for null, list of values) of a dictionary column. Each Parquet
    row group comes with its own dictionary: they are unified once (pyarrow, in C++), the
    indices kept as they are (``combine_chunks`` also copies every index)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not hasattr(column, "chunks"):
        column = pa.chunked_array([column])
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    if column.num_chunks == 0:
        return np.zeros(0, dtype=np.int32), []
    column = column.unify_dictionaries()
    values = column.chunk(0).dictionary.to_pylist()
    parts = []
    for chunk in column.chunks:
        indices = chunk.indices
        parts.append((pc.fill_null(indices.cast("int32"), -1) if chunk.null_count else
                       indices).to_numpy(zero_copy_only=False))
    codes = np.concatenate(parts).astype(np.int32, copy=False)
    if any(v is None for v in values):          # a null inside the dictionary: code -1 too
        nulls = np.array([v is None for v in values] + [False])
        codes = np.where(nulls[codes], -1, codes).astype(np.int32)
    return codes, values


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


def sweep(source, model, timings: dict | None = None, routes=None) -> Swept:
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

    cols = routes if routes is not None else source.columns("routes", ROUTE_COLUMNS)
    cols = cols if isinstance(cols, _Coded) else _Coded(cols)
    i32 = np.int32
    # the columns as dictionary codes (views of the Parquet indices); the work below goes in
    # blocks of CHUNK rows and BLOCK_HOSTS matrix rows: 25 million rows at once made gigabytes
    # of temporaries, and this machine's kernel zeroes every fresh page (system time)
    host_c, host_v = cols.codes("host")
    fam = cols.codes("family")
    phase = cols.codes("phase")
    inet = _flags(fam[1], "inet")
    main = _flags(phase[1], "main")
    table_c, table_v = cols.codes("table")
    table_names = [str(t) if t else "main" for t in table_v] + ["main"]
    width = len(table_names)
    host_row = np.array([row_of_host.get(h, -1) if h not in full else -1 for h in host_v]
                        + [-1], dtype=i32)
    rank_of = np.full((len(host_v) + 1) * width, -1, dtype=np.int8)
    for hk, host in enumerate(host_v):
        for rank, table in enumerate(plan.get(host, ()) if host not in full else ()):
            for tk, name in enumerate(table_names):
                if name == table and rank_of[hk * width + tk] < 0:
                    rank_of[hk * width + tk] = rank
    dst_c, dst_v = cols.codes("dst")
    net = np.zeros(len(dst_v) + 1, dtype=np.int64)
    plen = np.full(len(dst_v) + 1, -1, dtype=np.int8)
    for k, text in enumerate(dst_v):
        try:
            parsed = ipaddress.ip_network("0.0.0.0/0" if text == "default" else text,
                                          strict=False)
        except (ValueError, TypeError):
            continue
        if parsed.version == 4:
            net[k], plen[k] = int(parsed.network_address), parsed.prefixlen
    # each distinct destination's run of sorted probes [lo, hi): a route covers the probes of
    # its destination, so the searches are per distinct text, not per row
    d_lo = np.searchsorted(sorted_probes, net, side="left").astype(i32)
    d_hi = np.searchsorted(sorted_probes, net + (np.int64(1) << (32 - np.maximum(
        plen, 0).astype(np.int64))), side="left").astype(i32)
    d_count = np.where(plen >= 0, d_hi - d_lo, 0).astype(i32)
    metric_col = cols.column("metric")

    def metric(rows):
        values = metric_col.take(rows).to_numpy(zero_copy_only=False)
        return np.nan_to_num(values.astype(np.float64), nan=0.0)

    def chunks():
        """(rows, their matrix row, their table rank, their destination code) of the rows
        that cover a probe, in blocks."""
        total = len(host_c)
        for start in range(0, total, CHUNK):
            stop = min(total, start + CHUNK)
            h = host_c[start:stop]
            h = np.where(h < 0, np.int32(len(host_v)), h)
            t = table_c[start:stop]
            t = np.where(t < 0, np.int32(len(table_v)), t)
            d = dst_c[start:stop]
            d = np.where(d < 0, np.int32(len(dst_v)), d)
            keep = inet[fam[0][start:stop]] & main[phase[0][start:stop]] \
                & (d_count[d] > 0)
            row = host_row[h]
            keep &= row >= 0
            rank = rank_of[h * np.int32(width) + t]
            keep &= rank >= 0
            at = np.flatnonzero(keep).astype(i32)
            yield at + np.int32(start), row[at], rank[at], d[at]

    answers: dict[int, Any] = {}
    single_written: dict[int, Any] = {}

    def matrix(rank: int):
        if rank not in answers:
            answers[rank] = np.full((n_hosts, n_probes), -1, dtype=i32)
            single_written[rank] = np.zeros(n_hosts * n_probes, dtype=bool)
        return answers[rank]

    # pass 1: the few routes covering several probes (default route, a pod-range route),
    # painted shortest prefix first, then for one prefix the worst metric first: the best last
    covered = 0
    wide_parts = []
    for at, row, rank, d in chunks():
        covered += len(at)
        many = np.flatnonzero(d_count[d] > 1)
        if len(many):
            wide_parts.append((at[many], row[many], rank[many], d[many]))
    if timings is not None:
        timings["sweep_route_rows"] = len(host_c)
        timings["sweep_rows_covering_a_probe"] = covered
    if wide_parts:
        at, row, rank, d = (np.concatenate(x) for x in zip(*wide_parts))
        sequence = np.lexsort((-np.arange(len(at)), -metric(at), plen[d]))
        for k in sequence.tolist():
            matrix(int(rank[k]))[row[k], order[d_lo[d[k]]:d_hi[d[k]]]] = at[k]
    # pass 2: the routes covering one probe (always longer than a wide one covering it);
    # two for one cell: the longest prefix, then the lowest metric, then the first row
    for at, row, rank, d in chunks():
        one = np.flatnonzero(d_count[d] == 1)
        if not len(one):
            continue
        at, row, rank, d = at[one], row[one], rank[one], d[one]
        present = np.flatnonzero(np.bincount(rank.astype(np.intp)))
        for r in present.tolist():
            pick = np.flatnonzero(rank == r) if len(present) > 1 else slice(None)
            rows, cells = at[pick], row[pick].astype(np.int64) * n_probes + order[d_lo[d[pick]]]
            flat, written = matrix(r).reshape(-1), single_written[r]
            earlier = written[cells].any()
            if not earlier:
                flat[cells] = rows
                if not (flat[cells] != rows).any():      # one route per cell: done
                    written[cells] = True
                    continue
                # two in this block for one cell: undo, then resolve below
                flat[cells] = -1
            rows, cells = _best_per_cell(rows, cells, lambda x: plen[dst_c[x]], metric,
                                         flat, written)
            flat[cells] = rows
            written[cells] = True
    single_written.clear()
    # the first table whose answer is not "throw"
    type_c, type_v = cols.codes("type")
    kinds = [str(t) if t else "unicast" for t in type_v] + ["unicast"]
    is_throw = np.array([k == "throw" for k in kinds])
    is_unicast = np.array([k == "unicast" for k in kinds])
    final = np.full((n_hosts, n_probes), -1, dtype=i32)
    for rank in sorted(answers):
        cell = answers.pop(rank)
        for lo_h in range(0, n_hosts, BLOCK_HOSTS):
            block = cell[lo_h:lo_h + BLOCK_HOSTS]
            into = final[lo_h:lo_h + BLOCK_HOSTS]
            take = (into < 0) & (block >= 0)
            kind = type_c[block[take]]
            take[take] = ~is_throw[np.where(kind < 0, len(type_v), kind)]
            into[take] = block[take]
        del cell
    # the verdict of each answer: unicast, by a device that is not the default-route NIC (or
    # the default NIC is the cluster NIC), or by an overlay device
    names: dict[str, int] = {}

    def code(text) -> int:
        return -1 if text is None else names.setdefault(str(text), len(names))

    dev_c, dev_v = cols.codes("dev")
    hops_c, hops_v = cols.codes("nexthops")
    gw_c, gw_v = cols.codes("gateway")
    dev_code = np.array([code(d) for d in dev_v] + [-1], dtype=i32)
    gw_code = np.array([code(g) for g in gw_v] + [-1], dtype=i32)
    first_dev, first_gw, ecmp = [], [], []
    for text in hops_v:
        try:
            hops = json.loads(text) if text else None
        except ValueError:
            hops = None
        if isinstance(hops, list) and hops:
            first_dev.append(code((hops[0] or {}).get("dev")))
            first_gw.append(code((hops[0] or {}).get("gateway")))
            ecmp.append(len(hops) > 1)
        else:                           # no list: the row's own dev and gateway
            first_dev.append(-2)
            first_gw.append(-2)
            ecmp.append(False)
    first_dev = np.array(first_dev + [-2], dtype=i32)
    first_gw = np.array(first_gw + [-2], dtype=i32)
    ecmp = np.array(ecmp + [False])
    vxlan = _overlay_devices(source, node_names, code)
    # None compares as the kernel's answer does in routing (a missing device is -1 too)
    default_dev = np.array([code(n.default_iface.value) for n in nodes], dtype=i32)
    same = np.array([n.default_iface.value == n.cluster_iface.value for n in nodes])
    cluster_dev = np.array([code(n.cluster_iface.value) for n in nodes], dtype=i32)
    peer_ip = np.array([code(n.node_ip.value) for n, _p in entries], dtype=i32)
    ok = np.zeros((n_hosts, n_probes), dtype=bool)
    by_cluster = np.zeros((n_hosts, n_probes), dtype=bool)
    direct_mask = np.zeros((n_hosts, n_probes), dtype=bool)

    def gather(codes, size, table, rows):
        picked = codes[rows]
        return table[np.where(picked < 0, size, picked)]

    for lo_h in range(0, n_hosts, BLOCK_HOSTS):
        block = final[lo_h:lo_h + BLOCK_HOSTS]
        found = block >= 0
        rows = block[found]
        dev = gather(hops_c, len(hops_v), first_dev, rows)
        dev = np.where(dev == -2, gather(dev_c, len(dev_v), dev_code, rows), dev)
        gateway = gather(hops_c, len(hops_v), first_gw, rows)
        gateway = np.where(gateway == -2, gather(gw_c, len(gw_v), gw_code, rows), gateway)
        multi = gather(hops_c, len(hops_v), ecmp, rows)
        unicast = gather(type_c, len(type_v), is_unicast, rows)
        host_of, probe_of = np.nonzero(found)
        host_of += lo_h
        overlay = np.isin((host_of.astype(np.int64) << 20) + dev, vxlan) if len(vxlan) else \
            np.zeros(len(dev), dtype=bool)
        ok[lo_h:lo_h + BLOCK_HOSTS][found] = unicast & (
            overlay | (dev != default_dev[host_of]) | same[host_of])
        # the peers hook: routed by the cluster NIC or an overlay device
        by_cluster[lo_h:lo_h + BLOCK_HOSTS][found] = unicast & (
            overlay | (dev == cluster_dev[host_of]))
        # autoDirectNodeRoutes candidates: unicast answers whose gateways hold the peer's IP
        direct_mask[lo_h:lo_h + BLOCK_HOSTS][found] = unicast & (
            (gateway == peer_ip[probe_of]) | multi)
    del final
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


def _flags(values: list, wanted: str):
    """Per code (the null code last): the value is ``wanted``."""
    import numpy as np

    return np.array([v == wanted for v in values] + [False])


def _best_per_cell(rows, cells, plen_of, metric_of, flat, written):
    """The rows to write when several one-probe routes meet in a cell (in this block, or one
    written by an earlier block): per cell the longest prefix, then the lowest metric, then the
    first row — the FIB's order (longest, lowest metric, table order)."""
    import numpy as np

    old = np.unique(cells[written[cells]])
    all_rows = np.concatenate([rows, flat[old]]).astype(np.int32)
    all_cells = np.concatenate([cells, old])
    order = np.lexsort((all_rows, metric_of(all_rows), -plen_of(all_rows).astype(np.int64),
                        all_cells))
    first = np.r_[True, all_cells[order][1:] != all_cells[order][:-1]]
    return all_rows[order][first], all_cells[order][first]


def _is(coded, wanted: str):
    """Per row: the value is ``wanted`` (from ``_codes``' pair)."""
    import numpy as np

    codes, values = coded
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


def _learned_columns(source, routes=None) -> LakeLearned:
    """Step 2 column-wise (what :data:`UNPROVEN_SQL` asks, over dictionary codes): the paths'
    and routes' hosts, prefixes and next hops mapped onto one code space through their few
    distinct values; the kernel's (host, prefix, gateway) keys marked in a table of the key
    range, block by block, then each learned path looked up in it — no string per row, no
    temporary of the whole table."""
    import numpy as np
    import pyarrow.compute as pc

    learned = LakeLearned()
    paths = source.columns("bgp_paths", ["host", "rib", "best", "local", "prefix", "nexthop"])
    if not paths.num_rows:
        return learned
    p_host, host_v = _codes(paths.column("host"))
    p_prefix, prefix_v = _codes(paths.column("prefix"))
    p_hop, hop_v = _codes(paths.column("nexthop"))
    p_rib, rib_v = _codes(paths.column("rib"))
    # booleans with nulls would come out as objects: null best is not best, null local is not
    best = pc.fill_null(paths.column("best"), False).to_numpy(zero_copy_only=False)
    local = pc.fill_null(paths.column("local"), False).to_numpy(zero_copy_only=False)
    del paths
    routes = routes if routes is not None else source.columns("routes", ROUTE_COLUMNS)
    routes = routes if isinstance(routes, _Coded) else _Coded(routes)
    r_host, r_host_v = routes.codes("host")
    fam, typ, phase = routes.codes("family"), routes.codes("type"), routes.codes("phase")
    r_table, table_v = routes.codes("table")
    dst_c, dst_v = routes.codes("dst")
    gw_c, gw_v = routes.codes("gateway")
    # the tables each host's ip rules look up (main for a host without lookup rules)
    rules = source.frame("rules")
    used = rules[((rules["family"] == "inet") & (rules["action"] == "lookup"))
                 .to_numpy(dtype=bool)] if len(rules) else rules
    ruled = {str(h) for h in used["host"]} if len(used) else set()
    pairs = {(str(h), str(t)) for h, t in zip(used["host"], used["table"])} if len(used) \
        else set()
    width = len(table_v) + 1
    allowed = np.zeros((len(r_host_v) + 1) * width, dtype=bool)
    for hk, host in enumerate(r_host_v):
        for tk, table in enumerate(table_v):
            allowed[hk * width + tk] = (host, str(table)) in pairs or (
                host not in ruled and table == "main")
    # one code space: the paths'; a route's host/prefix/gateway the paths never name is -2
    host_map = _onto(host_v, r_host_v)
    prefix_map = _onto(prefix_v, dst_v)
    hop_map = _onto(hop_v, gw_v)
    n_prefix, n_hop = len(prefix_v) + 1, len(hop_v) + 1
    top = (len(host_v) + 1) * n_prefix * n_hop
    by_gateway = np.zeros(top, dtype=bool) if top < 1 << 31 else None
    by_prefix = np.zeros((len(host_v) + 1) * n_prefix, dtype=bool)
    spilled: list = []                  # keys when the range is too large for a table
    inet, unicast, main = (_flags(fam[1], "inet"), _flags(typ[1], "unicast"),
                           _flags(phase[1], "main"))
    for lo in range(0, len(r_host), CHUNK):
        sl = slice(lo, lo + CHUNK)
        h = _nulls(r_host[sl], len(r_host_v))
        keep = inet[_nulls(fam[0][sl], len(fam[1]))] & unicast[_nulls(typ[0][sl], len(typ[1]))] \
            & main[_nulls(phase[0][sl], len(phase[1]))] \
            & allowed[h * width + _nulls(r_table[sl], len(table_v))]
        kh = host_map[h]
        kp = prefix_map[_nulls(dst_c[sl], len(dst_v))]
        keep &= (kh >= 0) & (kp >= 0)
        kh, kp = kh[keep].astype(np.int64), kp[keep]
        kg = hop_map[_nulls(gw_c[sl], len(gw_v))][keep]
        bp = kh * n_prefix + kp
        by_prefix[bp] = True
        gateway = kg >= 0
        keys = bp[gateway] * n_hop + kg[gateway]
        if by_gateway is not None:
            by_gateway[keys] = True
        else:
            spilled.append(keys)
    v4 = np.array([":" not in str(p) for p in prefix_v] + [True])
    loc = _flags(rib_v, "loc")
    local_hop = np.array([h in ("0.0.0.0", "") for h in hop_v] + [False])
    rows_parts, unproven_parts, hosts_seen = [], [], np.zeros(len(host_v) + 1, dtype=bool)
    for lo in range(0, len(p_host), CHUNK):
        sl = slice(lo, lo + CHUNK)
        prefix = p_prefix[sl]
        mine = loc[_nulls(p_rib[sl], len(rib_v))] & best[sl] & ~local[sl] \
            & v4[_nulls(prefix, len(prefix_v))]
        at = np.flatnonzero(mine).astype(np.int32)
        lh = _nulls(p_host[sl][at], len(host_v))
        lp, lg = prefix[at], p_hop[sl][at]
        hosts_seen[lh] = True
        bp = lh.astype(np.int64) * n_prefix + lp
        known = (lg >= 0) & (lp >= 0)
        proven = np.zeros(len(at), dtype=bool)
        keys = bp[known] * n_hop + lg[known]
        if by_gateway is not None:
            proven[known] = by_gateway[keys]
        else:
            proven[known] = _member(keys, np.concatenate(spilled)) if spilled else False
        near = local_hop[_nulls(lg, len(hop_v))] & (lp >= 0)
        proven[near] |= by_prefix[bp[near]]
        rows_parts.append(at + np.int32(lo))
        unproven_parts.append(at[~proven] + np.int32(lo))
    del by_gateway, by_prefix
    for code in np.flatnonzero(hosts_seen[:-1]).tolist():
        learned.rows_of[host_v[code]] = ()
    rows = np.concatenate(rows_parts)
    unproven = np.concatenate(unproven_parts)
    _take_rows(source, learned, unproven, host_v, p_host, for_unproven=True)
    learned.kept = (rows, p_host, host_v)           # the walk asks some hosts' rows later
    return learned


def _member(values, members, limit: int = 1 << 30):
    """``np.isin`` of non-negative integer keys through a table of the key range (up to
    ``limit`` bits: 128 MB; hosts x prefixes x next hops at 5,000 hosts is ~150 million), else
    routing's hash-based test."""
    import numpy as np

    from diag.analyze.routing import _isin

    if not len(values) or not len(members):
        return np.zeros(len(values), dtype=bool)
    top = max(int(values.max()), int(members.max()))
    if top >= limit or min(int(values.min()), int(members.min())) < 0:
        return _isin(values, members)
    table = np.zeros(top + 1, dtype=bool)
    table[members] = True
    return table[values]


def _nulls(codes, size: int):
    import numpy as np

    return np.where(codes < 0, size, codes)


def _onto(left: list, right: list):
    """Each of ``right``'s values as its code in ``left`` (-1 null, -2 absent), indexable by
    a right code (with the null code ``len(right)`` last)."""
    import numpy as np

    index = {v: k for k, v in enumerate(left)}
    return np.array([index.get(v, -2) for v in right] + [-1], dtype=np.int32)


def _take_rows(source, learned: LakeLearned, rows, host_v, p_host, for_unproven: bool) -> None:
    """The (prefix, nexthop, daemon, source, as_path_str) of path rows ``rows`` (file order)."""
    if not len(rows):
        return
    import pyarrow as pa

    data = source.columns("bgp_paths", ["prefix", "nexthop", "daemon", "source", "as_path_str"]
                          ).take(pa.array(rows))
    for i, prefix, nexthop, daemon, src, path in zip(
            rows.tolist(), *(data.column(c).to_pylist() for c in data.column_names)):
        learned.rows[i] = (str(prefix), str(nexthop), str(daemon), str(src), path)
        if for_unproven:
            learned.unproven_of.setdefault(host_v[p_host[i]], []).append(i)


def _row(row: dict) -> tuple:
    return (str(row["prefix"]), str(row["nexthop"]), str(row["daemon"]), str(row["source"]),
            row["as_path_str"])


def _load_learned_rows(source, learned: LakeLearned, hosts: set[str]) -> None:
    """The learned rows of the hosts the walk asks about (routing._daemon_rows)."""
    asked = [h for h in hosts if h in learned.rows_of]
    if not asked:
        return
    if learned.kept is not None:
        import numpy as np

        rows, p_host, host_v = learned.kept
        codes = [k for k, h in enumerate(host_v) if h in set(asked)]
        mine = rows[np.isin(p_host[rows], codes)]
        _take_rows(source, learned, mine, host_v, p_host, for_unproven=False)
        by_host: dict[str, list] = {h: [] for h in asked}
        for i in mine.tolist():
            by_host[host_v[p_host[i]]].append(i)
        learned.rows_of.update(by_host)
        return
    path = source.path("bgp_paths")
    listed = ", ".join("'" + h.replace("'", "''") + "'" for h in sorted(asked))
    rows: dict[str, list] = {h: [] for h in asked}
    for row in source.sql(LEARNED_ROWS_SQL.format(paths=path.replace("'", "''"),
                                                  hosts=listed)).to_pylist():
        rows[row["host"]].append(row["row_at"])
        learned.rows[row["row_at"]] = _row(row)
    learned.rows_of.update(rows)
