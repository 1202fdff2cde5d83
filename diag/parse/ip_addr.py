"""``ip -j -d addr``: one row per address (the links themselves: :mod:`diag.parse.ip_link`).

Schema::

    ifindex    int
    ifname     str
    family     str   inet | inet6
    address    str   "192.0.2.11" (no prefix length)
    prefixlen  int
    network    str   "192.0.2.0/24" (the connected prefix)
    scope      str   global | link | host
    secondary  bool
    peer       str|None  point-to-point peer address

Example: ``{"ifindex": 2, "ifname": "eth1", "family": "inet", "address": "192.0.2.11",
"prefixlen": 24, "network": "192.0.2.0/24", "scope": "global", "secondary": False}``

``links(data)`` gives the :mod:`diag.parse.ip_link` table from the same output.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from diag.parse import ip_link
from diag.parse.common import Rows, frame, int_or_none, load_json

COLUMNS = ["ifindex", "ifname", "family", "address", "prefixlen", "network", "scope",
           "secondary", "peer"]


def raw(data: str | bytes) -> list[dict[str, Any]]:
    links = load_json(data, "ip -j addr", list)
    return [link for link in links if isinstance(link, dict)]


def _rows(links: list[dict[str, Any]]):
    for link in links:
        for info in link.get("addr_info") or []:
            local = info.get("local")
            plen = int_or_none(info.get("prefixlen"))
            if not local or plen is None:
                continue
            try:
                network = str(ipaddress.ip_interface(f"{local}/{plen}").network)
            except ValueError:
                network = None
            yield {"ifindex": int_or_none(link.get("ifindex")), "ifname": link.get("ifname"),
                   "family": info.get("family"), "address": local, "prefixlen": plen,
                   "network": network, "scope": info.get("scope"),
                   "secondary": bool(info.get("secondary")), "peer": info.get("address")
                   if info.get("address") != local else None}


def records(data: str | bytes) -> Rows:
    return Rows(list(_rows(raw(data))), COLUMNS)


def parse(data: str | bytes):
    return records(data).frame()


def links(data: str | bytes):
    return frame((ip_link.link_row(link) for link in raw(data)), ip_link.COLUMNS)
