"""Routing faults: routes a daemon holds but the kernel lacks, missing or misplaced pod routes,
traffic leaking out the management NIC, strict rp_filter on an asymmetric path.

Contract: the module-level :data:`FAULTS` list declares them (see :mod:`diag.lab.faults.base`).
Every symptom is proven with real traffic: pings that fail, ``ip route get`` choosing the
management NIC, tcpdump in the sink namespace seeing the pod's packets, kernel counters.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from diag.lab.faults import probes, routerconf
from diag.lab.faults.base import (ALL, Fault, background, bounded_ping, in_ns,
                                  ip_lines, roles)
from diag.lab.network import SINK

if TYPE_CHECKING:
    from diag.lab import Lab

WRONG_TABLE = 100


def _pod_range_route(lab: "Lab", node: str) -> str:
    h = lab.plan.host(node)
    return f"{lab.plan.pod_range} via {h.gateway} dev {h.cluster_nic.name}"


def _restore_pod_range(lab: "Lab", nodes: list[str]) -> None:
    if lab.cni == "cilium":
        for node in nodes:
            ip_lines(lab, node, [f"route replace {_pod_range_route(lab, node)}"])


def _leak(lab: "Lab", src: str, dst: str) -> list[str] | None:
    """Pod traffic src -> dst leaves src by the default route: route get says the management NIC,
    the ping fails, and the sink sees the pod's packets arrive on its management bridge."""
    info, target = lab.hosts[src], lab.hosts[dst].pod_ip
    got = probes.route_get(lab, src, target)
    if got.get("dev") != info.mgmt_iface:
        return None
    answered = []
    seen = probes.tcpdump_count(
        f"{lab.name}-{SINK}", "br-mgmt", f"icmp and src host {info.pod_ip} and dst host {target}",
        lambda: answered.append(probes.ping_fails(lab, src, target, count=2, deadline=2)),
        timeout=3)
    if seen < 1 or answered != [True]:
        return None
    return [f"{src}: ip route get {target} -> dev {got['dev']} via {got.get('gateway')} "
            "(the default route)",
            f"sink: tcpdump on br-mgmt saw {seen} ICMP packet(s) {info.pod_ip} -> {target}",
            f"ping {src} pod -> {dst} pod fails"]


def _delivers(lab: "Lab", src: str, dst: str) -> list[str] | None:
    info, target = lab.hosts[src], lab.hosts[dst].pod_ip
    got = probes.route_get(lab, src, target)
    if got.get("dev") == info.mgmt_iface or not probes.pod_ping(lab, src, dst, count=1):
        return None
    return [f"{src}: ip route get {target} -> dev {got.get('dev')}; ping {src} pod -> {dst} pod ok"]


# --- rib-not-in-fib -----------------------------------------------------------------------------

def _rib_inject(lab: "Lab") -> dict:
    r = roles(lab)
    ip_lines(lab, r.node.name, [f"route del {_pod_range_route(lab, r.node.name)}"])
    background(lab, "leak-ping", r.node.name, bounded_ping(r.remote.pod_ip), pod=True)
    return {"node": r.node.name}


def _rib_heal(lab: "Lab") -> None:
    _restore_pod_range(lab, [roles(lab).node.name])


def _rib_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    held = probes.node_bgp_prefixes(lab, r.node.name)
    if r.remote.pod_cidr not in held:
        return None
    leak = _leak(lab, r.node.name, r.remote.name)
    return leak and [f"{r.node.name}: GoBGP holds {r.remote.pod_cidr} as a best path; the kernel "
                     "has no route covering it"] + leak


def _rib_healthy(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    return _delivers(lab, r.node.name, r.remote.name)


# --- missing-podcidr-route-other-subnet ---------------------------------------------------------

def _direct_routes(lab: "Lab") -> dict[str, list[str]]:
    """autoDirectNodeRoutes: each node routes the pod CIDRs of nodes on its own subnet directly."""
    out = {}
    for node in lab.plan.nodes:
        # proto static + metric 10 mark them as ours: a heal without the fault present must
        # never match BIRD's own route to the same prefix and next hop (proto bird metric 32)
        out[node.name] = [
            f"{peer.pod_cidr} via {peer.ip} dev {node.cluster_nic.name} proto static metric 10"
            for peer in lab.plan.nodes
            if peer is not node and peer.cluster_nic.segment == node.cluster_nic.segment]
    return out


def _offlink_inject(lab: "Lab") -> dict:
    r = roles(lab)
    routerconf.export_to(lab, [n.ip for n in lab.plan.nodes], allowed=False)
    for node, direct in _direct_routes(lab).items():
        lines = [f"route replace {route}" for route in direct]
        if lab.cni == "cilium":
            lines.insert(0, f"route del {_pod_range_route(lab, node)}")
        ip_lines(lab, node, lines)
    background(lab, "leak-ping", r.node.name, bounded_ping(r.remote.pod_ip), pod=True)
    return {}


def _offlink_heal(lab: "Lab") -> None:
    for node, direct in _direct_routes(lab).items():
        ip_lines(lab, node, [f"route del {route}" for route in direct])
    _restore_pod_range(lab, [n.name for n in lab.plan.nodes])
    routerconf.export_to(lab, [n.ip for n in lab.plan.nodes], allowed=True)


def _offlink_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    if any(probes.node_bgp_prefixes(lab, n.name) for n in lab.plan.nodes):
        return None                                  # BGP routes still around
    direct = probes.route_get(lab, r.node.name, r.neighbor.pod_ip)
    if direct.get("gateway") != r.neighbor.ip or not probes.pod_ping(lab, r.node.name,
                                                                      r.neighbor.name, count=1):
        return None
    leak = _leak(lab, r.node.name, r.remote.name)
    return leak and ["no node holds a BGP route to another pod CIDR",
                     f"{r.node.name}: {r.neighbor.pod_cidr} via {r.neighbor.ip} (on-link node, "
                     f"direct route) works; {r.remote.pod_cidr} of off-link {r.remote.name} has "
                     "no route"] + leak


def _offlink_healthy(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    if not probes.all_established(lab) or not lab.daemons.routes_ready():
        return None
    return _delivers(lab, r.node.name, r.remote.name)


# --- egress-leak-default-route ------------------------------------------------------------------

def _leak_inject(lab: "Lab") -> dict:
    r = roles(lab)
    routerconf.export_to(lab, [r.node.ip], allowed=False)
    if lab.cni == "cilium":
        ip_lines(lab, r.node.name, [f"route del {_pod_range_route(lab, r.node.name)}"])
    background(lab, "leak-ping", r.node.name, bounded_ping(r.remote.pod_ip), pod=True)
    return {}


def _leak_heal(lab: "Lab") -> None:
    r = roles(lab)
    _restore_pod_range(lab, [r.node.name])
    routerconf.export_to(lab, [r.node.ip], allowed=True)


def _leak_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    held = probes.node_bgp_prefixes(lab, r.node.name)
    if held:
        return None
    peers_ok = probes.route_get(lab, r.neighbor.name, r.remote.pod_ip).get("dev") \
        == r.neighbor.cluster_nic.name
    leak = _leak(lab, r.node.name, r.remote.name)
    return leak and peers_ok and [
        f"{r.node.name}: no daemon holds {r.remote.pod_cidr} (BGP prefixes held: none)",
        f"{r.neighbor.name} still routes it via its cluster NIC"] + leak


def _leak_healthy(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    if not lab.daemons.routes_ready():
        return None
    return _delivers(lab, r.node.name, r.remote.name)


# --- route-wrong-table --------------------------------------------------------------------------

def _table_inject(lab: "Lab") -> dict:
    r = roles(lab)
    if lab.cni == "cilium":
        route = _pod_range_route(lab, r.node.name)
        ip_lines(lab, r.node.name, [f"route replace {route} table {WRONG_TABLE}",
                                    f"route del {route}"])
    else:
        from dataclasses import replace

        lab.daemons.restart_bgp(r.node.name, replace(lab.files.bgp_options(), kernel_table=WRONG_TABLE))
    background(lab, "leak-ping", r.node.name, bounded_ping(r.remote.pod_ip), pod=True)
    return {"table": WRONG_TABLE}


def _table_heal(lab: "Lab") -> None:
    r = roles(lab)
    if lab.cni == "cilium":
        ip_lines(lab, r.node.name, [f"route flush table {WRONG_TABLE}"])
        _restore_pod_range(lab, [r.node.name])
    elif not lab.files.bgp_config_is(r.node.name):
        lab.daemons.restart_bgp(r.node.name)
        ip_lines(lab, r.node.name, [f"route flush table {WRONG_TABLE}"])


def _table_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    moved = {route.get("dst") for route in probes.routes(lab, r.node.name, "table",
                                                         str(WRONG_TABLE))}
    wanted = lab.plan.pod_range if lab.cni == "cilium" else r.remote.pod_cidr
    if wanted not in moved:
        return None
    rules = in_ns(lab, r.node.name, ["ip", "-j", "rule"]).stdout
    if f'"table":"{WRONG_TABLE}"' in rules.replace(" ", ""):
        return None
    leak = _leak(lab, r.node.name, r.remote.name)
    return leak and [f"{r.node.name}: {wanted} is in table {WRONG_TABLE}, which no ip rule "
                     "looks up; the main table lacks it"] + leak


def _table_healthy(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    if probes.routes(lab, r.node.name, "table", str(WRONG_TABLE)):
        return None
    if lab.cni == "calico" and not probes.all_established(lab):
        return None
    return _delivers(lab, r.node.name, r.remote.name)


# --- rp-filter-strict ---------------------------------------------------------------------------

def _rp_route(lab: "Lab") -> str:
    """On the remote node: the first node's pod CIDR via that node's management address — a
    shortcut over the management segment, so replies leave by another NIC than requests arrive."""
    r = roles(lab)
    node_mgmt = r.node.nic("mgmt").ip
    return f"{r.node.pod_cidr} via {node_mgmt} dev {r.remote.nic('mgmt').name}"


def _rp_sysctls(lab: "Lab", value: str) -> None:
    r = roles(lab)
    iface = r.remote.cluster_nic.name
    in_ns(lab, r.remote.name, ["sysctl", "-q", "-w", f"net.ipv4.conf.all.rp_filter={value}",
                               f"net.ipv4.conf.{iface}.rp_filter={value}"], check=True)


def _rp_inject(lab: "Lab") -> dict:
    r = roles(lab)
    ip_lines(lab, r.remote.name, [f"route replace {_rp_route(lab)}"], check=True)
    _rp_sysctls(lab, "1")
    background(lab, "rp-ping", r.node.name, bounded_ping(r.remote.pod_ip), pod=True)
    return {}


def _rp_heal(lab: "Lab") -> None:
    r = roles(lab)
    _rp_sysctls(lab, "0")
    ip_lines(lab, r.remote.name, [f"route del {_rp_route(lab)}"])


def _rp_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    before = probes.nstat(lab, r.remote.name, "TcpExtIPReversePathFilter")
    if not probes.pod_ping_fails(lab, r.node.name, r.remote.name, count=2, deadline=2):
        return None
    after = probes.nstat(lab, r.remote.name, "TcpExtIPReversePathFilter")
    dropped = after["TcpExtIPReversePathFilter"] - before["TcpExtIPReversePathFilter"]
    back = probes.route_get(lab, r.remote.name, r.node.pod_ip)
    if dropped < 1 or back.get("dev") != r.remote.nic("mgmt").name:
        return None
    return [f"{r.remote.name}: rp_filter=1 (strict); requests from {r.node.pod_ip} arrive on "
            f"{r.remote.cluster_nic.name} but the route back leaves by {back['dev']}",
            f"{r.remote.name}: nstat IPReversePathFilter +{dropped} during a ping",
            f"ping {r.node.name} pod -> {r.remote.name} pod fails"]


def _rp_healthy(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    proc = in_ns(lab, r.remote.name, ["sysctl", "-n", "net.ipv4.conf.all.rp_filter"])
    if proc.stdout.strip() != "0":
        return None
    return _delivers(lab, r.node.name, r.remote.name)


FAULTS = [
    Fault("rib-not-in-fib",
          "pod traffic to other nodes: the kernel has no route for what GoBGP learned",
          "cilium without the static pod-range route on k8s-ctr: GoBGP holds the remote pod "
          "CIDRs as best paths, the kernel lacks them, pod traffic leaks out the management NIC",
          "ROUTE_RIB_NOT_IN_FIB", ("cilium",), ("native",),
          _rib_inject, _rib_heal, _rib_symptom, _rib_healthy),
    Fault("missing-podcidr-route-other-subnet",
          "pod traffic to the node behind the router",
          "no BGP routes on the nodes (router exports nothing to them); each node routes only "
          "the pod CIDRs of nodes on its own subnet directly (autoDirectNodeRoutes)",
          "ROUTE_MISSING_PODCIDR_OFF_LINK", ALL, ("native",),
          _offlink_inject, _offlink_heal, _offlink_symptom, _offlink_healthy),
    Fault("egress-leak-default-route",
          "k8s-ctr's pod traffic to other nodes leaves by eth0 into the sink",
          "k8s-ctr gets no pod routes from any daemon (router exports nothing to it) and loses "
          "its pod-range route (cilium); its peers keep theirs",
          "EGRESS_LEAK_DEFAULT_ROUTE", ALL, ("native",),
          _leak_inject, _leak_heal, _leak_symptom, _leak_healthy),
    Fault("route-wrong-table",
          "k8s-ctr's pod traffic to other nodes (leaks out eth0)",
          f"k8s-ctr's pod routes moved to table {WRONG_TABLE}, which no ip rule uses (cilium: the "
          "static pod-range route; calico: BIRD's kernel protocol exports to that table)",
          "ROUTE_WRONG_TABLE_OR_BLACKHOLE", ALL, ("native",),
          _table_inject, _table_heal, _table_symptom, _table_healthy),
    Fault("rp-filter-strict",
          "pod traffic between k8s-ctr and k8s-w0, both directions",
          "k8s-w0 routes k8s-ctr's pod CIDR back over the management segment (asymmetric "
          "path) and has strict rp_filter: packets arriving on the cluster NIC are dropped",
          "ASYMMETRIC_RP_FILTER", ALL, ("native",),
          _rp_inject, _rp_heal, _rp_symptom, _rp_healthy),
]
