"""The cluster model: what diag believes the cluster looks like, and how it came to believe it.

Every inferred value is an :class:`Inferred`: the value, ``how`` (one line a person can check,
naming hosts, files and addresses), ``source`` (``declared`` for the inventory, else the kind of
evidence: ``kubernetes`` for the cluster's own objects, ``bgp-session``, ``bgp-origination``,
``pod-route``, ``bgp-learned``, ``tunnel-fdb``, ``route``, ``arp``, ...) and ``agrees`` (other
independent sources that gave the same value). ``value`` None means diag found no evidence;
``how`` then says what was looked for. Declared values (inventory: role, pod_cidr,
cluster_iface, lb_ips) always win, then what Kubernetes says (``how: kubernetes <Kind>/<name>
...``: node IP, pod CIDR, role, pod range, CNI, IPAM, routing, tunnel, LoadBalancer IPs), then
inference; a disagreeing value is kept in ``conflicts`` (``"<source>: <value>"``).

Records are frozen dataclasses and import nothing from diag, so analyzers can use them freely.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ROLES = ("node", "router", "other")


@dataclass(frozen=True)
class Inferred:
    value: Any
    how: str
    source: str = "none"
    agrees: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        return self.value is not None


UNKNOWN = Inferred(None, "no evidence")
NO_NODE = Inferred(None, "no Kubernetes Node")
NOT_READ = Inferred(None, "no Kubernetes objects read")


@dataclass(frozen=True)
class TunnelEndpoint:
    """One overlay device of a host: what it encapsulates with and to whom."""

    host: str
    device: str
    kind: str                 # vxlan | geneve
    vni: int | None
    port: int | None
    local: str | None         # underlay source address (device's local, else the node IP)
    underlay_dev: str | None
    mtu: int | None
    remotes: tuple[str, ...]  # VTEPs from the FDB (and the device's fixed remote)
    how: str


@dataclass(frozen=True)
class HostModel:
    name: str
    role: Inferred
    node_ip: Inferred
    cluster_iface: Inferred
    default_iface: Inferred
    pod_cidr: Inferred
    asn: Inferred
    peering_ips: tuple[str, ...] = ()
    forwarding: bool | None = None
    daemons: tuple[str, ...] = ()
    kube_node: Inferred = NO_NODE        # the Kubernetes Node this host is (value: its name)
    collected: bool = True               # False: known from Kubernetes only (no host outputs)


@dataclass(frozen=True)
class ClusterModel:
    hosts: dict[str, HostModel]
    pod_range: Inferred
    lb_ips: Inferred
    tunnels: tuple[TunnelEndpoint, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    cni: Inferred = NOT_READ             # cilium | calico
    ipam: Inferred = NOT_READ            # kubernetes | cluster-pool | multi-pool | calico | ...
    routing: Inferred = NOT_READ         # native | tunnel | cross-subnet
    tunnel: Inferred = NOT_READ          # {"protocol": vxlan|geneve|ipip, "port": int|None}

    def nodes(self) -> list[HostModel]:
        return [h for h in self.hosts.values() if h.role.value == "node"]

    def routers(self) -> list[HostModel]:
        return [h for h in self.hosts.values() if h.role.value == "router"]

    def host_of_ip(self, address: str) -> str | None:
        for host in self.hosts.values():
            if address == host.node_ip.value or address in host.peering_ips:
                return host.name
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
