"""Hosts reached through the CNI's agent pods (``diag collect --kube --via kubectl``).

Contract: :func:`discover(options) -> Discovery` lists the cluster's Nodes and the CNI agent
pods (:data:`AGENTS`: Cilium's ``k8s-app=cilium`` pods, container ``cilium-agent``; Calico's
``k8s-app=calico-node`` pods, container ``calico-node``) with the user's kubectl, and keeps of
each pod only what reaching it needs (namespace, name, node, container, image, phase): pod
objects are never stored (their specs may hold credentials in environment values). Every Node
becomes a host; :class:`PodTransport` reaches it with ``kubectl exec -n NS POD -c CONTAINER --
ARGV...`` — a :class:`~diag.collect.transport.Transport` like SSH, so the catalogue, caps,
timeouts, redaction and manifest are the same. The argv goes to the API as a list (the exec
request's ``command`` parameters) and the container runtime executes it without a shell, so no
element can become shell syntax; kubectl itself is started without a shell too.

Agents run with the host's network namespace, so ``ip``, ``ss`` and ``nstat`` inside them show
the node's own state. What differs from SSH, and how it is recorded:

- no ``sudo`` (agents run as root; a pod has none); ``reached`` is ``pod`` on every command;
- a tool the image lacks is ``MISSING`` for that command (rc 127), never a failed node: kubectl
  reports it as the runtime's ``executable file not found in $PATH`` (containerd, exit 1 or
  126) or as ``env``'s ``No such file or directory`` (127) — :func:`missing_tool` reads both;
- an image without ``timeout`` (coreutils) still runs commands, bounded by the collector only
  (``remote_timeout: false`` in the host record);
- connecting fails as ``NO_AGENT_POD`` (no agent pod on the node), ``FORBIDDEN`` (RBAC refuses
  ``pods/exec``), ``NOT_FOUND`` (the pod or container is gone), ``UNREACHABLE`` (no API
  server), ``ERROR`` (anything else), with kubectl's own message.

RBAC needed on top of ``--kube``'s: ``list`` on pods (the agents' namespaces) and ``create`` on
``pods/exec``; for ``--debug-image`` captures also ``create``/``get``/``delete`` on pods (see
:mod:`diag.collect.debugpod`).
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from diag.collect.transport import (
    MISSING_RC,
    ProcessHandle,
    Transport,
    TransportError,
    local_process,
    wrap_argv,
)

DISCOVERY_TIMEOUT = 30.0
STDERR_KEEP = 4096


@dataclass(frozen=True)
class Agent:
    """One CNI's agent DaemonSet: how its pods are found and which container has the tools."""

    cni: str
    selector: str
    container: str
    daemon: str                 # the catalogue daemon it runs: CILIUM, BIRD (Calico's BIRD)


AGENTS: tuple[Agent, ...] = (
    Agent("cilium", "k8s-app=cilium", "cilium-agent", "CILIUM"),
    Agent("calico", "k8s-app=calico-node", "calico-node", "BIRD"),
)

# Calico's BIRD: its socket in calico-node, and its client there (calico-node ships birdcl)
CALICO_BIRD = {"socket": "/var/run/calico/bird.ctl", "client": "birdcl"}
CALICO_BIRD6_SOCKET = "/var/run/calico/bird6.ctl"


@dataclass(frozen=True)
class AgentPod:
    node: str
    namespace: str
    name: str
    container: str
    cni: str
    daemon: str
    image: str | None = None
    phase: str | None = None

    def describe(self) -> str:
        return f"pod {self.namespace}/{self.name} ({self.container})"

    def record(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "container": self.container,
                "cni": self.cni, "image": self.image, "phase": self.phase}


@dataclass(frozen=True)
class ViaOptions:
    """How ``--via kubectl`` runs kubectl (the ``--kube`` options' kubectl and kubeconfig)."""

    kubectl: str = "kubectl"
    base: tuple[str, ...] = ()            # --kubeconfig K --context C, as for --kube
    timeout: float = DISCOVERY_TIMEOUT
    env: Mapping[str, str] | None = None
    debug_image: str | None = None        # --debug-image: captures from a debug pod


@dataclass
class Discovery:
    nodes: list[str] = field(default_factory=list)
    pods: dict[str, AgentPod] = field(default_factory=dict)   # node -> its agent pod
    commands: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None              # the nodes could not be listed at all


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1e6):06d}Z"


def _get(options: ViaOptions, record_id: str, args: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """One ``kubectl get ... -o json``: (document or None, its manifest record). The output is
    not kept in the bundle; the record says what ran and how it ended."""
    argv = [options.kubectl, *options.base, f"--request-timeout={options.timeout:g}s", *args]
    started, clock = time.time(), time.monotonic()
    try:
        done = subprocess.run(argv, check=False, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=options.timeout + 5,
                              env=dict(options.env) if options.env is not None else None)
        rc, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as timed_out:
        rc, out, err = None, b"", (timed_out.stderr or b"")
    except OSError as error:
        rc, out, err = None, b"", str(error).encode()
    record = {"id": record_id, "argv": argv, "exit_code": rc,
              "outcome": "OK" if rc == 0 else ("TIMEOUT" if rc is None else "FAILED"),
              "stderr": err.decode(errors="replace")[:STDERR_KEEP], "started": _iso(started),
              "duration_s": round(time.monotonic() - clock, 4), "timeout_s": options.timeout}
    document = None
    if rc == 0:
        try:
            document = json.loads(out)
        except ValueError:
            record.update(outcome="FAILED", detail="not JSON")
    return document, record


def _items(document: Any) -> list[dict[str, Any]]:
    items = document.get("items") if isinstance(document, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def agent_pods(document: Any, agent: Agent) -> list[AgentPod]:
    """The agent pods of a ``kubectl get pods -o json`` List: scheduled, not being deleted."""
    pods = []
    for item in _items(document):
        meta, spec = item.get("metadata") or {}, item.get("spec") or {}
        status = item.get("status") or {}
        node = spec.get("nodeName")
        if not node or meta.get("deletionTimestamp") or not meta.get("name"):
            continue
        containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
        names = [c.get("name") for c in containers]
        container = agent.container if agent.container in names else (names[0] if names
                                                                       else agent.container)
        image = next((c.get("image") for c in containers if c.get("name") == container), None)
        pods.append(AgentPod(str(node), str(meta.get("namespace") or "default"),
                             str(meta["name"]), str(container), agent.cni, agent.daemon,
                             image, status.get("phase")))
    return pods


def discover(options: ViaOptions) -> Discovery:
    """The Nodes and, per node, the agent pod to reach it through (a Running one first)."""
    found = Discovery()
    nodes, record = _get(options, "via-nodes", ["get", "nodes", "-o", "json"])
    found.commands.append(record)
    if nodes is None:
        found.error = f"cannot list Nodes: {_first_line(record['stderr']) or record['outcome']}"
        return found
    found.nodes = sorted({str((i.get("metadata") or {}).get("name")) for i in _items(nodes)
                          if (i.get("metadata") or {}).get("name")})
    for agent in AGENTS:
        document, record = _get(options, f"via-pods-{agent.cni}",
                                ["get", "pods", "--all-namespaces", "-l", agent.selector,
                                 "-o", "json"])
        found.commands.append(record)
        for pod in agent_pods(document, agent):
            current = found.pods.get(pod.node)
            if current is None or (current.phase != "Running" and pod.phase == "Running"):
                found.pods[pod.node] = pod
    return found


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


_RUNTIME_MISSING = re.compile(r"executable file not found in \$PATH|"
                              r"exec: \S+: stat \S+: no such file or directory", re.IGNORECASE)
# env's quotes are the locale's: '...' in C, ‘...’ in UTF-8 locales
_ENV_MISSING = re.compile(r"^(?:env|timeout): ['‘]?[^:'‘’]+['’]?: No such file or directory",
                          re.MULTILINE)


def missing_tool(rc: int | None, stderr: bytes | str) -> bool:
    """Did the command fail because the image has no such program? (see the module docstring)"""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    if rc in (None, 0):
        return False
    return bool(_RUNTIME_MISSING.search(text)) or (rc == MISSING_RC and
                                                    bool(_ENV_MISSING.search(text)))


_SERVER_ERROR = re.compile(r"Error from server \((\w+)\)")


def connect_failure(stderr: str) -> str:
    """The host-level failure kind of a kubectl exec that could not run anything."""
    match = _SERVER_ERROR.search(stderr)
    if match and match.group(1) == "Forbidden":
        return "FORBIDDEN"
    if (match and match.group(1) == "NotFound") or "container not found" in stderr:
        return "NOT_FOUND"
    if "Unable to connect to the server" in stderr or "connection refused" in stderr:
        return "UNREACHABLE"
    return "ERROR"


class PodTransport(Transport):
    """Commands on one node through ``kubectl exec`` into a pod on it (see the module)."""

    name = "kubectl"
    reached = "pod"

    def __init__(self, options: ViaOptions, pod: AgentPod | None, node: str) -> None:
        super().__init__()
        self.options = options
        self.pod = pod
        self.node = node
        self.remote_timeout = True       # False: the image has no `timeout`

    @property
    def needs_sudo(self) -> bool:
        return False

    def wrap(self, argv: Sequence[str], timeout: float, sudo: bool) -> list[str]:
        if self.remote_timeout:
            return wrap_argv(argv, timeout, sudo=False)
        return ["env", "LC_ALL=C", *argv]

    def exec_argv(self, argv: Sequence[str], stdin: bool = False) -> list[str]:
        assert self.pod is not None
        return [self.options.kubectl, *self.options.base, "exec", *(["-i"] if stdin else []),
                "-n", self.pod.namespace, self.pod.name, "-c", self.pod.container, "--",
                *argv]

    async def connect(self) -> None:
        if self.pod is None:
            raise TransportError("NO_AGENT_POD", f"no CNI agent pod on node {self.node} "
                                 "(looked for " + ", ".join(a.selector for a in AGENTS) + ")")
        probe = await self.run(["id", "-u"], timeout=self.options.timeout, cap=64)
        if probe.rc != 0 and missing_tool(probe.rc, probe.stderr) and \
                b"timeout" in probe.stderr:
            self.remote_timeout = False   # an image without coreutils' timeout
            probe = await self.run(["id", "-u"], timeout=self.options.timeout, cap=64)
        if probe.rc != 0:
            text = probe.stderr.decode(errors="replace")
            kind = "CONNECT_TIMEOUT" if probe.timed_out else connect_failure(text)
            raise TransportError(kind, _first_line(text) or f"kubectl exec into "
                                 f"{self.pod.describe()} failed (rc {probe.rc})")
        try:
            self.uid = int(probe.stdout.strip())
        except ValueError:
            self.uid = None

    async def _spawn(self, argv: list[str], stdin: bool = False) -> ProcessHandle:
        # the runtime's word for a missing program becomes the shell's: rc 127
        return await local_process(
            self.exec_argv(argv, stdin), stdin,
            env=dict(self.options.env) if self.options.env is not None else None,
            exit_code=lambda rc, stderr: MISSING_RC if missing_tool(rc, stderr) else rc)
