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

Example: ``{"priority": 9, "src": "all", "dst": "all", "fwmark": "0x200/0xf00",
"table": "2004", "action": "lookup"}``
"""
from __future__ import annotations

from typing import Any

from diag.parse.common import Rows, int_or_none, load_json

COLUMNS = ["priority", "family", "src", "dst", "iif", "oif", "fwmark", "table", "action", "not_"]


def raw(data: str | bytes) -> list[dict[str, Any]]:
    return [r for r in load_json(data, "ip -j rule", list) if isinstance(r, dict)]


def _prefix(value: Any, length: Any) -> str:
    if value in (None, "all"):
        return "all"
    return f"{value}/{length}" if length is not None else str(value)


def rule_row(rule: dict[str, Any], family: str | None = None) -> dict[str, Any]:
    mark = rule.get("fwmark")
    if mark is not None and rule.get("fwmask"):
        mark = f"{mark}/{rule['fwmask']}"
    table = rule.get("table")
    action = "lookup" if table is not None else rule.get("action", "lookup")
    return {"priority": int_or_none(rule.get("priority")), "family": family,
            "src": _prefix(rule.get("src", "all"), rule.get("srclen")),
            "dst": _prefix(rule.get("dst", "all"), rule.get("dstlen")),
            "iif": rule.get("iif"), "oif": rule.get("oif"), "fwmark": mark,
            "table": str(table) if table is not None else None, "action": action,
            "not_": "not" in rule}


def records(data: str | bytes, family: str | None = None) -> Rows:
    return Rows([rule_row(r, family) for r in raw(data)], COLUMNS)


def parse(data: str | bytes, family: str | None = None):
    return records(data, family).frame()
