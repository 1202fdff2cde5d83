"""Cilium's BGP control plane objects: the BGPv2 kinds (CiliumBGPClusterConfig,
CiliumBGPPeerConfig, CiliumBGPAdvertisement, CiliumBGPNodeConfig with its status,
CiliumBGPNodeConfigOverride; ``cilium.io/v2alpha1`` on 1.16-1.17, ``v2`` from 1.18, the same
fields) and the legacy ``v2alpha1`` CiliumBGPPeeringPolicy.

Every row starts with :data:`~diag.parse.k8s.objects.REF_COLUMNS`; ``pointer`` names the part
of the object the row describes (an instance, a peer, a family, one advertisement). Tables:

``cilium_bgp_instances`` — one per BGP instance of a ClusterConfig (``source`` ``cluster``:
    node_selector, None = every node) or of a NodeConfig (``source`` ``node``: node, router_id
    as the operator rendered it): instance, local_asn, local_port.
``cilium_bgp_peers`` — one per peer of those instances: source, node, instance, peer (its
    name), peer_address (None with ``autoDiscovery``), peer_asn (None or 0: learned from the
    OPEN), auto_discovery (mode, e.g. ``DefaultGateway``), peer_config (the referenced
    CiliumBGPPeerConfig's name; v2alpha1 objects may also carry group and kind), local_address.
``cilium_bgp_peer_configs`` — one per CiliumBGPPeerConfig (pointer ``/spec``):
    auth_secret_ref (a Secret's name, never its content), ebgp_multihop, hold_time_s,
    keepalive_s, connect_retry_s (None: Cilium's defaults 90/30/120), graceful_restart,
    restart_time_s, peer_port, local_port (v2alpha1 ``transport.localPort``),
    source_interface, conditions (``status.conditions``, e.g. ``cilium.io/MissingAuthSecret``).
``cilium_bgp_peer_families`` — one per family of a PeerConfig: peer_config, afi, safi,
    advertisements (the label selector choosing CiliumBGPAdvertisements; None selects none).
``cilium_bgp_advertisements`` — one per entry of a CiliumBGPAdvertisement's
    ``spec.advertisements``: labels (the object's, matched by the families' selectors), index,
    type (PodCIDR, Service, CiliumPodIPPool, Interface), selector, service_addresses
    (LoadBalancerIP, ClusterIP, ExternalIP), interface, communities (``{"standard": [...],
    "large": [...], "wellKnown": [...]}``), local_preference.
``cilium_bgp_node_status`` — one per CiliumBGPNodeConfig (pointer ``/status``): node,
    reported (False when the agent wrote no status: "not reported", never "down"), instances.
``cilium_bgp_node_peer_status`` — one per peer in a NodeConfig's ``status``: node, instance,
    local_asn, peer, peer_address, peer_asn, peering_state (Cilium's word: ``established``,
    ``active``, ...), state (the closed vocabulary of :mod:`diag.parse.states`),
    established_time, hold_time_s, keepalive_s (applied), routes (``[{"afi", "safi",
    "received", "advertised"}]``), received, advertised (summed over families).
``cilium_bgp_overrides`` — one per peer (or per instance without peers) of a
    CiliumBGPNodeConfigOverride (named after its node): node, instance, router_id, local_port,
    local_asn, peer, local_address.
``cilium_bgp_policies`` — legacy: one per virtual router of a CiliumBGPPeeringPolicy:
    node_selector, router (index), local_asn, export_pod_cidr, pod_ip_pool_selector,
    service_selector, service_advertisements.
``cilium_bgp_policy_neighbors`` — legacy: one per neighbor: router, local_asn, peer_address
    (the CIDR as written, ``10.0.0.1/32``), peer_ip, peer_asn, peer_port, ebgp_multihop_ttl,
    hold_time_s, keepalive_s, connect_retry_s, auth_secret_ref, graceful_restart,
    restart_time_s, families.

Tested on: Cilium's documentation examples (v2 and v2alpha1, the legacy policy), Cilium's
containerlab manifests (v2alpha1), objects as a v2alpha1 API server returned them (defaults
filled in), a v2 NodeConfig with status from a running cluster, and the seeds' objects.
"""
from __future__ import annotations

from typing import Any

from diag.parse.k8s.emit import Emitter
from diag.parse.k8s.objects import Field, Obj
from diag.parse.k8s.values import address_of_cidr
from diag.parse.states import normalise_state

TABLES = {
    "cilium_bgp_instances": ["source", "node", "node_selector", "instance", "local_asn",
                             "local_port", "router_id"],
    "cilium_bgp_peers": ["source", "node", "instance", "peer", "peer_address", "peer_asn",
                         "auto_discovery", "peer_config", "local_address"],
    "cilium_bgp_peer_configs": ["auth_secret_ref", "ebgp_multihop", "hold_time_s", "keepalive_s",
                                "connect_retry_s", "graceful_restart", "restart_time_s",
                                "peer_port", "local_port", "source_interface", "conditions"],
    "cilium_bgp_peer_families": ["peer_config", "afi", "safi", "advertisements"],
    "cilium_bgp_advertisements": ["labels", "index", "type", "selector", "service_addresses",
                                  "interface", "communities", "local_preference"],
    "cilium_bgp_node_status": ["node", "reported", "instances"],
    "cilium_bgp_node_peer_status": ["node", "instance", "local_asn", "peer", "peer_address",
                                    "peer_asn", "peering_state", "state", "established_time",
                                    "hold_time_s", "keepalive_s", "routes", "received",
                                    "advertised"],
    "cilium_bgp_overrides": ["node", "instance", "router_id", "local_port", "local_asn", "peer",
                             "local_address"],
    "cilium_bgp_policies": ["node_selector", "router", "local_asn", "export_pod_cidr",
                            "pod_ip_pool_selector", "service_selector",
                            "service_advertisements"],
    "cilium_bgp_policy_neighbors": ["router", "local_asn", "peer_address", "peer_ip", "peer_asn",
                                    "peer_port", "ebgp_multihop_ttl", "hold_time_s",
                                    "keepalive_s", "connect_retry_s", "auth_secret_ref",
                                    "graceful_restart", "restart_time_s", "families"],
}


def _instances(obj: Obj, out: Emitter, spec: Field, source: str, node: str | None,
               node_selector: dict | None) -> None:
    for instance in spec.objects("bgpInstances"):
        name = instance.text("name")
        out.add("cilium_bgp_instances", obj, instance.pointer, source=source, node=node,
                node_selector=node_selector, instance=name,
                local_asn=instance.integer("localASN"), local_port=instance.integer("localPort"),
                router_id=instance.text("routerID"))
        for peer in instance.objects("peers"):
            discovery = peer.child("autoDiscovery")
            ref = peer.child("peerConfigRef")
            out.add("cilium_bgp_peers", obj, peer.pointer, source=source, node=node,
                    instance=name, peer=peer.text("name"), peer_address=peer.text("peerAddress"),
                    peer_asn=peer.integer("peerASN"),
                    auto_discovery=discovery.text("mode") if discovery else None,
                    peer_config=ref.text("name") if ref else None,
                    local_address=peer.text("localAddress"))


def parse_cluster_config(obj: Obj, out: Emitter) -> None:
    spec = obj.spec(required=True)
    _instances(obj, out, spec, "cluster", None, spec.mapping("nodeSelector"))


def parse_peer_config(obj: Obj, out: Emitter) -> None:
    spec = obj.spec()
    timers, restart = spec.child("timers"), spec.child("gracefulRestart")
    transport = spec.child("transport")
    status = obj.root.child("status")
    out.add("cilium_bgp_peer_configs", obj, spec.anchor, auth_secret_ref=spec.text("authSecretRef"),
            ebgp_multihop=spec.integer("ebgpMultihop"),
            hold_time_s=timers.integer("holdTimeSeconds") if timers else None,
            keepalive_s=timers.integer("keepAliveTimeSeconds") if timers else None,
            connect_retry_s=timers.integer("connectRetryTimeSeconds") if timers else None,
            graceful_restart=restart.flag("enabled") if restart else None,
            restart_time_s=restart.integer("restartTimeSeconds") if restart else None,
            peer_port=transport.integer("peerPort") if transport else None,
            local_port=transport.integer("localPort") if transport else None,
            source_interface=transport.text("sourceInterface") if transport else None,
            conditions=[dict(c.value) for c in status.objects("conditions")] if status else [])
    for family in spec.objects("families"):
        out.add("cilium_bgp_peer_families", obj, family.pointer, peer_config=obj.name,
                afi=family.text("afi", required=True), safi=family.text("safi", required=True),
                advertisements=family.mapping("advertisements"))


def parse_advertisement(obj: Obj, out: Emitter) -> None:
    spec = obj.spec(required=True)
    for index, entry in enumerate(spec.objects("advertisements", required=True)):
        service, interface = entry.child("service"), entry.child("interface")
        attributes = entry.child("attributes")
        communities = attributes.mapping("communities") if attributes else None
        out.add("cilium_bgp_advertisements", obj, entry.pointer, labels=obj.labels, index=index,
                type=entry.text("advertisementType", required=True),
                selector=entry.mapping("selector"),
                service_addresses=service.strings("addresses") if service else [],
                interface=interface.text("name") if interface else None,
                communities=communities,
                local_preference=attributes.integer("localPreference") if attributes else None)


def parse_node_config(obj: Obj, out: Emitter) -> None:
    _instances(obj, out, obj.spec(), "node", obj.name, None)
    status = obj.root.child("status")
    instances = status.objects("bgpInstances") if status is not None else []
    out.add("cilium_bgp_node_status", obj, status.pointer if status is not None else "",
            node=obj.name,
            reported=status is not None, instances=len(instances))
    for instance in instances:
        for peer in instance.objects("peers"):
            routes, received, advertised = [], 0, 0
            for count in peer.objects("routeCount"):
                route = {"afi": count.text("afi"), "safi": count.text("safi"),
                         "received": count.integer("received"),
                         "advertised": count.integer("advertised")}
                received += route["received"] or 0
                advertised += route["advertised"] or 0
                routes.append(route)
            timers = peer.child("timers")
            state_raw = peer.text("peeringState")
            out.add("cilium_bgp_node_peer_status", obj, peer.pointer, node=obj.name,
                    instance=instance.text("name"), local_asn=instance.integer("localASN"),
                    peer=peer.text("name"), peer_address=peer.text("peerAddress"),
                    peer_asn=peer.integer("peerASN"), peering_state=state_raw,
                    state=normalise_state(state_raw) if state_raw else None,
                    established_time=peer.text("establishedTime"),
                    hold_time_s=timers.integer("appliedHoldTimeSeconds") if timers else None,
                    keepalive_s=timers.integer("appliedKeepaliveSeconds") if timers else None,
                    routes=routes, received=received if routes else None,
                    advertised=advertised if routes else None)


def parse_override(obj: Obj, out: Emitter) -> None:
    for instance in obj.spec(required=True).objects("bgpInstances"):
        common: dict[str, Any] = {"node": obj.name, "instance": instance.text("name"),
                                      "router_id": instance.text("routerID"),
                                      "local_port": instance.integer("localPort"),
                                      "local_asn": instance.integer("localASN")}
        peers = instance.objects("peers")
        for peer in peers:
            out.add("cilium_bgp_overrides", obj, peer.pointer, peer=peer.text("name"),
                    local_address=peer.text("localAddress"), **common)
        if not peers:
            out.add("cilium_bgp_overrides", obj, instance.pointer, peer=None, local_address=None,
                    **common)


def parse_peering_policy(obj: Obj, out: Emitter) -> None:
    spec = obj.spec(required=True)
    node_selector = spec.mapping("nodeSelector")
    for router_index, router in enumerate(spec.objects("virtualRouters", required=True)):
        local_asn = router.integer("localASN", required=True)
        out.add("cilium_bgp_policies", obj, router.pointer, node_selector=node_selector,
                router=router_index, local_asn=local_asn,
                export_pod_cidr=bool(router.flag("exportPodCIDR")),
                pod_ip_pool_selector=router.mapping("podIPPoolSelector"),
                service_selector=router.mapping("serviceSelector"),
                service_advertisements=router.strings("serviceAdvertisements"))
        for neighbor in router.objects("neighbors"):
            address = neighbor.text("peerAddress", required=True)
            try:
                peer_ip = address_of_cidr(address)
            except ValueError:
                raise neighbor.error(f"not an address: {address!r}", "peerAddress") from None
            restart = neighbor.child("gracefulRestart")
            out.add("cilium_bgp_policy_neighbors", obj, neighbor.pointer, router=router_index,
                    local_asn=local_asn, peer_address=address, peer_ip=peer_ip,
                    peer_asn=neighbor.integer("peerASN", required=True),
                    peer_port=neighbor.integer("peerPort"),
                    ebgp_multihop_ttl=neighbor.integer("eBGPMultihopTTL"),
                    hold_time_s=neighbor.integer("holdTimeSeconds"),
                    keepalive_s=neighbor.integer("keepAliveTimeSeconds"),
                    connect_retry_s=neighbor.integer("connectRetryTimeSeconds"),
                    auth_secret_ref=neighbor.text("authSecretRef"),
                    graceful_restart=restart.flag("enabled") if restart else None,
                    restart_time_s=restart.integer("restartTimeSeconds") if restart else None,
                    families=[dict(f.value) for f in neighbor.objects("families")])


PARSERS = {
    ("cilium.io", "CiliumBGPClusterConfig"): (parse_cluster_config,
                                              ("cilium_bgp_instances", "cilium_bgp_peers")),
    ("cilium.io", "CiliumBGPPeerConfig"): (parse_peer_config,
                                           ("cilium_bgp_peer_configs",
                                            "cilium_bgp_peer_families")),
    ("cilium.io", "CiliumBGPAdvertisement"): (parse_advertisement,
                                              ("cilium_bgp_advertisements",)),
    ("cilium.io", "CiliumBGPNodeConfig"): (parse_node_config,
                                           ("cilium_bgp_instances", "cilium_bgp_peers",
                                            "cilium_bgp_node_status",
                                            "cilium_bgp_node_peer_status")),
    ("cilium.io", "CiliumBGPNodeConfigOverride"): (parse_override, ("cilium_bgp_overrides",)),
    ("cilium.io", "CiliumBGPPeeringPolicy"): (parse_peering_policy,
                                              ("cilium_bgp_policies",
                                               "cilium_bgp_policy_neighbors")),
}
