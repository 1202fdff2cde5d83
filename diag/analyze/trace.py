"""The path tracer: walk a packet hop by hop over the collected hosts' kernel state.

Contract: :func:`trace(facts_tables, model, src, dst, fib=None, outputs=None) -> Trace` starts on the host
that owns ``src`` (an address of a host, an address inside a node's pod CIDR, or a host name)
and follows next hops (:func:`diag.analyze.lookup.lookup` on each host) to the collected host
that owns the next-hop address; through a vxlan device the inner packet goes neighbour (lladdr)
-> FDB ``dst`` (the remote VTEP) -> the host owning that VTEP. It ends ``delivered`` (a local
route on some host, or a pod's on-link address), ``left`` (the next hop is no collected host:
where it leaves, by which NIC, to which next hop), ``dropped`` (why) or ``loop``. Each hop
carries :class:`~diag.model.Evidence` pointing into the bundle (the route's JSON pointer in
``ip-route-v4``'s output, the rule, the neighbour entry).

Pure functions over the FIB (:mod:`diag.analyze.fib`). No I/O.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from diag.analyze.fib import Fib, build_fib
from diag.analyze.lookup import LOCAL_TYPES, Lookup, lookup
from diag.bundle import OutputIndex
from diag.model import Evidence

MAX_HOPS = 16


@dataclass(frozen=True)
class Hop:
    host: str
    iif: str | None
    lookup: Lookup
    next_hop: str | None = None     # the address the packet is handed to
    next_host: str | None = None    # the collected host owning it (None: leaves the bundle)
    neighbor: str | None = None     # neighbour state of the next hop on the out device
    tunnel: str | None = None       # "vxlan DEV vni N -> VTEP" when encapsulated
    evidence: tuple[Evidence, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        lk = self.lookup
        return {"host": self.host, "iif": self.iif, "type": lk.type, "table": lk.table,
                "route": lk.route.text if lk.route else None,
                "rule": lk.rule.priority if lk.rule else None,
                "dev": lk.dev, "gateway": lk.gateway,
                "nexthops": [{"gateway": g, "dev": d} for g, d in lk.nexthops],
                "next_hop": self.next_hop, "next_host": self.next_host,
                "neighbor": self.neighbor, "tunnel": self.tunnel,
                "evidence": [e.__dict__ for e in self.evidence]}


@dataclass(frozen=True)
class Trace:
    src: str
    dst: str
    hops: tuple[Hop, ...]
    outcome: str                    # delivered | left | dropped | loop | unknown
    where: str                      # host (and NIC) where it was delivered, left or died
    reason: str

    @property
    def last(self) -> Hop | None:
        return self.hops[-1] if self.hops else None

    def to_dict(self) -> dict[str, Any]:
        return {"src": self.src, "dst": self.dst, "outcome": self.outcome, "where": self.where,
                "reason": self.reason, "hops": [h.to_dict() for h in self.hops]}


def _vxlan_remote(fib: Fib, host: str, dev: str, next_hop: str
                  ) -> tuple[str | None, tuple[Evidence, ...], str]:
    info = fib.vxlan.get((host, dev), {})
    neigh = fib.neighbors.get((host, next_hop, dev))
    evidence: list[Evidence] = []
    if neigh:
        evidence.append(neigh[2])
        mac = (neigh[1] or "").lower()
        entry = fib.fdb.get((host, dev, mac))
        if entry:
            evidence.append(entry[1])
            return entry[0], tuple(evidence), f"vxlan {dev} vni {info.get('vni')} port " \
                                              f"{info.get('port')} -> VTEP {entry[0]}"
    if info.get("remote"):
        return str(info["remote"]), tuple(evidence), f"vxlan {dev} vni {info.get('vni')} -> " \
                                                     f"VTEP {info['remote']}"
    return None, tuple(evidence), f"vxlan {dev}: no FDB entry for next hop {next_hop}"


def resolve_source(fib: Fib, pod_cidrs: dict[str, str], src: str) -> tuple[str, str | None, str]:
    """(host, iif, source address) for a trace start: a host name, a host's address, or an
    address in a node's pod CIDR (the packet then arrives from the pod's veth)."""
    if src in fib.hosts:
        return src, None, ""
    address = ipaddress.ip_address(src)
    if src in fib.owners:
        host, _ = fib.owners[src]
        return host, None, src
    for host, cidr in pod_cidrs.items():
        if cidr and address in ipaddress.ip_network(cidr, strict=False):
            # the pod's route back is on-link through its veth: that is where it comes in
            back = lookup(fib, host, src)
            return host, back.dev if back.type == "unicast" else None, src
    raise LookupError(f"{src} is no collected host, none of its addresses and in no pod CIDR")


def trace(tables, model, src: str, dst: str, fib: Fib | None = None,
          outputs: OutputIndex | None = None) -> Trace:
    """Walk ``src`` -> ``dst`` over every collected host (see the module docstring); the FIB is
    built from ``tables`` (evidence naming files through ``outputs``) unless given."""
    fib = fib or build_fib(tables, outputs=outputs)
    pod_cidrs = {name: h.pod_cidr.value for name, h in model.hosts.items()}
    host, iif, source = resolve_source(fib, pod_cidrs, src)
    hops: list[Hop] = []
    seen: set[tuple[str, str | None]] = set()
    while len(hops) < MAX_HOPS:
        if (host, iif) in seen:
            return Trace(src, dst, tuple(hops), "loop", host, f"the packet returns to {host}")
        seen.add((host, iif))
        if host not in fib.hosts:
            # a node known from Kubernetes only: what its kernel would do was not collected
            return Trace(src, dst, tuple(hops), "unknown", host,
                         f"{host}'s routes were not collected (known from Kubernetes only)")
        if iif is not None and fib.forwarding.get(host) is False and \
                lookup(fib, host, dst).type not in LOCAL_TYPES:
            lk = Lookup(host, dst, "none", reason="forwarding is off (net.ipv4.ip_forward=0)")
            hops.append(Hop(host, iif, lk))
            return Trace(src, dst, tuple(hops), "dropped", host, lk.reason)
        lk = lookup(fib, host, dst, source or None, iif)
        if lk.type in LOCAL_TYPES:
            hops.append(Hop(host, iif, lk, evidence=lk.evidence))
            return Trace(src, dst, tuple(hops), "delivered", host, lk.reason)
        if lk.type != "unicast":
            hops.append(Hop(host, iif, lk, evidence=lk.evidence))
            return Trace(src, dst, tuple(hops), "dropped", host, lk.reason)
        gateway, dev = lk.nexthops[0] if lk.nexthops else (None, lk.dev)
        next_hop = gateway or dst
        neigh = fib.neighbors.get((host, next_hop, str(dev)))
        evidence = lk.evidence + ((neigh[2],) if neigh else ())
        tunnel = None
        target = next_hop
        if (host, str(dev)) in fib.vxlan:
            vtep, tev, tunnel = _vxlan_remote(fib, host, str(dev), next_hop)
            evidence += tev
            if vtep is None:
                hops.append(Hop(host, iif, lk, next_hop, None, neigh[0] if neigh else None,
                                tunnel, evidence))
                return Trace(src, dst, tuple(hops), "dropped", f"{host} {dev}", tunnel)
            target = vtep
        owner = fib.owners.get(target)
        next_host = owner[0] if owner and owner[0] != host else None
        state = neigh[0] if neigh else None
        hops.append(Hop(host, iif, lk, next_hop, next_host, state, tunnel, evidence))
        if state in ("FAILED", "INCOMPLETE") and not tunnel:
            return Trace(src, dst, tuple(hops), "dropped", f"{host} {dev}",
                         f"neighbour {next_hop} on {dev} is {state}: nobody answers ARP")
        if next_host is None:
            if not gateway:
                # on-link destination no collected host owns: a pod or an outside machine
                for other, cidr in pod_cidrs.items():
                    if other == host and cidr and ipaddress.ip_address(dst) in \
                            ipaddress.ip_network(cidr, strict=False):
                        return Trace(src, dst, tuple(hops), "delivered", f"{host} {dev}",
                                     f"on link to the pod network of {host} via {dev}")
            return Trace(src, dst, tuple(hops), "left", f"{host} {dev}",
                         f"leaves {host} by {dev} to {target}, which is no collected host")
        if tunnel:
            # decapsulated on the remote VTEP: the inner packet arrives on its vxlan device
            remote_dev = next((d for (h, d) in fib.vxlan if h == next_host), owner[1])
            host, iif = next_host, remote_dev
        else:
            host, iif = next_host, owner[1]
        if not source:
            source = _source_address(fib, hops[0].host, hops[0].lookup)
    return Trace(src, dst, tuple(hops), "loop", host, f"more than {MAX_HOPS} hops")


def _source_address(fib: Fib, host: str, lk: Lookup) -> str:
    if lk.route and lk.route.prefsrc:
        return lk.route.prefsrc
    for net, ip, dev in fib.addrs.get(host, ()):
        if dev == lk.dev and not ip.startswith("127."):
            return ip
    return ""
