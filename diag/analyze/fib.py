"""The FIB: the collected hosts' kernel forwarding state as plain records, built once.

Contract: :func:`build_fib(tables, family="inet", outputs=None) -> Fib` reads the facts tables
(``routes``, ``rules``, ``addresses``, ``neighbors``, ``fdb``, ``interfaces``, ``sysctls``) of
one address family into a :class:`Fib`: ip rules per host in priority order, routes column-wise,
address owners, neighbour and FDB entries, vxlan devices, ``ip_forward`` per host. Every record
carries its :class:`~diag.model.Evidence` (the bundle file from ``outputs``, a
:class:`diag.bundle.OutputIndex`, and the JSON pointer of the row in that host's output).

The routes are kept column-wise (:class:`RouteColumns`: one numpy sort by host, table, prefix
length, metric; each distinct destination parsed once) and a :class:`Route` is made only for a
row a lookup returns or a caller lists through ``Fib.routes`` (a lazy mapping): 500 hosts x
5,000 routes is 2.5 million rows, of which the analyzers touch a few hundred thousand. What the
kernel does with this state is :mod:`diag.analyze.lookup`; the walk over many hosts is
:mod:`diag.analyze.trace`.

Pure functions over the facts tables (pandas at the edge, plain records inside). No I/O.
"""
from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from diag.bundle import OutputIndex
from diag.model import Evidence
from diag.values import column_objects, or_none

# pd.factorize sizes its hash table for every value (2.5 million cells: ~100 MB allocated, page
# faulted and freed per call); the route and path columns hold a few thousand distinct values,
# so the table starts small and grows
FEW = 1 << 12


@dataclass(frozen=True)
class Route:
    table: str
    type: str
    dst: Any                        # ip_network
    gateway: str | None
    dev: str | None
    nexthops: tuple[tuple[str | None, str | None], ...]   # (gateway, dev)
    metric: int
    prefsrc: str | None
    protocol: str | None
    origin: tuple[str, str, int]    # (host, bundle file, index in its JSON array)

    @functools.cached_property
    def evidence(self) -> Evidence:
        # built on demand: a FIB of 2.5 million routes needs only the few a finding cites
        host, path, index = self.origin
        return Evidence(host, path, f"/{index}", self.text)

    @property
    def text(self) -> str:
        return _route_text(self.type, self.dst, self.nexthops, self.table)


def _route_text(kind: str, dst, nexthops, table: str) -> str:
    via = " ".join(f"via {g} dev {d}" if g else f"dev {d}" for g, d in nexthops)
    kind = "" if kind == "unicast" else f"{kind} "
    table = "" if table == "main" else f" table {table}"
    return f"{kind}{dst} {via}".strip() + table


@dataclass(frozen=True)
class Rule:
    priority: int
    src: Any
    dst: Any
    iif: str | None
    oif: str | None
    fwmark: tuple[int, int] | None
    table: str | None
    action: str
    invert: bool
    evidence: Evidence
    goto: int | None = None


class RouteColumns:
    """The FIB's routes of one family, column-wise: one entry per route row, sorted by (host,
    table), then longest prefix, then lowest metric, then table order. :class:`Route` records
    are made only for the rows a lookup returns or a caller lists (:meth:`route`).

    Only what the lookups search is kept in sorted order (network ints, prefix lengths,
    versions, type codes); the other fields are read through ``order`` from the routes table's
    own columns when a row is asked for — copying a dozen columns of millions of rows into
    sorted lists was most of a large FIB's time and memory."""

    def __init__(self, order, fields: dict, net, plen, version, kind_code, kind_names) -> None:
        self.order = order                 # sorted position -> row of the source columns
        self.fields = fields               # source-order arrays (see _route_columns)
        self.net, self.plen, self.version = net, plen, version
        self.kind_code, self.kind_names = kind_code, kind_names
        self.made: dict[int, Route] = {}
        self.groups: dict[tuple[str, str], tuple[int, int]] = {}   # (host, table) -> [lo, hi)

    @functools.cached_property
    def version_of(self) -> list[int]:
        return self.version.tolist()

    def kind(self, i: int) -> str:
        return self.kind_names[self.kind_code[i]]

    def _value(self, name: str, i: int):
        return or_none(self.fields[name][self.order[i]])

    def gateway(self, i: int):
        return self._value("gateway", i)

    def dev(self, i: int):
        return self._value("dev", i)

    def nexthops(self, i: int):
        return self._value("nexthops", i)

    def route(self, i: int) -> "Route":
        made = self.made.get(i)
        if made is None:
            f = self.fields
            j = int(self.order[i])
            kind = self.kind_names[self.kind_code[i]]
            nexthops = or_none(f["nexthops"][j])
            gateway, dev = or_none(f["gateway"][j]), or_none(f["dev"][j])
            if kind == "unicast":
                if not nexthops or not isinstance(nexthops, (list, tuple)):
                    hops = ((gateway, dev),)
                else:
                    hops = tuple((or_none(n.get("gateway")), or_none(n.get("dev")))
                                 for n in nexthops)
            else:
                hops = ()
            # the frozen dataclass's __init__ sets each field through object.__setattr__: a
            # lookup-heavy analysis makes hundreds of thousands of these, so fill __dict__
            made = self.made[i] = object.__new__(Route)
            made.__dict__.update(
                table=f["table_names"][f["table_code"][j]], type=kind,
                dst=f["dst_objects"][f["dst_code"][j]], gateway=gateway, dev=dev,
                nexthops=hops, metric=int(f["metric"][j]), prefsrc=or_none(f["prefsrc"][j]),
                protocol=or_none(f["protocol"][j]),
                origin=(f["host_names"][f["host_code"][j]], f["files"][f["file_code"][j]],
                        int(f["pointer"][j])))
        return made


class _LazyRoutes(dict):
    """``Fib.routes``: (host, table) -> its routes, longest prefix first then lowest metric, as
    :class:`Route` records made when a key is first read (a FIB of millions of routes is mostly
    only looked up, through the index)."""

    def __init__(self, columns: "RouteColumns | None") -> None:
        super().__init__()
        self.columns = columns
        for key in (columns.groups if columns else ()):
            dict.__setitem__(self, key, None)

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        if value is None:
            lo, hi = self.columns.groups[key]
            value = [self.columns.route(i) for i in range(lo, hi)]
            dict.__setitem__(self, key, value)
        return value

    def get(self, key, default=None):
        return self[key] if key in self else default

    def values(self):
        return [self[key] for key in self]

    def items(self):
        return [(key, self[key]) for key in self]

    def __iter__(self):
        return iter(list(dict.keys(self)))


@dataclass
class Fib:
    rules: dict[str, list[Rule]] = field(default_factory=dict)
    routes: dict[tuple[str, str], list[Route]] = field(default_factory=dict)   # (host, table)
    owners: dict[str, tuple[str, str]] = field(default_factory=dict)           # ip -> (host, dev)
    addrs: dict[str, list[tuple[Any, str, str]]] = field(default_factory=dict) # host -> (net, ip, dev)
    neighbors: dict[tuple[str, str, str], tuple[str, str | None, Evidence]] = field(
        default_factory=dict)                                                   # (host, ip, dev)
    fdb: dict[tuple[str, str, str], tuple[str, Evidence]] = field(default_factory=dict)
    vxlan: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (host, dev)
    forwarding: dict[str, bool | None] = field(default_factory=dict)
    hosts: tuple[str, ...] = ()
    # per (host, table): prefix lengths longest first, and per length {network int: row of the
    # best route}; built lazily by _index from the columns (a linear scan per lookup was
    # O(routes): 500 hosts x 5,000 routes)
    index: dict[tuple[str, str], tuple[tuple[tuple[int, int], ...], dict[int, dict[int, int]]]] \
        = field(default_factory=dict)
    cache: dict[tuple, Any] = field(default_factory=dict)   # lookup() answers, per query
    exact: dict[tuple[str, str], dict] = field(default_factory=dict)  # (host, table) -> rows
                                                                       # by exact prefix
    columns: "RouteColumns | None" = None
    outputs: OutputIndex = field(default_factory=OutputIndex)   # where evidence points


def _net(text, family: str = "inet"):
    text = or_none(text)
    if text in (None, "all", ""):
        return None
    return parse_net(str(text), family)


@functools.lru_cache(maxsize=1 << 16)
def parse_net(text: str, family: str):
    """Parsing is the cost of building a FIB: the same prefixes recur on every host."""
    if text == "default":
        text = "0.0.0.0/0" if family == "inet" else "::/0"
    return ipaddress.ip_network(text, strict=False)


def _pointer_index(df) -> list[int]:
    """Position of each row within its (host, source) output: the JSON array index."""
    return list(df.groupby(["host", "source"], sort=False).cumcount())


def _route_columns(tables, family: str, outputs: OutputIndex) -> RouteColumns | None:
    """The routes of ``family`` (main phase) as :class:`RouteColumns`: each distinct destination is
    parsed once, the order is one numpy sort, no per-route Python record and no copy of the
    table's object columns (a row's fields are read through the order when it is asked for)."""
    import numpy as np
    import pandas as pd

    routes = tables["routes"]
    keep = ((routes["family"] == family) & (routes["phase"] == "main")) \
        if "phase" in routes else routes["family"] == family
    keep = keep.to_numpy(dtype=bool)
    if not keep.any():
        return None
    rows = None if keep.all() else np.flatnonzero(keep)    # None: every row

    def column(name: str):
        series = routes[name]
        return series if rows is None else series.take(rows)

    def source(name: str):
        # the column's own array (object columns are not copied); rows picked by index
        values = routes[name].to_numpy(dtype=object)
        return values if rows is None else values[rows]

    n = int(keep.sum())
    del keep
    # int32 codes, each made and its temporaries dropped before the next: a FIB of millions of
    # rows keeps a dozen of these, and every fresh page of a large process costs here
    i32 = np.int32
    kind_code, kind_names = _recoded_codes(column("type"), "unicast")
    table_code, table_names = _recoded_codes(column("table"), "main")
    metric = column("metric")
    metrics = metric.to_numpy(dtype=np.int64, na_value=0) \
        if str(metric.dtype) in ("Int64", "int64") else \
        np.array([int(m or 0) for m in column_objects(metric)], dtype=np.int64)
    del metric
    # the destination: parsed once per distinct text
    dst_codes, dst_uniques = pd.factorize(source("dst"), use_na_sentinel=False,
                                          size_hint=FEW)
    dst_codes = dst_codes.astype(i32)
    nets = [_net(text, family) for text in dst_uniques.tolist()]
    u_plen = np.array([x.prefixlen for x in nets], dtype=np.int16)
    u_version = np.array([x.version for x in nets], dtype=np.int8)
    ints = [int(x.network_address) for x in nets]
    u_net = np.array(ints, dtype=np.uint64) if all(x < 1 << 64 for x in ints) else \
        _object_array(ints)
    # the bundle file of each row's output, and each row's (host, table): integer codes
    host_codes, host_names = pd.factorize(column("host"))
    host_codes = host_codes.astype(i32)
    source_codes, source_names = pd.factorize(column("source"))
    host_names = _object_array([str(h) for h in host_names])
    output_key = host_codes.astype(np.int64) * len(source_names) + source_codes
    del source_codes
    file_codes, file_keys = pd.factorize(output_key, size_hint=FEW)
    del output_key
    file_codes = file_codes.astype(i32)
    pointer = _position_in_output(file_codes, len(file_keys)).astype(i32)
    files = _object_array([
        outputs.path(h, s) for h, s in (
            (host_names[k // len(source_names)],
             str(source_names[k % len(source_names)]).split("+")[0])
            for k in file_keys.tolist())])
    group_codes = host_codes.astype(np.int64) * len(table_names) + table_code
    plen = u_plen[dst_codes]
    order = _route_order(group_codes, plen, metrics).astype(i32)
    fields = {"gateway": source("gateway"), "dev": source("dev"),
              "nexthops": source("nexthops"), "prefsrc": source("prefsrc"),
              "protocol": source("protocol"), "table_code": table_code,
              "table_names": table_names, "dst_code": dst_codes,
              "dst_objects": _object_array(nets), "metric": metrics,
              "host_code": host_codes, "host_names": host_names,
              "file_code": file_codes, "files": files, "pointer": pointer}
    sorted_dst = dst_codes[order]
    cols = RouteColumns(order, fields, u_net[sorted_dst], plen[order], u_version[sorted_dst],
                    kind_code[order], kind_names)
    del sorted_dst, plen, kind_code
    sorted_groups = group_codes[order]
    bounds = np.flatnonzero(np.diff(sorted_groups)) + 1
    starts = [0] + bounds.tolist()
    ends = bounds.tolist() + [n]
    for lo, hi in zip(starts, ends):
        code = int(sorted_groups[lo])
        cols.groups[(host_names[code // len(table_names)],
                     table_names[code % len(table_names)])] = (lo, hi)
    return cols


def _route_order(group_codes, plen, metrics):
    """Rows sorted by (host, table) group, longest prefix, lowest metric, then table order:
    one stable sort of a combined int64 key when the ranges fit in it (else a lexsort)."""
    import numpy as np

    n = len(group_codes)
    if not n:
        return np.arange(0, dtype=np.int64)
    low, high = int(metrics.min()), int(metrics.max())
    span_metric = high - low + 1
    span = (int(group_codes.max()) + 1) * 129 * span_metric
    if span < 1 << 62:
        key = (group_codes * 129 + (128 - plen)) * span_metric + (metrics - low)
        return np.argsort(key, kind="stable")
    return np.lexsort((np.arange(n), metrics, -plen, group_codes))


def _position_in_output(codes, count: int):
    """Each row's position among the rows of the same code (its index in its output's JSON
    array): the running count per code, in row order."""
    import numpy as np

    n = len(codes)
    cuts = np.flatnonzero(np.diff(codes)) + 1
    if len(cuts) == count - 1:           # each output's rows in one block (as tables are built)
        starts = np.r_[0, cuts]
        return np.arange(n, dtype=np.int64) - np.repeat(starts, np.diff(np.r_[starts, n]))
    by_output = np.argsort(codes, kind="stable")
    firsts = np.r_[0, np.flatnonzero(np.diff(codes[by_output])) + 1]
    pointer = np.empty(n, dtype=np.int64)
    pointer[by_output] = np.arange(n) - np.repeat(firsts, np.diff(np.r_[firsts, n]))
    return pointer


def _recoded_codes(series, default: str):
    """(codes, names): ``str(value or default)`` of every row as an int code into ``names``,
    computed once per distinct value; ``names`` in the order the rows first show them (as
    ``pd.factorize`` of the recoded column orders them)."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(series, use_na_sentinel=True, size_hint=FEW)
    names = [str(u) if u else default for u in uniques.tolist()] + [default]
    first = {}
    merged = np.array([first.setdefault(name, len(first)) for name in names], dtype=np.int32)
    recoded = merged[codes]              # a missing value (code -1): the default, last entry
    del codes
    # re-numbered by first appearance in the rows
    order, seen = pd.factorize(recoded, size_hint=FEW)
    del recoded
    distinct = list(first)
    return order.astype(np.int32), [distinct[k] for k in seen.tolist()]


def _object_array(values: list):
    import numpy as np

    out = np.empty(len(values), dtype=object)
    for k, value in enumerate(values):
        out[k] = value
    return out


def build_fib(tables, family: str = "inet", outputs: OutputIndex | None = None) -> Fib:
    outputs = outputs if outputs is not None else OutputIndex()
    fib = Fib(outputs=outputs)

    def ev(host, source, index, value) -> Evidence:
        return Evidence(host, outputs.path(host, str(source).split("+")[0]), f"/{index}", value)

    fib.columns = _route_columns(tables, family, outputs)
    fib.routes = _LazyRoutes(fib.columns)

    rules = tables["rules"]
    rules = rules[rules["family"] == family]
    for idx, row in zip(_pointer_index(rules), rules.itertuples(index=False)):
        mark = or_none(row.fwmark)
        fw = None
        if mark:
            value, _, mask = str(mark).partition("/")
            fw = (int(value, 0), int(mask, 0) if mask else 0xFFFFFFFF)
        action = str(or_none(row.action) or "lookup")
        table = or_none(row.table)
        goto = None
        if action == "goto":
            goto = int(table) if table and str(table).isdigit() else None
        text = (f"{row.priority}: {'not ' if row.not_ else ''}from {row.src or 'all'}"
                + (f" to {row.dst}" if or_none(row.dst) not in (None, 'all') else "")
                + (f" iif {row.iif}" if or_none(row.iif) else "")
                + (f" fwmark {mark}" if mark else "")
                + (f" lookup {table}" if action == "lookup" else f" {action}"))
        fib.rules.setdefault(row.host, []).append(Rule(
            int(row.priority), _net(row.src, family), _net(row.dst, family), or_none(row.iif),
            or_none(row.oif), fw, str(table) if table is not None else None, action, bool(row.not_),
            ev(row.host, row.source, idx, text), goto))
    for lst in fib.rules.values():
        lst.sort(key=lambda r: r.priority)

    addrs = tables["addresses"]
    addrs = addrs[addrs["family"] == family]
    for row in addrs.itertuples(index=False):
        fib.owners.setdefault(str(row.address), (row.host, row.ifname))
        fib.addrs.setdefault(row.host, []).append(
            (ipaddress.ip_network(f"{row.address}/{row.prefixlen}", strict=False),
             str(row.address), row.ifname))

    neigh = tables["neighbors"]
    neigh = neigh[neigh["phase"] == "main"] if "phase" in neigh else neigh
    for idx, row in zip(_pointer_index(neigh), neigh.itertuples(index=False)):
        fib.neighbors[(row.host, str(row.dst), str(row.dev))] = (
            str(row.state), or_none(row.lladdr),
            ev(row.host, row.source, idx, f"{row.dst} dev {row.dev} lladdr {row.lladdr} "
                                          f"{row.state}"))
    fdb = tables["fdb"]
    for idx, row in zip(_pointer_index(fdb), fdb.itertuples(index=False)):
        if or_none(row.dst):
            fib.fdb[(row.host, str(row.ifname), str(row.mac).lower())] = (
                str(row.dst), ev(row.host, row.source, idx,
                                 f"{row.mac} dev {row.ifname} dst {row.dst}"))
    links = tables["interfaces"]
    for row in links.itertuples(index=False):
        if row.kind == "vxlan":
            fib.vxlan[(row.host, row.ifname)] = {"vni": or_none(row.vxlan_id),
                                                 "port": or_none(row.vxlan_port),
                                                 "local": or_none(row.vxlan_local),
                                                 "remote": or_none(row.vxlan_remote)}
    sysctls = tables.get("sysctls")
    if sysctls is not None and not sysctls.empty:
        for row in sysctls.itertuples(index=False):
            if row.key == "net.ipv4.ip_forward":
                fib.forwarding[row.host] = str(row.value).strip() == "1"
    hosts = set(fib.rules) | {h for h, _ in dict.keys(fib.routes)}
    fib.hosts = tuple(sorted(hosts))
    return fib
