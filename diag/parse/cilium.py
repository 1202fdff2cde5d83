"""Cilium's BGP control plane tables: ``cilium-dbg bgp peers`` / ``cilium bgp peers`` and
``cilium-dbg bgp routes`` / ``cilium bgp routes`` (text; the column layout of Go's tabwriter).

Both the agent's ``cilium-dbg`` layout (no ``Node`` column, header ``Session``) and the
cluster-wide ``cilium`` CLI layout (``Node`` first, header ``Session State``) are read; a peer's
extra address families are continuation lines with the first columns blank. Newer agents print
the peer as ``addr:179``; the port is dropped. No lab daemon prints these: the fixtures are
upstream samples (tests/fixtures/cilium-bgp-*/PROVENANCE.md).

``parse_peers`` -> :data:`diag.parse.bgp_schema.PEER_COLUMNS` plus ``node`` (daemon ``CILIUM``,
one row per peer; received/advertised summed over families; ``uptime_s`` from ``33m26s``).
``parse_routes`` -> :data:`PATH_COLUMNS` plus ``node`` (rib ``loc`` for ``available`` tables,
``adj-out`` when a ``Peer`` column says to whom it was advertised); the AS path and origin come
from the ``Attrs`` text (``[{Origin: i} {AsPath: 65001} {Nexthop: 0.0.0.0}]``).

Example: ``{"daemon": "CILIUM", "node": "node0", "peer": "10.0.1.1", "local_as": 65001,
"peer_as": 65000, "state": "ACTIVE", "state_raw": "active", "received": 0, "advertised": 0}``
"""
from __future__ import annotations

import re
from typing import Any

from diag.parse.bgp_schema import (ORIGINS, PATH_COLUMNS, PEER_COLUMNS, parse_as_path_str,
                                   path_row, peer_row)
from diag.parse.common import ParseError, as_text, frame, int_or_none
from diag.parse.states import ESTABLISHED, normalise_state

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|d)")
_UNIT = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


def _columns(header: str) -> list[tuple[str, int]]:
    return [(m.group(0), m.start()) for m in re.finditer(r"\S+(?: \S+)*", header)]


def _table(data: str | bytes, required: tuple[str, ...], what: str) -> list[dict[str, str]]:
    lines = [line.rstrip() for line in as_text(data).splitlines() if line.strip()]
    if not lines:
        return []
    header = next((i for i, line in enumerate(lines)
                   if all(col in line for col in required)), None)
    if header is None:
        raise ParseError(f"{what}: no header with {', '.join(required)} (unknown layout)")
    columns = _columns(lines[header])
    rows = []
    for line in lines[header + 1:]:
        cells = {}
        for n, (name, start) in enumerate(columns):
            end = columns[n + 1][1] if n + 1 < len(columns) else None
            cells[name] = line[start:end].strip() if len(line) > start else ""
        rows.append(cells)
    return rows


def _duration(text: str) -> float | None:
    parts = _DURATION.findall(text or "")
    if not parts:
        return None
    return sum(float(value) * _UNIT[unit] for value, unit in parts)


def _address(text: str) -> str:
    text = text.strip()
    if text.startswith("[") and "]" in text:
        return text[1:text.index("]")]
    if text.count(":") == 1:  # "10.0.2.1:179"
        return text.split(":")[0]
    return text


def parse_peers(data: str | bytes):
    rows: list[dict[str, Any]] = []
    for cells in _table(data, ("Local AS", "Peer AS", "Peer Address"), "cilium bgp peers"):
        session = cells.get("Session State", cells.get("Session", ""))
        if not cells.get("Peer Address"):
            if rows:  # another address family of the previous peer
                for key, col in (("received", "Received"), ("advertised", "Advertised")):
                    value = int_or_none(cells.get(col))
                    if value is not None:
                        rows[-1][key] = (rows[-1][key] or 0) + value
            continue
        state = normalise_state(session)
        row = peer_row(daemon="CILIUM", peer=_address(cells["Peer Address"]),
                       peer_as=int_or_none(cells.get("Peer AS")),
                       local_as=int_or_none(cells.get("Local AS")), state=state,
                       state_raw=session,
                       uptime_s=_duration(cells.get("Uptime", "")) if state == ESTABLISHED
                       else None,
                       received=int_or_none(cells.get("Received")),
                       advertised=int_or_none(cells.get("Advertised")))
        row["node"] = cells.get("Node") or None
        rows.append(row)
    return frame(rows, PEER_COLUMNS + ["node"])


_ATTR = re.compile(r"\{(\w+)(?:\([^)]*\))?: ([^{}]*(?:\{[^{}]*\})?[^{}]*)\}")


def _attrs(text: str) -> dict[str, str]:
    return {key: value.strip() for key, value in _ATTR.findall(text or "")}


def parse_routes(data: str | bytes):
    rows = []
    for cells in _table(data, ("VRouter", "Prefix", "NextHop"), "cilium bgp routes"):
        if not cells.get("Prefix"):
            continue
        attrs = _attrs(cells.get("Attrs", ""))
        flat, text = parse_as_path_str(attrs.get("AsPath"))
        peer = cells.get("Peer") or None
        row = path_row(daemon="CILIUM", rib="adj-out" if peer else "loc",
                       peer=_address(peer) if peer else None, prefix=cells["Prefix"],
                       nexthop=cells.get("NextHop") or None, as_path=flat, as_path_str=text,
                       origin=ORIGINS.get(attrs.get("Origin", "")), best=True,
                       local=not flat and not peer, local_pref=int_or_none(attrs.get("LocalPref")),
                       med=int_or_none(attrs.get("Med")))
        row["node"] = cells.get("Node") or None
        rows.append(row)
    return frame(rows, PATH_COLUMNS + ["node"])
