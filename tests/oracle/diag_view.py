"""diag's tables (``diag.decode.decode_file``) reduced to the normal form of
:mod:`tests.oracle.normal`, following the column contract of the decoder (docs/api.md).

Only the reduction lives here; what is compared, and with what, is in the tests.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from tests.craft.bgpmsg import WELL_KNOWN_COMMUNITIES
from tests.oracle.normal import (FAMILIES, ArpFact, BgpMsg, FrameBgp, NlriEntry, Route,
                                 TunnelLayer, canon_ip, canon_prefix, community_text)

_COMMUNITY_BY_NAME = {name: value for value, name in WELL_KNOWN_COMMUNITIES.items()}


def missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        import pandas as pd
        if value is pd.NA or value is pd.NaT:
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(value, float) and math.isnan(value)


def community_value(text: str) -> str:
    """'no-export' / 'NO_EXPORT' / '65535:65281' -> '65535:65281'; unknown names stay as they are
    (and so fail the comparison)."""
    key = text.strip().upper().replace("-", "_")
    if key in _COMMUNITY_BY_NAME:
        return community_text(_COMMUNITY_BY_NAME[key])
    return text.strip()


def _list(value: Any) -> list[Any]:
    if missing(value) if not isinstance(value, (list, tuple)) else False:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _path_text(row: dict[str, Any], column: str) -> str:
    text_col = column + "_str"
    if text_col in row and not missing(row[text_col]):
        return str(row[text_col])
    value = row.get(column)
    if isinstance(value, str):
        return value
    return " ".join(str(a) for a in _list(value))


def route_of(row: dict[str, Any]) -> Route:
    pid = row.get("path_id")
    next_hops = [canon_ip(str(row["next_hop"]))] if not missing(row.get("next_hop")) else []
    if not missing(row.get("next_hop_link_local")):
        next_hops.append(canon_ip(str(row["next_hop_link_local"])))
    return Route(
        canon_prefix(str(row["prefix"])),
        None if missing(pid) else int(pid),
        _path_text(row, "as_path"),
        _path_text(row, "as4_path"),
        tuple(next_hops),
        tuple(sorted(community_value(str(c)) for c in _list(row.get("communities")))),
        tuple(sorted(str(c) for c in _list(row.get("large_communities")))),
    )


def bgp_frames(tables: Any) -> dict[int, FrameBgp]:
    """frame -> FrameBgp from ``bgp_messages`` (types, NOTIFICATION codes) and ``bgp_routes``
    (announced / withdrawn prefixes with their attributes). Malformed message rows are left out:
    they are checked separately."""
    msgs: dict[int, list[BgpMsg]] = defaultdict(list)
    for row in tables.bgp_messages.to_dict("records"):
        if not missing(row.get("malformed")):
            continue
        note = None
        if int(row["type"]) == 3:
            note = (int(row["notify_code"]), int(row["notify_subcode"]))
        msgs[int(row["frame"])].append(BgpMsg(int(row["type"]), notification=note))
    announced: dict[int, set[Route]] = defaultdict(set)
    withdrawn: dict[int, set[tuple[str, int | None]]] = defaultdict(set)
    for row in tables.bgp_routes.to_dict("records"):
        frame = int(row["frame"])
        if row["action"] == "announce":
            announced[frame].add(route_of(row))
        else:
            pid = row.get("path_id")
            withdrawn[frame].add((canon_prefix(str(row["prefix"])), None if missing(pid) else int(pid)))
    out = {}
    for frame in sorted(set(msgs) | set(announced) | set(withdrawn)):
        base = FrameBgp.of(msgs.get(frame, []))
        out[frame] = FrameBgp(base.types, frozenset(announced.get(frame, ())),
                              frozenset(withdrawn.get(frame, ())), base.notifications)
    return out


def _int_or_none(value: Any) -> int | None:
    return None if missing(value) else int(value)


def tunnel_frames(tables: Any) -> dict[int, tuple[TunnelLayer, ...]]:
    layers: dict[int, list[tuple[int, TunnelLayer]]] = defaultdict(list)
    for row in tables.tunnels.to_dict("records"):
        if not missing(row.get("malformed")):
            continue
        ip_inside = row.get("inner_l3") in ("ipv4", "ipv6")
        layers[int(row["frame"])].append((int(row["depth"]), TunnelLayer(
            str(row["type"]), int(row["vni"]), canon_ip(str(row["outer_src"])),
            canon_ip(str(row["outer_dst"])), int(row["outer_dport"]),
            "" if missing(row.get("inner_eth_src")) else str(row["inner_eth_src"]).lower(),
            "" if missing(row.get("inner_eth_dst")) else str(row["inner_eth_dst"]).lower(),
            canon_ip(str(row["inner_src"])) if ip_inside else None,
            canon_ip(str(row["inner_dst"])) if ip_inside else None,
            _int_or_none(row.get("inner_proto")) if ip_inside else None,
            _int_or_none(row.get("inner_sport")) if ip_inside else None,
            _int_or_none(row.get("inner_dport")) if ip_inside else None)))
    return {f: tuple(layer for _, layer in sorted(v, key=lambda x: x[0]))
            for f, v in sorted(layers.items())}


ARP_OPS = {"request": 1, "reply": 2}


def arp_frames(tables: Any) -> dict[int, tuple[ArpFact, int]]:
    out = {}
    for row in tables.arp.to_dict("records"):
        if not missing(row.get("malformed")):
            continue
        op = row["op"]
        out[int(row["frame"])] = (ArpFact(
            ARP_OPS.get(op, op) if isinstance(op, str) else int(op),
            str(row["sender_mac"]).lower(), canon_ip(str(row["sender_ip"])),
            str(row["target_mac"]).lower(), canon_ip(str(row["target_ip"]))),
            int(row["tunnel_depth"]) if not missing(row.get("tunnel_depth")) else 0)
    return out


PKTTYPE_NAMES = {"host": 0, "broadcast": 1, "multicast": 2, "otherhost": 3, "outgoing": 4}


def _vlan(value: Any) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    if missing(value):
        return ()
    if isinstance(value, str):
        return tuple(int(v) for v in value.replace(",", ".").split(".") if v)
    return (int(value),)


def packet_facts(tables: Any) -> dict[int, dict[str, object]]:
    """frame -> the same keys :func:`tests.oracle.tshark.packet_facts` produces (ts as float)."""
    out: dict[int, dict[str, object]] = {}
    for row in tables.packets.to_dict("records"):
        facts: dict[str, object] = {}
        for key in ("caplen", "wirelen", "capture_iface", "ifindex", "ip_proto", "sport", "dport"):
            facts[key] = None if missing(row.get(key)) else int(row[key])
        for key in ("iface_name", "direction", "l3", "app", "malformed"):
            facts[key] = None if missing(row.get(key)) else row[key]
        for key in ("eth_src", "eth_dst"):
            facts[key] = None if missing(row.get(key)) else str(row[key]).lower()
        for key in ("src", "dst"):
            facts[key] = None if missing(row.get(key)) else canon_ip(str(row[key]))
        pkttype = row.get("pkttype")
        facts["pkttype"] = (None if missing(pkttype) else
                            PKTTYPE_NAMES.get(pkttype, pkttype) if isinstance(pkttype, str) else int(pkttype))
        facts["vlan"] = _vlan(row.get("vlan"))
        facts["fragment"] = bool(row.get("fragment")) if not missing(row.get("fragment")) else False
        facts["ts"] = float(row["ts"])
        facts["linktype"] = int(row["linktype"]) if not missing(row.get("linktype")) else None
        out[int(row["frame"])] = facts
    return out


def _labels_text(labels: Any, action: str) -> str | None:
    """diag's label values -> tshark's label stack text (a withdrawal's 0x800000 or 0 field)."""
    values = _list(labels)
    if not values:
        return None
    if values == [0x80000] or (values == [0] and action != "announce"):
        return "0 (withdrawn)"
    return ",".join(str(int(v)) for v in values) + " (bottom)"


def nlri_entries(tables: Any) -> dict[int, list[NlriEntry]]:
    """frame -> the routes of the families of :data:`tests.oracle.normal.FAMILIES`, in row order."""
    names = set(FAMILIES.values())
    out: dict[int, list[NlriEntry]] = defaultdict(list)
    for row in tables.bgp_routes.to_dict("records"):
        family = f"{row['afi']}/{row['safi']}"
        if family not in names or family == "ipv4/flowspec":
            continue
        action = row["action"]
        rd = None if missing(row.get("rd")) else str(row["rd"])
        if family == "l2vpn/evpn":
            rtype = int(row["evpn_type"])
            ip = None if missing(row.get("evpn_ip")) else str(row["evpn_ip"])
            prefix = canon_prefix(ip) if rtype == 5 else None
            labels = (tuple(int(v) for v in _list(row.get("labels"))) if rtype in (1, 2) else
                      tuple(int(v) for v in _list(row.get("vnis"))[:1]) if rtype == 5 else ())
            entry = NlriEntry(
                action, family, prefix, rd, None, rtype,
                None if missing(row.get("esi")) else str(row["esi"]),
                None if missing(row.get("ethernet_tag")) else int(row["ethernet_tag"]),
                None if missing(row.get("mac")) else str(row["mac"]).lower(),
                canon_ip(ip) if ip and rtype != 5 else None,
                None if missing(row.get("gateway_ip")) else canon_ip(str(row["gateway_ip"])),
                labels)
        elif family == "bgp-ls/bgp-ls":
            entry = NlriEntry(action, family, ls_nlri=str(row["prefix"]))
        else:
            entry = NlriEntry(action, family, canon_prefix(str(row["prefix"])), rd,
                              _labels_text(row.get("labels"), action))
        out[int(row["frame"])].append(entry)
    return dict(out)
