"""A progress bar on stderr while a large capture is decoded (``diag pcap``).

Contract: :func:`capture_progress(path, fmt, stream=sys.stderr)` is a context manager giving
``progress(bytes_read, packets)`` to pass to :func:`diag.pipeline.pcap_summaries`, or None when
nothing is shown. A bar is shown only for a capture of :data:`MIN_BYTES` (64 MiB) or more, when
``stream`` is a terminal and the output is text: JSON output and piped or redirected stderr get
no bar (and no escape codes). The bar (rich, transient: gone when the decode ends) shows the bytes
read of the file, the packets decoded and their rate. Rich is imported only when a bar is shown,
so ``diag pcap`` on a small capture starts as fast as before.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TextIO

MIN_BYTES = 64 << 20


def wanted(path: Path, fmt: str, stream: TextIO) -> bool:
    """Whether ``diag pcap`` shows a bar for ``path``."""
    if fmt != "text":
        return False
    try:
        if not stream.isatty():
            return False
        return Path(path).stat().st_size >= MIN_BYTES
    except (OSError, ValueError, AttributeError):   # no such file: the decoder says so
        return False


@contextmanager
def capture_progress(path: Path, fmt: str,
                     stream: TextIO | None = None) -> Iterator[Callable[[int, int], None] | None]:
    stream = stream if stream is not None else sys.stderr
    if not wanted(path, fmt, stream):
        yield None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                               TimeElapsedColumn)

    total = Path(path).stat().st_size
    bar = Progress(TextColumn("decoding {task.fields[name]}"), BarColumn(), DownloadColumn(),
                   TextColumn("{task.fields[packets]:,} packets, {task.fields[rate]:,.0f}/s"),
                   TimeElapsedColumn(), console=Console(file=stream), transient=True)
    task = bar.add_task("decode", total=total, name=Path(path).name, packets=0, rate=0.0)
    started = time.monotonic()

    def progress(bytes_read: int, packets: int) -> None:
        took = time.monotonic() - started
        bar.update(task, completed=min(bytes_read, total), packets=packets,
                   rate=packets / took if took > 0 else 0.0)

    with bar:
        yield progress
