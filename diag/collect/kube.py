"""The cluster's objects with the user's own kubectl: :func:`collect_kube`.

Contract: ``collect_kube(options, sink) -> KubeRun``. kubectl is the user's
(:attr:`KubeOptions.kubectl`, found on PATH; missing -> :class:`diag.errors.EnvironmentProblem`,
exit 5, with a hint), run with ``--kubeconfig``/``--context`` when given and otherwise with the
environment as it is (``KUBECONFIG``, credential plugins and proxies work exactly as for the
user), and ``--request-timeout`` = :attr:`KubeOptions.timeout`. It runs, as argv lists:

1. ``kubectl version -o json`` (client and server versions, kept as ``kube/kube-version.out``);
2. ``kubectl api-resources -o wide`` (``kube/kube-api-resources.out``) — API discovery decides
   which kinds exist: a kind of :data:`diag.k8s.kinds.KINDS` the cluster does not serve is
   recorded ``NOT_INSTALLED`` (not an error); when discovery itself failed, unlisted kinds are
   ``UNKNOWN`` (discovery incomplete), never guessed from error text;
3. ``kubectl get <resource>.<version>.<group> -o json`` per served kind, in the version discovery
   prefers: all namespaces for namespaced kinds (``-A``), except the ConfigMap ``cilium-config``
   (``-n kube-system``, by name, only when ``cilium.io`` is served) and the Leases of Cilium's L2
   announcements (``-n kube-system``, listed and then filtered to ``cilium-l2announce-*``, only
   when CiliumL2AnnouncementPolicy is served). Calico kinds served both as
   ``projectcalico.org/v3`` and as CRDs are read once, through v3. Secrets are never read (no
   Secret kind is in the catalogue, and nothing here lists arbitrary kinds).

A kind's file holds its objects only for outcome ``OK``; a failed or timed-out get writes no
file (kubectl prints an empty List even then, which must never read as "no objects"), its record
keeps ``stdout_bytes``. Every List is cleaned before it is written: ``metadata.managedFields`` and the
``kubectl.kubernetes.io/last-applied-configuration`` annotation are dropped (counted in the
record), then inline credentials are masked by :func:`diag.collect.redact.redact` (MetalLB
BGPPeer ``password``; the rules and the redaction report are the SSH path's). The output goes
through ``sink`` (a :class:`diag.bundle.BundleWriter` or anything with its ``set_kube``,
``add_kube_output``, ``add_kube_record`` and ``add_redactions``), one record per command with
the SSH path's fields (``argv``, ``outcome``, ``exit_code``, ``stderr``, ``started``,
``duration_s``, ``timeout_s``, ``path``, ``bytes``, ``sha256``) plus, for a kind: ``group``,
``resource``, ``kind``, ``version``, ``namespaced``, ``scope``, ``filter``, ``objects``,
``dropped``, and for a refusal the API's ``status_reason`` (``Forbidden``, ``NotFound``, ...) and
``status_message`` (from kubectl's ``Error from server (<Reason>): <message>`` line).

Outcomes: ``OK``, ``NOT_INSTALLED``, ``SKIPPED`` (not applicable, e.g. cilium-config without
Cilium), ``UNKNOWN`` (discovery incomplete), ``FAILED`` (rc != 0: a 403 or 404 from the API, a
bad kubeconfig, ...), ``TIMEOUT`` (killed at the bound, or a failure after running the whole
bound: kubectl's own request timeout), ``INTERRUPTED`` (ended by a :class:`Stopper`: the
run's deadline or Ctrl-C). :attr:`KubeRun.reasons` holds the bundle's partial reasons:
``KUBE_FAILED``, ``KUBE_TIMEOUT``, ``KUBE_INTERRUPTED``, ``KUBE_DISCOVERY_INCOMPLETE``,
``KUBE_UNREACHABLE`` (discovery gave nothing at all); the caller finishes the bundle ``partial``
(exit 3) when there are any. Commands run ``parallel`` at a time; the sink and ``progress`` are
called from the calling thread only (``diag collect`` runs this in a thread of its own, beside
the hosts, with a sink that hands every write to the bundle's one I/O thread).

:func:`plan_kube` lists what a run would do without contacting anything (``--dry-run``).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from diag.collect.redact import redact
from diag.errors import EnvironmentProblem
from diag.k8s.kinds import KINDS, Kind, split_api_version

STDERR_IN_MANIFEST = 4096
KILL_GRACE = 5.0
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CILIUM_CONFIG = "cilium-config"
L2_LEASE_PREFIX = "cilium-l2announce-"
SYSTEM_NAMESPACE = "kube-system"
KUBECTL_HINT = ("install kubectl (Debian: apt-get install kubernetes-client) or name it with "
                "--kubectl PATH")
_SERVER_ERROR = re.compile(r"Error from server \(([A-Za-z]+)\): ?(.*)")


class KubeSink(Protocol):
    def set_kube(self, **fields: Any) -> None: ...
    def add_kube_output(self, record: dict[str, Any], data: bytes) -> dict[str, Any]: ...
    def add_kube_record(self, record: dict[str, Any]) -> None: ...
    def add_redactions(self, entries: list[dict[str, Any]]) -> None: ...


@dataclass(frozen=True)
class KubeOptions:
    kubectl: str = "kubectl"
    kubeconfig: Path | None = None
    context: str | None = None
    timeout: float = 30.0                      # per command (kubectl --request-timeout too)
    parallel: int = 4
    redact_strings: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None       # kubectl's environment (default: ours)


@dataclass
class KubeRun:
    reasons: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Served:
    """One row of ``kubectl api-resources -o wide``."""

    name: str
    group: str
    version: str
    namespaced: bool
    kind: str
    verbs: tuple[str, ...]


def resolve_kubectl(kubectl: str) -> str:
    """The kubectl binary to run, or EnvironmentProblem (exit 5) with a hint."""
    if os.sep in kubectl:
        if os.path.isfile(kubectl) and os.access(kubectl, os.X_OK):
            return kubectl
        raise EnvironmentProblem(f"kubectl not found or not executable: {kubectl}", KUBECTL_HINT)
    found = shutil.which(kubectl)
    if found is None:
        raise EnvironmentProblem(f"kubectl not found on PATH: {kubectl}", KUBECTL_HINT)
    return found


def parse_api_resources(text: str) -> list[Served]:
    """``kubectl api-resources -o wide``: Go tabwriter columns, cut at the header's positions
    (SHORTNAMES and CATEGORIES may be empty, VERBS holds spaces)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = lines[0]
    names = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND", "VERBS"]
    if not all(re.search(rf"(^|\s){n}(\s|$)", header) for n in names):
        raise ValueError(f"api-resources: unknown header {header.strip()!r}")
    starts = [(m.group(0), m.start()) for m in re.finditer(r"\S+", header)]
    out = []
    for line in lines[1:]:
        cells = {}
        for i, (name, start) in enumerate(starts):
            end = starts[i + 1][1] if i + 1 < len(starts) else None
            cells[name] = line[start:end].strip()
        group, version = split_api_version(cells["APIVERSION"])
        # kubectl prints the verbs as "[get list]" or, since 1.3x, "get,list"
        verbs = tuple(re.split(r"[\s,]+", cells["VERBS"].strip("[] ")))
        out.append(Served(cells["NAME"], group, version, cells["NAMESPACED"] == "true",
                          cells["KIND"], verbs))
    return out


@dataclass(frozen=True)
class Fetch:
    """What to run for one kind, and how to cut its List."""

    kind: Kind
    version: str
    argv: tuple[str, ...]
    scope: str                         # cluster, all-namespaces, namespace kube-system
    name: str | None = None            # a named get
    prefix: str | None = None          # keep items whose name starts with it


def plan_fetches(served: list[Served], base: Sequence[str]) -> tuple[list[Fetch],
                                                                        list[dict[str, Any]]]:
    """Which kinds to get and how, and the records of those not fetched (with outcome)."""
    by_resource = {(s.group, s.name): s for s in served}
    groups = {s.group for s in served}
    fetches: list[Fetch] = []
    skipped: list[dict[str, Any]] = []
    for kind in KINDS:
        found = by_resource.get((kind.group, kind.plural))
        record = _kind_record(kind, found.version if found else None)
        if found is None:
            skipped.append(dict(record, outcome="NOT_INSTALLED", installed=False))
            continue
        record["installed"] = True
        if "list" not in found.verbs and "get" not in found.verbs:
            skipped.append(dict(record, outcome="SKIPPED", detail="the API does not serve list"))
            continue
        if kind.group == "crd.projectcalico.org" and \
                ("projectcalico.org", kind.plural) in by_resource:
            skipped.append(dict(record, outcome="SKIPPED",
                                detail="read through projectcalico.org/v3"))
            continue
        resource = f"{kind.plural}.{found.version}.{kind.group}" if kind.group else kind.plural
        get = [*base, "get", resource, "-o", "json"]
        if kind.group == "" and kind.kind == "ConfigMap":
            if "cilium.io" not in groups:
                skipped.append(dict(record, outcome="SKIPPED",
                                    detail="cilium.io not served: no cilium-config to read"))
                continue
            fetches.append(Fetch(kind, found.version,
                                 (*get, "-n", SYSTEM_NAMESPACE, CILIUM_CONFIG),
                                 f"namespace {SYSTEM_NAMESPACE}", name=CILIUM_CONFIG))
        elif kind.kind == "Lease":
            if ("cilium.io", "ciliuml2announcementpolicies") not in by_resource:
                skipped.append(dict(record, outcome="SKIPPED",
                                    detail="no CiliumL2AnnouncementPolicy kind: no L2 leases"))
                continue
            fetches.append(Fetch(kind, found.version, (*get, "-n", SYSTEM_NAMESPACE),
                                 f"namespace {SYSTEM_NAMESPACE}", prefix=L2_LEASE_PREFIX))
        elif kind.namespaced:
            fetches.append(Fetch(kind, found.version, (*get, "--all-namespaces"),
                                 "all-namespaces"))
        else:
            fetches.append(Fetch(kind, found.version, tuple(get), "cluster"))
    return fetches, skipped


def _kind_record(kind: Kind, version: str | None) -> dict[str, Any]:
    return {"id": f"kube:{kind.group or 'core'}/{kind.plural}", "group": kind.group,
            "resource": kind.plural, "kind": kind.kind, "version": version,
            "namespaced": kind.namespaced}


@dataclass(frozen=True)
class _Ran:
    argv: tuple[str, ...]
    rc: int | None
    stdout: bytes
    stderr: bytes
    started: float
    duration: float
    killed: bool
    interrupted: bool = False          # stopped by the run (deadline, Ctrl-C), not by kubectl


class Stopper:
    """Ends a collection early (the run's deadline, Ctrl-C): kubectl processes still running
    are killed, commands not started yet are not started (both recorded ``INTERRUPTED``)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()

    @property
    def stopped(self) -> bool:
        return self._event.is_set()

    def stop(self) -> None:
        with self._lock:
            self._event.set()
            for proc in self._running:
                proc.kill()

    def started(self, proc: subprocess.Popen) -> bool:
        """Register a running process; False (and killed) when the run was already stopped."""
        with self._lock:
            if self._event.is_set():
                proc.kill()
                return False
            self._running.add(proc)
            return True

    def finished(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._running.discard(proc)


def _run(argv: Sequence[str], timeout: float, env: Mapping[str, str] | None,
         stopper: Stopper | None = None) -> _Ran:
    started, clock = time.time(), time.monotonic()
    if stopper is not None and stopper.stopped:
        return _Ran(tuple(argv), None, b"", b"", started, 0.0, False, interrupted=True)
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                env=dict(env) if env is not None else None)
    except FileNotFoundError:
        raise EnvironmentProblem(f"kubectl not found: {argv[0]}", KUBECTL_HINT) from None
    if stopper is not None:
        stopper.started(proc)
    try:
        stdout, stderr = proc.communicate(timeout=timeout + KILL_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        return _Ran(tuple(argv), None, stdout or b"", stderr or b"", started,
                    time.monotonic() - clock, True)
    finally:
        if stopper is not None:
            stopper.finished(proc)
    interrupted = stopper is not None and stopper.stopped and proc.returncode != 0
    return _Ran(tuple(argv), proc.returncode, stdout, stderr, started,
                time.monotonic() - clock, False, interrupted=interrupted)


def _outcome(ran: _Ran, timeout: float) -> str:
    if ran.interrupted:
        return "INTERRUPTED"
    if ran.killed:
        return "TIMEOUT"
    if ran.rc == 0:
        return "OK"
    # kubectl's own --request-timeout fired: it failed after running the whole bound
    return "TIMEOUT" if ran.duration >= timeout * 0.95 else "FAILED"


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1e6):06d}Z"


def _command_record(ran: _Ran, outcome: str, timeout: float, redact_strings: tuple[str, ...],
                    record_id: str) -> tuple[dict[str, Any], list[Any]]:
    stderr, found = redact(record_id, ran.stderr, redact_strings)
    text = stderr.decode(errors="replace")
    record: dict[str, Any] = {
        "argv": list(ran.argv), "outcome": outcome, "exit_code": ran.rc,
        "stderr": text[:STDERR_IN_MANIFEST], "started": _iso(ran.started),
        "duration_s": round(ran.duration, 4), "timeout_s": timeout}
    match = _SERVER_ERROR.search(text)
    if match and outcome != "OK":
        record["status_reason"], record["status_message"] = match.group(1), match.group(2)
    return record, found


def clean_list(data: bytes, fetch: Fetch) -> tuple[bytes, dict[str, Any]]:
    """The List with managed fields and last-applied annotations dropped and the fetch's
    filter applied; unchanged bytes when they are not a JSON object (the parser reports it)."""
    try:
        document = json.loads(data)
    except ValueError:
        return data, {"not_json": True}
    if not isinstance(document, dict):
        return data, {"not_json": True}
    if fetch.name is not None and document.get("kind") == fetch.kind.kind:
        document = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
                    "items": [document]}     # a named get returns the object alone
    items = document.get("items")
    if not isinstance(items, list):
        return data, {"not_json": False, "objects": None}
    if fetch.prefix is not None:
        items = [i for i in items if isinstance(i, dict) and
                 str((i.get("metadata") or {}).get("name", "")).startswith(fetch.prefix)]
    managed = applied = 0
    for item in items:
        metadata = item.get("metadata") if isinstance(item, dict) else None
        if not isinstance(metadata, dict):
            continue
        if metadata.pop("managedFields", None) is not None:
            managed += 1
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict) and annotations.pop(LAST_APPLIED, None) is not None:
            applied += 1
            if not annotations:
                del metadata["annotations"]
    document["items"] = items
    return (json.dumps(document, indent=1).encode() + b"\n",
            {"objects": len(items), "dropped": {"managedFields": managed,
                                                "last_applied": applied}})


def kubectl_base(options: KubeOptions, kubectl: str) -> list[str]:
    """kubectl and the options every command of a run takes."""
    base = [kubectl]
    if options.kubeconfig is not None:
        base += ["--kubeconfig", str(options.kubeconfig)]
    if options.context:
        base += ["--context", options.context]
    base.append(f"--request-timeout={options.timeout:g}s")
    return base


def plan_kube(options: KubeOptions) -> list[dict[str, Any]]:
    """What a run would do (``diag collect --dry-run``), contacting nothing: kubectl's version
    and discovery, then one get per kind *if discovery lists it* (the version is the one
    discovery prefers; the plan names the resource without one)."""
    base = kubectl_base(options, options.kubectl)
    rows = [{"id": "kube-version", "argv": [*base, "version", "-o", "json"], "when": "always"},
            {"id": "kube-api-resources", "argv": [*base, "api-resources", "-o", "wide"],
             "when": "always"}]
    for kind in KINDS:
        get = [*base, "get", kind.resource, "-o", "json"]
        record = _kind_record(kind, None)
        if kind.group == "" and kind.kind == "ConfigMap":
            argv, when = [*get, "-n", SYSTEM_NAMESPACE, CILIUM_CONFIG], "cilium.io served"
        elif kind.kind == "Lease":
            argv, when = [*get, "-n", SYSTEM_NAMESPACE], \
                f"CiliumL2AnnouncementPolicy served (kept: {L2_LEASE_PREFIX}*)"
        else:
            argv = [*get, "--all-namespaces"] if kind.namespaced else get
            when = "served" if kind.group in ("", "coordination.k8s.io") else \
                f"{kind.group} served"
        rows.append({"id": record["id"], "argv": argv, "when": when})
    return rows


Progress = Callable[[dict[str, Any]], None]


def collect_kube(options: KubeOptions, sink: KubeSink, *, stopper: Stopper | None = None,
                 progress: Progress | None = None) -> KubeRun:
    """Read the cluster (see the module docstring). ``stopper`` ends the run early (commands
    then recorded ``INTERRUPTED``); ``progress`` is called with every record as it is made
    (from this thread), and once with ``{"planned": N}`` when discovery decided the gets."""
    kubectl = resolve_kubectl(options.kubectl)
    base = kubectl_base(options, kubectl)
    env = options.env
    kubeconfig_env = (env if env is not None else os.environ).get("KUBECONFIG")
    sink.set_kube(kubectl=kubectl, kubeconfig=str(options.kubeconfig) if options.kubeconfig
                  else None, kubeconfig_from_env=kubeconfig_env if not options.kubeconfig
                  else None, context=options.context, timeout_s=options.timeout)
    run = KubeRun()

    def done(record: dict[str, Any]) -> None:
        run.records.append(record)
        if record["outcome"] not in ("OK", "NOT_INSTALLED", "SKIPPED", "UNKNOWN"):
            run.reasons.append(f"KUBE_{record['outcome']}")
        if progress is not None:
            progress(record)

    def command(record_id: str, argv: list[str]) -> tuple[_Ran, dict[str, Any]]:
        ran = _run(argv, options.timeout, env, stopper)
        record, found = _command_record(ran, _outcome(ran, options.timeout), options.timeout,
                                        options.redact_strings, record_id)
        record["id"] = record_id
        output, found_out = redact(record_id, ran.stdout, options.redact_strings)
        written = sink.add_kube_output(record, output)
        _report(sink, written, found_out, found)
        run.records.append(written)
        if record["outcome"] == "INTERRUPTED":
            run.reasons.append("KUBE_INTERRUPTED")
        if progress is not None:
            progress(written)
        return ran, written

    version_ran, version = command("kube-version", [*base, "version", "-o", "json"])
    if version["outcome"] == "OK":
        try:
            info = json.loads(version_ran.stdout)
            sink.set_kube(client_version=(info.get("clientVersion") or {}).get("gitVersion"),
                          server_version=(info.get("serverVersion") or {}).get("gitVersion"))
        except (ValueError, AttributeError):
            pass
    discovery_ran, discovery = command("kube-api-resources", [*base, "api-resources", "-o", "wide"])
    try:
        served = parse_api_resources(discovery_ran.stdout.decode(errors="replace"))
    except ValueError as err:
        served = []
        discovery["detail"] = str(err)
    complete = discovery["outcome"] == "OK" and bool(served)
    sink.set_kube(discovery_complete=complete, served_kinds=len(served))
    if not served:
        if discovery["outcome"] != "INTERRUPTED":
            run.reasons.append("KUBE_UNREACHABLE")
        for kind in KINDS:
            record = dict(_kind_record(kind, None), outcome="UNKNOWN", installed=None)
            sink.add_kube_record(record)
            done(record)
        return run
    if not complete:
        run.reasons.append("KUBE_DISCOVERY_INCOMPLETE")
    fetches, skipped = plan_fetches(served, base)
    if progress is not None:
        progress({"planned": len(fetches) + len(skipped)})
    for record in skipped:
        if record["outcome"] == "NOT_INSTALLED" and not complete:
            record.update(outcome="UNKNOWN", installed=None)
        sink.add_kube_record(record)
        done(record)
    with ThreadPoolExecutor(max_workers=max(1, options.parallel)) as pool:
        futures = [(fetch, pool.submit(_run, fetch.argv, options.timeout, env, stopper))
                   for fetch in fetches]
        for fetch, future in futures:
            ran = future.result()
            base_record = _kind_record(fetch.kind, fetch.version)
            outcome = _outcome(ran, options.timeout)
            record, found_err = _command_record(ran, outcome, options.timeout,
                                                options.redact_strings, base_record["id"])
            record = dict(base_record, installed=True, scope=fetch.scope,
                          filter=f"name={fetch.name}" if fetch.name else
                          f"name prefix {fetch.prefix}" if fetch.prefix else None, **record)
            data = ran.stdout
            if outcome == "OK":
                data, extra = clean_list(ran.stdout, fetch)
                record.update(extra)
            if outcome != "OK":
                # kubectl prints an empty List even when it failed: kept out of the bundle so
                # that nothing reads a refusal as "no objects"
                record["stdout_bytes"] = len(ran.stdout)
                sink.add_kube_record(record)
                _report(sink, record, [], found_err)
                done(record)
                continue
            output, found_out = redact(record["id"], data, options.redact_strings)
            if found_out:
                output = json.dumps(json.loads(output), indent=1).encode() + b"\n"
            written = sink.add_kube_output(record, output)
            _report(sink, written, found_out, found_err)
            done(written)
    return run


def _report(sink: KubeSink, record: dict[str, Any], stdout_found: list[Any],
            stderr_found: list[Any]) -> None:
    sink.add_redactions(
        [{"host": None, "command": record["id"], "path": record.get("path"), "stream": "stdout",
          "rule": r.rule, "line": r.line, "detail": r.detail} for r in stdout_found] +
        [{"host": None, "command": record["id"], "path": None, "stream": "stderr",
          "rule": r.rule, "line": r.line, "detail": r.detail} for r in stderr_found])
