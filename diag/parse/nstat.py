"""``nstat -asz`` (absolute kernel SNMP/netstat counters, zeros included): one row per counter.

Schema::

    name    str   "TcpExtTCPMD5Unexpected", "IpInDiscards", ...
    value   int
    group   str   the prefix naming the MIB: Ip, Icmp, Tcp, Udp, TcpExt, IpExt, Ip6, ...

Example: ``{"name": "TcpExtTCPMD5NotFound", "value": 12, "group": "TcpExt"}``. The first line
``#kernel`` is nstat's header; anything else that is not ``NAME VALUE RATE`` raises ParseError.
"""
from __future__ import annotations

import functools
import re

from diag.parse.common import ParseError, Rows, as_text

COLUMNS = ["name", "value", "group"]
_GROUP = re.compile(r"^(Ip6|Icmp6|Udp6|UdpLite6|IpExt|TcpExt|MPTcpExt|UdpLite|Icmp|Ip|Tcp|Udp|"
                    r"[A-Z][a-z]+)")


@functools.lru_cache(maxsize=4096)  # the same few hundred counter names on every host
def _group(name: str) -> str:
    group = _GROUP.match(name)
    return group.group(1) if group else ""


def raw(data: str | bytes) -> list[dict]:
    rows = []
    for number, line in enumerate(as_text(data).splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 2 or not fields[1].isdigit():
            raise ParseError(f"nstat: line {number} is not 'NAME VALUE RATE'")
        rows.append({"name": fields[0], "value": int(fields[1]), "group": _group(fields[0])})
    return rows


def records(data: str | bytes) -> Rows:
    return Rows(raw(data), COLUMNS)


def parse(data: str | bytes):
    return records(data).frame()
