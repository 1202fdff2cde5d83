"""Configuration faults: a Kubernetes object edited the way a person would, and the daemons
reacting the way the CNI does (Cilium's operator and agents, calico-node's BIRD and Felix).

Contract: :data:`FAULTS` as in :mod:`diag.lab.faults.base`, each of ``level`` ``config``. Every
fault is the one edit of the lab's objects (:meth:`~diag.lab.cluster.LabCluster.edit_objects`,
after a :meth:`~diag.lab.cluster.LabCluster.snapshot` of them in ``RUN/kube/fault-objects``)
and the CNI's reaction (:meth:`~diag.lab.cluster.LabCluster.reconcile`, or a part of it: one
agent restarted, a stale announcer left behind); heal puts the snapshot back and reconciles.
Each fault's ``control`` makes the same edit and leaves the daemons alone (``diag lab fault NAME
--objects-only``), and its ``control_symptom`` checks, with live probes, that the daemons still
run the configuration from before — the control run of the tests: a finding must come from
the state, never from the objects alone.

Symptoms are the daemons' own (FRR's JSON, GoBGP's RIB, BIRD's table), the kernel's (``ip route
get``, ``ip -d link``), the API's objects (a Service's status) and the wire (arping from the
router, pod pings, the sink's tcpdump). Background traffic (bounded arping from the router for
the L2 faults, a bounded pod ping for the routing ones) makes the symptom visible in captures.
"""
from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import TYPE_CHECKING

from diag.lab import plan as P
from diag.lab.faults import probes
from diag.lab.faults.arp import _lb_arping, _macs
from diag.lab.faults.base import (Fault, background, bounded_ping, ip_lines, lb_ip, roles)
from diag.lab.faults.bgp import _badas_symptom, _session_back, _wrong_as
from diag.lab.faults.routing import _delivers, _leak, _restore_pod_range

if TYPE_CHECKING:
    from diag.lab import Lab

SNAPSHOT = "fault-objects"
ZONE = "topology.kubernetes.io/zone"
CILIUM = ("cilium",)
CALICO = ("calico",)
MODES = ("native", "vxlan")
NEW_SERVICE = ("default", "webpod-admin")
WRONG_INTERFACES = ["^ens[0-9]+"]


def _snapshot_dir(lab: "Lab"):
    return lab.cluster.dir / SNAPSHOT


def _objects_in(files: dict[str, list[dict]], kind: str, name: str | None = None):
    return [o for items in files.values() for o in items if o.get("kind") == kind
            and (name is None or o["metadata"]["name"] == name)]


def _edit(lab: "Lab", change: Callable[[dict[str, list[dict]]], None]) -> list[str]:
    lab.cluster.snapshot(_snapshot_dir(lab))
    return lab.cluster.edit_objects(change)


def _restore(lab: "Lab") -> None:
    lab.cluster.restore(_snapshot_dir(lab))
    lab.cluster.reconcile()


def _edited(lab: "Lab") -> bool:
    return _snapshot_dir(lab).exists()


def _control_probe(probe: Callable[["Lab"], "list[str] | None"]):
    """The control run's symptom: the objects carry the edit and ``probe`` (the daemons'
    state from before) still holds."""
    def check(lab: "Lab") -> list[str] | None:
        if not _edited(lab):
            return None
        seen = probe(lab)
        return None if seen is None else ["the objects carry the edit; the daemons were left "
                                          "alone (control run)"] + seen
    return check


def _config_fault(name: str, breaks: str, injected_by: str, first_code: str,
                  cnis: tuple[str, ...], modes: tuple[str, ...],
                  edit: Callable[["Lab", dict], None], react: Callable[["Lab"], None],
                  symptom, healthy, *, before_heal: Callable[["Lab"], None] | None = None,
                  after_heal: Callable[["Lab"], None] | None = None,
                  traffic: Callable[["Lab"], None] | None = None,
                  control_probe=None, symptom_timeout: float = 30.0) -> Fault:
    def inject(lab: "Lab") -> dict:
        written = _edit(lab, lambda files: edit(lab, files))
        react(lab)
        if traffic:
            traffic(lab)
        return {"edited": written}

    def control(lab: "Lab") -> dict:
        written = _edit(lab, lambda files: edit(lab, files))
        if traffic:
            traffic(lab)
        return {"edited": written, "objects_only": True}

    def heal(lab: "Lab") -> None:
        if before_heal:
            before_heal(lab)
        _restore(lab)
        if after_heal:
            after_heal(lab)

    return Fault(name, breaks, injected_by, first_code, cnis, modes, inject, heal, symptom,
                 healthy, symptom_timeout=symptom_timeout, healthy_timeout=60.0,
                 level="config", control=control,
                 control_symptom=_control_probe(control_probe or healthy))


# --- cilium BGP ---------------------------------------------------------------------------------

def _relabel_advertisement(lab: "Lab", files: dict) -> None:
    for advert in _objects_in(files, "CiliumBGPAdvertisement"):
        advert["metadata"]["labels"] = {"advertise": "pod-cidr"}


def _reconcile(lab: "Lab") -> None:
    lab.cluster.reconcile()


def _nothing_advertised(lab: "Lab") -> list[str] | None:
    if not probes.all_established(lab):
        return None
    held = {n.name: probes.node_bgp_prefixes(lab, n.name) for n in lab.plan.nodes}
    routes = probes.routes(lab, lab.plan.router.name, "proto", "bgp")
    originated = {n.name: lab.daemons.gobgp_originated(n.name) for n in lab.plan.nodes}
    if any(held.values()) or routes or any(originated.values()):
        return None
    return ["every session Established (FRR and GoBGP)",
            "router: no BGP route in its kernel; no node holds another node's pod CIDR",
            "GoBGP originates nothing on any node: the PeerConfigs' advertisements selector "
            "matches no CiliumBGPAdvertisement"]


def _cluster_config_of(files: dict, node: P.Host) -> dict:
    name = f"cilium-bgp-{node.cluster_nic.segment}"
    return _objects_in(files, "CiliumBGPClusterConfig", name)[0]


def _peer_asn_typo(lab: "Lab", files: dict) -> None:
    config = _cluster_config_of(files, roles(lab).node)
    config["spec"]["bgpInstances"][0]["peers"][0]["peerASN"] = _wrong_as(lab)


def _region_selector(lab: "Lab", files: dict) -> None:
    config = _cluster_config_of(files, roles(lab).remote)
    labels = config["spec"]["nodeSelector"]["matchLabels"]
    labels["topology.kubernetes.io/region"] = labels.pop(ZONE)


def _not_selected_symptom(lab: "Lab") -> list[str] | None:
    remote = roles(lab).remote
    if lab.daemons.is_running(f"{remote.name}/gobgpd"):
        return None
    router_view = probes.frr_neighbor(lab, remote.ip).get("bgpState", "missing")
    routes = {r.get("dst") for r in probes.routes(lab, lab.plan.router.name, "proto", "bgp")}
    if router_view == "Established" or remote.pod_cidr in routes:
        return None
    return [f"{remote.name}: no CiliumBGPClusterConfig selects it: its CiliumBGPNodeConfig is "
            "gone and its BGP speaker stopped",
            f"router: session to {remote.name} {router_view}; no route to {remote.pod_cidr}"]


# --- LB-IPAM and L2 announcements -----------------------------------------------------------

def _add_service(lab: "Lab", files: dict) -> None:
    namespace, name = NEW_SERVICE
    files.setdefault("lb", []).append({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "webpod"},
                     "creationTimestamp": _now()},
        "spec": {"type": "LoadBalancer", "selector": {"app": "webpod"},
                 "ports": [{"port": 8080, "protocol": "TCP", "targetPort": 8080}],
                 "clusterIP": "10.96.0.81", "clusterIPs": ["10.96.0.81"],
                 "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"},
        # what the API server answers for a new Service, before any LB-IPAM has seen it
        "status": {"loadBalancer": {}}})


def _new_service(lab: "Lab") -> dict | None:
    namespace, name = NEW_SERVICE
    found = [o for o in _objects_in(lab.cluster.files(), "Service", name)
             if o["metadata"].get("namespace") == namespace]
    return found[0] if found else None


def _pending_symptom(lab: "Lab") -> list[str] | None:
    service = _new_service(lab)
    if service is None:
        return None
    status = service.get("status") or {}
    ingress = (status.get("loadBalancer") or {}).get("ingress")
    condition = next((c for c in status.get("conditions") or []
                      if c.get("type") == "cilium.io/IPAMRequestSatisfied"), None)
    if ingress or condition is None or condition.get("reason") != "out_of_ips":
        return None
    still = _macs(lab, count=1)
    if not still:
        return None
    return [f"Service {'/'.join(NEW_SERVICE)}: no ingress IP; IPAMRequestSatisfied False "
            f"({condition['reason']}: {condition['message']})",
            f"the pool's one address {lb_ip(lab)} stays with default/webpod (router's arping "
            f"answered by {still[0]})"]


def _pending_control(lab: "Lab") -> list[str] | None:
    service = _new_service(lab)
    if service is None or service.get("status") != {"loadBalancer": {}}:
        return None
    return [f"Service {'/'.join(NEW_SERVICE)}: no status (LB-IPAM has not seen it)"]


def _no_service_healthy(lab: "Lab") -> list[str] | None:
    if _new_service(lab) is not None:
        return None
    return _one_holder(lab)


def _one_holder(lab: "Lab") -> list[str] | None:
    holder = lab.cluster.l2_holder()
    if holder is None:
        return None
    node = lab.plan.host(holder)
    macs = set(_macs(lab, count=1))
    want = probes.link_mac(lab, holder, node.cluster_nic.name)
    if macs != {want}:
        return None
    return [f"router: arping {lb_ip(lab)} answered by exactly one MAC, {want} ({holder}, the "
            "Lease holder)"]


def _arping(lab: "Lab") -> None:
    background(lab, "lb-arping", lab.plan.router.name, _lb_arping(lab))


def _wrong_interfaces(lab: "Lab", files: dict) -> None:
    for policy in _objects_in(files, "CiliumL2AnnouncementPolicy"):
        policy["spec"]["interfaces"] = list(WRONG_INTERFACES)


def _unanswered(lab: "Lab") -> list[str] | None:
    if _macs(lab, count=1):
        return None
    holder = lab.cluster.l2_holder()
    return [f"router: arping {lb_ip(lab)} on the cluster segment: no reply",
            f"the Lease holder {holder} announces on interfaces matching "
            f"{', '.join(WRONG_INTERFACES)}: none of its NICs"]


def _first_holder(lab: "Lab") -> str:
    return roles(lab).neighbor.name


def _move_lease(lab: "Lab", files: dict) -> None:
    stamp = _now()
    for lease in files.get("leases", []):
        spec = lease.setdefault("spec", {})
        spec.update(holderIdentity=roles(lab).node.name, acquireTime=stamp, renewTime=stamp,
                    leaseTransitions=int(spec.get("leaseTransitions") or 0) + 1)


def _failover_stale(lab: "Lab") -> None:
    """The new holder takes the announcement (the reconcile); the old one never withdraws."""
    lab.cluster.reconcile()
    old = lab.plan.host(_first_holder(lab))
    ip_lines(lab, old.name, [f"addr replace {lb_ip(lab)}/32 dev {old.cluster_nic.name}"])


def _two_answer(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    want = {probes.link_mac(lab, n.name, n.cluster_nic.name): n.name
            for n in (r.node, r.neighbor)}
    macs = set(_macs(lab))
    if macs != set(want) or lab.cluster.l2_holder() != r.node.name:
        return None
    return [f"Lease holder: {r.node.name} (moved from {r.neighbor.name})",
            f"router: arping {lb_ip(lab)} answered by {len(macs)} MACs: "
            + ", ".join(f"{m} ({want[m]})" for m in sorted(macs))]


def _old_holder_answers(lab: "Lab") -> list[str] | None:
    old = lab.plan.host(_first_holder(lab))
    want = probes.link_mac(lab, old.name, old.cluster_nic.name)
    if set(_macs(lab, count=1)) != {want}:
        return None
    return [f"router: arping {lb_ip(lab)} answered by {old.name} alone ({want})"]


def _drop_stale(lab: "Lab") -> None:
    node = roles(lab).node
    ip_lines(lab, node.name, [f"addr del {lb_ip(lab)}/32 dev {node.cluster_nic.name}"])


# --- cilium-config ---------------------------------------------------------------------------

def _config_key(key: str, value: str):
    def edit(lab: "Lab", files: dict) -> None:
        for config in _objects_in(files, "ConfigMap", "cilium-config"):
            config.setdefault("data", {})[key] = value
    return edit


def _autodirect_react(lab: "Lab") -> None:
    # auto-direct-node-routes is meant to replace the manual pod-range route: it goes, and
    # the restarted agents install their direct routes
    for node in lab.plan.nodes:
        ip_lines(lab, node.name, [f"route del {lab.plan.pod_range}"])
    lab.cluster.reconcile()


def _ping_remote(lab: "Lab") -> None:
    r = roles(lab)
    background(lab, "intent-ping", r.node.name, bounded_ping(r.remote.pod_ip), pod=True)


def _autodirect_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    direct = probes.route_get(lab, r.node.name, r.neighbor.pod_ip)
    if direct.get("gateway") != r.neighbor.ip:
        return None
    leak = _leak(lab, r.node.name, r.remote.name)
    return leak and [f"{r.node.name}: {r.neighbor.pod_cidr} via {r.neighbor.ip} (on-link node: "
                     f"Cilium's direct route); {r.remote.name} is on another subnet: no route"] \
        + leak


def _static_routes_back(lab: "Lab") -> None:
    _restore_pod_range(lab, [n.name for n in lab.plan.nodes])


def _routed(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    if not probes.all_established(lab):
        return None
    return _delivers(lab, r.node.name, r.remote.name)


def _tunnel_react(lab: "Lab") -> None:
    lab.cluster.reconcile(agents=[roles(lab).remote.name])


def _ports(lab: "Lab") -> dict[str, int | None]:
    from diag.lab.faults.overlay import vxlan_port

    return {n.name: vxlan_port(lab, n.name) for n in lab.plan.nodes}


def _split_ports(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    ports = _ports(lab)
    if ports[r.remote.name] != 4789 or ports[r.node.name] != P.VXLAN_PORT:
        return None
    if not probes.pod_ping_fails(lab, r.node.name, r.remote.name, count=2, deadline=2):
        return None
    return ["cilium-config tunnel-port 4789; vxlan ports: "
            + ", ".join(f"{n} {p}" for n, p in ports.items()),
            f"ping {r.node.name} pod -> {r.remote.name} pod fails"]


def _one_port(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    ports = _ports(lab)
    if set(ports.values()) != {P.VXLAN_PORT}:
        return None
    if not probes.pod_ping(lab, r.node.name, r.remote.name, count=1):
        return None
    return [f"every vxlan device on {P.VXLAN_PORT}; ping {r.node.name} pod -> "
            f"{r.remote.name} pod ok"]


# --- calico -----------------------------------------------------------------------------------

def _bgp_peer_name(lab: "Lab", node: P.Host) -> str:
    return f"{lab.plan.router.name}-{node.cluster_nic.segment}"


def _delete_peer(lab: "Lab", files: dict) -> None:
    name = _bgp_peer_name(lab, roles(lab).remote)
    for stem, items in files.items():
        files[stem] = [o for o in items
                       if not (o.get("kind") == "BGPPeer" and o["metadata"]["name"] == name)]


def _isolated(lab: "Lab") -> list[str] | None:
    remote = roles(lab).remote
    if lab.daemons.bird_protocols(remote.name, "BGP") != [""]:
        return None
    router_view = probes.frr_neighbor(lab, remote.ip).get("bgpState", "missing")
    routes = {r.get("dst") for r in probes.routes(lab, lab.plan.router.name, "proto", "bgp")}
    if router_view == "Established" or remote.pod_cidr in routes:
        return None
    return [f"{remote.name}: BIRD has no BGP protocol (mesh off, no BGPPeer selects it)",
            f"router: session to {remote.name} {router_view}; no route to {remote.pod_cidr}"]


def _cross_subnet(lab: "Lab", files: dict) -> None:
    for pool in _objects_in(files, "IPPool"):
        pool["spec"]["vxlanMode"] = "CrossSubnet"


def _pool_routes_gone(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    learned = lab.daemons.bird_learned(r.node.name)
    if r.remote.pod_cidr not in learned:
        return None
    leak = _leak(lab, r.node.name, r.remote.name)
    return leak and [f"{r.node.name}: BIRD holds {r.remote.pod_cidr} but leaves it out of the "
                     "kernel (a VXLAN pool's routes are Felix's; Felix has vxlanEnabled: "
                     "false)"] + leak


FILTER = "reject-pod-routes"


def _attach_filter(lab: "Lab", files: dict) -> None:
    files.setdefault("calico-bgp", []).append({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "BGPFilter",
        "metadata": {"name": FILTER, "creationTimestamp": _now()},
        "spec": {"importV4": [{"action": "Reject", "matchOperator": "In",
                               "cidr": lab.plan.pod_range}]}})
    name = _bgp_peer_name(lab, roles(lab).node)
    for peer in _objects_in(files, "BGPPeer", name):
        peer["spec"]["filters"] = [FILTER]


def _filtered(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    if not probes.all_established(lab):
        return None
    learned = lab.daemons.bird_learned(r.node.name)
    if learned & {r.neighbor.pod_cidr, r.remote.pod_cidr}:
        return None
    leak = _leak(lab, r.node.name, r.remote.name)
    return leak and [f"{r.node.name}: BIRD's table holds none of the other pod CIDRs (its "
                     f"import filter {FILTER} rejects {lab.plan.pod_range}); the session is "
                     "Established"] + leak


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


FAULTS = [
    _config_fault(
        "advertisement-selector-mismatch",
        "every pod CIDR's advertisement (sessions stay up, carry nothing)",
        "CiliumBGPAdvertisement bgp-advertisements relabelled advertise: pod-cidr; the "
        "PeerConfigs still select advertise: bgp; the agents withdraw their pod CIDRs",
        "BGP_NO_ADVERTISEMENT", CILIUM, MODES, _relabel_advertisement, _reconcile,
        _nothing_advertised, _session_back),
    _config_fault(
        "peer-asn-typo",
        "k8s-ctr's session to the router (its OPEN is refused)",
        "k8s-ctr's CiliumBGPClusterConfig gives the router peerASN = its AS + 100; its agent "
        "restarts GoBGP with it",
        "BGP_BAD_PEER_AS", CILIUM, MODES, _peer_asn_typo, _reconcile, _badas_symptom,
        _session_back),
    _config_fault(
        "node-not-selected",
        "k8s-w0's BGP (no instance: nobody learns its pod CIDR)",
        "k8s-w0's CiliumBGPClusterConfig selects on topology.kubernetes.io/region instead of "
        "zone; the operator deletes its CiliumBGPNodeConfig, its GoBGP stops",
        "BGP_NODE_NOT_SELECTED", CILIUM, MODES, _region_selector, _reconcile,
        _not_selected_symptom, _session_back),
    _config_fault(
        "lb-pool-exhausted",
        "a second LoadBalancer Service (it never gets an address)",
        "Service default/webpod-admin of type LoadBalancer added; the pool's one address "
        "is default/webpod's; LB-IPAM sets IPAMRequestSatisfied False out_of_ips",
        "LB_IP_PENDING", CILIUM, MODES, _add_service, _reconcile, _pending_symptom,
        _no_service_healthy, control_probe=_pending_control),
    _config_fault(
        "l2-policy-wrong-interface",
        "the LoadBalancer IP (no ARP reply on the cluster segment)",
        "CiliumL2AnnouncementPolicy policy1 interfaces ^ens[0-9]+ (no node has such a NIC); "
        "the Lease holder stops answering; bounded arping from the router",
        "L2_ANNOUNCE_INTERFACE_MISMATCH", CILIUM, MODES, _wrong_interfaces, _reconcile,
        _unanswered, _one_holder, traffic=_arping),
    _config_fault(
        "l2-lease-failover-stale",
        "the LoadBalancer IP (the old announcer keeps answering after the failover)",
        "the webpod Lease moves to k8s-ctr, which announces .212; k8s-w1 never withdraws: two "
        "MACs answer; bounded arping from the router",
        "ARP_STALE_AFTER_FAILOVER", CILIUM, MODES, _move_lease, _failover_stale, _two_answer,
        _one_holder, before_heal=_drop_stale, traffic=_arping,
        control_probe=_old_holder_answers),
    _config_fault(
        "autodirect-across-subnets",
        "pod traffic to k8s-w0 (off-link: leaks out the default route)",
        "cilium-config auto-direct-node-routes: true in place of the nodes' manual pod-range "
        "route; the agents route on-link nodes' pod CIDRs directly, k8s-w0's not at all",
        "ROUTE_MISSING_PODCIDR_OFF_LINK", CILIUM, ("native",),
        _config_key("auto-direct-node-routes", "true"), _autodirect_react,
        _autodirect_symptom, _routed, after_heal=_static_routes_back, traffic=_ping_remote),
    _config_fault(
        "tunnel-port-config-mismatch",
        "pod traffic to and from k8s-w0 (VXLAN on two ports)",
        "cilium-config tunnel-port 4789; only k8s-w0's agent has restarted since (its vxlan "
        "device on 4789, the others on 8472)",
        "VXLAN_PORT_MISMATCH", CILIUM, ("vxlan",), _config_key("tunnel-port", "4789"),
        _tunnel_react, _split_ports, _one_port, traffic=_ping_remote),
    _config_fault(
        "calico-mesh-off-no-rr",
        "k8s-w0's BGP (no peer: the mesh is off, its BGPPeer deleted)",
        "the BGPPeer of k8s-w0's segment deleted while BGPConfiguration default keeps "
        "nodeToNodeMeshEnabled: false; calico-node reconfigures BIRD without a peer",
        "BGP_RR_MISCONFIG", CALICO, MODES, _delete_peer, _reconcile, _isolated,
        _session_back),
    _config_fault(
        "ippool-mode-mismatch",
        "pod traffic between nodes (the pool's routes leave the kernel)",
        "IPPool default-ipv4-ippool vxlanMode: CrossSubnet while FelixConfiguration keeps "
        "vxlanEnabled: false; BIRD stops programming the pool's routes, Felix makes no tunnel",
        "IPPOOL_ENCAPSULATION_MISMATCH", CALICO, ("native",), _cross_subnet, _reconcile,
        _pool_routes_gone, _routed, traffic=_ping_remote),
    _config_fault(
        "bird-filter-reject",
        "k8s-ctr's routes to the other nodes (its BIRD filters them out)",
        "BGPFilter reject-pod-routes (importV4 Reject In the pod range) named by k8s-ctr's "
        "BGPPeer; BIRD reconfigured with the import filter",
        "BIRD_FILTER_REJECT", CALICO, ("native",), _attach_filter, _reconcile, _filtered,
        _routed, traffic=_ping_remote),
]
