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
    # per (host, table): prefix lengths longest first, and per length {network int: best route};
    # built lazily by _index (the linear scan was O(routes) per lookup: 500 hosts x 5,000 routes)
    index: dict[tuple[str, str], tuple[tuple[tuple[int, int], ...], dict[int, dict[int, Route]]]] \
        = field(default_factory=dict)
    cache: dict[tuple, "Lookup"] = field(default_factory=dict)   # lookup() answers, per query
    exact: dict[tuple[str, str], dict] = field(default_factory=dict)  # (host, table) -> routes
                                                                       # by exact prefix


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


def build_fib(tables, family: str = "inet") -> Fib:
    fib = Fib()
    paths = _paths(tables)

    def ev(host, source, index, value) -> Evidence:
        first = str(source).split("+")[0]
        return Evidence(host, paths.get((host, first), f"hosts/{host}/{first}.out"),
                        f"/{index}", value)

    routes = tables["routes"]
    routes = routes[(routes["family"] == family) & (routes["phase"] == "main")] \
        if "phase" in routes else routes[routes["family"] == family]
    # plain column lists with None for missing values: itertuples and per-cell NaN checks were
    # most of the cost at scale
    col = {c: _plain(routes[c]) for c in ("host", "source", "dst", "gateway", "dev", "nexthops",
                                          "table", "type", "metric", "prefsrc", "protocol")}
    for idx, host, source, dst_text, gateway, dev, nexthops, table, kind, metric, prefsrc, \
            protocol in zip(_pointer_index(routes), *col.values()):
        kind = str(kind or "unicast")
        if kind == "unicast":
            if not nexthops or not isinstance(nexthops, (list, tuple)):
                hops = ((gateway, dev),)
            elif len(nexthops) == 1:            # the common case, without a generator
                hop = nexthops[0]
                hops = ((_clean(hop.get("gateway")), _clean(hop.get("dev"))),)
            else:
                hops = tuple((_clean(n.get("gateway")), _clean(n.get("dev"))) for n in nexthops)
        else:
            hops = ()
        table = str(table or "main")
        first = str(source).split("+")[0]
        r = Route(table, kind, _net(dst_text, family), gateway, dev, hops,
                  int(metric or 0), prefsrc, protocol,
                  (host, paths.get((host, first), f"hosts/{host}/{first}.out"), idx))
        fib.routes.setdefault((host, table), []).append(r)
    for key, lst in fib.routes.items():
        lst.sort(key=lambda r: (-r.dst.prefixlen, r.metric))

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
    hosts = set(fib.rules) | {h for h, _ in fib.routes}
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
        by_len: dict[int, dict[int, Route]] = {}
        masks: dict[int, int] = {}
        for route in fib.routes.get(key, ()):       # sorted: longest prefix, then lowest metric
            net = route.dst
            by_len.setdefault(net.prefixlen, {}).setdefault(int(net.network_address), route)
            masks[net.prefixlen] = int(net.netmask)
        lengths = tuple((n, masks[n]) for n in sorted(by_len, reverse=True))
        built = fib.index[key] = (lengths, by_len)
    return built


def _table_lookup(fib: Fib, host: str, table: str, dst) -> Route | None:
    """Longest prefix match through the per-table index (same answer as scanning the sorted
    routes for the first that contains ``dst``)."""
    lengths, by_len = _index(fib, host, table)
    value = int(dst)
    for length, mask in lengths:
        route = by_len[length].get(value & mask)
        if route is not None and route.dst.version == dst.version:
            return route
    return None


def routes_for(fib: Fib, host: str, table: str, prefix) -> list[Route]:
    """Routes of exactly ``prefix`` (a network or its text) in one table, from an index."""
    net = _parse_net(prefix, "inet" if ":" not in prefix else "inet6") \
        if isinstance(prefix, str) else prefix
    exact = fib.exact.get((host, table))
    if exact is None:
        # keyed by (address int, length): hashing ipaddress networks is slow pure Python
        exact = fib.exact[(host, table)] = {}
        for route in fib.routes.get((host, table), ()):
            key = (int(route.dst.network_address), route.dst.prefixlen, route.dst.version)
            exact.setdefault(key, []).append(route)
    return exact.get(_exact_key(net), [])


@functools.lru_cache(maxsize=1 << 16)
def _exact_key(net) -> tuple[int, int, int]:
    return int(net.network_address), net.prefixlen, net.version


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


def _lookup(fib: Fib, host: str, dst: str, src: str | None, iif: str | None,
            mark: int) -> Lookup:
    address = ipaddress.ip_address(dst)
    source = ipaddress.ip_address(src) if src else None
    rules = fib.rules.get(host)
    if not rules:           # no rules collected: the kernel's defaults
        rules = [Rule(int(p), None, None, None, None, None, t, "lookup", False,
                      Evidence(host, "", "", f"{p}: from all lookup {t} (default)"))
                 for p, t in _DEFAULT_RULES]
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
                      reason=f"{route.dst} in table {rule.table}")
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
