"""BIRD 1.x (and Calico's fork of 1.6), 2 and 3: ``birdc``/``birdcl`` ``show protocols [all]``,
``show route [all]`` and ``show status``.

BIRD has no JSON; its CLI text is stable within a major version, and the versions differ in
ways this module names:

- banner ``BIRD 1.6.8 ready.``, ``BIRD v0.3.3+birdv1.6.8 ready.`` (Calico), ``BIRD 2.0.12
  ready.``, ``BIRD v2.0.9-11-g207ac485 ready.``, ``BIRD 3.0.1 ready.``;
- protocols header ``name proto table state since info`` (1.x, lower case) or ``Name Proto Table
  State Since Info`` (2, 3); 1.x keeps the route counters on the protocol, 2 and 3 under
  ``Channel ipv4``; ``Local AS`` is printed by 2 and 3 only;
- route lines: 1.x ``10.0.0.0/24  via 192.0.2.1 on eth0 [Mesh_192_0_2_1 12:00:00 from
  192.0.2.9] * (100/0) [AS65001i]`` (also ``dev eth0``, ``blackhole``, ``unreachable``,
  ``multipath``); 2 and 3 ``10.0.0.0/24  unicast [bgp1 12:00:00.000] * (100) [AS65001i]`` with
  ``via`` on the next line. Further paths of a prefix are indented lines without the prefix;
- route attributes: ``Type: BGP unicast univ`` and ``BGP.as_path:``/``BGP.local_pref:``... (1.x,
  2) or ``source: BGP``, ``from: 192.0.2.9`` and ``bgp_path:``/``bgp_local_pref:``... (3).

``parse_protocols`` -> :data:`diag.parse.bgp_schema.PEER_COLUMNS` (daemon ``BIRD``, BGP protocols
only; ``name`` is the protocol name, the key ``show route`` uses; ``peer`` is ``Neighbor
address``, or — for the short ``show protocols`` that has none — the address Calico writes into
its protocol names ``Mesh_192_168_1_2``, ``Node_fd00_10__1``, ``Global_...``). ``protocols(data)``
gives every protocol (name, proto, table, state, since, info). ``parse_routes`` ->
:data:`PATH_COLUMNS` (rib ``loc``; ``protocol`` is the BIRD protocol that produced the path;
``peer`` is the ``from`` address when BIRD prints one, else None — facts resolves the protocol
to its neighbour; ``local`` is True for paths no BGP protocol produced: static, device,
kernel — BIRD prints the ``[AS...]`` column only for BGP paths, and ``[i]`` is an iBGP path with
an empty AS path, learned, not originated; ``best`` is BIRD's primary mark, ``*`` or ``!`` — a
primary route the kernel refused to take). ``parse_status`` -> one row: version, router_id,
hostname, server_time, last_reboot, last_reconfiguration, status.

Example: ``{"daemon": "BIRD", "peer": "192.0.2.1", "name": "Global_192_0_2_1", "state": "IDLE",
"state_raw": "start Idle", "last_error": "BGP Error: Bad peer AS", "peer_as": 65123, ...}``
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
from diag.parse.common import ParseError, as_text, frame, int_or_none
from diag.parse.states import UNKNOWN, normalise_state

PROTOCOL_COLUMNS = ["name", "proto", "table", "state", "since", "info"]
STATUS_COLUMNS = ["version", "router_id", "hostname", "server_time", "last_reboot",
                  "last_reconfiguration", "status"]
_BANNER = re.compile(r"^BIRD (?P<version>v?\d[\w.+-]*) ready\.$")
_HEADER = ["name", "proto", "table", "state", "since", "info"]
_SINCE_TIME = re.compile(r"^\d\d:\d\d(:\d\d(\.\d+)?)?$")
_CALICO_NAME = re.compile(r"^(?:Mesh|Node|Global)_(?P<address>[0-9A-Fa-f_]+)$")
_ROUTE = re.compile(
    r"^(?P<prefix>[0-9A-Fa-f.:]+/\d+)?\s+"
    r"(?P<what>[^\[]*?)\s*"                   # 1.x: via X on DEV | dev DEV | blackhole; 2-3: unicast
    r"\[(?P<proto>\S+)\s+(?P<since>[^\]]*?)(?:\s+from\s+(?P<from>\S+))?\]"
    r"\s*(?P<best>[*!])?\s*"                   # primary; "!": primary, the kernel refused it
    r"(?:\((?P<pref>\d+)(?:/(?:\d+|\?))?\))?"  # (100), (100/0) in 1.x, (100/?)
    r"\s*(?:\[(?P<asinfo>[^\]]*)\])?\s*$")
_UNREACHABLE = frozenset({"unreachable"})  # as before: a blackhole is how Calico originates its block


def _lines(data: str | bytes, what: str) -> list[str]:
    lines = [line.rstrip() for line in as_text(data).splitlines()]
    lines = [line for line in lines if line.strip()]
    if not lines:
        return []
    if lines[0].startswith("Unable to connect") or lines[0].startswith("Unable to "):
        raise ParseError(f"birdc {what}: {lines[0]}")
    if lines[0].startswith("BIRD "):
        if not _BANNER.match(lines[0]):
            raise ParseError(f"birdc {what}: unknown banner {lines[0][:60]!r}")
        return lines[1:]
    return lines


def _blocks(data: str | bytes) -> list[tuple[dict[str, Any], list[str]]]:
    lines = _lines(data, "show protocols")
    if not lines:
        if as_text(data).strip():   # the banner alone: BIRD prints the header even for none
            raise ParseError("birdc show protocols: the banner and nothing else (cut short?)")
        return []
    if [w.lower() for w in lines[0].split()[:6]] != _HEADER:
        raise ParseError("birdc show protocols: no 'Name Proto Table State Since Info' header")
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
        if sep and key and key.strip() not in out:
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


def _calico_peer(name: str) -> str | None:
    """The address in Calico's protocol name (``Mesh_10_0_0_1``, ``Node_fd00_10__1``)."""
    match = _CALICO_NAME.match(name)
    if not match:
        return None
    parts = match["address"].split("_")
    text = ".".join(parts) if len(parts) == 4 and all(p.isdigit() for p in parts) \
        else ":".join(parts)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


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
        address = (detail.get("Neighbor address") or "").split("%")[0] or None
        rows.append(peer_row(
            daemon="BIRD", peer=address or _calico_peer(head["name"]),
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


def _attribute(text: str) -> tuple[str, str] | None:
    """A route attribute line in any version's spelling -> (name, value): ``BGP.as_path: x``
    (1.x, 2) and ``bgp_path: x`` (3) both -> ("as_path", "x")."""
    key, sep, value = text.partition(":")
    if not sep or " " in key.strip():
        return None
    key = key.strip().lower()
    for prefix in ("bgp.", "bgp_"):
        if key.startswith(prefix):
            key = "bgp:" + key[len(prefix):]
    return {"bgp:path": "bgp:as_path"}.get(key, key), value.strip()


def _apply_detail(row: dict[str, Any], text: str) -> None:
    if text.startswith("via "):
        row["nexthop"] = row["nexthop"] or text.split()[1]
        return
    attribute = _attribute(text)
    if attribute is None:
        return
    key, value = attribute
    # "Type: BGP unicast univ" (1.x, 2) and "source: BGP" (3) say what the route line's
    # [AS...] column already said: ``local`` is decided there, once
    if key == "from" and not row["peer"]:
        row["peer"] = value.split()[0] if value else None
    elif key == "bgp:as_path":
        row["as_path"], row["as_path_str"] = parse_as_path_str(value)
    elif key == "bgp:next_hop" and not row["nexthop"]:
        row["nexthop"] = value.split()[0] if value else None
    elif key == "bgp:local_pref":
        row["local_pref"] = int_or_none(value.split()[0] if value else None)
    elif key == "bgp:med":
        row["med"] = int_or_none(value.split()[0] if value else None)
    elif key == "bgp:origin":
        row["origin"] = value.upper() or None


def _path_from_line(match: re.Match, prefix: str) -> dict[str, Any]:
    what = match["what"].split()
    kind = what[0] if what else ""
    asinfo = match["asinfo"]
    return path_row(
        daemon="BIRD", rib="loc", peer=match["from"], protocol=match["proto"], prefix=prefix,
        nexthop=what[1] if kind == "via" and len(what) > 1 else None,
        best=bool(match["best"]), valid=kind not in _UNREACHABLE,
        # BIRD prints the bracketed AS column for BGP paths only ("[i]": empty AS path)
        local=asinfo is None,
        origin=ORIGINS.get(asinfo.strip()[-1:]) if asinfo and asinfo.strip() else None)


def parse_routes(data: str | bytes):
    lines = _lines(data, "show route")
    rows: list[dict[str, Any]] = []
    prefix = None
    for line in lines:
        if line.startswith("Table "):
            continue
        indented = line[0] in " \t"
        match = _ROUTE.match(line) if not indented or "[" in line else None
        if match is None and indented:
            if rows:
                _apply_detail(rows[-1], line.strip())
            continue
        if match is None or (not indented and not match["prefix"]):
            raise ParseError(f"birdc show route: unknown route line {line.strip()[:60]!r}")
        prefix = match["prefix"] or prefix
        if prefix is None:
            raise ParseError("birdc show route: a further path before any prefix")
        rows.append(_path_from_line(match, prefix))
    return frame(rows, PATH_COLUMNS)


_STATUS_LINES = (("router_id", re.compile(r"^Router ID is (\S+)$")),
                 ("hostname", re.compile(r"^Hostname is (\S+)$")),
                 ("server_time", re.compile(r"^Current server time is (.+)$")),
                 ("last_reboot", re.compile(r"^Last reboot on (.+)$")),
                 ("last_reconfiguration", re.compile(r"^Last reconfiguration on (.+)$")))


def parse_status(data: str | bytes):
    """``show status`` -> one row (version, router_id, hostname — BIRD 2.0.8+ —, the three
    times as printed, status: the last line, e.g. ``Daemon is up and running``)."""
    lines = _lines(data, "show status")
    if not lines:
        return frame([], STATUS_COLUMNS)
    version = re.match(r"^BIRD (v?\d\S*)$", lines[0])
    if not version:
        raise ParseError(f"birdc show status: no 'BIRD <version>' line ({lines[0][:60]!r})")
    row: dict[str, Any] = dict.fromkeys(STATUS_COLUMNS)
    row["version"] = version[1]
    for line in lines[1:]:
        for key, pattern in _STATUS_LINES:
            found = pattern.match(line.strip())
            if found:
                row[key] = found[1]
                break
        else:
            row["status"] = line.strip()
    if row["router_id"] is None or row["status"] is None:
        raise ParseError("birdc show status: no 'Router ID is' or status line (unknown layout)")
    return frame([row], STATUS_COLUMNS)
