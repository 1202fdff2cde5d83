"""The kernel's forwarding decision on one host, over the collected FIB.

Contract:

- :func:`lookup(fib, host, dst, src=None, iif=None) -> Lookup` does what the kernel's
  ``ip route get DST [from SRC iif DEV]`` does on one host: ``ip rule`` in priority order
  (selectors from/to/iif/oif/fwmark/not; actions lookup, blackhole, unreachable, prohibit, goto,
  nop), each table's longest matching prefix (lowest metric first among equal prefixes; ``throw``
  falls through to the next rule), route types local/broadcast (delivered here),
  blackhole/unreachable/prohibit (dropped) and unicast (next hop: gateway, else the destination on
  link; ECMP keeps every nexthop). A packet from another host (``iif`` given) needs forwarding.
- :func:`quick_route(fib, host, dst)` is ``lookup``'s (type, out device, gateways) without its
  records, for hosts whose ip rules select on nothing but the table (else None): the cheap check
  the analyzers' node x node sweeps run first, the full lookup only for what it flags;
  :func:`quick_routes` answers many destinations of one host at once with numpy.
- :func:`routes_for(fib, host, table, prefix)`: the routes of exactly one prefix.

Answers are memoised in the FIB (``Fib.cache``). Pure functions, no I/O.
"""
from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Any

from diag.analyze.fib import Fib, Route, RouteColumns, Rule, parse_net
from diag.model import Evidence
from diag.values import or_none

DROP_TYPES = ("blackhole", "unreachable", "prohibit")
LOCAL_TYPES = ("local", "broadcast", "anycast", "multicast")


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
    net = parse_net(prefix, "inet" if ":" not in prefix else "inet6") \
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
def address_value(text: str) -> tuple[int, int]:
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


def _quick_answer(cols: "RouteColumns", row: int, kind: str):
    if kind in DROP_TYPES or kind in LOCAL_TYPES:
        return kind, cols.dev(row), ()
    if kind != "unicast":
        return None          # nat & co: the full walk decides
    hops = cols.nexthops(row)
    if hops and isinstance(hops, (list, tuple)):
        pairs = [(or_none(n.get("gateway")), or_none(n.get("dev"))) for n in hops]
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
            value, version = address_value(dst)
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
    value, version = address_value(dst)
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
