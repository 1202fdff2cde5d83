"""A capture from a ``kubectl debug node`` pod, and the pod's removal afterwards.

Contract: :class:`DebugPod` (``async with DebugPod(options, node, lifetime) as pod``) runs
``kubectl debug node/NODE --image=IMAGE --profile=netadmin -- sleep LIFETIME`` (a pod on the node
with the host's network, PID and IPC namespaces and NET_ADMIN/NET_RAW: what tcpdump needs), reads
the pod's name from kubectl's ``Creating debugging pod NAME with container CONTAINER on node
NODE.`` line, waits until the pod is ``Running`` (polling ``kubectl get pod NAME -o json`` with a
deadline) and then offers :meth:`DebugPod.transport`: a
:class:`~diag.collect.pods.PodTransport` into it, so the capture is the same streamed,
bounded tcpdump as over SSH. Leaving the block deletes the pod (``kubectl delete pod NAME
--grace-period=1 --wait=true``) whatever happened: a normal end, a failure, a timeout, or Ctrl-C
(task cancellation; the deletion is shielded from it). :attr:`DebugPod.record` is what the
manifest keeps: name, image, container, when it ran, whether it was deleted, kubectl's stderr
when something failed. A pod that never came up raises :class:`DebugPodError` (after the
deletion).

``sleep LIFETIME`` bounds the pod itself too: a collector killed with SIGKILL, which can clean
nothing, leaves a pod that ends on its own.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

from diag.collect.pods import AgentPod, PodTransport, ViaOptions

START_TIMEOUT = 90.0
DELETE_TIMEOUT = 30.0
POLL = 0.5
_CREATED = re.compile(r"Creating debugging pod (\S+) with container (\S+) on node")


class DebugPodError(Exception):
    pass


async def _kubectl(options: ViaOptions, *args: str, timeout: float) -> tuple[int | None, str, str]:
    argv = [options.kubectl, *options.base, *args]
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(options.env) if options.env is not None else None)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        return None, "", f"kubectl {args[0]} did not finish within {timeout:g}s"
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


class DebugPod:
    def __init__(self, options: ViaOptions, node: str, lifetime: float) -> None:
        assert options.debug_image
        self.options = options
        self.node = node
        self.lifetime = max(30, int(lifetime))
        self.name: str | None = None
        self.container = "debugger"
        self.record: dict[str, Any] = {"image": options.debug_image, "node": node,
                                       "name": None, "deleted": None}

    def transport(self) -> PodTransport:
        assert self.name is not None
        pod = AgentPod(self.node, "", self.name, self.container, "debug", "")
        return _DebugTransport(self.options, pod, self.node)

    async def __aenter__(self) -> DebugPod:   # noqa: PYI034 - not subclassed
        try:
            await self._start()
        except BaseException:
            await self._delete()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._delete()

    async def _start(self) -> None:
        started = time.monotonic()
        rc, out, err = await _kubectl(
            self.options, "debug", f"node/{self.node}", f"--image={self.options.debug_image}",
            "--profile=netadmin", "--", "sleep", str(self.lifetime), timeout=START_TIMEOUT)
        match = _CREATED.search(out) or _CREATED.search(err)
        if match:
            self.name, self.container = match.group(1), match.group(2)
            self.record.update(name=self.name, container=self.container)
        if rc != 0 or self.name is None:
            self.record["stderr"] = err[-2000:]
            raise DebugPodError(f"kubectl debug node/{self.node} failed: "
                                f"{_last_line(err) or f'rc {rc}'}")
        while True:
            rc, out, err = await _kubectl(self.options, "get", "pod", self.name, "-o", "json",
                                          timeout=30)
            phase = None
            if rc == 0:
                try:
                    phase = (json.loads(out).get("status") or {}).get("phase")
                except ValueError:
                    phase = None
            if phase == "Running":
                self.record["running_after_s"] = round(time.monotonic() - started, 3)
                return
            if phase in ("Failed", "Succeeded"):
                raise DebugPodError(f"debug pod {self.name} ended ({phase}) before the capture")
            if time.monotonic() - started > START_TIMEOUT:
                raise DebugPodError(f"debug pod {self.name} not Running after "
                                    f"{START_TIMEOUT:g}s (phase {phase})")
            await asyncio.sleep(POLL)

    async def _delete(self) -> None:
        if self.name is None or self.record.get("deleted"):
            return
        # shielded: Ctrl-C cancels the capture, never the cleanup
        task = asyncio.ensure_future(_kubectl(
            self.options, "delete", "pod", self.name, "--grace-period=1", "--wait=true",
            f"--timeout={DELETE_TIMEOUT:g}s", "--ignore-not-found", timeout=DELETE_TIMEOUT + 5))
        try:
            rc, _out, err = await asyncio.shield(task)
        except asyncio.CancelledError:
            rc, _out, err = await task
            self._deleted(rc, err)
            raise
        self._deleted(rc, err)

    def _deleted(self, rc: int | None, err: str) -> None:
        self.record["deleted"] = rc == 0
        if rc != 0:
            self.record["delete_stderr"] = err[-2000:]


class _DebugTransport(PodTransport):
    """``kubectl exec`` into the debug pod (its namespace: kubectl's current one, as for
    ``kubectl debug`` itself)."""

    reached = "debug-pod"

    def exec_argv(self, argv, stdin: bool = False) -> list[str]:
        assert self.pod is not None
        return [self.options.kubectl, *self.options.base, "exec", *(["-i"] if stdin else []),
                self.pod.name, "-c", self.pod.container, "--", *argv]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
