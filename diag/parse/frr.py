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
from diag.parse.common import ParseError, frame, int_or_none, load_json
from diag.parse.states import normalise_state

ROUTE_COLUMNS = ["prefix", "protocol", "selected", "installed", "distance", "metric", "table",
                 "nexthops", "nexthop", "interface"]


_AFI_KEY = re.compile(r"^(ipv4|ipv6|l2Vpn|l2vpn)[A-Z]")


def _vrf_name(value: Any, key: str | None = None) -> str:
    """FRR's ``vrfName`` ("Default" in FRR 3-4, "default" since), else the wrapper's key."""
    name = value if isinstance(value, str) and value else key
    return "default" if name in (None, "Default") else str(name)


def _summary_sections(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(vrf, AFI section with ``peers``) for every layout FRR 3-10 prints: one section
    (``show bgp ipv4 unicast summary json``), AFI-keyed sections (``show bgp summary json``),
    and either of those per VRF (``show bgp vrf all [ipv4] summary json``)."""
    if "peers" in doc:
        return [(_vrf_name(doc.get("vrfName")), doc)]
    sections: list[tuple[str, dict[str, Any]]] = []
    for key, value in doc.items():
        if not isinstance(value, dict) or not value:
            continue                 # a VRF or AFI without peers prints as {}
        if "peers" in value:         # an AFI section, or a VRF's single-AFI section
            vrf_key = None if _AFI_KEY.match(key) else key
            sections.append((_vrf_name(value.get("vrfName"), vrf_key), value))
        elif any(isinstance(v, dict) and "peers" in v for v in value.values()):
            sections.extend((_vrf_name(v.get("vrfName"), key), v) for v in value.values()
                            if isinstance(v, dict) and "peers" in v)
        elif not _AFI_KEY.match(key) and any(_AFI_KEY.match(k) for k in value):
            continue                 # a VRF whose AFIs are all empty
        else:
            raise ParseError(f"FRR summary: {key!r} holds no 'peers' (unknown FRR JSON layout)")
    if not sections and doc and not all(isinstance(v, dict) for v in doc.values()):
        raise ParseError("FRR summary: no AFI section with 'peers' (unknown FRR JSON layout)")
    return sections


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return False
    return True


def _peer_and_interface(key: str, peer: dict[str, Any]) -> tuple[str | None, str | None]:
    """An interface peer (``neighbor swp1 interface``) is keyed by its interface: the address
    is ``bgpNeighborAddr`` when FRR prints it (neighbors JSON; not FRR 8's summary)."""
    if peer.get("idType") == "interface" or not _is_address(key):
        address = peer.get("bgpNeighborAddr")
        return (address if isinstance(address, str) and _is_address(address) else None), key
    return key, None


def _asn(value: Any) -> int | None:
    """FRR prints ``remoteAs: 0`` for a ``remote-as external|internal|auto`` neighbour whose
    AS is not learned yet: unknown, not AS 0 (reserved, RFC 7607)."""
    number = int_or_none(value)
    return number if number else None


def parse_summary(data: str | bytes):
    doc = load_json(data, "FRR show bgp summary json", dict)
    rows = []
    for vrf, section in _summary_sections(doc):
        peers = section.get("peers")
        peers = {} if peers is None else peers
        if not isinstance(peers, dict):
            raise ParseError("FRR summary: 'peers' is not an object (unknown FRR JSON layout)")
        for key, peer in peers.items():
            if not isinstance(peer, dict):
                raise ParseError(f"FRR summary: peer {key!r} is not an object")
            address, interface = _peer_and_interface(key, peer)
            raw_state = str(peer.get("state", ""))
            peer_state = peer.get("peerState")
            if peer_state and peer_state != "OK" and f"({peer_state})" not in raw_state:
                # "Policy" is told by peerState alone; FRR 8.4 prints "Idle (Admin)" and
                # peerState "Admin" both
                raw_state = f"{raw_state} ({peer_state})"
            up = peer.get("peerUptimeMsec")
            established = normalise_state(peer.get("state")) == "ESTABLISHED"
            # FRR 3-7.4 count received prefixes as prefixReceivedCount; 7.5+ as pfxRcd/pfxSnt
            received = peer.get("pfxRcd", peer.get("prefixReceivedCount"))
            rows.append(peer_row(
                daemon="FRR", peer=address, peer_as=_asn(peer.get("remoteAs")),
                local_as=_asn(peer.get("localAs") or section.get("as")),
                name=peer.get("desc") or peer.get("hostname"),
                peer_hostname=peer.get("hostname"),
                state=normalise_state(peer.get("state")), state_raw=raw_state,
                uptime_s=up / 1000 if established and isinstance(up, (int, float)) else None,
                accepted=int_or_none(received), advertised=int_or_none(peer.get("pfxSnt")),
                interface=interface, vrf=vrf, peer_group=peer.get("peerGroup"),
                dynamic=bool(peer.get("dynamicPeer"))))
    return frame(rows, PEER_COLUMNS)


_VRF_KEYS = ("vrfId", "vrfName")


def _neighbor_entries(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(vrf, key, neighbour) of ``show bgp [vrf all] neighbors json``."""
    entries = []
    for key, value in doc.items():
        if isinstance(value, dict) and "bgpState" not in value and \
                any(k in value for k in _VRF_KEYS):
            vrf = _vrf_name(value.get("vrfName"), key)
            entries.extend((vrf, k, v) for k, v in value.items() if k not in _VRF_KEYS)
        else:
            entries.append(("default", key, value))
    for _vrf, key, value in entries:
        if not isinstance(value, dict) or "bgpState" not in value:
            raise ParseError(f"FRR neighbors: entry {key!r} has no bgpState (unknown layout)")
    return entries


def parse_neighbors(data: str | bytes):
    doc = load_json(data, "FRR show bgp neighbors json", dict)
    rows = []
    for vrf, key, peer in _neighbor_entries(doc):
        address, interface = _peer_and_interface(key, peer)
        afi = (peer.get("addressFamilyInfo") or {})
        v4 = afi.get("ipv4Unicast") or next(iter(afi.values()), {}) if afi else {}
        stats = peer.get("messageStats") or {}
        established = normalise_state(peer["bgpState"]) == "ESTABLISHED"
        reason = peer.get("lastNotificationReason") or peer.get("lastResetDueTo")
        host_local = peer.get("hostLocal")
        rows.append(peer_row(
            daemon="FRR", peer=address, peer_as=_asn(peer.get("remoteAs")),
            local_as=_asn(peer.get("localAs")),
            local_address=host_local if host_local not in (None, "Unknown") else None,
            name=peer.get("nbrDesc") or peer.get("hostname"),
            peer_hostname=peer.get("hostname"),
            state=normalise_state(peer["bgpState"]), state_raw=_state_raw(peer),
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
            notifications_received=int_or_none(stats.get("notificationsRecv")),
            interface=interface, vrf=vrf, peer_group=peer.get("peerGroup"),
            dynamic=bool(peer.get("dynamicPeer") or peer.get("peerSubnetRangeGroup"))))
    return frame(rows, PEER_COLUMNS)


def _state_raw(peer: dict[str, Any]) -> str:
    """``bgpState`` as FRR's summary spells it: a neighbour shut down by configuration
    (``adminShutDown``) is ``Idle (Admin)`` there, plain ``Idle`` here."""
    state = str(peer["bgpState"])
    return f"{state} (Admin)" if peer.get("adminShutDown") is True and state == "Idle" else state


def _secs(msecs: Any) -> float | None:
    return msecs / 1000 if isinstance(msecs, (int, float)) else None


def _rib_tables(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(vrf, routes) of ``show bgp [vrf all] ipv4 unicast json``."""
    if "routes" in doc:
        return [(_vrf_name(doc.get("vrfName")), doc["routes"] or {})]
    tables = [(_vrf_name(v.get("vrfName"), k), v["routes"] or {}) for k, v in doc.items()
              if isinstance(v, dict) and "routes" in v]
    if not tables and doc and "warning" not in doc:
        raise ParseError("FRR bgp RIB: no 'routes' object (unknown FRR JSON layout)")
    return tables


def parse_bgp_rib(data: str | bytes):
    doc = load_json(data, "FRR show bgp ipv4 unicast json", dict)
    rows = []
    for vrf, routes in _rib_tables(doc):
        if not isinstance(routes, dict):
            raise ParseError("FRR bgp RIB: 'routes' is not an object (unknown FRR JSON layout)")
        for prefix, paths in routes.items():
            for path in paths if isinstance(paths, list) else []:
                rows.append(_path_row(prefix, path, vrf))
    return frame(rows, PATH_COLUMNS)


def _path_row(prefix: str, path: dict[str, Any], vrf: str) -> dict[str, Any]:
    hops = path.get("nexthops") or []
    nexthop = next((h.get("ip") for h in hops if h.get("used")), None) or \
        (hops[0].get("ip") if hops else None)
    peer = path.get("peerId")
    local = peer in (None, "(unspec)", "0.0.0.0") or path.get("pathFrom") == "local"
    aspath = path.get("path")
    if aspath is None:
        aspath = path.get("aspath")  # FRR 4-6: a string; later detail views: an object
        if isinstance(aspath, dict):
            aspath = aspath.get("string")
    flat, text = parse_as_path_str(aspath if isinstance(aspath, str) else None)
    return path_row(
        daemon="FRR", rib="loc", peer=None if local else peer,
        prefix=path.get("network") or prefix, nexthop=nexthop, as_path=flat,
        as_path_str=text, origin=ORIGINS.get(str(path.get("origin", "")).lower()),
        best=bool(path.get("bestpath")), valid=bool(path.get("valid")),
        stale=bool(path.get("stale")), local=local,
        local_pref=int_or_none(path.get("locPrf") or path.get("localpref")),
        med=int_or_none(path.get("metric") if "metric" in path else path.get("med")), vrf=vrf)


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
