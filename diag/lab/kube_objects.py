"""The Kubernetes objects a real cluster would show for the lab, rendered from its plan (pure).

Contract: :func:`cluster_objects(plan, options)` returns ``{file stem: [objects]}``, each
object as the API returns it (``apiVersion``, ``kind``, ``metadata``, ``spec``, ``status``);
:func:`write_objects` writes them as one List per file into the directory the lab's API
endpoint (:mod:`diag.lab.kubeapi`) serves; :func:`read_objects` reads them back. Nothing here
runs a command.

Both CNIs: Nodes (name, labels ``kubernetes.io/hostname``, ``kubernetes.io/os``,
``topology.kubernetes.io/zone`` = the node's segment, ``enable-bgp``, the control-plane role on
k8s-ctr; ``status.addresses`` InternalIP = the cluster address and Hostname; Ready), and a
LoadBalancer Service ``default/webpod`` whose ingress IP is :attr:`KubeObjectOptions.lb_ip`
(.212 of k8s-ctr's subnet, the IP the lab's ARP faults use).

``--cni cilium``: ConfigMap ``kube-system/cilium-config`` (cluster-pool IPAM over the plan's pod
range with /24 per node, ``routing-mode`` native or tunnel with ``tunnel-protocol: vxlan`` and
``tunnel-port`` 8472, BGP control plane and L2 announcements on); CiliumNodes (pod CIDR, InternalIP,
CiliumInternalIP); the BGPv2 objects in :attr:`KubeObjectOptions.cilium_api` (``v2`` as 1.18,
``v2alpha1`` as 1.16-1.17): one CiliumBGPClusterConfig per node segment (peer: the router's
address on that segment), one for the TCP-MD5 node (its PeerConfig ``cilium-peer-md5`` names the
Secret ``bgp-auth-secret``; no Secret is rendered: the lab's API never serves Secrets), the
PeerConfigs (the lab's timers: hold 9, keepalive 3, connect retry 1; ipv4/unicast selecting
``advertise: bgp``), the CiliumBGPAdvertisement (PodCIDR) and a CiliumBGPNodeConfig per node as
the operator writes it, with ``status`` only when :attr:`KubeObjectOptions.bgp_status` gives
one; the CiliumLoadBalancerIPPool holding the LB IP, the CiliumL2AnnouncementPolicy
(``interfaces``: the cluster NIC's name, nodes other than the one behind the router) and its
Lease ``kube-system/cilium-l2announce-default-webpod`` held by the announcing node (in a file of
its own, ``leases``: the agents write it).

``--cni calico``: the Nodes carry Calico's annotations (``projectcalico.org/IPv4Address``, and
the VXLAN tunnel address in vxlan mode); BGPConfiguration ``default`` (the node AS, no
node-to-node mesh: the lab's nodes peer with the router only), one BGPPeer per segment selecting
its nodes (``nodeSelector`` on the zone label) plus one for the TCP-MD5 node (password from the
Secret ``bgp-secrets``/``md5``), each with ``numAllowedLocalASNumbers: 1`` (the nodes share one
AS), the IPPool (the pod range, blocks of /24, ``vxlanMode`` Always in
vxlan mode else Never, ``ipipMode`` Never), one BlockAffinity and IPAMBlock per node (its pod
CIDR), FelixConfiguration ``default`` (VXLAN port 8472, VNI, MTU of the plan). Calico objects
are the CRD form (``crd.projectcalico.org/v1``): the lab has no Calico API server.
"""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diag.lab.configs import CONNECT_RETRY, HOLD, KEEPALIVE
from diag.lab.plan import MD5_PEER, VXLAN_MTU, VXLAN_PORT, VXLAN_VNI, AddressingPlan, Host

ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"
MD5_SECRET = "bgp-auth-secret"
CALICO_MD5_SECRET = ("bgp-secrets", "md5")
SERVICE = ("default", "webpod")
L2_LEASE = "cilium-l2announce-{namespace}-{name}"
CREATED = "2025-01-01T00:00:00Z"


@dataclass(frozen=True)
class PeerStatus:
    """One peer's state for a CiliumBGPNodeConfig status (what the agent would report)."""

    state: str = "established"
    received: int = 0
    advertised: int = 0
    established_time: str | None = None     # RFC 3339, while established


@dataclass(frozen=True)
class KubeObjectOptions:
    cni: str = "cilium"
    mode: str = "native"
    cilium_api: str = "v2"                        # or "v2alpha1" (Cilium 1.16-1.17)
    lb_ip: str | None = None                      # default: .212 of k8s-ctr's subnet
    announcer: str | None = None                  # the L2 lease holder (default: k8s-w1)
    bgp_status: Mapping[str, PeerStatus] = field(default_factory=dict)  # node -> its peer
    renew_time: str = "2025-01-01T00:00:00.000000Z"
    created: str = CREATED                        # every object's creationTimestamp
    agent_pods: bool = True                       # the CNI agent pods (diag.lab.pods)


def default_lb_ip(plan: AddressingPlan) -> str:
    first = plan.nodes[0].cluster_nic.address
    return str(ipaddress.ip_interface(first).network.network_address + 212)


def _meta(name: str, namespace: str | None = None, **extra: Any) -> dict:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata.update(extra)
    metadata.setdefault("creationTimestamp", CREATED)
    return metadata


def _node(plan: AddressingPlan, host: Host, annotations: dict[str, str]) -> dict:
    labels = {"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", HOSTNAME: host.name,
              ZONE: host.cluster_nic.segment, "enable-bgp": "true"}
    if host is plan.nodes[0]:
        labels["node-role.kubernetes.io/control-plane"] = ""
    metadata = _meta(host.name, labels=labels)
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Node", "metadata": metadata, "spec": {},
            "status": {"addresses": [{"address": host.ip, "type": "InternalIP"},
                                     {"address": host.name, "type": "Hostname"}],
                       "conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "diag lab",
                                    "operatingSystem": "linux", "architecture": "amd64",
                                    "kernelVersion": "", "containerRuntimeVersion": ""}}}


def _service(lb_ip: str) -> dict:
    namespace, name = SERVICE
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta(name, namespace, labels={"app": name}),
            "spec": {"type": "LoadBalancer", "selector": {"app": name},
                     "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80,
                                "nodePort": 30080}],
                     "clusterIP": "10.96.0.80", "clusterIPs": ["10.96.0.80"],
                     "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"},
            "status": {"loadBalancer": {"ingress": [{"ip": lb_ip, "ipMode": "VIP"}]},
                       "conditions": [{"type": "cilium.io/IPAMRequestSatisfied",
                                       "status": "True", "reason": "satisfied", "message": "",
                                       "lastTransitionTime": CREATED}]}}


def cluster_objects(plan: AddressingPlan, options: KubeObjectOptions) -> dict[str, list[dict]]:
    if options.cni == "cilium":
        out = _cilium(plan, options)
    elif options.cni == "calico":
        out = _calico(plan, options)
    else:
        raise ValueError(f"unknown cni {options.cni!r}")
    if options.agent_pods:
        from diag.lab.pods import agent_pods

        out["pods"] = agent_pods(plan, options.cni, CREATED)
    if options.created != CREATED:         # a live lab's objects were created when it was
        for items in out.values():
            for item in items:
                item["metadata"]["creationTimestamp"] = options.created
    return out


# -- cilium ---------------------------------------------------------------------------------

def _cilium(plan: AddressingPlan, options: KubeObjectOptions) -> dict[str, list[dict]]:
    api = f"cilium.io/{options.cilium_api}"
    lb_ip = options.lb_ip or default_lb_ip(plan)
    announcer = options.announcer or MD5_PEER
    native = options.mode == "native"
    config = {
        "ipam": "cluster-pool", "cluster-pool-ipv4-cidr": plan.pod_range,
        "cluster-pool-ipv4-mask-size": "24", "enable-ipv4": "true", "enable-ipv6": "false",
        "routing-mode": "native" if native else "tunnel", "tunnel-protocol": "vxlan",
        "tunnel-port": str(VXLAN_PORT), "auto-direct-node-routes": "false",
        "enable-bgp-control-plane": "true", "enable-l2-announcements": "true",
        "kube-proxy-replacement": "true"}
    if native:
        config["ipv4-native-routing-cidr"] = plan.pod_range
    out: dict[str, list[dict]] = {
        "nodes": [_node(plan, n, {}) for n in plan.nodes],
        "cilium-config": [{"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": _meta("cilium-config", "kube-system"), "data": config}],
        "ciliumnodes": [{
            "apiVersion": "cilium.io/v2", "kind": "CiliumNode",
            "metadata": _meta(n.name, labels={HOSTNAME: n.name, ZONE: n.cluster_nic.segment}),
            "spec": {"addresses": [{"type": "InternalIP", "ip": n.ip},
                                   {"type": "CiliumInternalIP", "ip": n.pod_gateway}],
                     "ipam": {"podCIDRs": [n.pod_cidr]}}} for n in plan.nodes],
    }
    cluster_configs = []
    segments = sorted({n.cluster_nic.segment for n in plan.nodes})
    for segment in segments:
        nic = plan.router.nic(segment)
        cluster_configs.append(_cluster_config(
            api, f"cilium-bgp-{segment}", plan,
            {"matchLabels": {ZONE: segment},
             "matchExpressions": [{"key": HOSTNAME, "operator": "NotIn",
                                   "values": [MD5_PEER]}]},
            nic.ip, "cilium-peer"))
    md5_node = plan.host(MD5_PEER)
    cluster_configs.append(_cluster_config(
        api, "cilium-bgp-md5", plan, {"matchLabels": {HOSTNAME: MD5_PEER}},
        plan.router_nic_for(md5_node).ip, "cilium-peer-md5"))
    peer_spec = {"timers": {"holdTimeSeconds": HOLD, "keepAliveTimeSeconds": KEEPALIVE,
                            "connectRetryTimeSeconds": CONNECT_RETRY},
                 "ebgpMultihop": 1, "gracefulRestart": {"enabled": False},
                 "families": [{"afi": "ipv4", "safi": "unicast",
                               "advertisements": {"matchLabels": {"advertise": "bgp"}}}]}
    out["cilium-bgp"] = cluster_configs + [
        {"apiVersion": api, "kind": "CiliumBGPPeerConfig", "metadata": _meta("cilium-peer"),
         "spec": peer_spec},
        {"apiVersion": api, "kind": "CiliumBGPPeerConfig", "metadata": _meta("cilium-peer-md5"),
         "spec": dict(peer_spec, authSecretRef=MD5_SECRET)},
        {"apiVersion": api, "kind": "CiliumBGPAdvertisement",
         "metadata": _meta("bgp-advertisements", labels={"advertise": "bgp"}),
         "spec": {"advertisements": [{"advertisementType": "PodCIDR"}]}},
    ]
    out["ciliumbgpnodeconfigs"] = [_node_config(api, plan, n, options) for n in plan.nodes]
    behind_router = [n.name for n in plan.nodes
                     if n.cluster_nic.segment != plan.nodes[0].cluster_nic.segment]
    namespace, name = SERVICE
    out["lb"] = [
        _service(lb_ip),
        {"apiVersion": api if options.cilium_api == "v2" else "cilium.io/v2alpha1",
         "kind": "CiliumLoadBalancerIPPool", "metadata": _meta("cilium-lb-ippool"),
         "spec": {"blocks": [{"start": lb_ip, "stop": lb_ip}]},
         "status": {"conditions": [
             {"type": "cilium.io/IPsTotal", "status": "Unknown", "reason": "noreason",
              "message": "1", "lastTransitionTime": CREATED},
             {"type": "cilium.io/IPsAvailable", "status": "Unknown", "reason": "noreason",
              "message": "0", "lastTransitionTime": CREATED},
             {"type": "cilium.io/PoolConflict", "status": "False", "reason": "resolved",
              "message": "", "lastTransitionTime": CREATED}]}},
        {"apiVersion": "cilium.io/v2alpha1", "kind": "CiliumL2AnnouncementPolicy",
         "metadata": _meta("policy1"),
         "spec": {"serviceSelector": {"matchLabels": {"app": name}},
                  "nodeSelector": {"matchExpressions": [
                      {"key": HOSTNAME, "operator": "NotIn", "values": behind_router}]},
                  "interfaces": [f"^{plan.host(announcer).cluster_nic.name}$"],
                  "externalIPs": True, "loadBalancerIPs": True}},
    ]
    # written by the announcing agent, apart from the objects a person edits
    out["leases"] = [
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": _meta(L2_LEASE.format(namespace=namespace, name=name), "kube-system"),
         "spec": {"holderIdentity": announcer, "leaseDurationSeconds": 15,
                  "acquireTime": options.renew_time, "renewTime": options.renew_time,
                  "leaseTransitions": 0}}
    ]
    return out


def _cluster_config(api: str, name: str, plan: AddressingPlan, selector: dict, peer_ip: str,
                    peer_config: str) -> dict:
    node_asn = plan.nodes[0].asn
    return {"apiVersion": api, "kind": "CiliumBGPClusterConfig", "metadata": _meta(name),
            "spec": {"nodeSelector": selector,
                     "bgpInstances": [{"name": f"instance-{node_asn}", "localASN": node_asn,
                                       "peers": [{"name": plan.router.name,
                                                  "peerASN": plan.router.asn,
                                                  "peerAddress": peer_ip,
                                                  "peerConfigRef": {"name": peer_config}}]}]}}


def _node_config(api: str, plan: AddressingPlan, node: Host,
                 options: KubeObjectOptions) -> dict:
    owner = "cilium-bgp-md5" if node.name == MD5_PEER else \
        f"cilium-bgp-{node.cluster_nic.segment}"
    peer = {"name": plan.router.name, "peerASN": plan.router.asn,
            "peerAddress": plan.router_nic_for(node).ip,
            "peerConfigRef": {"name": "cilium-peer-md5" if node.name == MD5_PEER
                              else "cilium-peer"}}
    instance = {"name": f"instance-{node.asn}", "localASN": node.asn, "peers": [peer]}
    obj = {"apiVersion": api, "kind": "CiliumBGPNodeConfig",
           "metadata": _meta(node.name, ownerReferences=[{
               "apiVersion": api, "kind": "CiliumBGPClusterConfig", "name": owner,
               "controller": True}]),
           "spec": {"bgpInstances": [instance]}}
    status = options.bgp_status.get(node.name)
    if status is not None:
        obj["status"] = {"bgpInstances": [{
            "name": instance["name"], "localASN": node.asn,
            "peers": [{"name": peer["name"], "peerAddress": peer["peerAddress"],
                       "peerASN": peer["peerASN"], "peeringState": status.state,
                       **({"establishedTime": status.established_time}
                          if status.established_time else {}),
                       "routeCount": [{"afi": "ipv4", "safi": "unicast",
                                       "received": status.received,
                                       "advertised": status.advertised}],
                       "timers": {"appliedHoldTimeSeconds": HOLD,
                                  "appliedKeepaliveSeconds": KEEPALIVE}}]}]}
    return obj


# -- calico ---------------------------------------------------------------------------------

def _calico_name(node: str, cidr: str) -> str:
    return f"{node}-{cidr.replace('.', '-').replace('/', '-')}"


def _calico(plan: AddressingPlan, options: KubeObjectOptions) -> dict[str, list[dict]]:
    api = "crd.projectcalico.org/v1"
    vxlan = options.mode == "vxlan"
    nodes = []
    for node in plan.nodes:
        annotations = {"projectcalico.org/IPv4Address": node.cluster_nic.address}
        if vxlan:
            annotations["projectcalico.org/IPv4VXLANTunnelAddr"] = node.vtep_ip
        nodes.append(_node(plan, node, annotations))
    peers = []
    for segment in sorted({n.cluster_nic.segment for n in plan.nodes}):
        nic = plan.router.nic(segment)
        peers.append({"apiVersion": api, "kind": "BGPPeer",
                      "metadata": _meta(f"{plan.router.name}-{segment}"),
                      "spec": {"nodeSelector": f"{ZONE} == '{segment}' && "
                                               f"{HOSTNAME} != '{MD5_PEER}'",
                               "peerIP": nic.ip, "asNumber": plan.router.asn,
                               "numAllowedLocalASNumbers": 1}})
    md5_node = plan.host(MD5_PEER)
    secret, key = CALICO_MD5_SECRET
    peers.append({"apiVersion": api, "kind": "BGPPeer",
                  "metadata": _meta(f"{plan.router.name}-md5"),
                  "spec": {"node": MD5_PEER, "peerIP": plan.router_nic_for(md5_node).ip,
                           "asNumber": plan.router.asn, "numAllowedLocalASNumbers": 1,
                           "password": {"secretKeyRef": {"name": secret, "key": key}}}})
    blocks, affinities = [], []
    for node in plan.nodes:
        network = ipaddress.ip_network(node.pod_cidr)
        allocations: list[int | None] = [None] * network.num_addresses
        attributes = []
        used = [(int(ipaddress.ip_address(node.pod_ip)) - int(network.network_address),
                 {"handle_id": "k8s-pod-network.lab-pod",
                  "secondary": {"namespace": "default", "node": node.name, "pod": "pod"}})]
        if vxlan:
            used.insert(0, (0, {"handle_id": f"vxlan-tunnel-addr-{node.name}",
                                "secondary": {"node": node.name,
                                              "type": "vxlanTunnelAddress"}}))
        for index, (offset, attribute) in enumerate(used):
            allocations[offset] = index
            attributes.append(attribute)
        blocks.append({"apiVersion": api, "kind": "IPAMBlock",
                       "metadata": _meta(node.pod_cidr.replace(".", "-").replace("/", "-")),
                       "spec": {"cidr": node.pod_cidr, "affinity": f"host:{node.name}",
                                "allocations": allocations, "attributes": attributes,
                                "unallocated": [i for i, a in enumerate(allocations)
                                                if a is None],
                                "strictAffinity": False, "deleted": False}})
        affinities.append({"apiVersion": api, "kind": "BlockAffinity",
                           "metadata": _meta(_calico_name(node.name, node.pod_cidr)),
                           "spec": {"node": node.name, "cidr": node.pod_cidr,
                                    "state": "confirmed", "deleted": "false"}})
    return {
        "nodes": nodes,
        "calico-bgp": [{"apiVersion": api, "kind": "BGPConfiguration",
                        "metadata": _meta("default"),
                        "spec": {"asNumber": plan.nodes[0].asn, "nodeToNodeMeshEnabled": False,
                                 "logSeverityScreen": "Info"}}] + peers,
        "calico-ipam": [{"apiVersion": api, "kind": "IPPool",
                         "metadata": _meta("default-ipv4-ippool"),
                         "spec": {"cidr": plan.pod_range, "blockSize": 24,
                                  "vxlanMode": "Always" if vxlan else "Never",
                                  "ipipMode": "Never", "natOutgoing": True,
                                  "nodeSelector": "all()",
                                  "allowedUses": ["Workload", "Tunnel"]}}] + affinities + blocks,
        "calico-felix": [{"apiVersion": api, "kind": "FelixConfiguration",
                          "metadata": _meta("default"),
                          "spec": {"vxlanEnabled": vxlan, "vxlanPort": VXLAN_PORT,
                                   "vxlanVNI": VXLAN_VNI, "vxlanMTU": VXLAN_MTU,
                                   "ipipEnabled": False, "bpfEnabled": False}}],
        "lb": [_service(options.lb_ip or default_lb_ip(plan))],
    }


def write_objects(directory: Path, objects: dict[str, list[dict]]) -> list[Path]:
    """One ``<stem>.json`` List per entry, written atomically (the API re-reads changed files)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, items in objects.items():
        path = directory / f"{stem}.json"
        tmp = directory / f".{stem}.json.tmp"
        tmp.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items},
                                  indent=1))
        tmp.replace(path)
        written.append(path)
    return written


def read_objects(directory: Path) -> dict[str, list[dict]]:
    """``{file stem: [objects]}`` as :func:`write_objects` wrote them (or a person edited them:
    a file may hold one object or a List). A file removed between the listing and its reading
    (a debug pod deleted while another node's command looks up its own pod) is an object
    deleted meanwhile: not listed, as the API server would not list it."""
    out: dict[str, list[dict]] = {}
    for path in sorted(Path(directory).glob("*.json")):
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        document = json.loads(text)
        out[path.stem] = list(document["items"]) if str(document.get("kind", "")).endswith(
            "List") and "items" in document else [document]
    return out
