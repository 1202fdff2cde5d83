"""The decoder's use of Python's cyclic garbage collector.

Contract: :class:`no_gc` pauses the collector while the compiled core fills a block's rows;
:class:`fewer_collections` raises its first threshold around diag's own decode loops. Neither
changes what is collected, only when: the decoder makes no reference cycles (a capture leaves
about two cyclic objects per chunk), so collections during a decode walk live rows for nothing.
"""
from __future__ import annotations

import gc


class no_gc:
    """The cyclic GC paused while the core fills a block's rows: every object it makes stays
    alive, and each collection would walk them all for no garbage (the decoder makes no
    cycles; collection resumes after the block)."""

    def __enter__(self) -> None:
        self.enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc) -> None:
        if self.enabled:
            gc.enable()


class fewer_collections:
    """The cyclic GC's first threshold raised (to ``THRESHOLD`` allocations) while a chunk is
    decoded, tabled or folded: each chunk makes and frees thousands of containers (rows, route
    groups, ARP verdicts, DataFrame blocks) that die by reference counting, and at the default
    threshold (700) the collector traversed them about 100 times per million packets for no
    garbage (8-10 % of ``diag pcap``'s CPU). Cycles are still collected, later; the previous
    thresholds come back on exit (nesting is fine)."""

    THRESHOLD = 100_000

    def __enter__(self) -> None:
        self.saved = gc.get_threshold()
        if self.saved[0]:            # 0: automatic collection is off, and stays off
            gc.set_threshold(max(self.saved[0], self.THRESHOLD), *self.saved[1:])

    def __exit__(self, *exc) -> None:
        gc.set_threshold(*self.saved)

    @classmethod
    def for_this_process(cls) -> None:
        """For a process that only decodes (a parallel worker): raised until it exits."""
        low, *rest = gc.get_threshold()
        if low:
            gc.set_threshold(max(low, cls.THRESHOLD), *rest)
