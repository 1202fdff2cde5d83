"""The BGP timeline of a report: per peer pair a lane of messages and session events over time.

Contract: :func:`build_timeline(tables, captures, bgp_ports) -> Timeline`. ``tables`` are the facts
tables (``bgp_messages``, ``packets``: the decoder's rows with the capturing ``host``), ``captures``
the ``(host, path)`` of every capture file, ``bgp_ports`` the TCP ports carrying BGP.

- A lane is one peer pair (the two addresses, sorted). When several hosts captured the same pair
  (both ends), the lane uses the capture with the most BGP messages for it and names the others.
- Marks: every message (OPEN, UPDATE, KEEPALIVE, NOTIFICATION, ROUTE-REFRESH) at the time of the
  frame that completed it, with its direction (a -> b or b -> a); TCP RST and FIN segments on the
  BGP ports, read from the capture file itself (the decoder's tables carry no TCP flags) through
  :mod:`diag.decode.capture` and :mod:`diag.decode.layers`; and ``RESET`` where an OPEN follows an
  established session (one that had exchanged KEEPALIVE or UPDATE since its last OPEN).
- ``state`` of a lane at the end of the capture: ESTABLISHED, IDLE (ended by NOTIFICATION, RST or
  FIN) or UNKNOWN; the wire topology of a bare capture uses it.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MESSAGE_KINDS = ("OPEN", "UPDATE", "KEEPALIVE", "NOTIFICATION", "ROUTE-REFRESH")
EVENT_KINDS = ("RST", "FIN", "RESET")
TCP_FIN, TCP_RST = 0x01, 0x04


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


def build_timeline(tables: dict[str, Any], captures: list[tuple[str, Path]],
                   bgp_ports: tuple[int, ...] = (179,)) -> Timeline:
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
    paths = dict(captures)
    tcp_events = {host: _tcp_control(paths[host], set(bgp_ports),
                                     _bgp_port_frames(packets, host, set(bgp_ports)))
                  for host in set(chosen.values()) if host in paths}
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


def _bgp_port_frames(packets, host: str, ports: set[int]) -> set[int] | None:
    """Frames of ``host``'s capture that are TCP on a BGP port (None: read every frame)."""
    if packets is None or not len(packets) or "ip_proto" not in packets:
        return None
    rows = packets[(packets["host"] == host) & (packets["ip_proto"] == 6)]
    on_port = rows["sport"].isin(ports) | rows["dport"].isin(ports)
    return {int(f) for f in rows.loc[on_port.fillna(False).astype(bool), "frame"]}


def _tcp_control(path: Path, ports: set[int], frames: set[int] | None = None,
                 ) -> list[tuple[float, str, str, str, int, str]]:
    """(ts, RST|FIN, src, dst, frame, text) for TCP segments on the BGP ports with RST or FIN.
    Only ``frames`` are parsed when given (the decoder already said which are TCP on a BGP
    port), so a big capture costs a walk over its blocks, not a parse of every packet."""
    from diag.decode.capture import open_blocks
    from diag.decode.layers import ETH_IPV4, ETH_IPV6, Malformed, link_header
    from diag.errors import DiagError

    out = []
    try:
        _info, blocks = open_blocks(path, arrays=False)
        for block in blocks:
            first = block.first_frame
            wanted = range(len(block)) if frames is None else \
                [f - first for f in sorted(frames) if first <= f < first + len(block)]
            for i in wanted:
                off, cap = block.offsets[i], block.caplens[i]
                data = block.buf[off:off + cap]
                try:
                    link = link_header(block.linktypes[i], data)
                except Malformed:
                    continue
                hit = _tcp_segment(data, link.offset, link.ethertype, ETH_IPV4, ETH_IPV6)
                if hit is None:
                    continue
                src, dst, sport, dport, flags = hit
                if sport not in ports and dport not in ports:
                    continue
                for bit, kind in ((TCP_RST, "RST"), (TCP_FIN, "FIN")):
                    if flags & bit:
                        out.append((float(block.ts[i]), kind, src, dst, first + i,
                                    f"TCP {kind} {src}:{sport} -> {dst}:{dport}"))
    except (DiagError, OSError):
        return out
    return out


def _tcp_segment(data: bytes, off: int, ethertype: int, ipv4: int, ipv6: int):
    if ethertype == ipv4 and len(data) >= off + 20:
        ihl = (data[off] & 0x0F) * 4
        if data[off + 9] != 6 or (struct.unpack_from("!H", data, off + 6)[0] & 0x1FFF):
            return None             # not TCP, or a later fragment
        src = socket.inet_ntoa(data[off + 12:off + 16])
        dst = socket.inet_ntoa(data[off + 16:off + 20])
        tcp = off + ihl
    elif ethertype == ipv6 and len(data) >= off + 40:
        if data[off + 6] != 6:      # only TCP right after the fixed header
            return None
        src = socket.inet_ntop(socket.AF_INET6, data[off + 8:off + 24])
        dst = socket.inet_ntop(socket.AF_INET6, data[off + 24:off + 40])
        tcp = off + 40
    else:
        return None
    if len(data) < tcp + 14:
        return None
    sport, dport = struct.unpack_from("!HH", data, tcp)
    return src, dst, sport, dport, data[tcp + 13]
