"""``ip -j rule`` (IPv4 or IPv6): one row per policy-routing rule.

Schema::

    priority  int
    family    str|None  inet | inet6 when known (the caller's spec says which)
    src       str   "all" or a prefix ("10.0.0.0/8"); a bare address gets its full length
    dst       str   "all" or a prefix
    iif, oif  str|None
    fwmark    str|None  "0x200/0xf00"
    table     str|None  "main", "local", "2004", ...
    action    str   "lookup" (when a table is named), or unreachable | blackhole | prohibit |
                    goto | nop
    not_      bool  the rule is negated ("not")
    suppress_prefixlen int|None  routes of the looked-up table with a prefix this short or
                    shorter are ignored (``suppress_prefixlength 0``: WireGuard, Tailscale: the
                    table's default route does not count)
    suppress_ifgroup str|None    routes through an interface of this group are ignored
    goto      int|None  the priority a ``goto`` rule jumps to
    tos, protocol, ipproto  str|None  ``0x10``; the rule's origin (``bgp``, ``kernel``); ``tcp``
    sport, dport, uidrange  str|None  ``179`` or a range ``1024-2048``; ``1000-2000``
    realms    str|None  ``3/4`` (from/to realm)
    l3mdev    bool  the rule looks up the table of the packet's VRF device

iproute2 5.x-6.x print these keys (``suppress_prefixlen``, ``suppress_ifgroup``, ``goto``,
``uid_start``/``uid_end``, ``sport``/``sport_start``..., ``flow_from``/``flow_to``, ``l3mdev``);
a rule without table or action is a lookup of the ``l3mdev`` table.

Example: ``{"priority": 9, "src": "all", "dst": "all", "fwmark": "0x200/0xf00",
"table": "2004", "action": "lookup"}``
"""
from __future__ import annotations

from typing import Any

from diag.parse.common import Rows, int_or_none, load_json

COLUMNS = ["priority", "family", "src", "dst", "iif", "oif", "fwmark", "table", "action", "not_",
           "suppress_prefixlen", "suppress_ifgroup", "goto", "tos", "protocol", "ipproto",
           "sport", "dport", "uidrange", "realms", "l3mdev"]


def raw(data: str | bytes) -> list[dict[str, Any]]:
    return [r for r in load_json(data, "ip -j rule", list) if isinstance(r, dict)]


def _prefix(value: Any, length: Any) -> str:
    if value in (None, "all"):
        return "all"
    return f"{value}/{length}" if length is not None else str(value)


def _range(rule: dict[str, Any], name: str) -> str | None:
    """``dport: 179`` or ``dport_start``/``dport_end`` -> "179" / "1024-2048"."""
    if rule.get(name) is not None:
        mask = rule.get(f"{name}_mask")  # iproute2 6.x prints the mask, 0xffff: exact
        return str(rule[name]) + (f"/{mask}" if mask not in (None, "0xffff") else "")
    start, end = rule.get(f"{name}_start"), rule.get(f"{name}_end")
    if start is None:
        return None
    return str(start) if end in (None, start) else f"{start}-{end}"


def _action(rule: dict[str, Any]) -> str:
    if rule.get("table") is not None:
        return "lookup"
    if rule.get("goto") is not None:
        return "goto"
    if "nop" in rule:
        return "nop"
    return str(rule.get("action", "lookup"))


def rule_row(rule: dict[str, Any], family: str | None = None) -> dict[str, Any]:
    mark = rule.get("fwmark")
    if mark is not None and rule.get("fwmask"):
        mark = f"{mark}/{rule['fwmask']}"
    table = rule.get("table")
    realms = None
    if rule.get("flow_from") is not None or rule.get("flow_to") is not None:
        realms = f"{rule.get('flow_from', '')}/{rule.get('flow_to', '')}"
    return {"priority": int_or_none(rule.get("priority")), "family": family,
            "src": _prefix(rule.get("src", "all"), rule.get("srclen")),
            "dst": _prefix(rule.get("dst", "all"), rule.get("dstlen")),
            "iif": rule.get("iif"), "oif": rule.get("oif"), "fwmark": mark,
            "table": str(table) if table is not None else None, "action": _action(rule),
            "not_": "not" in rule,
            "suppress_prefixlen": int_or_none(rule.get("suppress_prefixlen")),
            "suppress_ifgroup": _text(rule.get("suppress_ifgroup")),
            "goto": int_or_none(rule.get("goto")), "tos": _text(rule.get("tos")),
            "protocol": _text(rule.get("protocol")), "ipproto": _text(rule.get("ipproto")),
            "sport": _range(rule, "sport"), "dport": _range(rule, "dport"),
            "uidrange": _range(rule, "uid"), "realms": realms, "l3mdev": "l3mdev" in rule}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def records(data: str | bytes, family: str | None = None) -> Rows:
    return Rows([rule_row(r, family) for r in raw(data)], COLUMNS)


def parse(data: str | bytes, family: str | None = None):
    return records(data, family).frame()
