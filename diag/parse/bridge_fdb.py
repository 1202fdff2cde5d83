"""``bridge -j fdb``: one row per forwarding-database entry (bridges and VXLAN devices).

Schema::

    mac     str       "00:00:00:00:00:00" is the all-zeros default (flood) entry of a VTEP
    ifname  str       the port or the vxlan device
    dst     str|None  remote VTEP (vxlan entries)
    vni     int|None  per-entry VNI (external/collect-metadata devices)
    port    int|None  per-entry UDP port
    master  str|None  the bridge
    state   str       permanent | static | "" (learned)
    flags   list      self, master, extern_learn, offload, ...

Example: ``{"mac": "6a:1f:..", "ifname": "vxlan.calico", "dst": "192.0.2.12", "vni": None,
"port": None, "master": None, "state": "permanent", "flags": ["self"]}``
"""
from __future__ import annotations

from typing import Any

from diag.parse.common import frame, int_or_none, load_json

COLUMNS = ["mac", "ifname", "dst", "vni", "port", "master", "state", "flags"]


def raw(data: str | bytes) -> list[dict[str, Any]]:
    return [e for e in load_json(data, "bridge -j fdb", list) if isinstance(e, dict)]


def parse(data: str | bytes):
    return frame(({"mac": e.get("mac"), "ifname": e.get("ifname"), "dst": e.get("dst"),
                   "vni": int_or_none(e.get("vni")), "port": int_or_none(e.get("port")),
                   "master": e.get("master"), "state": e.get("state", ""),
                   "flags": list(e.get("flags") or [])} for e in raw(data)), COLUMNS)
