"""The two BGP tables every routing-daemon parser produces, whatever the daemon.

``PEER_COLUMNS`` — one row per configured session, as the speaker sees it::

    daemon          str   FRR | GOBGP | BIRD | CILIUM | CALICO
    peer            str   the neighbour's address
    peer_as         int|None
    local_as        int|None
    local_address   str|None  the address this speaker uses for the session
    name            str|None  BIRD protocol name / FRR or GoBGP description
    peer_hostname   str|None  the hostname the peer announced (FQDN capability), when shown
    state           str   one of :data:`diag.parse.states.STATES`
    state_raw       str   the daemon's own words ("Idle (Admin)", "start Idle", 3)
    uptime_s        float|None  how long the session has been Established
    last_error      str|None    last NOTIFICATION / reset reason as the daemon words it
    last_error_code str|None    "0202" (code, subcode in hex, as FRR prints it) when known
    last_error_age_s float|None how long ago the last reset/error happened
    received        int|None    prefixes received (before import policy)
    accepted        int|None    prefixes accepted (after import policy)
    advertised      int|None    prefixes sent
    hold_time       float|None  negotiated hold time, seconds (configured when not up)
    keepalive       float|None
    peer_router_id  str|None
    notifications_received int|None

``PATH_COLUMNS`` — one row per path in a BGP RIB::

    daemon     str
    rib        str   loc (the speaker's table) | adj-in (as received from ``peer``)
    peer       str|None  neighbour the path came from; None for a locally originated path
    protocol   str|None  BIRD protocol name (BIRD only)
    prefix     str   "10.244.1.0/24"
    nexthop    str|None
    as_path    list[int]  flattened (AS_SET members included, in order)
    as_path_str str  "65000 65001", AS_SETs in braces
    origin     str|None  IGP | EGP | INCOMPLETE
    best       bool
    valid      bool
    stale      bool
    local      bool  originated by this speaker (no neighbour)
    local_pref int|None
    med        int|None
"""
from __future__ import annotations

PEER_COLUMNS = ["daemon", "peer", "peer_as", "local_as", "local_address", "name",
                "peer_hostname", "state",
                "state_raw", "uptime_s", "last_error", "last_error_code", "last_error_age_s",
                "received", "accepted", "advertised", "hold_time", "keepalive", "peer_router_id",
                "notifications_received"]

PATH_COLUMNS = ["daemon", "rib", "peer", "protocol", "prefix", "nexthop", "as_path",
                "as_path_str", "origin", "best", "valid", "stale", "local", "local_pref", "med"]

ORIGINS = {0: "IGP", 1: "EGP", 2: "INCOMPLETE", "igp": "IGP", "egp": "EGP",
           "incomplete": "INCOMPLETE", "i": "IGP", "e": "EGP", "?": "INCOMPLETE"}


def peer_row(**fields) -> dict:
    row = dict.fromkeys(PEER_COLUMNS)
    unknown = set(fields) - set(PEER_COLUMNS)
    if unknown:
        raise KeyError(f"not peer columns: {sorted(unknown)}")
    row.update(fields)
    return row


def path_row(**fields) -> dict:
    row = dict.fromkeys(PATH_COLUMNS)
    row.update(best=False, valid=True, stale=False, local=False, as_path=[], as_path_str="")
    unknown = set(fields) - set(PATH_COLUMNS)
    if unknown:
        raise KeyError(f"not path columns: {sorted(unknown)}")
    row.update(fields)
    return row


def as_path_text(segments: list[tuple[str, list[int]]]) -> tuple[list[int], str]:
    """[(kind, asns)] with kind 'seq' or 'set' -> (flat list, "65000 {65001,65002}")."""
    flat: list[int] = []
    words: list[str] = []
    for kind, asns in segments:
        flat.extend(asns)
        if kind == "set":
            words.append("{" + ",".join(str(a) for a in asns) + "}")
        else:
            words.extend(str(a) for a in asns)
    return flat, " ".join(words)


def parse_as_path_str(text: str | None) -> tuple[list[int], str]:
    """FRR/BIRD text AS paths ("65000 65001", "65000 {65001,65002}") -> (flat, normalised)."""
    if not text:
        return [], ""
    segments: list[tuple[str, list[int]]] = []
    for word in text.replace("{ ", "{").replace(" }", "}").split():
        if word.startswith("{") or word.startswith("["):
            members = [int(a) for a in word.strip("{}[]").replace(",", " ").split() if a.isdigit()]
            segments.append(("set", members))
        elif word.isdigit():
            segments.append(("seq", [int(word)]))
    return as_path_text(segments)
