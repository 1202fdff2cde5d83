"""ARP faults for a LoadBalancer IP on the node subnet: nobody answers, or two nodes answer.

Contract: :data:`FAULTS` as in :mod:`diag.lab.faults.base`. The LoadBalancer IP is .212 of the
first node's subnet (:func:`~diag.lab.faults.base.lb_ip`), the ingress IP of the lab's
LoadBalancer Service. "Announcing" it is what an L2 announcer (Cilium L2 announcements, MetalLB
L2) achieves: a node answers ARP for it — here by holding it as a /32 on its cluster NIC. The
healthy state of both faults is therefore "exactly one node answers": on cilium the holder of the
L2 announcement's Lease, which a fresh lab already announces
(:meth:`~diag.lab.cluster.LabCluster.announce`, what ``heal`` calls), on calico k8s-w1 (a fresh
calico lab announces nothing). Evidence: arping from the router (replies and their MACs), the router's neighbor table.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from diag.lab.faults import probes
from diag.lab.faults.base import (ALL, BOTH_MODES, Fault, background, in_ns, ip_lines, lb_ip,
                                  roles)

if TYPE_CHECKING:
    from diag.lab import Lab


def _router_iface(lab: "Lab") -> str:
    return lab.plan.router_nic_for(roles(lab).node).name


def _announce(lab: "Lab", node: str, on: bool) -> None:
    iface = lab.plan.host(node).cluster_nic.name
    verb = "replace" if on else "del"
    ip_lines(lab, node, [f"addr {verb} {lb_ip(lab)}/32 dev {iface}"])


def _macs(lab: "Lab", count: int = 2) -> list[str]:
    return probes.arping_macs(lab, lab.plan.router.name, _router_iface(lab), lb_ip(lab),
                              count=count)


def _lb_arping(lab: "Lab") -> list[str]:
    """The router asking for the LoadBalancer IP: 4 requests a second, so that even a short
    capture (`diag collect --capture 3s`) holds several; bounded (1200 requests, 300 s)."""
    return ["arping", "-q", "-c", "1200", "-W", "0.25", "-w", "300", "-i", _router_iface(lab),
            lb_ip(lab)]


# --- arp-unanswered -----------------------------------------------------------------------------

def _unanswered_inject(lab: "Lab") -> dict:
    for node in lab.plan.nodes:
        _announce(lab, node.name, False)
    # forget a previous announcer now rather than after the entry's reachable time (15-45 s)
    ip_lines(lab, lab.plan.router.name, [f"neigh del {lb_ip(lab)} dev {_router_iface(lab)}"])
    # the router keeps asking (bounded arping: a ping gives up after a few unreachable errors)
    background(lab, "lb-arping", lab.plan.router.name,
               _lb_arping(lab))
    return {"lb_ip": lb_ip(lab)}


def _announcer(lab: "Lab"):
    """The node that answers for the LoadBalancer IP when healthy: on cilium the holder of the
    L2 announcement's Lease (k8s-w1 unless someone moved it), else k8s-w1."""
    holder = lab.cluster.l2_holder() if lab.cni == "cilium" else None
    names = {n.name for n in lab.plan.nodes}
    return lab.plan.host(holder) if holder in names else roles(lab).neighbor


def _one_announcer_heal(lab: "Lab") -> None:
    if lab.cni == "cilium":
        lab.cluster.announce()          # the Lease's holder, on the policy's interfaces
        return
    holder = _announcer(lab)
    _announce(lab, holder.name, True)
    for node in lab.plan.nodes:
        if node is not holder:
            _announce(lab, node.name, False)


def _unanswered_symptom(lab: "Lab") -> list[str] | None:
    router, ip = lab.plan.router.name, lb_ip(lab)
    if _macs(lab, count=1):
        return None
    # traffic to the IP: the router's kernel resolves it too, and fails
    in_ns(lab, router, ["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", "-w", "1", ip])
    states = probes.neigh_state(lab, router, ip)
    if not {"INCOMPLETE", "FAILED"} & set(states):
        return None
    return [f"router: arping {ip} on {_router_iface(lab)}: no reply",
            f"router: neighbor {ip} is {'/'.join(states)} (traffic to it makes its kernel ask, unanswered)"]


def _one_announcer_healthy(lab: "Lab") -> list[str] | None:
    holder = _announcer(lab)
    macs = set(_macs(lab, count=1))
    want = probes.link_mac(lab, holder.name, holder.cluster_nic.name)
    if macs != {want}:
        return None
    return [f"router: arping {lb_ip(lab)} answered by exactly one MAC, {want} "
            f"({holder.name})"]


# --- arp-multiple-responders --------------------------------------------------------------------

def _multi_inject(lab: "Lab") -> dict:
    r = roles(lab)
    _announce(lab, r.neighbor.name, True)
    _announce(lab, r.node.name, True)
    background(lab, "lb-arping", lab.plan.router.name,
               _lb_arping(lab))
    return {"lb_ip": lb_ip(lab), "responders": [r.node.name, r.neighbor.name]}


def _multi_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    macs = set(_macs(lab))
    want = {probes.link_mac(lab, n.name, n.cluster_nic.name) for n in (r.node, r.neighbor)}
    if macs != want:
        return None
    return [f"router: arping {lb_ip(lab)} answered by {len(macs)} MACs: {', '.join(sorted(macs))} "
            f"({r.node.name} and {r.neighbor.name})"]


FAULTS = [
    Fault("arp-unanswered",
          "the LoadBalancer IP (nobody answers ARP for it)",
          "the router keeps asking for .212 of the node subnet (bounded arping, and its kernel "
          "when traffic goes there) and no node holds "
          "it; heal = k8s-w1 answers, like an L2 announcement",
          "ARP_UNANSWERED", ALL, BOTH_MODES,
          _unanswered_inject, _one_announcer_heal, _unanswered_symptom, _one_announcer_healthy),
    Fault("arp-multiple-responders",
          "the LoadBalancer IP (two MACs answer; traffic flips between nodes)",
          "k8s-ctr and k8s-w1 both answer ARP for .212 (bounded arping from the router); heal "
          "= only k8s-w1 answers",
          "ARP_MULTIPLE_RESPONDERS", ALL, BOTH_MODES,
          _multi_inject, _one_announcer_heal, _multi_symptom, _one_announcer_healthy),
]
