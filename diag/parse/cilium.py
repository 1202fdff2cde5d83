"""Cilium's BGP control plane tables: ``cilium-dbg bgp peers`` / ``cilium bgp peers`` and
``cilium-dbg bgp routes`` / ``cilium bgp routes`` (text; the column layout of Go's tabwriter).

Both the agent's ``cilium-dbg`` layout (no ``Node`` column, header ``Session``) and the
cluster-wide ``cilium`` CLI layout (``Node`` first, header ``Session State``) are read; a peer's
extra address families are continuation lines with the first columns blank, and a node's further
peers leave ``Node`` blank. Rows are split on whitespace and each token read by what it is (AS
number, address, state word, ``33m26s`` uptime, ``ipv4/unicast`` family, counts), never cut at
the header's character positions: values wider than their header shift the columns, and an
``active`` session has no uptime at all. Newer agents print the peer as ``addr:179`` (IPv6
unbracketed, ``fd00:11:0:2::1:179``); the port is dropped. ``-o json`` output (the agent API's
``BgpPeer`` list, or the cluster CLI's lists by node) is read too (:func:`parse_peers_json`).
No lab daemon prints these: the fixtures are upstream samples
(tests/fixtures/cilium-bgp-*/PROVENANCE.md).

``parse_peers`` -> :data:`diag.parse.bgp_schema.PEER_COLUMNS` plus ``node`` (daemon ``CILIUM``,
one row per peer; received/advertised summed over families; ``uptime_s`` from ``33m26s``).
``parse_routes`` -> :data:`PATH_COLUMNS` plus ``node`` (rib ``loc`` for ``available`` tables,
``adj-out`` when a ``Peer`` column says to whom it was advertised); the AS path and origin come
from the ``Attrs`` text (``[{Origin: i} {AsPath: 65001} {Nexthop: 0.0.0.0}]``).

Example: ``{"daemon": "CILIUM", "node": "node0", "peer": "10.0.1.1", "local_as": 65001,
"peer_as": 65000, "state": "ACTIVE", "state_raw": "active", "received": 0, "advertised": 0}``
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any

from diag.parse.bgp_schema import (
    ORIGINS,
    PATH_COLUMNS,
    PEER_COLUMNS,
    parse_as_path_str,
    path_row,
    peer_row,
)
from diag.parse.common import ParseError, as_text, frame, int_or_none, load_json
from diag.parse.states import ESTABLISHED, normalise_state

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|d)")
_UNIT = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
_IS_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:h|ms|m|s|d))+$")
_FAMILY = re.compile(r"^[a-z0-9]+/[a-z0-9-]+$")       # ipv4/unicast, l2vpn/evpn
_PEER_HEADER = ("Node", "Local AS", "Peer AS", "Peer Address", "Session State", "Session",
                "Uptime", "Family", "Received", "Advertised")


def _lines(data: str | bytes) -> list[str]:
    return [line.rstrip() for line in as_text(data).splitlines() if line.strip()]


def _header(lines: list[str], required: tuple[str, ...], what: str) -> tuple[int, str]:
    header = next((i for i, line in enumerate(lines)
                   if all(col in line for col in required)), None)
    if header is None:
        raise ParseError(f"{what}: no header with {', '.join(required)} (unknown layout)")
    return header, lines[header]


def _duration(text: str) -> float | None:
    parts = _DURATION.findall(text or "")
    if not parts:
        return None
    return sum(float(value) * _UNIT[unit] for value, unit in parts)


def _address(text: str, with_port: bool = False) -> str:
    """The peer address without the port newer agents append: ``10.0.2.1:179``,
    ``[fd00::1]:179`` and — agent tables print IPv6 unbracketed — ``fd00:11:0:2::1:179``."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        return text[1:text.index("]")]
    if text.count(":") == 1:  # "10.0.2.1:179"
        return text.split(":")[0]
    if with_port and text.count(":") > 1:
        host, _, port = text.rpartition(":")
        if port.isdigit() and _is_ip(host):
            return host
    return text


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _peer_cells(tokens: list[str], columns: list[str], line: str) -> dict[str, str] | None:
    """One table row, split on whitespace and read by what each token is — never by the
    header's character positions, which a wider value shifts (``Peer Address`` values longer
    than their header, an empty ``Uptime`` for a session that never came up). None for a row
    that only adds an address family to the peer above."""
    what = "cilium bgp peers"
    family = next((i for i, t in enumerate(tokens) if _FAMILY.match(t)), None)
    if "Family" in columns and family is None:
        raise ParseError(f"{what}: no address family in row {line.strip()[:70]!r}")
    head = tokens[:family] if family is not None else list(tokens)
    tail = tokens[family + 1:] if family is not None else []
    cells = {"Family": tokens[family] if family is not None else ""}
    counts = [c for c in ("Received", "Advertised") if c in columns]
    if len(tail) != len(counts) or not all(t.isdigit() for t in tail):
        raise ParseError(f"{what}: counts not numbers in row {line.strip()[:70]!r}")
    cells.update(zip(counts, tail))
    if "Node" in columns and head and not head[0].isdigit():
        cells["Node"] = head.pop(0)
    if not head:
        return cells if family is not None else None
    if len(head) not in (4, 5) or not (head[0].isdigit() and head[1].isdigit()):
        raise ParseError(f"{what}: expected Local AS, Peer AS, address, state [, uptime] in "
                         f"row {line.strip()[:70]!r}")
    cells.update({"Local AS": head[0], "Peer AS": head[1], "Peer Address": head[2],
                  "Session": head[3]})
    if normalise_state(head[3]) == "UNKNOWN":
        raise ParseError(f"{what}: {head[3]!r} is not a BGP session state")
    if len(head) == 5:
        if not _IS_DURATION.match(head[4]):
            raise ParseError(f"{what}: {head[4]!r} is not an uptime")
        cells["Uptime"] = head[4]
    return cells


def _peer_columns(header: str) -> list[str]:
    columns, rest = [], header
    while rest.strip():
        rest = rest.strip()
        name = next((c for c in _PEER_HEADER if rest.startswith(c)), None)
        if name is None:
            raise ParseError(f"cilium bgp peers: unknown column at {rest[:30]!r}")
        columns.append(name)
        rest = rest[len(name):]
    return columns


def parse_peers(data: str | bytes):
    text = as_text(data).strip()
    if text[:1] in "[{":
        return parse_peers_json(text)
    lines = _lines(data)
    if not lines:
        return frame([], PEER_COLUMNS + ["node"])
    index, header = _header(lines, ("Local AS", "Peer AS", "Peer Address"), "cilium bgp peers")
    columns = _peer_columns(header)
    with_port = "Node" not in columns   # the agent's own table appends the port
    rows: list[dict[str, Any]] = []
    node = None
    for line in lines[index + 1:]:
        cells = _peer_cells(line.split(), columns, line)
        if cells is None:
            continue
        node = cells.get("Node", node) if "Node" in columns else None
        if "Peer Address" not in cells:
            if not rows:
                raise ParseError("cilium bgp peers: an address family row before any peer")
            for key, col in (("received", "Received"), ("advertised", "Advertised")):
                value = int_or_none(cells.get(col))
                if value is not None:
                    rows[-1][key] = (rows[-1][key] or 0) + value
            continue
        session = cells["Session"]
        state = normalise_state(session)
        row = peer_row(daemon="CILIUM", peer=_address(cells["Peer Address"], with_port),
                       peer_as=int_or_none(cells.get("Peer AS")),
                       local_as=int_or_none(cells.get("Local AS")), state=state,
                       state_raw=session,
                       uptime_s=_duration(cells.get("Uptime", "")) if state == ESTABLISHED
                       else None,
                       received=int_or_none(cells.get("Received")),
                       advertised=int_or_none(cells.get("Advertised")))
        row["node"] = node   # a node's further peers leave the Node cell empty
        rows.append(row)
    return frame(rows, PEER_COLUMNS + ["node"])


def parse_peers_json(data: str | bytes):
    """``cilium-dbg bgp peers -o json`` (a list of the agent API's ``BgpPeer``: ``peer-address``,
    ``peer-asn``, ``local-asn``, ``session-state``, ``uptime-nanoseconds``, ``families`` with
    received/accepted/advertised, ``applied-hold-time-seconds``...) or the cluster-wide
    ``cilium bgp peers -o json`` (those lists by node name)."""
    doc = load_json(data, "cilium bgp peers -o json", (list, dict))
    by_node = doc.items() if isinstance(doc, dict) else [(None, doc)]
    rows = []
    for node, peers in by_node:
        if not isinstance(peers, list):
            raise ParseError("cilium bgp peers -o json: expected a list of peers per node")
        for peer in peers:
            if not isinstance(peer, dict) or "peer-address" not in peer:
                raise ParseError("cilium bgp peers -o json: a peer without peer-address")
            families = [f for f in peer.get("families") or [] if isinstance(f, dict)]
            state = normalise_state(peer.get("session-state"))
            uptime = peer.get("uptime-nanoseconds")

            def total(key: str, families: list = families) -> int | None:
                values = [f[key] for f in families if isinstance(f.get(key), int)]
                return sum(values) if values else None

            row = peer_row(
                daemon="CILIUM", peer=_address(str(peer["peer-address"])),
                peer_as=int_or_none(peer.get("peer-asn")) or None,
                local_as=int_or_none(peer.get("local-asn")) or None, state=state,
                state_raw=str(peer.get("session-state", "")), name=peer.get("name"),
                uptime_s=uptime / 1e9 if state == ESTABLISHED and isinstance(uptime, int)
                else None,
                received=total("received"), accepted=total("accepted"),
                advertised=total("advertised"),
                hold_time=_seconds(peer.get("applied-hold-time-seconds")),
                keepalive=_seconds(peer.get("applied-keep-alive-time-seconds")))
            row["node"] = node
            rows.append(row)
    return frame(rows, PEER_COLUMNS + ["node"])


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value else None


_ATTR = re.compile(r"\{(\w+)(?:\([^)]*\))?: ([^{}]*(?:\{[^{}]*\})?[^{}]*)\}")


def _attrs(text: str) -> dict[str, str]:
    return {key: value.strip() for key, value in _ATTR.findall(text or "")}


_ROUTE_COLUMNS = ("Node", "VRouter", "Peer", "Prefix", "NextHop", "Age", "Attrs")


def _route_pattern(header: str) -> re.Pattern:
    """A row of this header's columns: the optional ones (``Node`` cluster-wide, ``Peer`` for
    advertised routes) only where the header has them; ``Attrs`` is the rest of the line."""
    words = header.split()
    unknown = [w for w in words if w not in _ROUTE_COLUMNS]
    if unknown:
        raise ParseError(f"cilium bgp routes: unknown columns {unknown}")
    node = r"(?:(?P<node>[^\s\d]\S*)\s+)?" if "Node" in words else ""
    peer = r"(?P<peer>\S+)\s+" if "Peer" in words else ""
    return re.compile(r"^\s*" + node + r"(?P<vrouter>\d+)\s+" + peer +
                      r"(?P<prefix>[0-9A-Fa-f.:]+/\d+)\s+(?P<nexthop>\S+)\s+(?P<age>\S+)"
                      r"\s+(?P<attrs>\[.*\])\s*$")


def parse_routes(data: str | bytes):
    lines = _lines(data)
    if not lines:
        return frame([], PATH_COLUMNS + ["node"])
    index, header = _header(lines, ("VRouter", "Prefix", "NextHop"), "cilium bgp routes")
    pattern = _route_pattern(header)
    with_port = "Node" not in header.split()
    rows = []
    node = None
    for line in lines[index + 1:]:
        match = pattern.match(line)
        if match is None:
            raise ParseError(f"cilium bgp routes: unknown row {line.strip()[:70]!r}")
        node = match.groupdict().get("node") or node
        attrs = _attrs(match["attrs"])
        flat, text = parse_as_path_str(attrs.get("AsPath"))
        peer = match.groupdict().get("peer")
        row = path_row(daemon="CILIUM", rib="adj-out" if peer else "loc",
                       peer=_address(peer, with_port) if peer else None,
                       prefix=match["prefix"], nexthop=match["nexthop"], as_path=flat,
                       as_path_str=text, origin=ORIGINS.get(attrs.get("Origin", "")), best=True,
                       local=not flat and not peer, local_pref=int_or_none(attrs.get("LocalPref")),
                       med=int_or_none(attrs.get("Med")))
        row["node"] = node
        rows.append(row)
    return frame(rows, PATH_COLUMNS + ["node"])
