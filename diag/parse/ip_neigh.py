"""``ip -j neigh``: one row per neighbour (ARP / NDP) entry.

Schema::

    dst      str       the neighbour's IP address
    dev      str
    lladdr   str|None  absent while unresolved (INCOMPLETE, FAILED)
    state    str       the first state: REACHABLE, STALE, DELAY, PROBE, INCOMPLETE, FAILED,
                       PERMANENT, NOARP, NONE
    states   list      every state iproute2 printed (it prints a list)
    router   bool      IPv6 router flag
    resolved bool      lladdr present and state is not INCOMPLETE/FAILED

Example: ``{"dst": "192.0.2.1", "dev": "eth1", "lladdr": "66:0d:5a:38:fa:b7",
"state": "REACHABLE", "states": ["REACHABLE"], "router": False, "resolved": True}``
"""
from __future__ import annotations

from typing import Any

from diag.parse.common import Rows, load_json

COLUMNS = ["dst", "dev", "lladdr", "state", "states", "router", "resolved"]
UNRESOLVED = ("INCOMPLETE", "FAILED")


def raw(data: str | bytes) -> list[dict[str, Any]]:
    return [n for n in load_json(data, "ip -j neigh", list) if isinstance(n, dict)]


def neigh_row(entry: dict[str, Any]) -> dict[str, Any]:
    states = entry.get("state") or ["NONE"]
    if isinstance(states, str):
        states = [states]
    lladdr = entry.get("lladdr")
    return {"dst": entry.get("dst"), "dev": entry.get("dev"), "lladdr": lladdr,
            "state": states[0], "states": list(states), "router": "router" in entry,
            "resolved": bool(lladdr) and not set(states) & set(UNRESOLVED)}


def records(data: str | bytes) -> Rows:
    return Rows([neigh_row(n) for n in raw(data)], COLUMNS)


def parse(data: str | bytes):
    return records(data).frame()
