"""The rich console every terminal renderer prints to.

Contract: :func:`console(**options)` is ``rich.console.Console(**options)`` except on a broken
pipe (``diag pcap x | head``): rich alone would exit with status 1 there; this one raises
:class:`BrokenPipeError`, so the command line's one exit path (:func:`diag.cli.app.run`) gives the
documented status (``BROKEN_PIPE``, docs/exit-codes.md) like every other write.
"""
from __future__ import annotations

from typing import Any


def console(**options: Any):
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True           # nothing more is written to a closed pipe
            raise BrokenPipeError

    return _Console(**options)
