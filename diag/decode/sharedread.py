"""One read of a capture for several forked processes: ``diag pcap --workers N`` reads the file
and finds its records once, in the parent, instead of once in every worker.

Contract::

    ring = Ring(slots, max_packets)          # in the parent, before forking the workers
    info, blocks = open_blocks(path, max_packets, arrays=False, scanner=core, ring=ring)
    ring.wait = make_progress                # called while a slot is still in use (see below)
    for i, block in enumerate(checked_blocks(path, info, blocks, names)):
        message = ring.publish(i, block, info)    # sent to every worker
    ...                                      # ring.done(i) once every worker is past block i

    # in a worker
    for block in fed_blocks(ring, messages, info, names, path): ...

The parent's reads go straight into the slots of an anonymous shared mapping (``MAP_SHARED``: a
forked worker sees what the parent writes there after the fork); ``publish`` copies a block's
record columns (offsets, lengths, times, interfaces, link types, flags: 8 bytes each) into the slot
of the block and returns a small message saying where its bytes and columns lie, the block's first
frame and damage, and the interfaces declared since the last block (a pcapng file declares them as
it goes; a long list goes through a file, so that messages stay small). :func:`fed_blocks` turns
the messages back into :class:`Block` s equal to the ones the parent read: the same bytes, columns,
frames and damage, so a worker decodes exactly what it would have read itself. A buffer that does
not fit a slot (a record longer than a read block) stays in the parent's private buffer; its
message gives the file range, which the worker reads itself.

A slot is written again only after every worker is past every block that lies in it: before
reusing one, :meth:`Ring.take` and :meth:`Ring.publish` call ``ring.wait()`` (the parent's
step that collects the oldest block's results from every worker and calls :meth:`Ring.done`)
until it is free. A worker reports block ``i`` once it holds the message of block ``i + 1`` (or
the end), so with two slots or more the parent never waits for a block it has not published.
"""
from __future__ import annotations

import mmap
import os
import pickle
import shutil
import tempfile
from typing import Callable, Iterable, Iterator

from diag.decode import capture
from diag.decode.capture import Block, CaptureInfo
from diag.errors import UnusableInput

COLUMNS = ("offsets", "caplens", "wirelens", "ts", "ifaces", "linktypes", "flags")
SLOTS = 4
MESSAGE_BYTES = 16 << 10          # interface lists larger than this go through a file


class Ring:
    """``slots`` read buffers and column areas in one anonymous shared mapping."""

    def __init__(self, slots: int = SLOTS, max_packets: int = 65536) -> None:
        if slots < 2:
            raise ValueError("a ring needs two slots or more")
        self.slots = slots
        self.data_bytes = capture.READ_BLOCK + (1 << 16)   # a read and a carried record
        # a block's records lie in one read buffer (a carried record and a read block at the
        # most) and take 12 bytes or more each (a pcap record 16, a pcapng packet block 32; 12
        # is pcapng's smallest block): no more of them than that
        self.column_bytes = 8 * min(max_packets, self.data_bytes // 12 + 1)
        self.slot_bytes = self.data_bytes + len(COLUMNS) * self.column_bytes
        self.mem = mmap.mmap(-1, slots * self.slot_bytes)   # MAP_SHARED | MAP_ANONYMOUS
        self.view = memoryview(self.mem)
        self.turn = -1
        self.last: tuple[int | None, int] = (None, 0)     # where the last buffer read lies
        self.holds = [-1] * slots          # per slot: the last block whose bytes lie there
        self.finished = 0                  # blocks 0 .. finished - 1: every worker is past them
        self.wait: Callable[[], None] | None = None
        self.interfaces = 0                # how many the workers were told of
        self.spill: str | None = None      # a directory for large interface lists

    # --- the parent -------------------------------------------------------------------------

    def take(self, size: int) -> tuple[int | None, memoryview | None]:
        """The next slot for a read of ``size`` bytes, once free; ``(None, None)`` if it does not
        fit (the reader then uses a private buffer)."""
        if size > self.data_bytes:
            return None, None
        self.turn = (self.turn + 1) % self.slots
        self._free(self.holds[self.turn])
        base = self.turn * self.slot_bytes
        return self.turn, self.view[base:base + self.data_bytes]

    def note(self, slot: int | None, start: int) -> None:
        """Said by the reader after each read: where its buffer lies."""
        self.last = (slot, start)

    def publish(self, index: int, block: Block, info: CaptureInfo) -> tuple:
        """Block ``index`` (just read: its bytes are in the last buffer) put where the workers
        find it; returns its message."""
        slot, start = self.last
        if slot is not None:
            self.holds[slot] = index
        self._free(index - self.slots)          # its column area was block index - slots's
        base = (index % self.slots) * self.slot_bytes + self.data_bytes
        count = len(block)
        if 8 * count > self.column_bytes:
            raise RuntimeError(f"block {index}: {count} records, more than a slot's columns hold")
        for k, name in enumerate(COLUMNS):
            column = memoryview(getattr(block, name)).cast("B")
            if len(column) != 8 * count:
                raise ValueError(f"block column {name}: {len(column)} bytes for {count} records")
            at = base + k * self.column_bytes
            self.view[at:at + len(column)] = column
        return ("block", index, block.first_frame, count, slot, start, len(block.buf),
                block.damage, self._new_interfaces(info), info.bytes_read)

    def _new_interfaces(self, info: CaptureInfo):
        """The interfaces declared since the last message (a pcapng file only adds them): None,
        or the index of the first and their pickle, or, when that is large (a file may declare
        thousands), the name of a file holding it, so that every message stays small."""
        if len(info.interfaces) == self.interfaces:
            return None
        first = self.interfaces
        data = pickle.dumps(info.interfaces[first:], protocol=pickle.HIGHEST_PROTOCOL)
        self.interfaces = len(info.interfaces)
        if len(data) <= MESSAGE_BYTES:
            return first, data
        if self.spill is None:
            self.spill = tempfile.mkdtemp(prefix="diag-pcap-")
        name = os.path.join(self.spill, f"interfaces-{self.interfaces}")
        with open(name, "wb") as fh:
            fh.write(data)
        return first, name

    def done(self, index: int) -> None:
        """Every worker is past block ``index`` (and all before it)."""
        self.finished = max(self.finished, index + 1)

    def _free(self, index: int) -> None:
        while index >= self.finished:
            if self.wait is None:
                raise RuntimeError(f"ring slot of block {index} still in use, nothing to wait on")
            self.wait()

    def close(self) -> None:
        """The spill directory removed; the mapping closed once no block refers to it (else
        when the last reference goes)."""
        if self.spill is not None:
            shutil.rmtree(self.spill, ignore_errors=True)
            self.spill = None
        try:
            self.view.release()
            self.mem.close()
        except BufferError:
            pass


def fed_blocks(ring: Ring, messages: Iterable[tuple], info: CaptureInfo,
               names: dict[int, str | None], path) -> Iterator[Block]:
    """A worker's blocks from the parent's messages (see the module docstring); ``info`` and
    ``names`` are kept as the parent's reading has them at each block. Ends at ``("end",)``."""
    view = memoryview(ring.mem)
    fd = None
    try:
        for message in messages:
            if message[0] == "end":
                return
            (_kind, index, first_frame, count, slot, start, length, damage, interfaces,
             bytes_read) = message
            if interfaces is not None:
                first, data = interfaces
                if isinstance(data, str):
                    with open(data, "rb") as fh:
                        data = fh.read()
                added = pickle.loads(data)
                info.interfaces[first:] = added
                names.update({i.capture_iface: i.name for i in added})
            info.bytes_read = bytes_read
            if slot is not None:
                base = slot * ring.slot_bytes
                buf = view[base:base + length]
            else:                          # a buffer longer than a slot: read from the file
                if fd is None:
                    fd = os.open(path, os.O_RDONLY)
                buf = _pread(fd, length, start, path)
            base = (index % ring.slots) * ring.slot_bytes + ring.data_bytes
            columns = [view[base + k * ring.column_bytes:
                            base + k * ring.column_bytes + 8 * count].cast(
                                "d" if name == "ts" else "q")
                       for k, name in enumerate(COLUMNS)]
            yield Block(first_frame, buf, *columns, damage=damage)
    finally:
        if fd is not None:
            os.close(fd)


def _pread(fd: int, length: int, start: int, path) -> bytes:
    """``length`` bytes of the file at ``start``, which the parent read there before."""
    parts, got = [], 0
    while got < length:
        part = os.pread(fd, length - got, start + got)
        if not part:
            raise UnusableInput(f"{path}: the file shrank while it was read (truncated or "
                                f"rewritten meanwhile)", hint="decode a copy that nothing writes")
        parts.append(part)
        got += len(part)
    return b"".join(parts)
