"""The BGP timeline of a report: per peer pair a lane of messages and session events over time.

Contract: :func:`build_timeline(tables, captures) -> Timeline`. ``tables`` are the facts tables
(``bgp_messages``, ``stream_events``, ``packets``: the decoder's rows with the capturing
``host``), ``captures`` the ``(host, path)`` of every capture file. Nothing is decoded here.

- A lane is one peer pair (the two addresses, sorted). When several hosts captured the same pair
  (both ends), the lane uses the capture with the most BGP messages for it and names the others.
- Marks: every message (OPEN, UPDATE, KEEPALIVE, NOTIFICATION, ROUTE-REFRESH) at the time of the
  frame that completed it, with its direction (a -> b or b -> a); TCP RST and FIN segments of the
  BGP connections (the decoder's ``stream_events`` ``rst``/``fin``, outside tunnels); and
  ``RESET`` where an OPEN follows an established session (one that had exchanged KEEPALIVE or
  UPDATE since its last OPEN).
- ``state`` of a lane at the end of the capture: ESTABLISHED, IDLE (ended by NOTIFICATION, RST or
  FIN) or UNKNOWN; the wire topology of a bare capture uses it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

MESSAGE_KINDS = ("OPEN", "UPDATE", "KEEPALIVE", "NOTIFICATION", "ROUTE-REFRESH")
EVENT_KINDS = ("RST", "FIN", "RESET")


@dataclass(frozen=True)
class Mark:
    ts: float
    kind: str               # a MESSAGE_KINDS or EVENT_KINDS value
    forward: bool           # sent by lane.a (towards lane.b)
    frame: int | None
    text: str               # one line: what it was (NOTIFICATION name and text, flags)


@dataclass(frozen=True)
class Lane:
    a: str
    b: str
    host: str               # the capture the marks come from
    other_hosts: tuple[str, ...]
    marks: tuple[Mark, ...]
    counts: tuple[tuple[str, int], ...]
    state: str

    @property
    def summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.counts if v) or "no messages"

    @property
    def notable(self) -> tuple[Mark, ...]:
        return tuple(m for m in self.marks if m.kind in ("NOTIFICATION",) + EVENT_KINDS)


@dataclass(frozen=True)
class Timeline:
    lanes: tuple[Lane, ...]
    t0: float | None
    t1: float | None
    captures: tuple[tuple[str, str, int], ...]     # (host, file name, packets)

    @property
    def has_capture(self) -> bool:
        return bool(self.captures)


def build_timeline(tables: dict[str, Any], captures: list[tuple[str, Path]]) -> Timeline:
    packets = tables.get("packets")
    per_host_packets: dict[str, int] = {}
    t0 = t1 = None
    if packets is not None and len(packets):
        per_host_packets = packets.groupby("host").size().to_dict()
        t0, t1 = float(packets["ts"].min()), float(packets["ts"].max())
    capture_list = tuple((h, Path(p).name, int(per_host_packets.get(h, 0))) for h, p in captures)
    messages = tables.get("bgp_messages")
    if messages is None or not len(messages):
        return Timeline((), t0, t1, capture_list)
    by_pair: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for row in messages.to_dict("records"):
        pair = tuple(sorted((str(row["src"]), str(row["dst"]))))
        by_pair.setdefault(pair, {}).setdefault(str(row["host"]), []).append(row)
    chosen = {pair: max(hosts, key=lambda h: (len(hosts[h]), h == "router", h))
              for pair, hosts in by_pair.items()}
    tcp_events = _tcp_control(tables.get("stream_events"), set(chosen.values()))
    lanes = []
    for pair, hosts in sorted(by_pair.items()):
        host = chosen[pair]
        a, b = pair
        marks = [Mark(float(r["ts"]), _kind(r), str(r["src"]) == a, _frame(r["frame"]), _text(r))
                 for r in hosts[host]]
        marks += [Mark(ts, kind, src == a, frame, text)
                  for ts, kind, src, dst, frame, text in tcp_events.get(host, ())
                  if tuple(sorted((src, dst))) == pair]
        marks, state = _resets(sorted(marks, key=lambda m: (m.ts, m.frame or 0)))
        counts = tuple((k, sum(1 for m in marks if m.kind == k))
                       for k in MESSAGE_KINDS + EVENT_KINDS)
        lanes.append(Lane(a, b, host, tuple(sorted(set(hosts) - {host})), tuple(marks), counts,
                          state))
    return Timeline(tuple(lanes), t0, t1, capture_list)


def _frame(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _kind(row: dict) -> str:
    name = str(row.get("type_name") or "").upper()
    return name if name in MESSAGE_KINDS else (name or "UNKNOWN")


def _text(row: dict) -> str:
    kind = _kind(row)
    head = f"{kind} {row['src']}:{row['sport']} -> {row['dst']}:{row['dport']}"
    if kind == "NOTIFICATION":
        parts = [str(row.get(k)) for k in ("notify_name", "notify_subname", "notify_text")
                 if row.get(k) not in (None, "", "None")]
        code = f"{row.get('notify_code')}/{row.get('notify_subcode')}"
        return f"{head}: {code} " + " / ".join(parts)
    if kind == "OPEN":
        return f"{head}: AS {row.get('open_my_as')}, hold {row.get('open_hold_time')} s, " \
               f"id {row.get('open_bgp_id')}"
    return head


def _resets(marks: list[Mark]) -> tuple[list[Mark], str]:
    """Add a RESET mark where an OPEN follows an established session; say how the lane ends."""
    out: list[Mark] = []
    established, ended = False, False
    for m in marks:
        if m.kind == "OPEN" and established:
            out.append(Mark(m.ts, "RESET", m.forward, m.frame,
                            f"session reset: new OPEN (frame {m.frame}) after an established "
                            "session"))
            established = False
        if m.kind in ("KEEPALIVE", "UPDATE"):
            established, ended = True, False
        elif m.kind in ("NOTIFICATION", "RST", "FIN"):
            established, ended = False, True
        out.append(m)
    return out, "ESTABLISHED" if established else "IDLE" if ended else "UNKNOWN"


def _tcp_control(events, hosts: set[str]) -> dict[str, list[tuple]]:
    """host -> (ts, RST|FIN, src, dst, frame, text) of the decoder's TCP control events on BGP
    connections (the ``stream_events`` rows ``rst`` and ``fin``), outside tunnels."""
    out: dict[str, list[tuple]] = {}
    if events is None or not len(events) or "event" not in events:
        return out
    rows = events[events["event"].isin(["rst", "fin"]) & events["host"].isin(hosts)]
    if "tunnel_depth" in rows:
        rows = rows[rows["tunnel_depth"].fillna(0) == 0]
    for r in rows.sort_values(["host", "frame"], kind="stable").itertuples(index=False):
        kind = str(r.event).upper()
        out.setdefault(str(r.host), []).append(
            (float(r.ts), kind, str(r.src), str(r.dst), int(r.frame),
             f"TCP {kind} {r.src}:{r.sport} -> {r.dst}:{r.dport}"))
    return out
