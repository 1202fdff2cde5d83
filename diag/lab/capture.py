"""Record real captures inside a lab host's namespace with tcpdump.

Contract: :func:`recording` is a context manager that starts ``tcpdump -U -w PATH`` on ``host``
(its namespace; ``iface="any"`` gives a Linux cooked v2 (SLL2) capture with interface names and
directions) through the lab's spawn API — tracked by PID, so ``down`` stops it if the caller dies —
waits until tcpdump listens, yields, and stops it by PID on exit (SIGTERM: tcpdump flushes the
file). Nothing is captured outside the lab's namespaces. ``captures/record_lab.py`` uses it to
record the committed example captures; see captures/README.md.

    with recording(lab, "router", "eth1", out / "bgp.pcap", "tcp port 179"):
        ...  # apply a fault, restart a daemon, ping
"""
from __future__ import annotations

import shlex
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from diag.lab.system import wait_for

if TYPE_CHECKING:
    from diag.lab import Lab


@contextmanager
def recording(lab: "Lab", host: str, iface: str, path: Path, bpf: str = "", *,
              snaplen: int = 0, timeout: float = 10) -> Iterator[Path]:
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = f"capture/{host}/{iface}/{path.name}"
    argv = ["tcpdump", "-n", "-p", "-U", "-Z", "root", "-i", iface, "-w", str(path)]
    if snaplen:
        argv += ["-s", str(snaplen)]
    argv += shlex.split(bpf)
    record = lab.daemons.spawn(key, host, argv)
    try:
        wait_for(lambda: "listening on" in Path(record.log).read_text(errors="replace")
                 or not lab.daemons.is_running(key), timeout=timeout, what=f"tcpdump on {host} {iface}")
        if not lab.daemons.is_running(key):
            raise RuntimeError(f"tcpdump on {host} {iface} exited: "
                               + Path(record.log).read_text(errors="replace").strip())
        yield path
        _settle(path)
    finally:
        lab.daemons.stop(key)


def _settle(path: Path, quiet: float = 0.5, limit: float = 3.0) -> None:
    """Let tcpdump write what the kernel already handed it: wait until the file stops growing
    for ``quiet`` seconds (at most ``limit``) — SIGTERM drops packets not yet read."""
    import time

    deadline = time.monotonic() + limit
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = path.stat().st_size if path.exists() else 0
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)
