"""``ip -j route get ADDR`` (the kernel's own route lookup for one probe address): one row.

Schema::

    probe    str       the address asked about (from the spec id ``ip-route-get-<addr>``)
    type     str       unicast | local | broadcast | unreachable | ...
    dst      str       the address (as the kernel echoes it)
    gateway  str|None
    dev      str|None
    prefsrc  str|None
    table    str|None  when not main (iproute2 prints it then)
    flags    list
    error    str|None  the kernel's refusal (``RTNETLINK answers: Network is unreachable``) when
                       the command failed; then every other column is None

Example: ``{"probe": "10.244.2.10", "type": "unicast", "dst": "10.244.2.10",
"gateway": "192.0.2.1", "dev": "eth1", "prefsrc": "192.0.2.11", "flags": [], "error": None}``
"""
from __future__ import annotations

from typing import Any

from diag.parse.common import frame, load_json

COLUMNS = ["probe", "type", "dst", "gateway", "dev", "prefsrc", "table", "flags", "error"]


def parse(data: str | bytes, probe: str | None = None):
    routes = [r for r in load_json(data, "ip -j route get", list) if isinstance(r, dict)]
    return frame(({"probe": probe or r.get("dst"), "type": r.get("type", "unicast"),
                   "dst": r.get("dst"), "gateway": r.get("gateway"), "dev": r.get("dev"),
                   "prefsrc": r.get("prefsrc"), "table": r.get("table"),
                   "flags": list(r.get("flags") or []), "error": None} for r in routes), COLUMNS)


def failed(probe: str, stderr: str) -> dict[str, Any]:
    """The row for a lookup the kernel refused (the command's stderr, first line)."""
    line = next((text.strip() for text in (stderr or "").splitlines() if text.strip()), "failed")
    return dict.fromkeys(COLUMNS) | {"probe": probe, "flags": [], "error": line}


def probe_of(spec: str) -> str:
    address = spec.removeprefix("ip-route-get-")
    return address.replace("_", ":") if "_" in address else address
