"""What a fault is, and the few lab operations every fault family shares.

Contract: a :class:`Fault` is a declared record — name, what it breaks, how it is injected, the
expected first finding code, where it applies (cni/mode), its ``level`` (``state``: the daemons or
the kernel changed directly; ``config``: a Kubernetes object edited and the daemons reacting as
the CNI does, with a ``control`` that edits the object only) — plus four callables on a
:class:`~diag.lab.Lab`: ``inject`` (returns a small JSON-able dict recorded in the fault state),
``heal`` (idempotent: correct whether or not the fault is present), and two probes,
``symptom`` and ``healthy``, that look at the live lab (pings, ``ip route get``, daemons' JSON,
tcpdump, counters) and return a list of evidence lines once the state is reached, or ``None`` while
it is not yet. The engine (:mod:`diag.lab.faults`) polls the probes with deadlines.

Roles are derived from the plan, never from literals: ``node`` is the first node (k8s-ctr),
``neighbor`` the other node on its subnet (k8s-w1, the TCP-MD5 peer), ``remote`` the node behind the
router (k8s-w0). Background traffic is started with the lab's spawn API under keys ``fault/...``,
bounded in count and time, and stopped by PID on heal and by ``down``.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from diag.lab import plan as P

if TYPE_CHECKING:
    from diag.lab import Lab

BACKGROUND_PREFIX = "fault/"
ALL = ("cilium", "calico")
BOTH_MODES = ("native", "vxlan")


@dataclass(frozen=True)
class Fault:
    name: str
    breaks: str                 # what it breaks, one line
    injected_by: str            # how it is injected, one line
    first_code: str             # expected first finding code (failure-catalog.md)
    cnis: tuple[str, ...]
    modes: tuple[str, ...]
    inject: Callable[["Lab"], dict]
    heal: Callable[["Lab"], None]
    symptom: Callable[["Lab"], "list[str] | None"]
    healthy: Callable[["Lab"], "list[str] | None"]
    symptom_timeout: float = 30.0
    healthy_timeout: float = 45.0
    # configuration faults (diag.lab.faults.intent): the objects are edited and the daemons
    # react; ``control`` edits the objects only (the daemons left as they are), and
    # ``control_symptom`` sees that the daemons still run the configuration from before
    level: str = "state"                                  # state | config
    control: Callable[["Lab"], dict] | None = None
    control_symptom: Callable[["Lab"], "list[str] | None"] | None = None

    def applies_to(self, cni: str, mode: str) -> bool:
        return cni in self.cnis and mode in self.modes

    @property
    def applies(self) -> str:
        """"all", "cilium", "native", "cilium native", ..."""
        parts = [] if set(self.cnis) == set(ALL) else list(self.cnis)
        parts += [] if set(self.modes) == set(BOTH_MODES) else list(self.modes)
        return " ".join(parts) or "all"


@dataclass(frozen=True)
class Roles:
    node: P.Host        # k8s-ctr: the node most faults act on
    neighbor: P.Host    # k8s-w1: same subnet as node; the TCP-MD5 peer
    remote: P.Host      # k8s-w0: the node behind the router


def roles(lab: "Lab") -> Roles:
    nodes = lab.plan.nodes
    node = nodes[0]
    seg = node.cluster_nic.segment
    neighbor = next(n for n in nodes if n is not node and n.cluster_nic.segment == seg)
    remote = next(n for n in nodes if n.cluster_nic.segment != seg)
    return Roles(node, neighbor, remote)


def lb_ip(lab: "Lab") -> str:
    """The LoadBalancer IP of the ARP faults: .212 of the first node's subnet."""
    seg = lab.plan.segment(roles(lab).node.cluster_nic.segment)
    return str(ipaddress.ip_network(seg.cidr).network_address + 212)


def in_ns(lab: "Lab", host: str, argv: list[str], *, check: bool = False, timeout: float = 15):
    """Run argv in ``host``'s namespace with plain ``ip netns exec`` (no daemon socket mounts)."""
    from diag.lab.system import run

    return run(["ip", "netns", "exec", lab.netns(host), *argv], check=check, timeout=timeout)


def in_pod(lab: "Lab", node: str, argv: list[str], *, check: bool = False, timeout: float = 15):
    from diag.lab.system import run

    return run(["ip", "netns", "exec", lab.hosts[node].pod_netns, *argv], check=check,
               timeout=timeout)


def ip_lines(lab: "Lab", host: str, lines: list[str], *, check: bool = False) -> None:
    """Run ``ip`` commands in ``host``'s namespace one by one (heal steps tolerate "already so")."""
    for line in lines:
        in_ns(lab, host, ["ip", *line.split()], check=check)


def background(lab: "Lab", what: str, host: str, argv: list[str], *, pod: bool = False) -> str:
    """Start bounded background traffic tracked by PID; returns its key."""
    key = f"{BACKGROUND_PREFIX}{what}"
    lab.daemons.stop(key)
    lab.daemons.spawn(key, host, argv, pod=pod)
    return key


def stop_background(lab: "Lab") -> list[str]:
    """Stop every fault background process by PID; return their keys."""
    keys = [p.key for p in lab.state.processes if p.key.startswith(BACKGROUND_PREFIX)]
    for key in keys:
        lab.daemons.stop(key)
    return keys


def bounded_ping(target: str, *, size: int | None = None, df: bool = False) -> list[str]:
    """A ping that ends by itself: at most 600 packets, at most 300 s."""
    argv = ["ping", "-n", "-q", "-c", "600", "-i", "0.5", "-w", "300"]
    if size is not None:
        argv += ["-s", str(size)]
    if df:
        argv += ["-M", "do"]
    return argv + [target]
