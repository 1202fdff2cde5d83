"""The cluster model from real lab bundles (every cni x mode x addressing plan), checked against
what the lab knows it built (truth.json, written from diag.lab's records, not from diag facts)."""
from __future__ import annotations

import ipaddress

import pytest

from diag.facts.infer import infer_model
from diag.lab import plan as lab_plan
from tests.facts.helpers import complete_but_probes, facts, truth


def test_both_addressing_plans_and_every_cni_mode_are_covered():
    from tests.facts.helpers import CASES
    assert {tuple(c.split("-")) for c in CASES} >= {
        (cni, mode, plan) for cni in lab_plan.CNIS for mode in lab_plan.MODES
        for plan in lab_plan.ADDRESSINGS}


def test_hosts_roles_ips_nics_pod_cidrs(lab_case):
    t, f = truth(lab_case), facts(lab_case)
    assert complete_but_probes(f) and f.problems == ()
    assert len(f.parse_errors) == 0
    assert set(f.model.hosts) == set(t["hosts"])
    for name, info in t["hosts"].items():
        host = f.model.hosts[name]
        assert host.role.value == info["role"], host.role
        assert host.asn.value == info["asn"]
        if info["role"] == "node":
            assert host.node_ip.value == info["cluster_ip"]
            assert host.node_ip.source == "bgp-session"
            assert host.cluster_iface.value == info["cluster_iface"]
            assert host.default_iface.value == info["mgmt_iface"]
            assert host.pod_cidr.value == info["pod_cidr"]
            assert host.pod_cidr.source == "bgp-origination"
            # independent sources agree; none disagrees
            assert {"pod-route", "bgp-learned"} <= set(host.pod_cidr.agrees)
            assert host.pod_cidr.conflicts == ()
        else:
            assert host.pod_cidr.value is None and host.default_iface.value is None
            assert host.node_ip.value in {i.split("/")[0] for i in info["ips"]}
            assert set(host.peering_ips) == {i.split("/")[0] for i in info["ips"]}
            assert host.forwarding is True


def test_pod_range(lab_case):
    t, f = truth(lab_case), facts(lab_case)
    inferred = ipaddress.ip_network(f.model.pod_range.value)
    pods = [ipaddress.ip_network(h["pod_cidr"]) for h in t["hosts"].values() if h["pod_cidr"]]
    assert all(p.subnet_of(inferred) for p in pods)
    if t["cni"] == "cilium":  # the static route operators add: exactly the pool
        assert str(inferred) == t["pod_range"] and f.model.pod_range.source == "route"
    else:  # Calico's pool lives in its datastore: the summary of the blocks, inside the pool
        assert f.model.pod_range.source == "summary"
        assert inferred.subnet_of(ipaddress.ip_network(t["pod_range"]))


def test_lb_ip_seen_in_arp(lab_case):
    t, f = truth(lab_case), facts(lab_case)
    assert f.model.lb_ips.value == [t["lb_probe"]]
    assert "ARP request" in f.model.lb_ips.how


def test_tunnel_endpoints(lab_case):
    t, f = truth(lab_case), facts(lab_case)
    nodes = {n: h for n, h in t["hosts"].items() if h["role"] == "node"}
    if t["mode"] != "vxlan":
        assert f.model.tunnels == () and f.tables["tunnels"].empty
        return
    assert {tun.host for tun in f.model.tunnels} == set(nodes)
    for tun in f.model.tunnels:
        assert (tun.kind, tun.vni, tun.port, tun.mtu) == (
            "vxlan", lab_plan.VXLAN_VNI, lab_plan.VXLAN_PORT, lab_plan.VXLAN_MTU)
        assert tun.local == nodes[tun.host]["cluster_ip"]
        assert set(tun.remotes) == {h["cluster_ip"] for n, h in nodes.items() if n != tun.host}
    assert len(f.tables["tunnels"]) == len(nodes)


def test_declared_inventory_wins_and_disagreement_is_kept():
    case = "cilium-vxlan-alt"
    t, f = truth(case), facts(case)
    tables = f.tables
    hosts = list(t["hosts"])
    declared = {"k8s-w1": {"pod_cidr": "198.18.7.0/24", "cluster_iface": t["hosts"]["k8s-w1"][
        "mgmt_iface"], "lb_ips": ["198.18.9.9"]}, "router": {"role": "other"}}
    model = infer_model(tables, hosts, declared)
    w1 = model.hosts["k8s-w1"]
    assert (w1.pod_cidr.value, w1.pod_cidr.source) == ("198.18.7.0/24", "declared")
    assert any(t["hosts"]["k8s-w1"]["pod_cidr"] in c for c in w1.pod_cidr.conflicts)
    assert w1.cluster_iface.source == "declared"
    assert w1.cluster_iface.conflicts  # the node IP is on another NIC: kept as a conflict
    assert model.hosts["router"].role.value == "other"
    assert model.lb_ips.value == ["198.18.9.9"] and model.lb_ips.source == "declared"
    # agreeing declaration: recorded with the sources that confirm it
    same = infer_model(tables, hosts, {"k8s-w0": {"pod_cidr": t["hosts"]["k8s-w0"]["pod_cidr"]}})
    assert same.hosts["k8s-w0"].pod_cidr.source == "declared"
    assert "bgp-origination" in same.hosts["k8s-w0"].pod_cidr.agrees


@pytest.mark.parametrize("case", ["calico-native-default", "cilium-vxlan-alt"])
def test_removing_evidence_changes_how_not_what(case):
    """Each pod-CIDR source is independent: without the BGP paths the routes still tell."""
    t, f = truth(case), facts(case)
    tables = {k: (v.iloc[0:0] if k == "bgp_paths" else v) for k, v in f.tables.items()}
    model = infer_model(tables, list(t["hosts"]))
    for name, info in t["hosts"].items():
        pod = model.hosts[name].pod_cidr
        if info["role"] != "node":
            continue
        assert (pod.value, pod.source) == (info["pod_cidr"], "pod-route")
        assert "bgp-origination" not in pod.agrees and "bgp-learned" not in pod.agrees
        if t["mode"] == "vxlan":
            assert "tunnel-fdb" in pod.agrees
    # and with no evidence at all for a node, nothing is invented
    empty = {k: v.iloc[0:0] for k, v in f.tables.items()}
    bare = infer_model(empty, list(t["hosts"]))
    assert all(h.pod_cidr.value is None and h.role.value == "other"
               for h in bare.hosts.values())


def test_nothing_known_says_so():
    import pandas as pd
    model = infer_model({"routes": pd.DataFrame()}, ["lonely"])
    host = model.hosts["lonely"]
    assert host.role.value == "other" and host.pod_cidr.value is None
    assert "no evidence" in host.pod_cidr.how and model.pod_range.value is None


def test_unreached_host_is_still_modelled_from_the_others_views(tmp_path):
    """k8s-w0 made unreachable in the manifest: the router's BGP table still names it."""
    import json
    import tarfile

    from diag.facts import load_facts
    from tests.facts.helpers import BUNDLES

    case = "cilium-native-alt"
    with tarfile.open(BUNDLES / f"{case}.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    root = tmp_path / case
    manifest = json.loads((root / "manifest.json").read_text())
    for command in manifest["hosts"]["k8s-w0"]["commands"]:
        (root / command["path"]).unlink()
    manifest["hosts"]["k8s-w0"] = {"reachability": "UNREACHABLE", "error": "timed out",
                                   "commands": []}
    manifest["status"] = "partial"
    (root / "manifest.json").write_text(json.dumps(manifest))
    f = load_facts(root)
    info = truth(case)["hosts"]["k8s-w0"]
    w0 = f.model.hosts["k8s-w0"]
    assert f.bundle["hosts"]["k8s-w0"]["reachability"] == "UNREACHABLE"
    assert (w0.role.value, w0.pod_cidr.value, w0.pod_cidr.source) == (
        "node", info["pod_cidr"], "bgp-learned")
    assert w0.node_ip.value == info["cluster_ip"] and "peers with" in w0.node_ip.how
    assert w0.cluster_iface.value is None and w0.default_iface.value is None


def test_route_gets_are_the_kernels_answers(lab_case):
    t, f = truth(lab_case), facts(lab_case)
    gets = f.tables["route_gets"]
    assert len(gets) == 2 * len(t["hosts"])  # two --probe addresses on every host
    pods = {h["pod_ip"]: n for n, h in t["hosts"].items() if h["pod_ip"]}
    for host, probe, dev, gateway, error in zip(gets.host, gets.probe, gets.dev, gets.gateway,
                                                gets.error):
        info = t["hosts"][host]
        if probe in pods:  # a pod: never out of the management NIC
            owner = t["hosts"][pods[probe]]
            if host == pods[probe]:
                assert dev not in (info["cluster_iface"], info["mgmt_iface"])
            elif info["role"] == "router":
                assert (gateway, error) == (owner["cluster_ip"], None)
            else:
                assert dev != info["mgmt_iface"] and error is None
        elif info["role"] == "router":  # no default route on the router
            assert "unreachable" in error and dev is None
        else:  # the default route: out of the management NIC (the two-NIC trap's way)
            assert dev == info["mgmt_iface"]


def test_hosts_and_commands_tables(lab_case):
    t, f = truth(lab_case), facts(lab_case)
    hosts = f.tables["hosts"].set_index("host")
    assert set(hosts.index) == set(t["hosts"])
    assert set(hosts.reachability) == {"OK"} and list(hosts.hostname) == list(hosts.index)
    assert set(hosts.iproute2) == {"6.1.0"}
    for name, info in t["hosts"].items():
        assert hosts.loc[name, "daemons"] == [info["daemon"].upper()]
    commands = f.tables["commands"]
    assert {"ip-route-v4", "ss-tanpi", "capture"} <= set(commands.id)
    assert set(commands.host) == set(t["hosts"])
