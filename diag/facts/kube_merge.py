"""What Kubernetes says, put before what diag inferred; the disagreements kept (pure).

Contract: each function takes the Kubernetes value (an :class:`~diag.facts.model.Inferred` of
source ``kubernetes``, from :mod:`diag.facts.kube_model`) and the inferred one, and returns
the value the model keeps: Kubernetes' when it knows (the inferred source then in ``agrees``
when it gave the same value, else in ``conflicts`` as ``"<source>: <value>"``), else the
inferred value unchanged (inference stays the fallback). Declared values are decided before
these are called and always win.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from diag.facts.kube_model import KubeNode, ref
from diag.facts.model import Inferred, TunnelEndpoint


def _net(text: Any):
    try:
        return ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        return None


def _within(inner: Any, outer: Any) -> bool:
    a, b = _net(inner), _net(outer)
    return bool(a and b and a.version == b.version and a.subnet_of(b))


def over(kube: Inferred, inferred: Inferred, within: bool = False) -> Inferred:
    """Kubernetes' value when known, else the inferred one. ``within``: an inferred prefix
    inside Kubernetes' (a summary of the pod CIDRs inside the pod range) is no conflict."""
    if not kube.known:
        return inferred
    if not inferred.known:
        return kube
    if inferred.value == kube.value:
        return Inferred(kube.value, kube.how, kube.source, (inferred.source,))
    if within and _within(inferred.value, kube.value):
        return kube
    return Inferred(kube.value, kube.how, kube.source, (),
                    (f"{inferred.source}: {inferred.value} ({inferred.how})",))


def node_ip(inferred: Inferred, node: KubeNode, host: str,
            host_of: Callable[[str], str | None]) -> Inferred:
    """The Node's InternalIP (one this host holds, when it has several)."""
    if not node.internal_ips:
        return inferred
    pick = next((ip for ip in node.internal_ips if host_of(ip) == host), node.internal_ips[0])
    field = "status.addresses" if node.kind == "Node" else "spec.addresses"
    kube = Inferred(pick, f"{ref(node.kind, node.name)} {field} InternalIP {pick}",
                    "kubernetes")
    if inferred.known and inferred.value in node.internal_ips:
        return Inferred(pick, kube.how, kube.source, (inferred.source,))
    return over(kube, inferred)


def lb_ips(kube: Inferred, inferred: Inferred) -> Inferred:
    """The Services' ingress IPs; an address inference found that no Service has is a
    conflict (an address answering ARP that Kubernetes did not assign, or a stale one)."""
    if kube.value is None:
        return inferred
    ours = set(kube.value)
    seen = set(inferred.value or ())
    agree = (inferred.source,) if seen and seen <= ours else ()
    conflicts = tuple(f"{inferred.source}: {ip}" for ip in sorted(seen - ours))
    return Inferred(kube.value, kube.how, kube.source, agree, conflicts)


def routing(kube_routing: Inferred, kube_tunnel: Inferred, tunnels: list[TunnelEndpoint],
            observed: list[str]) -> tuple[Inferred, Inferred]:
    """Routing and tunnel from Kubernetes, checked against the overlay devices of the nodes
    whose links were collected (``observed``); from those devices alone when Kubernetes did
    not say."""
    by_host: dict[str, list[TunnelEndpoint]] = {}
    for t in tunnels:
        by_host.setdefault(t.host, []).append(t)
    devices = "; ".join(f"{t.device} ({t.kind} port {t.port}) on {t.host}" for t in tunnels)
    if not kube_routing.known:
        if tunnels:
            first = tunnels[0]
            return (Inferred("tunnel", f"overlay devices: {devices} (ip -d link)", "tunnel"),
                    Inferred({"protocol": first.kind, "port": first.port},
                             f"{first.device} on {first.host} (ip -d link)", "tunnel"))
        why = "no overlay device on the collected nodes (native routing, or not collected)" \
            if observed else kube_routing.how
        return Inferred(None, why), Inferred(None, why)
    conflicts: list[str] = []
    want = kube_tunnel.value if isinstance(kube_tunnel.value, dict) else None
    if want is not None and want["protocol"] not in ("vxlan", "geneve"):
        return kube_routing, kube_tunnel      # IPIP: no overlay device diag reads to check
    if kube_routing.value == "native":
        conflicts += [f"ip -d link: {t.device} ({t.kind}) on {t.host}" for t in tunnels]
    else:
        conflicts += [f"ip -d link: no overlay device on {h}" for h in observed
                      if h not in by_host]
    # the nodes' links agree when they were read and show what the routing mode implies
    routing_agrees = ("ip-link",) if observed and not conflicts and \
        (kube_routing.value == "native" or tunnels) else ()
    routing = Inferred(kube_routing.value, kube_routing.how, kube_routing.source,
                       routing_agrees, tuple(conflicts))
    if want is None:
        return routing, kube_tunnel
    wrong = [f"ip -d link: {t.device} on {t.host} is {t.kind} port {t.port}" for t in tunnels
             if (t.kind, t.port) != (want["protocol"], want["port"]) and
             not (want["port"] is None and t.kind == want["protocol"])]
    agrees = ("ip-link",) if tunnels and not wrong else ()
    return routing, Inferred(want, kube_tunnel.how, kube_tunnel.source, agrees, tuple(wrong))
