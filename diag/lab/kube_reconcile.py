"""From the lab's Kubernetes objects to its daemons' configuration, the way the CNIs do it (pure).

Contract:

- :func:`cilium_bgp_intent(objects, node) -> NodeBgpIntent` follows Cilium's BGP control plane:
  a CiliumBGPPeeringPolicy selecting the node wins over CiliumBGPClusterConfigs (and when several
  policies select it, none applies: no BGP at all); otherwise the ClusterConfigs whose
  ``nodeSelector`` matches the node's labels (absent = every node; two selecting one node is a
  conflict and nothing applies, as the operator refuses to render the node's config). Each
  instance's peers take their settings from the referenced CiliumBGPPeerConfig (Cilium's
  defaults when absent: hold 90, keepalive 30, connect retry 120, eBGP multihop 1, families
  ipv4+ipv6 unicast without advertisements), the node's CiliumBGPNodeConfigOverride (named after
  the node: router ID, local port, local ASN, peers' local addresses), and the advertisements a
  family's ``advertisements`` selector picks among the CiliumBGPAdvertisements' labels (absent
  selects none): ``PodCIDR`` = the node's pod CIDRs (its CiliumNode under cluster-pool IPAM, else
  its Node's ``spec.podCIDRs``), ``Service`` = the selected Services' LoadBalancer ingress IPs,
  cluster IPs and external IPs as host prefixes (``loadBalancerClass`` unset or
  ``io.cilium/bgp-control-plane``; the selector also sees ``io.kubernetes.service.name`` and
  ``.namespace``), ``CiliumPodIPPool`` = the node's allocations from the selected pools. The
  router ID defaults to the node's InternalIP. :attr:`NodeBgpIntent.notes` says what was not
  applied and why.
- :func:`render_gobgpd(intent, passwords)` renders that intent as the lab's gobgpd TOML: no
  listener unless a local port is set, one
  neighbor per peer with the PeerConfig's timers, TCP-MD5 from ``passwords`` (Secret name ->
  password: the lab hands them over, it never serves Secrets), eBGP multihop, families, and
  ``allow-own-as`` — the lab's baseline (its nodes share one AS), not something Cilium sets.
  :attr:`NodeBgpIntent.prefixes` are the prefixes to put in GoBGP's RIB.
- :func:`calico_bird_intent(objects, node) -> BirdIntent` follows calico-node's BIRD config: the
  node's AS (its Calico Node/annotation, else BGPConfiguration ``default``, else 64512), router
  ID = its ``projectcalico.org/IPv4Address``, the node-to-node mesh when enabled (default on),
  BGPPeers that are global (no ``node``/``nodeSelector``: ``Global_<ip>``) or select the node
  (``node`` equal, or Calico ``nodeSelector`` matching its labels: ``Node_<ip>``; a
  ``peerSelector`` peers with the selected nodes), passwords by Secret reference, and the blocks
  affine to the node (confirmed, not deleted; not from a pool with ``disableBGPExport``) as
  originated prefixes; :func:`render_bird1` renders it as calico-node's BIRD 1.6
  configuration (the lab's calico default), :func:`render_bird` as BIRD 2 (``--bird 2``).
- :func:`node_daemon_config` is what a lab node runs: the intent rendered for its daemon, with
  the lab's fault knobs (:class:`~diag.lab.configs.BgpOptions`); :class:`NoBgpInstance` when the
  objects give a Cilium node no BGP instance (or several: the lab runs one gobgpd).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diag.k8s.kinds import split_api_version
from diag.k8s.selectors import calico_selector_matches, label_selector_matches

if TYPE_CHECKING:
    from diag.lab.configs import BgpOptions

DEFAULT_HOLD, DEFAULT_KEEPALIVE, DEFAULT_CONNECT_RETRY = 90, 30, 120
DEFAULT_FAMILIES = (("ipv4", "unicast", None), ("ipv6", "unicast", None))
CILIUM_LB_CLASS = "io.cilium/bgp-control-plane"
CALICO_DEFAULT_AS = 64512


def _kind(objects: Iterable[dict], group: str, kind: str) -> list[dict]:
    return [o for o in objects if o.get("kind") == kind
            and split_api_version(o.get("apiVersion", ""))[0] == group]


def _named(objects: Iterable[dict], name: str) -> dict | None:
    return next((o for o in objects if o["metadata"]["name"] == name), None)


def _node_object(objects: list[dict], node: str) -> dict:
    found = _named(_kind(objects, "", "Node"), node)
    if found is None:
        raise ValueError(f"no Node {node!r} among the objects")
    return found


def _internal_ip(node: dict) -> str | None:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return address.get("address")
    return None


# -- Cilium ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class PeerIntent:
    name: str
    address: str
    peer_asn: int
    peer_config: str | None
    hold: int = DEFAULT_HOLD
    keepalive: int = DEFAULT_KEEPALIVE
    connect_retry: int = DEFAULT_CONNECT_RETRY
    ebgp_multihop: int = 1
    peer_port: int | None = None
    local_address: str | None = None
    auth_secret: str | None = None
    families: tuple[tuple[str, str], ...] = (("ipv4", "unicast"), ("ipv6", "unicast"))
    prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class InstanceIntent:
    name: str
    local_asn: int
    router_id: str | None
    local_port: int | None
    peers: tuple[PeerIntent, ...]


@dataclass(frozen=True)
class NodeBgpIntent:
    node: str
    source: str                          # "ClusterConfig <name>", "PeeringPolicy <name>", ""
    instances: tuple[InstanceIntent, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Every prefix some peer is to be sent (GoBGP's global RIB holds their union)."""
        seen: dict[str, None] = {}
        for instance in self.instances:
            for peer in instance.peers:
                seen.update(dict.fromkeys(peer.prefixes))
        return tuple(seen)


def _pod_cidrs(objects: list[dict], node: str) -> list[str]:
    cilium_node = _named(_kind(objects, "cilium.io", "CiliumNode"), node)
    if cilium_node is not None:
        cidrs = ((cilium_node.get("spec") or {}).get("ipam") or {}).get("podCIDRs") or []
        if cidrs:
            return list(cidrs)
    spec = _node_object(objects, node).get("spec") or {}
    return list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))


def _host(address: str) -> str:
    ip = ipaddress.ip_address(address)
    return f"{ip}/{ip.max_prefixlen}"


def _service_prefixes(objects: list[dict], selector: dict | None,
                      addresses: list[str]) -> list[str]:
    out = []
    for service in _kind(objects, "", "Service"):
        metadata, spec = service["metadata"], service.get("spec") or {}
        labels = dict(metadata.get("labels") or {},
                      **{"io.kubernetes.service.name": metadata["name"],
                         "io.kubernetes.service.namespace": metadata.get("namespace", "")})
        if not label_selector_matches(selector, labels, absent=False):
            continue
        if "LoadBalancerIP" in addresses and spec.get("type") == "LoadBalancer" and \
                spec.get("loadBalancerClass") in (None, CILIUM_LB_CLASS):
            ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress")
            out += [_host(i["ip"]) for i in ingress or [] if i.get("ip")]
        if "ClusterIP" in addresses:
            ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
            out += [_host(ip) for ip in ips if ip != "None"]
        if "ExternalIP" in addresses:
            out += [_host(ip) for ip in spec.get("externalIPs") or []]
    return out


def _pool_prefixes(objects: list[dict], node: str, selector: dict | None) -> list[str]:
    pools = {p["metadata"]["name"] for p in _kind(objects, "cilium.io", "CiliumPodIPPool")
             if label_selector_matches(selector, dict(
                 p["metadata"].get("labels") or {},
                 **{"io.cilium.podippool.name": p["metadata"]["name"],
                    "io.cilium.podippool.namespace": p["metadata"].get("namespace", "")}),
                 absent=False)}
    cilium_node = _named(_kind(objects, "cilium.io", "CiliumNode"), node) or {}
    allocated = ((((cilium_node.get("spec") or {}).get("ipam") or {}).get("pools") or {})
                 .get("allocated") or [])
    return [cidr for entry in allocated if entry.get("pool") in pools
            for cidr in entry.get("cidrs") or []]


def _advertised(objects: list[dict], node: str, selector: dict | None,
                afi: str) -> tuple[list[str], list[str]]:
    prefixes, notes = [], []
    version = 4 if afi == "ipv4" else 6
    for advert in _kind(objects, "cilium.io", "CiliumBGPAdvertisement"):
        if not label_selector_matches(selector, advert["metadata"].get("labels") or {},
                                      absent=False):
            continue
        for entry in (advert.get("spec") or {}).get("advertisements") or []:
            kind = entry.get("advertisementType")
            if kind == "PodCIDR":
                found = _pod_cidrs(objects, node)
            elif kind == "Service":
                found = _service_prefixes(objects, entry.get("selector"),
                                          (entry.get("service") or {}).get("addresses") or [])
            elif kind == "CiliumPodIPPool":
                found = _pool_prefixes(objects, node, entry.get("selector"))
            else:
                notes.append(f"advertisement {advert['metadata']['name']}: {kind} not rendered")
                continue
            prefixes += [p for p in found if ipaddress.ip_network(p).version == version]
    return prefixes, notes


def _selecting(objects: list[dict], kind: str, labels: dict) -> list[dict]:
    return [o for o in _kind(objects, "cilium.io", kind)
            if label_selector_matches((o.get("spec") or {}).get("nodeSelector"), labels,
                                      absent=True)]


def cilium_bgp_intent(objects: list[dict], node: str) -> NodeBgpIntent:
    node_object = _node_object(objects, node)
    labels = node_object["metadata"].get("labels") or {}
    policies = _selecting(objects, "CiliumBGPPeeringPolicy", labels)
    if len(policies) > 1:
        names = ", ".join(sorted(p["metadata"]["name"] for p in policies))
        return NodeBgpIntent(node, "", notes=((f"several CiliumBGPPeeringPolicies select the "
                                              f"node ({names}): none applies"),))
    if policies:
        return _policy_intent(objects, node, node_object, policies[0])
    configs = _selecting(objects, "CiliumBGPClusterConfig", labels)
    if not configs:
        return NodeBgpIntent(node, "", notes=("no CiliumBGPClusterConfig selects the node",))
    if len(configs) > 1:
        names = ", ".join(sorted(c["metadata"]["name"] for c in configs))
        return NodeBgpIntent(node, "", notes=((f"several CiliumBGPClusterConfigs select the "
                                              f"node ({names}): conflict, none applies"),))
    config = configs[0]
    override = _named(_kind(objects, "cilium.io", "CiliumBGPNodeConfigOverride"), node)
    overrides = {i.get("name"): i for i in ((override or {}).get("spec") or {})
                 .get("bgpInstances") or []}
    peer_configs = {p["metadata"]["name"]: p.get("spec") or {}
                    for p in _kind(objects, "cilium.io", "CiliumBGPPeerConfig")}
    notes: list[str] = []
    instances = []
    for instance in config["spec"].get("bgpInstances") or []:
        extra = overrides.get(instance.get("name"), {})
        local_addresses = {p.get("name"): p.get("localAddress") for p in extra.get("peers") or []}
        peers = []
        for peer in instance.get("peers") or []:
            if not peer.get("peerAddress"):
                notes.append(f"peer {peer.get('name')}: autoDiscovery not rendered")
                continue
            ref = (peer.get("peerConfigRef") or {}).get("name")
            spec = peer_configs.get(ref, {}) if ref else {}
            if ref and ref not in peer_configs:
                notes.append(f"peer {peer.get('name')}: CiliumBGPPeerConfig {ref} not found, "
                             "defaults used")
            peers.append(_peer_intent(objects, node, peer, ref, spec,
                                      local_addresses.get(peer.get("name")), notes))
        instances.append(InstanceIntent(
            name=instance.get("name"), local_asn=extra.get("localASN") or instance["localASN"],
            router_id=extra.get("routerID") or _internal_ip(node_object),
            local_port=extra.get("localPort") or instance.get("localPort"),
            peers=tuple(peers)))
    return NodeBgpIntent(node, f"ClusterConfig {config['metadata']['name']}", tuple(instances),
                         tuple(notes))


def _peer_intent(objects: list[dict], node: str, peer: dict, ref: str | None, spec: dict,
                 local_address: str | None, notes: list[str]) -> PeerIntent:
    timers = spec.get("timers") or {}
    families = spec.get("families")
    family_list = [(f["afi"], f["safi"], f.get("advertisements")) for f in families] \
        if families else list(DEFAULT_FAMILIES)
    prefixes: list[str] = []
    for afi, safi, selector in family_list:
        found, more = _advertised(objects, node, selector, afi)
        prefixes += found
        notes += more
    return PeerIntent(
        name=peer.get("name"), address=peer["peerAddress"], peer_asn=peer.get("peerASN") or 0,
        peer_config=ref, hold=timers.get("holdTimeSeconds", DEFAULT_HOLD),
        keepalive=timers.get("keepAliveTimeSeconds", DEFAULT_KEEPALIVE),
        connect_retry=timers.get("connectRetryTimeSeconds", DEFAULT_CONNECT_RETRY),
        ebgp_multihop=spec.get("ebgpMultihop", 1),
        peer_port=(spec.get("transport") or {}).get("peerPort"), local_address=local_address,
        auth_secret=spec.get("authSecretRef"),
        families=tuple((afi, safi) for afi, safi, _ in family_list),
        prefixes=tuple(dict.fromkeys(prefixes)))


def _policy_intent(objects: list[dict], node: str, node_object: dict,
                   policy: dict) -> NodeBgpIntent:
    instances = []
    for router in policy["spec"].get("virtualRouters") or []:
        prefixes = list(_pod_cidrs(objects, node)) if router.get("exportPodCIDR") else []
        if router.get("serviceSelector") is not None:
            prefixes += _service_prefixes(objects, router["serviceSelector"],
                                          router.get("serviceAdvertisements") or
                                          ["LoadBalancerIP"])
        if router.get("podIPPoolSelector") is not None:
            prefixes += _pool_prefixes(objects, node, router["podIPPoolSelector"])
        peers = []
        for neighbor in router.get("neighbors") or []:
            address = str(ipaddress.ip_interface(neighbor["peerAddress"]).ip)
            restart = neighbor.get("families")
            families = tuple((f["afi"], f["safi"]) for f in restart) if restart else \
                (("ipv4", "unicast"), ("ipv6", "unicast"))
            peers.append(PeerIntent(
                name=address, address=address, peer_asn=neighbor["peerASN"], peer_config=None,
                hold=neighbor.get("holdTimeSeconds", DEFAULT_HOLD),
                keepalive=neighbor.get("keepAliveTimeSeconds", DEFAULT_KEEPALIVE),
                connect_retry=neighbor.get("connectRetryTimeSeconds", DEFAULT_CONNECT_RETRY),
                ebgp_multihop=neighbor.get("eBGPMultihopTTL", 1),
                peer_port=neighbor.get("peerPort"), auth_secret=neighbor.get("authSecretRef"),
                families=families,
                prefixes=tuple(p for p in dict.fromkeys(prefixes)
                               if any(ipaddress.ip_network(p).version ==
                                      (4 if afi == "ipv4" else 6) for afi, _ in families))))
        instances.append(InstanceIntent(str(router["localASN"]), router["localASN"],
                                        _internal_ip(node_object), None, tuple(peers)))
    return NodeBgpIntent(node, f"PeeringPolicy {policy['metadata']['name']}", tuple(instances))


_AFI_SAFI = {("ipv4", "unicast"): "ipv4-unicast", ("ipv6", "unicast"): "ipv6-unicast"}


def render_gobgpd(intent: NodeBgpIntent, passwords: Mapping[str, str], *,
                  allow_own_as: bool = True, passive: bool = False) -> str:
    """The gobgpd TOML for a node's intent (one BGP instance: the lab runs one gobgpd)."""
    if len(intent.instances) != 1:
        raise ValueError(f"{intent.node}: {len(intent.instances)} BGP instances "
                         f"({'; '.join(intent.notes) or 'none selected'}); the lab runs one")
    (instance,) = intent.instances
    lines = [("# GoBGP as embedded by Cilium's BGP control plane, from the lab's BGP objects "
             f"({intent.source})."),
             "[global.config]", f"  as = {instance.local_asn}",
             f'  router-id = "{instance.router_id}"',
             f"  port = {instance.local_port if instance.local_port else -1}"]
    for peer in instance.peers:
        lines += ["", "[[neighbors]]", "  [neighbors.config]",
                  f'    neighbor-address = "{peer.address}"', f"    peer-as = {peer.peer_asn}",
                  f'    description = "{peer.name}"']
        if peer.auth_secret:
            if peer.auth_secret not in passwords:
                raise ValueError(f"{intent.node}: no password for Secret {peer.auth_secret}")
            lines.append(f'    auth-password = "{passwords[peer.auth_secret]}"')
        lines += ["  [neighbors.timers.config]", f"    connect-retry = {peer.connect_retry}",
                  f"    hold-time = {peer.hold}", f"    keepalive-interval = {peer.keepalive}",
                  "  [neighbors.transport.config]",
                  f'    local-address = "{peer.local_address or instance.router_id}"']
        if peer.peer_port:
            lines.append(f"    remote-port = {peer.peer_port}")
        if passive:
            lines.append("    passive-mode = true")
        if peer.ebgp_multihop > 1:
            lines += ["  [neighbors.ebgp-multihop.config]", "    enabled = true",
                      f"    multihop-ttl = {peer.ebgp_multihop}"]
        if allow_own_as:
            lines += ["  [neighbors.as-path-options.config]", "    allow-own-as = 1"]
        for family in peer.families:
            lines += ["  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]",
                      f'      afi-safi-name = "{_AFI_SAFI[family]}"']
    return "\n".join(lines) + "\n"


# -- Calico ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class BirdPeer:
    name: str                    # Global_<ip>, Node_<ip>, Mesh_<ip>
    address: str
    asn: int
    port: int | None = None
    password_secret: tuple[str, str] | None = None
    source_address: str | None = None
    keep_original_next_hop: bool = False
    num_allowed_local_as: int | None = None
    description: str | None = None      # the BGPPeer's name (mesh peers: the node's)


@dataclass(frozen=True)
class BirdPool:
    """An IPPool as calico-node's BIRD filters see it."""

    cidr: str
    vxlan: bool = False               # vxlanMode Always/CrossSubnet: Felix programs its routes
    bgp_export: bool = True           # not disableBGPExport


@dataclass(frozen=True)
class BirdIntent:
    node: str
    router_id: str
    local_asn: int
    listen_port: int | None
    peers: tuple[BirdPeer, ...]
    originated: tuple[str, ...]
    notes: tuple[str, ...] = ()
    pools: tuple[BirdPool, ...] = ()     # the IPv4 IPPools (their export and kernel filters)


def _calico_objects(objects: list[dict], kind: str) -> list[dict]:
    return _kind(objects, "crd.projectcalico.org", kind) + \
        _kind(objects, "projectcalico.org", kind)


def _calico_address(node: dict) -> str | None:
    annotations = node["metadata"].get("annotations") or {}
    value = annotations.get("projectcalico.org/IPv4Address")
    return str(ipaddress.ip_interface(value).ip) if value else None


def _asn(value: Any) -> int | None:
    if value is None:
        return None
    text = str(value)
    if "." in text:
        high, low = text.split(".")
        return int(high) * 65536 + int(low)
    return int(text)


def calico_bird_intent(objects: list[dict], node: str) -> BirdIntent:
    nodes = _kind(objects, "", "Node")
    me = _node_object(objects, node)
    labels = me["metadata"].get("labels") or {}
    router_id = _calico_address(me) or _internal_ip(me)
    if router_id is None:
        raise ValueError(f"{node}: no projectcalico.org/IPv4Address and no InternalIP")
    configs = {c["metadata"]["name"]: c.get("spec") or {}
               for c in _calico_objects(objects, "BGPConfiguration")}
    default = configs.get("default", {})
    own = configs.get(f"node.{node}", {})
    annotations = me["metadata"].get("annotations") or {}
    local_asn = _asn(annotations.get("projectcalico.org/ASNumber")) or \
        _asn(default.get("asNumber")) or CALICO_DEFAULT_AS
    listen_port = own.get("listenPort") or default.get("listenPort")
    peers: list[BirdPeer] = []
    notes: list[str] = []

    def node_asn(other: dict) -> int:
        value = (other["metadata"].get("annotations") or {}).get("projectcalico.org/ASNumber")
        return _asn(value) or _asn(default.get("asNumber")) or CALICO_DEFAULT_AS

    if default.get("nodeToNodeMeshEnabled", True):
        for other in nodes:
            address = _calico_address(other)
            if other["metadata"]["name"] != node and address:
                peers.append(BirdPeer(f"Mesh_{address.replace('.', '_')}", address,
                                      node_asn(other), description=other["metadata"]["name"]))
    for peer in _calico_objects(objects, "BGPPeer"):
        spec = peer.get("spec") or {}
        scoped = bool(spec.get("node") or spec.get("nodeSelector"))
        if spec.get("node") and spec["node"] != node:
            continue
        if spec.get("nodeSelector") and not calico_selector_matches(spec["nodeSelector"],
                                                                    labels):
            continue
        prefix = "Node_" if scoped else "Global_"
        secret = ((spec.get("password") or {}).get("secretKeyRef") or {})
        common = {"password_secret": (secret["name"], secret["key"]) if secret else None,
                      "source_address": router_id if spec.get("sourceAddress", "UseNodeIP")
                      == "UseNodeIP" else None,
                      "keep_original_next_hop": bool(spec.get("keepOriginalNextHop")),
                      "num_allowed_local_as": spec.get("numAllowedLocalASNumbers"),
                      "description": peer["metadata"]["name"]}
        if spec.get("peerSelector"):
            for other in nodes:
                if other["metadata"]["name"] == node or not calico_selector_matches(
                        spec["peerSelector"], other["metadata"].get("labels") or {}):
                    continue
                address = _calico_address(other)
                if address:
                    peers.append(BirdPeer(f"{prefix}{address.replace('.', '_')}", address,
                                          node_asn(other), **common))
            continue
        address, _, port = str(spec.get("peerIP", "")).rpartition(":") \
            if str(spec.get("peerIP", "")).count(":") == 1 else (spec.get("peerIP"), "", "")
        if not address:
            notes.append(f"BGPPeer {peer['metadata']['name']}: no peerIP")
            continue
        peers.append(BirdPeer(f"{prefix}{address.replace('.', '_')}", address,
                              _asn(spec.get("asNumber")) or local_asn,
                              port=int(port) if port else None, **common))
    pools = [p.get("spec") or {} for p in _calico_objects(objects, "IPPool")]
    originated = []
    for affinity in _calico_objects(objects, "BlockAffinity"):
        spec = affinity.get("spec") or {}
        if spec.get("node") != node or spec.get("state", "confirmed") != "confirmed" or \
                str(spec.get("deleted", False)).lower() == "true":
            continue
        block = ipaddress.ip_network(spec["cidr"])
        pool = next((p for p in pools if block.subnet_of(ipaddress.ip_network(p["cidr"]))), None)
        if pool is not None and pool.get("disableBGPExport"):
            notes.append(f"block {block}: pool exports disabled")
            continue
        originated.append(str(block))
    bird_pools = tuple(BirdPool(p["cidr"], str(p.get("vxlanMode", "Never")) != "Never",
                                not p.get("disableBGPExport"))
                       for p in pools if p.get("cidr") and ":" not in p["cidr"]
                       and not p.get("disabled"))
    return BirdIntent(node, router_id, local_asn, listen_port, tuple(peers), tuple(originated),
                      tuple(notes), bird_pools)


def render_bird(intent: BirdIntent, passwords: Mapping[tuple[str, str], str], log_path: Path,
                *, allow_local_as: bool = True, kernel_table: int | None = None) -> str:
    """BIRD 2 configuration for the intent (``--bird 2``): the lab's own form — named
    ``pod_cidr`` static protocol, BGP routes exported to the kernel (``metric 32``, BIRD 2's
    default) in both modes, BGP sessions with the lab's timers."""
    from diag.lab.configs import CONNECT_RETRY, HOLD, KEEPALIVE

    statics = " ".join(f"route {cidr} blackhole;" for cidr in intent.originated)
    lines = [
        f"router id {intent.router_id};",
        f'log "{log_path}" {{ info, remote, warning, error, auth, fatal, bug }};',
        "protocol device { scan time 10; }",
        "# Calico's BIRD installs what it learns; kernel gets BGP routes only.",
        "protocol kernel {" + (f" kernel table {kernel_table};" if kernel_table is not None
                               else "") + " ipv4 { import none; export where source = RTS_BGP; }; }",
        f"protocol static pod_cidr {{ ipv4; {statics} }}" if intent.originated
        else "# no block affine to this node",
    ]
    for peer in intent.peers:
        bgp = [f"protocol bgp {peer.name} {{",
               *([f'  description "{peer.description}";'] if peer.description else []),
               (f"  local {peer.source_address or intent.router_id}"
               f"{f' port {intent.listen_port}' if intent.listen_port else ''} "
               f"as {intent.local_asn};"),
               (f"  neighbor {peer.address}{f' port {peer.port}' if peer.port else ''} "
               f"as {peer.asn};")]
        if allow_local_as:
            bgp.append("  allow local as;")
        if peer.password_secret:
            if peer.password_secret not in passwords:
                raise ValueError(f"{intent.node}: no password for Secret "
                                 f"{'/'.join(peer.password_secret)}")
            bgp.append(f'  password "{passwords[peer.password_secret]}";')
        bgp += [f"  hold time {HOLD}; keepalive time {KEEPALIVE};",
                (f"  connect retry time {CONNECT_RETRY}; connect delay time 1; "
                "error wait time 1, 5;"),
                "  ipv4 { import all; export where source = RTS_STATIC; };", "}"]
        lines += bgp
    return "\n".join(lines) + "\n"


def render_bird1(intent: BirdIntent, passwords: Mapping[tuple[str, str], str], log_path: Path,
                 *, allow_local_as: bool = True, kernel_table: int | None = None) -> str:
    """BIRD 1.6 configuration for the intent in calico-node's form: what confd renders from
    bird.cfg.template, bird_aggr.cfg.template and bird_ipam.cfg.template (one file here). Kept
    from Calico: the unnamed static protocol with a blackhole route per affine block, the
    ``calico_aggr`` function, ``calico_export_to_bgp_peers`` (the blocks, then the pools) and
    ``calico_kernel_programming`` (VXLAN pools' routes are Felix's, not BIRD's), the
    ``bgp_template`` (``multihop``, ``gateway recursive``), ``Mesh_``/``Global_``/``Node_``
    protocols with ``source address``, ``password``, ``allow local as N`` from
    ``numAllowedLocalASNumbers``, protocols ``device`` and ``direct``. The lab's departures,
    for fast and deterministic faults: its timers (hold 9, keepalive 3, connect retry 1, error
    wait 1-5 s), no graceful restart (a helper would keep a dead node's routes for minutes), no
    ADD-PATH, no BFD, the kernel protocol neither learns alien routes nor persists its own (a
    restarted BIRD must not leave stale routes) and gets BGP routes only, and
    ``allow_local_as``/``kernel_table``, the fault knobs."""
    from diag.lab.configs import CONNECT_RETRY, HOLD, KEEPALIVE

    lines = [("# BIRD 1.6 as calico-node runs it, generated from the lab's Calico objects "
              f"for {intent.node}"),
             f"router id {intent.router_id};"]
    if intent.listen_port:
        lines.append(f"listen bgp port {intent.listen_port};")
    lines += [f'log "{log_path}" {{ info, remote, warning, error, auth, fatal, bug }};', "",
              "# bird_aggr.cfg", "protocol static {", "  # IP blocks for this host."]
    lines += [f"  route {cidr} blackhole;" for cidr in intent.originated]
    lines += ["}", "", ("# Aggregation of routes on this host; export the block, nothing "
                        "beneath it."), "function calico_aggr ()", "{"]
    for cidr in intent.originated:
        lines += [f"      # Block {cidr} is confirmed",
                  f"      if ( net = {cidr} ) then {{ accept; }}",
                  f"      if ( net ~ {cidr} ) then {{ reject; }}"]
    lines += ["}", "", "# bird_ipam.cfg", "filter calico_export_to_bgp_peers {", "  calico_aggr();"]
    for pool in intent.pools:
        if pool.bgp_export:
            lines += [f"  if ( net ~ {pool.cidr} ) then {{", "    accept;", "  }"]
    lines += ["  reject;", "}", "", "filter calico_kernel_programming {",
              "  # the lab: BGP routes only (its pod sits on a /24 veth route where Calico has",
              "  # /32 routes under a blackhole route for the block)",
              "  if ( source != RTS_BGP ) then reject;"]
    for pool in intent.pools:
        lines += [f"  if ( net ~ {pool.cidr} ) then {{"]
        # (Calico's fork sets krt_tunnel = "" here, an attribute Debian's 1.6 does not know)
        lines += ([("    # Don't program VXLAN routes into the kernel - these are handled by "
                    "Felix."), "    reject;"] if pool.vxlan else ["    accept;"])
        lines.append("  }")
    lines += ["  accept;", "}", "", "# bird.cfg",
              "# Configure synchronization between routing tables and kernel.",
              "protocol kernel {",
              *([f"  kernel table {kernel_table};"] if kernel_table is not None else []),
              "  scan time 2;       # Scan kernel routing table every 2 seconds",
              "  import none;       # the lab: no learn, no persist (see the docstring)",
              "  export filter calico_kernel_programming; # Default is export none",
              "  merge paths on;    # Allow export multipath routes (ECMP)", "}", "",
              "# Watch interface up/down events.", "protocol device {",
              "  scan time 2;    # Scan interfaces every 2 seconds", "}", "",
              "protocol direct {", "  debug { states };",
              '  interface -"cali*", -"kube-ipvs*", "*"; # Exclude cali* and kube-ipvs* but',
              "                                          # include everything else.", "}", "",
              "# Template for all BGP clients", "template bgp bgp_template {",
              "  debug { states };", '  description "Connection to BGP peer";',
              f"  local as {intent.local_asn};", "  multihop;",
              "  gateway recursive; # This should be the default, but just in case.",
              "  import all;        # Import all routes, since we don't know what the upstream",
              "                     # topology is and therefore have to trust the ToR/RR.",
              ("  export filter calico_export_to_bgp_peers;  # Only want to export routes for "
               "workloads."),
              f"  hold time {HOLD};", f"  keepalive time {KEEPALIVE};",
              "  connect delay time 1;", f"  connect retry time {CONNECT_RETRY};",
              "  error wait time 1,5;", "}"]
    sections = (("Mesh_", "# ------------- Node-to-node mesh -------------"),
                ("Global_", "# ------------- Global peers -------------"),
                ("Node_", "# ------------- Node-specific peers -------------"))
    for prefix, title in sections:
        lines += ["", title]
        chosen = [p for p in intent.peers if p.name.startswith(prefix)]
        if not chosen:
            lines.append("# No peers configured." if prefix != "Mesh_"
                         else "# Node-to-node mesh disabled")
        for peer in chosen:
            lines += [f"# For peer {peer.description or peer.address}",
                      f"protocol bgp {peer.name} from bgp_template {{",
                      (f"  neighbor {peer.address} {f'port {peer.port} ' if peer.port else ''}"
                       f"as {peer.asn};")]
            if peer.source_address:
                lines.append(f"  source address {peer.source_address};  # The local address "
                             "we use for the TCP connection")
            if peer.password_secret:
                if peer.password_secret not in passwords:
                    raise ValueError(f"{intent.node}: no password for Secret "
                                     f"{'/'.join(peer.password_secret)}")
                lines.append(f'  password "{passwords[peer.password_secret]}";')
            if allow_local_as and peer.num_allowed_local_as:
                lines.append(f"  allow local as {peer.num_allowed_local_as};")
            if peer.keep_original_next_hop and peer.asn != intent.local_asn:
                lines.append("  next hop keep;")
            lines.append("}")
    return "\n".join(lines) + "\n"


class NoBgpInstance(ValueError):
    """The objects give a Cilium node no BGP instance, or more than the lab's one gobgpd."""

    def __init__(self, node: str, notes: tuple[str, ...], count: int) -> None:
        reason = "; ".join(notes) or "no ClusterConfig or PeeringPolicy selects it"
        super().__init__(f"{count} BGP instances for {node} ({reason}); the lab runs one"
                         if count else f"no BGP instance ({reason})")


def node_daemon_config(objects: list[dict], node: str, *, cni: str, bird: str,
                       options: "BgpOptions", log_path: Path) -> str:
    """The configuration text of ``node``'s BGP daemon in a lab of ``cni`` (``bird``: "1.6"
    or "2" on calico): the intent the objects give, as the CNI would run it, with the lab's
    fault knobs applied (``options``: peer AS override, TCP-MD5 password and its override,
    allow-own-as, GoBGP passive mode, BIRD's kernel table, no origination)."""
    from diag.lab.kube_objects import CALICO_MD5_SECRET, MD5_SECRET

    password = options.md5_override.get(node, options.md5_password)
    peer_as = options.peer_as_override.get(node)
    if cni == "cilium":
        intent = cilium_bgp_intent(objects, node)
        if len(intent.instances) != 1:
            raise NoBgpInstance(node, intent.notes, len(intent.instances))
        if peer_as is not None:
            intent = replace(intent, instances=tuple(
                replace(i, peers=tuple(replace(p, peer_asn=peer_as) for p in i.peers))
                for i in intent.instances))
        return render_gobgpd(intent, {MD5_SECRET: password}, allow_own_as=options.allow_own_as,
                             passive=node in options.passive_nodes)
    intent_ = calico_bird_intent(objects, node)
    if peer_as is not None:
        intent_ = replace(intent_, peers=tuple(replace(p, asn=peer_as) for p in intent_.peers))
    if not options.advertise:
        intent_ = replace(intent_, originated=())
    render = render_bird if bird == "2" else render_bird1
    return render(intent_, {CALICO_MD5_SECRET: password}, log_path,
                  allow_local_as=options.allow_own_as, kernel_table=options.kernel_table)
