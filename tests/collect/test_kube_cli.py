"""`diag collect --kube` on the command line, with the real kubectl against the lab's API
endpoint started by the test: a kube-only bundle (CRD not installed, 403, 404, a timeout), its
manifest entries, kubectl missing, --context and KUBECONFIG, --dry-run; and in-process, the
kube part beside a host and cut by the deadline."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diag.bundle import open_bundle
from diag.collect.catalogue import CommandSpec
from diag.collect.kube import KubeOptions
from diag.collect.runner import CollectOptions, collect
from diag.collect.targets import parse_target
from diag.lab.kubeapi import ApiOptions, KubeApiServer
from tests.k8s.bundles import KUBECTL, kubectl_env
from tests.k8s.cluster import write_cluster

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed "
                                "(bash .ci/test installs Debian's kubernetes-client)")


def diag(tmp_path: Path, *argv: str, env: dict[str, str] | None = None):
    environment = dict(kubectl_env(tmp_path), PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "diag", *argv], check=False, cwd=ROOT,
                          env=environment,
                          capture_output=True, text=True, timeout=120)


def test_kube_only_bundle_records_every_refusal_and_completes_the_rest(tmp_path):
    objects = write_cluster(tmp_path / "objects", cilium_config=False)
    options = ApiOptions(objects_dir=objects, denied=frozenset({"ciliumnodes.cilium.io"}),
                         vanished=frozenset({"ciliumbgpnodeconfigs.cilium.io"}),
                         slow={"ciliumloadbalancerippools.cilium.io": 8.0})
    out = tmp_path / "bundle"
    with KubeApiServer(options) as api:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        started = time.monotonic()
        done = diag(tmp_path, "collect", "--kube", "--kubeconfig", str(kubeconfig),
                    "--command-timeout", "2s", "-o", str(out), "--format", "json")
        elapsed = time.monotonic() - started
    assert done.returncode == 3, done.stderr               # partial: refusals are exit 3
    assert elapsed < 30
    summary = json.loads(done.stdout)
    assert summary["hosts"] == [] and summary["status"] == "partial"
    assert summary["partial_reasons"] == ["KUBE_FAILED", "KUBE_TIMEOUT"]
    failed = {f["id"]: f for f in summary["kube"]["failed"]}
    assert failed["kube:cilium.io/ciliumnodes"]["status_reason"] == "Forbidden"
    assert failed["kube:cilium.io/ciliumbgpnodeconfigs"]["status_reason"] == "NotFound"
    assert failed["kube:core/configmaps"]["status_message"] == \
        'configmaps "cilium-config" not found'
    assert failed["kube:cilium.io/ciliumloadbalancerippools"]["outcome"] == "TIMEOUT"
    bundle = open_bundle(out)
    assert bundle.problems == () and bundle.manifest["schema_version"] == 2
    assert bundle.manifest["run"]["kube"] == {"kubectl": "kubectl",
                                              "kubeconfig": str(kubeconfig),
                                              "context": None, "timeout_s": 2.0}
    records = {r["resource"]: r for r in bundle.kube_resources()}
    assert records["ipamblocks"]["outcome"] == "NOT_INSTALLED"       # Calico: not an error
    assert records["ciliumnodes"]["outcome"] == "FAILED" and "path" not in records["ciliumnodes"]
    # every output is an entry like the hosts' ones: sha256, bytes, rc, duration
    written = [r for r in bundle.kube_resources() if r.get("path")] + \
        bundle.kube["commands"]
    assert len(written) >= 10
    for record in written:
        data = bundle.read(record["path"])
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        assert record["bytes"] == len(data)
        assert record["exit_code"] == 0 and record["outcome"] == "OK"
        assert 0 < record["duration_s"] < 10 and record["timeout_s"] == 2.0
        assert record["argv"][:3] == ["kubectl", "--kubeconfig", str(kubeconfig)] or \
            record["argv"][0].endswith("/kubectl")


def test_kubectl_missing_is_exit_5_with_a_hint_and_nothing_written(tmp_path):
    out = tmp_path / "bundle"
    missing = diag(tmp_path, "collect", "--kube", "--kubectl", str(tmp_path / "no-kubectl"),
                   "-o", str(out))
    assert missing.returncode == 5
    assert "kubectl not found" in missing.stderr and "--kubectl PATH" in missing.stderr
    assert "Traceback" not in missing.stderr and not out.exists()
    no_path = diag(tmp_path, "collect", "--kube", "-o", str(out), env={"PATH": str(tmp_path)})
    assert no_path.returncode == 5 and "not found on PATH" in no_path.stderr
    bad = diag(tmp_path, "collect", "--kube", "--kubeconfig", str(tmp_path / "nope"),
               "-o", str(out))
    assert bad.returncode == 2 and "--kubeconfig" in bad.stderr
    nothing = diag(tmp_path, "collect", "-o", str(out))
    assert nothing.returncode == 2 and "--kube" in nothing.stderr


def test_context_and_kubeconfig_from_the_environment(tmp_path):
    objects = write_cluster(tmp_path / "objects", metallb=False)
    with KubeApiServer(ApiOptions(objects_dir=objects, token="lab-token")) as api:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig", token="lab-token", context="lab")
        config = json.loads(kubeconfig.read_text())
        # a second context, current, whose user the API refuses: only --context lab works
        config["contexts"].append({"name": "stale", "context": {"cluster": "lab",
                                                                "user": "nobody"}})
        config["users"].append({"name": "nobody", "user": {"token": "wrong"}})
        config["current-context"] = "stale"
        kubeconfig.write_text(json.dumps(config))
        env = {"KUBECONFIG": str(kubeconfig)}
        good = diag(tmp_path, "collect", "--kube", "--context", "lab", "-o",
                    str(tmp_path / "good"), "--format", "json", env=env)
        stale = diag(tmp_path, "collect", "--kube", "-o", str(tmp_path / "stale"),
                     "--format", "json", env=env)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["kube"]["context"] == "lab"
    manifest = open_bundle(tmp_path / "good").manifest["kube"]
    assert (manifest["kubeconfig"], manifest["kubeconfig_from_env"], manifest["context"]) == \
        (None, str(kubeconfig), "lab")
    assert stale.returncode == 3
    assert json.loads(stale.stdout)["partial_reasons"] == ["KUBE_UNREACHABLE"]


def test_dry_run_lists_the_kubectl_commands_and_contacts_nothing(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")
    done = diag(tmp_path, "collect", "--kube", "--kubeconfig", str(kubeconfig), "--context",
                "prod", "--dry-run", "--format", "json", "-o", str(tmp_path / "b"))
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["hosts"] == [] and not (tmp_path / "b").exists()
    rows = {row["id"]: row for row in plan["kube"]}
    assert rows["kube-api-resources"]["argv"] == [
        "kubectl", "--kubeconfig", str(kubeconfig), "--context", "prod",
        "--request-timeout=30s", "api-resources", "-o", "wide"]
    assert rows["kube:cilium.io/ciliumnodes"]["argv"][-3:] == ["ciliumnodes.cilium.io", "-o",
                                                               "json"]
    assert rows["kube:core/services"]["argv"][-1] == "--all-namespaces"
    assert not any("secret" in " ".join(row["argv"]) for row in plan["kube"])
    text = diag(tmp_path, "collect", "--kube", "--dry-run", "-o", str(tmp_path / "b"))
    assert "kube (kubectl" in text.stdout and "api-resources -o wide" in text.stdout


def test_kube_beside_a_host_shares_the_bundle(tmp_path):
    objects = write_cluster(tmp_path / "objects")
    with KubeApiServer(ApiOptions(objects_dir=objects)) as api:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        seen: list[set[str]] = []
        result = collect(CollectOptions(
            targets=(parse_target("local"),), out=tmp_path / "bundle", base=False,
            extra_commands=(CommandSpec("echo", ("echo", "hello")),),
            kube=KubeOptions(kubeconfig=kubeconfig, env=kubectl_env(tmp_path))),
            listener=lambda states: seen.append(set(states)))
    assert result.status == "complete", result.partial_reasons
    bundle = open_bundle(tmp_path / "bundle")
    assert bundle.problems == ()
    assert [c["id"] for c in bundle.manifest["hosts"]["local"]["commands"]] == ["echo"]
    assert bundle.read("hosts/local/echo.out") == b"hello\n"
    assert sum(1 for r in bundle.kube_resources() if r["outcome"] == "OK") >= 10
    assert any("kube (kubectl)" in states and "local" in states for states in seen)


def test_the_deadline_stops_kubectl(tmp_path):
    objects = write_cluster(tmp_path / "objects")
    options = ApiOptions(objects_dir=objects, slow={"nodes": 60.0})
    with KubeApiServer(options) as api:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        started = time.monotonic()
        result = collect(CollectOptions(
            targets=(), out=tmp_path / "bundle", deadline=3.0,
            kube=KubeOptions(kubeconfig=kubeconfig, env=kubectl_env(tmp_path), timeout=60)))
        elapsed = time.monotonic() - started
    assert elapsed < 15
    assert result.status == "partial"
    assert {"DEADLINE", "KUBE_INTERRUPTED"} <= set(result.partial_reasons)
    bundle = open_bundle(tmp_path / "bundle")
    nodes = next(r for r in bundle.kube_resources() if r["id"] == "kube:core/nodes")
    assert nodes["outcome"] == "INTERRUPTED" and "path" not in nodes
    assert bundle.kube["deadline"] is True
    assert os.path.isfile(tmp_path / "bundle" / "manifest.json")
