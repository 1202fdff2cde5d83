"""A TCP conversation written segment by segment, with the ground truth of where each BGP message
completes.

The receiver is simulated per direction: a message is complete in the first frame after which the
bytes received *contiguously from the stream start* cover its last byte. So a message split over
three segments completes in the third, an out-of-order pair completes when the missing earlier
segment arrives, a retransmission completes nothing, and nothing after a lost segment ever
completes (a gap is not guessed across).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tests.oracle.normal import BgpMsg, FrameBgp


@dataclass(frozen=True)
class Host:
    mac: str
    ip: str


@dataclass
class _Direction:
    isn: int
    stream: bytearray = field(default_factory=bytearray)
    sent_upto: int = 0                      # bytes already put into some segment
    messages: list[tuple[int, int, BgpMsg]] = field(default_factory=list)  # (start, end, truth)
    segments: list[tuple[int, int, int]] = field(default_factory=list)     # (frame, start, end)


class TcpFlow:
    """One TCP connection between ``a`` (client) and ``b`` (server).

    ``emit(src, dst, sport, dport, seq, ack, flags, payload, lost)`` writes a frame and returns its
    number (or None when ``lost``: the segment was never captured).
    """

    def __init__(self, emit: Callable[..., int | None], a: Host, b: Host, sport: int, dport: int,
                 isn_a: int = 1_000_000, isn_b: int = 2_000_000) -> None:
        self.emit, self.a, self.b, self.sport, self.dport = emit, a, b, sport, dport
        self.dirs = {"ab": _Direction(isn_a), "ba": _Direction(isn_b)}

    def _ends(self, d: str) -> tuple[Host, Host, int, int]:
        if d == "ab":
            return self.a, self.b, self.sport, self.dport
        return self.b, self.a, self.dport, self.sport

    def _ack_of(self, d: str) -> int:
        other = self.dirs["ba" if d == "ab" else "ab"]
        return (other.isn + 1 + other.sent_upto) & 0xFFFFFFFF

    def handshake(self) -> None:
        a, b = self.dirs["ab"], self.dirs["ba"]
        self.emit(self.a, self.b, self.sport, self.dport, a.isn, 0, "S", b"")
        self.emit(self.b, self.a, self.dport, self.sport, b.isn, a.isn + 1, "SA", b"")
        self.emit(self.a, self.b, self.sport, self.dport, a.isn + 1, b.isn + 1, "A", b"")

    def queue(self, d: str, data: bytes, truth: BgpMsg | None = None) -> None:
        """Append one message to the direction's byte stream (sent later by :meth:`send`)."""
        dd = self.dirs[d]
        start = len(dd.stream)
        dd.stream += data
        if truth is not None:
            dd.messages.append((start, len(dd.stream), truth))

    def _segment(self, d: str, start: int, end: int, *, lost: bool = False,
                 flags: str = "PA") -> int | None:
        dd = self.dirs[d]
        src, dst, sport, dport = self._ends(d)
        frame = self.emit(src, dst, sport, dport, (dd.isn + 1 + start) & 0xFFFFFFFF,
                          self._ack_of(d), flags, bytes(dd.stream[start:end]), lost=lost)
        if frame is not None:
            dd.segments.append((frame, start, end))
        return frame

    def send(self, d: str, sizes: list[int] | None = None, *, lost: set[int] | None = None,
             order: list[int] | None = None) -> list[int | None]:
        """Send everything queued in direction ``d`` as segments of ``sizes`` bytes (the last takes
        the rest); ``order`` permutes them (out-of-order), indices in ``lost`` are never captured."""
        dd = self.dirs[d]
        pending = len(dd.stream) - dd.sent_upto
        sizes = list(sizes or [])
        if sum(sizes) < pending:
            sizes.append(pending - sum(sizes))
        bounds, at = [], dd.sent_upto
        for size in sizes:
            bounds.append((at, at + size))
            at += size
        dd.sent_upto = at
        frames = []
        for i in (order or range(len(bounds))):
            frames.append(self._segment(d, *bounds[i], lost=i in (lost or set())))
        return frames

    def retransmit(self, d: str, frame: int) -> int | None:
        """Send again exactly the bytes that ``frame`` carried."""
        for f, start, end in self.dirs[d].segments:
            if f == frame:
                return self._segment(d, start, end)
        raise KeyError(frame)

    def fin(self) -> None:
        for d in ("ab", "ba"):
            dd = self.dirs[d]
            src, dst, sport, dport = self._ends(d)
            self.emit(src, dst, sport, dport, (dd.isn + 1 + dd.sent_upto) & 0xFFFFFFFF,
                      self._ack_of(d), "FA", b"")

    def truth(self) -> dict[int, list[BgpMsg]]:
        """frame -> BGP messages completing in it (both directions)."""
        out: dict[int, list[BgpMsg]] = {}
        for dd in self.dirs.values():
            have: list[tuple[int, int]] = []
            contiguous = 0
            done = 0
            for frame, start, end in sorted(dd.segments):
                have.append((start, end))
                grew = True
                while grew:
                    grew = False
                    for s, e in have:
                        if s <= contiguous < e:
                            contiguous, grew = e, True
                while done < len(dd.messages) and dd.messages[done][1] <= contiguous:
                    out.setdefault(frame, []).append(dd.messages[done][2])
                    done += 1
        return out


def frames_bgp(flows: list[TcpFlow]) -> dict[int, FrameBgp]:
    merged: dict[int, list[BgpMsg]] = {}
    for flow in flows:
        for frame, msgs in flow.truth().items():
            merged.setdefault(frame, []).extend(msgs)
    return {f: FrameBgp.of(m) for f, m in sorted(merged.items())}
