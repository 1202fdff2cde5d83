"""FRR ``vtysh`` JSON: ``show bgp summary json``, ``show bgp neighbors json``,
``show bgp ipv4 unicast json``, ``show ip route json``.

``parse_summary`` and ``parse_neighbors`` give :data:`diag.parse.bgp_schema.PEER_COLUMNS`
(daemon ``FRR``); ``parse_bgp_rib`` gives :data:`PATH_COLUMNS` (rib ``loc``); ``parse_ip_route``
gives zebra's RIB, one row per (prefix, route)::

    prefix, protocol ("bgp", "connected", "kernel", "static"), selected (bool), installed (bool:
    in the kernel FIB), distance, metric, table, nexthops (list of {"ip", "interface", "active",
    "fib"}), nexthop (first ip), interface (first interface)

Example (summary): ``{"daemon": "FRR", "peer": "192.0.2.11", "peer_as": 65001,
"local_as": 65000, "state": "ESTABLISHED", "state_raw": "Established", "accepted": 1,
"advertised": 2, "uptime_s": 22.0, ...}``. ``state_raw`` keeps FRR's suffix: ``Idle (Admin)``,
and peerState ``Policy`` (RFC 8212 ebgp-requires-policy) becomes ``Established (Policy)``.
"""
from __future__ import annotations

from typing import Any

from diag.parse.bgp_schema import (ORIGINS, PATH_COLUMNS, PEER_COLUMNS, parse_as_path_str,
                                   path_row, peer_row)
from diag.parse.common import ParseError, frame, int_or_none, load_json
from diag.parse.states import normalise_state

ROUTE_COLUMNS = ["prefix", "protocol", "selected", "installed", "distance", "metric", "table",
                 "nexthops", "nexthop", "interface"]


def _afi_sections(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if "peers" in doc:  # `show bgp ipv4 unicast summary json`: one AFI, no wrapper
        return [("ipv4Unicast", doc)]
    sections = [(k, v) for k, v in doc.items() if isinstance(v, dict) and "peers" in v]
    if not sections and doc:
        raise ParseError("FRR summary: no AFI section with 'peers' (unknown FRR JSON layout)")
    return sections


def parse_summary(data: str | bytes):
    doc = load_json(data, "FRR show bgp summary json", dict)
    rows = []
    for _afi, section in _afi_sections(doc):
        for address, peer in (section.get("peers") or {}).items():
            raw_state = str(peer.get("state", ""))
            peer_state = peer.get("peerState")
            if peer_state and peer_state != "OK":
                raw_state = f"{raw_state} ({peer_state})"
            up = peer.get("peerUptimeMsec")
            established = normalise_state(peer.get("state")) == "ESTABLISHED"
            rows.append(peer_row(
                daemon="FRR", peer=address, peer_as=int_or_none(peer.get("remoteAs")),
                local_as=int_or_none(peer.get("localAs") or section.get("as")),
                name=peer.get("desc") or peer.get("hostname"),
                peer_hostname=peer.get("hostname"),
                state=normalise_state(peer.get("state")), state_raw=raw_state,
                uptime_s=up / 1000 if established and isinstance(up, (int, float)) else None,
                accepted=int_or_none(peer.get("pfxRcd")),
                advertised=int_or_none(peer.get("pfxSnt"))))
    return frame(rows, PEER_COLUMNS)


def parse_neighbors(data: str | bytes):
    doc = load_json(data, "FRR show bgp neighbors json", dict)
    rows = []
    for address, peer in doc.items():
        if not isinstance(peer, dict) or "bgpState" not in peer:
            raise ParseError(f"FRR neighbors: entry {address!r} has no bgpState (unknown layout)")
        afi = (peer.get("addressFamilyInfo") or {})
        v4 = afi.get("ipv4Unicast") or next(iter(afi.values()), {}) if afi else {}
        stats = peer.get("messageStats") or {}
        established = normalise_state(peer["bgpState"]) == "ESTABLISHED"
        reason = peer.get("lastNotificationReason") or peer.get("lastResetDueTo")
        host_local = peer.get("hostLocal")
        rows.append(peer_row(
            daemon="FRR", peer=address, peer_as=int_or_none(peer.get("remoteAs")),
            local_as=int_or_none(peer.get("localAs")),
            local_address=host_local if host_local not in (None, "Unknown") else None,
            name=peer.get("nbrDesc") or peer.get("hostname"),
            peer_hostname=peer.get("hostname"),
            state=normalise_state(peer["bgpState"]), state_raw=str(peer["bgpState"]),
            uptime_s=peer["bgpTimerUpMsec"] / 1000
            if established and isinstance(peer.get("bgpTimerUpMsec"), (int, float)) else None,
            last_error=reason, last_error_code=peer.get("lastErrorCodeSubcode"),
            last_error_age_s=peer["lastResetTimerMsecs"] / 1000
            if isinstance(peer.get("lastResetTimerMsecs"), (int, float)) else None,
            accepted=int_or_none(v4.get("acceptedPrefixCounter")) if isinstance(v4, dict) else None,
            advertised=int_or_none(v4.get("sentPrefixCounter")) if isinstance(v4, dict) else None,
            hold_time=_secs(peer.get("bgpTimerHoldTimeMsecs")),
            keepalive=_secs(peer.get("bgpTimerKeepAliveIntervalMsecs")),
            peer_router_id=peer.get("remoteRouterId"),
            notifications_received=int_or_none(stats.get("notificationsRecv"))))
    return frame(rows, PEER_COLUMNS)


def _secs(msecs: Any) -> float | None:
    return msecs / 1000 if isinstance(msecs, (int, float)) else None


def parse_bgp_rib(data: str | bytes):
    doc = load_json(data, "FRR show bgp ipv4 unicast json", dict)
    routes = doc.get("routes")
    if routes is None:
        if doc and "warning" not in doc:
            raise ParseError("FRR bgp RIB: no 'routes' object (unknown FRR JSON layout)")
        routes = {}
    rows = []
    for prefix, paths in routes.items():
        for path in paths if isinstance(paths, list) else []:
            hops = path.get("nexthops") or []
            nexthop = next((h.get("ip") for h in hops if h.get("used")), None) or \
                (hops[0].get("ip") if hops else None)
            peer = path.get("peerId")
            local = peer in (None, "(unspec)", "0.0.0.0") or path.get("pathFrom") == "local"
            aspath = path.get("path")
            if aspath is None and isinstance(path.get("aspath"), dict):
                aspath = path["aspath"].get("string")
            flat, text = parse_as_path_str(aspath)
            rows.append(path_row(
                daemon="FRR", rib="loc", peer=None if local else peer,
                prefix=path.get("network") or prefix, nexthop=nexthop, as_path=flat,
                as_path_str=text, origin=ORIGINS.get(str(path.get("origin", "")).lower()),
                best=bool(path.get("bestpath")), valid=bool(path.get("valid")),
                stale=bool(path.get("stale")), local=local,
                local_pref=int_or_none(path.get("locPrf") or path.get("localpref")),
                med=int_or_none(path.get("metric") if "metric" in path else path.get("med"))))
    return frame(rows, PATH_COLUMNS)


def parse_ip_route(data: str | bytes):
    doc = load_json(data, "FRR show ip route json", dict)
    rows = []
    for prefix, entries in doc.items():
        if not isinstance(entries, list):
            raise ParseError(f"FRR show ip route: {prefix!r} is not a list (unknown layout)")
        for entry in entries:
            hops = [{"ip": h.get("ip"), "interface": h.get("interfaceName"),
                     "active": bool(h.get("active")), "fib": bool(h.get("fib"))}
                    for h in entry.get("nexthops") or []]
            rows.append({"prefix": entry.get("prefix", prefix), "protocol": entry.get("protocol"),
                         "selected": bool(entry.get("selected")),
                         "installed": bool(entry.get("installed")),
                         "distance": int_or_none(entry.get("distance")),
                         "metric": int_or_none(entry.get("metric")),
                         "table": int_or_none(entry.get("table")), "nexthops": hops,
                         "nexthop": hops[0]["ip"] if hops else None,
                         "interface": hops[0]["interface"] if hops else None})
    return frame(rows, ROUTE_COLUMNS)
