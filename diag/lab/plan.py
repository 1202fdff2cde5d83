"""Addressing plans and the lab topology, as plain data.

Contract: :func:`addressing_plan` returns an :class:`AddressingPlan` (frozen, no I/O) describing the
classic cross-subnet cluster: a router on two node subnets, three nodes (two on the first subnet,
one behind the router), one pod per node, a management NIC per node towards a sink. Everything
else in the lab (namespaces, configs, tests) is derived from this record, never from literals, so
that the ``alt`` plan — other subnets, pod range, NIC names, AS numbers (4-octet on the nodes) —
proves nothing downstream depends on the default constants.

Host names (``router``, ``k8s-ctr``, ``k8s-w1``, ``k8s-w0``) are the same in every plan: they are
the names of the SSH endpoints and of the lab's commands.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

ADDRESSINGS = ("default", "alt")
CNIS = ("cilium", "calico")
MODES = ("native", "vxlan")
# How the router (the ToR) configures its BGP peers: one neighbor per node address; a node alone
# on its segment peered by interface (``neighbor IFACE interface``, over a /31 link); dynamic
# neighbours (``bgp listen range <node subnet> peer-group``).
PEERINGS = ("address", "interface", "range")
BIRDS = ("1.6", "2")           # calico: Calico's BIRD 1.6 (default) or BIRD 2

VXLAN_PORT = 8472      # Linux/Cilium/Flannel VXLAN port (IANA's is 4789)
VXLAN_VNI = 2
VXLAN_MTU = 1450


@dataclass(frozen=True)
class Nic:
    """One interface of a host on a lab segment."""

    name: str          # interface name inside the host's namespace (eth1, enp0s8, ...)
    segment: str       # segment key: "lan1", "lan2" or "mgmt"
    address: str       # "192.168.10.100/24"

    @property
    def ip(self) -> str:
        return self.address.split("/")[0]


@dataclass(frozen=True)
class Host:
    """A router or a node of the plan."""

    name: str                  # "router", "k8s-ctr", ...
    role: str                  # "router" or "node"
    short: str                 # short tag for derived interface names (<= 4 chars)
    asn: int
    nics: tuple[Nic, ...]
    pod_cidr: str = ""         # nodes only: "172.20.0.0/24"
    pod_ip: str = ""           # nodes only: the pod's address in pod_cidr
    gateway: str = ""          # nodes only: the router's address on this node's cluster subnet

    def nic(self, segment: str) -> Nic:
        for nic in self.nics:
            if nic.segment == segment:
                return nic
        raise KeyError(f"{self.name} has no NIC on {segment}")

    @property
    def cluster_nic(self) -> Nic:
        """The NIC carrying BGP and pod traffic (the first non-management NIC)."""
        return next(nic for nic in self.nics if nic.segment != "mgmt")

    @property
    def ip(self) -> str:
        """The host's cluster address (the BGP peering and SSH address)."""
        return self.cluster_nic.ip

    @property
    def pod_gateway(self) -> str:
        """The node-side address of the pod's veth (first host of the pod CIDR)."""
        return str(next(ipaddress.ip_network(self.pod_cidr).hosts()))

    @property
    def vtep_ip(self) -> str:
        """The node's VXLAN tunnel address (the pod CIDR's network address, as Calico does)."""
        return str(ipaddress.ip_network(self.pod_cidr).network_address)


@dataclass(frozen=True)
class Segment:
    key: str
    cidr: str


@dataclass(frozen=True)
class AddressingPlan:
    key: str
    pod_range: str             # covers every node's pod CIDR; the cilium static route
    mgmt_gateway: str          # the sink's address, every node's default gateway (via mgmt NIC)
    segments: tuple[Segment, ...]
    hosts: tuple[Host, ...]
    peering: str = "address"   # one of PEERINGS: how the router configures its peers

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    @property
    def router(self) -> Host:
        return next(h for h in self.hosts if h.role == "router")

    @property
    def nodes(self) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if h.role == "node")

    def segment(self, key: str) -> Segment:
        return next(s for s in self.segments if s.key == key)

    def router_nic_for(self, node: Host) -> Nic:
        """The router's NIC on the node's cluster segment."""
        return self.router.nic(node.cluster_nic.segment)

    def interface_peered(self, node: Host) -> bool:
        """True if the router peers with ``node`` by interface (``peering`` "interface": the
        node alone on its segment, on a /31 link)."""
        return self.peering == "interface" and \
            sum(n.cluster_nic.segment == node.cluster_nic.segment for n in self.nodes) == 1


def _node(name: str, short: str, asn: int, mgmt: Nic, cluster: Nic, pod_cidr: str,
          pod_host: int, gateway: str) -> Host:
    net = ipaddress.ip_network(pod_cidr)
    return Host(name=name, role="node", short=short, asn=asn, nics=(mgmt, cluster),
                pod_cidr=pod_cidr, pod_ip=str(net.network_address + pod_host), gateway=gateway)


def _default() -> AddressingPlan:
    asn = 65001
    return AddressingPlan(
        key="default",
        pod_range="172.20.0.0/16",
        mgmt_gateway="10.0.2.2",
        segments=(Segment("lan1", "192.168.10.0/24"), Segment("lan2", "192.168.20.0/24"),
                  Segment("mgmt", "10.0.2.0/24")),
        hosts=(
            Host(name="router", role="router", short="rt", asn=65000,
                 nics=(Nic("eth1", "lan1", "192.168.10.200/24"),
                       Nic("eth2", "lan2", "192.168.20.200/24"))),
            _node("k8s-ctr", "ctr", asn, Nic("eth0", "mgmt", "10.0.2.15/24"),
                  Nic("eth1", "lan1", "192.168.10.100/24"), "172.20.0.0/24", 10, "192.168.10.200"),
            _node("k8s-w1", "w1", asn, Nic("eth0", "mgmt", "10.0.2.16/24"),
                  Nic("eth1", "lan1", "192.168.10.101/24"), "172.20.1.0/24", 10, "192.168.10.200"),
            _node("k8s-w0", "w0", asn, Nic("eth0", "mgmt", "10.0.2.17/24"),
                  Nic("eth1", "lan2", "192.168.20.100/24"), "172.20.2.0/24", 10, "192.168.20.200"),
        ),
    )


def _alt() -> AddressingPlan:
    # Other subnets, router at .1, a /16 pod range elsewhere, predictable NIC names and a 4-octet
    # node AS (so OPEN carries AS_TRANS 23456 and decoders must read the capability).
    asn = 4200000101
    return AddressingPlan(
        key="alt",
        pod_range="10.244.0.0/16",
        mgmt_gateway="172.31.0.1",
        segments=(Segment("lan1", "10.31.1.0/24"), Segment("lan2", "10.31.2.0/24"),
                  Segment("mgmt", "172.31.0.0/24")),
        hosts=(
            Host(name="router", role="router", short="rt", asn=64512,
                 nics=(Nic("enp0s8", "lan1", "10.31.1.1/24"),
                       Nic("enp0s9", "lan2", "10.31.2.1/24"))),
            _node("k8s-ctr", "ctr", asn, Nic("enp0s3", "mgmt", "172.31.0.10/24"),
                  Nic("enp0s8", "lan1", "10.31.1.10/24"), "10.244.10.0/24", 25, "10.31.1.1"),
            _node("k8s-w1", "w1", asn, Nic("enp0s3", "mgmt", "172.31.0.11/24"),
                  Nic("enp0s8", "lan1", "10.31.1.11/24"), "10.244.11.0/24", 25, "10.31.1.1"),
            _node("k8s-w0", "w0", asn, Nic("enp0s3", "mgmt", "172.31.0.12/24"),
                  Nic("enp0s8", "lan2", "10.31.2.20/24"), "10.244.20.0/24", 25, "10.31.2.1"),
        ),
    )


def _with_peering(plan: AddressingPlan, peering: str) -> AddressingPlan:
    """``plan`` whose router peers as ``peering`` says. "interface" turns the segment of each
    node alone on it into a /31 between the node (its address kept) and the router (the other
    address of the /31): FRR derives an interface peer's IPv4 address from a /30 or /31, the
    routed access link of an L3-to-the-host design."""
    if peering not in PEERINGS:
        raise ValueError(f"unknown peering {peering!r} (choose: {', '.join(PEERINGS)})")
    plan = replace(plan, peering=peering)
    if peering != "interface":
        return plan
    hosts, segments = list(plan.hosts), list(plan.segments)
    for node in plan.nodes:
        if not plan.interface_peered(node):
            continue
        own = node.cluster_nic
        address = ipaddress.ip_interface(own.address).ip
        link = ipaddress.ip_network(f"{address}/31", strict=False)
        router_ip = next(a for a in (link.network_address, link.broadcast_address)
                         if a != address)
        hosts = [replace(h, nics=tuple(replace(n, address=f"{router_ip}/31")
                                       if n.segment == own.segment else n for n in h.nics))
                 if h.role == "router" else
                 replace(h, nics=tuple(replace(n, address=f"{address}/31") if n is own else n
                                       for n in h.nics), gateway=str(router_ip))
                 if h.name == node.name else h for h in hosts]
        segments = [replace(s, cidr=str(link)) if s.key == own.segment else s for s in segments]
    return replace(plan, hosts=tuple(hosts), segments=tuple(segments))


def addressing_plan(key: str, peering: str = "address") -> AddressingPlan:
    """The plan named ``key`` ("default" or "alt"), its router peering as ``peering``."""
    if key == "default":
        return _with_peering(_default(), peering)
    if key == "alt":
        return _with_peering(_alt(), peering)
    raise ValueError(f"unknown addressing {key!r} (choose: {', '.join(ADDRESSINGS)})")


MD5_PEER = "k8s-w1"            # the one node whose session to the router uses TCP-MD5


def pod_veth_name(cni: str) -> str:
    """The node-side name of the pod's veth, in the style of the CNI."""
    return "lxc_pod" if cni == "cilium" else "cali_pod"


def vxlan_device_name(cni: str) -> str:
    return "cilium_vxlan" if cni == "cilium" else "vxlan.calico"


def vxlan_mac(host: Host) -> str:
    """A stable, locally administered MAC for a node's VTEP (derived from its cluster address)."""
    octets = ipaddress.ip_address(host.ip).packed
    return "02:dd:" + ":".join(f"{b:02x}" for b in octets)
