"""``ip -j route show table all`` (IPv4 or IPv6): one row per route, every table.

Schema::

    table      str   "main" when absent in the JSON (iproute2 omits it for main), "local",
                     "default", or the number/name (Cilium 2004, ...)
    family     str   inet | inet6 (from the destination, or the gateway for "default")
    type       str   unicast | blackhole | unreachable | prohibit | local | broadcast |
                     multicast | anycast | throw | nat
    dst        str   prefix with length: "default" becomes "0.0.0.0/0" / "::/0", a host route
                     "192.0.2.1" becomes "192.0.2.1/32"
    gateway    str|None  first nexthop's gateway (None for connected routes and for ECMP rows'
                         ambiguity: see nexthops)
    dev        str|None  first nexthop's device
    nexthops   list  [{"gateway", "dev", "weight", "flags"}] — one entry per path (ECMP has
                     several; a single-path route has one)
    ecmp       bool  more than one nexthop
    protocol   str   kernel | boot | static | dhcp | bird | bgp | zebra | <number>; "boot" when
                     absent (iproute2 omits RTPROT_BOOT)
    metric     int|None
    scope      str   universe when absent
    prefsrc    str|None
    flags      list  onlink, linkdown, dead, ...
    nhid       int|None  kernel nexthop object id (FRR uses them)

Example: ``{"table": "main", "family": "inet", "type": "unicast", "dst": "10.244.1.0/24",
"gateway": "192.0.2.1", "dev": "eth1", "nexthops": [{"gateway": "192.0.2.1", "dev": "eth1",
"weight": 1, "flags": []}], "ecmp": False, "protocol": "bird", "metric": 32, ...}``
"""
from __future__ import annotations

from typing import Any

from diag.parse.common import ParseError, frame, int_or_none, load_json

COLUMNS = ["table", "family", "type", "dst", "gateway", "dev", "nexthops", "ecmp", "protocol",
           "metric", "scope", "prefsrc", "flags", "nhid"]


def raw(data: str | bytes) -> list[dict[str, Any]]:
    routes = load_json(data, "ip -j route", list)
    return [route for route in routes if isinstance(route, dict)]


_ADDRESS_CHARS = frozenset("0123456789abcdefABCDEF.:/")


def normalise_dst(dst: str, family_hint: str | None) -> tuple[str, str]:
    """(prefix, family) for iproute2's dst spelling.

    iproute2 prints destinations canonically (network address, ``/len``, host routes without a
    length), so this only names the default route, adds the host length and checks the
    characters: no ipaddress parsing per route (a bundle holds millions of routes)."""
    if dst == "default":
        family = family_hint or "inet"
        return ("0.0.0.0/0" if family == "inet" else "::/0"), family
    if not dst or not _ADDRESS_CHARS.issuperset(dst) or dst.count("/") > 1:
        raise ParseError(f"ip -j route: unknown destination {dst!r}")
    family = "inet6" if ":" in dst else "inet"
    if "/" not in dst:
        dst += "/32" if family == "inet" else "/128"
    return dst, family


def _family_of(address: str | None) -> str | None:
    if not address:
        return None
    return "inet6" if ":" in address else "inet"


def _int(value: Any) -> int | None:
    return value if type(value) is int else int_or_none(value)


def route_row(route: dict[str, Any]) -> dict[str, Any]:
    # hot path (millions of routes in a large bundle): plain dict lookups, no copies
    get = route.get
    flags = get("flags") or []
    gateway, dev = get("gateway"), get("dev")
    raw_hops = get("nexthops")
    if isinstance(raw_hops, list):
        hops = [{"gateway": h.get("gateway"), "dev": h.get("dev"),
                 "weight": _int(h.get("weight")) or 1, "flags": h.get("flags") or []}
                for h in raw_hops if isinstance(h, dict)]
        if hops:
            gateway, dev = hops[0]["gateway"], hops[0]["dev"]
    elif gateway or dev:
        hops = [{"gateway": gateway, "dev": dev, "weight": 1, "flags": flags}]
    else:
        hops = []
    hint = _family_of(gateway) or _family_of(get("prefsrc"))
    dst, family = normalise_dst(str(get("dst", "")), hint)
    table = get("table", "main")
    protocol = get("protocol", "boot")
    return {
        "table": table if type(table) is str else str(table),
        "family": family,
        "type": get("type", "unicast"),
        "dst": dst,
        "gateway": gateway,
        "dev": dev,
        "nexthops": hops,
        "ecmp": len(hops) > 1,
        "protocol": protocol if type(protocol) is str else str(protocol),
        "metric": _int(get("metric")),
        "scope": get("scope", "universe"),
        "prefsrc": get("prefsrc"),
        "flags": flags,
        "nhid": _int(get("nhid")),
    }


def parse(data: str | bytes):
    """The routes table. Column-wise (a bundle holds millions of routes): the regular
    ``ip -j route`` text is read by :mod:`diag.parse.columnar` (C++), anything else through
    ``json``; :func:`route_row` is the row-by-row reference both are tested against."""
    fast = _parse_columnar(data if isinstance(data, bytes) else data.encode("utf-8"))
    if fast is not None:
        return fast
    routes = raw(data)
    if not routes:
        return frame([], COLUMNS)
    import pandas as pd

    def column(name: str, default: Any = None) -> list:
        values = [route.get(name, default) for route in routes]
        return values

    gateways, devs, flags = column("gateway"), column("dev"), column("flags")
    flags = [f or [] for f in flags]
    raw_hops = column("nexthops")
    hops, ecmp = [], []
    for n, (gateway, dev, raw_hop) in enumerate(zip(gateways, devs, raw_hops)):
        if isinstance(raw_hop, list):
            row = route_row(routes[n])  # multipath: rare, the reference does it
            hops.append(row["nexthops"])
            gateways[n], devs[n] = row["gateway"], row["dev"]
        elif gateway or dev:
            hops.append([{"gateway": gateway, "dev": dev, "weight": 1, "flags": flags[n]}])
        else:
            hops.append([])
        ecmp.append(len(hops[-1]) > 1)
    prefsrcs = column("prefsrc")
    dsts, families = [], []
    for raw_dst, gateway, prefsrc in zip(column("dst", ""), gateways, prefsrcs):
        dst, family = normalise_dst(str(raw_dst), _family_of(gateway) or _family_of(prefsrc))
        dsts.append(dst)
        families.append(family)
    tables = [t if type(t) is str else str(t) for t in column("table", "main")]
    protocols = [p if type(p) is str else str(p) for p in column("protocol", "boot")]
    data_ = {
        "table": pd.Series(tables, dtype=object), "family": pd.Series(families, dtype=object),
        "type": pd.Series(column("type", "unicast"), dtype=object),
        "dst": pd.Series(dsts, dtype=object), "gateway": pd.Series(gateways, dtype=object),
        "dev": pd.Series(devs, dtype=object), "nexthops": pd.Series(hops, dtype=object),
        "ecmp": pd.array(ecmp, dtype="bool"), "protocol": pd.Series(protocols, dtype=object),
        "metric": pd.array([_int(m) for m in column("metric")], dtype="Int64"),
        "scope": pd.Series(column("scope", "universe"), dtype=object),
        "prefsrc": pd.Series(prefsrcs, dtype=object), "flags": pd.Series(flags, dtype=object),
        "nhid": pd.array([_int(m) for m in column("nhid")], dtype="Int64"),
    }
    return pd.DataFrame(data_, columns=COLUMNS)


def _parse_columnar(data: bytes):
    """The same table as :func:`parse` from :func:`diag.parse.columnar.route_records`, or None
    when the text is not in its regular shape (:func:`part`, made a frame alone)."""
    found = part(data)
    return None if found is None else frame_of_parts([found])


def part(data: bytes):
    """``data`` read column-wise (:class:`diag.parse.columnar.Part`), not yet a frame, or None
    when the text is not in the regular shape (then :func:`parse` decides, errors included).
    The facts tables make one frame of every host's parts (:func:`frame_of_parts`): a frame per
    output, then their concatenation, was most of the cost of the routes table.
    :func:`route_row` runs once per distinct record body (all but ``dst``)."""
    from diag.parse import columnar

    records = columnar.route_records(data)
    if records is None:
        return None
    import pyarrow.compute as pc

    try:
        rows = [route_row(dict(body, dst="default")) for body in records.bodies]
    except ParseError:
        return None
    dst = records.key
    if not pc.all(pc.or_(pc.equal(dst, "default"), pc.and_(
            pc.match_substring_regex(dst, r"^[0-9a-fA-F.:/]+$"),
            pc.less_equal(pc.count_substring(dst, "/"), 1)))).as_py():
        return None            # the reference raises its ParseError for the first bad one
    return columnar.Part(records, rows, frame_of_parts)


def frame_of_parts(parts: list) -> Any:
    """The routes table of consecutive outputs' :func:`part` s: their rows in order, exactly
    the concatenation of :func:`parse` of each (values and dtypes). Each row's values —
    strings, the nexthops and flags lists — are its body's, shared by the rows with that body
    (table cells are never mutated)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from diag.parse import columnar

    rows = [row for one in parts for row in one.rows]
    index = columnar.global_index(parts)
    dst = columnar.joined_keys(parts)
    hints = [_family_of(row["gateway"]) or _family_of(row["prefsrc"]) or "inet" for row in rows]
    is_default = pc.equal(dst, "default")
    v6 = pc.match_substring(dst, ":")
    suffix = pc.if_else(v6, pa.scalar("/128", pa.large_string()),
                        pa.scalar("/32", pa.large_string()))
    full = pc.if_else(pc.match_substring(dst, "/"), dst,
                      pc.binary_join_element_wise(dst, suffix, pa.scalar("", pa.large_string())))
    n = len(index)
    block = columnar.ObjectBlock([c for c in COLUMNS if c not in ("ecmp", "metric", "nhid")], n)
    columnar.strings_into(block, "dst", full)
    dsts = block.column("dst")
    block.put("family", columnar.objects(["inet", "inet6"]),
              v6.to_numpy(zero_copy_only=False).astype(np.intp))
    families = block.column("family")
    if pc.any(is_default).as_py():
        for n_ in np.flatnonzero(is_default.to_numpy(zero_copy_only=False)).tolist():
            dsts[n_], families[n_] = normalise_dst("default", hints[index[n_]])
    for name in ("table", "type", "gateway", "dev", "nexthops", "protocol", "scope", "prefsrc",
                 "flags"):
        block.put(name, columnar.objects([row[name] for row in rows]), index)

    def ints(name: str):
        values = [row[name] for row in rows]
        return pd.arrays.IntegerArray(
            np.array([v or 0 for v in values], dtype=np.int64)[index],
            np.array([v is None for v in values], dtype=bool)[index])

    ecmp = np.array([row["ecmp"] for row in rows], dtype=bool)[index]
    return columnar.assemble(COLUMNS, block, {"ecmp": ecmp, "metric": ints("metric"),
                                              "nhid": ints("nhid")}, pd.RangeIndex(n))
