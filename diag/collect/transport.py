"""How commands reach a host: the :class:`Transport` interface and the local transport.

A transport runs argv lists (never shell strings) on one host and returns a :class:`Result`:

- ``connect()`` opens the session and learns the remote uid, or raises :class:`TransportError`
  with a ``kind`` from :data:`FAILURE_KINDS` (a recorded outcome, never fatal);
- ``run(argv, timeout, cap)`` returns stdout up to ``cap`` bytes (``truncated`` beyond, the
  command is then stopped), stderr, the exit code, and rc 124 when it timed out;
- ``stream(argv, sink, timeout)`` hands stdout chunks to ``sink`` (which returns False to stop)
  for captures;
- ``clock_offset()`` measures the host's clock against ours (a ping-pong over one command);
- ``close()``.

Every command is wrapped by :func:`wrap_argv`: ``timeout`` bounds it on the host itself (rc 124),
``sudo -n`` is added for commands needing root when the user is not root, and ``env LC_ALL=C``
fixes the locale. Transports also enforce the timeout locally (plus a grace period) so a dead
host cannot hang the run. A subclass implements ``connect``, ``close`` and ``_spawn`` (and may
change :meth:`Transport.wrap`: a pod has no ``sudo``); ``reached`` names how its commands reach
the host (``host`` over SSH or locally, ``pod`` through ``kubectl exec``, see
:mod:`diag.collect.pods`), recorded with every command.
"""
from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence

FAILURE_KINDS = ("UNREACHABLE", "AUTH_FAILED", "HOST_KEY_UNKNOWN", "HOST_KEY_CHANGED",
                 "CONNECT_TIMEOUT", "CONNECTION_LOST", "SUDO_FAILED", "ERROR",
                 # through a pod (kubectl exec): no agent pod on the node, RBAC refused
                 # pods/exec, the pod or its container gone
                 "NO_AGENT_POD", "FORBIDDEN", "NOT_FOUND")
TIMEOUT_RC = 124
MISSING_RC = 127
STDERR_CAP = 64 * 1024
LOCAL_GRACE = 5.0
READ_CHUNK = 64 * 1024

Sink = Callable[[bytes], bool]


class TransportError(Exception):
    """A host-level failure: ``kind`` is one of :data:`FAILURE_KINDS`."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Result:
    """What one command did. ``rc`` is None when the session died before it finished."""

    argv: tuple[str, ...]
    rc: int | None
    stdout: bytes
    stderr: bytes
    started: float
    duration: float
    truncated: bool = False
    timed_out: bool = False
    error: str | None = None     # CONNECTION_LOST etc.: the transport failed, not the command


def wrap_argv(argv: Sequence[str], timeout: float, sudo: bool) -> list[str]:
    """The argv actually run: bounded by ``timeout``, privileged by ``sudo -n``, LC_ALL=C."""
    inner = ["env", "LC_ALL=C", *argv]
    if sudo:
        inner = ["sudo", "-n", *inner]
    return ["timeout", "-k", "2", f"{timeout:g}", *inner]


class Transport:
    """Base class: subclasses implement ``_spawn`` (start a process, return its streams)."""

    name = "base"
    reached = "host"

    def __init__(self) -> None:
        self.uid: int | None = None

    @property
    def needs_sudo(self) -> bool:
        return self.uid not in (0, None)

    def wrap(self, argv: Sequence[str], timeout: float, sudo: bool) -> list[str]:
        """The argv this transport runs for ``argv`` (see :func:`wrap_argv`)."""
        return wrap_argv(argv, timeout, sudo)

    async def connect(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        return None

    async def run(self, argv: Sequence[str], timeout: float, cap: int,
                  root: bool = False) -> Result:
        chunks: list[bytes] = []
        size = 0
        truncated = False

        def keep(chunk: bytes) -> bool:
            nonlocal size, truncated
            room = cap - size
            if len(chunk) > room:
                chunks.append(chunk[:room])
                size = cap
                truncated = True
                return False
            chunks.append(chunk)
            size += len(chunk)
            return True

        result = await self.stream(argv, keep, timeout, root=root)
        return Result(argv=result.argv, rc=result.rc, stdout=b"".join(chunks),
                      stderr=result.stderr, started=result.started, duration=result.duration,
                      truncated=truncated, timed_out=result.timed_out, error=result.error)

    async def stream(self, argv: Sequence[str], sink: Sink, timeout: float,
                     root: bool = False) -> Result:
        full = self.wrap(argv, timeout, sudo=root and self.needs_sudo)
        started = time.time()
        clock = time.monotonic()
        try:
            handle = await self._spawn(full)
        except TransportError as err:
            return Result(argv=tuple(argv), rc=None, stdout=b"", stderr=err.message.encode(),
                          started=started, duration=time.monotonic() - clock, error=err.kind)
        stderr = bytearray()
        stopped = False

        async def pump_stdout() -> None:
            nonlocal stopped
            while True:
                chunk = await handle.read_stdout(READ_CHUNK)
                if not chunk:
                    return
                if not stopped and not sink(chunk):
                    stopped = True
                    await handle.stop()
                    return

        async def pump_stderr() -> None:
            while True:
                chunk = await handle.read_stderr(READ_CHUNK)
                if not chunk:
                    return
                if len(stderr) < STDERR_CAP:
                    stderr.extend(chunk[:STDERR_CAP - len(stderr)])

        timed_out = False
        error: str | None = None
        rc: int | None = None
        pumps = asyncio.gather(pump_stdout(), pump_stderr())
        # retrieved on every path: a cancelled run (Ctrl-C) must not log "never retrieved"
        pumps.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            await asyncio.wait_for(pumps, timeout + LOCAL_GRACE)
            rc = await asyncio.wait_for(handle.wait(), LOCAL_GRACE)
        except asyncio.TimeoutError:
            timed_out = True
            await handle.stop()
        except TransportError as err:
            error = err.kind
            stderr.extend(err.message.encode()[:1024])
        finally:
            await handle.close()
        if rc is None and not stopped and error is None and not timed_out:
            error = "CONNECTION_LOST"
        if rc == TIMEOUT_RC or timed_out:
            timed_out, rc = True, TIMEOUT_RC
        return Result(argv=tuple(argv), rc=rc, stdout=b"", stderr=bytes(stderr), started=started,
                      duration=time.monotonic() - clock, timed_out=timed_out, error=error)

    async def clock_offset(self, timeout: float = 10.0) -> tuple[float, float] | None:
        """(remote clock - local clock, uncertainty) in seconds, or None.

        Ping-pong so that session start-up (a login shell's rc files) is not counted: the host
        says ``ready``, we send a line and note the time, it answers with its clock; the offset
        is taken at the midpoint of that exchange only.
        """
        full = self.wrap(["sh", "-c", "echo ready; read line; date +%s.%N"], timeout, sudo=False)
        try:
            handle = await self._spawn(full, stdin=True)
        except TransportError:
            return None
        buffer = b""

        async def line() -> bytes:
            nonlocal buffer
            while b"\n" not in buffer:
                chunk = await handle.read_stdout(256)
                if not chunk:
                    raise ValueError("no answer")
                buffer += chunk
            first, buffer = buffer.split(b"\n", 1)
            return first

        try:
            async with asyncio.timeout(timeout):
                if await line() != b"ready":
                    return None
                sent = time.time()
                await handle.write_stdin(b"\n")
                remote = float(await line())
                received = time.time()
        except (TransportError, ValueError, TimeoutError):
            return None
        finally:
            await handle.close()
        return remote - (sent + received) / 2, (received - sent) / 2

    async def _spawn(self, argv: list[str], stdin: bool = False) -> "ProcessHandle":
        raise NotImplementedError


class ProcessHandle:
    """A started command, as the base transport needs it."""

    def __init__(self, read_stdout: Callable[[int], Awaitable[bytes]],
                 read_stderr: Callable[[int], Awaitable[bytes]],
                 wait: Callable[[], Awaitable[int | None]],
                 stop: Callable[[], Awaitable[None]],
                 close: Callable[[], Awaitable[None]],
                 write_stdin: Callable[[bytes], Awaitable[None]] | None = None) -> None:
        self.write_stdin = write_stdin
        self.read_stdout = read_stdout
        self.read_stderr = read_stderr
        self.wait = wait
        self.stop = stop
        self.close = close


class LocalTransport(Transport):
    """Commands on the machine diag runs on (subprocesses, same wrapping as remote ones)."""

    name = "local"

    async def connect(self) -> None:
        self.uid = os.geteuid()

    async def _spawn(self, argv: list[str], stdin: bool = False) -> ProcessHandle:
        return await local_process(argv, stdin)


async def local_process(argv: list[str], stdin: bool = False, env: dict[str, str] | None = None,
                        exit_code: Callable[[int, bytes], int] | None = None) -> ProcessHandle:
    """A subprocess of this machine in its own session (stopped with its whole process group).
    ``exit_code(rc, stderr_start)``: what the caller makes of the exit status, given the first
    64 KiB of stderr (e.g. a container runtime's "executable not found" becomes rc 127)."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, env=env)
    except OSError as err:
        raise TransportError("ERROR", f"cannot start {argv[0]}: {err.strerror}") from None
    assert process.stdout is not None and process.stderr is not None
    seen = bytearray()

    async def read_stderr(size: int) -> bytes:
        chunk = await process.stderr.read(size)     # type: ignore[union-attr]
        if exit_code is not None and len(seen) < 65536:
            seen.extend(chunk)
        return chunk

    async def wait() -> int | None:
        rc = await process.wait()
        return exit_code(rc, bytes(seen)) if exit_code is not None else rc

    async def stop() -> None:
        if process.returncode is None:
            try:
                os.killpg(process.pid, 15)
            except ProcessLookupError:
                pass

    async def close() -> None:
        if process.returncode is None:
            await stop()
            try:
                await asyncio.wait_for(process.wait(), 2)
            except TimeoutError:
                os.killpg(process.pid, 9)
                await process.wait()

    async def write_stdin(data: bytes) -> None:
        assert process.stdin is not None
        process.stdin.write(data)
        await process.stdin.drain()

    return ProcessHandle(process.stdout.read, read_stderr, wait, stop, close,
                         write_stdin if stdin else None)
