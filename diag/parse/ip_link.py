"""``ip -j -d link`` (and the link part of ``ip -j -d addr``): one row per interface.

Schema (columns, in order)::

    ifindex       int      kernel interface index (what SLL2 captures record)
    ifname        str      interface name
    kind          str|None linkinfo.info_kind: veth, vxlan, geneve, bridge, ... (None = physical/lo)
    mtu           int
    operstate     str      UP, DOWN, UNKNOWN, LOWERLAYERDOWN
    up            bool     "UP" in flags (administratively up)
    lower_up      bool     "LOWER_UP" in flags (carrier)
    mac           str|None link-layer address
    master        str|None bridge/bond the interface is enslaved to
    link          str|None the parent interface (``eth0@if7`` -> link_index resolved when local)
    link_netnsid  int|None set when the peer of a veth lives in another namespace (pods)
    vxlan_id, vxlan_port, vxlan_local, vxlan_remote, vxlan_dev, vxlan_learning, vxlan_external
                           vxlan/geneve parameters (None for other kinds); ``vxlan_dev`` is the
                           underlay interface (``info_data.link``)

Example: ``{"ifindex": 5, "ifname": "cilium_vxlan", "kind": "vxlan", "mtu": 1450,
"vxlan_id": 2, "vxlan_port": 8472, "vxlan_local": "192.0.2.11", "vxlan_dev": "eth1", ...}``
"""
from __future__ import annotations

from typing import Any

from diag.parse.common import Rows, int_or_none, load_json

COLUMNS = ["ifindex", "ifname", "kind", "mtu", "operstate", "up", "lower_up", "mac", "master",
           "link", "link_netnsid", "vxlan_id", "vxlan_port", "vxlan_local", "vxlan_remote",
           "vxlan_dev", "vxlan_learning", "vxlan_external"]

TUNNEL_KINDS = ("vxlan", "geneve")


def raw(data: str | bytes) -> list[dict[str, Any]]:
    links = load_json(data, "ip -j link", list)
    return [link for link in links if isinstance(link, dict)]


def link_row(link: dict[str, Any]) -> dict[str, Any]:
    info = link.get("linkinfo") or {}
    kind = info.get("info_kind")
    data = info.get("info_data") or {} if kind in TUNNEL_KINDS else {}
    flags = link.get("flags") or []
    return {
        "ifindex": int_or_none(link.get("ifindex")),
        "ifname": link.get("ifname"),
        "kind": kind,
        "mtu": int_or_none(link.get("mtu")),
        "operstate": link.get("operstate"),
        "up": "UP" in flags,
        "lower_up": "LOWER_UP" in flags,
        "mac": link.get("address"),
        "master": link.get("master"),
        "link": link.get("link"),
        "link_netnsid": int_or_none(link.get("link_netnsid")),
        "vxlan_id": int_or_none(data.get("id")),
        "vxlan_port": int_or_none(data.get("port")),
        "vxlan_local": data.get("local") or data.get("local6"),
        "vxlan_remote": data.get("remote") or data.get("remote6") or data.get("group"),
        "vxlan_dev": data.get("link"),
        "vxlan_learning": data.get("learning") if data else None,
        "vxlan_external": bool(data.get("external")) if data else None,
    }


def records(data: str | bytes) -> Rows:
    return Rows([link_row(link) for link in raw(data)], COLUMNS)


def parse(data: str | bytes):
    return records(data).frame()
