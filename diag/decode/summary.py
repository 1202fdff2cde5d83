"""What a capture shows, in one dict: the schema of ``diag pcap --format json`` (docs/pcap-json.md).

Contract: ``s = CaptureSummary(); s.add(chunk) for every chunk; s.result() -> dict``. It streams:
each chunk of :class:`diag.decode.Tables` is folded into counters and per-session / per-VNI /
per-IP state whose size depends on the number of sessions, tunnels and addresses, not packets.

ARP pairing: a request for IP T counts as answered when a reply *from* T arrives within
``ARP_REPLY_WINDOW`` seconds; gratuitous ARP (sender IP = target IP) and probes (sender 0.0.0.0)
expect no answer and are not paired. Several MACs answering for one IP (replies or gratuitous
announcements) are listed as multiple responders.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

try:
    from pandas import NA as _NA
except ImportError:  # pragma: no cover - pandas is a dependency
    _NA = object()

SCHEMA = "diag.pcap/1"
ARP_REPLY_WINDOW = 3.0
MAX_PENDING_PER_IP = 10_000
MAX_LISTED = 50
MAX_PREFIX_SAMPLE = 1000
BGP_TYPES = ("OPEN", "UPDATE", "NOTIFICATION", "KEEPALIVE", "ROUTE-REFRESH")


def _num(v: Any) -> Any:
    """pandas/numpy scalars -> plain JSON values (NaN/NA/NaT -> None)."""
    if v is None or v is _NA:
        return None
    try:
        if v != v:  # NaN
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return int(v)
    return v


try:
    import numpy as _np

    _EMPTY_HASHES = _np.empty(0, dtype=_np.uint64)
except ImportError:  # pragma: no cover - numpy is a dependency
    _EMPTY_HASHES = ()


class _Session:
    def __init__(self, name: str) -> None:
        self.name = name
        self.messages: Counter = Counter()
        self.opens: dict[str, dict] = {}
        # distinct prefixes as sorted 64-bit hashes: 8 bytes each, not a Python string each
        self.announced = _EMPTY_HASHES
        self.withdrawn = _EMPTY_HASHES
        self.announce_rows = 0
        self.withdraw_rows = 0
        self.eor: set[str] = set()
        self.notifications: list[dict] = []
        self.events: Counter = Counter()
        self.malformed = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None


class CaptureSummary:
    def __init__(self) -> None:
        self.file: str | None = None
        self.format: str | None = None
        self.interfaces: list[dict] = []
        self.total = 0
        self.malformed_packets = 0
        self.malformed_examples: list[dict] = []
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.by_app: Counter = Counter()
        self.by_l3: Counter = Counter()
        self.by_direction: Counter = Counter()
        self.sessions: dict[str, _Session] = {}
        self.bgp_types: Counter = Counter()
        self.announced_sample: set[str] = set()
        self.withdrawn_sample: set[str] = set()
        self.bgp_malformed = 0
        self.tunnel_types: dict[str, Counter] = defaultdict(Counter)   # type -> vni -> packets
        self.tunnel_endpoints: dict[tuple, Counter] = defaultdict(Counter)
        self.tunnel_inner: dict[tuple, Counter] = defaultdict(Counter)
        self.tunnel_malformed = 0
        self.arp_counts: Counter = Counter()
        self.arp_pending: dict[str, list] = defaultdict(list)
        self.arp_unanswered: dict[str, dict] = {}
        self.arp_answered = 0
        self.arp_responders: dict[str, dict[str, list]] = defaultdict(dict)

    # --- folding chunks --------------------------------------------------------------------
    def add(self, t) -> None:
        if t.info is not None:
            self.file, self.format = t.info.path, t.info.format
        self.interfaces = [{k: _num(v) for k, v in row.items()}
                           for row in t.interfaces.to_dict("records")]
        self._packets(t.packets)
        self._bgp(t.bgp_messages, t.bgp_routes, t.stream_events)
        self._tunnels(t.tunnels)
        self._arp(t.arp)

    def _packets(self, p) -> None:
        if not len(p):
            return
        self.total += len(p)
        ts = p["ts"]
        first, last = _num(ts.min()), _num(ts.max())
        self.first_ts = first if self.first_ts is None else min(self.first_ts, first)
        self.last_ts = last if self.last_ts is None else max(self.last_ts, last)
        self.by_app.update({(k or "other"): int(v) for k, v in p["app"].value_counts().items()})
        self.by_l3.update({str(k): int(v) for k, v in p["l3"].value_counts().items()})
        self.by_direction.update({str(k): int(v) for k, v in
                                  p["direction"].value_counts(dropna=True).items()})
        bad = p[p["malformed"].notna()]
        self.malformed_packets += len(bad)
        for row in bad.head(MAX_LISTED - len(self.malformed_examples)).itertuples():
            self.malformed_examples.append({"frame": int(row.frame), "reason": row.malformed})

    def _session(self, name: str) -> _Session:
        s = self.sessions.get(name)
        if s is None:
            s = self.sessions[name] = _Session(name)
        return s

    def _bgp(self, msgs, routes, events) -> None:
        if len(msgs):
            self._bgp_messages(msgs)
        if len(routes):
            import numpy as np
            import pandas as pd

            keys = routes["prefix"].where(routes["prefix"].notna(), "(raw)")
            hashes = pd.util.hash_array(keys.to_numpy(dtype=object))
            for (session, action), index in routes.groupby(["session", "action"]).indices.items():
                s = self._session(session)
                chunk = np.unique(hashes[index])
                if action == "announce":
                    s.announce_rows += len(index)
                    s.announced = np.union1d(s.announced, chunk)
                    sample = self.announced_sample
                else:
                    s.withdraw_rows += len(index)
                    s.withdrawn = np.union1d(s.withdrawn, chunk)
                    sample = self.withdrawn_sample
                if len(sample) < MAX_PREFIX_SAMPLE:
                    sample.update(keys.iloc[index[:MAX_PREFIX_SAMPLE]].tolist())
        for row in events.to_dict("records"):
            self._session(row["session"]).events[row["event"]] += 1

    def _bgp_messages(self, msgs) -> None:
        """Counts are vectorised; only OPENs, NOTIFICATIONs and End-of-RIBs are looked at one by one."""
        spans = msgs.groupby("session")["ts"].agg(["min", "max"])
        for session, (lo, hi) in spans.iterrows():
            s = self._session(session)
            lo, hi = _num(lo), _num(hi)
            s.first_ts = lo if s.first_ts is None else min(s.first_ts, lo)
            s.last_ts = hi if s.last_ts is None else max(s.last_ts, hi)
        bad = msgs["malformed"].notna()
        self.bgp_malformed += int(bad.sum())
        for session, n in msgs[bad].groupby("session").size().items():
            self._session(session).malformed += int(n)
        named = msgs[msgs["type_name"].notna()]
        for (session, name), n in named.groupby(["session", "type_name"]).size().items():
            self._session(session).messages[name] += int(n)
            self.bgp_types[name] += int(n)
        special = named["type_name"].isin(["OPEN", "NOTIFICATION"])
        if "eor" in named.columns:
            special |= named["eor"].notna()
        wanted = [c for c in ("session", "type_name", "src", "sport", "frame", "ts", "eor",
                              "open_my_as", "open_bgp_id", "open_hold_time", "open_capabilities",
                              "notify_code", "notify_subcode", "notify_name", "notify_subname",
                              "notify_text") if c in named.columns]
        picked = named.loc[special, wanted]
        for row in (dict(zip(wanted, values)) for values in zip(*(picked[c].tolist() for c in wanted))):
            s = self._session(row["session"])
            name = row["type_name"]
            sender = _endpoint(row["src"], row["sport"])
            if name == "OPEN":
                s.opens[sender] = {
                    "as": _num(row.get("open_my_as")), "bgp_id": _num(row.get("open_bgp_id")),
                    "hold_time": _num(row.get("open_hold_time")),
                    "capabilities": list(row.get("open_capabilities") or []),
                }
            elif name == "NOTIFICATION":
                s.notifications.append({
                    "frame": int(row["frame"]), "ts": _num(row.get("ts")), "from": sender,
                    "code": _num(row.get("notify_code")), "subcode": _num(row.get("notify_subcode")),
                    "name": _num(row.get("notify_name")), "subname": _num(row.get("notify_subname")),
                    "text": _num(row.get("notify_text")),
                })
            elif name == "UPDATE" and _num(row.get("eor")):
                s.eor.add(f"{row['eor']} from {sender}")

    def _tunnels(self, t) -> None:
        if not len(t):
            return
        self.tunnel_malformed += int(t["malformed"].notna().sum())
        for (kind, vni), n in t.groupby(["type", "vni"], dropna=False).size().items():
            # a tunnel header too short to hold a VNI has none: counted, not listed
            self.tunnel_types[kind][_num(vni)] += int(n)
        ends = t.groupby(["type", "vni", "outer_src", "outer_dst", "outer_dport"],
                         dropna=False).size()
        for (kind, vni, src, dst, dport), n in ends.items():
            self.tunnel_endpoints[(kind, _num(vni))][(src, dst, _num(dport))] += int(n)
        inner = t.groupby(["type", "vni", "inner_l3"], dropna=False).size()
        for (kind, vni, l3), n in inner.items():
            self.tunnel_inner[(kind, _num(vni))][_num(l3) or "none"] += int(n)

    def _arp(self, a) -> None:
        if not len(a):
            return
        for frame, ts, op, smac, sip, tip, grat in zip(a["frame"], a["ts"], a["op"],
                                                        a["sender_mac"], a["sender_ip"],
                                                        a["target_ip"], a["gratuitous"]):
            if sip is None:
                self.arp_counts["undecoded"] += 1
                continue
            if grat:
                self.arp_counts["gratuitous"] += 1
                self._responder(sip, smac, int(frame))
                if op == "reply":
                    self.arp_counts["replies"] += 1
                else:
                    self.arp_counts["requests"] += 1
                continue
            if op == "request":
                self.arp_counts["requests"] += 1
                if sip == "0.0.0.0":
                    self.arp_counts["probes"] += 1
                    continue
                pending = self.arp_pending[tip]
                if len(pending) < MAX_PENDING_PER_IP:
                    pending.append((float(ts), int(frame), sip))
                else:
                    self._unanswered(tip, float(ts), int(frame), sip)
            elif op == "reply":
                self.arp_counts["replies"] += 1
                self._responder(sip, smac, int(frame))
                pending = self.arp_pending.pop(sip, None)
                if pending:
                    for rts, rframe, requester in pending:
                        if 0 <= ts - rts <= ARP_REPLY_WINDOW:
                            self.arp_answered += 1
                        else:
                            self._unanswered(sip, rts, rframe, requester)
            else:
                self.arp_counts["other"] += 1

    def _responder(self, ip: str, mac: str, frame: int) -> None:
        frames = self.arp_responders[ip].setdefault(mac, [])
        if len(frames) < 5:
            frames.append(frame)

    def _unanswered(self, ip: str, ts: float, frame: int, requester: str) -> None:
        u = self.arp_unanswered.get(ip)
        if u is None:
            u = self.arp_unanswered[ip] = {"target_ip": ip, "count": 0, "first_ts": ts,
                                           "last_ts": ts, "first_frame": frame, "requesters": []}
        u["count"] += 1
        u["first_ts"], u["last_ts"] = min(u["first_ts"], ts), max(u["last_ts"], ts)
        u["first_frame"] = min(u["first_frame"], frame)
        if requester not in u["requesters"] and len(u["requesters"]) < 10:
            u["requesters"].append(requester)

    # --- the result ------------------------------------------------------------------------
    def result(self) -> dict:
        for ip, pending in list(self.arp_pending.items()):
            for ts, frame, requester in pending:
                self._unanswered(ip, ts, frame, requester)
        self.arp_pending.clear()
        import numpy as np

        announced = np.unique(np.concatenate([_EMPTY_HASHES] + [s.announced for s in self.sessions.values()]))
        withdrawn = np.unique(np.concatenate([_EMPTY_HASHES] + [s.withdrawn for s in self.sessions.values()]))
        sessions = [self._session_result(s) for s in sorted(self.sessions.values(),
                                                             key=lambda s: (s.first_ts or 0, s.name))]
        notifications = sorted((dict(n, session=s["session"]) for s in sessions for n in s["notifications"]),
                               key=lambda n: n["frame"])
        events: Counter = Counter()
        for s in self.sessions.values():
            events.update(s.events)
        multiple = [
            {"ip": ip, "macs": sorted(macs), "frames": sorted(f for fr in macs.values() for f in fr)}
            for ip, macs in sorted(self.arp_responders.items()) if len(macs) > 1
        ]
        unanswered = sorted(self.arp_unanswered.values(), key=lambda u: (-u["count"], u["target_ip"]))
        return {
            "schema": SCHEMA,
            "file": self.file,
            "format": self.format,
            "interfaces": self.interfaces,
            "packets": {
                "total": self.total, "malformed": self.malformed_packets,
                "malformed_examples": self.malformed_examples,
                "first_ts": self.first_ts, "last_ts": self.last_ts,
                "by_app": dict(sorted(self.by_app.items())),
                "by_l3": dict(sorted(self.by_l3.items())),
                "by_direction": dict(sorted(self.by_direction.items())),
            },
            "bgp": {
                "messages": {name: self.bgp_types.get(name, 0) for name in BGP_TYPES}
                | {k: v for k, v in self.bgp_types.items() if k not in BGP_TYPES},
                "malformed": self.bgp_malformed,
                "prefixes": {
                    "announced": len(announced), "withdrawn": len(withdrawn),
                    "announced_list": sorted(self.announced_sample)[:MAX_PREFIX_SAMPLE],
                    "withdrawn_list": sorted(self.withdrawn_sample)[:MAX_PREFIX_SAMPLE],
                },
                "notifications": notifications,
                "stream_events": dict(events),
                "sessions": sessions,
            },
            "tunnels": {
                kind: {"packets": sum(vnis.values()),
                       "vnis": sorted(v for v in vnis if v is not None)}
                for kind, vnis in sorted(self.tunnel_types.items())
            } | {"malformed": self.tunnel_malformed, "by_vni": self._tunnel_rows()},
            "arp": {
                "requests": self.arp_counts.get("requests", 0),
                "replies": self.arp_counts.get("replies", 0),
                "gratuitous": self.arp_counts.get("gratuitous", 0),
                "probes": self.arp_counts.get("probes", 0),
                "answered": self.arp_answered,
                "unanswered": sum(u["count"] for u in unanswered),
                "unanswered_by_ip": unanswered[:MAX_LISTED],
                "multiple_responders": multiple[:MAX_LISTED],
            },
        }

    def _tunnel_rows(self) -> list[dict]:
        rows = []
        for (kind, vni), ends in sorted(self.tunnel_endpoints.items(),
                                        key=lambda kv: (kv[0][0], kv[0][1] if kv[0][1] is not None else -1)):
            rows.append({
                "type": kind, "vni": vni, "packets": sum(ends.values()),
                "endpoints": [{"src": s, "dst": d, "dport": p, "packets": n}
                              for (s, d, p), n in ends.most_common(MAX_LISTED)],
                "inner": dict(self.tunnel_inner[(kind, vni)]),
            })
        return rows

    @staticmethod
    def _session_result(s: _Session) -> dict:
        ends = s.name.split("-")
        return {
            "session": s.name,
            "endpoints": ends,
            "speakers": s.opens,
            "messages": {k: s.messages[k] for k in sorted(
                s.messages, key=lambda k: (BGP_TYPES.index(k) if k in BGP_TYPES else 99, k))},
            "announced": len(s.announced), "withdrawn": len(s.withdrawn),
            "announce_rows": s.announce_rows, "withdraw_rows": s.withdraw_rows,
            "end_of_rib": sorted(s.eor),
            "notifications": s.notifications,
            "stream_events": dict(s.events),
            "malformed": s.malformed,
            "first_ts": s.first_ts, "last_ts": s.last_ts,
        }


def _endpoint(ip: str, port: Any) -> str:
    port = int(port)
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
