"""Intent versus state without a lab (~10 s): the analyzers that judge the Kubernetes objects
against the daemons', kernel's and captures' state, on real objects — the seeds' CRDs
(tests/fixtures/k8s/seeds), upstream documentation examples (tests/fixtures/k8s/upstream) and
the lab's own — each misconfiguration made by the one edit a person would make, against real
state: bundles collected from the lab through the agent pods, healthy or with that
configuration fault applied (tests/fixtures/intent, made by make_intent_fixtures.py).

For each edit the same objects are also judged against the healthy state (the daemons from
before the edit): that must never give the fault's code — an effect is never claimed from the
objects alone — but ``INTENT_NOT_APPLIED`` (the objects and the daemons disagree).
"""
from __future__ import annotations

import json
import shlex

import pytest

from diag.bundle import kube_object_pointer
from diag.k8s import pointers
from tests.analyze.intentkit import (bundle, explain_of, lab_objects, listing, named, seeds,
                                     upstream, without)

BGP_KINDS = ("CiliumBGPClusterConfig", "CiliumBGPPeerConfig", "CiliumBGPAdvertisement")


def first(result):
    assert result.findings, "no finding"
    return result.findings[0]


def warnings(result) -> list[str]:
    return [f"{f.severity} {f.code}: {f.summary}" for f in result.findings
            if f.severity != "info"]


def object_evidence(finding):
    return [e for e in finding.evidence if e.role == "intent"]


def resolves(path, ev) -> object:
    """The cited part of the stored object, read with json and the RFC 6901 pointer."""
    data = json.loads((path / ev.file).read_text())
    return pointers.resolve(data, ev.pointer)


def seed000_lab_a(case: str) -> list[dict]:
    """Seed 000's BGP objects (lab A's cluster) in place of the lab's own BGP objects."""
    return without(lab_objects(case), *BGP_KINDS) + seeds("seed000-cilium-bgp.yaml")


# --- healthy sets: no warning --------------------------------------------------------------

@pytest.mark.parametrize("case", ["cilium-native-healthy", "cilium-vxlan-healthy",
                                  "calico-native-healthy"])
def test_healthy_lab_objects_and_state_give_no_warning(tmp_path, case):
    path = bundle(tmp_path / "b", lab_objects(case), state=case)
    _, result = explain_of(path)
    assert not warnings(result), listing(result)
    passed = {c.name for c in result.checked if c.passed}
    if case.startswith("cilium"):
        assert {"Cilium BGP: every node with pods gets a BGP instance",
                "Cilium BGP: each node's pod CIDR is advertised",
                "LoadBalancer Services have an address (Cilium LB-IPAM pools)"} <= passed
    else:
        assert {"every Calico node has a BGP path (mesh, BGPPeers, route reflectors)",
                "IP pools' encapsulation matches the nodes' devices and routes"} <= passed


def test_seed000_objects_on_lab_a_state_give_no_warning(tmp_path):
    """The seed's BGP objects are lab A's: one ClusterConfig for every node labelled
    enable-bgp=true, its PeerConfig (ebgpMultihop 2) and PodCIDR advertisement."""
    path = bundle(tmp_path / "b", seed000_lab_a("cilium-native-healthy"),
                  state="cilium-native-healthy")
    _, result = explain_of(path)
    assert not warnings(result), listing(result)
    assert any(c.passed and c.name == "Cilium BGP: each node's pod CIDR is advertised"
               for c in result.checked)


def test_seed003_pool_and_policy_on_lab_a_state_give_no_warning(tmp_path):
    objects = without(lab_objects("cilium-native-healthy"), "CiliumLoadBalancerIPPool",
                      "CiliumL2AnnouncementPolicy")
    objects += seeds("seed003-lbippool-cilium-lb-ippool.yaml",
                     "seed003-l2announcementpolicy-policy1.yaml")
    path = bundle(tmp_path / "b", objects, state="cilium-native-healthy")
    _, result = explain_of(path)
    assert not warnings(result), listing(result)


# --- Cilium BGP -----------------------------------------------------------------------------

def _relabelled(case: str) -> list[dict]:
    objects = seed000_lab_a(case)
    named(objects, "CiliumBGPAdvertisement")["metadata"]["labels"] = {"advertise": "pod-cidr"}
    return objects


def test_advertisement_selector_mismatch_names_the_selector_chain(tmp_path):
    path = bundle(tmp_path / "b", _relabelled("advertisement-selector-mismatch"),
                  state="advertisement-selector-mismatch")
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "BGP_NO_ADVERTISEMENT" and top.severity == "error", listing(result)
    cited = {e.file: e for e in object_evidence(top)}
    advert = cited["kube/cilium.io/ciliumbgpadvertisements.json"]
    assert advert.pointer == kube_object_pointer(0, "/metadata/labels")
    assert resolves(path, advert) == {"advertise": "pod-cidr"}
    family = cited["kube/cilium.io/ciliumbgppeerconfigs.json"]
    assert resolves(path, family) == {"matchLabels": {"advertise": "bgp"}}
    # the state that shows it: the node's own RIB and its session, read through its agent pod
    state = [e for e in top.evidence if e.role == "state"]
    assert any("cilium-bgp-routes" in e.file for e in state), top.evidence
    assert any(line.startswith("kubectl patch ciliumbgpadvertisements.cilium.io") for line in
               top.fix), top.fix
    patch = json.loads(shlex.split(top.fix[0])[-1])
    assert patch == [{"op": "replace", "path": "/metadata/labels/advertise", "value": "bgp"}]


def test_advertisement_edit_on_untouched_daemons_is_not_applied(tmp_path):
    path = bundle(tmp_path / "b", _relabelled("cilium-native-healthy"),
                  state="cilium-native-healthy")
    _, result = explain_of(path)
    codes = {f.code for f in result.findings}
    assert "BGP_NO_ADVERTISEMENT" not in codes, listing(result)
    assert first(result).code == "INTENT_NOT_APPLIED", listing(result)
    assert first(result).severity == "warning"


def _peer_asn(case: str, asn: int) -> list[dict]:
    objects = seed000_lab_a(case)
    named(objects, "CiliumBGPClusterConfig")["spec"]["bgpInstances"][0]["peers"][0]["peerASN"] = asn
    return objects


def test_peer_asn_typo_against_the_routers_open(tmp_path):
    path = bundle(tmp_path / "b", _peer_asn("peer-asn-typo", 65100), state="peer-asn-typo")
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "BGP_BAD_PEER_AS" and top.severity == "error", listing(result)
    assert "65100" in top.summary and "65000" in top.summary
    ev = object_evidence(top)[0]
    assert ev.pointer == kube_object_pointer(0, "/spec/bgpInstances/0/peers/0/peerASN")
    assert resolves(path, ev) == 65100
    # the AS the router really runs: its OPEN in the node's capture
    opens = [e for e in top.evidence if e.frame and "OPEN" in e.value]
    assert opens and "65000" in opens[0].value, top.evidence
    assert json.loads(shlex.split(top.fix[0])[-1])[0]["value"] == 65000


def test_peer_asn_edit_on_untouched_daemons_is_not_applied(tmp_path):
    path = bundle(tmp_path / "b", _peer_asn("cilium-native-healthy", 65100),
                  state="cilium-native-healthy")
    _, result = explain_of(path)
    assert "BGP_BAD_PEER_AS" not in {f.code for f in result.findings}, listing(result)
    assert first(result).code == "INTENT_NOT_APPLIED", listing(result)


def _node_label(case: str) -> list[dict]:
    objects = seed000_lab_a(case)
    named(objects, "Node", "k8s-w0")["metadata"]["labels"]["enable-bgp"] = "yes"
    return objects


def test_node_left_out_by_the_selector(tmp_path):
    path = bundle(tmp_path / "b", _node_label("node-not-selected"), state="node-not-selected")
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "BGP_NODE_NOT_SELECTED" and "k8s-w0" in top.summary, listing(result)
    assert "172.20.2.0/24" in top.summary
    labels = next(e for e in object_evidence(top) if e.file == "kube/core/nodes.json")
    assert resolves(path, labels)["enable-bgp"] == "yes"
    # the state: k8s-w0's BGP CLI could not reach a speaker (its manifest record), which the
    # rule prefers to the socket table when the bundle has it
    assert any(e.host == "k8s-w0" and e.role == "state" and e.file == "manifest.json"
               and "cannot reach the BGP control plane" in e.value
               for e in top.evidence), top.evidence
    assert "kubectl label node k8s-w0 enable-bgp=true" in top.fix


def test_node_label_edit_on_untouched_daemons_is_not_applied(tmp_path):
    path = bundle(tmp_path / "b", _node_label("cilium-native-healthy"),
                  state="cilium-native-healthy")
    _, result = explain_of(path)
    assert "BGP_NODE_NOT_SELECTED" not in {f.code for f in result.findings}, listing(result)
    assert first(result).code == "INTENT_NOT_APPLIED", listing(result)


def test_ebgp_peer_off_link_without_multihop(tmp_path):
    """Seed 000 peers every node with the router's lan1 address; k8s-w0 sits on lan2, so its
    PeerConfig needs ebgpMultihop 2 (the seed's). The one edit: the multihop line removed. The
    state: the router collected over SSH sees k8s-w0's session down (the node-not-selected
    lab: k8s-w0 has no speaker, which a TTL 1 session looks like from the node)."""
    objects = seed000_lab_a("node-not-selected")
    del named(objects, "CiliumBGPPeerConfig")["spec"]["ebgpMultihop"]
    path = bundle(tmp_path / "b", objects, state="node-not-selected")
    _, result = explain_of(path)
    # no session of k8s-w0's to 192.168.10.200 was collected: nothing shows the effect
    assert "BGP_EBGP_MULTIHOP_TTL" not in {f.code for f in result.findings}, listing(result)


# --- LB-IPAM and L2 announcements ----------------------------------------------------------------

def _seed_pool(case: str, stop: str | None = None) -> list[dict]:
    objects = without(lab_objects(case), "CiliumLoadBalancerIPPool", "CiliumL2AnnouncementPolicy")
    objects += seeds("seed003-lbippool-cilium-lb-ippool.yaml",
                     "seed003-l2announcementpolicy-policy1.yaml")
    if stop:
        named(objects, "CiliumLoadBalancerIPPool")["spec"]["blocks"][0].update(
            start=stop, stop=stop)
    return objects


def test_pool_exhausted_counts_the_blocks_against_the_services(tmp_path):
    # the seed's range .211-.215 narrowed to the one address the lab's webpod holds
    path = bundle(tmp_path / "b", _seed_pool("lb-pool-exhausted", "192.168.10.212"),
                  state="lb-pool-exhausted")
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "LB_IP_PENDING" and top.severity == "error", listing(result)
    assert "webpod-admin" in top.summary and "exhausted" in top.summary
    condition = next(e for e in top.evidence if "IPAMRequestSatisfied" in e.value)
    assert resolves(path, condition)["reason"] == "out_of_ips"
    assert condition.role == "state"


def test_pool_with_room_does_not_explain_the_pending_service_away(tmp_path):
    """With the seed's five addresses the pool is not full: the pending Service is still
    reported, and the reason says LB-IPAM should have allocated."""
    path = bundle(tmp_path / "b", _seed_pool("lb-pool-exhausted"), state="lb-pool-exhausted")
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "LB_IP_PENDING" and "free addresses" in top.summary, listing(result)


def test_pending_without_lb_ipam_condition_is_a_warning(tmp_path):
    objects = _seed_pool("lb-pool-exhausted", "192.168.10.212")
    # what the API answers before any LB-IPAM has seen the Service
    named(objects, "Service", "webpod-admin")["status"] = {"loadBalancer": {}}
    path = bundle(tmp_path / "b", objects, state="lb-pool-exhausted")
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "LB_IP_PENDING" and top.severity == "warning", listing(result)
    assert "not answered" in top.summary


def _wrong_interfaces(case: str) -> list[dict]:
    objects = _seed_pool(case)
    named(objects, "CiliumL2AnnouncementPolicy")["spec"]["interfaces"] = ["^ens[0-9]+"]
    return objects


def test_service_manifest_without_status_is_not_judged(tmp_path):
    objects = _seed_pool("lb-pool-exhausted", "192.168.10.212")
    del named(objects, "Service", "webpod-admin")["status"]
    path = bundle(tmp_path / "b", objects, state="lb-pool-exhausted")
    _, result = explain_of(path)
    assert "LB_IP_PENDING" not in {f.code for f in result.findings}, listing(result)
    assert any("without status" in c.needs for c in result.not_checked)


def test_l2_policy_interfaces_miss_the_nic_on_the_ip_subnet(tmp_path):
    path = bundle(tmp_path / "b", _wrong_interfaces("l2-policy-wrong-interface"),
                  state="l2-policy-wrong-interface")
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "L2_ANNOUNCE_INTERFACE_MISMATCH", listing(result)
    assert "eth1" in top.summary and "192.168.10.212" in top.summary
    policy = object_evidence(top)[0]
    assert resolves(path, policy) == ["^ens[0-9]+"]
    frames = [e for e in top.evidence if e.frame]
    assert frames and all("who-has 192.168.10.212" in e.value for e in frames)
    assert json.loads(shlex.split(top.fix[0])[-1])[0]["value"] == ["^eth1$"]


def test_l2_policy_edit_on_untouched_daemons_is_not_applied(tmp_path):
    """The healthy state has no ARP for the IP in its capture: not checked, never the fault."""
    path = bundle(tmp_path / "b", _wrong_interfaces("cilium-native-healthy"),
                  state="cilium-native-healthy")
    _, result = explain_of(path)
    assert "L2_ANNOUNCE_INTERFACE_MISMATCH" not in {f.code for f in result.findings}
    assert any("L2 announcements" in c.name for c in result.not_checked)


def test_stale_announcer_after_the_lease_moved(tmp_path):
    path = bundle(tmp_path / "b", _seed_pool("l2-lease-failover-stale"),
                  state="l2-lease-failover-stale")
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "ARP_STALE_AFTER_FAILOVER" and top.severity == "error", listing(result)
    lease = next(e for e in top.evidence if e.file == "kube/coordination.k8s.io/leases.json")
    assert lease.role == "state"               # the agents write the Lease: it is state
    assert resolves(path, lease) == "k8s-ctr"
    assert "k8s-w1" in top.summary
    # the intent beside it: the policy that announces the Service from the Lease holder alone
    policy = next(e for e in object_evidence(top)
                  if e.file == "kube/cilium.io/ciliuml2announcementpolicies.json")
    assert policy.pointer.endswith("/spec/serviceSelector") and resolves(path, policy)
    # the fix starts on the object side: the old announcer's agent pod restarted
    assert top.fix[0].startswith("kubectl -n kube-system delete pod -l k8s-app=cilium "
                                 "--field-selector spec.nodeName=k8s-w1"), top.fix


# --- cilium-config (upstream ConfigMaps) -------------------------------------------------------

def _config(case: str, name: str, **keys: str) -> list[dict]:
    objects = without(lab_objects(case), "ConfigMap")
    config = upstream(name)[0]
    config["data"].update(keys)
    return objects + [config]


def _lab_config(case: str, **keys: str) -> list[dict]:
    """The lab's own cilium-config (the upstream 1.13 one names a cluster-pool range,
    10.0.0.0/8, that would hold the lab's management subnet) with the edit."""
    objects = lab_objects(case)
    named(objects, "ConfigMap", "cilium-config")["data"].update(keys)
    return objects


def test_tunnel_port_changed_and_one_agent_restarted(tmp_path):
    objects = _lab_config("tunnel-port-config-mismatch", **{"tunnel-port": "4789"})
    path = bundle(tmp_path / "b", objects, state="tunnel-port-config-mismatch")
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "VXLAN_PORT_MISMATCH", listing(result)
    assert "k8s-ctr, k8s-w1 still use 8472" in top.summary
    assert resolves(path, object_evidence(top)[0]) == "4789"


def test_tunnel_port_edit_on_untouched_agents_is_not_applied(tmp_path):
    objects = _lab_config("cilium-vxlan-healthy", **{"tunnel-port": "4789"})
    path = bundle(tmp_path / "b", objects, state="cilium-vxlan-healthy")
    _, result = explain_of(path)
    assert "VXLAN_PORT_MISMATCH" not in {f.code for f in result.findings}, listing(result)
    assert first(result).code == "INTENT_NOT_APPLIED"


def test_legacy_tunnel_key_read_as_the_1_13_agents_do(tmp_path):
    """The upstream 1.13 ConfigMap (``tunnel: vxlan``, no tunnel-port: 8472) against the vxlan
    lab's devices: the tunnel check passes; with tunnel-port 4789 added, every device is on
    the old port (not applied)."""
    objects = _config("cilium-vxlan-healthy", "cilium-config-1.13-cluster-pool.yaml")
    path = bundle(tmp_path / "a", objects, state="cilium-vxlan-healthy")
    _, result = explain_of(path)
    assert any(c.passed and c.name == "the tunnel devices use cilium-config's protocol and port"
               for c in result.checked), result.checked
    objects = _config("cilium-vxlan-healthy", "cilium-config-1.13-cluster-pool.yaml",
                      **{"tunnel-port": "4789"})
    path = bundle(tmp_path / "b", objects, state="cilium-vxlan-healthy")
    _, result = explain_of(path)
    assert any(f.code == "INTENT_NOT_APPLIED" and "4789" in f.summary
               for f in result.findings), listing(result)


def test_auto_direct_node_routes_across_subnets(tmp_path):
    objects = _config("autodirect-across-subnets", "cilium-config-gke-dpv2.yaml",
                      **{"auto-direct-node-routes": "true"})
    path = bundle(tmp_path / "b", objects, state="autodirect-across-subnets")
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "ROUTE_MISSING_PODCIDR_OFF_LINK", listing(result)
    assert any(e.value.endswith("auto-direct-node-routes: true") for e in object_evidence(top))
    assert all(f.caused_by is not None for f in result.findings[1:]
               if f.code == "EGRESS_LEAK_DEFAULT_ROUTE"), listing(result)


# --- Calico (upstream samples) -------------------------------------------------------------------

def _filter(case: str) -> list[dict]:
    objects = without(lab_objects(case), "BGPFilter")
    sample = named(upstream("calico-docs.yaml"), "BGPFilter")
    sample["spec"]["importV4"][0]["action"] = "reject"     # the sample's accept, flipped
    for peer in (o for o in objects if o["kind"] == "BGPPeer" and o["spec"].get("filters")):
        peer["spec"]["filters"] = [sample["metadata"]["name"]]
    return objects + [sample]


def test_bgp_filter_rule_flipped_to_reject(tmp_path):
    path = bundle(tmp_path / "b", _filter("bird-filter-reject"), state="bird-filter-reject")
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "BIRD_FILTER_REJECT", listing(result)
    assert "my-filter" in top.summary and "172.20.2.0/24" in top.summary
    rule = next(e for e in object_evidence(top) if "bgpfilters" in e.file)
    assert resolves(path, rule)["action"] == "reject"
    assert any(f.caused_by == "BIRD_FILTER_REJECT" for f in result.findings[1:])


def test_bgp_filter_on_untouched_bird_is_not_applied(tmp_path):
    path = bundle(tmp_path / "b", _filter("calico-native-healthy"),
                  state="calico-native-healthy")
    _, result = explain_of(path)
    # the healthy lab's BGPPeers name no filter: attach the sample to k8s-ctr's
    assert "BIRD_FILTER_REJECT" not in {f.code for f in result.findings}, listing(result)


def test_ipip_cross_subnet_sample_judged_on_fixtures(tmp_path):
    """This kernel has no IPIP module: ipipMode is judged on collected state only. The docs
    sample pool (ipipMode CrossSubnet) with the lab's pod range (the one edit: its cidr)."""
    pool = named(upstream("calico-docs.yaml"), "IPPool")
    pool["spec"]["cidr"] = "172.20.0.0/16"
    for case, code in (("calico-native-healthy", "INTENT_NOT_APPLIED"),
                       ("ippool-mode-mismatch", "IPPOOL_ENCAPSULATION_MISMATCH")):
        objects = without(lab_objects(case), "IPPool") + [json.loads(json.dumps(pool))]
        if case == "ippool-mode-mismatch":
            # the lab's fault also turned vxlan on: the sample's ipip alone here
            pass
        path = bundle(tmp_path / case, objects, state=case)
        _, result = explain_of(path)
        found = [f for f in result.findings if f.code == code and "tunl0" in f.summary + str(
            f.evidence)]
        assert found, listing(result)


def test_mesh_off_sample_and_a_node_without_peer(tmp_path):
    objects = without(lab_objects("calico-mesh-off-no-rr"), "BGPConfiguration")
    config = named(upstream("calico-docs.yaml"), "BGPConfiguration")
    config["spec"]["nodeToNodeMeshEnabled"] = False
    path = bundle(tmp_path / "b", objects + [config], state="calico-mesh-off-no-rr")
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "BGP_RR_MISCONFIG" and "k8s-w0" in top.summary, listing(result)
    mesh = object_evidence(top)[0]
    assert resolves(path, mesh) is False


# --- MetalLB (upstream samples) ------------------------------------------------------------------

def test_metallb_pool_announced_by_no_advertisement(tmp_path):
    samples = upstream("metallb-configsamples.yaml")
    pool = named(samples, "IPAddressPool", "example")            # holds 192.168.10.0/24
    l2 = named(samples, "L2Advertisement", "example")
    l2["spec"]["ipAddressPools"] = ["ippool-ns-service-alloc-sample"]   # the one edit
    objects = [o for o in lab_objects("l2-policy-wrong-interface")
               if o["kind"] in ("Node", "Service", "ConfigMap", "CiliumNode")]
    path = bundle(tmp_path / "b", objects + [pool, l2], state="l2-policy-wrong-interface")
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "LB_IP_NOT_ANNOUNCED" and "192.168.10.212" in top.summary, \
        listing(result)


# --- the report draws the object beside the state -----------------------------------------------

@pytest.mark.parametrize("fmt", ["md", "html"])
def test_report_shows_the_object_beside_the_state(tmp_path, fmt):
    from diag.pipeline import report
    from diag.report.html import render_html
    from diag.report.markdown import render_markdown

    doc, data = report(bundle(tmp_path / "b", _wrong_interfaces("l2-policy-wrong-interface"),
                              state="l2-policy-wrong-interface"))
    top = doc["findings"][0]
    assert top["code"] == "L2_ANNOUNCE_INTERFACE_MISMATCH"
    roles = {e["role"] for e in top["evidence"]}
    assert roles == {"intent", "state"}
    text = render_markdown(doc, data) if fmt == "md" else render_html(doc, data)
    assert "the object (intent)" in text and "the state that shows the effect" in text
    section = text.split("the object (intent)")[1][:3000]
    # the policy's pointer in the left column, a captured frame in the right one
    assert "/items/0/spec/interfaces" in section and "frame " in section


# --- more rules on real objects ------------------------------------------------------------------

def test_l2_announcements_turned_off_while_policies_exist(tmp_path):
    objects = _seed_pool("l2-policy-wrong-interface")      # the seed's policy1 (its ^eth[1-9]+)
    named(objects, "ConfigMap", "cilium-config")["data"]["enable-l2-announcements"] = "false"
    path = bundle(tmp_path / "b", objects, state="l2-policy-wrong-interface")
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "CILIUM_FEATURE_DISABLED", listing(result)
    flag = object_evidence(top)[0]
    assert resolves(path, flag) == "false"
    assert json.loads(shlex.split(top.fix[0])[-1])[0]["value"] == "true"


def test_native_routing_cidr_that_misses_the_pod_cidrs(tmp_path):
    objects = lab_objects("cilium-native-healthy")
    named(objects, "ConfigMap", "cilium-config")["data"]["ipv4-native-routing-cidr"] = \
        "172.21.0.0/16"                                      # a digit off: the pods are 172.20
    path = bundle(tmp_path / "b", objects, state="cilium-native-healthy")
    _, result = explain_of(path)
    found = [f for f in result.findings if f.code == "NATIVE_ROUTING_CIDR_MISMATCH"]
    assert found and found[0].severity == "warning", listing(result)
    assert "172.20.0.0/24 (k8s-ctr)" in found[0].summary
    routes = [e for e in found[0].evidence if e.role == "state"]
    assert routes and all("ip-route-v4" in e.file for e in routes)


def test_metallb_peer_asn_against_the_sessions(tmp_path):
    """A MetalLB sample peer pointed at the lab's router (the one edit): the router runs AS
    65000, the sample says 64512, and the nodes' sessions to it are Established — the speakers
    still run other peers' configuration: not applied, never a broken session claimed."""
    samples = upstream("metallb-configsamples.yaml")
    peer = named(samples, "BGPPeer", "peer")
    peer["spec"]["peerAddress"] = "192.168.10.200"
    pool = named(samples, "IPAddressPool", "example")
    objects = [o for o in lab_objects("cilium-native-healthy")
               if o["kind"] in ("Node", "Service", "CiliumNode")]
    path = bundle(tmp_path / "b", objects + [peer, pool], state="cilium-native-healthy")
    _, result = explain_of(path)
    found = [f for f in result.findings if "64512" in f.summary]
    assert found and found[0].code == "INTENT_NOT_APPLIED", listing(result)
    assert "BGP_BAD_PEER_AS" not in {f.code for f in result.findings}


# --- the other forms and reasons the rules name ------------------------------------------------

def test_two_peering_policies_select_a_node_none_applies(tmp_path):
    """The docs' two rack0 CiliumBGPPeeringPolicies (tests/fixtures/k8s/upstream, the second
    renamed so both can exist) and k8s-w0 labelled rack=rack0: two legacy policies select it,
    so none applies — and a policy overrides the ClusterConfig on the nodes it selects, so
    k8s-w0 has no BGP at all. The state: the lab where k8s-w0 runs no speaker."""
    objects = seed000_lab_a("node-not-selected")
    first_policy, second = [p for p in upstream("cilium-v2alpha1-peering-policy.yaml")
                            if p["metadata"]["name"] == "rack0"][:2]   # exportPodCIDR, Services
    second["metadata"]["name"] = "rack0-services"
    named(objects, "Node", "k8s-w0")["metadata"]["labels"]["rack"] = "rack0"
    path = bundle(tmp_path / "b", objects + [first_policy, second], state="node-not-selected")
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "BGP_NODE_NOT_SELECTED" and "k8s-w0" in top.summary, listing(result)
    assert "none applies" in top.summary, top.summary
    cited = {resolves(path, e)["matchLabels"]["rack"] for e in object_evidence(top)
             if e.file == "kube/cilium.io/ciliumbgppeeringpolicies.json"}
    assert cited == {"rack0"}
    assert len([e for e in object_evidence(top)
                if e.file == "kube/cilium.io/ciliumbgppeeringpolicies.json"]) == 2
    # k8s-ctr and k8s-w1 keep the ClusterConfig (their speakers run): no finding about them
    assert not [f for f in result.findings if f.code == "BGP_NODE_NOT_SELECTED"
                and ("k8s-ctr" in f.summary or "k8s-w1" in f.summary)], listing(result)


def _pending(tmp_path, edit) -> tuple:
    objects = _seed_pool("lb-pool-exhausted")
    edit(objects)
    path = bundle(tmp_path / "b", objects, state="lb-pool-exhausted")
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "LB_IP_PENDING" and "webpod-admin" in top.summary, listing(result)
    return path, top


def test_pending_because_no_pool_selects_the_service(tmp_path):
    def edit(objects):       # the pool kept for one team's Services
        named(objects, "CiliumLoadBalancerIPPool")["spec"]["serviceSelector"] = {
            "matchLabels": {"team": "blue"}}
    path, top = _pending(tmp_path, edit)
    assert "no pool's serviceSelector matches" in top.summary, top.summary
    selector = next(e for e in object_evidence(top) if "serviceSelector" in e.value)
    assert resolves(path, selector) == {"matchLabels": {"team": "blue"}}
    assert "kubectl label service webpod-admin -n default team=blue" in top.fix


def test_pending_because_the_pool_is_disabled(tmp_path):
    def edit(objects):
        named(objects, "CiliumLoadBalancerIPPool")["spec"]["disabled"] = True
    path, top = _pending(tmp_path, edit)
    assert "disabled" in top.summary, top.summary
    flag = next(e for e in object_evidence(top) if e.pointer.endswith("/spec/disabled"))
    assert resolves(path, flag) is True
    patch = json.loads(shlex.split(top.fix[0])[-1])
    assert patch == [{"op": "replace", "path": "/spec/disabled", "value": False}]


def test_pending_because_the_requested_ip_is_in_no_pool(tmp_path):
    def edit(objects):       # the address asked for, one past the seed's .211-.215
        named(objects, "Service", "webpod-admin")["metadata"]["annotations"] = {
            "lbipam.cilium.io/ips": "192.168.10.216"}
    _, top = _pending(tmp_path, edit)
    assert "requested IP 192.168.10.216 is in none of the pools" in top.summary, top.summary
    assert any("192.168.10.211" in line for line in top.fix), top.fix


def test_calico_peer_asn_edit_on_untouched_bird_is_not_applied(tmp_path):
    """The one edit: router-lan1's asNumber typed 65100. The router runs AS 65000 (its own
    config, its OPENs) and BIRD on the lan1 nodes is still Established with it: not applied,
    never a broken session claimed."""
    objects = lab_objects("calico-native-healthy")
    named(objects, "BGPPeer", "router-lan1")["spec"]["asNumber"] = 65100
    path = bundle(tmp_path / "b", objects, state="calico-native-healthy")
    _, result = explain_of(path)
    found = [f for f in result.findings if "router-lan1" in f.summary]
    assert found and found[0].code == "INTENT_NOT_APPLIED", listing(result)
    assert "runs AS 65000" in found[0].summary and "65100" in found[0].summary
    assert "BGP_BAD_PEER_AS" not in {f.code for f in result.findings}, listing(result)
    asn = object_evidence(found[0])[0]
    assert resolves(path, asn) == 65100
    assert json.loads(shlex.split(found[0].fix[0])[-1])[0]["value"] == 65000


def test_lb_ip_no_policy_selects_the_service(tmp_path):
    """The one edit: policy1's serviceSelector typed app: web-pod. The state: the lab where
    nobody answers ARP for 192.168.10.212 on the cluster segment (captured)."""
    objects = _seed_pool("l2-policy-wrong-interface")
    named(objects, "CiliumL2AnnouncementPolicy")["spec"]["serviceSelector"] = {
        "matchLabels": {"app": "web-pod"}}
    path = bundle(tmp_path / "b", objects, state="l2-policy-wrong-interface")
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "LB_IP_NOT_ANNOUNCED" and "192.168.10.212" in top.summary, \
        listing(result)
    selector = next(e for e in object_evidence(top) if "serviceSelector" in e.value)
    assert resolves(path, selector) == {"matchLabels": {"app": "web-pod"}}
    assert any(e.frame for e in top.evidence), top.evidence          # the unanswered requests
    assert top.fix[0] == "kubectl label service webpod -n default app=web-pod", top.fix
    assert "ARP_UNANSWERED" not in {f.code for f in result.findings if f.caused_by is None}


def test_peer_asn_typo_from_the_objects_alone_no_exec(tmp_path):
    """Only `diag collect --kube` (no exec into any node): the lab's objects as its API served
    them with peer-asn-typo applied. The state is the CiliumBGPNodeConfigs' status the agents
    wrote: k8s-ctr's session idle with the typed AS, k8s-w1's Established with the router as
    AS 65000 — the AS the router really runs, so the typo is proved without a capture."""
    path = bundle(tmp_path / "b", lab_objects("peer-asn-typo"))
    _, result = explain_of(path)
    top = first(result)
    assert top.code == "BGP_BAD_PEER_AS" and "k8s-ctr" in top.summary, listing(result)
    assert resolves(path, object_evidence(top)[0]) == 65100
    status = {e.host: resolves(path, e) for e in top.evidence if e.role == "state"}
    assert status["k8s-ctr"]["peeringState"] == "idle", status
    assert (status["k8s-w1"]["peeringState"], status["k8s-w1"]["peerASN"]) == \
        ("established", 65000), status
    assert all(e.file == "kube/cilium.io/ciliumbgpnodeconfigs.json"
               for e in top.evidence if e.role == "state")
    assert json.loads(shlex.split(top.fix[0])[-1])[0]["value"] == 65000


# --- the mutants: each rule's decisive comparison, planted wrong, fails its test ---------------

MUTANTS = [
    # the selector chain: every selector matches everything
    ("intent_cilium", "_selects", lambda *a, **k: True,
     test_advertisement_selector_mismatch_names_the_selector_chain),
    # the peer's real AS taken from the objects instead of the wire
    ("intent", "State.real_as", lambda self, peer: (65100, []),
     test_peer_asn_typo_against_the_routers_open),
    # the interfaces regex: every pattern matches every NIC
    ("intent_l2", "_matches", lambda patterns, nic: True,
     test_l2_policy_interfaces_miss_the_nic_on_the_ip_subnet),
    # the state ignored: the objects alone decide (no finding may come from them)
    ("intent_cilium", "Cilium.advertised", lambda self, node, cidr: (False, [], []),
     test_advertisement_edit_on_untouched_daemons_is_not_applied),
    # LB-IPAM's serviceSelector: every pool selects every Service
    ("intent_lbipam", "_selects", lambda *a, **k: True,
     test_pending_because_no_pool_selects_the_service),
    # the Calico peer's real AS taken from the object (what the router runs ignored)
    ("intent", "State.real_as", lambda self, peer: (65100, []),
     test_calico_peer_asn_edit_on_untouched_bird_is_not_applied),
    # the same, with the NodeConfigs' status as the only state (no exec)
    ("intent", "State.real_as", lambda self, peer: (65100, []),
     test_peer_asn_typo_from_the_objects_alone_no_exec),
]


@pytest.mark.parametrize("module,attr,planted,test", MUTANTS,
                         ids=[m[1] for m in MUTANTS])
def test_a_planted_bug_fails_the_rules_test(tmp_path, monkeypatch, module, attr, planted, test):
    import importlib

    target = importlib.import_module(f"diag.analyze.{module}")
    owner, _, name = attr.rpartition(".")
    monkeypatch.setattr(getattr(target, owner) if owner else target, name, planted)
    with pytest.raises(AssertionError):
        test(tmp_path)
