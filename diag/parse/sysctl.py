"""``sysctl -a -r REGEX`` (``key = value`` lines): one row per setting.

Schema::

    key     str   "net.ipv4.conf.eth1.rp_filter"
    value   str   as printed ("1", "0 0 0" for vectors)
    family  str|None  ipv4 | ipv6 for net.ipvN.* keys
    iface   str|None  the interface of net.ipvN.conf.<iface>.<name> ("all", "default" included)
    name    str   the last component ("rp_filter", "forwarding", "ip_forward")

Example: ``{"key": "net.ipv4.conf.all.forwarding", "value": "1", "family": "ipv4",
"iface": "all", "name": "forwarding"}``. Interface names containing dots are printed by sysctl with
``/`` (``vxlan/calico`` for ``vxlan.calico``); they are turned back into dots.
"""
from __future__ import annotations

from diag.parse.common import ParseError, Rows, as_text

COLUMNS = ["key", "value", "family", "iface", "name"]


def raw(data: str | bytes) -> list[dict[str, str | None]]:
    rows = []
    for number, line in enumerate(as_text(data).splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition(" = ")
        if not sep:
            raise ParseError(f"sysctl: line {number} is not 'key = value'")
        rows.append(_row(key.strip(), value.strip()))
    return rows


def _row(key: str, value: str) -> dict[str, str | None]:
    parts = key.split(".")
    family = parts[1] if len(parts) > 2 and parts[0] == "net" and parts[1] in ("ipv4", "ipv6") \
        else None
    iface = None
    if family and len(parts) >= 5 and parts[2] == "conf":
        iface = ".".join(parts[3:-1]).replace("/", ".")
    return {"key": key, "value": value, "family": family, "iface": iface, "name": parts[-1]}


def records(data: str | bytes) -> Rows:
    return Rows(raw(data), COLUMNS)


def parse(data: str | bytes):
    return records(data).frame()
