"""The two BGP tables every routing-daemon parser produces, whatever the daemon.

``PEER_COLUMNS`` — one row per configured session, as the speaker sees it::

    daemon          str   FRR | GOBGP | BIRD | CILIUM | CALICO
    peer            str|None  the neighbour's address (an interface peer's link-local address when
                    the output gives it; None when it does not: FRR's summary of an interface peer)
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
    interface       str|None  the interface a session is configured on (FRR ``neighbor swp1
                    interface``, unnumbered), never taken for an address
    vrf             str|None  the VRF the session belongs to (FRR: ``default`` unless a
                    ``show bgp vrf all`` wrapper names another); None when the daemon does not say
    peer_group      str|None  the peer-group the neighbour is a member of (FRR)
    dynamic         bool|None True for a neighbour accepted from a ``bgp listen range`` (FRR)

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
    vrf        str|None  as for peers (FRR ``show bgp vrf all ... json``)
"""
from __future__ import annotations

import re

PEER_COLUMNS = ["daemon", "peer", "peer_as", "local_as", "local_address", "name",
                "peer_hostname", "state",
                "state_raw", "uptime_s", "last_error", "last_error_code", "last_error_age_s",
                "received", "accepted", "advertised", "hold_time", "keepalive", "peer_router_id",
                "notifications_received", "interface", "vrf", "peer_group", "dynamic"]

PATH_COLUMNS = ["daemon", "rib", "peer", "protocol", "prefix", "nexthop", "as_path",
                "as_path_str", "origin", "best", "valid", "stale", "local", "local_pref", "med", "vrf"]

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


_AS_PATH_TOKEN = re.compile(r"\{[^}]*\}|\[[^\]]*\]|\(|\)|\d+|\S+")


def parse_as_path_str(text: str | None) -> tuple[list[int], str]:
    """FRR/BIRD/Cilium text AS paths -> (flat, normalised): ``65000 65001``; AS_SETs as FRR and
    BIRD 2-3 print them (``{65001,65002}``), as BIRD 1.x does (``{ 65001 65002 }``) and as
    GoBGP-based tools do (``[65001 65002]``) all become ``65000 {65001,65002}``."""
    if not text:
        return [], ""
    segments: list[tuple[str, list[int]]] = []
    for token in _AS_PATH_TOKEN.findall(text):
        if token[0] in "{[":
            members = [int(a) for a in re.findall(r"\d+", token)]
            segments.append(("set", members))
        elif token.isdigit():
            segments.append(("seq", [int(token)]))
    return as_path_text(segments)
