"""A pcap byte stream cut at record boundaries: what reaches the bundle is always a valid pcap.

tcpdump ``-U -w -`` writes the classic pcap format: a 24-byte global header, then records of a
16-byte header (ts_sec, ts_usec, incl_len, orig_len, in the writer's byte order given by the magic)
and ``incl_len`` bytes. :class:`PcapSink` passes through only whole records and stops (returns
False) before ``max_bytes`` would be exceeded, so a capture cut by the byte bound, a dead sshd or
Ctrl-C still opens in tshark. Bytes that are not a pcap stream are kept as-is and flagged.
"""
from __future__ import annotations

import struct
from typing import Callable

_MAGICS = {b"\xa1\xb2\xc3\xd4": ">", b"\xd4\xc3\xb2\xa1": "<",
           b"\xa1\xb2\x3c\x4d": ">", b"\x4d\x3c\xb2\xa1": "<"}
GLOBAL_HEADER = 24
RECORD_HEADER = 16
MAX_RECORD = 1 << 24


class PcapSink:
    """Feed with :meth:`feed`; ``packets``, ``bytes``, ``truncated``, ``leftover`` describe it."""

    def __init__(self, write: Callable[[bytes], None], max_bytes: int) -> None:
        self._write = write
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._order: str | None = None
        self.packets = 0
        self.bytes = 0
        self.truncated = False
        self.not_pcap = False

    @property
    def leftover(self) -> int:
        """Bytes of an incomplete last record that were not written."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> bool:
        if self.truncated:
            return False
        if self.not_pcap:
            return self._emit(chunk)
        self._buffer += chunk
        if self._order is None:
            if len(self._buffer) < GLOBAL_HEADER:
                return True
            order = _MAGICS.get(bytes(self._buffer[:4]))
            if order is None:
                self.not_pcap = True
                data, self._buffer = bytes(self._buffer), bytearray()
                return self._emit(data)
            self._order = order
            if not self._emit(bytes(self._buffer[:GLOBAL_HEADER])):
                return False
            del self._buffer[:GLOBAL_HEADER]
        while len(self._buffer) >= RECORD_HEADER:
            (incl_len,) = struct.unpack_from(self._order + "I", self._buffer, 8)
            if incl_len > MAX_RECORD:
                self.not_pcap = True
                data, self._buffer = bytes(self._buffer), bytearray()
                return self._emit(data)
            size = RECORD_HEADER + incl_len
            if len(self._buffer) < size:
                break
            if not self._emit(bytes(self._buffer[:size])):
                return False
            del self._buffer[:size]
            self.packets += 1
        return True

    def _emit(self, data: bytes) -> bool:
        if self.bytes + len(data) > self.max_bytes:
            self.truncated = True
            return False
        self._write(data)
        self.bytes += len(data)
        return True
