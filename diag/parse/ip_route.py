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

import ipaddress
from typing import Any

from diag.parse.common import ParseError, frame, int_or_none, load_json

COLUMNS = ["table", "family", "type", "dst", "gateway", "dev", "nexthops", "ecmp", "protocol",
           "metric", "scope", "prefsrc", "flags", "nhid"]


def raw(data: str | bytes) -> list[dict[str, Any]]:
    routes = load_json(data, "ip -j route", list)
    return [route for route in routes if isinstance(route, dict)]


def normalise_dst(dst: str, family_hint: str | None) -> tuple[str, str]:
    """(prefix, family) for iproute2's dst spelling."""
    if dst == "default":
        family = family_hint or "inet"
        return ("0.0.0.0/0" if family == "inet" else "::/0"), family
    try:
        net = ipaddress.ip_network(dst, strict=False)
    except ValueError:
        raise ParseError(f"ip -j route: unknown destination {dst!r}") from None
    return str(net), "inet" if net.version == 4 else "inet6"


def _family_of(address: str | None) -> str | None:
    if not address:
        return None
    return "inet6" if ":" in address else "inet"


def route_row(route: dict[str, Any]) -> dict[str, Any]:
    if "nexthops" in route and isinstance(route["nexthops"], list):
        hops = [{"gateway": h.get("gateway"), "dev": h.get("dev"),
                 "weight": int_or_none(h.get("weight")) or 1, "flags": list(h.get("flags") or [])}
                for h in route["nexthops"] if isinstance(h, dict)]
    elif route.get("gateway") or route.get("dev"):
        hops = [{"gateway": route.get("gateway"), "dev": route.get("dev"), "weight": 1,
                 "flags": list(route.get("flags") or [])}]
    else:
        hops = []
    hint = _family_of(hops[0]["gateway"] if hops else None) or _family_of(route.get("prefsrc"))
    dst, family = normalise_dst(str(route.get("dst", "")), hint)
    return {
        "table": str(route.get("table", "main")),
        "family": family,
        "type": route.get("type", "unicast"),
        "dst": dst,
        "gateway": hops[0]["gateway"] if hops else None,
        "dev": hops[0]["dev"] if hops else route.get("dev"),
        "nexthops": hops,
        "ecmp": len(hops) > 1,
        "protocol": str(route.get("protocol", "boot")),
        "metric": int_or_none(route.get("metric")),
        "scope": route.get("scope", "universe"),
        "prefsrc": route.get("prefsrc"),
        "flags": list(route.get("flags") or []),
        "nhid": int_or_none(route.get("nhid")),
    }


def parse(data: str | bytes):
    return frame((route_row(route) for route in raw(data)), COLUMNS)
