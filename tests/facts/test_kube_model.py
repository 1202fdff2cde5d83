"""The model from Kubernetes: bundles whose kube part the real kubectl read from the lab's API
endpoint — real objects of the public record (tests/fixtures/k8s) for each IPAM mode, and the
lab's own objects beside the SSH hosts of the lab bundles (tests/fixtures/bundles), where the
lab's truth is the oracle."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from diag.facts import load_facts
from diag.lab.kube_objects import KubeObjectOptions, cluster_objects
from diag.lab.plan import addressing_plan
from diag.parse.k8s import TABLES
from tests.facts.helpers import BUNDLES, truth
from tests.k8s.bundles import KUBECTL, kube_bundle
from tests.k8s.fixtures import objects

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed "
                                "(bash .ci/test installs Debian's kubernetes-client)")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("kube-model")


def lab_objects(case: str, **options) -> dict[str, list[dict]]:
    t = truth(case)
    return cluster_objects(addressing_plan(t["addressing"]),
                           KubeObjectOptions(cni=t["cni"], mode=t["mode"], **options))


def model_of(work: Path, name: str, groups: dict[str, list[dict]], **kwargs):
    bundle, run = kube_bundle(work / name, groups, **kwargs)
    return load_facts(bundle), run


# --- each IPAM mode, on real objects ------------------------------------------------------------

def test_cluster_pool_pod_cidr_is_the_ciliumnodes(work):
    facts, run = model_of(work, "cluster-pool", {
        "config": objects("upstream/cilium-config-1.13-cluster-pool.yaml"),
        "kind": objects("upstream/cilium-controlplane-kind-node.yaml"),
        "kubeasz": objects("upstream/ciliumnode-cluster-pool-kubeasz.yaml")})
    assert run.reasons == []
    model = facts.model
    assert (model.cni.value, model.ipam.value) == ("cilium", "cluster-pool")
    assert model.ipam.how == "kubernetes ConfigMap/cilium-config in kube-system ipam: cluster-pool"
    kind = model.hosts["kind-control-plane"]
    assert not kind.collected and kind.role.value == "node"
    assert (kind.pod_cidr.value, kind.pod_cidr.source) == ("10.244.0.0/24", "kubernetes")
    assert kind.pod_cidr.how.startswith(
        "kubernetes CiliumNode/kind-control-plane spec.ipam.podCIDRs (ipam cluster-pool")
    assert kind.node_ip.value == "172.18.0.2"
    assert kind.node_ip.how == \
        "kubernetes Node/kind-control-plane status.addresses InternalIP 172.18.0.2"
    # node1 has a CiliumNode and no Node in the bundle: the CiliumNode stands for it
    node1 = model.hosts["node1"]
    assert (node1.pod_cidr.value, node1.node_ip.value) == ("10.233.66.0/24", "172.16.7.30")
    assert node1.node_ip.how.startswith("kubernetes CiliumNode/node1 spec.addresses")
    assert model.pod_range.value == "10.0.0.0/8"
    assert model.pod_range.how.endswith("cluster-pool-ipv4-cidr")
    # `tunnel: vxlan`, the key before Cilium 1.14; Cilium's default port
    assert model.routing.value == "tunnel"
    assert model.tunnel.value == {"protocol": "vxlan", "port": 8472}


def test_kubernetes_ipam_takes_the_nodes_pod_cidrs(work):
    # a Cilium cluster serves cilium.io (the CRDs are there even with no object of them)
    facts, _ = model_of(work, "kubernetes", {
        "config": objects("upstream/cilium-config-gke-dpv2.yaml"),
        "nodes": objects("upstream/cilium-1.13-kind-nodes.yaml")},
        installed_groups=frozenset({"cilium.io"}))
    model = facts.model
    assert model.ipam.value == "kubernetes"
    got = {name: (h.pod_cidr.value, h.node_ip.value) for name, h in model.hosts.items()}
    assert got == {"cilium-nodes-control-plane": ("10.244.0.0/24", "172.18.0.8"),
                   "cilium-nodes-worker": ("10.244.1.0/24", "172.18.0.7")}
    for name, host in model.hosts.items():
        assert host.pod_cidr.how == (f"kubernetes Node/{name} spec.podCIDRs (ipam kubernetes: "
                                     "kubernetes ConfigMap/cilium-config in kube-system)")
    assert model.routing.value == "native"            # `tunnel: disabled`
    assert model.tunnel.value is None


def test_multi_pool_takes_every_allocated_cidr(work):
    config = objects("upstream/cilium-config-1.13-cluster-pool.yaml")
    config[0]["data"]["ipam"] = "multi-pool"          # the one edit: the mode these nodes ran
    facts, _ = model_of(work, "multi-pool", {
        "config": config, "cn": objects("upstream/ciliumnodes-multi-pool.yaml")})
    worker2 = facts.model.hosts["c1-worker2"]
    assert worker2.pod_cidr.value == "10.20.30.0/27"
    assert "also 100.100.1.0/24" in worker2.pod_cidr.how
    assert worker2.pod_cidr.how.startswith(
        "kubernetes CiliumNode/c1-worker2 spec.ipam.pools.allocated (pools default, podippool-2")
    worker = facts.model.hosts["c1-worker"]
    assert (worker.pod_cidr.value, worker.node_ip.value) == ("192.168.1.0/27", None)
    # cluster-pool-ipv4-cidr is not the range of multi-pool: Kubernetes names none
    assert facts.model.pod_range.source != "kubernetes"


def test_calico_blocks_win_over_the_node_pod_cidr(work):
    """mac-k8s: the controller-manager gave the Node 192.168.0.0/24, Calico's IPAM gave it the
    block 192.168.185.0/26 — the pods live in the block."""
    facts, run = model_of(work, "calico", {
        "node": objects("upstream/k8s-1.23-node-calico.yaml"),
        "pool": objects("upstream/calico-3.26-ippool.yaml"),
        "blocks": objects("upstream/calico-3.26-ipamblocks-list.yaml"),
        "affinities": objects("upstream/calico-blockaffinity-v3-list.yaml")})
    assert run.reasons == []
    model = facts.model
    assert (model.cni.value, model.ipam.value) == ("calico", "calico")
    host = model.hosts["mac-k8s"]
    assert facts.tables["k8s_nodes"].pod_cidrs.tolist() == [["192.168.0.0/24"]]
    # no BlockAffinity names mac-k8s (those are of another cluster's nodes): its IPAMBlock
    assert host.pod_cidr.value == "192.168.185.0/26"
    assert host.pod_cidr.how == \
        "kubernetes IPAMBlock/192-168-185-0-26 spec.affinity host:mac-k8s"
    assert host.node_ip.value == "192.168.191.153"
    assert (model.pod_range.value, model.routing.value) == ("192.168.0.0/16", "cross-subnet")
    assert model.tunnel.value == {"protocol": "vxlan", "port": 4789}
    assert model.pod_range.how == "kubernetes IPPool/default-ipv4-ippool spec.cidr"


# --- beside SSH hosts: the lab bundles and the lab's objects ------------------------------------

def test_hosts_matched_to_nodes_take_kubernetes_values_and_inference_agrees(work):
    case = "cilium-vxlan-default"
    facts, run = model_of(work, "lab-cilium", lab_objects(case), hosts_from=case)
    assert run.reasons == []
    t = truth(case)
    model = facts.model
    assert set(model.hosts) == set(t["hosts"])                      # no extra host
    for name, expected in t["hosts"].items():
        host = model.hosts[name]
        assert host.collected
        if expected["role"] != "node":
            assert not host.kube_node.known and host.role.source != "kubernetes"
            continue
        assert host.kube_node.value == name
        assert host.kube_node.how == (f"kubernetes Node/{name} address {expected['cluster_ip']}"
                                      f" is an address of {name} (ip-addr)")
        assert (host.node_ip.value, host.node_ip.source) == (expected["cluster_ip"],
                                                             "kubernetes")
        assert "bgp-session" in host.node_ip.agrees
        assert (host.pod_cidr.value, host.pod_cidr.source) == (expected["pod_cidr"],
                                                               "kubernetes")
        assert host.pod_cidr.conflicts == () and "bgp-origination" in host.pod_cidr.agrees
        assert host.cluster_iface.value == expected["cluster_iface"]
    assert (model.routing.value, model.routing.agrees, model.routing.conflicts) == \
        ("tunnel", ("ip-link",), ())
    assert (model.tunnel.value, model.tunnel.conflicts) == (
        {"protocol": "vxlan", "port": 8472}, ())
    assert model.pod_range.value == t["pod_range"] and model.pod_range.source == "kubernetes"
    # the LoadBalancer IP is the Service's; the unanswered ARP target the lab probed is not one
    assert model.lb_ips.value == ["192.168.10.212"]
    assert model.lb_ips.conflicts == (f"arp: {t['lb_probe']}",)


def test_disagreements_are_conflicts_and_hosts_match_by_name(work):
    case = "cilium-native-default"
    t = truth(case)
    groups = copy.deepcopy(lab_objects(case))
    w1, w0 = t["hosts"]["k8s-w1"], t["hosts"]["k8s-w0"]
    # the IPAM assigned k8s-w1 another CIDR than the one its speaker originates
    for cn in groups["ciliumnodes"]:
        if cn["metadata"]["name"] == "k8s-w1":
            cn["spec"]["ipam"]["podCIDRs"] = ["172.20.9.0/24"]
    # k8s-w0's Node is named by its FQDN and reports an address no host holds
    for node in groups["nodes"]:
        if node["metadata"]["name"] == "k8s-w0":
            node["metadata"]["name"] = "k8s-w0.lab.example"
            node["status"]["addresses"] = [{"type": "InternalIP", "address": "198.51.100.7"},
                                           {"type": "Hostname", "address": "k8s-w0"}]
    for cn in groups["ciliumnodes"]:
        if cn["metadata"]["name"] == "k8s-w0":
            cn["metadata"]["name"] = "k8s-w0.lab.example"
    # kubeadm's controller-manager allocates Node CIDRs too; cluster-pool IPAM does not use them
    for node in groups["nodes"]:
        if node["metadata"]["name"] == "k8s-ctr":
            node["spec"] = {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]}
    facts, _ = model_of(work, "lab-conflicts", groups, hosts_from=case)
    model = facts.model
    ctr = model.hosts["k8s-ctr"].pod_cidr
    assert (ctr.value, ctr.conflicts) == (t["hosts"]["k8s-ctr"]["pod_cidr"], ())
    k8s_w1 = model.hosts["k8s-w1"]
    assert (k8s_w1.pod_cidr.value, k8s_w1.pod_cidr.source) == ("172.20.9.0/24", "kubernetes")
    assert f"bgp-origination: {w1['pod_cidr']}" in k8s_w1.pod_cidr.conflicts
    assert k8s_w1.pod_cidr.agrees == ()
    k8s_w0 = model.hosts["k8s-w0"]
    assert k8s_w0.kube_node.value == "k8s-w0.lab.example"
    assert "named like" in k8s_w0.kube_node.how
    assert (k8s_w0.node_ip.value, k8s_w0.node_ip.source) == ("198.51.100.7", "kubernetes")
    assert any(c.startswith(f"bgp-session: {w0['cluster_ip']}") for c in k8s_w0.node_ip.conflicts)
    assert k8s_w0.pod_cidr.value == w0["pod_cidr"] and not k8s_w0.pod_cidr.conflicts
    assert set(model.hosts) == set(t["hosts"])       # the renamed Node is still one host
    # the text shows them
    import contextlib
    import io

    from diag.report.facts import write_facts

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        write_facts(facts, None, "text")
    text = out.getvalue()
    assert "k8s-w1 pod CIDR: 172.20.9.0/24 <- kubernetes CiliumNode/k8s-w1" in text
    assert f"[conflicts: bgp-learned: {w1['pod_cidr']}; bgp-origination: " in text


def test_calico_lab_pod_cidrs_from_block_affinities(work):
    case = "calico-vxlan-alt"
    t = truth(case)
    facts, run = model_of(work, "lab-calico", lab_objects(case), hosts_from=case)
    assert run.reasons == []
    model = facts.model
    assert (model.cni.value, model.ipam.value, model.routing.value) == \
        ("calico", "calico", "tunnel")
    for name, expected in t["hosts"].items():
        if expected["role"] != "node":
            continue
        pod = model.hosts[name].pod_cidr
        assert (pod.value, pod.conflicts) == (expected["pod_cidr"], ())
        assert pod.how.startswith("kubernetes BlockAffinity/") and name in pod.how
    assert model.tunnel.value["protocol"] == "vxlan" and model.tunnel.conflicts == ()
    assert model.tunnel.how.endswith(f"vxlanPort: {model.tunnel.value['port']}")


# --- the kube tables, errors, old bundles --------------------------------------------------------

def test_every_kube_table_exists_in_old_bundles_and_captures():
    facts = load_facts(BUNDLES / "calico-native-default.tar.gz")
    for name, columns in TABLES.items():
        assert list(facts.tables[name].columns) == columns and facts.tables[name].empty
    assert facts.tables["kube_resources"].empty
    assert facts.bundle["kube"] is None
    assert all(h.collected and not h.kube_node.known for h in facts.model.hosts.values())
    assert facts.model.cni.value is None                 # no daemon of a CNI runs in the lab


def test_an_object_in_an_unknown_shape_is_a_parse_error_row(work):
    cn = objects("upstream/ciliumnode-cluster-pool-kubeasz.yaml")
    broken = copy.deepcopy(cn[0])
    broken["metadata"]["name"] = "node2"
    broken["spec"]["ipam"]["podCIDRs"] = "10.233.67.0/24"      # a string, not a list
    facts, _ = model_of(work, "broken", {"cn": cn + [broken]})
    errors = facts.parse_errors
    (row,) = errors.to_dict("records")
    assert (row["source"], row["path"]) == ("kube:cilium.io/ciliumnodes",
                                            "kube/cilium.io/ciliumnodes.json")
    assert row["reason"].startswith("CiliumNode/node2 at /spec/ipam/podCIDRs:")
    assert facts.tables["cilium_nodes"].name.tolist() == ["node1"]     # the other one is read


def test_facts_and_explain_commands_on_a_kube_only_bundle(work):
    bundle = work / "calico"             # made by the Calico test above, or here
    if not bundle.exists():
        model_of(work, "calico", {"node": objects("upstream/k8s-1.23-node-calico.yaml"),
                                  "blocks": objects("upstream/calico-3.26-ipamblocks-list.yaml")})

    def diag(*argv):
        return subprocess.run([sys.executable, "-m", "diag", *argv], check=False, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    table = diag("facts", str(bundle), "--table", "k8s_nodes", "--format", "json")
    assert table.returncode == 0, table.stderr
    rows = json.loads(table.stdout)["rows"]
    assert [(r["name"], r["internal_ips"]) for r in rows] == [("mac-k8s", ["192.168.191.153"])]
    explained = diag("explain", str(bundle))
    assert explained.returncode == 0 and "Traceback" not in explained.stderr
    assert "1 Kubernetes Node without host outputs" in explained.stdout
    assert "Not checked:" in explained.stdout
    assert "pod CIDRs not blackholed nor in unused tables" in \
        explained.stdout.split("Not checked:")[1]
    assert "No findings." in explained.stdout
    walk = diag("explain", str(bundle), "--trace", "192.168.185.5 8.8.8.8")
    assert walk.returncode == 0
    assert "=> unknown at mac-k8s: mac-k8s's routes were not collected" in walk.stdout


# --- hostile kube files (issue: hostile evidence) --------------------------------------------

KUBE_DAMAGE = {
    "deep": b"[" * 100_000 + b"]" * 100_000,            # nested past the JSON depth limit
    "junk": bytes(range(256)) * 64,                      # not JSON at all
    "items-an-int": b'{"apiVersion": "v1", "kind": "List", "items": 7}',
    "objects-of-wrong-types": json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "cilium.io/v2", "kind": "CiliumNode", "metadata": "node9",
         "spec": [1, 2]},
        {"apiVersion": "cilium.io/v2", "kind": "CiliumNode",
         "metadata": {"name": {"a": 1}}, "spec": {"ipam": {"podCIDRs": [None, 7, "x/99"]}}},
        "\x1b[31m[/]"]}).encode(),
}


@pytest.mark.parametrize("damage", sorted(KUBE_DAMAGE))
def test_a_damaged_kube_file_is_a_parse_error_row_and_the_rest_is_read(work, damage):
    """One damaged kind's file: a parse_errors row (host null, its source and path), the other
    kinds and the hosts read, explain runs; never an internal error."""
    import shutil

    base = work / "calico-hosts"
    if not base.exists():
        kube_bundle(base, {"node": objects("upstream/k8s-1.23-node-calico.yaml"),
                           "cn": objects("upstream/ciliumnode-cluster-pool-kubeasz.yaml")},
                    hosts_from="calico-native-default")
    root = work / f"damaged-{damage}"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(base, root)
    (root / "kube/cilium.io/ciliumnodes.json").write_bytes(KUBE_DAMAGE[damage])
    facts = load_facts(root)
    rows = facts.parse_errors[facts.parse_errors.source == "kube:cilium.io/ciliumnodes"]
    assert len(rows) >= 1 and rows.host.isna().all(), facts.parse_errors
    assert (rows.path == "kube/cilium.io/ciliumnodes.json").all()
    assert facts.tables["k8s_nodes"].name.tolist() == ["mac-k8s"]     # the other kind is read
    assert len(facts.tables["routes"]) > 0                             # and the hosts
    proc = subprocess.run([sys.executable, "-m", "diag", "explain", str(root)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
    assert "\x1b" not in proc.stdout
