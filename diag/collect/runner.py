"""Run the catalogue on every target and write the bundle: :func:`collect` and :func:`plan`.

Per host (at most ``fanout`` hosts at a time, ``per_host`` commands in flight on each): connect
(``connect_timeout``), measure the clock offset (a ping-pong, see
:meth:`~diag.collect.transport.Transport.clock_offset`), run the base catalogue and the
``--probe`` commands, detect daemons from the listening sockets and run their commands (GoBGP
adj-in per neighbour). Bundle writes go through one I/O thread so fsyncs never stall sessions.
With ``--capture``, every reachable host then starts tcpdump at the same moment (a rendezvous
after the catalogue), streams it into the bundle, and re-runs the neighbour table and counters
afterwards. Every command is bounded by its own timeout; the whole run by ``deadline``.

With ``via`` (``--via kubectl``), the cluster's Nodes are hosts too, each reached through its
CNI agent pod (:mod:`diag.collect.pods`): discovery runs first (its kubectl commands are in the
manifest's ``via`` section), then every Node is collected like an SSH host, with the agent's
daemon (Cilium's BGP, Calico's BIRD) read inside the pod. Over SSH, a daemon whose process lives
in another mount namespace (a container) is read through ``nsenter`` (detection's PID; the
command ``daemon-mount-ns`` tells). Every command record says how it was ``reached`` (``host``,
``nsenter``, ``pod``). Captures on a pod-reached node run tcpdump in the agent pod when the
image has it, else in a ``kubectl debug node`` pod of ``--debug-image`` (deleted afterwards,
also on failure and Ctrl-C: :mod:`diag.collect.debugpod`), else are recorded ``UNAVAILABLE``
with how to get one.

With ``kube`` (``--kube``), the cluster's objects are read by
:func:`diag.collect.kube.collect_kube` in a thread beside the hosts (its writes handed to the same
I/O thread); its partial reasons (``KUBE_FAILED`` for an RBAC refusal, ...) join the hosts', and
at the deadline or on Ctrl-C its kubectl processes are killed. A run may be kube only.

Every outcome is recorded, nothing is fatal: a host's ``reachability`` is ``OK`` or a
:data:`diag.collect.transport.FAILURE_KINDS` value; a command's ``outcome`` is one of
:data:`OUTCOMES`. The bundle is ``complete`` only when every host was reached and every command
is ``OK``; otherwise ``partial`` with reasons. Ctrl-C (task cancellation) finishes the bundle as
partial (``INTERRUPTED``) and re-raises. Output is redacted (:mod:`diag.collect.redact`) before it
is written.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from diag.bundle import BundleWriter, StreamFile
from diag.collect import catalogue
from diag.collect.capture import PcapSink
from diag.collect.catalogue import CaptureOptions, CommandSpec
from diag.collect.debugpod import DebugPod, DebugPodError
from diag.collect.detect import detect
from diag.collect.kube import KubeOptions, KubeRun, Stopper, collect_kube
from diag.collect.pods import (
    AGENTS,
    CALICO_BIRD,
    CALICO_BIRD6_SOCKET,
    AgentPod,
    Discovery,
    PodTransport,
    ViaOptions,
    discover,
)
from diag.collect.redact import redact
from diag.collect.ssh import SshOptions, SshTransport
from diag.collect.targets import Target
from diag.collect.transport import LocalTransport, Result, Transport, TransportError, wrap_argv

OUTCOMES = ("OK", "FAILED", "TIMEOUT", "MISSING", "CONNECTION_LOST", "INTERRUPTED",
            "UNAVAILABLE")   # UNAVAILABLE: captures only, no way to capture on that host
STDERR_IN_MANIFEST = 4096
CAPTURE_GRACE = 15.0


@dataclass(frozen=True)
class CollectOptions:
    targets: tuple[Target, ...]
    out: Path
    ssh: SshOptions = field(default_factory=SshOptions)
    probes: tuple[str, ...] = ()
    capture: CaptureOptions | None = None
    fanout: int = 16
    per_host: int = 4                        # commands in flight per host (SSH channels)
    command_timeout: float | None = None   # overrides every catalogue timeout when set
    deadline: float = 900.0
    archive: bool = False
    redact_strings: tuple[str, ...] = ()
    extra_commands: tuple[CommandSpec, ...] = ()
    base: bool = True                        # run the base catalogue (False: extras only)
    kube: KubeOptions | None = None          # also read the cluster's objects with kubectl
    via: ViaOptions | None = None            # also the Nodes, through their CNI agent pods


@dataclass
class HostState:
    """Live per-host progress (read by the progress view)."""

    name: str
    status: str = "WAITING"     # WAITING CONNECTING COLLECTING CAPTURING DONE + failure kinds
    done: int = 0
    total: int = 0
    failures: int = 0
    capture_bytes: int = 0
    capture_packets: int = 0
    detail: str = ""


@dataclass
class RunResult:
    bundle: Path
    archive: Path | None
    status: str
    partial_reasons: list[str]
    manifest: dict[str, Any]


Listener = Callable[[dict[str, HostState]], None]


def make_transport(target: Target, ssh: SshOptions, via: ViaOptions | None = None,
                   pod: AgentPod | None = None) -> Transport:
    if target.transport == "kubectl":
        assert via is not None
        return PodTransport(via, pod, target.name)
    return LocalTransport() if target.transport == "local" else SshTransport(target, ssh)


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1e6):06d}Z"


def classify(result: Result) -> str:
    if result.error:
        return "CONNECTION_LOST"
    if result.timed_out:
        return "TIMEOUT"
    if result.rc == 0:
        return "OK"
    if result.rc == 127 or (result.rc == 126 and b"No such file" in result.stderr):
        return "MISSING"
    return "FAILED"


class _Rendezvous:
    """Captures start together: every host arrives (reached or failed), then all go."""

    def __init__(self, count: int) -> None:
        self.remaining = count
        self.event = asyncio.Event()
        if count == 0:
            self.event.set()

    def arrive(self) -> None:
        self.remaining -= 1
        if self.remaining <= 0:
            self.event.set()


class _AsyncWriter:
    """The bundle writer off the event loop: one I/O thread, so calls stay ordered and fsyncs
    never stall the other hosts' sessions."""

    def __init__(self, writer: BundleWriter) -> None:
        self.writer = writer
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="diag-bundle")

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, partial(fn, *args, **kwargs))

    async def set_host(self, host: str, **fields: Any) -> None:
        await self._call(self.writer.set_host, host, **fields)

    async def set_kube(self, **fields: Any) -> None:
        await self._call(self.writer.set_kube, **fields)

    async def add_output(self, host: str, record: dict[str, Any], data: bytes) -> dict[str, Any]:
        return await self._call(self.writer.add_output, host, record, data)

    async def add_redactions(self, entries: list[dict[str, Any]]) -> None:
        if entries:
            await self._call(self.writer.add_redactions, entries)

    async def add_command(self, host: str, record: dict[str, Any]) -> None:
        await self._call(self.writer.add_command, host, record)

    async def open_stream(self, host: str, command_id: str, suffix: str) -> StreamFile:
        return await self._call(self.writer.open_stream, host, command_id, suffix)

    async def add_stream(self, host: str, record: dict[str, Any],
                         stream: StreamFile) -> dict[str, Any]:
        return await self._call(self.writer.add_stream, host, record, stream)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class _ThreadSink:
    """The bundle writer for :func:`diag.collect.kube.collect_kube`, which runs in a thread of
    its own: every call is handed to the one I/O thread and waited for, so the kube part's
    writes are ordered with the hosts' (BundleWriter is not thread-safe)."""

    def __init__(self, writer: _AsyncWriter) -> None:
        self.writer = writer

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.writer.pool.submit(partial(fn, *args, **kwargs)).result()

    def set_kube(self, **fields: Any) -> None:
        self._call(self.writer.writer.set_kube, **fields)

    def add_kube_output(self, record: dict[str, Any], data: bytes) -> dict[str, Any]:
        return self._call(self.writer.writer.add_kube_output, record, data)

    def add_kube_record(self, record: dict[str, Any]) -> None:
        self._call(self.writer.writer.add_kube_record, record)

    def add_redactions(self, entries: list[dict[str, Any]]) -> None:
        if entries:
            self._call(self.writer.writer.add_redactions, entries)


KUBE_ROW = "kube (kubectl)"        # the live view's row of the kube part (no host has a space)


class _Run:
    def __init__(self, options: CollectOptions, writer: BundleWriter,
                 listener: Listener | None, discovery: Discovery | None = None) -> None:
        self.options = options
        self.writer = _AsyncWriter(writer)
        self.listener = listener
        self.pods = dict(discovery.pods) if discovery else {}
        self.targets = list(options.targets) + (node_targets(discovery, options.targets)
                                                if discovery else [])
        self.states = {t.name: HostState(t.name) for t in self.targets}
        self.semaphore = asyncio.Semaphore(max(1, options.fanout))
        self.rendezvous = _Rendezvous(len(self.targets))
        self.reasons: list[str] = []
        self.kube_state: HostState | None = None

    def changed(self) -> None:
        if self.listener:
            self.listener(self.states if self.kube_state is None else
                          {**self.states, KUBE_ROW: self.kube_state})

    async def kube(self, options: KubeOptions, stopper: Stopper) -> KubeRun:
        """The cluster's objects (:func:`diag.collect.kube.collect_kube`) in a thread beside the
        hosts; its partial reasons join the run's."""
        state = self.kube_state = HostState(KUBE_ROW, status="COLLECTING", total=2)
        self.changed()
        loop = asyncio.get_running_loop()

        def seen(record: dict[str, Any]) -> None:
            if "planned" in record:
                state.total = 2 + record["planned"]
            else:
                state.done += 1
                if record.get("outcome") not in ("OK", "NOT_INSTALLED", "SKIPPED"):
                    state.failures += 1
            self.changed()

        def progress(record: dict[str, Any]) -> None:   # called in the kube thread
            loop.call_soon_threadsafe(seen, record)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="diag-kube") as pool:
            result = await loop.run_in_executor(pool, partial(
                collect_kube, options, _ThreadSink(self.writer), stopper=stopper,
                progress=progress))
        self.reasons.extend(result.reasons)
        state.status = "DONE" if not result.reasons else "DONE*"
        self.changed()
        return result

    def specs(self) -> list[CommandSpec]:
        specs = catalogue.base_commands() if self.options.base else []
        specs += catalogue.probe_commands(list(self.options.probes))
        return specs + list(self.options.extra_commands)

    def timeout(self, spec: CommandSpec) -> float:
        return self.options.command_timeout or spec.timeout

    async def host(self, target: Target) -> None:
        state = self.states[target.name]
        writer = self.writer
        pod = self.pods.get(target.name)
        described = {} if target.transport != "kubectl" else {
            "target": pod.describe() if pod else f"node {target.name} (no agent pod)",
            "pod": pod.record() if pod else None}
        await writer.set_host(target.name, **{"target": target.describe(),
                                              "transport": target.transport,
                                              "declared": dict(target.declared),
                                              "reachability": "PENDING", **described})
        transport = make_transport(target, self.options.ssh, self.options.via, pod)
        arrived = False
        try:
            async with self.semaphore:
                state.status = "CONNECTING"
                self.changed()
                try:
                    await transport.connect()
                except TransportError as err:
                    state.status, state.detail = err.kind, err.message
                    await writer.set_host(target.name, reachability=err.kind, error=err.message)
                    self.reasons.append("HOST_UNREACHED")
                    return
                extra: dict[str, Any] = {}
                if isinstance(transport, SshTransport) and transport.policy is not None:
                    extra["host_key_accepted_new"] = transport.policy.accepted_new
                if isinstance(transport, PodTransport):
                    extra["remote_timeout"] = transport.remote_timeout
                await writer.set_host(target.name, reachability="OK", uid=transport.uid,
                                      sudo=transport.needs_sudo, **extra)
                state.status = "COLLECTING"
                await self.clock(target, transport)
                specs = self.specs()
                state.total = len(specs)
                self.changed()
                outputs = await self.commands(target, transport, specs)
                if self.options.base:
                    offloads = catalogue.ethtool_commands(outputs.get("ip-link", b""))
                    state.total += len(offloads)
                    await self.commands(target, transport, offloads)
                    await self.daemons(target, transport, outputs.get("ss-listeners", b""))
            if self.options.capture is not None:
                async with contextlib.AsyncExitStack() as cleanup:
                    # a debug pod is started before the rendezvous, so that every capture
                    # still starts at the same moment; the stack deletes it in any case
                    route = await self.capture_route(target, transport, cleanup)
                    self.rendezvous.arrive()
                    arrived = True
                    await self.rendezvous.event.wait()
                    await self.capture(target, route, self.options.capture)
                async with self.semaphore:
                    after = catalogue.after_capture_commands()
                    state.total += len(after)
                    await self.commands(target, transport, after)
            state.status = "DONE" if state.failures == 0 else "DONE*"
        except asyncio.CancelledError:
            state.status = "INTERRUPTED"
            await writer.set_host(target.name, interrupted=True)
            raise
        except _HostLost as lost:
            state.status, state.detail = "CONNECTION_LOST", str(lost)
            await writer.set_host(target.name, error=f"connection lost: {lost}", lost=True)
            self.reasons.append("HOST_LOST")
        finally:
            if not arrived:
                self.rendezvous.arrive()
            self.changed()
            await transport.close()

    async def clock(self, target: Target, transport: Transport) -> None:
        measured = await transport.clock_offset()
        if measured is not None:
            offset, uncertainty = measured
            await self.writer.set_host(target.name, clock_offset_s=round(offset, 6),
                                       clock_uncertainty_s=round(uncertainty, 6))

    async def commands(self, target: Target, transport: Transport,
                       specs: list[CommandSpec]) -> dict[str, bytes]:
        """Run specs over one session, ``per_host`` channels at a time; first loss re-raised."""
        gate = asyncio.Semaphore(max(1, self.options.per_host))

        async def one(spec: CommandSpec) -> bytes:
            async with gate:
                return await self.command(target, transport, spec)

        results = await asyncio.gather(*(one(spec) for spec in specs), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return {spec.id: result for spec, result in zip(specs, results)}  # type: ignore[misc]

    async def command(self, target: Target, transport: Transport, spec: CommandSpec,
                      tried: list[dict[str, Any]] | None = None) -> bytes:
        timeout = self.timeout(spec)
        result = await transport.run(spec.argv, timeout=timeout, cap=spec.cap, root=spec.root)
        return await self.record(target, transport, spec, result, tried)

    async def record(self, target: Target, transport: Transport, spec: CommandSpec,
                     result: Result, tried: list[dict[str, Any]] | None = None) -> bytes:
        """Write one command's output and manifest record (``tried``: the forms that did not
        work before this one, see :meth:`cilium`)."""
        state = self.states[target.name]
        timeout = self.timeout(spec)
        outcome = classify(result)
        output, found = redact(spec.id, result.stdout, self.options.redact_strings)
        stderr, found_err = redact("stderr", result.stderr, self.options.redact_strings)
        record = {
            "id": spec.id, "argv": list(spec.argv),
            "run_as": "sudo -n" if spec.root and transport.needs_sudo else "user",
            "daemon": spec.daemon, "phase": spec.phase, "outcome": outcome,
            "exit_code": result.rc, "timeout_s": timeout,
            "stderr": stderr[:STDERR_IN_MANIFEST].decode(errors="replace"),
            "started": _iso(result.started), "duration_s": round(result.duration, 4),
            "truncated": result.truncated, "cap_bytes": spec.cap,
            "reached": spec.reached or transport.reached,
        }
        if tried:
            record["tried"] = tried
        written = await self.writer.add_output(target.name, record, output)
        await self.writer.add_redactions(
            [{"host": target.name, "command": spec.id, "path": written["path"],
              "stream": "stdout", "rule": r.rule, "line": r.line, "detail": r.detail}
             for r in found] +
            [{"host": target.name, "command": spec.id, "path": None, "stream": "stderr",
              "rule": r.rule, "line": r.line, "detail": r.detail} for r in found_err])
        state.done += 1
        if outcome != "OK":
            state.failures += 1
            self.reasons.append(f"COMMAND_{outcome}")
        self.changed()
        if outcome == "CONNECTION_LOST":
            raise _HostLost(f"during {spec.id}")
        return output

    async def daemons(self, target: Target, transport: Transport, listeners: bytes) -> None:
        """The daemons detection found, each read where it lives: on the host, inside its
        container (``nsenter``), or in the agent pod the host was reached through."""
        found = detect(listeners.decode(errors="replace"))
        if isinstance(transport, PodTransport):
            await self.pod_daemons(transport, found)
        else:
            await self.containerised(target, transport, found)
        await self.writer.set_host(target.name, daemons=found)
        state = self.states[target.name]
        for daemon, options in sorted(found.items()):
            if options.get("reached") == "none":
                continue
            prefix = catalogue.nsenter_prefix(options["pid"]) \
                if options.get("reached") == "nsenter" else ()
            if daemon == "CILIUM":
                await self.cilium(target, transport, options, prefix)
                continue
            specs = catalogue.daemon_commands(daemon, options, prefix)
            state.total += len(specs)
            self.changed()
            outputs = await self.commands(target, transport, specs)
            if "gobgp-neighbor" in outputs:
                adj_in = catalogue.gobgp_adj_in_commands(outputs["gobgp-neighbor"], options)
                state.total += len(adj_in)
                await self.commands(target, transport, adj_in)
        await self.writer.set_host(target.name, daemons=found)

    async def pod_daemons(self, transport: PodTransport,
                          found: dict[str, dict[str, str]]) -> None:
        """Through an agent pod the daemon is the agent's whether or not ``ss`` could name
        it: Cilium's BGP in cilium-agent, Calico's BIRD (read with birdcl) in calico-node.
        calicoctl is not part of calico-node, so CALICO's command is not run there."""
        pod = transport.pod
        assert pod is not None
        found.pop("CALICO", None)
        if pod.daemon == "CILIUM":
            found.setdefault("CILIUM", {})
        elif pod.daemon == "BIRD":
            bird = found.setdefault("BIRD", {})
            bird.setdefault("socket", CALICO_BIRD["socket"])
            if "socket6" not in bird:
                probe = await transport.run(["test", "-S", CALICO_BIRD6_SOCKET], timeout=10,
                                            cap=64)
                if probe.rc == 0:
                    bird["socket6"] = CALICO_BIRD6_SOCKET
        for daemon, options in found.items():
            if daemon != pod.daemon:
                # another daemon on the node (its socket is in the node's namespace): its CLI
                # is not in the agent's image; over SSH it is read
                options.update(reached="none", note=f"not in the {pod.container} image: "
                               "collect this node over SSH to read it")
                continue
            options["reached"] = "pod"
            if daemon == "BIRD":
                options["client"] = CALICO_BIRD["client"]

    async def containerised(self, target: Target, transport: Transport,
                            found: dict[str, dict[str, str]]) -> None:
        """Mark the daemons whose root filesystem is not ours (containers) ``nsenter``."""
        pids = sorted({o["pid"] for o in found.values() if str(o.get("pid", "")).isdigit()})
        for options in found.values():
            options["reached"] = "host"
        if not pids:
            return
        self.states[target.name].total += 1
        output = await self.command(target, transport, catalogue.root_command(pids))
        own, by_pid = catalogue.parse_roots(output)
        for daemon, options in found.items():
            pid = options.get("pid")
            if own and pid in by_pid and by_pid[pid] != own:
                options["reached"] = "nsenter"
                if daemon == "BIRD":
                    options["client"] = CALICO_BIRD["client"]   # containers ship birdcl

    async def cilium(self, target: Target, transport: Transport, options: dict[str, Any],
                     prefix: tuple[str, ...]) -> None:
        """Cilium's BGP in the form this agent has: each form's peers command, newest first,
        until one works (recorded as ``cilium-bgp-peers``, the others under ``tried``); then
        that form's routes and the agent's status."""
        state = self.states[target.name]
        reached = "nsenter" if prefix else None
        tried: list[dict[str, Any]] = []
        chosen, result = None, None
        state.total += 1
        for form in catalogue.CILIUM_FORMS:
            spec = catalogue.cilium_peers_command(form, prefix, reached)
            result = await transport.run(spec.argv, timeout=self.timeout(spec), cap=spec.cap,
                                         root=spec.root)
            outcome = classify(result)
            if outcome == "OK":
                chosen = form
                break
            if outcome in ("CONNECTION_LOST", "TIMEOUT") or (outcome == "MISSING" and
                                                             not tried):
                chosen = form        # no cilium-dbg at all, or no answer: no other form helps
                break
            stderr, _found = redact("stderr", result.stderr, self.options.redact_strings)
            tried.append({"form": form.name, "argv": list(spec.argv), "exit_code": result.rc,
                          "stderr": stderr[:512].decode(errors="replace")})
        assert result is not None
        form = chosen or catalogue.CILIUM_FORMS[-1]
        options["form"] = form.name if chosen and classify(result) == "OK" else None
        if tried:
            options["tried"] = [t["form"] for t in tried]
        await self.record(target, transport, catalogue.cilium_peers_command(form, prefix,
                                                                           reached),
                          result, tried[:-1] if chosen is None else tried)
        if options["form"] is None:
            return
        specs = catalogue.cilium_commands(form, prefix, reached)
        state.total += len(specs)
        self.changed()
        await self.commands(target, transport, specs)

    async def capture_route(self, target: Target, transport: Transport,
                            cleanup: contextlib.AsyncExitStack) -> _CaptureRoute:
        """Where this host's tcpdump runs: the host itself (SSH, local), the agent pod when its
        image has tcpdump, else a ``kubectl debug node`` pod of ``--debug-image``; or nowhere,
        with the reason and what to do."""
        if not isinstance(transport, PodTransport):
            return _CaptureRoute(transport, transport.reached)
        probe = await transport.run(["tcpdump", "--version"], timeout=10, cap=4096)
        if classify(probe) == "OK":
            return _CaptureRoute(transport, "pod")
        via = self.options.via
        pod = transport.pod
        image = pod.image if pod else None
        if via is None or not via.debug_image:
            return _CaptureRoute(None, "pod", outcome="UNAVAILABLE", detail=(
                f"the agent image{f' {image}' if image else ''} has no tcpdump; run again with "
                "--debug-image IMAGE (an image with tcpdump, e.g. nicolaka/netshoot) to capture "
                "from a `kubectl debug node` pod on the node, or capture over SSH"))
        assert self.options.capture is not None
        debug = DebugPod(via, target.name, self.options.capture.duration + CAPTURE_GRACE + 60)
        route = _CaptureRoute(None, "debug-pod", debug=debug)
        try:
            await cleanup.enter_async_context(debug)
        except DebugPodError as err:
            route.outcome, route.detail = "FAILED", str(err)
            return route
        route.transport = debug.transport()
        return route

    async def capture(self, target: Target, route: _CaptureRoute,
                      options: CaptureOptions) -> None:
        state = self.states[target.name]
        state.status = "CAPTURING"
        state.total += 1
        self.changed()
        if route.transport is None:
            await self.no_capture(target, route, options)
            return
        transport = route.transport
        stream = await self.writer.open_stream(target.name, "capture", ".pcap")
        sink = PcapSink(stream.write, options.max_bytes)

        def feed(chunk: bytes) -> bool:
            keep = sink.feed(chunk)
            state.capture_bytes, state.capture_packets = sink.bytes, sink.packets
            self.changed()
            return keep

        argv = catalogue.capture_argv(options)
        result: Result | None = None
        try:
            result = await transport.stream(argv, feed, timeout=options.duration + CAPTURE_GRACE,
                                            root=True)
        finally:
            if route.debug is not None:
                await route.debug.__aexit__(None, None, None)   # deleted before it is recorded
            # also on Ctrl-C: whatever whole records arrived are kept and recorded
            outcome = "CONNECTION_LOST" if result is None else classify(result)
            if result is not None and sink.truncated and outcome != "OK":
                outcome = "OK"  # stopped by --max-bytes: a bound, not a failure
            stderr, found = redact("capture", result.stderr if result else b"",
                                   self.options.redact_strings)
            record = {
                "id": "capture", "argv": list(argv), "phase": "capture", "daemon": None,
                "run_as": "sudo -n" if transport.needs_sudo else "user",
                "outcome": outcome if result is not None else "INTERRUPTED",
                "exit_code": result.rc if result else None,
                "timeout_s": options.duration + CAPTURE_GRACE,
                "stderr": stderr[:STDERR_IN_MANIFEST].decode(errors="replace"),
                "started": _iso(result.started if result else time.time()),
                "duration_s": round(result.duration, 4) if result else None,
                "truncated": sink.truncated, "packets": sink.packets,
                "incomplete_tail_bytes": sink.leftover, "not_pcap": sink.not_pcap,
                "capture": _capture_options(options), "reached": route.reached,
            }
            if route.debug is not None:
                record["debug_pod"] = dict(route.debug.record)
            await self.writer.add_stream(target.name, record, stream)
            await self.writer.add_redactions(
                [{"host": target.name, "command": "capture", "path": None, "stream": "stderr",
                  "rule": r.rule, "line": r.line, "detail": r.detail} for r in found])
            state.done += 1
            if record["outcome"] != "OK":
                state.failures += 1
                self.reasons.append(f"CAPTURE_{record['outcome']}")
            self.changed()
        if record["outcome"] == "CONNECTION_LOST":
            raise _HostLost("during capture")


    async def no_capture(self, target: Target, route: _CaptureRoute,
                         options: CaptureOptions) -> None:
        """The record of a capture that could not be taken, saying why and how to get one."""
        state = self.states[target.name]
        record = {"id": "capture", "argv": list(catalogue.capture_argv(options)),
                  "phase": "capture", "daemon": None, "run_as": "user",
                  "outcome": route.outcome, "exit_code": None, "stderr": "",
                  "detail": route.detail, "started": _iso(time.time()), "duration_s": 0.0,
                  "packets": 0, "capture": _capture_options(options), "reached": route.reached}
        if route.debug is not None:
            record["debug_pod"] = dict(route.debug.record)
        await self.writer.set_host(target.name, capture_unavailable=route.detail)
        await self.writer.add_command(target.name, record)
        state.done += 1
        state.failures += 1
        self.reasons.append(f"CAPTURE_{route.outcome}")
        self.changed()


@dataclass
class _CaptureRoute:
    transport: Transport | None
    reached: str
    outcome: str = "OK"
    detail: str | None = None
    debug: DebugPod | None = None


def _capture_options(options: CaptureOptions) -> dict[str, Any]:
    return {"iface": options.iface, "filter": options.bpf_filter,
            "duration_s": options.duration, "max_packets": options.max_packets,
            "max_bytes": options.max_bytes}


def node_targets(discovery: Discovery, targets: tuple[Target, ...]) -> list[Target]:
    """A target per Node, reached through its agent pod; a Node named like an SSH target is
    left to that target."""
    named = {t.name for t in targets}
    return [Target(name=node, address=node, transport="kubectl") for node in discovery.nodes
            if node not in named]


class _HostLost(Exception):
    pass


async def _discover(options: CollectOptions, writer: BundleWriter) -> Discovery | None:
    """The Nodes and their agent pods (``--via kubectl``), recorded in the manifest's ``via``."""
    if options.via is None:
        return None
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="diag-via") as pool:
        found = await loop.run_in_executor(pool, discover, options.via)
    for record in found.commands:
        stderr, _found = redact("stderr", record["stderr"].encode(), options.redact_strings)
        record["stderr"] = stderr.decode(errors="replace")
    skipped = sorted({t.name for t in options.targets} & set(found.nodes))
    writer.set_via(kind="kubectl", kubectl=options.via.kubectl, commands=found.commands,
                   nodes=found.nodes, error=found.error,
                   debug_image=options.via.debug_image,
                   agents={node: pod.record() for node, pod in sorted(found.pods.items())},
                   nodes_reached_by_target=skipped)
    return found


async def collect_async(options: CollectOptions, listener: Listener | None = None) -> RunResult:
    writer = BundleWriter(options.out, run=_run_description(options))
    try:
        discovery = await _discover(options, writer)
    except asyncio.CancelledError:
        _finish(writer, ["INTERRUPTED"], options.archive)
        raise
    run = _Run(options, writer, listener, discovery)
    if discovery is not None and discovery.error:
        run.reasons.append("NODES_UNLISTED")
    tasks = [asyncio.create_task(run.host(t), name=f"collect:{t.name}")
             for t in run.targets]
    stopper = Stopper()
    # the kube part is never cancelled (its thread would go on writing): it is stopped, which
    # kills the kubectl processes still running, and then awaited
    kube = asyncio.create_task(run.kube(options.kube, stopper), name="collect-kube") \
        if options.kube is not None else None
    reasons: list[str] = []
    try:
        done, pending = await asyncio.wait(tasks + ([kube] if kube else []),
                                           timeout=options.deadline) \
            if tasks or kube else (set(), set())
        if pending:
            reasons.append("DEADLINE")
            stopper.stop()
            hosts_pending = [task for task in pending if task is not kube]
            for task in hosts_pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in hosts_pending:
                name = task.get_name().split(":", 1)[1]
                run.states[name].status = "DEADLINE"
                await run.writer.set_host(name, error="global deadline reached", deadline=True)
            if kube in pending:
                await run.writer.set_kube(deadline=True)
            done = done | pending
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # a bug in diag: surface it
    except asyncio.CancelledError:
        stopper.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *([kube] if kube else []), return_exceptions=True)
        run.writer.close()
        _finish(writer, run.reasons + reasons + ["INTERRUPTED"], options.archive)
        raise
    run.writer.close()
    status, archive = _finish(writer, run.reasons + reasons, options.archive)
    return RunResult(bundle=options.out, archive=archive, status=status,
                     partial_reasons=writer.manifest["partial_reasons"],
                     manifest=writer.manifest)


def _finish(writer: BundleWriter, reasons: list[str], archive: bool) -> tuple[str, Path | None]:
    status = writer.finish(reasons)
    return status, (writer.archive() if archive else None)


def _run_description(options: CollectOptions) -> dict[str, Any]:
    capture = options.capture
    return {
        "targets": [t.describe() for t in options.targets],
        "probes": list(options.probes),
        "capture": None if capture is None else {
            "duration_s": capture.duration, "filter": capture.bpf_filter,
            "iface": capture.iface, "max_packets": capture.max_packets,
            "max_bytes": capture.max_bytes},
        "fanout": options.fanout, "per_host": options.per_host,
        "connect_timeout_s": options.ssh.connect_timeout,
        "command_timeout_s": options.command_timeout, "deadline_s": options.deadline,
        "ssh_config": str(options.ssh.config) if options.ssh.config else None,
        "known_hosts": str(options.ssh.known_hosts) if options.ssh.known_hosts else None,
        "accept_new_host_keys": options.ssh.accept_new,
        "redact_strings": len(options.redact_strings),
        "via": None if options.via is None else "kubectl",
        "debug_image": options.via.debug_image if options.via else None,
        "kube": None if options.kube is None else {
            "kubectl": options.kube.kubectl,
            "kubeconfig": str(options.kube.kubeconfig) if options.kube.kubeconfig else None,
            "context": options.kube.context, "timeout_s": options.kube.timeout},
    }


def collect(options: CollectOptions, listener: Listener | None = None) -> RunResult:
    return asyncio.run(collect_async(options, listener))


def plan(options: CollectOptions) -> list[dict[str, Any]]:
    """What would run where (``--dry-run``): nothing is contacted."""
    run = _Run.__new__(_Run)
    run.options = options
    rows = []
    for target in options.targets:
        commands = []
        for spec in run.specs():
            commands.append({"id": spec.id, "argv": list(spec.argv), "when": "always",
                             "wrapped": wrap_argv(spec.argv, run.timeout(spec), sudo=False),
                             "sudo_if_not_root": spec.root})
        if options.base:
            commands.append({"id": f"{catalogue.ETHTOOL_PREFIX}DEV",
                             "argv": ["ethtool", "-k", "DEV"],
                             "when": "for each device of ip-link (at most "
                                     f"{catalogue.MAX_ETHTOOL_DEVICES})",
                             "sudo_if_not_root": False})
            for daemon in ("FRR", "GOBGP", "BIRD", "CILIUM", "CALICO"):
                for spec in catalogue.daemon_commands(daemon, {}):
                    commands.append({"id": spec.id, "argv": list(spec.argv),
                                     "when": f"{daemon} detected", "sudo_if_not_root": spec.root})
        if options.capture is not None:
            commands.append({"id": "capture", "argv": list(catalogue.capture_argv(options.capture)),
                             "when": "all hosts together", "sudo_if_not_root": True})
            for spec in catalogue.after_capture_commands():
                commands.append({"id": spec.id, "argv": list(spec.argv), "when": "after capture",
                                 "sudo_if_not_root": spec.root})
        rows.append({"host": target.name, "target": target.describe(),
                     "transport": target.transport, "commands": commands})
    if options.via is not None:
        rows.append(_plan_via(options, run))
    return rows


def _plan_via(options: CollectOptions, run: _Run) -> dict[str, Any]:
    """The ``--via kubectl`` part of the plan: every Node, through its agent pod."""
    via = options.via
    assert via is not None
    commands = [{"id": "via-nodes", "argv": [via.kubectl, *via.base, "get", "nodes", "-o",
                                             "json"], "when": "first"}]
    commands += [{"id": f"via-pods-{a.cni}", "argv": [via.kubectl, *via.base, "get", "pods",
                                                      "--all-namespaces", "-l", a.selector,
                                                      "-o", "json"], "when": "first"}
                 for a in AGENTS]
    pod = AgentPod("NODE", "NS", "POD", "CONTAINER", "", "")
    exec_prefix = PodTransport(via, pod, "NODE").exec_argv([])
    for spec in run.specs():
        commands.append({"id": spec.id, "argv": [*exec_prefix, *spec.argv], "when": "always"})
    for form in catalogue.CILIUM_FORMS:
        commands.append({"id": "cilium-bgp-peers", "argv": [*exec_prefix, *form.peers],
                         "when": f"cilium-agent pod; form {form.name} (first that works)"})
    for spec in catalogue.daemon_commands("BIRD", dict(CALICO_BIRD)):
        commands.append({"id": spec.id, "argv": [*exec_prefix, *spec.argv],
                         "when": "calico-node pod"})
    if options.capture is not None:
        how = (f"tcpdump in the agent pod, else kubectl debug node/NODE "
               f"--image={via.debug_image}" if via.debug_image
               else "tcpdump in the agent pod when its image has it")
        commands.append({"id": "capture", "argv": [*exec_prefix,
                                                   *catalogue.capture_argv(options.capture)],
                         "when": how})
    return {"host": "every Node", "target": "kubectl exec into its cilium-agent or calico-node "
            "pod", "transport": "kubectl", "commands": commands}

