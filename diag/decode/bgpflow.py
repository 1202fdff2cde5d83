"""BGP over TCP: connections, per-direction reassembly, session context, message rows.

Contract: :class:`BgpFlows` receives every TCP segment on a BGP port
(``segment(src, sport, dst, dport, seq, flags, payload, frame, ts, depth)``) and calls
``on_message(row)``, ``on_route(row)`` and ``on_event(row)`` with plain dicts:

* a message row is a tuple with the columns :data:`MESSAGE_ROW` — ``frame, first_frame, ts, src,
  sport, dst, dport, session, tunnel_depth`` followed by :data:`diag.decode.bgp.MESSAGE_COLUMNS`;
  ``frame`` is the frame in which the message's last byte arrived (where tshark shows a
  reassembled PDU);
* a route group is ``(row, prefixes)``: ``row`` a tuple with the columns :data:`ROUTE_ROW` —
  ``frame, ts, src, sport, dst, dport, session`` followed by
  :data:`diag.decode.bgp.ROUTE_COLUMNS` — shared by every ``(path_id, prefix)`` of ``prefixes``
  (one UPDATE's NLRI with its attributes); tables expand groups column-wise, one row per prefix;
* an event row (a dict, ``stream_events`` table) reports what reassembly could not hand over: ``gap``
  (bytes never captured; decoding resumes at the next BGP marker), ``framing-error`` (a header
  whose marker or length is impossible), ``resync`` (framing resumed on a BGP header: the bytes
  skipped after a framing error, or sequence numbers found off by a few bytes at a message
  boundary, :class:`diag.decode.tcpstream.Resync`); and the connection's TCP control segments,
  which show sessions that never got to BGP: ``syn``, ``syn-ack`` (detail ``tcp-md5``/``tcp-ao`` when the
  segment carries RFC 2385/5925 option 19/29), ``rst``, ``fin`` (:data:`TCP_CONTROL_EVENTS`).

Session context (4-octet AS, ADD-PATH) is learned from the two OPENs of a connection and applied
to every later UPDATE in each direction (:func:`diag.decode.bgp.negotiate`). A SYN without ACK on a
connection that already carried data starts a new connection: the old context is dropped.
"""
from __future__ import annotations

from typing import Callable

from diag.decode import bgp
from diag.decode.tcpstream import BgpStream, FramingError, Gap, Message, Resync

TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
# frame timestamps kept for late completions: every frame of the last RECENT_FRAMES // 2 of the
# capture. Kept per connection, pruned when a connection's map outgrows its limit (at least
# PRUNE_AT entries, then twice what survived the last pruning): what a connection remembers never
# depends on other connections' traffic, so workers that own different connections
# (diag.decode.parallel) produce the same rows, and all connections together hold at most about
# RECENT_FRAMES + PRUNE_AT per open connection (a connection whose every direction has closed
# drops its map: nothing can look an earlier frame up any more)
RECENT_FRAMES = 200_000
PRUNE_AT = 4096

Endpoint = tuple[str, int]
Row = tuple
MESSAGE_ROW = ("frame", "first_frame", "ts", "src", "sport", "dst", "dport", "session",
               "tunnel_depth") + bgp.MESSAGE_COLUMNS
ROUTE_ROW = ("frame", "ts", "src", "sport", "dst", "dport", "session") + bgp.ROUTE_COLUMNS
_MALFORMED_AT = bgp.MESSAGE_COLUMNS.index("malformed")
TCP_CONTROL_EVENTS = ("syn", "syn-ack", "rst", "fin")
TCP_OPTION_NAMES = {19: "tcp-md5", 29: "tcp-ao"}


def tcp_option_kinds(options: bytes) -> list[int]:
    """The kinds of the TCP options in ``options`` (the header bytes after the fixed 20)."""
    kinds, i, n = [], 0, len(options)
    while i < n:
        kind = options[i]
        if kind == 0:                                 # end of option list
            break
        kinds.append(kind)
        if kind == 1:                                 # NOP
            i += 1
            continue
        if i + 1 >= n or options[i + 1] < 2:          # a broken length: stop, do not guess
            break
        i += options[i + 1]
    return kinds


class _Connection:
    __slots__ = ("session", "streams", "opens", "contexts", "carried_data", "frame_ts",
                 "prune_at")

    def __init__(self, session: str) -> None:
        self.session = session
        self.streams: dict[Endpoint, BgpStream] = {}
        self.opens: dict[Endpoint, bgp.OpenInfo] = {}
        self.contexts: dict[Endpoint, bgp.Direction] = {}
        self.carried_data = False
        self.frame_ts: dict[int, float] = {}
        self.prune_at = PRUNE_AT


class BgpFlows:
    def __init__(self, on_message: Callable[[Row], None], on_route: Callable[[Row], None],
                 on_event: Callable[[Row], None]) -> None:
        self.on_message, self.on_route, self.on_event = on_message, on_route, on_event
        self.connections: dict[tuple[Endpoint, Endpoint], _Connection] = {}
        self.default_context = bgp.negotiate(None, None)

    def segment(self, src: str, sport: int, dst: str, dport: int, seq: int, flags: int,
                payload: bytes, frame: int, ts: float, depth: int, options: bytes = b"") -> None:
        """One segment; ``options`` (TCP options) matter only on SYNs (TCP-MD5/AO detail)."""
        a, b = (src, sport), (dst, dport)
        key = (a, b) if a <= b else (b, a)
        conn = self.connections.get(key)
        syn = bool(flags & TCP_SYN)
        if conn is None or (syn and not flags & TCP_ACK and conn.carried_data
                            and not _same_syn(conn, a, seq)):
            if conn is not None:          # a new connection on the same 4-tuple: finish the old one
                self._flush_connection(conn, frame, ts)
            conn = _Connection(_session_name(key))
            self.connections[key] = conn
        stream = conn.streams.get(a)
        if stream is None:
            stream = conn.streams[a] = BgpStream()
        if payload:
            conn.carried_data = True
            conn.frame_ts[frame] = ts
            if len(conn.frame_ts) > conn.prune_at:
                horizon = frame - RECENT_FRAMES // 2
                conn.frame_ts = {f: t for f, t in conn.frame_ts.items() if f >= horizon}
                conn.prune_at = max(PRUNE_AT, 2 * len(conn.frame_ts))
        if flags & (TCP_SYN | TCP_RST | TCP_FIN):
            self._control(conn.session, a, b, flags, options, frame, ts, depth)
        events = stream.segment(seq, payload, frame, syn=syn, fin=bool(flags & TCP_FIN),
                                rst=bool(flags & TCP_RST))
        if events:
            self._handle(conn, a, b, events, ts, depth)
        if flags & (TCP_FIN | TCP_RST) and conn.frame_ts and all(
                s.closed for s in conn.streams.values()):
            # every direction ended and handed over: no event can name an earlier frame again,
            # so a closed connection keeps no timestamps (reconnects from new ports would
            # otherwise keep up to PRUNE_AT each, growing with the capture)
            conn.frame_ts = {}
            conn.prune_at = PRUNE_AT

    def _control(self, session: str, a: Endpoint, b: Endpoint, flags: int, options: bytes,
                 frame: int, ts: float, depth: int) -> None:
        base = {"frame": frame, "ts": ts, "src": a[0], "sport": a[1], "dst": b[0], "dport": b[1],
                "session": session, "tunnel_depth": depth}
        if flags & TCP_SYN:
            detail = ",".join(TCP_OPTION_NAMES[k] for k in tcp_option_kinds(options)
                              if k in TCP_OPTION_NAMES)
            self.on_event({**base, "event": "syn-ack" if flags & TCP_ACK else "syn",
                           "detail": detail})
        if flags & TCP_RST:
            self.on_event({**base, "event": "rst", "detail": ""})
        if flags & TCP_FIN:
            self.on_event({**base, "event": "fin", "detail": ""})

    def flush(self, frame: int, ts: float) -> None:
        """End of capture: whatever reassembly still holds is handed over or reported."""
        for conn in self.connections.values():
            self._flush_connection(conn, frame, ts)

    def _flush_connection(self, conn: _Connection, frame: int, ts: float) -> None:
        for sender, stream in conn.streams.items():
            receiver = next((e for e in conn.streams if e != sender), None)
            if receiver is None:
                receiver = _other_end(conn.session, sender)
            events = stream.flush(frame)
            if events:
                self._handle(conn, sender, receiver, events, ts, 0)

    def _handle(self, conn: _Connection, sender: Endpoint, receiver: Endpoint, events: list,
                ts: float, depth: int) -> None:
        base = {"src": sender[0], "sport": sender[1], "dst": receiver[0], "dport": receiver[1],
                "session": conn.session, "tunnel_depth": depth}
        for event in events:
            if isinstance(event, Message):
                self._message(conn, sender, receiver, event, base, ts)
            elif isinstance(event, Gap):
                self.on_event({"frame": event.frame, "ts": conn.frame_ts.get(event.frame, ts),
                               **base, "event": "gap",
                               "detail": _gap_text(event)})
            elif isinstance(event, Resync):
                self.on_event({"frame": event.frame, "ts": conn.frame_ts.get(event.frame, ts),
                               **base, "event": "resync", "detail": _resync_text(event)})
            elif isinstance(event, FramingError):
                when = conn.frame_ts.get(event.frame, ts)
                self.on_event({"frame": event.frame, "ts": when, **base,
                               "event": "framing-error", "detail": event.reason})
                values = [None] * len(bgp.MESSAGE_COLUMNS)
                values[_MALFORMED_AT] = event.reason
                self.on_message((event.frame, event.frame, when, sender[0], sender[1],
                                 receiver[0], receiver[1], conn.session, depth, *values))

    def _message(self, conn: _Connection, sender: Endpoint, receiver: Endpoint, msg: Message,
                 base: dict, ts: float) -> None:
        ctx = conn.contexts.get(sender, self.default_context)
        decoded = bgp.decode_message(msg.raw, ctx)
        if decoded.open is not None:
            conn.opens[sender] = decoded.open
            for end, other in ((sender, receiver), (receiver, sender)):
                conn.contexts[end] = bgp.negotiate(conn.opens.get(end), conn.opens.get(other))
        when = conn.frame_ts.get(msg.last_frame, ts)
        self.on_message((msg.last_frame, msg.first_frame, when, sender[0], sender[1], receiver[0],
                         receiver[1], conn.session, base["tunnel_depth"],
                         *decoded.row.values()))
        if decoded.groups:
            head = (msg.last_frame, when, sender[0], sender[1], receiver[0], receiver[1],
                    conn.session)
            on_route = self.on_route
            for base, prefixes in decoded.groups:
                on_route(((*head, *base.values()), prefixes))


def _session_name(key: tuple[Endpoint, Endpoint]) -> str:
    (a_ip, a_port), (b_ip, b_port) = key
    return f"{_ep(a_ip, a_port)}-{_ep(b_ip, b_port)}"


def _ep(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _other_end(session: str, sender: Endpoint) -> Endpoint:
    left, _, right = session.partition("-")
    for part in (left, right):
        host, _, port = part.rpartition(":")
        end = (host.strip("[]"), int(port))
        if end != sender:
            return end
    return sender


def _same_syn(conn: _Connection, sender: Endpoint, seq: int) -> bool:
    """A retransmitted SYN (same ISN) of a connection whose SYN carried data is not a new one."""
    stream = conn.streams.get(sender)
    return stream is not None and stream.isn == seq & 0xFFFFFFFF


def _resync_text(event: Resync) -> str:
    if event.shift < 0:
        return (f"segment overlaps {-event.shift} byte(s) already received, yet starts with a "
                f"BGP header: framed from there as Wireshark does (sequence numbers "
                f"{-event.shift} behind, as when data on a SYN is numbered from the ISN)")
    if event.shift > 0:
        return (f"{event.shift}-byte hole before a segment that starts with a BGP header at a "
                f"message boundary: framed from the header, no message lost")
    return f"{event.skipped_bytes} bytes skipped to the next BGP header after the framing error"


def _gap_text(gap: Gap) -> str:
    missing = "an unknown number of" if gap.missing_bytes is None else str(gap.missing_bytes)
    text = f"{missing} bytes never captured"
    if gap.discarded_bytes:
        text += f"; {gap.discarded_bytes} bytes of an incomplete message discarded"
    return text
