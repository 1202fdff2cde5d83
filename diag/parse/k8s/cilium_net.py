"""Cilium's node, IPAM and load-balancer objects: CiliumNode, CiliumPodIPPool,
CiliumLoadBalancerIPPool (``cilium.io/v2alpha1`` up to 1.17, ``v2`` from 1.18),
CiliumL2AnnouncementPolicy (``v2alpha1``).

Every row starts with :data:`~diag.parse.k8s.objects.REF_COLUMNS`. Tables:

``cilium_nodes`` (one per CiliumNode): node, pod_cidrs (``spec.ipam.podCIDRs``: what
    ``cluster-pool`` IPAM assigned), pool_cidrs (multi-pool: ``[{"pool", "cidrs"}]`` from
    ``spec.ipam.pools.allocated``), internal_ips, cilium_internal_ip (``cilium_host``'s
    address), health_ipv4, labels.
``cilium_pod_ip_pools``: ipv4_cidrs, ipv4_mask_size, ipv6_cidrs, ipv6_mask_size, labels.
``cilium_lb_pools`` (one per CiliumLoadBalancerIPPool, pointer ``/spec``): disabled,
    service_selector (None: every Service), allow_first_last_ips, ips_total, ips_available,
    ips_used (from the ``cilium.io/IPsTotal``/``IPsAvailable``/``IPsUsed`` status conditions'
    messages), conflicting (the ``cilium.io/PoolConflict`` condition), labels.
``cilium_lb_pool_blocks`` (one per block, pointer to it): pool, cidr, start, stop, legacy
    (True for v2alpha1's deprecated ``spec.cidrs``).
``cilium_l2_policies`` (pointer ``/spec``): service_selector, node_selector (None: all),
    interfaces (regular expressions), external_ips, load_balancer_ips.

Tested on: the seeds' pools and policy (v2, v2alpha1), Cilium's containerlab LB pools
(v2alpha1) and the lab's objects.
"""
from __future__ import annotations

import re

from diag.parse.k8s.emit import Emitter
from diag.parse.k8s.objects import Obj

TABLES = {
    "cilium_nodes": ["node", "pod_cidrs", "pool_cidrs", "internal_ips", "cilium_internal_ip",
                     "health_ipv4", "labels"],
    "cilium_pod_ip_pools": ["ipv4_cidrs", "ipv4_mask_size", "ipv6_cidrs", "ipv6_mask_size",
                            "labels"],
    "cilium_lb_pools": ["disabled", "service_selector", "allow_first_last_ips", "ips_total",
                        "ips_available", "ips_used", "conflicting", "labels"],
    "cilium_lb_pool_blocks": ["pool", "cidr", "start", "stop", "legacy"],
    "cilium_l2_policies": ["service_selector", "node_selector", "interfaces", "external_ips",
                           "load_balancer_ips"],
}


def parse_cilium_node(obj: Obj, out: Emitter) -> None:
    spec = obj.spec()
    ipam = spec.child("ipam")
    pools = []
    if ipam is not None and ipam.child("pools") is not None:
        for entry in ipam.child("pools").objects("allocated"):
            pools.append({"pool": entry.text("pool", required=True),
                          "cidrs": entry.strings("cidrs")})
    addresses = [(a.text("type", required=True), a.text("ip", required=True))
                 for a in spec.objects("addresses")]
    health = spec.child("health")
    out.add("cilium_nodes", obj, spec.anchor, node=obj.name,
            pod_cidrs=ipam.strings("podCIDRs") if ipam else [], pool_cidrs=pools,
            internal_ips=[ip for kind, ip in addresses if kind == "InternalIP"],
            cilium_internal_ip=next((ip for kind, ip in addresses if kind == "CiliumInternalIP"),
                                    None),
            health_ipv4=health.text("ipv4") if health else None, labels=obj.labels)


def parse_pod_ip_pool(obj: Obj, out: Emitter) -> None:
    spec = obj.spec(required=True)
    v4, v6 = spec.child("ipv4"), spec.child("ipv6")
    out.add("cilium_pod_ip_pools", obj, spec.anchor,
            ipv4_cidrs=v4.strings("cidrs") if v4 else [],
            ipv4_mask_size=v4.integer("maskSize") if v4 else None,
            ipv6_cidrs=v6.strings("cidrs") if v6 else [],
            ipv6_mask_size=v6.integer("maskSize") if v6 else None, labels=obj.labels)


_COUNT = re.compile(r"^\s*(\d+)\s*$")


def parse_lb_pool(obj: Obj, out: Emitter) -> None:
    spec = obj.spec(required=True)
    status = obj.root.child("status")
    counts: dict[str, int | None] = {}
    conflicting = None
    if status is not None:
        for condition in status.objects("conditions"):
            kind = condition.text("type")
            if kind == "cilium.io/PoolConflict":
                conflicting = condition.text("status") == "True"
            elif kind in ("cilium.io/IPsTotal", "cilium.io/IPsAvailable", "cilium.io/IPsUsed"):
                match = _COUNT.match(condition.text("message") or "")
                counts[kind] = int(match.group(1)) if match else None
    blocks = spec.objects("blocks")
    legacy = spec.objects("cidrs")          # v2alpha1 only, deprecated in favour of blocks
    if not blocks and not legacy:
        raise spec.error("pool without blocks")
    for block, is_legacy in [(b, False) for b in blocks] + [(c, True) for c in legacy]:
        cidr, start, stop = block.text("cidr"), block.text("start"), block.text("stop")
        if not cidr and not start:
            raise block.error("block without cidr or start")
        out.add("cilium_lb_pool_blocks", obj, block.pointer, pool=obj.name, cidr=cidr,
                start=start, stop=stop or (start if start and not cidr else None),
                legacy=is_legacy)
    out.add("cilium_lb_pools", obj, spec.anchor, disabled=bool(spec.flag("disabled")),
            service_selector=spec.mapping("serviceSelector"),
            allow_first_last_ips=spec.text("allowFirstLastIPs"),
            ips_total=counts.get("cilium.io/IPsTotal"),
            ips_available=counts.get("cilium.io/IPsAvailable"),
            ips_used=counts.get("cilium.io/IPsUsed"), conflicting=conflicting,
            labels=obj.labels)


def parse_l2_policy(obj: Obj, out: Emitter) -> None:
    spec = obj.spec()
    out.add("cilium_l2_policies", obj, spec.anchor, service_selector=spec.mapping("serviceSelector"),
            node_selector=spec.mapping("nodeSelector"), interfaces=spec.strings("interfaces"),
            external_ips=bool(spec.flag("externalIPs")),
            load_balancer_ips=bool(spec.flag("loadBalancerIPs")))


PARSERS = {
    ("cilium.io", "CiliumNode"): (parse_cilium_node, ("cilium_nodes",)),
    ("cilium.io", "CiliumPodIPPool"): (parse_pod_ip_pool, ("cilium_pod_ip_pools",)),
    ("cilium.io", "CiliumLoadBalancerIPPool"): (parse_lb_pool,
                                                ("cilium_lb_pools", "cilium_lb_pool_blocks")),
    ("cilium.io", "CiliumL2AnnouncementPolicy"): (parse_l2_policy, ("cilium_l2_policies",)),
}
