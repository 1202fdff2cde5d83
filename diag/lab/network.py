"""Build the lab's network: namespaces, veths, bridges, addresses, routes, VXLAN devices.

Contract: :func:`namespace_names` gives every namespace a lab of that name may own (used both to
create and, after a crash, to find leftovers); :func:`build` creates them from an
:class:`~diag.lab.plan.AddressingPlan`. All interfaces are created *inside* lab namespaces (``ip
link add ... netns X`` places both veth ends directly), so names never collide with the host's and
need not carry the lab name: bridge ports are ``<host short>-<nic>`` (<= 15 chars).

Layout: ``<lab>-switch`` holds one Linux bridge per node subnet (``br-lan1``, ``br-lan2``);
``<lab>-sink`` holds the management bridge with the nodes' default gateway (it has no uplink and
forwarding off: it absorbs whatever leaks out the management NIC); ``<lab>-<host>`` is each
router/node; ``<lab>-<host>-pod`` is each node's one pod behind a veth.
"""
from __future__ import annotations

import ipaddress

from diag.lab import plan as P
from diag.lab.system import ip_batch, netns_add, netns_list, run, sysctl

SWITCH = "switch"
SINK = "sink"
ALL_HOST_NAMES = ("router", "k8s-ctr", "k8s-w1", "k8s-w0")


def host_netns(lab: str, host: str) -> str:
    return f"{lab}-{host}"


def pod_netns(lab: str, host: str) -> str:
    return f"{lab}-{host}-pod"


def namespace_names(lab: str, plan: P.AddressingPlan | None = None) -> list[str]:
    """Every namespace of lab ``lab``, in creation order (all plans' hosts when plan is None)."""
    hosts = [h.name for h in plan.hosts] if plan else list(ALL_HOST_NAMES)
    nodes = [h.name for h in plan.nodes] if plan else [h for h in ALL_HOST_NAMES if h != "router"]
    return ([host_netns(lab, h) for h in hosts] + [pod_netns(lab, n) for n in nodes]
            + [f"{lab}-{SWITCH}", f"{lab}-{SINK}"])


def _port(host: P.Host, nic: P.Nic) -> str:
    return f"{host.short}-{nic.name}"[:15]


def _prefixlen(cidr: str) -> int:
    return ipaddress.ip_network(cidr).prefixlen


def build(lab: str, plan: P.AddressingPlan, cni: str, mode: str) -> None:
    """Create and wire every namespace of the lab (they must not exist yet)."""
    names = namespace_names(lab, plan)
    existing = netns_list()
    for ns in names:
        if ns not in existing:
            netns_add(ns)
    _sysctls(lab, plan)

    switch, sink = f"{lab}-{SWITCH}", f"{lab}-{SINK}"
    sw_lines = ["link set lo up"]
    for seg in plan.segments:
        if seg.key != "mgmt":
            sw_lines += [f"link add br-{seg.key} type bridge", f"link set br-{seg.key} up"]
    sink_lines = ["link set lo up", "link add br-mgmt type bridge",
                  f"addr add {plan.mgmt_gateway}/{_prefixlen(plan.segment('mgmt').cidr)} dev br-mgmt",
                  "link set br-mgmt up"]
    for host in plan.hosts:
        ns = host_netns(lab, host.name)
        for nic in host.nics:
            port = _port(host, nic)
            lines = sink_lines if nic.segment == "mgmt" else sw_lines
            bridge = f"br-{nic.segment}"
            lines += [f"link add {port} type veth peer name {nic.name} netns {ns}",
                      f"link set {port} master {bridge} up"]
    ip_batch(switch, sw_lines)
    ip_batch(sink, sink_lines)

    pod_mtu = P.VXLAN_MTU if mode == "vxlan" else 1500
    for host in plan.hosts:
        ip_batch(host_netns(lab, host.name), _host_lines(lab, plan, host, cni, mode, pod_mtu))
    for node in plan.nodes:
        if plan.interface_peered(node):
            # FRR's interface peer wants an IPv6 link-local address on its interface even for
            # an IPv4 session (bgp_zebra_nexthop_set); IPv6 comes on for that NIC only
            nic = plan.router_nic_for(node).name
            sysctl(host_netns(lab, plan.router.name), {
                f"net.ipv6.conf.{nic}.accept_dad": "0", f"net.ipv6.conf.{nic}.disable_ipv6": "0"})
    for node in plan.nodes:
        plen = _prefixlen(node.pod_cidr)
        ip_batch(pod_netns(lab, node.name), [
            "link set lo up",
            f"link set eth0 mtu {pod_mtu} up",
            f"addr add {node.pod_ip}/{plen} dev eth0",
            f"route add default via {node.pod_gateway} dev eth0",
        ])
    if mode == "vxlan":
        for node in plan.nodes:
            run(["bridge", "-n", host_netns(lab, node.name), "-batch", "-"],
                input="\n".join(vxlan_fdb_lines(plan, node, cni)) + "\n")


def _sysctls(lab: str, plan: P.AddressingPlan) -> None:
    # IPv6 off everywhere: no DAD, router solicitations or MLD noise in captures. IPv4 settings
    # are inherited from the host's namespace, so the ones the lab relies on are set explicitly.
    quiet = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
    routing = {**quiet, "net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0",
               "net.ipv4.conf.default.rp_filter": "0"}
    for host in plan.hosts:
        sysctl(host_netns(lab, host.name), routing)
    for node in plan.nodes:
        sysctl(pod_netns(lab, node.name), {**quiet, "net.ipv4.ip_forward": "0"})
    sysctl(f"{lab}-{SWITCH}", {**quiet, "net.ipv4.ip_forward": "0"})
    sysctl(f"{lab}-{SINK}", {**quiet, "net.ipv4.ip_forward": "0"})


def _host_lines(lab: str, plan: P.AddressingPlan, host: P.Host, cni: str, mode: str,
                pod_mtu: int) -> list[str]:
    lines = ["link set lo up"]
    for nic in host.nics:
        lines += [f"addr add {nic.address} dev {nic.name}", f"link set {nic.name} up"]
    if host.role == "router":
        return lines
    # the two-NIC trap: default route via the management NIC; the other node subnets via router
    mgmt = host.nic("mgmt")
    lines.append(f"route add default via {plan.mgmt_gateway} dev {mgmt.name}")
    own = host.cluster_nic
    for seg in plan.segments:
        if seg.key not in ("mgmt", own.segment):
            lines.append(f"route add {seg.cidr} via {host.gateway} dev {own.name}")
    veth = P.pod_veth_name(cni)
    lines += [
        f"link add {veth} type veth peer name eth0 netns {pod_netns(lab, host.name)}",
        f"addr add {host.pod_gateway}/{_prefixlen(host.pod_cidr)} dev {veth}",
        f"link set {veth} mtu {pod_mtu} up",
    ]
    if cni == "cilium":
        # Cilium's GoBGP learns but never installs routes; operators route the pod range via the
        # router on the cluster NIC. (Removing this is the rib-not-in-fib fault.)
        lines.append(f"route add {plan.pod_range} via {host.gateway} dev {own.name}")
    if mode == "vxlan":
        lines += vxlan_lines(plan, host, cni)
    return lines


def vxlan_lines(plan: P.AddressingPlan, host: P.Host, cni: str,
                port: int = P.VXLAN_PORT, vni: int = P.VXLAN_VNI) -> list[str]:
    """ip batch lines creating ``host``'s VXLAN device on UDP ``port`` with ``vni``, its address,
    a permanent neighbor and a route per remote VTEP (the FDB entries are
    :func:`vxlan_fdb_lines`). The vxlan-port-mismatch and vxlan-vni-mismatch faults re-create the
    device with another port or VNI through this."""
    dev = P.vxlan_device_name(cni)
    lines = [
        f"link add {dev} type vxlan id {vni} dstport {port} local {host.ip} "
        f"dev {host.cluster_nic.name} nolearning",
        f"link set {dev} address {P.vxlan_mac(host)} mtu {P.VXLAN_MTU} up",
        f"addr add {host.vtep_ip}/32 dev {dev}",
    ]
    for peer in plan.nodes:
        if peer is not host:
            lines += [
                f"neigh add {peer.vtep_ip} lladdr {P.vxlan_mac(peer)} dev {dev} nud permanent",
                f"route add {peer.pod_cidr} via {peer.vtep_ip} dev {dev} onlink",
            ]
    return lines


def vxlan_fdb_lines(plan: P.AddressingPlan, node: P.Host, cni: str) -> list[str]:
    """``bridge -batch`` lines: one FDB entry per remote VTEP on ``node``'s VXLAN device."""
    dev = P.vxlan_device_name(cni)
    return [f"fdb append {P.vxlan_mac(peer)} dev {dev} dst {peer.ip}"
            for peer in plan.nodes if peer is not node]
