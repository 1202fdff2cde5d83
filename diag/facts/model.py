"""The cluster model: what diag believes the cluster looks like, and how it came to believe it.

Every inferred value is an :class:`Inferred`: the value, ``how`` (one line a person can check,
naming hosts, files and addresses), ``source`` (``declared`` for the inventory, else the kind of
evidence: ``bgp-session``, ``bgp-origination``, ``pod-route``, ``bgp-learned``, ``tunnel-fdb``,
``route``, ``arp``, ...) and ``agrees`` (other independent sources that gave the same value).
``value`` None means diag found no evidence; ``how`` then says what was looked for. Declared
values (inventory: role, pod_cidr, cluster_iface, lb_ips) always win over inference; a
disagreeing inference is kept in ``conflicts``.

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


@dataclass(frozen=True)
class ClusterModel:
    hosts: dict[str, HostModel]
    pod_range: Inferred
    lb_ips: Inferred
    tunnels: tuple[TunnelEndpoint, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

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
