"""Thin wrappers over the host: run a command, network namespaces, processes by PID.

Contract: every function here acts on what it is given (a namespace name, a PID) and nothing else;
nothing touches the root namespace's interfaces, addresses, routes or sysctls. Processes are stopped
by PID only; a process counts as dead once /proc says so or it is a zombie (``Z``/``X``), because
daemons whose parent is gone can stay zombies until reaped. Waiting is polling with a deadline.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

NETNS_DIR = Path("/run/netns")

# Children we spawned, kept so that we can reap them (no zombies left behind in long-lived
# processes such as a test session) and so that Popen does not warn when collected.
_children: dict[int, subprocess.Popen] = {}


class CommandFailed(RuntimeError):
    def __init__(self, argv: Sequence[str], proc: subprocess.CompletedProcess) -> None:
        detail = (proc.stderr or proc.stdout or "").strip().splitlines()
        super().__init__(f"{' '.join(argv)} exited {proc.returncode}: "
                         f"{detail[-1] if detail else 'no output'}")
        self.proc = proc


def run(argv: Sequence[str], *, check: bool = True, input: str | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess:
    """Run argv, capture text output; raise :class:`CommandFailed` when check and rc != 0."""
    proc = subprocess.run(list(argv), input=input, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "LC_ALL": "C"})
    if check and proc.returncode != 0:
        raise CommandFailed(argv, proc)
    return proc


# --- namespaces -------------------------------------------------------------------------------

def netns_list() -> set[str]:
    try:
        return {p.name for p in NETNS_DIR.iterdir()}
    except FileNotFoundError:
        return set()


def netns_add(name: str) -> None:
    run(["ip", "netns", "add", name])


def netns_delete(name: str) -> None:
    if name in netns_list():
        run(["ip", "netns", "delete", name], check=False)


def netns_pids(name: str) -> list[int]:
    """PIDs of processes whose network namespace is ``name`` (``ip netns pids``)."""
    if name not in netns_list():
        return []
    proc = run(["ip", "netns", "pids", name], check=False)
    return [int(tok) for tok in proc.stdout.split() if tok.isdigit()]


def ip_batch(netns: str, lines: Sequence[str]) -> None:
    """Run ip commands (one per line, without the leading ``ip``) inside ``netns`` in one process."""
    if lines:
        run(["ip", "-n", netns, "-batch", "-"], input="\n".join(lines) + "\n")


def sysctl(netns: str, settings: dict[str, str]) -> None:
    """Set sysctls inside ``netns`` (per-namespace net.* keys only)."""
    argv = ["ip", "netns", "exec", netns, "sysctl", "-q", "-w"]
    run(argv + [f"{key}={value}" for key, value in settings.items()])


# --- processes --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProcStat:
    state: str          # R, S, D, Z, X, T, ...
    starttime: int      # clock ticks after boot; with the PID, identifies one process


def proc_stat(pid: int) -> ProcStat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()   # comm may contain spaces and parentheses
    return ProcStat(state=fields[0], starttime=int(fields[19]))


def is_alive(pid: int, starttime: int | None = None) -> bool:
    """True while the process runs (not a zombie) and, if given, has the recorded start time."""
    _reap(pid)
    stat = proc_stat(pid)
    if stat is None or stat.state in ("Z", "X"):
        return False
    return starttime is None or stat.starttime == starttime


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _children.pop(pid, None)


def spawn(argv: Sequence[str], log_path: Path) -> tuple[int, int]:
    """Start a long-running process detached from our session; return (pid, starttime)."""
    with open(log_path, "ab") as log:
        child = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True,
                                 close_fds=True, env={**os.environ, "LC_ALL": "C"})
    _children[child.pid] = child
    stat = proc_stat(child.pid)
    return child.pid, (stat.starttime if stat else 0)


def stop_pids(pids: Sequence[tuple[int, int | None]], *, grace: float = 1.0,
              deadline: float = 5.0) -> list[int]:
    """SIGTERM the (pid, starttime) pairs still alive, SIGKILL after ``grace`` seconds.

    Returns the PIDs still alive after ``deadline`` (should be empty). A PID whose start time no
    longer matches is someone else's process and is left alone.
    """
    live = [(pid, st) for pid, st in pids if is_alive(pid, st)]
    for pid, _ in live:
        _signal(pid, signal.SIGTERM)
        _signal(pid, signal.SIGCONT)    # a SIGSTOPped daemon (hold-timer fault) must see it
    start = time.monotonic()
    killed = False
    while live:
        live = [(pid, st) for pid, st in live if is_alive(pid, st)]
        elapsed = time.monotonic() - start
        if live and not killed and elapsed >= grace:
            for pid, _ in live:
                _signal(pid, signal.SIGKILL)
            killed = True
        if not live or elapsed >= deadline:
            break
        time.sleep(0.01)
    return [pid for pid, _ in live]


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_for(predicate, *, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate()`` until it returns a truthy value or ``timeout`` seconds pass.

    Returns the truthy value; raises TimeoutError naming ``what`` otherwise.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
