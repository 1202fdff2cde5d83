"""GoBGP JSON: ``gobgp neighbor -j`` (peers) and ``gobgp global rib -j`` /
``gobgp neighbor ADDR adj-in -j`` (paths).

GoBGP prints protobuf-as-JSON: zero values are omitted, session states are enum numbers
(``session_state: 6`` = ESTABLISHED), times are epoch seconds (``timers.state.uptime.seconds``)
— so ages need the moment the command ran (``now``, epoch seconds; the bundle's command start).

``parse_neighbors`` -> :data:`diag.parse.bgp_schema.PEER_COLUMNS` (daemon ``GOBGP``);
``parse_rib(data, rib="loc"|"adj-in", peer=None)`` -> :data:`PATH_COLUMNS`.

Example: ``{"daemon": "GOBGP", "peer": "192.0.2.1", "peer_as": 65000, "local_as": 65001,
"local_address": "192.0.2.11", "state": "ESTABLISHED", "state_raw": "6", "received": 3,
"accepted": 3, "hold_time": 9.0, ...}``; a path: ``{"rib": "loc", "peer": "192.0.2.1",
"prefix": "10.244.0.0/24", "nexthop": "192.0.2.10", "as_path": [65000, 65001], "best": True}``.
Cilium's embedded GoBGP (``cilium-dbg bgp``) has its own text parser: :mod:`diag.parse.cilium`.
"""
from __future__ import annotations

from typing import Any

from diag.parse.bgp_schema import (ORIGINS, PATH_COLUMNS, PEER_COLUMNS, as_path_text, path_row,
                                   peer_row)
from diag.parse.common import ParseError, Rows, frame, int_or_none, load_json
from diag.parse.states import ESTABLISHED, normalise_state


def parse_neighbors(data: str | bytes, now: float | None = None):
    return neighbor_records(data, now).frame()


def neighbor_records(data: str | bytes, now: float | None = None) -> Rows:
    peers = load_json(data, "gobgp neighbor -j", list)
    rows = []
    for peer in peers:
        if not isinstance(peer, dict) or "conf" not in peer and "state" not in peer:
            raise ParseError("gobgp neighbor -j: entry without conf/state (unknown layout)")
        conf = peer.get("conf") or {}
        state = peer.get("state") or {}
        timers = peer.get("timers") or {}
        tstate = timers.get("state") or {}
        tconf = timers.get("config") or {}
        canonical = normalise_state(state.get("session_state"))
        established = canonical == ESTABLISHED
        counts = {"received": 0, "accepted": 0, "advertised": 0} if established else {}
        for family in peer.get("afi_safis") or []:
            fstate = family.get("state") or {}
            for key in ("received", "accepted", "advertised"):
                if key in fstate:
                    counts[key] = counts.get(key, 0) + int(fstate[key])
        up = (tstate.get("uptime") or {}).get("seconds")
        down = (tstate.get("downtime") or {}).get("seconds")
        received_msgs = (state.get("messages") or {}).get("received") or {}
        rows.append(peer_row(
            daemon="GOBGP", peer=state.get("neighbor_address") or conf.get("neighbor_address"),
            peer_as=int_or_none(state.get("peer_asn") or conf.get("peer_asn")),
            local_as=int_or_none(conf.get("local_asn")),
            local_address=(peer.get("transport") or {}).get("local_address") or None,
            name=conf.get("description") or None, state=canonical,
            state_raw=str(state.get("session_state")),
            uptime_s=_age(now, up) if established else None,
            last_error_age_s=_age(now, down) if not established else None,
            received=counts.get("received"), accepted=counts.get("accepted"),
            advertised=counts.get("advertised"),
            hold_time=float(tstate.get("negotiated_hold_time") or tconf.get("hold_time") or 0)
            or None,
            keepalive=float(tstate.get("keepalive_interval") or tconf.get("keepalive_interval")
                            or 0) or None,
            peer_router_id=state.get("router_id"),
            notifications_received=int(received_msgs.get("notification", 0))
            if received_msgs or established else None))
    return Rows(rows, PEER_COLUMNS)


def _age(now: float | None, epoch: Any) -> float | None:
    if now is None or not isinstance(epoch, (int, float)) or epoch <= 0:
        return None
    return max(0.0, now - epoch)


def _attrs(attrs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"segments": []}
    for attr in attrs:
        kind = attr.get("type")
        if kind == 1:
            out["origin"] = ORIGINS.get(attr.get("value", 0))
        elif kind == 2:
            for seg in attr.get("as_paths") or []:
                out["segments"].append(("set" if seg.get("segment_type") == 1 else "seq",
                                        [int(a) for a in seg.get("asns") or []]))
        elif kind == 3:
            out["nexthop"] = attr.get("nexthop")
        elif kind == 4:
            out["med"] = int_or_none(attr.get("metric", 0))
        elif kind == 5:
            out["local_pref"] = int_or_none(attr.get("value", 0))
        elif kind == 14 and not out.get("nexthop"):
            hops = attr.get("nexthop") or attr.get("nexthops")
            out["nexthop"] = hops[0] if isinstance(hops, list) and hops else hops
    return out


def parse_rib(data: str | bytes, rib: str = "loc", peer: str | None = None):
    """The paths table. GoBGP's regular ``-j`` text is read column-wise
    (:func:`_parse_rib_columnar`, a 5,000-route RIB per node is the bulk of a large bundle);
    anything else, and the reference for the tests, is the row-by-row walk below."""
    fast = _parse_rib_columnar(data if isinstance(data, bytes) else data.encode("utf-8"), rib,
                               peer)
    if fast is not None:
        return fast
    doc = load_json(data, "gobgp rib -j", (dict, list))
    items = doc.items() if isinstance(doc, dict) else [(None, [d]) for d in doc]
    rows = []
    for prefix, paths in items:
        if not isinstance(paths, list):
            raise ParseError("gobgp rib -j: destination is not a list of paths (unknown layout)")
        for path in paths:
            rows.append(_path_row(path, prefix, rib, peer))
    return frame(rows, PATH_COLUMNS)


def _path_row(path: dict[str, Any], prefix: str | None, rib: str, peer: str | None) -> dict:
    attrs = _attrs(path.get("attrs") or [])
    source = path.get("neighbor-ip") or peer
    local = path.get("neighbor-ip") is None and rib == "loc"
    flat, text = as_path_text(attrs["segments"])
    return path_row(
        daemon="GOBGP", rib=rib, peer=None if local else source,
        prefix=(path.get("nlri") or {}).get("prefix") or prefix,
        nexthop=attrs.get("nexthop"), as_path=flat, as_path_str=text,
        origin=attrs.get("origin"), best=bool(path.get("best")),
        valid=not path.get("filtered", False), stale=bool(path.get("stale")),
        local=local, local_pref=attrs.get("local_pref"), med=attrs.get("med"))


def _parse_rib_columnar(data: bytes, rib: str, peer: str | None):
    """:func:`parse_rib`'s table from :func:`rib_part` alone, or None when the text is not in
    the regular shape."""
    found = rib_part(data, rib, peer)
    return None if found is None else rib_frame_of_parts([found])


def rib_part(data: bytes, rib: str = "loc", peer: str | None = None):
    """``data`` read column-wise by :func:`diag.parse.columnar.gobgp_path_records`
    (:class:`diag.parse.columnar.Part`, not yet a frame), or None when the text is not in that
    regular shape or a body surprises the reference (then :func:`parse_rib` decides, errors
    included). The reference's :func:`_path_row` runs once per distinct path body (all but nlri
    and age), its values shared by the paths that have it. The signature is each column's dtype
    as :func:`diag.parse.columnar.typed` decides it from the values this output holds."""
    from diag.parse import columnar

    records = columnar.gobgp_path_records(data)
    if records is None:
        return None
    import numpy as np

    try:
        rows = [_path_row(body, None, rib, peer) for body in records.bodies]
    except (ValueError, TypeError, AttributeError, KeyError):
        return None
    used = np.unique(records.body_index).tolist()
    signature = tuple(columnar.typed_kind([rows[u][name] for u in used])
                      for name in PATH_COLUMNS if name != "prefix")
    return columnar.Part(records, rows, rib_frame_of_parts, signature)


def rib_frame_of_parts(parts: list):
    """The paths table of consecutive outputs' :func:`rib_part` s of one signature: exactly the
    concatenation of their frames alone (values and dtypes)."""
    import pandas as pd

    from diag.parse import columnar

    rows = [row for one in parts for row in one.rows]
    index = columnar.global_index(parts)
    kinds = dict(zip([name for name in PATH_COLUMNS if name != "prefix"], parts[0].signature))
    block = columnar.ObjectBlock(["prefix"] + [name for name, kind in kinds.items()
                                               if kind == "object"], len(index))
    columnar.strings_into(block, "prefix", columnar.joined_keys(parts))
    others = {}
    for name, kind in kinds.items():
        distinct = columnar.objects([row[name] for row in rows])
        if kind == "object":
            block.put(name, distinct, index)
        else:
            others[name] = columnar.typed_as(kind, distinct[index])
    return columnar.assemble(PATH_COLUMNS, block, others, pd.RangeIndex(len(index)))
