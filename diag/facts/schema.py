"""The type of every table cell a parser produces, checked per output before it joins a table.

Contract: :func:`violation(table, part) -> str | None` says why one output's rows (a
:class:`diag.parse.common.Rows`, a DataFrame, or a column-wise :class:`diag.parse.columnar.Part`)
break the schema of ``table`` (docs/facts.md), or None. The facts tables refuse such an output
whole, as a ``parse_errors`` row, so that analysis only ever meets the documented types: an int
is an int (never ``"x"``, never a boolean), an address parses as one, a prefix as one.

Why here and not in each parser: evidence comes from broken machines and from anyone; a parser
reads the shape it knows, and a value of the wrong type in that shape (a string where iproute2
prints a number, a list where it prints a string) is caught once, for every parser, by the same
rule.

Kinds: ``int`` (not a boolean), ``num`` (int or float), ``bool``, ``text``, ``list``, ``ip`` (an
address), ``prefix`` (an address or prefix; ``all`` and ``default`` too), ``mark`` (an fwmark:
``0x200`` or ``0x200/0xf00``); a kind ending in ``!`` may not be missing. Missing (None, NaN) is
allowed otherwise. Columns not named here are not checked.
"""
from __future__ import annotations

import functools
import ipaddress
import math
from typing import Any

_NUMBERS = ("recv_q", "send_q", "local_port", "peer_port", "pid", "backoff", "retrans",
            "retrans_total", "lost", "unacked", "lastsnd", "lastrcv", "lastack", "bytes_sent",
            "bytes_received", "mss", "pmtu")

KINDS: dict[str, dict[str, str]] = {
    "interfaces": {"ifindex": "int", "ifname": "text!", "kind": "text", "mtu": "int",
                   "operstate": "text", "up": "bool", "lower_up": "bool", "mac": "text",
                   "master": "text", "link": "text", "link_netnsid": "int", "vxlan_id": "int",
                   "vxlan_port": "int", "vxlan_local": "ip", "vxlan_remote": "ip",
                   "vxlan_dev": "text"},
    "addresses": {"ifindex": "int", "ifname": "text", "family": "text", "address": "ip!",
                  "prefixlen": "int!", "network": "prefix", "scope": "text", "secondary": "bool",
                  "peer": "text"},
    "routes": {"table": "text", "family": "text", "type": "text", "dst": "prefix!",
               "gateway": "ip", "dev": "text", "nexthops": "list", "ecmp": "bool",
               "protocol": "text", "metric": "int", "scope": "text", "prefsrc": "ip",
               "flags": "list", "nhid": "int"},
    "rules": {"priority": "int!", "family": "text", "src": "prefix", "dst": "prefix",
              "iif": "text", "oif": "text", "fwmark": "mark", "table": "text", "action": "text",
              "not_": "bool", "suppress_prefixlen": "int", "suppress_ifgroup": "text",
              "goto": "int", "l3mdev": "bool"},
    "neighbors": {"dst": "ip", "dev": "text", "lladdr": "text", "state": "text",
                  "states": "list", "router": "bool", "resolved": "bool"},
    "fdb": {"mac": "text", "ifname": "text", "dst": "ip", "vni": "int", "port": "int",
            "master": "text", "state": "text", "flags": "list"},
    "sockets": {"state": "text", "local_addr": "text", "local_scope": "text", "peer_addr": "text",
                "peer_scope": "text", "process": "text", "md5": "bool", "rto": "num",
                "rtt": "num", **{name: "int" for name in _NUMBERS}},
    "sysctls": {"key": "text", "value": "text", "family": "text", "iface": "text",
                "name": "text"},
    "counters": {"name": "text", "value": "int", "group": "text"},
    "bgp_peers": {"daemon": "text", "peer": "ip", "peer_as": "int", "local_as": "int",
                  "local_address": "ip", "name": "text", "peer_hostname": "text",
                  "state": "text", "uptime_s": "num", "last_error": "text",
                  "last_error_code": "text", "last_error_age_s": "num", "received": "int",
                  "accepted": "int", "advertised": "int", "hold_time": "num", "keepalive": "num",
                  "peer_router_id": "text", "notifications_received": "int",
                  "interface": "text", "vrf": "text", "peer_group": "text", "dynamic": "bool"},
    "bgp_paths": {"daemon": "text", "rib": "text", "peer": "text", "protocol": "text",
                  "prefix": "prefix!", "nexthop": "ip", "as_path": "list",
                  "as_path_str": "text", "origin": "text", "best": "bool", "valid": "bool",
                  "stale": "bool", "local": "bool", "local_pref": "int", "med": "int",
                  "vrf": "text"},
    "daemon_routes": {"prefix": "prefix!", "protocol": "text", "selected": "bool",
                      "installed": "bool", "distance": "int", "metric": "int",
                      "nexthops": "list", "nexthop": "ip", "interface": "text"},
    "route_gets": {"probe": "ip", "type": "text", "dst": "ip", "gateway": "ip", "dev": "text",
                   "prefsrc": "ip", "table": "text", "flags": "list", "error": "text"},
}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or \
        type(value).__name__ in ("NAType", "NaTType")


@functools.lru_cache(maxsize=1 << 16)
def _is_prefix(text: str) -> bool:
    if text in ("all", "default"):
        return True
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=1 << 16)
def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return False
    return True


def _is_mark(text: str) -> bool:
    value, _, mask = text.partition("/")
    try:
        int(value, 0)
        if mask:
            int(mask, 0)
    except ValueError:
        return False
    return True


def _fits(kind: str, value: Any) -> bool:
    """``value`` (not missing) is of ``kind``; numpy scalars count as their Python kind."""
    name = type(value).__name__
    if kind == "int":
        return (isinstance(value, int) and not isinstance(value, bool)) or \
            name.startswith(("int", "uint"))
    if kind == "num":
        return ((isinstance(value, (int, float)) and not isinstance(value, bool))
                or name.startswith(("int", "uint", "float")))
    if kind == "bool":
        return isinstance(value, bool) or name == "bool_"
    if kind == "list":
        return isinstance(value, (list, tuple)) or name == "ndarray"
    if not isinstance(value, str):
        return False
    if kind == "ip":
        return _is_ip(value)
    if kind == "prefix":
        return _is_prefix(value)
    if kind == "mark":
        return _is_mark(value)
    return True         # text


def _what(kind: str) -> str:
    return {"int": "an integer", "num": "a number", "bool": "true or false", "list": "a list",
            "ip": "an address", "prefix": "a prefix", "mark": "a mark (0x200/0xf00)",
            "text": "text"}[kind]


def _first_bad(kind: str, values) -> tuple[int, Any, bool] | None:
    """(position, value, missing) of the first value that does not fit ``kind`` (``int!``:
    missing values do not either), or None."""
    required = kind.endswith("!")
    kind = kind.rstrip("!")
    for position, value in enumerate(values):
        if _missing(value) if not isinstance(value, (list, tuple, dict)) else False:
            if required:
                return position, value, True
            continue
        if not _fits(kind, value):
            return position, value, False
    return None


def _describe(column: str, kind: str, found: tuple[int, Any, bool]) -> str:
    position, value, missing = found
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    if missing:
        return f"row {position + 1}: {column} is missing"
    return f"row {position + 1}: {column} is {shown}, not {_what(kind.rstrip('!'))}"


def violation(table: str, part: Any) -> str | None:
    """Why ``part`` (one output's rows for ``table``) breaks the schema, or None."""
    kinds = KINDS.get(table)
    if not kinds:
        return None
    from diag.parse.common import Rows

    if isinstance(part, Rows):
        for column in part.columns:
            kind = kinds.get(column)
            if kind:
                found = _first_bad(kind, (row.get(column) for row in part.rows))
                if found:
                    return _describe(column, kind, found)
        return None
    if hasattr(part, "records") and hasattr(part, "rows") and hasattr(part, "combine"):
        return _part_violation(kinds, part)
    return _frame_violation(kinds, part)


def _frame_violation(kinds: dict[str, str], df) -> str | None:
    import pandas as pd

    for column in df.columns:
        kind = kinds.get(column)
        if not kind:
            continue
        series = df[column]
        base = kind.rstrip("!")
        if base in ("int", "num") and pd.api.types.is_numeric_dtype(series.dtype) and \
                not pd.api.types.is_bool_dtype(series.dtype):
            if kind.endswith("!") and series.isna().any():
                return _describe(column, kind, (int(series.isna().to_numpy().argmax()), None,
                                                True))
            continue
        if base == "bool" and pd.api.types.is_bool_dtype(series.dtype) and \
                not kind.endswith("!"):
            continue
        found = _first_bad(kind, series.tolist())
        if found:
            return _describe(column, kind, found)
    return None


def _part_violation(kinds: dict[str, str], part) -> str | None:
    """A column-wise part: the distinct bodies' rows as rows, and its varying field (the routes'
    ``dst``, the RIB's ``prefix``: a prefix in both readers) by its distinct values."""
    import pyarrow.compute as pc

    for row_number, row in enumerate(part.rows):
        for column, value in row.items():
            kind = kinds.get(column)
            if kind and column not in ("dst", "prefix"):
                found = _first_bad(kind, [value])
                if found:
                    return _describe(column, kind, (row_number, found[1], found[2]))
    keys = pc.unique(part.records.key).to_pylist()
    found = _first_bad("prefix!", keys)
    if found:
        return _describe("prefix", "prefix!", found)
    return None
