"""The Kubernetes kinds diag reads, as the API serves them.

Contract: :data:`KINDS` lists every kind (one :class:`Kind` per API group and kind) with its
plural resource name, scope and served versions, newest first. The versions are the ones the
releases diag reads serve: Cilium's BGPv2 kinds are ``cilium.io/v2alpha1`` on 1.16-1.17 and ``v2``
from 1.18 (which still serves v2alpha1), CiliumLoadBalancerIPPool moved to v2 in 1.18 as well,
CiliumBGPPeeringPolicy and CiliumL2AnnouncementPolicy are v2alpha1 only. Calico's kinds exist
twice: as CRDs (``crd.projectcalico.org/v1``, always installed) and through the Calico API
server (``projectcalico.org/v3``, only when it is installed); MetalLB's BGPPeer is ``v1beta2``
(``v1beta1`` before 0.13.10).

:func:`find` looks a kind up by group and kind, :func:`by_resource` by group and plural.
Nothing here talks to a cluster; which of these kinds a cluster really has is decided by its
discovery (:mod:`diag.collect.kube`).
"""
from __future__ import annotations

from dataclasses import dataclass

CORE = "core"
CILIUM = "cilium"
CALICO = "calico"
METALLB = "metallb"


@dataclass(frozen=True)
class Kind:
    group: str                       # "" for the core group
    kind: str
    plural: str
    namespaced: bool
    versions: tuple[str, ...]        # served versions, the newest releases' preferred first
    family: str                      # core, cilium, calico, metallb
    short_names: tuple[str, ...] = ()

    @property
    def resource(self) -> str:
        """The fully qualified resource kubectl takes (``ciliumnodes.cilium.io``, ``nodes``)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def api_version(self, version: str | None = None) -> str:
        version = version or self.versions[0]
        return f"{self.group}/{version}" if self.group else version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


def _cilium(kind: str, plural: str, versions: tuple[str, ...], *short: str) -> Kind:
    return Kind("cilium.io", kind, plural, False, versions, CILIUM, short)


_BGPV2 = ("v2", "v2alpha1")
_CALICO_KINDS = (
    ("BGPConfiguration", "bgpconfigurations"), ("BGPPeer", "bgppeers"),
    ("BGPFilter", "bgpfilters"), ("IPPool", "ippools"), ("BlockAffinity", "blockaffinities"),
    ("IPAMBlock", "ipamblocks"), ("CalicoNodeStatus", "caliconodestatuses"),
    ("FelixConfiguration", "felixconfigurations"),
)

KINDS: tuple[Kind, ...] = (
    Kind("", "Node", "nodes", False, ("v1",), CORE, ("no",)),
    Kind("", "Service", "services", True, ("v1",), CORE, ("svc",)),
    Kind("", "ConfigMap", "configmaps", True, ("v1",), CORE, ("cm",)),
    Kind("coordination.k8s.io", "Lease", "leases", True, ("v1",), CORE),
    _cilium("CiliumNode", "ciliumnodes", ("v2",), "cn", "ciliumn"),
    _cilium("CiliumBGPClusterConfig", "ciliumbgpclusterconfigs", _BGPV2),
    _cilium("CiliumBGPPeerConfig", "ciliumbgppeerconfigs", _BGPV2),
    _cilium("CiliumBGPAdvertisement", "ciliumbgpadvertisements", _BGPV2),
    _cilium("CiliumBGPNodeConfig", "ciliumbgpnodeconfigs", _BGPV2),
    _cilium("CiliumBGPNodeConfigOverride", "ciliumbgpnodeconfigoverrides", _BGPV2),
    _cilium("CiliumBGPPeeringPolicy", "ciliumbgppeeringpolicies", ("v2alpha1",), "bgpp"),
    _cilium("CiliumLoadBalancerIPPool", "ciliumloadbalancerippools", ("v2", "v2alpha1"),
            "ippools", "ippool", "lbippool", "lbippools"),
    _cilium("CiliumL2AnnouncementPolicy", "ciliuml2announcementpolicies", ("v2alpha1",),
            "l2announcement"),
    _cilium("CiliumPodIPPool", "ciliumpodippools", ("v2", "v2alpha1"), "cpip"),
    *(Kind("crd.projectcalico.org", kind, plural, False, ("v1",), CALICO)
      for kind, plural in _CALICO_KINDS),
    *(Kind("projectcalico.org", kind, plural, False, ("v3",), CALICO)
      for kind, plural in _CALICO_KINDS if kind != "IPAMBlock"),
    Kind("projectcalico.org", "Node", "nodes", False, ("v3",), CALICO),
    Kind("metallb.io", "IPAddressPool", "ipaddresspools", True, ("v1beta1",), METALLB),
    Kind("metallb.io", "L2Advertisement", "l2advertisements", True, ("v1beta1",), METALLB),
    Kind("metallb.io", "BGPAdvertisement", "bgpadvertisements", True, ("v1beta1",), METALLB),
    Kind("metallb.io", "BGPPeer", "bgppeers", True, ("v1beta2", "v1beta1"), METALLB),
)

_BY_KIND = {(k.group, k.kind): k for k in KINDS}
_BY_RESOURCE = {(k.group, k.plural): k for k in KINDS}


def find(group: str, kind: str) -> Kind | None:
    return _BY_KIND.get((group, kind))


def by_resource(group: str, plural: str) -> Kind | None:
    return _BY_RESOURCE.get((group, plural))


def split_api_version(api_version: str) -> tuple[str, str]:
    """``cilium.io/v2`` -> (``cilium.io``, ``v2``); ``v1`` -> (``""``, ``v1``)."""
    group, _, version = api_version.rpartition("/")
    return group, version
