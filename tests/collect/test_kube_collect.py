"""Kubernetes collection through the real kubectl against the lab's API endpoint: discovery,
not-installed CRDs, 403, 404, a timeout, kubectl missing, credential plugins, the bundle part."""
from __future__ import annotations

import json
import os
import shutil
import ssl
import stat
import sys
import time
import urllib.request

import pytest

from diag.bundle import BundleWriter, open_bundle
from diag.collect.kube import KubeOptions, collect_kube, parse_api_resources, resolve_kubectl
from diag.errors import EnvironmentProblem, ExitStatus
from diag.lab.kubeapi import ApiOptions, KubeApiServer, write_kubeconfig
from diag.parse.k8s import parse_list
from tests.k8s.cluster import METALLB_PASSWORD, write_cluster

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed "
                                "(bash .ci/test installs Debian's kubernetes-client)")


@pytest.fixture
def env(tmp_path):
    """kubectl's environment: its discovery cache under the test's own HOME."""
    home = tmp_path / "home"
    home.mkdir()
    return {"PATH": os.environ["PATH"], "HOME": str(home)}


def run(tmp_path, env, api_options, **options):
    with KubeApiServer(api_options) as api:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        writer = BundleWriter(tmp_path / "bundle", run={"kube": True})
        result = collect_kube(KubeOptions(kubeconfig=options.pop("kubeconfig", kubeconfig),
                                          env=env, **options), writer)
        writer.finish(result.reasons)
        return result, open_bundle(tmp_path / "bundle"), api


def by_resource(bundle):
    return {r["resource"]: r for r in bundle.kube_resources()}


def test_collects_every_served_kind_and_records_the_rest(tmp_path, env):
    objects = write_cluster(tmp_path / "objects")
    result, bundle, api = run(tmp_path, env, ApiOptions(objects_dir=objects))
    assert result.reasons == []
    assert bundle.manifest["schema_version"] == 2 and bundle.problems == ()
    records = by_resource(bundle)
    assert records["nodes"]["outcome"] == "OK" and records["nodes"]["objects"] == 1
    assert records["ciliumbgpclusterconfigs"]["version"] == "v2"
    assert records["ciliumbgpclusterconfigs"]["argv"][-4:] == \
        ["get", "ciliumbgpclusterconfigs.v2.cilium.io", "-o", "json"]
    assert records["services"]["scope"] == "all-namespaces"
    assert "--all-namespaces" in records["services"]["argv"]
    # Calico is not installed: recorded, not an error
    assert records["ipamblocks"]["outcome"] == "NOT_INSTALLED"
    assert records["ipamblocks"]["installed"] is False and "path" not in records["ipamblocks"]
    # kubectl's own files: version (client and server) and discovery
    commands = {c["id"]: c for c in bundle.kube["commands"]}
    assert set(commands) == {"kube-version", "kube-api-resources"}
    assert bundle.kube["server_version"] == "v1.32.0-diag-lab"
    served = parse_api_resources(bundle.read(commands["kube-api-resources"]["path"]).decode())
    assert ("cilium.io", "ciliumbgpclusterconfigs") in {(s.group, s.name) for s in served}
    # only the L2 announcement leases of kube-system; only cilium-config
    leases = json.loads(bundle.read(records["leases"]["path"]))
    assert [i["metadata"]["name"] for i in leases["items"]] == \
        ["cilium-l2announce-kube-system-webpod"]
    assert records["leases"]["filter"] == "name prefix cilium-l2announce-"
    config = json.loads(bundle.read(records["configmaps"]["path"]))
    assert [i["metadata"]["name"] for i in config["items"]] == ["cilium-config"]
    assert records["configmaps"]["argv"][-3:] == ["-n", "kube-system", "cilium-config"]
    # managed fields and last-applied: served by the endpoint, gone from the bundle (kubectl
    # >= 1.21 already hides managedFields in -o json; older ones do not, diag drops them too)
    with KubeApiServer(ApiOptions(objects_dir=objects)) as again:
        tls = ssl.create_default_context(cadata=again.ca_pem.decode())
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=tls))
        served_node = json.loads(opener.open(again.url + "/api/v1/nodes").read())
    assert served_node["items"][0]["metadata"]["managedFields"]
    assert records["nodes"]["dropped"] == {"managedFields": 0, "last_applied": 1}
    for record in records.values():
        if record.get("path"):
            text = bundle.read(record["path"]).decode()
            assert "managedFields" not in text and "last-applied-configuration" not in text
    # never a Secret
    assert not any("secrets" in path for _, path, _ in api.requests)
    # every stored List parses into tables without an error
    for record in records.values():
        if record.get("path") and record["outcome"] == "OK":
            tables = parse_list(bundle.read(record["path"]),
                                expect=(record["group"], record["kind"]))
            assert tables.errors == [], record["id"]


def test_inline_credentials_are_redacted_and_secret_names_kept(tmp_path, env):
    objects = write_cluster(tmp_path / "objects")
    _, bundle, _ = run(tmp_path, env, ApiOptions(objects_dir=objects))
    records = by_resource(bundle)
    peers = bundle.read(records["bgppeers"]["path"])
    assert METALLB_PASSWORD.encode() not in peers
    everything = b"".join(p.read_bytes() for p in bundle.root.rglob("*") if p.is_file())
    assert METALLB_PASSWORD.encode() not in everything
    redactions = json.loads(bundle.read("redactions.json"))["redactions"]
    (entry,) = redactions
    assert (entry["rule"], entry["command"], entry["path"]) == \
        ("JSON_SECRET", "kube:metallb.io/bgppeers", records["bgppeers"]["path"])
    assert entry["detail"].endswith(".spec.password")
    tables = parse_list(peers)
    (peer,) = [r for r in tables.frames["metallb_bgp_peers"].to_dict("records")
               if r["name"] == "peer"]
    assert peer["password_set"] is True          # that one was set, its value is not kept
    assert json.loads(bundle.read(records["ciliumbgppeerconfigs"]["path"]))["items"][0] \
        ["spec"]["gracefulRestart"]["enabled"] is True


def test_rbac_refusal_404_and_timeout_are_recorded_and_the_rest_completes(tmp_path, env):
    objects = write_cluster(tmp_path / "objects", cilium_config=False)
    options = ApiOptions(objects_dir=objects, denied=frozenset({"ciliumnodes.cilium.io"}),
                         vanished=frozenset({"ciliumbgpnodeconfigs.cilium.io"}),
                         slow={"ciliumloadbalancerippools.cilium.io": 8.0})
    started = time.monotonic()
    result, bundle, _ = run(tmp_path, env, options, timeout=2.0)
    elapsed = time.monotonic() - started
    records = by_resource(bundle)
    denied = records["ciliumnodes"]
    assert (denied["outcome"], denied["status_reason"], denied["exit_code"]) == \
        ("FAILED", "Forbidden", 1)
    assert 'cannot list resource "ciliumnodes" in API group "cilium.io"' in \
        denied["status_message"]
    gone = records["ciliumbgpnodeconfigs"]
    assert (gone["outcome"], gone["status_reason"]) == ("FAILED", "NotFound")
    missing = records["configmaps"]
    assert (missing["outcome"], missing["status_reason"], missing["status_message"]) == \
        ("FAILED", "NotFound", 'configmaps "cilium-config" not found')
    slow = records["ciliumloadbalancerippools"]
    assert slow["outcome"] == "TIMEOUT" and slow["duration_s"] < 2.0 + 5.0 + 1.0
    assert elapsed < 20
    assert set(result.reasons) == {"KUBE_FAILED", "KUBE_TIMEOUT"}
    assert bundle.partial and bundle.manifest["partial_reasons"] == ["KUBE_FAILED",
                                                                      "KUBE_TIMEOUT"]
    assert records["ciliumbgpclusterconfigs"]["outcome"] == "OK"
    assert records["nodes"]["outcome"] == "OK"


def test_unreachable_cluster(tmp_path, env):
    objects = write_cluster(tmp_path / "objects")
    with KubeApiServer(ApiOptions(objects_dir=objects)) as api:
        url, ca = api.url, api.ca_pem   # a port that nothing listens on once it stopped
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url, ca_pem=ca)
    writer = BundleWriter(tmp_path / "bundle", run={})
    result = collect_kube(KubeOptions(kubeconfig=kubeconfig, env=env, timeout=5), writer)
    assert result.reasons == ["KUBE_UNREACHABLE"]
    assert {r["outcome"] for r in writer.manifest["kube"]["resources"]} == {"UNKNOWN"}
    assert writer.manifest["kube"]["commands"][1]["outcome"] == "FAILED"


def test_kubeconfig_from_the_environment_context_and_credential_plugin(tmp_path, env):
    objects = write_cluster(tmp_path / "objects", metallb=False)
    plugin = tmp_path / "credential-plugin"
    plugin.write_text(f"#!{sys.executable}\nimport json\nprint(json.dumps({{"
                      '"apiVersion": "client.authentication.k8s.io/v1", '
                      '"kind": "ExecCredential", "status": {"token": "lab-token"}}))\n')
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    with KubeApiServer(ApiOptions(objects_dir=objects, token="lab-token")) as api:
        good = api.kubeconfig(tmp_path / "good", exec_command=[str(plugin)], context="lab")
        config = json.loads(good.read_text())
        # a second context, current but wrong: --context must pick "lab"
        config["contexts"].append({"name": "stale", "context": {"cluster": "lab",
                                                                "user": "nobody"}})
        config["users"].append({"name": "nobody", "user": {"token": "wrong"}})
        config["current-context"] = "stale"
        good.write_text(json.dumps(config))
        writer = BundleWriter(tmp_path / "bundle", run={})
        result = collect_kube(KubeOptions(context="lab", env=dict(env, KUBECONFIG=str(good))),
                              writer)
        assert result.reasons == []
        assert writer.manifest["kube"]["kubeconfig_from_env"] == str(good)
        assert writer.manifest["kube"]["context"] == "lab"
        writer2 = BundleWriter(tmp_path / "bundle2", run={})
        refused = collect_kube(KubeOptions(env=dict(env, KUBECONFIG=str(good))), writer2)
        assert refused.reasons == ["KUBE_UNREACHABLE"]      # 401 with the stale context
        assert any(code == 401 for _, _, code in api.requests)


def test_kubectl_missing_is_an_environment_problem(tmp_path, env):
    with pytest.raises(EnvironmentProblem) as missing:
        resolve_kubectl(str(tmp_path / "no-kubectl"))
    assert missing.value.exit_status == ExitStatus.ENVIRONMENT
    assert "--kubectl" in missing.value.hint
    with pytest.raises(EnvironmentProblem, match="not found on PATH"):
        resolve_kubectl("kubectl-that-does-not-exist")
    writer = BundleWriter(tmp_path / "bundle", run={})
    with pytest.raises(EnvironmentProblem):
        collect_kube(KubeOptions(kubectl=str(tmp_path / "no-kubectl"), env=env), writer)


def test_cilium_1_17_serves_bgp_kinds_at_v2alpha1(tmp_path, env):
    objects = write_cluster(tmp_path / "objects", metallb=False)
    versions = {k: ("v2alpha1",) for k in (
        "ciliumbgpclusterconfigs.cilium.io", "ciliumbgppeerconfigs.cilium.io",
        "ciliumbgpadvertisements.cilium.io", "ciliumbgpnodeconfigs.cilium.io",
        "ciliumbgpnodeconfigoverrides.cilium.io", "ciliumloadbalancerippools.cilium.io")}
    result, bundle, _ = run(tmp_path, env, ApiOptions(objects_dir=objects, versions=versions))
    assert result.reasons == []
    record = by_resource(bundle)["ciliumbgpclusterconfigs"]
    assert record["version"] == "v2alpha1"
    stored = json.loads(bundle.read(record["path"]))
    assert stored["items"][0]["apiVersion"] == "cilium.io/v2alpha1"
    tables = parse_list(bundle.read(record["path"]))
    assert tables.errors == [] and len(tables.frames["cilium_bgp_peers"]) == 1


def test_clean_list_drops_managed_fields_of_older_kubectl():
    from diag.collect.kube import Fetch, clean_list
    from diag.k8s.kinds import find

    document = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": "n1", "managedFields": [{"manager": "kubelet"}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}}}]}
    data, extra = clean_list(json.dumps(document).encode(),
                             Fetch(find("", "Node"), "v1", (), "cluster"))
    assert extra == {"objects": 1, "dropped": {"managedFields": 1, "last_applied": 1}}
    assert json.loads(data)["items"][0]["metadata"] == {"name": "n1"}


def test_api_resources_table_of_older_kubectl():
    text = ("NAME          SHORTNAMES   APIVERSION     NAMESPACED   KIND        VERBS"
            "                                        CATEGORIES\n"
            "nodes         no           v1             false        Node        [create delete "
            "deletecollection get list patch update watch]   \n"
            "ciliumnodes   cn,ciliumn   cilium.io/v2   false        CiliumNode  [delete "
            "deletecollection get list patch create update watch]   \n")
    served = parse_api_resources(text)
    assert [(s.group, s.version, s.name, s.kind) for s in served] == [
        ("", "v1", "nodes", "Node"), ("cilium.io", "v2", "ciliumnodes", "CiliumNode")]
    assert "list" in served[1].verbs
    with pytest.raises(ValueError):
        parse_api_resources("error: You must be logged in to the server\n")
