"""Kubernetes object parsers on real objects: the seeds' manifests, upstream documentation and
test manifests, objects as API servers returned them (tests/fixtures/k8s/*/SOURCE.md)."""
from __future__ import annotations

import json

import pytest

from diag.k8s import pointers
from diag.parse.common import ParseError
from diag.parse.k8s import TABLES, parse_list
from diag.parse.k8s.objects import REF_COLUMNS
from tests.k8s.fixtures import ROOT, as_list, listed, objects


def rows(tables, name):
    return tables.frames[name].to_dict("records")


def test_seed_lab_a_bgp_objects_v2():
    result = parse_list(listed("seeds/seed000-cilium-bgp.yaml"))
    assert result.errors == []
    (peer,) = rows(result, "cilium_bgp_peers")
    assert (peer["peer"], peer["peer_address"], peer["peer_asn"], peer["peer_config"]) == \
        ("tor-switch", "192.168.10.200", 65000, "cilium-peer")
    assert peer["pointer"] == "/spec/bgpInstances/0/peers/0"
    (instance,) = rows(result, "cilium_bgp_instances")
    assert instance["local_asn"] == 65001
    assert instance["node_selector"] == {"matchLabels": {"enable-bgp": "true"}}
    (config,) = rows(result, "cilium_bgp_peer_configs")
    assert (config["hold_time_s"], config["keepalive_s"], config["ebgp_multihop"],
            config["graceful_restart"], config["restart_time_s"]) == (9, 3, 2, True, 15)
    (family,) = rows(result, "cilium_bgp_peer_families")
    assert (family["afi"], family["safi"]) == ("ipv4", "unicast")
    assert family["advertisements"] == {"matchLabels": {"advertise": "bgp"}}
    (advert,) = rows(result, "cilium_bgp_advertisements")
    assert advert["type"] == "PodCIDR" and advert["labels"] == {"advertise": "bgp"}


def test_every_seed_manifest_parses_or_names_its_unknown_kind():
    names = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "seeds").glob("*.yaml"))
    result = parse_list(listed(*names))
    unknown = {(e.kind, e.pointer, e.reason) for e in result.errors}
    # the seeds' CiliumPodIPPool has no spec, as the upstream example: the CRD requires one
    assert unknown == {("Deployment", "", "no parser for apps/v1 Deployment"),
                       ("Pod", "", "no parser for v1 Pod"),
                       ("CiliumPodIPPool", "/spec", "required field is missing")}
    services = rows(result, "k8s_services")
    http_test = next(s for s in services if s["name"] == "http-test")
    assert http_test["type"] == "LoadBalancer" and http_test["ingress_ips"] == []
    assert http_test["ports"] == ["80/TCP"]
    pools = rows(result, "cilium_lb_pool_blocks")
    ranges = [(b["start"], b["stop"]) for b in pools if b["name"] == "cilium-lb-ippool"]
    assert ranges == [("192.168.10.211", "192.168.10.215")]
    mixed = {b["cidr"] or f"{b['start']}-{b['stop']}" for b in pools if b["name"] == "pool-cidr"}
    assert mixed == {"203.0.113.0/28", "2001:db8:1::/112", "203.0.113.10-203.0.113.20",
                     "198.51.100.50-198.51.100.60"}
    (policy,) = rows(result, "cilium_l2_policies")
    assert policy["api_version"] == "cilium.io/v2alpha1"
    assert policy["interfaces"] == ["^eth[1-9]+"] and policy["load_balancer_ips"] is True
    assert policy["node_selector"]["matchExpressions"][0]["values"] == ["k8s-w0"]
    adverts = rows(result, "cilium_bgp_advertisements")
    service = next(a for a in adverts if a["type"] == "Service" and a["selector"]
                   and "matchExpressions" in a["selector"])
    assert service["service_addresses"] == ["ClusterIP", "ExternalIP", "LoadBalancerIP"]
    attrs = next(a for a in adverts if a["communities"])
    assert attrs["communities"] == {"standard": ["65000:99"]} and attrs["local_preference"] == 99
    assert "cilium_pod_ip_pools" not in result.frames


def test_upstream_v2_docs_and_v2alpha1_containerlab_give_the_same_shape():
    v2 = parse_list(listed("upstream/cilium-v2-docs.yaml"))
    v2alpha1 = parse_list(listed("upstream/cilium-containerlab-v2alpha1.yaml"))
    assert v2.errors == [] and v2alpha1.errors == []
    for name in ("cilium_bgp_peers", "cilium_bgp_advertisements", "cilium_bgp_overrides"):
        assert list(v2.frames[name].columns) == list(v2alpha1.frames[name].columns)
    peers = rows(v2, "cilium_bgp_peers")
    assert [p["peer_address"] for p in peers] == ["fd00:10:0:0::1", "fd00:11:0:0::1"]
    overrides = rows(v2, "cilium_bgp_overrides")
    assert [(o["node"], o["router_id"], o["local_port"], o["local_asn"], o["local_address"])
            for o in overrides] == [
        ("bgpv2-cplane-dev-multi-homing-worker", "192.168.10.1", 1790, 65010, "fd00:10:0:2::2"),
        ("bgpv2-cplane-dev-multi-homing-worker", "192.168.10.1", 1790, 65010, "fd00:11:0:2::2")]
    transport = [c for c in rows(v2, "cilium_bgp_peer_configs") if c["peer_port"]]
    assert transport[0]["peer_port"] == 179
    large = [a["communities"] for a in rows(v2, "cilium_bgp_advertisements")]
    assert large == [{"large": ["1111:1111:1111"]}, {"large": ["2222:2222:2222"]}]
    lab = rows(v2alpha1, "cilium_bgp_advertisements")
    assert [(a["type"], a["communities"]["standard"]) for a in lab] == [
        ("PodCIDR", ["65000:99"]), ("Service", ["65000:100"]), ("Service", ["65000:200"])]
    families = rows(v2alpha1, "cilium_bgp_peer_families")
    assert [f["afi"] for f in families] == ["ipv4", "ipv6"]
    (config,) = rows(v2alpha1, "cilium_bgp_peer_configs")
    assert config["auth_secret_ref"] == "bgp-auth-secret"
    blocks = rows(v2alpha1, "cilium_lb_pool_blocks")
    assert [b["cidr"] for b in blocks] == ["20.0.10.0/24", "2004::0/64", "20.1.10.0/24",
                                           "2004:1::0/64"]


def test_legacy_peering_policy():
    result = parse_list(listed("upstream/cilium-v2alpha1-peering-policy.yaml"))
    assert result.errors == []
    neighbors = rows(result, "cilium_bgp_policy_neighbors")
    assert [(n["name"], n["peer_address"], n["peer_ip"], n["peer_asn"]) for n in neighbors[:2]] \
        == [("control-plane", "10.0.1.1/32", "10.0.1.1", 65000),
            ("worker", "10.0.2.1/32", "10.0.2.1", 65000)]
    assert any(n["graceful_restart"] and n["restart_time_s"] == 120 for n in neighbors)
    assert any(n["auth_secret_ref"] == "bgp-password" for n in neighbors)
    assert any(n["ebgp_multihop_ttl"] == 4 for n in neighbors)
    policies = rows(result, "cilium_bgp_policies")
    assert any(p["export_pod_cidr"] for p in policies)
    service = next(p for p in policies if p["service_advertisements"])
    assert service["service_advertisements"] == ["LoadBalancerIP", "ClusterIP", "ExternalIP"]
    assert service["service_selector"] == {"matchLabels": {"app": "foo"}}


def test_objects_as_a_v2alpha1_server_returned_them():
    result = parse_list(listed("upstream/cilium-v2alpha1-server-objects.yaml",
                               "upstream/cilium-v2alpha1-clusterconfig-list.yaml"))
    assert result.errors == []
    (service,) = rows(result, "k8s_services")
    assert service["ingress_ips"] == ["172.18.255.200", "2001:db8:dead:beef::"]
    assert service["cluster_ips"] == ["10.2.216.60", "fd00:10:2::fb24"]
    assert service["conditions"][0]["type"] == "cilium.io/IPAMRequestSatisfied"
    assert service["conditions"][0]["reason"] == "satisfied"
    (status,) = rows(result, "cilium_bgp_node_status")
    assert status["node"] == "kind-control-plane" and status["reported"] is False
    assert "cilium_bgp_node_peer_status" not in result.frames or \
        result.frames["cilium_bgp_node_peer_status"].empty
    peers = rows(result, "cilium_bgp_peers")
    assert {(p["source"], p["node"], p["peer_config"]) for p in peers} == {
        ("node", "kind-control-plane", "generic"), ("cluster", None, "generic")}
    (config,) = rows(result, "cilium_bgp_peer_configs")
    assert config["ebgp_multihop"] == 1


@pytest.mark.parametrize("version", ["cilium.io/v2", "cilium.io/v2alpha1"])
def test_node_config_status_in_both_api_versions(version):
    items = objects("upstream/cilium-v2-nodeconfig-status.yaml")
    for item in items:   # v2alpha1 and v2 differ only in apiVersion (conversion strategy None)
        item["apiVersion"] = version
    result = parse_list(as_list(items))
    assert result.errors == []
    peers = rows(result, "cilium_bgp_node_peer_status")
    assert [(p["node"], p["peer_address"], p["peering_state"], p["state"]) for p in peers] == [
        ("bgp-cplane-dev-service-control-plane", "fd00:10::1", "established", "ESTABLISHED"),
        ("bgp-cplane-dev-service-worker", "fd00:10::1", "established", "ESTABLISHED")]
    assert (peers[0]["received"], peers[0]["advertised"]) == (0, 2)
    assert (peers[0]["hold_time_s"], peers[0]["keepalive_s"]) == (90, 30)
    assert peers[0]["pointer"] == "/status/bgpInstances/0/peers/0"
    assert [s["reported"] for s in rows(result, "cilium_bgp_node_status")] == [True, True]
    conditions = rows(parse_list(listed("upstream/cilium-v2-peerconfig-status.yaml")),
                      "cilium_bgp_peer_configs")[0]["conditions"]
    assert conditions[0]["type"] == "cilium.io/MissingAuthSecret"


def test_cilium_config_keys_and_pointers():
    result = parse_list(listed("upstream/cilium-config-gke-dpv2.yaml"))
    config = {r["key"]: r for r in rows(result, "cilium_config")}
    assert config["ipam"]["value"] == "kubernetes" and config["tunnel"]["value"] == "disabled"
    assert config["ipam"]["pointer"] == "/data/ipam"
    assert config["ipam"]["namespace"] == "kube-system"


def test_calico_reference_samples():
    result = parse_list(listed("upstream/calico-docs.yaml", "upstream/calico-node-status.yaml"))
    assert result.errors == []
    (bgp,) = rows(result, "calico_bgp_configurations")
    assert (bgp["as_number"], bgp["node_to_node_mesh"], bgp["listen_port"],
            bgp["node_mesh_max_restart_s"]) == (63400, True, 178, 120.0)
    assert bgp["service_external_ips"] == ["104.244.42.129/32", "172.217.3.0/24"]
    (peer,) = rows(result, "calico_bgp_peers")
    assert (peer["node"], peer["peer_ip"], peer["peer_port"], peer["as_number"]) == \
        ("rack1-host1", "192.168.1.1", None, 63400)
    rules = rows(result, "calico_bgp_filter_rules")
    assert [(r["direction"], r["match_operator"]) for r in rules] == [
        ("exportV4", "In"), ("importV4", "NotIn"), ("exportV6", "Equal"), ("importV6", "NotEqual")]
    (pool,) = rows(result, "calico_ip_pools")
    assert (pool["ipip_mode"], pool["vxlan_mode"], pool["nat_outgoing"]) == \
        ("CrossSubnet", "Never", True)
    (node,) = rows(result, "calico_nodes")
    assert (node["source"], node["ipv4_address"], node["as_number"]) == \
        ("Node", "10.244.0.1/24", 64512)
    peers = rows(result, "calico_node_status_peers")
    assert [(p["peer_ip"], p["state"]) for p in peers] == [
        ("10.128.0.242", "ESTABLISHED"), ("10.128.0.200", "ESTABLISHED"),
        ("10.128.0.241", "OPENSENT")]
    assert peers[0]["node"] == "my-kadm-node-0" and peers[0]["type"] == "NodeMesh"


def test_calico_3_26_objects_from_a_running_cluster():
    result = parse_list(listed("upstream/calico-3.26-ippool.yaml",
                               "upstream/calico-3.26-ipamblocks-list.yaml",
                               "upstream/k8s-1.23-node-calico.yaml",
                               "upstream/calico-blockaffinity-v3-list.yaml"))
    assert result.errors == []
    (pool,) = rows(result, "calico_ip_pools")
    assert (pool["cidr"], pool["block_size"], pool["vxlan_mode"]) == \
        ("192.168.0.0/16", 26, "CrossSubnet")
    (block,) = rows(result, "calico_ipam_blocks")
    assert (block["cidr"], block["node"], block["size"], block["allocated"]) == \
        ("192.168.185.0/26", "mac-k8s", 64, 8)
    (node,) = rows(result, "k8s_nodes")
    assert (node["internal_ips"], node["hostname"], node["pod_cidrs"], node["ready"]) == \
        (["192.168.191.153"], "mac-k8s", ["192.168.0.0/24"], True)
    assert node["kubelet_version"] == "v1.23.3"
    (calico_node,) = rows(result, "calico_nodes")
    assert (calico_node["source"], calico_node["ipv4_address"],
            calico_node["ipv4_vxlan_tunnel_addr"]) == \
        ("annotations", "192.168.191.153/24", "192.168.185.0")
    (lease,) = rows(result, "k8s_leases")
    assert (lease["holder"], lease["lease_duration_s"], lease["l2_announce"]) == \
        ("mac-k8s", 40, None)
    affinities = rows(result, "calico_block_affinities")
    assert next((a["node"], a["cidr"], a["state"], a["deleted"]) for a in affinities) == \
        ("calico-ipam-control-plane", "192.168.18.64/26", "confirmed", False)


def test_metallb_samples():
    result = parse_list(listed("upstream/metallb-configsamples.yaml",
                               "upstream/metallb-docs-bgp.yaml"))
    assert result.errors == []
    peers = rows(result, "metallb_bgp_peers")
    secret = next(p for p in peers if p["name"] == "peer-with-secret")
    assert (secret["hold_time_s"], secret["keepalive_time_s"], secret["password_secret"],
            secret["password_set"]) == (540.0, 0.0, "secretname", False)
    assert next(p for p in peers if p["name"] == "peer")["connect_time_s"] == 120.0
    selected = next(p for p in peers if p["peer_port"] == 180)
    assert len(selected["node_selectors"]) == 2
    pools = rows(result, "metallb_ip_pools")
    assert any("192.168.9.1-192.168.9.5" in p["addresses"] for p in pools)
    adverts = rows(result, "metallb_bgp_advertisements")
    assert any(a["local_pref"] == 150 and a["communities"] == ["65535:65282"] for a in adverts)
    assert any(a["name"] == "empty" and a["ip_address_pools"] == [] for a in adverts)
    (l2,) = rows(result, "metallb_l2_advertisements")
    assert l2["node_selectors"] == [{"matchLabels": {"kubernetes.io/hostname":
                                                     "kind-control-plane"}}]


ALL_FIXTURES = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.yaml"))


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_row_points_into_its_object(name):
    items = objects(name)
    result = parse_list(as_list(items))
    for table, df in result.frames.items():
        assert list(df.columns) == TABLES[table]
        for row in df.to_dict("records"):
            pointers.resolve(items[row["item"]], row["pointer"])   # raises when it does not


# -- what the parser refuses -----------------------------------------------------------------

def test_wrong_type_is_an_error_at_the_field_and_other_objects_still_parse():
    items = objects("seeds/seed000-cilium-bgp.yaml")
    items[2]["spec"]["bgpInstances"][0]["peers"][0]["peerASN"] = "65000"
    result = parse_list(as_list(items))
    (error,) = result.errors
    assert (error.kind, error.name, error.pointer) == \
        ("CiliumBGPClusterConfig", "cilium-bgp", "/spec/bgpInstances/0/peers/0/peerASN")
    assert "expected an integer, got a string" in error.reason
    assert "cilium_bgp_peers" not in result.frames      # no half-read rows of that object
    assert len(result.frames["cilium_bgp_peer_configs"]) == 1
    assert result.errors_frame().to_dict("records")[0]["pointer"] == error.pointer


def test_unknown_api_version_is_named():
    items = objects("seeds/seed000-cilium-bgp.yaml")
    items[0]["apiVersion"] = "cilium.io/v3"
    (error,) = parse_list(as_list(items)).errors
    assert error.pointer == "/apiVersion" and "unknown version cilium.io/v3" in error.reason


def test_missing_required_field_and_empty_list_with_expected_kind():
    items = objects("seeds/seed001-lbippool-public-pool.yaml")
    del items[0]["spec"]["blocks"]
    (error,) = parse_list(as_list(items)).errors
    assert error.reason == "pool without blocks" and error.pointer == "/spec"
    empty = parse_list(as_list([]), expect=("cilium.io", "CiliumLoadBalancerIPPool"))
    assert set(empty.frames) == {"cilium_lb_pools", "cilium_lb_pool_blocks"}
    assert list(empty.frames["cilium_lb_pools"].columns) == TABLES["cilium_lb_pools"]
    mismatch = parse_list(listed("seeds/seed001-lbippool-public-pool.yaml"),
                          expect=("", "Node"))
    assert "in a list of Node" in mismatch.errors[0].reason


@pytest.mark.parametrize("document, message", [
    (b"not json", "not JSON"),
    (b'{"kind": "Status", "status": "Failure"}', "not a Kubernetes List"),
    (b'{"kind": "List", "items": {}}', "items is not a list"),
    (b"[]", "expected a JSON object"),
])
def test_documents_that_are_not_lists(document, message):
    with pytest.raises(ParseError, match=message):
        parse_list(document)


def test_item_without_a_name():
    result = parse_list(json.dumps({"kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Node", "metadata": {}}]}))
    assert result.errors[0].pointer == "/metadata/name"


def test_ref_columns_lead_every_table():
    assert all(columns[:len(REF_COLUMNS)] == REF_COLUMNS for columns in TABLES.values())


def test_node_addresses_by_type():
    (node,) = objects("upstream/k8s-1.23-node-calico.yaml")[:1]
    node["status"]["addresses"].insert(1, {"address": "203.0.113.7", "type": "ExternalIP"})
    result = parse_list(as_list([node]))      # a cloud node: one edit of the real object
    (row,) = rows(result, "k8s_nodes")
    assert (row["internal_ips"], row["external_ips"]) == (["192.168.191.153"], ["203.0.113.7"])
    assert [(a["type"], a["pointer"]) for a in rows(result, "k8s_node_addresses")] == [
        ("InternalIP", "/status/addresses/0"), ("ExternalIP", "/status/addresses/1"),
        ("Hostname", "/status/addresses/2")]
