"""BIRD 2 (and 1.x) ``birdc show protocols all`` and ``birdc show route all``.

BIRD has no JSON; its CLI text is stable: a ``BIRD x.y.z ready.`` banner, then for protocols a
``Name Proto Table State Since Info`` header and one block per protocol (summary line, indented
detail lines). ``State`` is BIRD's protocol state (up/start/down/flush); the BGP FSM state is in
``Info`` and in ``BGP state:`` — that is what becomes ``state``.

``parse_protocols`` -> :data:`diag.parse.bgp_schema.PEER_COLUMNS` (daemon ``BIRD``, BGP protocols
only; ``name`` is the protocol name, the key ``show route`` uses). ``protocols(data)`` gives every
protocol (name, proto, table, state, since, info). ``parse_routes`` -> :data:`PATH_COLUMNS`
(rib ``loc``; ``protocol`` is the BIRD protocol that produced the path; ``peer`` is the ``from``
address when BIRD prints one, else None — facts resolves the protocol to its neighbour;
``local`` is True for non-BGP routes: static, device, kernel).

Example: ``{"daemon": "BIRD", "peer": "192.0.2.1", "name": "Global_192_0_2_1", "state": "IDLE",
"state_raw": "start Idle", "last_error": "BGP Error: Bad peer AS", "peer_as": 65123, ...}``
"""
from __future__ import annotations

import re
from typing import Any

from diag.parse.bgp_schema import (ORIGINS, PATH_COLUMNS, PEER_COLUMNS, parse_as_path_str,
                                   path_row, peer_row)
from diag.parse.common import ParseError, as_text, frame, int_or_none
from diag.parse.states import UNKNOWN, normalise_state

PROTOCOL_COLUMNS = ["name", "proto", "table", "state", "since", "info"]
_BANNER = re.compile(r"^BIRD [\d.]+\S* ready\.$")
_SINCE_TIME = re.compile(r"^\d\d:\d\d(:\d\d(\.\d+)?)?$")
_ROUTE = re.compile(r"^(?P<prefix>\S+)?\s+(?P<kind>unicast|blackhole|unreachable|prohibit|"
                    r"multicast|\w+)\s+\[(?P<proto>\S+)\s+(?P<since>[^\]]*?)"
                    r"(?:\s+from\s+(?P<from>\S+))?\]\s*(?P<best>\*)?\s*(?:\((?P<pref>\d+)\))?"
                    r"(?:\s*\[(?P<asinfo>[^\]]*)\])?")


def _lines(data: str | bytes, what: str) -> list[str]:
    lines = [line.rstrip() for line in as_text(data).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return []
    if lines[0].startswith("BIRD ") and not _BANNER.match(lines[0]):
        raise ParseError(f"birdc {what}: unknown banner {lines[0][:60]!r}")
    if _BANNER.match(lines[0]):
        return lines[1:]
    if lines[0].startswith("Unable to connect"):
        raise ParseError(f"birdc {what}: {lines[0]}")
    return lines


def _blocks(data: str | bytes) -> list[tuple[dict[str, Any], list[str]]]:
    lines = _lines(data, "show protocols")
    if not lines:
        return []
    if lines[0].split()[:4] != ["Name", "Proto", "Table", "State"]:
        raise ParseError("birdc show protocols: no 'Name Proto Table State' header")
    blocks: list[tuple[dict[str, Any], list[str]]] = []
    for line in lines[1:]:
        if line[0] in " \t":
            if blocks:
                blocks[-1][1].append(line.strip())
            continue
        words = line.split()
        if len(words) < 4:
            raise ParseError(f"birdc show protocols: short protocol line {line[:60]!r}")
        rest = words[4:]
        since = rest.pop(0) if rest else ""
        if rest and _SINCE_TIME.match(rest[0]):  # "2016-10-23 12:00:00"
            since += " " + rest.pop(0)
        blocks.append(({"name": words[0], "proto": words[1], "table": words[2],
                        "state": words[3], "since": since, "info": " ".join(rest)}, []))
    return blocks


def protocols(data: str | bytes):
    return frame((head for head, _ in _blocks(data)), PROTOCOL_COLUMNS)


def _detail(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep and key and key not in out:
            out[key.strip()] = value.strip()
    return out


def _timer(value: str | None) -> float | None:
    """'4.924/9' -> 9.0 (the configured/negotiated value after the slash)."""
    if not value or "/" not in value:
        return None
    try:
        return float(value.split("/")[1])
    except ValueError:
        return None


def _route_stats(lines: list[str]) -> dict[str, int | None]:
    stats: dict[str, int | None] = {}
    for line in lines:
        if line.startswith("Import updates:"):
            cells = line.split(":", 1)[1].split()
            if len(cells) == 5:
                stats["received"] = int_or_none(cells[0])
                stats["accepted"] = int_or_none(cells[4])
        elif line.startswith("Routes:"):
            match = re.search(r"(\d+) imported, (?:\d+ filtered, )?(\d+) exported", line)
            if match:
                stats["imported"] = int(match[1])
                stats["advertised"] = int(match[2])
    return stats


def parse_protocols(data: str | bytes):
    rows = []
    for head, lines in _blocks(data):
        if head["proto"] != "BGP":
            continue
        detail = _detail(lines)
        fsm = detail.get("BGP state") or (head["info"].split()[0] if head["info"] else "")
        state = normalise_state(fsm)
        if state == UNKNOWN and head["state"] == "down":
            state = "IDLE"  # a disabled/shut protocol: BIRD prints no FSM state at all
        stats = _route_stats(lines)
        last_error = detail.get("Last error")
        if not last_error and head["info"]:
            words = head["info"].split(None, 1)
            last_error = words[1] if len(words) > 1 else None
        rows.append(peer_row(
            daemon="BIRD", peer=(detail.get("Neighbor address") or "").split("%")[0] or None,
            peer_as=int_or_none(detail.get("Neighbor AS")),
            local_as=int_or_none(detail.get("Local AS")),
            local_address=detail.get("Source address"), name=head["name"],
            peer_hostname=detail.get("Hostname"), state=state,
            state_raw=f"{head['state']} {head['info']}".strip(),
            last_error=last_error, received=stats.get("received"),
            accepted=stats.get("accepted", stats.get("imported")),
            advertised=stats.get("advertised"), hold_time=_timer(detail.get("Hold timer")),
            keepalive=_timer(detail.get("Keepalive timer")),
            peer_router_id=detail.get("Neighbor ID")))
    return frame(rows, PEER_COLUMNS)


def parse_routes(data: str | bytes):
    lines = _lines(data, "show route")
    rows: list[dict[str, Any]] = []
    prefix = None
    for line in lines:
        if line.startswith("Table "):
            continue
        if line[0] == "\t" or (line[0] == " " and not _ROUTE.match(line)):
            if not rows:
                continue
            row = rows[-1]
            text = line.strip()
            if text.startswith("via "):
                row["nexthop"] = row["nexthop"] or text.split()[1]
            elif text.startswith("Type:"):
                row["local"] = not text.split()[1:2] == ["BGP"]
            elif text.startswith("BGP.as_path:"):
                row["as_path"], row["as_path_str"] = parse_as_path_str(text.split(":", 1)[1])
            elif text.startswith("BGP.next_hop:") and not row["nexthop"]:
                row["nexthop"] = text.split()[1]
            elif text.startswith("BGP.local_pref:"):
                row["local_pref"] = int_or_none(text.split()[1])
            elif text.startswith("BGP.med:"):
                row["med"] = int_or_none(text.split()[1])
            elif text.startswith("BGP.origin:"):
                row["origin"] = text.split()[1].upper()
            continue
        match = _ROUTE.match(line)
        if not match:
            raise ParseError(f"birdc show route: unknown route line {line[:60]!r}")
        prefix = match["prefix"] or prefix
        if prefix is None:
            raise ParseError("birdc show route: continuation path before any prefix")
        asinfo = (match["asinfo"] or "").strip()
        rows.append(path_row(
            daemon="BIRD", rib="loc", peer=match["from"], protocol=match["proto"], prefix=prefix,
            nexthop=None, best=bool(match["best"]), valid=match["kind"] != "unreachable",
            local=not asinfo.startswith("AS"),
            origin=ORIGINS.get(asinfo[-1:]) if asinfo.startswith("AS") else None))
    return frame(rows, PATH_COLUMNS)
