"""MetalLB's configuration objects (``metallb.io``): IPAddressPool, L2Advertisement,
BGPAdvertisement (``v1beta1``) and BGPPeer (``v1beta2``; ``v1beta1`` before 0.13.10).

Every row starts with :data:`~diag.parse.k8s.objects.REF_COLUMNS` (pointer ``/spec``). Tables:

``metallb_ip_pools``: addresses (CIDRs and ``a-b`` ranges, as written), auto_assign (None:
    MetalLB's default, on), avoid_buggy_ips, service_allocation (priority, namespaces and
    selectors, as written), labels (what the advertisements' ``ipAddressPoolSelectors``
    match).
``metallb_l2_advertisements``: ip_address_pools, ip_address_pool_selectors, node_selectors,
    interfaces (an empty pool list and no selectors means every pool).
``metallb_bgp_advertisements``: ip_address_pools, ip_address_pool_selectors, node_selectors,
    peers, aggregation_length, aggregation_length_v6, local_pref, communities.
``metallb_bgp_peers``: my_asn, peer_asn, peer_address, source_address, peer_port, hold_time_s,
    keepalive_time_s, connect_time_s, router_id, ebgp_multihop, vrf, bfd_profile,
    node_selectors, password_set (whether an inline ``password`` was given; the value itself
    is redacted at collection and never read), password_secret (``passwordSecret`` name).

Tested on: MetalLB's ``configsamples/`` and its BGP configuration documentation.
"""
from __future__ import annotations

from diag.parse.k8s.emit import Emitter
from diag.parse.k8s.objects import Field, Obj
from diag.parse.k8s.values import go_duration

TABLES = {
    "metallb_ip_pools": ["addresses", "auto_assign", "avoid_buggy_ips", "service_allocation",
                         "labels"],
    "metallb_l2_advertisements": ["ip_address_pools", "ip_address_pool_selectors",
                                  "node_selectors", "interfaces"],
    "metallb_bgp_advertisements": ["ip_address_pools", "ip_address_pool_selectors",
                                   "node_selectors", "peers", "aggregation_length",
                                   "aggregation_length_v6", "local_pref", "communities"],
    "metallb_bgp_peers": ["my_asn", "peer_asn", "peer_address", "source_address", "peer_port",
                          "hold_time_s", "keepalive_time_s", "connect_time_s", "router_id",
                          "ebgp_multihop", "vrf", "bfd_profile", "node_selectors",
                          "password_set", "password_secret"],
}


def _selectors(spec: Field, key: str) -> list[dict]:
    return [dict(entry.value) for entry in spec.objects(key)]


def _duration(spec: Field, key: str) -> float | None:
    try:
        return go_duration(spec.text(key))
    except ValueError as err:
        raise spec.error(str(err), key) from None


def parse_ip_pool(obj: Obj, out: Emitter) -> None:
    spec = obj.spec(required=True)
    out.add("metallb_ip_pools", obj, spec.anchor, addresses=spec.strings("addresses", required=True),
            auto_assign=spec.flag("autoAssign"), avoid_buggy_ips=bool(spec.flag("avoidBuggyIPs")),
            service_allocation=spec.mapping("serviceAllocation"), labels=obj.labels)


def parse_l2_advertisement(obj: Obj, out: Emitter) -> None:
    spec = obj.spec()
    out.add("metallb_l2_advertisements", obj, spec.anchor,
            ip_address_pools=spec.strings("ipAddressPools"),
            ip_address_pool_selectors=_selectors(spec, "ipAddressPoolSelectors"),
            node_selectors=_selectors(spec, "nodeSelectors"), interfaces=spec.strings("interfaces"))


def parse_bgp_advertisement(obj: Obj, out: Emitter) -> None:
    spec = obj.spec()
    out.add("metallb_bgp_advertisements", obj, spec.anchor,
            ip_address_pools=spec.strings("ipAddressPools"),
            ip_address_pool_selectors=_selectors(spec, "ipAddressPoolSelectors"),
            node_selectors=_selectors(spec, "nodeSelectors"), peers=spec.strings("peers"),
            aggregation_length=spec.integer("aggregationLength"),
            aggregation_length_v6=spec.integer("aggregationLengthV6"),
            local_pref=spec.integer("localPref"), communities=spec.strings("communities"))


def parse_bgp_peer(obj: Obj, out: Emitter) -> None:
    spec = obj.spec(required=True)
    secret = spec.child("passwordSecret")
    out.add("metallb_bgp_peers", obj, spec.anchor, my_asn=spec.integer("myASN", required=True),
            peer_asn=spec.integer("peerASN"), peer_address=spec.text("peerAddress", required=True),
            source_address=spec.text("sourceAddress"), peer_port=spec.integer("peerPort"),
            hold_time_s=_duration(spec, "holdTime"),
            keepalive_time_s=_duration(spec, "keepaliveTime"),
            connect_time_s=_duration(spec, "connectTime"), router_id=spec.text("routerID"),
            ebgp_multihop=spec.flag("ebgpMultiHop"), vrf=spec.text("vrf"),
            bfd_profile=spec.text("bfdProfile"), node_selectors=_selectors(spec, "nodeSelectors"),
            password_set=bool(spec.any("password")),
            password_secret=secret.text("name") if secret else None)


PARSERS = {
    ("metallb.io", "IPAddressPool"): (parse_ip_pool, ("metallb_ip_pools",)),
    ("metallb.io", "L2Advertisement"): (parse_l2_advertisement, ("metallb_l2_advertisements",)),
    ("metallb.io", "BGPAdvertisement"): (parse_bgp_advertisement,
                                         ("metallb_bgp_advertisements",)),
    ("metallb.io", "BGPPeer"): (parse_bgp_peer, ("metallb_bgp_peers",)),
}
