"""Core Kubernetes objects: Node, Service, the ConfigMap ``cilium-config``, Lease.

Every row starts with :data:`~diag.parse.k8s.objects.REF_COLUMNS` (kind, api_version,
namespace, name, item, pointer). Tables:

``k8s_nodes`` (one row per Node, pointer ``""``)
    hostname (the ``Hostname`` address), internal_ips, external_ips (lists, in the API's order),
    pod_cidrs (``spec.podCIDRs``, else ``[spec.podCIDR]``: what the ``kubernetes`` IPAM mode
    assigns), labels, ready (the Ready condition; None when not reported), unschedulable,
    taints (``key=value:Effect``), kubelet_version, os_image, kernel, container_runtime.
``k8s_node_addresses`` (one row per ``status.addresses`` entry, pointer to it)
    node, type (InternalIP, ExternalIP, Hostname, ...), address.
``k8s_services`` (one row per Service, pointer ``""``)
    type, cluster_ips, external_ips, load_balancer_ip (``spec.loadBalancerIP``, deprecated),
    requested_ips (the LB-IPAM annotations ``lbipam.cilium.io/ips``, ``io.cilium/lb-ipam-ips``,
    ``metallb.io/loadBalancerIPs``, ``metallb.universe.tf/loadBalancerIPs``), sharing_key,
    load_balancer_class, ingress_ips (``status.loadBalancer.ingress[].ip``),
    external_traffic_policy, internal_traffic_policy, labels, selector, ports (``80/TCP``),
    ip_families, conditions (``status.conditions``, e.g. Cilium's
    ``cilium.io/IPAMRequestSatisfied`` with reason ``no_pool`` or ``out_of_ips``),
    status_reported (the object has a ``status``: the API always returns one, at least
    ``loadBalancer: {}``; a manifest from a file has none, and says nothing about addresses).
``cilium_config`` (one row per key of the ConfigMap ``cilium-config``, pointer ``/data/<key>``)
    key, value (text, as stored). Keys of note: ipam, routing-mode (``tunnel: disabled`` before
    1.14), tunnel-protocol, tunnel-port, auto-direct-node-routes, ipv4-native-routing-cidr,
    enable-bgp-control-plane, enable-l2-announcements. Any other ConfigMap is an error: diag
    collects only this one.
``k8s_leases`` (one row per Lease, pointer ``/spec``)
    holder, acquire_time, renew_time, lease_duration_s, transitions, l2_announce (for Cilium's
    ``cilium-l2announce-<namespace>-<service>`` leases the ``<namespace>-<service>`` part; the
    split is ambiguous when names contain dashes, so match it against services by building the
    name, never by splitting).

Example row (``k8s_nodes``): ``{"kind": "Node", "name": "k8s-w1", "internal_ips":
["192.168.10.101"], "pod_cidrs": ["172.20.1.0/24"], "ready": True, ...}``. Tested on: Nodes of
Kubernetes 1.23 (Calico 3.26) and the lab's; Services of Cilium 1.18 LB-IPAM docs and seeds.
"""
from __future__ import annotations

from diag.k8s import pointers
from diag.parse.k8s import calico
from diag.parse.k8s.emit import Emitter
from diag.parse.k8s.objects import Obj, ObjectError

TABLES = {
    "k8s_nodes": ["hostname", "internal_ips", "external_ips", "pod_cidrs", "labels", "ready",
                  "unschedulable", "taints", "kubelet_version", "os_image", "kernel",
                  "container_runtime"],
    "k8s_node_addresses": ["node", "type", "address"],
    "k8s_services": ["type", "cluster_ips", "external_ips", "load_balancer_ip", "requested_ips",
                     "sharing_key", "load_balancer_class", "ingress_ips",
                     "external_traffic_policy", "internal_traffic_policy", "labels", "selector",
                     "ports", "ip_families", "conditions", "status_reported"],
    "cilium_config": ["key", "value"],
    "k8s_leases": ["holder", "acquire_time", "renew_time", "lease_duration_s", "transitions",
                   "l2_announce"],
}

CILIUM_CONFIG = "cilium-config"
L2_LEASE_PREFIX = "cilium-l2announce-"
LB_IP_ANNOTATIONS = ("lbipam.cilium.io/ips", "io.cilium/lb-ipam-ips", "metallb.io/loadBalancerIPs",
                     "metallb.universe.tf/loadBalancerIPs")
SHARING_KEY_ANNOTATIONS = ("lbipam.cilium.io/sharing-key", "io.cilium/lb-ipam-sharing-key",
                           "metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip")


def parse_node(obj: Obj, out: Emitter) -> None:
    spec, status = obj.spec(), obj.root.child("status")
    addresses: list[tuple[str, str]] = []
    if status is not None:
        for entry in status.objects("addresses"):
            kind, address = entry.text("type", required=True), entry.text("address", required=True)
            addresses.append((kind, address))
            out.add("k8s_node_addresses", obj, entry.pointer, node=obj.name, type=kind,
                    address=address)
    pod_cidrs = spec.strings("podCIDRs") or ([spec.text("podCIDR")] if spec.text("podCIDR")
                                             else [])
    ready = None
    info = status.child("nodeInfo") if status is not None else None
    if status is not None:
        for condition in status.objects("conditions"):
            if condition.text("type") == "Ready":
                ready = condition.text("status") == "True"
    taints = []
    for taint in spec.objects("taints"):
        key, value = taint.text("key", required=True), taint.text("value")
        taints.append(f"{key}{'=' + value if value else ''}:{taint.text('effect') or ''}")
    out.add("k8s_nodes", obj, "",
            hostname=next((a for k, a in addresses if k == "Hostname"), None),
            internal_ips=[a for k, a in addresses if k == "InternalIP"],
            external_ips=[a for k, a in addresses if k == "ExternalIP"],
            pod_cidrs=pod_cidrs, labels=obj.labels, ready=ready,
            unschedulable=bool(spec.flag("unschedulable")), taints=taints,
            kubelet_version=info.text("kubeletVersion") if info else None,
            os_image=info.text("osImage") if info else None,
            kernel=info.text("kernelVersion") if info else None,
            container_runtime=info.text("containerRuntimeVersion") if info else None)
    calico.node_annotations(obj, out)


def _split_ips(text: str) -> list[str]:
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]


def parse_service(obj: Obj, out: Emitter) -> None:
    spec, status = obj.spec(), obj.root.child("status")
    annotations = obj.annotations
    requested = [ip for key in LB_IP_ANNOTATIONS if key in annotations
                 for ip in _split_ips(annotations[key])]
    ingress = []
    conditions = []
    if status is not None:
        balancer = status.child("loadBalancer")
        if balancer is not None:
            for entry in balancer.objects("ingress"):
                ip = entry.text("ip") or entry.text("hostname")
                if ip:
                    ingress.append(ip)
        conditions = [dict(c.value) for c in status.objects("conditions")]
    ports = [f"{p.integer('port', required=True)}/{p.text('protocol') or 'TCP'}"
             for p in spec.objects("ports")]
    cluster_ips = spec.strings("clusterIPs") or ([spec.text("clusterIP")]
                                                  if spec.text("clusterIP") else [])
    out.add("k8s_services", obj, "", type=spec.text("type") or "ClusterIP",
            cluster_ips=[ip for ip in cluster_ips if ip != "None"],
            external_ips=spec.strings("externalIPs"),
            load_balancer_ip=spec.text("loadBalancerIP"), requested_ips=requested,
            sharing_key=next((annotations[k] for k in SHARING_KEY_ANNOTATIONS
                              if k in annotations), None),
            load_balancer_class=spec.text("loadBalancerClass"), ingress_ips=ingress,
            external_traffic_policy=spec.text("externalTrafficPolicy"),
            internal_traffic_policy=spec.text("internalTrafficPolicy"), labels=obj.labels,
            selector=spec.string_map("selector"), ports=ports,
            ip_families=spec.strings("ipFamilies"), conditions=conditions,
            status_reported=status is not None)


def parse_config_map(obj: Obj, out: Emitter) -> None:
    if obj.name != CILIUM_CONFIG:
        raise ObjectError(obj, "/metadata/name",
                          f"ConfigMap {obj.name!r}: only {CILIUM_CONFIG!r} is read")
    data = obj.root.child("data")
    if data is None:
        raise ObjectError(obj, "/data", "cilium-config without data")
    for key, value in data.value.items():
        if not isinstance(value, str):
            raise data.error(f"ConfigMap values are strings, got {type(value).__name__}", key)
        out.add("cilium_config", obj, pointers.append(data.pointer, key), key=key, value=value)


def parse_lease(obj: Obj, out: Emitter) -> None:
    spec = obj.spec()
    out.add("k8s_leases", obj, spec.anchor, holder=spec.text("holderIdentity"),
            acquire_time=spec.text("acquireTime"), renew_time=spec.text("renewTime"),
            lease_duration_s=spec.integer("leaseDurationSeconds"),
            transitions=spec.integer("leaseTransitions"),
            l2_announce=obj.name[len(L2_LEASE_PREFIX):] if obj.name.startswith(L2_LEASE_PREFIX)
            else None)


PARSERS = {
    ("", "Node"): (parse_node, ("k8s_nodes", "k8s_node_addresses", "calico_nodes")),
    ("", "Service"): (parse_service, ("k8s_services",)),
    ("", "ConfigMap"): (parse_config_map, ("cilium_config",)),
    ("coordination.k8s.io", "Lease"): (parse_lease, ("k8s_leases",)),
}
