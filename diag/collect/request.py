"""What the user asked ``diag collect`` for, and the checked options the collector runs with.

Contract: :class:`CollectRequest` holds the command line's values as given (strings for
durations and sizes, paths, lists); :func:`options_from(request) -> CollectOptions` parses
durations (``10``, ``10s``, ``2m``) and sizes (``100M``), validates every value that will reach a
remote command line (:mod:`diag.collect.catalogue`), loads the inventory and raises
:class:`diag.errors.UsageError` with one line for anything wrong, before any host is contacted.
``kube=True`` (``--kube``) adds the cluster's objects (:mod:`diag.collect.kube`) and may stand
alone, without hosts; kubectl is looked up then (missing: exit 5 with a hint). ``via="kubectl"``
(``--via kubectl``, needs ``--kube``) makes every Node a host reached through its CNI agent pod
(:mod:`diag.collect.pods`) with the same kubectl, kubeconfig and context; ``debug_image``
(``--debug-image``) lets captures on such nodes run from a ``kubectl debug node`` pod.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from diag.errors import UsageError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_SIZE = re.compile(r"^(\d+)([KMG]i?B?|B)?$", re.IGNORECASE)
FORMATS = ("text", "json")


@dataclass(frozen=True)
class CollectRequest:
    targets: tuple[str, ...] = ()
    inventory: Path | None = None
    out: Path | None = None
    archive: bool = False
    ssh_config: Path | None = None
    identity: tuple[Path, ...] = ()
    known_hosts: Path | None = None
    accept_new_host_keys: bool = False
    probe: tuple[str, ...] = ()
    capture: str | None = None
    bpf_filter: str = ""
    iface: str = "any"
    max_packets: int = 100000
    max_bytes: str = "200M"
    fanout: int = 16
    connect_timeout: str = "10s"
    command_timeout: str | None = None
    deadline: str = "15m"
    redact_string: tuple[str, ...] = field(default=(), repr=False)   # secrets: never shown
    kube: bool = False                       # read the cluster's objects with kubectl
    kubectl: str = "kubectl"
    kubeconfig: Path | None = None           # None: kubectl's own choice (KUBECONFIG, ~/.kube)
    context: str | None = None
    via: str | None = None                   # "kubectl": Nodes through their agent pods
    debug_image: str | None = None           # captures from `kubectl debug node` pods


VIAS = ("kubectl",)
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")


def parse_duration(text: str, option: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise UsageError(f"{option} {text!r}: expected a duration like 30, 30s, 2m")
    value = float(match.group(1))
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


def parse_size(text: str, option: str) -> int:
    match = _SIZE.match(text.strip())
    if not match:
        raise UsageError(f"{option} {text!r}: expected a size like 1048576, 100M, 1G")
    unit = (match.group(2) or "B").upper()[:1]
    return int(match.group(1)) * {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[unit]


def options_from(request: CollectRequest):
    """The :class:`diag.collect.runner.CollectOptions` of a request (see the module docstring)."""
    from diag.collect import catalogue
    from diag.collect.runner import CollectOptions
    from diag.collect.ssh import SshOptions
    from diag.collect.targets import load_inventory, parse_target

    hosts = load_inventory(request.inventory) if request.inventory else []
    hosts += [parse_target(t) for t in request.targets]
    if request.via is not None and request.via not in VIAS:
        raise UsageError(f"--via {request.via!r}: expected kubectl")
    if request.via is not None and not request.kube:
        raise UsageError("--via kubectl reaches the Nodes through the cluster",
                         "add --kube (and --kubeconfig/--context as needed)")
    if request.debug_image is not None and (request.via is None or
                                            not _IMAGE.match(request.debug_image)):
        raise UsageError(f"--debug-image {request.debug_image!r}: expected an image reference, "
                         "with --via kubectl")
    if not hosts and not request.kube:
        raise UsageError("no targets", "name hosts as [user@]host[:port], 'local', or "
                         "--inventory; or read the cluster with --kube")
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        raise UsageError("a host is named twice")
    for path, option in ((request.ssh_config, "--ssh-config"),
                         *((p, "--identity") for p in request.identity)):
        if path is not None and not Path(path).is_file():
            raise UsageError(f"{option} {path}: no such file")
    if request.fanout < 1:
        raise UsageError("--fanout must be at least 1")
    if request.capture is not None and not hosts and request.via is None:
        raise UsageError("--capture needs hosts to capture on",
                         "name SSH targets or 'local', or reach the Nodes with --via kubectl")
    command_timeout = parse_duration(request.command_timeout, "--command-timeout") \
        if request.command_timeout else None
    kube = _kube_options(request, command_timeout) if request.kube else None
    capture = None
    if request.capture is not None:
        capture = catalogue.validate_capture(catalogue.CaptureOptions(
            duration=parse_duration(request.capture, "--capture"),
            bpf_filter=request.bpf_filter, iface=request.iface,
            max_packets=request.max_packets,
            max_bytes=parse_size(request.max_bytes, "--max-bytes")))
    return CollectOptions(
        targets=tuple(hosts),
        out=request.out or Path(time.strftime("diag-bundle-%Y%m%d-%H%M%S")),
        ssh=SshOptions(config=request.ssh_config, identities=tuple(request.identity),
                       known_hosts=request.known_hosts, accept_new=request.accept_new_host_keys,
                       connect_timeout=parse_duration(request.connect_timeout,
                                                      "--connect-timeout")),
        probes=tuple(dict.fromkeys(catalogue.validate_probe(p) for p in request.probe)),
        capture=capture, fanout=request.fanout,
        command_timeout=command_timeout,
        deadline=parse_duration(request.deadline, "--deadline"), archive=request.archive,
        redact_strings=tuple(request.redact_string), kube=kube,
        via=_via_options(request, kube) if request.via else None)


def _via_options(request: CollectRequest, kube):
    """``--via kubectl``: the same kubectl, kubeconfig and context as ``--kube``."""
    from diag.collect.kube import kubectl_base, resolve_kubectl
    from diag.collect.pods import ViaOptions

    kubectl = resolve_kubectl(kube.kubectl)
    base = kubectl_base(kube, kubectl)[1:-1]        # without kubectl and --request-timeout
    return ViaOptions(kubectl=kubectl, base=tuple(base), timeout=kube.timeout,
                      env=kube.env, debug_image=request.debug_image)


def _kube_options(request: CollectRequest, command_timeout: float | None):
    """The kubectl run of ``--kube``: kubectl found now (missing: exit 5 with a hint), before
    anything is contacted."""
    from diag.collect.kube import KubeOptions, resolve_kubectl

    if request.kubeconfig is not None and not Path(request.kubeconfig).is_file():
        raise UsageError(f"--kubeconfig {request.kubeconfig}: no such file")
    if request.context is not None and not request.context.strip():
        raise UsageError("--context: empty context name")
    resolve_kubectl(request.kubectl)
    defaults = KubeOptions()
    return KubeOptions(kubectl=request.kubectl, kubeconfig=request.kubeconfig,
                       context=request.context,
                       timeout=command_timeout or defaults.timeout,
                       redact_strings=tuple(request.redact_string))
