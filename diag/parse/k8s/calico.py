"""Calico's objects, as CRDs (``crd.projectcalico.org/v1``) or through the Calico API server
(``projectcalico.org/v3``): the same spec in both forms, except that the CRD form of
BlockAffinity stores ``deleted`` as the text ``"false"``.

Every row starts with :data:`~diag.parse.k8s.objects.REF_COLUMNS`. Tables:

``calico_bgp_configurations`` (one per BGPConfiguration; ``default`` is global, ``node.<name>``
    a node's override): as_number, node_to_node_mesh (None when unset: Calico's default is on),
    listen_port, bind_mode, log_severity, service_cluster_ips, service_external_ips,
    service_lb_ips (CIDR lists), node_mesh_password_secret (``secret/key``, never the
    password), node_mesh_max_restart_s, ignored_interfaces, communities, prefix_advertisements.
``calico_bgp_peers`` (one per BGPPeer): node (node-scoped peer), node_selector, peer_ip,
    peer_port (from ``ip:port``), peer_selector, as_number, keep_original_next_hop,
    password_secret, source_address, max_restart_s, num_allowed_local_as, ttl_security,
    reachable_by, filters.
``calico_bgp_filter_rules`` (one per rule, pointer to it): filter, direction (exportV4,
    importV4, exportV6, importV6), index, action, match_operator, cidr, source, interface.
``calico_ip_pools`` (one per IPPool): cidr, block_size, vxlan_mode, ipip_mode (``Never`` when
    unset, as Calico defaults), nat_outgoing, disabled, disable_bgp_export, node_selector,
    allowed_uses.
``calico_block_affinities``: node, cidr, state, deleted.
``calico_ipam_blocks``: cidr, affinity, node (``host:<node>`` affinity), size (addresses),
    allocated (addresses in use), strict_affinity, deleted.
``calico_nodes`` (from a ``projectcalico.org/v3`` Node, or from a Kubernetes Node's
    ``projectcalico.org/*`` annotations in the Kubernetes datastore): node, source
    (``Node`` or ``annotations``), ipv4_address (with its prefix length, as Calico keeps it),
    ipv6_address, as_number, ipv4_vxlan_tunnel_addr, ipv4_ipip_tunnel_addr,
    route_reflector_cluster_id.
``calico_node_status_peers`` (one per peer of a CalicoNodeStatus ``status.bgp``): node,
    family (``v4``/``v6``), peer_ip, type (NodeMesh, NodePeer, GlobalPeer), state_raw (Calico's
    word, e.g. ``Established``, ``OpenSent``), state (:mod:`diag.parse.states`), since. A
    CalicoNodeStatus without ``status.bgp`` gives no rows: not reported, not down.
``calico_felix_settings`` (one per top-level spec key of a FelixConfiguration): key, value.

Tested on: the projectcalico/calico resource reference samples, and real ``kubectl get`` output
of Calico 3.26 (IPPool v3, IPAMBlock v1 List, Node annotations) and of a BlockAffinity v3 List.
"""
from __future__ import annotations

from typing import Any

from diag.k8s import pointers
from diag.parse.k8s.emit import Emitter
from diag.parse.k8s.objects import Field, Obj
from diag.parse.k8s.values import address_and_port, as_number, go_duration
from diag.parse.states import normalise_state

TABLES = {
    "calico_bgp_configurations": [
        "as_number", "node_to_node_mesh", "listen_port", "bind_mode", "log_severity",
        "service_cluster_ips", "service_external_ips", "service_lb_ips",
        "node_mesh_password_secret", "node_mesh_max_restart_s", "ignored_interfaces",
        "communities", "prefix_advertisements"],
    "calico_bgp_peers": [
        "node", "node_selector", "peer_ip", "peer_port", "peer_selector", "as_number",
        "keep_original_next_hop", "password_secret", "source_address", "max_restart_s",
        "num_allowed_local_as", "ttl_security", "reachable_by", "filters"],
    "calico_bgp_filter_rules": ["filter", "direction", "index", "action", "match_operator",
                                "cidr", "source", "interface"],
    "calico_ip_pools": ["cidr", "block_size", "vxlan_mode", "ipip_mode", "nat_outgoing",
                        "disabled", "disable_bgp_export", "node_selector", "allowed_uses"],
    "calico_block_affinities": ["node", "cidr", "state", "deleted"],
    "calico_ipam_blocks": ["cidr", "affinity", "node", "size", "allocated", "strict_affinity",
                           "deleted"],
    "calico_nodes": ["node", "source", "ipv4_address", "ipv6_address", "as_number",
                     "ipv4_vxlan_tunnel_addr", "ipv4_ipip_tunnel_addr",
                     "route_reflector_cluster_id"],
    "calico_node_status_peers": ["node", "family", "peer_ip", "type", "state_raw", "state",
                                 "since"],
    "calico_felix_settings": ["key", "value"],
}

ANNOTATION_PREFIX = "projectcalico.org/"
_ANNOTATIONS = {"IPv4Address": "ipv4_address", "IPv6Address": "ipv6_address",
                "ASNumber": "as_number", "IPv4VXLANTunnelAddr": "ipv4_vxlan_tunnel_addr",
                "IPv4IPIPTunnelAddr": "ipv4_ipip_tunnel_addr",
                "RouteReflectorClusterID": "route_reflector_cluster_id"}


def _value(field: Field, key: str, convert, *args: Any) -> Any:
    """A converted value; a ValueError becomes an ObjectError at the field."""
    try:
        return convert(*args)
    except ValueError as err:
        raise field.error(str(err), key) from None


def _asn(field: Field, key: str) -> int | None:
    return _value(field, key, as_number, field.any(key))


def _secret(field: Field | None) -> str | None:
    if field is None:
        return None
    ref = field.child("secretKeyRef")
    if ref is None:
        return None
    return f"{ref.text('name', required=True)}/{ref.text('key', required=True)}"


def _cidrs(spec: Field, key: str) -> list[str]:
    return [entry.text("cidr", required=True) for entry in spec.objects(key)]


def parse_bgp_configuration(obj: Obj, out: Emitter) -> None:
    spec = obj.spec()
    out.add("calico_bgp_configurations", obj, spec.anchor, as_number=_asn(spec, "asNumber"),
            node_to_node_mesh=spec.flag("nodeToNodeMeshEnabled"),
            listen_port=spec.integer("listenPort"), bind_mode=spec.text("bindMode"),
            log_severity=spec.text("logSeverityScreen"),
            service_cluster_ips=_cidrs(spec, "serviceClusterIPs"),
            service_external_ips=_cidrs(spec, "serviceExternalIPs"),
            service_lb_ips=_cidrs(spec, "serviceLoadBalancerIPs"),
            node_mesh_password_secret=_secret(spec.child("nodeMeshPassword")),
            node_mesh_max_restart_s=_value(spec, "nodeMeshMaxRestartTime", go_duration,
                                           spec.text("nodeMeshMaxRestartTime")),
            ignored_interfaces=spec.strings("ignoredInterfaces"),
            communities=[dict(c.value) for c in spec.objects("communities")],
            prefix_advertisements=[dict(p.value) for p in spec.objects("prefixAdvertisements")])


def parse_bgp_peer(obj: Obj, out: Emitter) -> None:
    spec = obj.spec()
    peer_ip, peer_port = _value(spec, "peerIP", address_and_port, spec.text("peerIP"))
    out.add("calico_bgp_peers", obj, spec.anchor, node=spec.text("node"),
            node_selector=spec.text("nodeSelector"), peer_ip=peer_ip, peer_port=peer_port,
            peer_selector=spec.text("peerSelector"), as_number=_asn(spec, "asNumber"),
            keep_original_next_hop=spec.flag("keepOriginalNextHop"),
            password_secret=_secret(spec.child("password")),
            source_address=spec.text("sourceAddress"),
            max_restart_s=_value(spec, "maxRestartTime", go_duration,
                                 spec.text("maxRestartTime")),
            num_allowed_local_as=spec.integer("numAllowedLocalASNumbers"),
            ttl_security=spec.integer("ttlSecurity"), reachable_by=spec.text("reachableBy"),
            filters=spec.strings("filters"))


def parse_bgp_filter(obj: Obj, out: Emitter) -> None:
    spec = obj.spec()
    for direction in ("exportV4", "importV4", "exportV6", "importV6"):
        for index, rule in enumerate(spec.objects(direction)):
            out.add("calico_bgp_filter_rules", obj, rule.pointer, filter=obj.name,
                    direction=direction, index=index, action=rule.text("action", required=True),
                    match_operator=rule.text("matchOperator"), cidr=rule.text("cidr"),
                    source=rule.text("source"), interface=rule.text("interface"))


def parse_ip_pool(obj: Obj, out: Emitter) -> None:
    spec = obj.spec(required=True)
    out.add("calico_ip_pools", obj, spec.anchor, cidr=spec.text("cidr", required=True),
            block_size=spec.integer("blockSize"), vxlan_mode=spec.text("vxlanMode") or "Never",
            ipip_mode=spec.text("ipipMode") or "Never",
            nat_outgoing=bool(spec.flag("natOutgoing")), disabled=bool(spec.flag("disabled")),
            disable_bgp_export=bool(spec.flag("disableBGPExport")),
            node_selector=spec.text("nodeSelector"), allowed_uses=spec.strings("allowedUses"))


def _deleted(field: Field) -> bool:
    value = field.any("deleted")
    if value is None or isinstance(value, bool):
        return bool(value)
    if value in ("true", "false"):          # the CRD form stores it as text
        return value == "true"
    raise field.error(f"expected a boolean, got {value!r}", "deleted")


def parse_block_affinity(obj: Obj, out: Emitter) -> None:
    spec = obj.spec(required=True)
    out.add("calico_block_affinities", obj, spec.anchor, node=spec.text("node", required=True),
            cidr=spec.text("cidr", required=True), state=spec.text("state"),
            deleted=_deleted(spec))


def parse_ipam_block(obj: Obj, out: Emitter) -> None:
    spec = obj.spec(required=True)
    allocations = spec.items("allocations")
    affinity = spec.text("affinity")
    node = affinity[len("host:"):] if affinity and affinity.startswith("host:") else None
    out.add("calico_ipam_blocks", obj, spec.anchor, cidr=spec.text("cidr", required=True),
            affinity=affinity, node=node, size=len(allocations),
            allocated=sum(1 for a in allocations if a.value is not None),
            strict_affinity=bool(spec.flag("strictAffinity")), deleted=_deleted(spec))


def parse_node(obj: Obj, out: Emitter) -> None:
    spec = obj.spec()
    bgp = spec.child("bgp")
    out.add("calico_nodes", obj, spec.anchor, node=obj.name, source="Node",
            ipv4_address=bgp.text("ipv4Address") if bgp else None,
            ipv6_address=bgp.text("ipv6Address") if bgp else None,
            as_number=_asn(bgp, "asNumber") if bgp else None,
            ipv4_vxlan_tunnel_addr=spec.text("ipv4VXLANTunnelAddr"),
            ipv4_ipip_tunnel_addr=bgp.text("ipv4IPIPTunnelAddr") if bgp else None,
            route_reflector_cluster_id=bgp.text("routeReflectorClusterID") if bgp else None)


def node_annotations(obj: Obj, out: Emitter) -> None:
    """A Kubernetes Node's Calico view (Kubernetes datastore): its projectcalico.org/*
    annotations, when it has any. Pointer: the annotations object."""
    annotations = obj.annotations
    values = {column: annotations.get(ANNOTATION_PREFIX + key)
              for key, column in _ANNOTATIONS.items()}
    if not any(values.values()):
        return
    metadata = obj.metadata
    values["as_number"] = _value(metadata, "annotations", as_number, values["as_number"])
    out.add("calico_nodes", obj, pointers.join("metadata", "annotations"), node=obj.name,
            source="annotations", **values)


def parse_node_status(obj: Obj, out: Emitter) -> None:
    spec, status = obj.spec(), obj.root.child("status")
    bgp = status.child("bgp") if status is not None else None
    if bgp is None:
        return  # not reported (yet): no peer rows, which is not "down"
    for family, key in (("v4", "peersV4"), ("v6", "peersV6")):
        for peer in bgp.objects(key):
            out.add("calico_node_status_peers", obj, peer.pointer, node=spec.text("node"),
                    family=family, peer_ip=peer.text("peerIP"), type=peer.text("type"),
                    state_raw=peer.text("state"),
                    state=normalise_state(peer.text("state")) if peer.text("state") else None,
                    since=peer.text("since"))


def parse_felix_configuration(obj: Obj, out: Emitter) -> None:
    spec = obj.spec()
    for key, value in spec.value.items():
        out.add("calico_felix_settings", obj, pointers.append(spec.pointer, key), key=key,
                value=value)


PARSERS: dict[tuple[str, str], tuple[Any, tuple[str, ...]]] = {}
for _group in ("crd.projectcalico.org", "projectcalico.org"):
    PARSERS.update({
        (_group, "BGPConfiguration"): (parse_bgp_configuration, ("calico_bgp_configurations",)),
        (_group, "BGPPeer"): (parse_bgp_peer, ("calico_bgp_peers",)),
        (_group, "BGPFilter"): (parse_bgp_filter, ("calico_bgp_filter_rules",)),
        (_group, "IPPool"): (parse_ip_pool, ("calico_ip_pools",)),
        (_group, "BlockAffinity"): (parse_block_affinity, ("calico_block_affinities",)),
        (_group, "IPAMBlock"): (parse_ipam_block, ("calico_ipam_blocks",)),
        (_group, "CalicoNodeStatus"): (parse_node_status, ("calico_node_status_peers",)),
        (_group, "FelixConfiguration"): (parse_felix_configuration, ("calico_felix_settings",)),
    })
PARSERS[("projectcalico.org", "Node")] = (parse_node, ("calico_nodes",))
