"""Cilium LB-IPAM: LoadBalancer Services without an address, and why, from the pools.

Contract: :func:`analyze(objects, state) -> (verdicts, checks)` (:mod:`diag.analyze.intent`).
A Service of type LoadBalancer that LB-IPAM serves (``loadBalancerClass`` unset or one of
Cilium's) and has no ``status.loadBalancer.ingress`` is ``LB_IP_PENDING``; its status is the
state (the operator writes it), and the reason comes from the pools as LB-IPAM decides: the
pools whose ``serviceSelector`` matches the Service's labels (plus
``io.kubernetes.service.name``/``.namespace``; absent selects every Service), without the
disabled and the conflicting ones; the requested IPs (``lbipam.cilium.io/ips`` and its older
spellings, ``spec.loadBalancerIP``) inside one of their blocks; and their capacity: each
block's addresses (a CIDR without its first and last address unless ``allowFirstLastIPs`` is
``Yes`` or the CIDR is a /31 or /32; ``start``-``stop`` whole) against the addresses other
Services hold (shared ones counted once). LB-IPAM's own condition
``cilium.io/IPAMRequestSatisfied`` confirms it (error); without it the operator has not
answered the Service yet (warning: what the pools predict is said, not claimed).
"""
from __future__ import annotations

import ipaddress
import json
from typing import Any

from diag.analyze.intent import Objects, State, Verdict, finding, not_checkable, ref_of
from diag.k8s.selectors import SelectorError, label_selector_matches
from diag.model import Check
from diag.words import counted

POOL = ("cilium.io", "CiliumLoadBalancerIPPool")
SERVICE = ("", "Service")
CILIUM_CLASSES = (None, "io.cilium/l2-announcer", "io.cilium/bgp-control-plane")
CONDITION = "cilium.io/IPAMRequestSatisfied"


def _selects(selector, labels) -> bool:
    try:
        return label_selector_matches(selector, labels, absent=True)
    except SelectorError:
        return False


def service_labels(row: dict[str, Any]) -> dict[str, str]:
    """A Service's labels as LB-IPAM's (and the BGP/L2 selectors') matching sees them."""
    return dict(row.get("labels") or {}, **{"io.kubernetes.service.name": str(row["name"]),
                                           "io.kubernetes.service.namespace":
                                               str(row.get("namespace") or "default")})


def block_addresses(block: dict[str, Any], allow_first_last: bool) -> list[ipaddress._BaseAddress]:
    if block.get("cidr"):
        network = ipaddress.ip_network(str(block["cidr"]), strict=False)
        hosts = list(network) if len(list(network)) <= 65536 else []
        if network.prefixlen >= network.max_prefixlen - 1 or allow_first_last:
            return hosts
        return hosts[1:-1]
    start = ipaddress.ip_address(str(block["start"]))
    stop = ipaddress.ip_address(str(block.get("stop") or block["start"]))
    return [ipaddress.ip_address(i) for i in range(int(start), int(stop) + 1)][:65536]


def analyze(objects: Objects, state: State) -> tuple[list[Verdict], list[Check]]:
    name = "LoadBalancer Services have an address (Cilium LB-IPAM pools)"
    services = [r for r in objects.rows("k8s_services") if r["type"] == "LoadBalancer"
                and r.get("load_balancer_class") in CILIUM_CLASSES]
    if not objects.read(*POOL) and not objects.rows("cilium_nodes"):
        return [], []                       # not a Cilium cluster's LB-IPAM
    missing = not_checkable(name, objects, SERVICE, POOL)
    if missing:
        return [], [missing]
    if not services:
        return [], [Check(name, True, "no Service of type LoadBalancer")]
    pools = objects.rows("cilium_lb_pools")
    blocks = objects.rows("cilium_lb_pool_blocks")
    verdicts = []
    unread = []
    for service in services:
        if service["ingress_ips"]:
            continue
        if service.get("status_reported") is False:
            unread.append(ref_of(service))     # a manifest: says nothing about addresses
            continue
        verdicts.append(_pending(objects, service, services, pools, blocks))
    if verdicts:
        return verdicts, [Check(name, False, f"{counted(len(verdicts), 'Service')} without an "
                                             "address")]
    if unread:
        return [], [Check(name, None, needs="not checkable: " + ", ".join(unread)
                          + " without status (a manifest, not the API's answer): its address "
                            "comes from the cluster (diag collect --kube)")]
    return [], [Check(name, True, f"{counted(len(services), 'LoadBalancer Service')}, each "
                                  "with an address")]


def _used(services: list[dict[str, Any]], me: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for s in services:
        if s is me:
            continue
        for ip in s["ingress_ips"] or []:
            out.setdefault(str(ip), s)
    return out


def _pending(objects: Objects, service: dict, services: list[dict], pools: list[dict],
             blocks: list[dict]) -> Verdict:
    labels = service_labels(service)
    condition = next(((i, c) for i, c in enumerate(service["conditions"] or [])
                      if c.get("type") == CONDITION), None)
    answered = condition is not None and str(condition[1].get("status")) == "False"
    evidence = [objects.evidence(service, "has no status.loadBalancer.ingress", role="state",
                                 at="/status" if service["conditions"] else "")]
    if condition is not None:
        evidence.append(objects.evidence(service, f"{CONDITION} {condition[1].get('status')} "
                                         f"reason {condition[1].get('reason')}: "
                                         f"{condition[1].get('message') or ''}".rstrip(": "),
                                         "status", "conditions", condition[0], role="state",
                                         at=""))
    selecting = [p for p in pools if _selects(p["service_selector"], labels)]
    usable = [p for p in selecting if not p["disabled"] and not p["conflicting"]]
    requested = [str(ip) for ip in (service["requested_ips"] or [])] + (
        [str(service["load_balancer_ip"])] if service.get("load_balancer_ip") else [])
    used = _used(services, service)
    fix: list[str] = []
    if not pools:
        reason = "no CiliumLoadBalancerIPPool exists"
        fix.append("# create a CiliumLoadBalancerIPPool with a block of free addresses on the "
                   "announced segment (kubectl apply -f pool.yaml)")
    elif not selecting:
        reason = (f"no pool's serviceSelector matches its labels {json.dumps(service['labels'] or {})}"
                  f" ({'; '.join(ref_of(p) + ' ' + json.dumps(p['service_selector']) for p in pools[:3])})")
        evidence += [objects.evidence(p, f"serviceSelector {json.dumps(p['service_selector'])}",
                                      "serviceSelector") for p in pools[:3]]
        wanted = next(((p, (p["service_selector"] or {}).get("matchLabels") or {})
                       for p in pools if p["service_selector"]), None)
        if wanted and wanted[1]:
            fix.append(f"kubectl label service {service['name']} -n "
                       f"{service.get('namespace') or 'default'} "
                       + " ".join(f"{k}={v}" for k, v in wanted[1].items()))
        fix.append("# or widen a pool's serviceSelector to this Service")
    elif not usable:
        bad = selecting[0]
        what = "disabled" if bad["disabled"] else "in conflict with another pool (PoolConflict)"
        reason = f"the pools that select it are {what}: {', '.join(ref_of(p) for p in selecting)}"
        evidence.append(objects.evidence(bad, f"disabled {bad['disabled']}, conflicting "
                                         f"{bad['conflicting']}", "disabled" if bad["disabled"]
                                         else ""))
        fix.append(objects.patch(bad, [{"op": "replace", "path": "disabled", "value": False}])
                   if bad["disabled"] else f"# give {ref_of(bad)} blocks that overlap no other "
                                           "pool's")
    else:
        ranges = {p["name"]: [b for b in blocks if b["pool"] == p["name"]
                              and b["item"] == p["item"]] for p in usable}
        outside = [ip for ip in requested if not any(
            ipaddress.ip_address(ip) in block_addresses(b, _first_last(p))
            for p in usable for b in ranges[p["name"]])]
        if outside:
            reason = (f"the requested IP {', '.join(outside)} is in none of the pools that "
                      f"select it ({', '.join(ref_of(p) for p in usable)})")
            evidence += [objects.evidence(b, f"block {_block_text(b)}") for p in usable
                         for b in ranges[p["name"]][:2]]
            fix.append(f"# request an address inside {', '.join(_block_text(b) for p in usable for b in ranges[p['name']][:2])} "
                       f"(annotation lbipam.cilium.io/ips) or add a block holding {outside[0]}")
        else:
            full, pool_ev = [], []
            for p in usable:
                addresses = [a for b in ranges[p["name"]]
                             for a in block_addresses(b, _first_last(p))]
                taken = {str(a) for a in addresses if str(a) in used}
                if addresses and len(taken) >= len(addresses):
                    full.append((p, len(addresses), taken))
                for b in ranges[p["name"]][:2]:
                    pool_ev.append(objects.evidence(b, f"block {_block_text(b)}: "
                                                    f"{counted(len(addresses), 'address', 'addresses')}"))
                for ip in sorted(taken)[:3]:
                    holder = used[ip]
                    index = (holder["ingress_ips"] or []).index(ip)
                    pool_ev.append(objects.evidence(holder, f"holds {ip}", "status",
                                                    "loadBalancer", "ingress", index,
                                                    role="state", at=""))
            evidence += pool_ev
            if len(full) == len(usable):
                reason = ("its pools are exhausted: "
                          + "; ".join(f"{ref_of(p)} has {counted(n, 'address', 'addresses')}, "
                                      f"all allocated ({', '.join(sorted(t))})"
                                      for p, n, t in full))
                p = full[0][0]
                block = ranges[p["name"]][-1]
                fix.append(_widen(objects, block) or "# add a block of free addresses to "
                           + ref_of(p))
            else:
                reason = "the pools that select it still have free addresses: LB-IPAM should " \
                         "have allocated one"
    severity = None if answered else "warning"
    why = "LB-IPAM's own condition on the Service says it could not allocate" if answered else \
        ("LB-IPAM has not answered the Service (no " + CONDITION + " condition): what the "
         "pools predict is said, not confirmed")
    return Verdict(finding(
        "LB_IP_PENDING",
        f"{ref_of(service)}: type LoadBalancer without an address: {reason}"
        + ("" if answered else "; LB-IPAM has not answered it yet"),
        ["objects", "service-status", "lbipam" if answered else None], evidence, fix,
        severity=severity, reason=why, subject=f"{service.get('namespace')}/{service['name']}"))


def _first_last(pool: dict[str, Any]) -> bool:
    return str(pool.get("allow_first_last_ips") or "").lower() == "yes"


def _block_text(block: dict[str, Any]) -> str:
    if block.get("cidr"):
        return str(block["cidr"])
    return f"{block['start']}-{block.get('stop') or block['start']}"


def _widen(objects: Objects, block: dict[str, Any]) -> str | None:
    """A start/stop block one address longer (when the next address is what the operator
    would add); None for a CIDR block."""
    if block.get("cidr") or not block.get("start"):
        return None
    stop = ipaddress.ip_address(str(block.get("stop") or block["start"]))
    return objects.patch(block, [{"op": "replace", "path": "stop", "value": str(stop + 1)}]) + \
        f"   # if {stop + 1} is free on the segment"
