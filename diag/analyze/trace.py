"""The FIB path tracer: walk a packet hop by hop over the collected hosts' kernel state.

Contract:

- :func:`lookup(fib, host, dst, src=None, iif=None) -> Lookup` does what the kernel's
  ``ip route get DST [from SRC iif DEV]`` does on one host: ``ip rule`` in priority order
  (selectors from/to/iif/oif/fwmark/not; actions lookup, blackhole, unreachable, prohibit, goto,
  nop), each table's longest matching prefix (lowest metric first among equal prefixes; ``throw``
  falls through to the next rule), route types local/broadcast (delivered here),
  blackhole/unreachable/prohibit (dropped) and unicast (next hop: gateway, else the destination on
  link; ECMP keeps every nexthop). A packet from another host (``iif`` given) needs forwarding.
- :func:`trace(facts_tables, model, src, dst) -> Trace` starts on the host that owns ``src`` (an
  address of a host, an address inside a node's pod CIDR, or a host name) and follows next hops to
  the collected host that owns the next-hop address; through a vxlan device the inner packet goes
  neighbour (lladdr) -> FDB ``dst`` (the remote VTEP) -> the host owning that VTEP. It ends
  ``delivered`` (a local route on some host, or a pod's on-link address), ``left`` (the next hop is
  no collected host: where it leaves, by which NIC, to which next hop), ``dropped`` (why) or
  ``loop``. Each hop carries :class:`~diag.model.Evidence` pointing into the bundle (the route's
  JSON pointer in ``hosts/H/ip-route-v4.out``, the rule, the neighbour entry).

- :func:`quick_route(fib, host, dst)` is ``lookup``'s (type, out device, gateways) without its
  records, for hosts whose ip rules select on nothing but the table (else None): the cheap check
  the analyzers' node x node sweeps run first, the full lookup only for what it flags.

The FIB keeps the routes column-wise (:class:`_Columns`: one numpy sort by host, table, prefix
length, metric; each distinct destination parsed once) and makes a :class:`Route` only for a
row a lookup returns or a caller lists through ``Fib.routes`` (a lazy mapping): 500 hosts x
5,000 routes is 2.5 million rows, of which the analyzers touch a few hundred thousand.

Pure functions over the facts tables (pandas at the edge, plain records inside). No I/O.
"""
from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from diag.model import Evidence

MAX_HOPS = 16
DROP_TYPES = ("blackhole", "unreachable", "prohibit")
# pd.factorize sizes its hash table for every value (2.5 million cells: ~100 MB allocated, page
# faulted and freed per call); the route and path columns hold a few thousand distinct values,
# so the table starts small and grows
_FEW = 1 << 12
LOCAL_TYPES = ("local", "broadcast", "anycast", "multicast")


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


@dataclass(frozen=True)
class Lookup:
    """One host's forwarding decision, as ``ip route get`` reports it."""

    host: str
    dst: str
    type: str                       # unicast | local | broadcast | blackhole | unreachable |
                                    # prohibit | none (no route: "Network is unreachable")
    table: str | None = None
    route: Route | None = None
    rule: Rule | None = None
    nexthops: tuple[tuple[str | None, str | None], ...] = ()
    reason: str = ""

    @property
    def dev(self) -> str | None:
        return self.nexthops[0][1] if self.nexthops else (self.route.dev if self.route else None)

    @property
    def gateway(self) -> str | None:
        return self.nexthops[0][0] if self.nexthops else None

    @property
    def gateways(self) -> tuple[str | None, ...]:
        return tuple(g for g, _ in self.nexthops)

    @property
    def evidence(self) -> tuple[Evidence, ...]:
        return tuple(x.evidence for x in (self.rule, self.route) if x is not None)


@dataclass(frozen=True)
class Hop:
    host: str
    iif: str | None
    lookup: Lookup
    next_hop: str | None = None     # the address the packet is handed to
    next_host: str | None = None    # the collected host owning it (None: leaves the bundle)
    neighbor: str | None = None     # neighbour state of the next hop on the out device
    tunnel: str | None = None       # "vxlan DEV vni N -> VTEP" when encapsulated
    evidence: tuple[Evidence, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        lk = self.lookup
        return {"host": self.host, "iif": self.iif, "type": lk.type, "table": lk.table,
                "route": lk.route.text if lk.route else None,
                "rule": lk.rule.priority if lk.rule else None,
                "dev": lk.dev, "gateway": lk.gateway,
                "nexthops": [{"gateway": g, "dev": d} for g, d in lk.nexthops],
                "next_hop": self.next_hop, "next_host": self.next_host,
                "neighbor": self.neighbor, "tunnel": self.tunnel,
                "evidence": [e.__dict__ for e in self.evidence]}


@dataclass(frozen=True)
class Trace:
    src: str
    dst: str
    hops: tuple[Hop, ...]
    outcome: str                    # delivered | left | dropped | loop | unknown
    where: str                      # host (and NIC) where it was delivered, left or died
    reason: str

    @property
    def last(self) -> Hop | None:
        return self.hops[-1] if self.hops else None

    def to_dict(self) -> dict[str, Any]:
        return {"src": self.src, "dst": self.dst, "outcome": self.outcome, "where": self.where,
                "reason": self.reason, "hops": [h.to_dict() for h in self.hops]}

    def text(self) -> str:
        lines = [f"trace {self.src} -> {self.dst}"]
        for i, hop in enumerate(self.hops, 1):
            lk = hop.lookup
            rule = f"rule {lk.rule.priority} " if lk.rule else ""
            what = lk.route.text if lk.route else lk.reason
            nxt = ""
            if hop.next_hop:
                nxt = f" -> {hop.next_hop}" + (f" ({hop.next_host})" if hop.next_host else "")
                nxt += f" [neigh {hop.neighbor}]" if hop.neighbor else ""
            tun = f" {hop.tunnel}" if hop.tunnel else ""
            lines.append(f"  {i}. {hop.host}"
                         + (f" in {hop.iif}" if hop.iif else "")
                         + f": {rule}table {lk.table or '-'}: {what}{tun}{nxt}")
        lines.append(f"  => {self.outcome} at {self.where}: {self.reason}")
        return "\n".join(lines)


# --- the FIB: plain records built once from the tables ------------------------------------------

class _Columns:
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
        return _na_cell(self.fields[name][self.order[i]])

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
            nexthops = _na_cell(f["nexthops"][j])
            gateway, dev = _na_cell(f["gateway"][j]), _na_cell(f["dev"][j])
            if kind == "unicast":
                if not nexthops or not isinstance(nexthops, (list, tuple)):
                    hops = ((gateway, dev),)
                else:
                    hops = tuple((_clean(n.get("gateway")), _clean(n.get("dev")))
                                 for n in nexthops)
            else:
                hops = ()
            # the frozen dataclass's __init__ sets each field through object.__setattr__: a
            # lookup-heavy analysis makes hundreds of thousands of these, so fill __dict__
            made = self.made[i] = object.__new__(Route)
            made.__dict__.update(
                table=f["table_names"][f["table_code"][j]], type=kind,
                dst=f["dst_objects"][f["dst_code"][j]], gateway=gateway, dev=dev,
                nexthops=hops, metric=int(f["metric"][j]), prefsrc=_na_cell(f["prefsrc"][j]),
                protocol=_na_cell(f["protocol"][j]),
                origin=(f["host_names"][f["host_code"][j]], f["files"][f["file_code"][j]],
                        int(f["pointer"][j])))
        return made


def _na_cell(value):
    """A table cell with pandas' missing values (NaN, None, NA) as None, as :func:`_objects`
    makes them — for the one cell a lookup reads."""
    if value is None or type(value) is str or type(value) is list:
        return value
    return _na(value)


class _LazyRoutes(dict):
    """``Fib.routes``: (host, table) -> its routes, longest prefix first then lowest metric, as
    :class:`Route` records made when a key is first read (a FIB of millions of routes is mostly
    only looked up, through the index)."""

    def __init__(self, columns: "_Columns | None") -> None:
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
    cache: dict[tuple, "Lookup"] = field(default_factory=dict)   # lookup() answers, per query
    exact: dict[tuple[str, str], dict] = field(default_factory=dict)  # (host, table) -> rows
                                                                       # by exact prefix
    columns: "_Columns | None" = None


def _paths(tables) -> dict[tuple[str, str], str]:
    cmds = tables.get("commands")
    if cmds is None or cmds.empty:
        return {}
    return {(h, i): p for h, i, p in zip(cmds["host"], cmds["id"], cmds["path"])}


def _na(value):
    try:
        import pandas as pd

        if value is None or (not isinstance(value, (list, tuple, dict)) and pd.isna(value)):
            return None
    except (TypeError, ValueError):
        pass
    return value


def _net(text, family: str = "inet"):
    text = _na(text)
    if text in (None, "all", ""):
        return None
    return _parse_net(str(text), family)


@functools.lru_cache(maxsize=1 << 16)
def _parse_net(text: str, family: str):
    """Parsing is the cost of building a FIB: the same prefixes recur on every host."""
    if text == "default":
        text = "0.0.0.0/0" if family == "inet" else "::/0"
    return ipaddress.ip_network(text, strict=False)


def _clean(value):
    """JSON values (str/None, NaN after pandas): the cheap form of :func:`_na`."""
    return None if value is None or (isinstance(value, float) and value != value) else value


def _plain(series) -> list:
    """A column as a list, pandas' missing values (NaN, None, NA) as None."""
    values = series.to_numpy(dtype=object)     # arrow-backed strings iterate slowly as a Series
    missing = series.isna().to_numpy()
    if missing.any():
        values = values.copy()
        values[missing] = None
    return values.tolist()


def _pointer_index(df) -> list[int]:
    """Position of each row within its (host, source) output: the JSON array index."""
    return list(df.groupby(["host", "source"], sort=False).cumcount())


def _route_columns(tables, family: str, paths: dict) -> _Columns | None:
    """The routes of ``family`` (main phase) as :class:`_Columns`: each distinct destination is
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
        np.array([int(m or 0) for m in _objects(metric)], dtype=np.int64)
    del metric
    # the destination: parsed once per distinct text
    dst_codes, dst_uniques = pd.factorize(source("dst"), use_na_sentinel=False,
                                          size_hint=_FEW)
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
    file_codes, file_keys = pd.factorize(output_key, size_hint=_FEW)
    del output_key
    file_codes = file_codes.astype(i32)
    pointer = _position_in_output(file_codes, len(file_keys)).astype(i32)
    files = _object_array([
        paths.get((h, s), f"hosts/{h}/{s}.out") for h, s in (
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
    cols = _Columns(order, fields, u_net[sorted_dst], plen[order], u_version[sorted_dst],
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

    codes, uniques = pd.factorize(series, use_na_sentinel=True, size_hint=_FEW)
    names = [str(u) if u else default for u in uniques.tolist()] + [default]
    first = {}
    merged = np.array([first.setdefault(name, len(first)) for name in names], dtype=np.int32)
    recoded = merged[codes]              # a missing value (code -1): the default, last entry
    del codes
    # re-numbered by first appearance in the rows
    order, seen = pd.factorize(recoded, size_hint=_FEW)
    del recoded
    distinct = list(first)
    return order.astype(np.int32), [distinct[k] for k in seen.tolist()]


def _objects(series):
    """A column as a numpy object array, pandas' missing values (NaN, None, NA) as None."""
    values = series.to_numpy(dtype=object)
    missing = series.isna().to_numpy()
    if missing.any():
        values = values.copy()
        values[missing] = None
    return values


def _object_array(values: list):
    import numpy as np

    out = np.empty(len(values), dtype=object)
    for k, value in enumerate(values):
        out[k] = value
    return out


class paused_gc:
    """Pause the cyclic GC while a block builds many objects that all stay alive (as
    ``load_facts`` does): with millions of live table cells, each collection re-scans them."""

    def __enter__(self) -> None:
        import gc

        self.enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc) -> None:
        import gc

        if self.enabled:
            gc.enable()


def build_fib(tables, family: str = "inet") -> Fib:
    with paused_gc():
        return _build_fib(tables, family)


def _build_fib(tables, family: str) -> Fib:
    fib = Fib()
    paths = _paths(tables)

    def ev(host, source, index, value) -> Evidence:
        first = str(source).split("+")[0]
        return Evidence(host, paths.get((host, first), f"hosts/{host}/{first}.out"),
                        f"/{index}", value)

    fib.columns = _route_columns(tables, family, paths)
    fib.routes = _LazyRoutes(fib.columns)

    rules = tables["rules"]
    rules = rules[rules["family"] == family]
    for idx, row in zip(_pointer_index(rules), rules.itertuples(index=False)):
        mark = _na(row.fwmark)
        fw = None
        if mark:
            value, _, mask = str(mark).partition("/")
            fw = (int(value, 0), int(mask, 0) if mask else 0xFFFFFFFF)
        action = str(_na(row.action) or "lookup")
        table = _na(row.table)
        goto = None
        if action == "goto":
            goto = int(table) if table and str(table).isdigit() else None
        text = (f"{row.priority}: {'not ' if row.not_ else ''}from {row.src or 'all'}"
                + (f" to {row.dst}" if _na(row.dst) not in (None, 'all') else "")
                + (f" iif {row.iif}" if _na(row.iif) else "")
                + (f" fwmark {mark}" if mark else "")
                + (f" lookup {table}" if action == "lookup" else f" {action}"))
        fib.rules.setdefault(row.host, []).append(Rule(
            int(row.priority), _net(row.src, family), _net(row.dst, family), _na(row.iif),
            _na(row.oif), fw, str(table) if table is not None else None, action, bool(row.not_),
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
            str(row.state), _na(row.lladdr),
            ev(row.host, row.source, idx, f"{row.dst} dev {row.dev} lladdr {row.lladdr} "
                                          f"{row.state}"))
    fdb = tables["fdb"]
    for idx, row in zip(_pointer_index(fdb), fdb.itertuples(index=False)):
        if _na(row.dst):
            fib.fdb[(row.host, str(row.ifname), str(row.mac).lower())] = (
                str(row.dst), ev(row.host, row.source, idx,
                                 f"{row.mac} dev {row.ifname} dst {row.dst}"))
    links = tables["interfaces"]
    for row in links.itertuples(index=False):
        if row.kind == "vxlan":
            fib.vxlan[(row.host, row.ifname)] = {"vni": _na(row.vxlan_id),
                                                 "port": _na(row.vxlan_port),
                                                 "local": _na(row.vxlan_local),
                                                 "remote": _na(row.vxlan_remote)}
    sysctls = tables.get("sysctls")
    if sysctls is not None and not sysctls.empty:
        for row in sysctls.itertuples(index=False):
            if row.key == "net.ipv4.ip_forward":
                fib.forwarding[row.host] = str(row.value).strip() == "1"
    hosts = set(fib.rules) | {h for h, _ in dict.keys(fib.routes)}
    fib.hosts = tuple(sorted(hosts))
    return fib


# --- one host: ip rule + tables -----------------------------------------------------------------

def _rule_matches(rule: Rule, dst, src, iif: str, mark: int) -> bool:
    ok = True
    if rule.src is not None:
        ok = ok and src is not None and src in rule.src
    if rule.dst is not None:
        ok = ok and dst in rule.dst
    if rule.iif:
        ok = ok and iif == rule.iif
    if rule.oif:
        ok = False                  # an oif selector only matches lookups bound to a device
    if rule.fwmark:
        value, mask = rule.fwmark
        ok = ok and (mark & mask) == value
    return (not ok) if rule.invert else ok


def _index(fib: Fib, host: str, table: str):
    key = (host, table)
    built = fib.index.get(key)
    if built is None:
        import numpy as np

        by_len: dict[int, dict[int, int]] = {}
        masks: dict[int, int] = {}
        cols = fib.columns
        lo, hi = cols.groups.get(key, (0, 0)) if cols else (0, 0)
        if hi > lo:
            # rows sorted longest prefix first, then lowest metric: the first row of each
            # (length, network) is the one a lookup takes
            plens = cols.plen[lo:hi]
            cuts = np.flatnonzero(np.diff(plens)) + 1
            for a, b in zip([0] + cuts.tolist(), cuts.tolist() + [hi - lo]):
                length = int(plens[a])
                rows = range(lo + a, lo + b)
                nets = cols.net[lo + a:lo + b].tolist()
                # reversed: on repeated networks the first row (in order) is written last
                by_len[length] = dict(zip(reversed(nets), reversed(rows)))
                max_len = 32 if cols.version[lo + a] == 4 else 128
                masks[length] = ((1 << max_len) - 1) ^ ((1 << (max_len - length)) - 1)
        lengths = tuple((n, masks[n]) for n in sorted(by_len, reverse=True))
        built = fib.index[key] = (lengths, by_len)
    return built


def _table_lookup(fib: Fib, host: str, table: str, dst) -> Route | None:
    """Longest prefix match through the per-table index (same answer as scanning the sorted
    routes for the first that contains ``dst``)."""
    lengths, by_len = _index(fib, host, table)
    value = int(dst)
    version = dst.version
    for length, mask in lengths:
        row = by_len[length].get(value & mask)
        if row is not None and fib.columns.version_of[row] == version:
            return fib.columns.route(row)
    return None


def routes_for(fib: Fib, host: str, table: str, prefix) -> list[Route]:
    """Routes of exactly ``prefix`` (a network or its text) in one table, from an index."""
    net = _parse_net(prefix, "inet" if ":" not in prefix else "inet6") \
        if isinstance(prefix, str) else prefix
    exact = fib.exact.get((host, table))
    if exact is None:
        # keyed by (address int, length, version): hashing ipaddress networks is slow
        exact = fib.exact[(host, table)] = {}
        cols = fib.columns
        lo, hi = cols.groups.get((host, table), (0, 0)) if cols else (0, 0)
        for row, key in zip(range(lo, hi), zip(cols.net[lo:hi].tolist(),
                                               cols.plen[lo:hi].tolist(),
                                               cols.version[lo:hi].tolist())):
            exact.setdefault(key, []).append(row)
    return [fib.columns.route(row) for row in exact.get(_exact_key(net), ())]


@functools.lru_cache(maxsize=1 << 16)
def _exact_key(net) -> tuple[int, int, int]:
    return int(net.network_address), net.prefixlen, net.version


def quick_route(fib: Fib, host: str, dst: str
                ) -> tuple[str, str | None, tuple[str | None, ...]] | None:
    """(type, out device, gateways) of :func:`lookup` (``host``, ``dst``, no source, no iif,
    no mark) without making its records — or None when the host's ip rules select on more
    than the table (then ask :func:`lookup`). For the analyzers' node x node sweeps: a cheap
    check, and only what it flags gets the full walk."""
    memo = ("quick", host, dst)
    if memo in fib.cache:                  # the sweeps ask each (host, address) a few times
        return fib.cache[memo]
    answer = fib.cache[memo] = _quick_route(fib, host, dst)
    return answer


@functools.lru_cache(maxsize=1 << 18)
def _address_value(text: str) -> tuple[int, int]:
    address = ipaddress.ip_address(text)
    return int(address), address.version


def _plain_tables(fib: Fib, host: str) -> tuple[str, ...]:
    """The tables the host's ip rules look up, in order, when they select on the table only
    (else ``()``: :func:`quick_route` then leaves the answer to :func:`lookup`)."""
    tables = fib.cache.get(("plain-tables", host))
    if tables is None:
        rules = fib.rules.get(host) or _default_rules(fib, host)
        plain = all(r.src is None and r.dst is None and not r.iif and not r.oif
                    and not r.fwmark and not r.invert and r.action == "lookup"
                    and r.table is not None for r in rules)
        tables = fib.cache[("plain-tables", host)] = tuple(r.table for r in rules) \
            if plain else ()
    return tables


def _quick_answer(cols: "_Columns", row: int, kind: str):
    if kind in DROP_TYPES or kind in LOCAL_TYPES:
        return kind, cols.dev(row), ()
    if kind != "unicast":
        return None          # nat & co: the full walk decides
    hops = cols.nexthops(row)
    if hops and isinstance(hops, (list, tuple)):
        pairs = [(_clean(n.get("gateway")), _clean(n.get("dev"))) for n in hops]
    else:
        pairs = [(cols.gateway(row), cols.dev(row))]
    return "unicast", pairs[0][1], tuple(g for g, _ in pairs)


_MASK64 = (1 << 64) - 1


def _vector_index(fib: Fib, host: str, table: str):
    """:func:`_index` as arrays: per prefix length (longest first) the mask, the sorted
    distinct networks and the first row of each (the row the index maps it to) — or None
    when a network does not fit 64 bits (IPv6: the dict index then answers)."""
    import numpy as np

    key = ("vector-index", host, table)
    if key in fib.cache:
        return fib.cache[key]
    cols = fib.columns
    lo, hi = cols.groups.get((host, table), (0, 0)) if cols else (0, 0)
    out: list | None = []
    if hi > lo:
        plens = cols.plen[lo:hi]
        cuts = np.flatnonzero(np.diff(plens)) + 1
        for a, b in zip([0] + cuts.tolist(), cuts.tolist() + [hi - lo]):
            try:
                nets = cols.net[lo + a:lo + b]
                if nets.dtype != np.uint64:
                    nets = np.array(nets.tolist(), dtype=np.uint64)
            except OverflowError:
                out = None
                break
            distinct, first = np.unique(nets, return_index=True)
            length = int(plens[a])
            max_len = 32 if cols.version[lo + a] == 4 else 128
            mask = ((1 << max_len) - 1) ^ ((1 << (max_len - length)) - 1)
            # the queries are IPv4 (< 2**64): their bits above 64 are zero whatever the mask
            out.append((np.uint64(mask & _MASK64), distinct, first + (lo + a)))
    fib.cache[key] = out
    return out


def quick_routes(fib: Fib, host: str, dsts: list[str]) -> None:
    """:func:`quick_route` of many IPv4 destinations on one host at once (the analyzers'
    node x node sweeps ask 250,000 pairs at 500 nodes): each prefix length's networks are
    searched with numpy for all the destinations, and the answers go to the memo
    :func:`quick_route` reads — the same answers as one by one. Anything else (IPv6, a table
    whose networks do not fit 64 bits, rules that select on more than the table) is left to
    :func:`quick_route`."""
    import numpy as np

    tables = _plain_tables(fib, host)
    if not tables or fib.columns is None:
        return
    todo: list[tuple[str, int]] = []
    for dst in dict.fromkeys(dsts):
        if ("quick", host, dst) in fib.cache:
            continue
        try:
            value, version = _address_value(dst)
        except ValueError:
            continue
        if version == 4:
            todo.append((dst, value))
    if not todo:
        return
    indexes = [_vector_index(fib, host, table) for table in tables]
    if any(index is None for index in indexes):
        return
    cols = fib.columns
    versions = cols.version
    queries = np.array([value for _, value in todo], dtype=np.uint64)
    answers: list = [("none", None, ())] * len(todo)
    pending = np.arange(len(todo))
    by_hops: dict[int, Any] = {}       # id of a nexthops list (alive in the columns) -> answer
    for index in indexes:
        if not len(pending):
            break
        rows = np.full(len(pending), -1, dtype=np.int64)
        for mask, distinct, first in index:
            open_ = np.flatnonzero(rows < 0)
            if not len(open_):
                break
            masked = queries[pending[open_]] & mask
            at = np.minimum(np.searchsorted(distinct, masked), len(distinct) - 1)
            candidate = first[at]
            # a network of this length, of the query's version (else: the next length)
            hit = (distinct[at] == masked) & (versions[candidate] == 4)
            rows[open_[hit]] = candidate[hit]
        still = []
        # each found row's type and nexthops cell, read for all at once
        found = np.where(rows >= 0, rows, 0)
        codes = cols.kind_code[found].tolist()
        cells = cols.fields["nexthops"][cols.order[found]].tolist()
        names = cols.kind_names
        for k, row, code, hops in zip(pending.tolist(), rows.tolist(), codes, cells):
            kind = names[code] if row >= 0 else "throw"
            if kind == "throw":
                still.append(k)               # the next table decides
                continue
            if kind == "unicast" and hops and isinstance(hops, (list, tuple)):
                # the parsed routes share their nexthops lists: one answer per list
                answer = by_hops.get(id(hops))
                if answer is None:
                    answer = by_hops[id(hops)] = _quick_answer(cols, row, kind)
                answers[k] = answer
            else:
                answers[k] = _quick_answer(cols, row, kind)
        pending = np.array(still, dtype=np.int64)
    for (dst, _), answer in zip(todo, answers):
        fib.cache[("quick", host, dst)] = answer


def quick_route_list(fib: Fib, host: str, dsts: list[str]) -> list:
    """:func:`quick_route` of each of ``dsts`` (in order), the batched :func:`quick_routes`
    first."""
    quick_routes(fib, host, dsts)
    memo = fib.cache
    out = []
    for dst in dsts:
        key = ("quick", host, dst)
        out.append(memo[key] if key in memo else quick_route(fib, host, dst))
    return out


def _quick_route(fib: Fib, host: str, dst: str):
    tables = _plain_tables(fib, host)
    if not tables:
        return None
    cols = fib.columns
    value, version = _address_value(dst)
    for table in tables:
        lengths, by_len = _index(fib, host, table)
        row = None
        for length, mask in lengths:
            row = by_len[length].get(value & mask)
            if row is not None and cols.version_of[row] == version:
                break
            row = None
        if row is None:
            continue
        kind = cols.kind(row)
        if kind == "throw":
            continue
        return _quick_answer(cols, row, kind)
    return "none", None, ()


_DEFAULT_RULES = (("0", "local"), ("32766", "main"), ("32767", "default"))


def lookup(fib: Fib, host: str, dst: str, src: str | None = None, iif: str | None = None,
           mark: int = 0) -> Lookup:
    """The kernel's forwarding decision on ``host`` for ``dst`` (see the module docstring).
    Answers are cached in the FIB: the analyzers ask the same question for many pairs."""
    key = (host, dst, src, iif, mark)
    cached = fib.cache.get(key)
    if cached is None:
        cached = fib.cache[key] = _lookup(fib, host, dst, src, iif, mark)
    return cached


@functools.lru_cache(maxsize=1 << 18)
def _address(text: str):
    """Parsed once: the analyzers ask about the same addresses on every host."""
    return ipaddress.ip_address(text)


_NET_TEXT: dict[int, tuple[Any, str]] = {}


def _net_text(net) -> str:
    """``str(net)``, once per network object (ipaddress formats in pure Python); keyed by
    identity, the object kept with its text so that the id stays its own."""
    hit = _NET_TEXT.get(id(net))
    if hit is None or hit[0] is not net:
        if len(_NET_TEXT) > 1 << 17:
            _NET_TEXT.clear()
        hit = _NET_TEXT[id(net)] = (net, str(net))
    return hit[1]


def _default_rules(fib: Fib, host: str) -> list[Rule]:
    key = ("default-rules", host)
    rules = fib.cache.get(key)
    if rules is None:
        rules = fib.cache[key] = [
            Rule(int(p), None, None, None, None, None, t, "lookup", False,
                 Evidence(host, "", "", f"{p}: from all lookup {t} (default)"))
            for p, t in _DEFAULT_RULES]
    return rules


def _lookup(fib: Fib, host: str, dst: str, src: str | None, iif: str | None,
            mark: int) -> Lookup:
    address = _address(dst)
    source = _address(src) if src else None
    rules = fib.rules.get(host)
    if not rules:           # no rules collected: the kernel's defaults
        rules = _default_rules(fib, host)
    goto_from: int | None = None
    for rule in rules:
        if goto_from is not None and rule.priority < goto_from:
            continue
        if not _rule_matches(rule, address, source, iif or "lo", mark):
            continue
        if rule.action in DROP_TYPES:
            return Lookup(host, dst, rule.action, None, None, rule,
                          reason=f"ip rule {rule.priority} {rule.action}")
        if rule.action == "goto":
            goto_from = rule.goto
            continue
        if rule.action != "lookup" or rule.table is None:
            continue
        route = _table_lookup(fib, host, rule.table, address)
        if route is None or route.type == "throw":
            continue
        if route.type in DROP_TYPES:
            return Lookup(host, dst, route.type, rule.table, route, rule,
                          reason=f"{route.type} route {route.dst} in table {rule.table}")
        if route.type in LOCAL_TYPES:
            return Lookup(host, dst, route.type, rule.table, route, rule,
                          reason=f"{route.type} address of {host}")
        return Lookup(host, dst, "unicast", rule.table, route, rule, route.nexthops,
                      reason=f"{_net_text(route.dst)} in table {rule.table}")
    return Lookup(host, dst, "none", None, None, None,
                  reason="no route in any table an ip rule looks up (Network is unreachable)")


# --- many hosts ---------------------------------------------------------------------------------

def _vxlan_remote(fib: Fib, host: str, dev: str, next_hop: str
                  ) -> tuple[str | None, tuple[Evidence, ...], str]:
    info = fib.vxlan.get((host, dev), {})
    neigh = fib.neighbors.get((host, next_hop, dev))
    evidence: list[Evidence] = []
    if neigh:
        evidence.append(neigh[2])
        mac = (neigh[1] or "").lower()
        entry = fib.fdb.get((host, dev, mac))
        if entry:
            evidence.append(entry[1])
            return entry[0], tuple(evidence), f"vxlan {dev} vni {info.get('vni')} port " \
                                              f"{info.get('port')} -> VTEP {entry[0]}"
    if info.get("remote"):
        return str(info["remote"]), tuple(evidence), f"vxlan {dev} vni {info.get('vni')} -> " \
                                                     f"VTEP {info['remote']}"
    return None, tuple(evidence), f"vxlan {dev}: no FDB entry for next hop {next_hop}"


def resolve_source(fib: Fib, pod_cidrs: dict[str, str], src: str) -> tuple[str, str | None, str]:
    """(host, iif, source address) for a trace start: a host name, a host's address, or an
    address in a node's pod CIDR (the packet then arrives from the pod's veth)."""
    if src in fib.hosts:
        return src, None, ""
    address = ipaddress.ip_address(src)
    if src in fib.owners:
        host, _ = fib.owners[src]
        return host, None, src
    for host, cidr in pod_cidrs.items():
        if cidr and address in ipaddress.ip_network(cidr, strict=False):
            # the pod's route back is on-link through its veth: that is where it comes in
            back = lookup(fib, host, src)
            return host, back.dev if back.type == "unicast" else None, src
    raise LookupError(f"{src} is no collected host, none of its addresses and in no pod CIDR")


def trace(tables, model, src: str, dst: str, fib: Fib | None = None) -> Trace:
    """Walk ``src`` -> ``dst`` over every collected host (see the module docstring)."""
    fib = fib or build_fib(tables)
    pod_cidrs = {name: h.pod_cidr.value for name, h in model.hosts.items()}
    host, iif, source = resolve_source(fib, pod_cidrs, src)
    hops: list[Hop] = []
    seen: set[tuple[str, str | None]] = set()
    while len(hops) < MAX_HOPS:
        if (host, iif) in seen:
            return Trace(src, dst, tuple(hops), "loop", host, f"the packet returns to {host}")
        seen.add((host, iif))
        if iif is not None and fib.forwarding.get(host) is False and \
                lookup(fib, host, dst).type not in LOCAL_TYPES:
            lk = Lookup(host, dst, "none", reason="forwarding is off (net.ipv4.ip_forward=0)")
            hops.append(Hop(host, iif, lk))
            return Trace(src, dst, tuple(hops), "dropped", host, lk.reason)
        lk = lookup(fib, host, dst, source or None, iif)
        if lk.type in LOCAL_TYPES:
            hops.append(Hop(host, iif, lk, evidence=lk.evidence))
            return Trace(src, dst, tuple(hops), "delivered", host, lk.reason)
        if lk.type != "unicast":
            hops.append(Hop(host, iif, lk, evidence=lk.evidence))
            return Trace(src, dst, tuple(hops), "dropped", host, lk.reason)
        gateway, dev = lk.nexthops[0] if lk.nexthops else (None, lk.dev)
        next_hop = gateway or dst
        neigh = fib.neighbors.get((host, next_hop, str(dev)))
        evidence = lk.evidence + ((neigh[2],) if neigh else ())
        tunnel = None
        target = next_hop
        if (host, str(dev)) in fib.vxlan:
            vtep, tev, tunnel = _vxlan_remote(fib, host, str(dev), next_hop)
            evidence += tev
            if vtep is None:
                hops.append(Hop(host, iif, lk, next_hop, None, neigh[0] if neigh else None,
                                tunnel, evidence))
                return Trace(src, dst, tuple(hops), "dropped", f"{host} {dev}", tunnel)
            target = vtep
        owner = fib.owners.get(target)
        next_host = owner[0] if owner and owner[0] != host else None
        state = neigh[0] if neigh else None
        hops.append(Hop(host, iif, lk, next_hop, next_host, state, tunnel, evidence))
        if state in ("FAILED", "INCOMPLETE") and not tunnel:
            return Trace(src, dst, tuple(hops), "dropped", f"{host} {dev}",
                         f"neighbour {next_hop} on {dev} is {state}: nobody answers ARP")
        if next_host is None:
            if not gateway:
                # on-link destination no collected host owns: a pod or an outside machine
                for other, cidr in pod_cidrs.items():
                    if other == host and cidr and ipaddress.ip_address(dst) in \
                            ipaddress.ip_network(cidr, strict=False):
                        return Trace(src, dst, tuple(hops), "delivered", f"{host} {dev}",
                                     f"on link to the pod network of {host} via {dev}")
            return Trace(src, dst, tuple(hops), "left", f"{host} {dev}",
                         f"leaves {host} by {dev} to {target}, which is no collected host")
        if tunnel:
            # decapsulated on the remote VTEP: the inner packet arrives on its vxlan device
            remote_dev = next((d for (h, d) in fib.vxlan if h == next_host), owner[1])
            host, iif = next_host, remote_dev
        else:
            host, iif = next_host, owner[1]
        if not source:
            source = _source_address(fib, hops[0].host, hops[0].lookup)
    return Trace(src, dst, tuple(hops), "loop", host, f"more than {MAX_HOPS} hops")


def _source_address(fib: Fib, host: str, lk: Lookup) -> str:
    if lk.route and lk.route.prefsrc:
        return lk.route.prefsrc
    for net, ip, dev in fib.addrs.get(host, ()):
        if dev == lk.dev and not ip.startswith("127."):
            return ip
    return ""
