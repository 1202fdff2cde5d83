"""Per-direction TCP reassembly and BGP message framing (RFC 4271 section 4.1, RFC 9293).

One :class:`BgpStream` is one direction of one TCP connection. The frame decoder hands it every TCP
segment of that direction, in capture order, and gets back a list of events:

* :class:`Message` — one complete BGP message, ``raw`` holding the 19-byte header and the body.
  ``first_frame`` is the frame whose data supplied the message's first byte; ``last_frame`` is the
  frame during whose processing the message became complete (where tshark shows the reassembled
  PDU; for out-of-order arrivals that is the frame that filled the last hole, not the frame that
  carried the last byte). Messages released by giving up on a hole (a Gap) were completed by no
  later arrival: their ``last_frame`` is the frame that carried their last byte. ``offset`` is the stream offset of the first byte (0 = first data byte
  after the SYN, or the first byte seen when the capture started mid-stream).
* :class:`Gap` — bytes never seen: a hole in the sequence space that was given up on (too much
  data buffered behind it, FIN/RST, end of capture), or the start of a stream captured mid-way.
  ``missing_bytes`` is the size of the hole (``None`` when unknown: capture started mid-stream,
  or the stream ended inside a message). ``discarded_bytes`` counts bytes that *were* received
  but were thrown away because they belong to messages the hole cut: the partial message before
  the hole plus everything after it up to the next BGP header found by resynchronisation.
  Nothing is guessed across a gap.
* :class:`FramingError` — bytes that are present but are not BGP framing where a header must
  be: marker not all ones, length < 19 or > ``max_message``. ``raw`` holds at most the first 64
  bytes from that position. Decoding then resynchronises.
* :class:`Resync` — framing resumed on a BGP header in a way worth a note: after a FramingError,
  with the number of bytes skipped to reach the next header (``skipped_bytes``; a whole message
  is never lost silently); or by renumbering (``shift``), when a segment at a message boundary is
  off by fewer bytes than a BGP header (see Behaviour).

Arguments of :meth:`BgpStream.segment`: ``seq`` is the segment's raw 32-bit sequence number;
``payload`` the TCP payload as ``bytes`` (other bytes-like objects are copied), cut to the IP
length, since Ethernet padding of short frames is not payload; ``frame`` the 1-based frame
number; ``syn``/``fin``/``rst`` the TCP flags. Pure ACKs may be passed (they are cheap) or
skipped. Segments must come in capture order; one stream per direction per 4-tuple.

Usage::

    stream = BgpStream(max_message=65535)             # 4096 unless extended messages (RFC 8654)
    for seq, payload, frame, syn, fin, rst in segments_of_one_direction:
        for event in stream.segment(seq, payload, frame, syn=syn, fin=fin, rst=rst):
            ...
    for event in stream.flush(last_frame_number):      # end of capture
        ...

Behaviour:

* SYN fixes the initial sequence number; the first data byte is ISN+1 (data on a SYN is
  accepted). A retransmitted SYN (same ISN) is ignored; a SYN with another ISN is a new
  connection: the old one is finished (its events are returned first) and state is reset.
* Without a SYN (capture started mid-stream) the first segment carrying data starts the stream
  and the framer does not trust its first byte: it resynchronises on a plausible header
  (16 x 0xff not followed by another 0xff, type 1..6, length between the type's RFC minimum and
  ``max_message``, KEEPALIVE exactly 19). The same resynchronisation follows every Gap and
  every FramingError. Bytes skipped while resynchronising after a Gap (or at a mid-stream
  start) are counted in that Gap's ``discarded_bytes``; after a FramingError they are not
  reported again.
* Sequence numbers are compared modulo 2**32 (serial arithmetic against the next expected
  byte), so streams wrap freely.
* Off-by-a-few numbering, framed the way Wireshark does by default (it dissects a segment from
  its own first byte): when the stream sits at a message boundary with nothing buffered and a
  segment starts 1 to 18 bytes before or after the next expected byte, yet holds a plausible
  BGP header at its first byte (and, when it overlaps, not after the overlap), the segment is
  taken as the next bytes and the numbering shifted (a :class:`Resync` with ``shift``): a hole
  smaller than a header at a boundary cannot hold a message, and an overlap whose bytes would
  cut a header is not a retransmission. Crafted captures whose SYN carries data numbered from the
  ISN (not ISN+1) look like this: one byte of overlap on the next segment.
* Retransmissions are dropped or trimmed to their new bytes (the first copy received wins);
  out-of-order segments wait in a buffer bounded by ``max_pending`` bytes and
  ``max_pending_segments`` segments. When a bound is exceeded, or at FIN/RST/``flush()``, the
  hole before the oldest waiting segment is declared a :class:`Gap` and decoding continues.
* FIN ends the direction once every byte before it has arrived (or been declared a gap); RST
  ends it at once. After that only a new SYN restarts the stream; other segments are ignored.
* Memory is bounded: a partial message never exceeds ``max_message`` bytes, the resync window
  keeps at most 18 bytes, and the out-of-order buffer has the bounds above.

Hot path: an in-order segment carrying whole messages is sliced directly (no intermediate
buffer); a bytearray is used only for a message split across segments.
"""
from __future__ import annotations

import heapq
import re
from dataclasses import dataclass

MARKER = b"\xff" * 16
HEADER_LEN = 19
# Resync only trusts types that exist (OPEN..ROUTE-REFRESH, and 6 for dynamic capability) with
# at least their RFC minimum length; KEEPALIVE is exactly a header.
_RESYNC_MIN_LENGTH = {1: 29, 2: 23, 3: 21, 4: 19, 5: 23, 6: 19}
_KEEPALIVE = 4
_SEQ_MASK = 0xFFFFFFFF
_HALF_SPACE = 1 << 31
_ERROR_RAW_MAX = 64
# A resync candidate: a marker not followed by another 0xff (see _plausible_header), found by the
# regex engine so that long runs of 0xff are skipped in C, not candidate by candidate.
_CANDIDATE = re.compile(re.escape(MARKER) + rb"(?=[^\xff]|\Z)")


@dataclass(frozen=True, slots=True)
class Message:
    """One complete BGP message (header included)."""

    raw: bytes
    first_frame: int
    last_frame: int
    offset: int


@dataclass(frozen=True, slots=True)
class Gap:
    """Data that could not be framed because bytes were never seen (see the module docstring)."""

    frame: int
    missing_bytes: int | None
    discarded_bytes: int


@dataclass(frozen=True, slots=True)
class FramingError:
    """A header position that does not hold a valid BGP header."""

    frame: int
    reason: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class Resync:
    """Framing resumed on a BGP header: after ``skipped_bytes`` that followed a FramingError, or
    by shifting the sequence numbering by ``shift`` bytes (see the module docstring)."""

    frame: int
    shift: int
    skipped_bytes: int


Event = Message | Gap | FramingError | Resync


def _header_problem(data: bytes | bytearray, pos: int, max_message: int) -> str | None:
    """Why the 19 bytes at ``pos`` are not a BGP header, or None if they are one."""
    if not data.startswith(MARKER, pos):
        return "marker is not all ones"
    length = data[pos + 16] << 8 | data[pos + 17]
    if length < HEADER_LEN:
        return f"length {length} < {HEADER_LEN}"
    if length > max_message:
        return f"length {length} > maximum {max_message}"
    return None


def _plausible_header(data: bytes, pos: int, max_message: int) -> bool:
    """Stricter test used when resynchronising, after the marker matched at ``pos``.

    A length high byte of 0xff is refused: inside a run of more than 16 x 0xff (a body ending in
    0xff bytes, then the real marker) every early candidate has one, and only the real marker is
    followed by a real length. This forgoes resync on extended messages of 65280+ bytes.
    """
    length_high = data[pos + 16]
    length = length_high << 8 | data[pos + 17]
    minimum = _RESYNC_MIN_LENGTH.get(data[pos + 18])
    if minimum is None or length_high == 0xFF or not minimum <= length <= max_message:
        return False
    return data[pos + 18] != _KEEPALIVE or length == HEADER_LEN


class BgpStream:
    """One direction of one TCP connection: reassembly plus BGP framing (see module docstring)."""

    def __init__(self, max_message: int = 65535, max_pending: int = 1 << 20,
                 max_pending_segments: int = 4096) -> None:
        if not HEADER_LEN <= max_message <= 65535:
            raise ValueError(f"max_message must be in {HEADER_LEN}..65535, not {max_message}")
        self.max_message = max_message
        self.max_pending = max_pending
        self.max_pending_segments = max_pending_segments
        self._reset()
        self._isn: int | None = None

    # ---------------------------------------------------------------- state

    def _reset(self) -> None:
        self._started = False
        self._closed = False
        self._base_seq = 0           # sequence number of stream offset 0
        self._expected = 0           # stream offset of the next in-order byte
        self._next_seq = 0           # (_base_seq + _expected) mod 2**32, for the fast path
        self._fin_offset: int | None = None
        self._synced = False         # is _expected (or _buf_offset) a message boundary?
        self._buf = bytearray()      # partial message (synced) or resync tail (not synced)
        self._buf_offset = 0
        self._buf_frames: list[tuple[int, int]] = []   # (stream offset, frame) of buffered chunks
        # Out-of-order segments: heap of (offset, arrival counter, payload, frame).
        self._pending: list[tuple[int, int, bytes, int]] = []
        self._pending_bytes = 0
        self._arrivals = 0
        # A Gap being accumulated until resynchronisation finds the next header:
        # [frame, missing_bytes or None, discarded_bytes, report even if nothing discarded]
        self._open_gap: list | None = None
        # Bytes skipped since a FramingError, until resynchronisation: [frame, skipped]
        self._error_skip: list | None = None

    def _start(self, base_seq: int, synced: bool) -> None:
        self._started = True
        self._base_seq = base_seq & _SEQ_MASK
        self._expected = 0
        self._next_seq = self._base_seq
        self._synced = synced

    def _offset_of(self, seq: int) -> int:
        """Stream offset of ``seq``, unwrapped around the next expected byte (serial arithmetic)."""
        diff = (seq - self._next_seq) & _SEQ_MASK
        if diff >= _HALF_SPACE:
            diff -= 1 << 32
        return self._expected + diff

    @classmethod
    def resumed(cls, started: bool, closed: bool, synced: bool, isn: int | None, base_seq: int,
                expected: int, next_seq: int, buf: bytearray, buf_offset: int,
                buf_frames: list[tuple[int, int]]) -> "BgpStream":
        """A stream in a state the compiled core reached (diag/decode/_core/flows.c), which
        hands a direction over to this class at the first segment it does not handle itself:
        nothing out of order, no gap open, no FIN pending, ``buf`` a partial message."""
        stream = cls()
        stream._started, stream._closed, stream._synced = bool(started), bool(closed), bool(synced)
        stream._isn = isn
        stream._base_seq, stream._expected, stream._next_seq = base_seq, expected, next_seq
        stream._buf, stream._buf_offset = bytearray(buf), buf_offset
        stream._buf_frames = [tuple(f) for f in buf_frames]
        return stream

    # ---------------------------------------------------------------- public API

    @property
    def isn(self) -> int | None:
        """The initial sequence number of the SYN that started the stream, if one was seen."""
        return self._isn

    @property
    def closed(self) -> bool:
        """Ended by FIN or RST and fully handed over: until a SYN with a new ISN reopens it,
        nothing more comes out of this direction (later events only name later frames)."""
        return self._closed

    def segment(self, seq: int, payload: bytes, frame: int, syn: bool = False,
                fin: bool = False, rst: bool = False) -> list[Event]:
        """Feed one TCP segment of this direction; return the events it completes."""
        out: list[Event] = []
        if type(payload) is not bytes:
            payload = bytes(payload)          # memoryview/bytearray: Message.raw must be bytes
        # Fast path: in-order data, nothing buffered, on a message boundary.
        if (not (syn or fin or rst) and payload and seq == self._next_seq and self._synced
                and not self._buf and not self._pending and self._fin_offset is None
                and self._started and not self._closed):
            pos = self._frame_whole(payload, 0, self._expected, frame, frame, out)
            n = len(payload)
            if pos < n:
                self._consume(payload, pos, self._expected, frame, frame, out)
            self._advance(n)
            return out

        if syn:
            if self._isn is None or seq & _SEQ_MASK != self._isn:
                if self._started:
                    out.extend(self._finish(frame))
                self._reset()
                self._isn = seq & _SEQ_MASK
                self._start(seq + 1, synced=True)
            seq += 1                  # data on a SYN starts at ISN+1
        if self._closed:
            return out
        if not self._started:
            if not payload:
                return out            # a bare ACK says nothing about where data starts
            self._start(seq, synced=False)
            self._open_gap = [frame, None, 0, False]

        if payload:
            self._accept(seq, payload, frame, out)
        if fin and self._fin_offset is None:
            self._fin_offset = self._offset_of(seq + len(payload))
        if rst:
            out.extend(self._finish(frame))
            self._closed = True
        elif self._fin_offset is not None and self._expected >= self._fin_offset:
            out.extend(self._finish(frame))
            self._closed = True
        return out

    def flush(self, frame: int) -> list[Event]:
        """End of capture: give up on holes, report what is incomplete, return remaining events."""
        if not self._started or self._closed:
            return []
        return self._finish(frame)

    # ---------------------------------------------------------------- reassembly

    def _advance(self, n: int) -> None:
        self._expected += n
        self._next_seq = (self._next_seq + n) & _SEQ_MASK

    def _accept(self, seq: int, payload: bytes, frame: int, out: list[Event]) -> None:
        off = self._offset_of(seq)
        expected = self._expected
        if off != expected and self._misnumbered(off, payload):
            out.append(Resync(frame, off - expected, 0))
            self._next_seq = seq & _SEQ_MASK          # this segment's first byte comes next
            off = expected
        end = off + len(payload)
        if end <= expected:
            return                                   # pure retransmission
        if off <= expected:
            data = payload if off == expected else payload[expected - off:]
            self._consume(data, 0, expected, frame, frame, out)
            self._advance(len(data))
            if self._pending:
                self._drain(frame, out)
            return
        if self._fin_offset is not None and off >= self._fin_offset:
            return                                   # nothing valid follows a FIN
        self._arrivals += 1
        heapq.heappush(self._pending, (off, self._arrivals, payload, frame))
        self._pending_bytes += len(payload)
        while self._pending and (self._pending_bytes > self.max_pending
                                 or len(self._pending) > self.max_pending_segments):
            self._declare_hole(frame, out)

    def _misnumbered(self, off: int, payload: bytes) -> bool:
        """Is a segment ``off`` (not the expected offset) really the next bytes, numbered a few
        bytes off? Only at a message boundary with nothing buffered, by fewer bytes than a
        header, when it starts with a plausible header that the overlap would cut."""
        shift = off - self._expected
        if (not -HEADER_LEN < shift < HEADER_LEN or not self._synced or self._buf
                or self._pending or self._fin_offset is not None or len(payload) < HEADER_LEN
                or not payload.startswith(MARKER)
                or not _plausible_header(payload, 0, self.max_message)):
            return False
        if shift > 0:
            return True
        overlap = -shift                    # would the first bytes be trimmed as old ones?
        return not (payload.startswith(MARKER, overlap) and len(payload) >= overlap + HEADER_LEN
                    and _plausible_header(payload, overlap, self.max_message))

    def _drain(self, now: int, out: list[Event], released: bool = False) -> None:
        """Feed buffered segments that have become in-order.

        ``released``: they were let go by declaring a hole, not completed by an arrival; a
        message they finish then belongs to the frame that carried its last byte (no later
        frame completed it).
        """
        pending = self._pending
        while pending and pending[0][0] <= self._expected:
            off, _, data, data_frame = heapq.heappop(pending)
            self._pending_bytes -= len(data)
            expected = self._expected
            if off + len(data) <= expected:
                continue
            if off < expected:
                data = data[expected - off:]
            self._consume(data, 0, expected, data_frame, data_frame if released else now, out)
            self._advance(len(data))

    def _declare_hole(self, now: int, out: list[Event]) -> None:
        """Skip the sequence space up to the oldest buffered segment and continue after it."""
        target = self._pending[0][0]
        missing = target - self._expected
        if missing > 0:
            self._open_hole(now, missing, out)
            self._advance(missing)
        self._drain(now, out, released=True)

    def _open_hole(self, now: int, missing: int | None, out: list[Event]) -> None:
        """Start (or extend) a Gap: the partial data before it can no longer be framed."""
        if self._synced:
            discarded = len(self._buf)           # the message cut by the hole
        else:
            discarded = 0
            self._skip(len(self._buf))           # resync tail: belongs to the gap already open
        self._clear_buf()
        self._synced = False
        gap = self._open_gap
        if gap is not None and gap[1] is None:
            # Still looking for the first header of a mid-stream start: report that apart, so
            # the size of this hole is not lost in an unknown total.
            self._emit_gap(out)
            gap = None
        if gap is None:
            self._open_gap = [now, missing, discarded, True]
        else:
            gap[1] = None if missing is None else gap[1] + missing
            gap[2] += discarded

    def _finish(self, now: int) -> list[Event]:
        """End of the direction: give up on every hole, report the unfinished message."""
        out: list[Event] = []
        while self._pending:
            self._declare_hole(now, out)
        if self._synced and self._buf:
            self._open_hole(now, None, out)  # the stream ended inside a message
        else:
            self._skip(len(self._buf))       # resync tail: bytes that never became a header
            self._clear_buf()
        self._emit_gap(out)
        self._synced = False
        return out

    # ---------------------------------------------------------------- framing

    def _frame_whole(self, data: bytes, pos: int, base: int, data_frame: int, now: int,
                     out: list[Event]) -> int:
        """Slice whole messages from ``data`` starting at a boundary; return where it stopped."""
        n = len(data)
        max_message = self.max_message
        append = out.append
        while n - pos >= HEADER_LEN:
            if not data.startswith(MARKER, pos):
                break
            length = data[pos + 16] << 8 | data[pos + 17]
            end = pos + length
            if length < HEADER_LEN or length > max_message or end > n:
                break
            append(Message(data[pos:end], data_frame, now, base + pos))
            pos = end
        return pos

    def _consume(self, data: bytes, pos: int, base: int, data_frame: int, now: int,
                 out: list[Event]) -> None:
        """Frame in-order bytes ``data[pos:]``; ``data[0]`` is at stream offset ``base``."""
        n = len(data)
        while pos < n:
            if not self._synced:
                pos = self._resync(data, pos, base, data_frame, now, out)
            elif self._buf:
                pos = self._complete_partial(data, pos, base, data_frame, now, out)
            else:
                pos = self._frame_whole(data, pos, base, data_frame, now, out)
                if pos >= n:
                    break
                if n - pos >= HEADER_LEN:
                    problem = _header_problem(data, pos, self.max_message)
                    if problem is not None:
                        self._framing_error(data, pos, problem, now, out)
                        pos += 1
                        continue
                # A message (or header) continues in a later segment.
                self._buffer(data, pos, n, base, data_frame)
                pos = n

    def _buffer(self, data: bytes, start: int, stop: int, base: int, data_frame: int) -> None:
        if not self._buf:
            self._buf_offset = base + start
            self._buf_frames = []
        if not self._buf_frames or self._buf_frames[-1][1] != data_frame:
            self._buf_frames.append((base + start, data_frame))
        self._buf += data[start:stop]

    def _clear_buf(self) -> None:
        self._buf = bytearray()
        self._buf_frames = []

    def _drop_buf_prefix(self, count: int) -> None:
        """Forget the first ``count`` buffered bytes, keeping frame attribution of the rest."""
        del self._buf[:count]
        self._buf_offset += count
        frames = self._buf_frames
        while len(frames) > 1 and frames[1][0] <= self._buf_offset:
            frames.pop(0)

    def _complete_partial(self, data: bytes, pos: int, base: int, data_frame: int, now: int,
                          out: list[Event]) -> int:
        buf = self._buf
        n = len(data)
        if len(buf) < HEADER_LEN:
            take = min(HEADER_LEN - len(buf), n - pos)
            self._buffer(data, pos, pos + take, base, data_frame)
            pos += take
            if len(buf) < HEADER_LEN:
                return pos
            problem = _header_problem(buf, 0, self.max_message)
            if problem is not None:
                self._framing_error(bytes(buf) + data[pos:pos + _ERROR_RAW_MAX], 0, problem,
                                    now, out)
                self._drop_buf_prefix(1)
                return pos
        length = buf[16] << 8 | buf[17]
        take = min(length - len(buf), n - pos)
        self._buffer(data, pos, pos + take, base, data_frame)
        pos += take
        if len(buf) == length:
            out.append(Message(bytes(buf), self._buf_frames[0][1], now, self._buf_offset))
            self._clear_buf()
        return pos

    def _framing_error(self, data: bytes | bytearray, pos: int, problem: str, now: int,
                       out: list[Event]) -> None:
        """Report a bad header; the caller skips its first byte and resynchronisation the rest
        (counted into the Resync that follows)."""
        out.append(FramingError(now, problem, bytes(data[pos:pos + _ERROR_RAW_MAX])))
        self._synced = False
        if self._error_skip is None:
            self._error_skip = [now, 0]
        self._error_skip[1] += 1

    def _resync(self, data: bytes, pos: int, base: int, data_frame: int, now: int,
                out: list[Event]) -> int:
        """Look for the next plausible header in the resync tail, then in ``data[pos:]``.

        Returns the position in ``data`` to continue from. On success the stream is synced; a
        message head that began in the tail stays in the buffer. ``data`` is scanned in place
        (no copy), so a run of bad headers costs linear time.
        """
        n = len(data)
        tail_len = len(self._buf)
        if tail_len:
            if self._buf_frames[-1][1] != data_frame:
                self._buf_frames.append((base + pos, data_frame))
            # Only candidates starting inside the (<= 18 byte) tail need the joined view.
            window = bytes(self._buf) + data[pos:pos + HEADER_LEN]
            hit, complete = self._scan(window, 0, tail_len)
            if complete:
                self._skip(hit)
                self._drop_buf_prefix(hit)
                self._synced = True
                self._emit_gap(out)
                return pos
            if n - pos < HEADER_LEN:
                # All of data is in the window: it becomes the tail, from the incomplete
                # candidate if there is one, else its last 18 bytes (a marker may be starting).
                keep_from = hit if hit != -1 else max(0, len(window) - (HEADER_LEN - 1))
                self._buf += data[pos:]
                self._skip(keep_from)
                self._drop_buf_prefix(keep_from)
                return n
            self._skip(tail_len)
            self._clear_buf()
        hit, complete = self._scan(data, pos, n)
        if complete:
            self._skip(hit - pos)
            self._synced = True
            self._emit_gap(out)
            return hit
        # Keep only what may still become the start of a header.
        keep_from = hit if hit != -1 else max(pos, n - (HEADER_LEN - 1))
        self._skip(keep_from - pos)
        if keep_from < n:
            self._buffer(data, keep_from, n, base, data_frame)
        return n

    def _scan(self, window: bytes, start: int, limit: int) -> tuple[int, bool]:
        """First plausible header starting in ``window[start:limit]``: (position, complete).

        (-1, False) when there is none; (position, False) when a marker starts there but the
        window ends before its 19 bytes could be checked.
        """
        size = len(window)
        max_message = self.max_message
        search = _CANDIDATE.search
        found = search(window, start)
        while found is not None:
            hit = found.start()
            if hit >= limit:
                break
            if size - hit < HEADER_LEN:
                return hit, False
            if _plausible_header(window, hit, max_message):
                return hit, True
            found = search(window, hit + 1)
        return -1, False

    def _skip(self, count: int) -> None:
        if count:
            if self._open_gap is not None:
                self._open_gap[2] += count
            elif self._error_skip is not None:
                self._error_skip[1] += count

    def _emit_gap(self, out: list[Event]) -> None:
        """Resynchronised (or the stream ended): report the gap and the bytes skipped since a
        framing error, if any."""
        gap = self._open_gap
        if gap is not None and (gap[3] or gap[2]):
            out.append(Gap(gap[0], gap[1], gap[2]))
        self._open_gap = None
        skipped = self._error_skip
        if skipped is not None:
            out.append(Resync(skipped[0], 0, skipped[1]))
            self._error_skip = None
