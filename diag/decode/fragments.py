"""IPv4 and IPv6 fragment reassembly, bounded (RFC 791 3.2, RFC 8200 4.5, RFC 5722).

Contract: a :class:`Reassembler` is fed every fragment in capture order through
``add(key, offset, more, payload, packet_len, frame, ts, proto)`` and returns a list of
:class:`Outcome` — datagrams whose fate became known with this fragment: older ones given up on
(timeout, eviction) first, then this fragment's datagram if it is complete (``reassembled``,
with its payload) or cannot be (``overlap``, ``too-large``, ``truncated``). ``flush()`` gives up
on every datagram still waiting (``incomplete``), at the end of the capture. Nothing raises.

``key`` starts with ``(l3, tunnel depth, src, dst, identification, protocol)`` (IPv6 has no
protocol in its key: None); the frame decoder adds the capture interface and direction, so that
the copies ``tcpdump -i any`` sees of one datagram (in on one interface, out on another) are each
reassembled; ``offset`` and ``payload`` are the fragment's place and bytes in the datagram's
payload; ``more`` its more-fragments flag; ``packet_len`` its IP packet length (header included:
the largest fragment of a datagram is what the path's MTU let through, which is the point of
counting them); ``proto`` the upper-layer protocol the fragment header names (IPv6: taken from
the first fragment).

Bounds, as the Linux stack sets them (``ipfrag_time``, ``ipfrag_high_thresh``): a datagram
waits at most ``TIMEOUTS[l3]`` seconds of capture time (30 s IPv4, 60 s IPv6), checked when a
fragment arrives, so the outcome depends on the fragments alone; at most 65,535 bytes of payload
(``too-large`` past it, the "ping of death"); at most ``MAX_PENDING_BYTES`` and
``MAX_PENDING_FRAGMENTS`` held over all datagrams, beyond which the oldest is ``evicted``.
Overlapping fragments make the datagram ``overlap`` (RFC 5722; Linux drops them too), except an
exact copy of a fragment already held, which is a duplicate and ignored. Within its timeout,
later fragments of a datagram that failed belong to it and are ignored; after a datagram was
reassembled, a fragment with its key starts a new datagram, as in Wireshark (a second copy of
the datagram is reassembled again).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

TIMEOUTS = {"ipv4": 30.0, "ipv6": 60.0}
MAX_DATAGRAM = 65535
MAX_PENDING_BYTES = 4 << 20
MAX_PENDING_FRAGMENTS = 4096
MAX_FAILED = 4096               # failed datagrams remembered, to keep their late fragments


@dataclass(frozen=True, slots=True)
class Outcome:
    key: tuple
    status: str                 # reassembled / incomplete / overlap / too-large / truncated / evicted
    first_frame: int
    fragments: int              # fragments received (copies not counted)
    size: int                   # payload bytes: the datagram's when reassembled, else held
    largest: int                # the largest fragment's IP packet length
    proto: int | None
    payload: bytes | None = None


@dataclass(slots=True)
class _Datagram:
    first_frame: int
    first_ts: float
    proto: int | None
    pieces: list[tuple[int, bytes]] = field(default_factory=list)   # (offset, payload)
    total: int | None = None    # payload length, known once the last fragment arrived
    held: int = 0
    largest: int = 0


class Reassembler:
    def __init__(self, timeouts: dict[str, float] | None = None,
                 max_pending_bytes: int = MAX_PENDING_BYTES,
                 max_pending_fragments: int = MAX_PENDING_FRAGMENTS) -> None:
        self.timeouts = dict(TIMEOUTS if timeouts is None else timeouts)
        self.max_pending_bytes = max_pending_bytes
        self.max_pending_fragments = max_pending_fragments
        # per address family (each has its own timeout), oldest first
        self.pending: dict[str, OrderedDict[tuple, _Datagram]] = {
            "ipv4": OrderedDict(), "ipv6": OrderedDict()}
        # datagrams that failed: key -> first ts (their later fragments are theirs)
        self.failed: OrderedDict[tuple, float] = OrderedDict()
        self.pending_bytes = 0
        self.pending_fragments = 0

    def add(self, key: tuple, offset: int, more: bool, payload: bytes, packet_len: int,
            frame: int, ts: float, proto: int | None, truncated: bool = False) -> list[Outcome]:
        out = self._expire(ts)
        pending = self.pending[key[0]]
        datagram = pending.get(key)
        if datagram is None:
            if key in self.failed:
                return out                              # belongs to a datagram that failed
            datagram = pending[key] = _Datagram(frame, ts, proto)
        if offset == 0 and proto is not None:
            datagram.proto = proto
        problem = self._place(datagram, offset, more, payload, packet_len, truncated)
        if problem == "copy":
            return out
        if problem is not None:
            out.append(self._decide(key, datagram, problem))
            return out
        if datagram.total is not None and datagram.held == datagram.total:
            data = b"".join(p for _o, p in sorted(datagram.pieces, key=lambda x: x[0]))
            out.append(self._decide(key, datagram, "reassembled", data))
            return out
        while (self.pending_bytes > self.max_pending_bytes
               or self.pending_fragments > self.max_pending_fragments):
            fronts = [next(iter(p.items())) for p in self.pending.values() if p]
            old_key, old = min(fronts, key=lambda kv: (kv[1].first_ts, kv[1].first_frame))
            out.append(self._decide(old_key, old, "evicted"))
        return out

    def flush(self) -> list[Outcome]:
        waiting = [kv for p in self.pending.values() for kv in p.items()]
        waiting.sort(key=lambda kv: kv[1].first_frame)
        return [self._decide(key, datagram, "incomplete") for key, datagram in waiting]

    # --------------------------------------------------------------------------------------

    def _place(self, d: _Datagram, offset: int, more: bool, payload: bytes, packet_len: int,
               truncated: bool) -> str | None:
        """Add one fragment; None, "copy" (an exact copy of one held) or why the datagram fails."""
        end = offset + len(payload)
        for at, held in d.pieces:
            if at < end and offset < at + len(held):
                if at == offset and held == payload:
                    return "copy"
                return "overlap"
        d.pieces.append((offset, payload))
        d.held += len(payload)
        d.largest = max(d.largest, packet_len)
        self.pending_bytes += len(payload)
        self.pending_fragments += 1
        if truncated:
            return "truncated"
        if end > MAX_DATAGRAM:
            return "too-large"
        if not more:
            if d.total is not None and d.total != end:
                return "overlap"                        # two different last fragments
            d.total = end
        if d.total is not None and end > d.total:
            return "overlap"                            # data past the last fragment's end
        return None

    def _decide(self, key: tuple, d: _Datagram, status: str,
                payload: bytes | None = None) -> Outcome:
        del self.pending[key[0]][key]
        self.pending_bytes -= d.held
        self.pending_fragments -= len(d.pieces)
        if status != "reassembled":
            self.failed[key] = d.first_ts
            self.failed.move_to_end(key)
            if len(self.failed) > MAX_FAILED:
                self.failed.popitem(last=False)
        size = len(payload) if payload is not None else d.held
        return Outcome(key, status, d.first_frame, len(d.pieces), size, d.largest, d.proto,
                       payload)

    def _expire(self, now: float) -> list[Outcome]:
        out = []
        for l3, pending in self.pending.items():
            limit = self.timeouts[l3]
            while pending:
                key, d = next(iter(pending.items()))
                if now - d.first_ts <= limit:
                    break
                out.append(self._decide(key, d, "incomplete"))
        while self.failed:
            key, first_ts = next(iter(self.failed.items()))
            if now - first_ts <= self.timeouts[key[0]]:
                break
            del self.failed[key]
        return out
