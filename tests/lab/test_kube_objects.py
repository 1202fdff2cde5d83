"""The lab as a cluster, without running it: the objects rendered from the plan read back
through the object parsers, and the daemons' configuration generated from them the way Cilium's
and Calico's reconcilers do — equal to the lab's own configuration, and changed by the edits a
person would make to the objects."""
from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

import pytest

from diag.lab.configs import CONNECT_RETRY, HOLD, KEEPALIVE
from diag.lab.kube_objects import (
    KubeObjectOptions,
    PeerStatus,
    cluster_objects,
    default_lb_ip,
    read_objects,
    write_objects,
)
from diag.lab.kube_reconcile import (
    calico_bird_intent,
    cilium_bgp_intent,
    render_bird,
    render_bird1,
    render_gobgpd,
)
from diag.lab.plan import MD5_PEER, addressing_plan
from diag.parse.k8s import parse_list
from tests.k8s.fixtures import objects as fixture_objects

PLANS = ("default", "alt")
PASSWORDS = {"bgp-auth-secret": "lab-md5"}
CALICO_PASSWORDS = {("bgp-secrets", "md5"): "lab-md5"}


def flat(plan, **options):
    """The objects `diag collect --kube` reads (the agent Pods are found by --via kubectl and
    never stored: no parser reads them)."""
    return [o for items in cluster_objects(plan, KubeObjectOptions(**options)).values()
            for o in items if o["kind"] != "Pod"]


@pytest.mark.parametrize("cni,label,container", [("cilium", "cilium", "cilium-agent"),
                                                 ("calico", "calico-node", "calico-node")])
def test_one_agent_pod_per_node(cni, label, container):
    plan = addressing_plan("default")
    pods = cluster_objects(plan, KubeObjectOptions(cni=cni))["pods"]
    assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(n.name for n in plan.nodes)
    assert {p["metadata"]["labels"]["k8s-app"] for p in pods} == {label}
    assert {p["spec"]["containers"][0]["name"] for p in pods} == {container}
    assert all(p["spec"]["hostNetwork"] and p["metadata"]["namespace"] == "kube-system"
               for p in pods)


def tables(items):
    result = parse_list(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert result.errors == []
    return {name: frame.to_dict("records") for name, frame in result.frames.items()}


def named(items, kind, name):
    return next(o for o in items if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.mark.parametrize("key", PLANS)
@pytest.mark.parametrize("mode", ["native", "vxlan"])
def test_cilium_objects_say_what_the_plan_says(key, mode):
    plan = addressing_plan(key)
    t = tables(flat(plan, cni="cilium", mode=mode, bgp_status={
        n.name: PeerStatus(advertised=1, received=2) for n in plan.nodes}))
    assert {r["name"]: r["internal_ips"] for r in t["k8s_nodes"]} == \
        {n.name: [n.ip] for n in plan.nodes}
    assert {r["name"]: r["pod_cidrs"] for r in t["cilium_nodes"]} == \
        {n.name: [n.pod_cidr] for n in plan.nodes}
    config = {r["key"]: r["value"] for r in t["cilium_config"]}
    assert config["routing-mode"] == ("native" if mode == "native" else "tunnel")
    assert (config["ipam"], config["cluster-pool-ipv4-cidr"], config["tunnel-port"]) == \
        ("cluster-pool", plan.pod_range, "8472")
    lb_ip = default_lb_ip(plan)
    (service,) = t["k8s_services"]
    assert service["ingress_ips"] == [lb_ip]
    assert [(b["start"], b["stop"]) for b in t["cilium_lb_pool_blocks"]] == [(lb_ip, lb_ip)]
    (lease,) = t["k8s_leases"]
    assert (lease["name"], lease["holder"]) == \
        ("cilium-l2announce-default-webpod", MD5_PEER)
    (policy,) = t["cilium_l2_policies"]
    assert policy["interfaces"] == [f"^{plan.host(MD5_PEER).cluster_nic.name}$"]
    peers = {r["node"]: (r["peer_address"], r["peer_asn"], r["state"])
             for r in t["cilium_bgp_node_peer_status"]}
    assert peers == {n.name: (plan.router_nic_for(n).ip, plan.router.asn, "ESTABLISHED")
                     for n in plan.nodes}


@pytest.mark.parametrize("key", PLANS)
@pytest.mark.parametrize("mode", ["native", "vxlan"])
def test_calico_objects_say_what_the_plan_says(key, mode):
    plan = addressing_plan(key)
    t = tables(flat(plan, cni="calico", mode=mode))
    (pool,) = t["calico_ip_pools"]
    assert (pool["cidr"], pool["vxlan_mode"], pool["ipip_mode"]) == \
        (plan.pod_range, "Always" if mode == "vxlan" else "Never", "Never")
    assert {(r["node"], r["cidr"]) for r in t["calico_block_affinities"]} == \
        {(n.name, n.pod_cidr) for n in plan.nodes}
    assert {(r["node"], r["allocated"]) for r in t["calico_ipam_blocks"]} == \
        {(n.name, 2 if mode == "vxlan" else 1) for n in plan.nodes}
    calico_nodes = {r["node"]: r for r in t["calico_nodes"]}
    for node in plan.nodes:
        assert calico_nodes[node.name]["ipv4_address"] == node.cluster_nic.address
        assert calico_nodes[node.name]["ipv4_vxlan_tunnel_addr"] == \
            (node.vtep_ip if mode == "vxlan" else None)
    (bgp,) = t["calico_bgp_configurations"]
    assert (bgp["as_number"], bgp["node_to_node_mesh"]) == (plan.nodes[0].asn, False)
    felix = {r["key"]: r["value"] for r in t["calico_felix_settings"]}
    assert felix["vxlanPort"] == 8472


@pytest.mark.parametrize("key", PLANS)
@pytest.mark.parametrize("api", ["v2", "v2alpha1"])
def test_gobgp_generated_from_the_crds_is_the_labs_baseline(key, api):
    """What the lab's GoBGP runs, written out from the plan: dial out only, the router's address
    on the node's segment, the lab's timers, TCP-MD5 for the MD5 node only, allow-own-as."""
    plan = addressing_plan(key)
    items = flat(plan, cni="cilium", cilium_api=api)
    for node in plan.nodes:
        intent = cilium_bgp_intent(items, node.name)
        assert intent.notes == () and intent.prefixes == (node.pod_cidr,)
        generated = tomllib.loads(render_gobgpd(intent, PASSWORDS))
        neighbor_config = {"neighbor-address": plan.router_nic_for(node).ip,
                           "peer-as": plan.router.asn, "description": plan.router.name}
        if node.name == MD5_PEER:
            neighbor_config["auth-password"] = "lab-md5"
        assert generated == {
            "global": {"config": {"as": node.asn, "router-id": node.ip, "port": -1}},
            "neighbors": [{
                "config": neighbor_config,
                "timers": {"config": {"connect-retry": CONNECT_RETRY, "hold-time": HOLD,
                                      "keepalive-interval": KEEPALIVE}},
                "transport": {"config": {"local-address": node.ip}},
                "as-path-options": {"config": {"allow-own-as": 1}},
                "afi-safis": [{"config": {"afi-safi-name": "ipv4-unicast"}}]}]}, node.name


def test_editing_the_advertisement_labels_stops_the_announcement_not_the_session():
    plan = addressing_plan("default")
    items = flat(plan, cni="cilium")
    named(items, "CiliumBGPAdvertisement", "bgp-advertisements")["metadata"]["labels"] = \
        {"advertise": "nothing"}
    for node in plan.nodes:
        intent = cilium_bgp_intent(items, node.name)
        assert intent.prefixes == ()
        config = tomllib.loads(render_gobgpd(intent, PASSWORDS))
        assert config["neighbors"][0]["config"]["neighbor-address"] == \
            plan.router_nic_for(node).ip


def test_node_selector_leaving_a_node_out_and_a_peer_asn_typo():
    plan = addressing_plan("default")
    items = flat(plan, cni="cilium")
    w0 = plan.host("k8s-w0")
    config = named(items, "CiliumBGPClusterConfig", f"cilium-bgp-{w0.cluster_nic.segment}")
    config["spec"]["nodeSelector"]["matchLabels"]["topology.kubernetes.io/zone"] = "lan9"
    intent = cilium_bgp_intent(items, "k8s-w0")
    assert intent.instances == () and intent.notes == (
        "no CiliumBGPClusterConfig selects the node",)
    with pytest.raises(ValueError, match="no CiliumBGPClusterConfig"):
        render_gobgpd(intent, PASSWORDS)
    typo = flat(plan, cni="cilium")
    peer = named(typo, "CiliumBGPClusterConfig", "cilium-bgp-md5")["spec"]["bgpInstances"][0] \
        ["peers"][0]
    peer["peerASN"] = 65100
    config = tomllib.loads(render_gobgpd(cilium_bgp_intent(typo, MD5_PEER), PASSWORDS))
    assert config["neighbors"][0]["config"]["peer-as"] == 65100


def test_md5_password_comes_from_the_secret_the_peer_config_names():
    plan = addressing_plan("default")
    items = flat(plan, cni="cilium")
    intent = cilium_bgp_intent(items, MD5_PEER)
    assert intent.instances[0].peers[0].auth_secret == "bgp-auth-secret"
    with pytest.raises(ValueError, match="no password for Secret bgp-auth-secret"):
        render_gobgpd(intent, {})
    other = cilium_bgp_intent(items, "k8s-ctr")
    assert "auth-password" not in render_gobgpd(other, {})


def test_service_advertisement_and_overlapping_selection():
    plan = addressing_plan("default")
    items = flat(plan, cni="cilium")
    advert = named(items, "CiliumBGPAdvertisement", "bgp-advertisements")
    advert["spec"]["advertisements"].append({
        "advertisementType": "Service", "service": {"addresses": ["LoadBalancerIP"]},
        "selector": {"matchLabels": {"app": "webpod"}}})
    intent = cilium_bgp_intent(items, "k8s-ctr")
    assert intent.prefixes == ("172.20.0.0/24", f"{default_lb_ip(plan)}/32")
    other = copy.deepcopy(items)
    twice = copy.deepcopy(named(other, "CiliumBGPClusterConfig", "cilium-bgp-md5"))
    twice["metadata"]["name"] = "cilium-bgp-extra"
    other.append(twice)
    conflict = cilium_bgp_intent(other, MD5_PEER)
    assert conflict.instances == () and "conflict" in conflict.notes[0]


def test_peering_policy_takes_precedence_and_two_cancel_each_other():
    plan = addressing_plan("default")
    items = flat(plan, cni="cilium")
    (policy,) = [p for p in fixture_objects("upstream/cilium-v2alpha1-peering-policy.yaml")
                 if p["spec"]["virtualRouters"][0].get("exportPodCIDR")]
    policy["spec"]["nodeSelector"] = {"matchLabels": {"kubernetes.io/hostname": "k8s-ctr"}}
    intent = cilium_bgp_intent(items + [policy], "k8s-ctr")
    assert intent.source == "PeeringPolicy rack0"
    (instance,) = intent.instances
    assert (instance.local_asn, instance.peers[0].address, instance.peers[0].prefixes) == \
        (64512, "10.0.0.1", ("172.20.0.0/24",))
    assert cilium_bgp_intent(items + [policy], "k8s-w1").source.startswith("ClusterConfig")
    second = copy.deepcopy(policy)
    second["metadata"]["name"] = "rack1"
    cancelled = cilium_bgp_intent(items + [policy, second], "k8s-ctr")
    assert cancelled.instances == () and "none applies" in cancelled.notes[0]


def test_override_of_the_upstream_containerlab_objects():
    items = fixture_objects("upstream/cilium-containerlab-v2alpha1.yaml")
    name = "bgpv2-cplane-dev-multi-homing-control-plane"
    items += [{"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": name, "labels": {"bgp": "65001"}},
               "status": {"addresses": [{"type": "InternalIP", "address": "10.0.1.2"}]}},
              {"apiVersion": "cilium.io/v2", "kind": "CiliumNode", "metadata": {"name": name},
               "spec": {"ipam": {"podCIDRs": ["10.1.0.0/24"]}}}]
    intent = cilium_bgp_intent(items, name)
    (instance,) = intent.instances
    assert instance.router_id == "1.2.3.4"                      # from the override
    (peer,) = instance.peers
    assert (peer.address, peer.local_address, peer.auth_secret) == \
        ("fd00:10::1", "fd00:10:0:1::2", "bgp-auth-secret")
    # the advertisement's PodCIDR (ipv4 family) and Services selected by bgp=blue (ipv6 none)
    assert intent.prefixes == ("10.1.0.0/24",)


@pytest.mark.parametrize("key", PLANS)
def test_bird_generated_from_the_calico_objects_is_the_labs_baseline(key):
    """BIRD 2 (``--bird 2``) and BIRD 1.6 (Calico's form) from the same objects: one BGP
    protocol per node, named as Calico names node-selected peers, towards the router's address
    on the node's segment, the node's block originated, TCP-MD5 for the MD5 node only."""
    plan = addressing_plan(key)
    items = flat(plan, cni="calico")
    for node in plan.nodes:
        intent = calico_bird_intent(items, node.name)
        nic = plan.router_nic_for(node)
        name = f"Node_{nic.ip.replace('.', '_')}"
        peer_object = f"{plan.router.name}-{'md5' if node.name == MD5_PEER else nic.segment}"
        assert [(p.name, p.address, p.asn, p.description, p.num_allowed_local_as)
                for p in intent.peers] == [(name, nic.ip, plan.router.asn, peer_object, 1)]
        assert (intent.router_id, intent.local_asn, intent.originated) == \
            (node.ip, node.asn, (node.pod_cidr,))
        bird2 = render_bird(intent, CALICO_PASSWORDS, Path("/log"))
        assert f"protocol bgp {name} {{" in bird2
        assert f"  local {node.ip} as {node.asn};\n  neighbor {nic.ip} as {plan.router.asn};" \
            in bird2
        assert f"protocol static pod_cidr {{ ipv4; route {node.pod_cidr} blackhole; }}" in bird2
        bird1 = render_bird1(intent, CALICO_PASSWORDS, Path("/log"))
        assert f"protocol bgp {name} from bgp_template {{" in bird1
        assert f"  source address {node.ip};" in bird1
        for text in (bird2, bird1):
            assert ('password "lab-md5";' in text) == (node.name == MD5_PEER)
            assert f"hold time {HOLD};" in text and f"keepalive time {KEEPALIVE};" in text


def test_bird16_in_vxlan_mode_leaves_the_pool_routes_to_felix():
    plan = addressing_plan("default")
    native = render_bird1(calico_bird_intent(flat(plan, cni="calico"), "k8s-ctr"),
                          CALICO_PASSWORDS, Path("/log"))
    vxlan = render_bird1(calico_bird_intent(flat(plan, cni="calico", mode="vxlan"), "k8s-ctr"),
                         CALICO_PASSWORDS, Path("/log"))
    kernel = "filter calico_kernel_programming {"
    assert "reject;" not in native.split(kernel)[1].split("}\n")[0].replace(
        "if ( source != RTS_BGP ) then reject;", "")
    assert "handled by Felix" in vxlan.split(kernel)[1]


def test_calico_mesh_selectors_and_export():
    plan = addressing_plan("default")
    items = flat(plan, cni="calico")
    named(items, "BGPConfiguration", "default")["spec"]["nodeToNodeMeshEnabled"] = True
    intent = calico_bird_intent(items, "k8s-ctr")
    assert sorted(p.name for p in intent.peers) == [
        "Mesh_192_168_10_101", "Mesh_192_168_20_100", "Node_192_168_10_200"]
    named(items, "IPPool", "default-ipv4-ippool")["spec"]["disableBGPExport"] = True
    assert calico_bird_intent(items, "k8s-ctr").originated == ()
    moved = flat(plan, cni="calico")
    named(moved, "BGPPeer", "router-lan1")["spec"]["nodeSelector"] = "rack == 'r9'"
    assert calico_bird_intent(moved, "k8s-ctr").peers == ()


def test_write_objects_gives_lists_the_api_can_serve(tmp_path):
    plan = addressing_plan("alt")
    paths = write_objects(tmp_path, cluster_objects(plan, KubeObjectOptions(cni="calico")))
    assert {p.name for p in paths} == {"nodes.json", "calico-bgp.json", "calico-ipam.json",
                                       "calico-felix.json", "lb.json", "pods.json"}
    assert not list(tmp_path.glob(".*"))
    for path in paths:
        if path.name != "pods.json":     # the agent pods: served, never parsed by diag
            assert parse_list(path.read_bytes()).errors == []


def test_an_object_file_gone_between_listing_and_reading_is_not_listed(tmp_path):
    """The kubectl stand-in reads the objects directory while a debug pod of another node is
    deleted (its file removed): seen in a CI run as a traceback from `kubectl exec` on a node
    whose own pod was there. A dangling link is a file the listing finds and the read does not."""
    write_objects(tmp_path, {"pods": [{"kind": "Pod", "metadata": {"name": "agent"}}]})
    (tmp_path / "pod-node-debugger-gone.json").symlink_to(tmp_path / "removed.json")
    assert read_objects(tmp_path) == {"pods": [{"kind": "Pod", "metadata": {"name": "agent"}}]}
