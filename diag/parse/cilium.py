"""Cilium's BGP control plane tables: ``cilium-dbg bgp peers`` / ``cilium bgp peers`` and
``cilium-dbg bgp routes`` / ``cilium bgp routes`` (text; the column layout of Go's tabwriter),
and the agent shell's ``cilium-dbg shell -- bgp/peers`` / ``bgp/routes`` in both generations.

The forms, recognised by their content (the collector runs the one the agent has, see
:data:`diag.collect.catalogue.CILIUM_FORMS`):

- ``pkg/bgpv1`` shell commands (Cilium 1.17-1.18): ``bgp/peers`` and ``bgp/routes
  [available|advertised]`` print the ``cilium-dbg bgp`` tables below, without ``Uptime`` and
  ``Age`` columns;
- ``pkg/bgp`` shell commands (newer): ``bgp/peers -f detailed`` (``Instance:``/``Peer:`` blocks
  with ``Address``, ``PeerAsn``, ``LocalAsn``, ``Session State``, ``Uptime``, families with
  received/accepted/advertised counts and applied timers: :func:`parse_peers_detailed`),
  ``bgp/peers`` (``Instance Peer Session State ...``: peers by *name* only, no address:
  :func:`parse_peers_instances`), ``bgp/routes loc|out|in AFI SAFI`` (``Instance [Peer] Prefix
  NextHop [Best] Age``, no path attributes: a next hop ``0.0.0.0``/``::`` is a route the agent
  originates);

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
    if text.startswith("Instance:"):
        return parse_peers_detailed(text)
    lines = _lines(data)
    if not lines:
        return frame([], PEER_COLUMNS + ["node"])
    if lines[0].split()[:2] == ["Instance", "Peer"]:
        return parse_peers_instances(text)
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


_DETAIL = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z][A-Za-z0-9 /_-]*?):(?: (?P<value>.*))?$")


def parse_peers_detailed(data: str | bytes):
    """``cilium-dbg shell -- bgp/peers -f detailed`` (``pkg/bgp``): one block per peer, under
    its instance; the counts of every family summed as for the tables."""
    rows: list[dict[str, Any]] = []
    instance = None
    peer: dict[str, Any] | None = None
    section: list[str] = []       # the keys of the enclosing lines, by depth
    for number, line in enumerate(as_text(data).splitlines(), 1):
        if not line.strip():
            continue
        match = _DETAIL.match(line.rstrip())
        if match is None:
            if peer is not None and section and section[0] in ("Local Capabilities",
                                                                 "Remote Capabilities"):
                continue          # capability values ("ipv4-unicast") sit on lines of their own
            raise ParseError(f"cilium bgp peers (detailed): line {number} is not 'key: value' "
                             f"({line.strip()[:60]!r})")
        depth = len(match["indent"]) // 2
        key, value = match["key"], (match["value"] or "").strip()
        if depth == 0:
            if key != "Instance":
                raise ParseError(f"cilium bgp peers (detailed): line {number}: expected "
                                 f"'Instance:', got {key!r}")
            instance, peer = value, None
            continue
        if depth == 1:
            if key != "Peer":
                raise ParseError(f"cilium bgp peers (detailed): line {number}: expected "
                                 f"'Peer:', got {key!r}")
            peer = {"name": value, "instance": instance, "families": {}}
            rows.append(peer)
            section = []
            continue
        if peer is None:
            raise ParseError(f"cilium bgp peers (detailed): line {number} outside a peer")
        section = section[:depth - 2] + [key]
        if depth == 2 and value:
            peer[key] = value
        elif depth == 4 and section[0] == "Address Families" and value:
            family = peer["families"].setdefault(section[1], {})
            family[key] = value
        elif depth == 4 and section[0] == "Timers" and value:
            peer.setdefault("timers", {})[f"{section[1]}/{key}"] = value
    out = []
    for peer in rows:
        if "Address" not in peer:
            raise ParseError(f"cilium bgp peers (detailed): peer {peer['name']!r} has no Address")
        state_raw = peer.get("Session State", "")
        state = normalise_state(state_raw)
        families = peer["families"].values()

        def total(key: str, families=families) -> int | None:
            values = [int_or_none(f.get(key)) for f in families]
            values = [v for v in values if v is not None]
            return sum(values) if values else None

        timers = peer.get("timers", {})
        row = peer_row(daemon="CILIUM", peer=_address(peer["Address"]), name=peer["name"],
                       peer_as=int_or_none(peer.get("PeerAsn")) or None,
                       local_as=int_or_none(peer.get("LocalAsn")) or None, state=state,
                       state_raw=state_raw,
                       uptime_s=_duration(peer.get("Uptime", "")) if state == ESTABLISHED
                       else None,
                       received=total("Received Routes"), accepted=total("Accepted Routes"),
                       advertised=total("Advertised Routes"),
                       hold_time=_duration(timers.get("Hold Time/Applied", "")),
                       keepalive=_duration(timers.get("Keep Alive Time/Applied", "")))
        row["node"] = None
        out.append(row)
    return frame(out, PEER_COLUMNS + ["node"])


def parse_peers_instances(data: str | bytes):
    """``cilium-dbg shell -- bgp/peers`` (``pkg/bgp``): ``Instance Peer Session State Uptime
    Family Received Accepted Advertised``; an instance or peer left blank repeats the one above,
    a family line adds its counts; ``-`` for counts of a session that is not established. The
    table names peers, it has no addresses: ``peer`` stays empty and ``name`` is the peer's
    name (the collector runs ``-f detailed``, which has them)."""
    lines = _lines(data)
    header = lines[0].split()
    if header[:4] != ["Instance", "Peer", "Session", "State"]:
        raise ParseError(f"cilium bgp peers: unknown header {lines[0][:70]!r}")
    rows: list[dict[str, Any]] = []
    for line in lines[1:]:
        tokens = line.split()
        family = next((i for i, t in enumerate(tokens) if re.match(r"^[a-z0-9]+[-/][a-z0-9-]+$",
                                                                    t)), None)
        if family is None or len(tokens) - family != 4:
            raise ParseError(f"cilium bgp peers: unknown row {line.strip()[:70]!r}")
        head, counts = tokens[:family], tokens[family + 1:]
        received, accepted, advertised = (int_or_none(c) if c != "-" else None for c in counts)
        if head:
            if len(head) == 4:
                instance, name, state_raw, uptime = head
            elif len(head) == 3:
                instance = rows[-1]["instance"] if rows else None
                name, state_raw, uptime = head
            else:
                raise ParseError(f"cilium bgp peers: unknown row {line.strip()[:70]!r}")
            state = normalise_state(state_raw)
            if state == "UNKNOWN":
                raise ParseError(f"cilium bgp peers: {state_raw!r} is not a BGP session state")
            row = peer_row(daemon="CILIUM", peer=None, name=name, state=state,
                           state_raw=state_raw,
                           uptime_s=_duration(uptime) if state == ESTABLISHED else None,
                           received=received, accepted=accepted, advertised=advertised)
            row["instance"] = instance
            rows.append(row)
            continue
        if not rows:
            raise ParseError("cilium bgp peers: an address family row before any peer")
        for key, value in (("received", received), ("accepted", accepted),
                           ("advertised", advertised)):
            if value is not None:
                rows[-1][key] = (rows[-1][key] or 0) + value
    for row in rows:
        row.pop("instance")
        row["node"] = None
    return frame(rows, PEER_COLUMNS + ["node"])


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value else None


_ATTR = re.compile(r"\{(\w+)(?:\([^)]*\))?: ([^{}]*(?:\{[^{}]*\})?[^{}]*)\}")


def _attrs(text: str) -> dict[str, str]:
    return {key: value.strip() for key, value in _ATTR.findall(text or "")}


_ROUTE_COLUMNS = ("Node", "VRouter", "Peer", "Prefix", "NextHop", "Age", "Attrs")


def _route_pattern(header: str) -> re.Pattern:
    """A row of this header's columns: the optional ones (``Node`` cluster-wide, ``Peer`` for
    advertised routes, ``Age`` except in the ``pkg/bgpv1`` shell commands) only where the
    header has them; ``Attrs`` is the rest of the line."""
    words = header.split()
    unknown = [w for w in words if w not in _ROUTE_COLUMNS]
    if unknown:
        raise ParseError(f"cilium bgp routes: unknown columns {unknown}")
    node = r"(?:(?P<node>[^\s\d]\S*)\s+)?" if "Node" in words else ""
    peer = r"(?P<peer>\S+)\s+" if "Peer" in words else ""
    age = r"(?P<age>\S+)\s+" if "Age" in words else ""
    return re.compile(r"^\s*" + node + r"(?P<vrouter>\d+)\s+" + peer +
                      r"(?P<prefix>[0-9A-Fa-f.:]+/\d+)\s+(?P<nexthop>\S+)\s+" + age +
                      r"(?P<attrs>\[.*\])\s*$")


_INSTANCE_ROUTE_COLUMNS = ("Instance", "Peer", "Prefix", "NextHop", "Best", "Age")
_ORIGINATED = ("0.0.0.0", "::")


def parse_instance_routes(data: str | bytes):
    """``cilium-dbg shell -- bgp/routes loc|out|in AFI SAFI`` (``pkg/bgp``): ``Instance
    [Peer] Prefix NextHop [Best] Age``; a blank instance (or peer) repeats the one above. With
    a ``Peer`` column the rows are that peer's Adj-RIB-Out (``out``) — the table does not say
    which direction, the collector only runs ``loc`` and ``out``; ``peer`` is the peer's name.
    No path attributes: a next hop ``0.0.0.0``/``::`` marks a route the agent originates."""
    lines = _lines(data)
    words = lines[0].split()
    unknown = [w for w in words if w not in _INSTANCE_ROUTE_COLUMNS]
    if unknown or words[0] != "Instance" or "Prefix" not in words:
        raise ParseError(f"cilium bgp routes: unknown header {lines[0][:70]!r}")
    with_peer, with_best = "Peer" in words, "Best" in words
    rows = []
    instance = peer = None
    for line in lines[1:]:
        tokens = line.split()
        prefix_at = next((i for i, t in enumerate(tokens) if "/" in t and _is_net(t)), None)
        if prefix_at is None or len(tokens) - prefix_at != 3 + with_best:
            raise ParseError(f"cilium bgp routes: unknown row {line.strip()[:70]!r}")
        head = tokens[:prefix_at]
        expected = 1 + with_peer
        if len(head) == expected:
            instance = head[0]
            peer = head[1] if with_peer else None
        elif with_peer and len(head) == 1:
            peer = head[0]
        elif head:
            raise ParseError(f"cilium bgp routes: unknown row {line.strip()[:70]!r}")
        if instance is None:
            raise ParseError("cilium bgp routes: a row before any instance")
        prefix, nexthop = tokens[prefix_at], tokens[prefix_at + 1]
        best = tokens[prefix_at + 2] == "true" if with_best else True
        local = nexthop in _ORIGINATED and not with_peer
        row = path_row(daemon="CILIUM", rib="adj-out" if with_peer else "loc", peer=peer,
                       prefix=prefix, nexthop=nexthop, best=best, local=local, as_path=None,
                       as_path_str=None)
        row["node"] = None
        rows.append(row)
    return frame(rows, PATH_COLUMNS + ["node"])


def _is_net(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def parse_advertised(data: str | bytes):
    """``... routes advertised|out``: every row is an Adj-RIB-Out path, also when the table has
    no ``Peer`` column (a peer named on the command line)."""
    df = parse_routes(data)
    if len(df):
        df["rib"] = "adj-out"
        df["local"] = False
    return df


def parse_routes(data: str | bytes):
    lines = _lines(data)
    if not lines:
        return frame([], PATH_COLUMNS + ["node"])
    if lines[0].split()[:1] == ["Instance"]:
        return parse_instance_routes(data)
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
    _local_wins(rows)
    return frame(rows, PATH_COLUMNS + ["node"])


def _local_wins(rows: list[dict[str, Any]]) -> None:
    """The table has no best-path mark; GoBGP, Cilium's speaker, prefers a path it originates
    over any learned one, so a learned path of a prefix the node originates (its own pod CIDR
    coming back from a peer) is not best. Other paths keep ``best``: the table lists them as
    the speaker's candidates and says no more."""
    local = {(r["node"], r["prefix"]) for r in rows if r["rib"] == "loc" and r["local"]}
    for row in rows:
        if row["rib"] == "loc" and not row["local"] and (row["node"], row["prefix"]) in local:
            row["best"] = False
