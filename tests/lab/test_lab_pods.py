"""The CNI's daemons where they live, end to end on the lab (issue 17): every node reached through
its agent pod with the lab's kubectl (no SSH at all) — routes, sockets and daemon state in a
complete bundle, then ROUTE_RIB_NOT_IN_FIB ranked first from Cilium's own route listing after the
fault; over SSH, calico-node's containerised BIRD read through nsenter; a capture from a
`kubectl debug node` pod, the pod gone afterwards, also after a real SIGINT; the error cases a
cluster has (pod not found, binary missing, exec forbidden, timeouts).

Labs and bundles: the session store's (tests/labstore.py; ``VIA_KUBECTL`` bundles use the lab's
printed `diag collect --kube --via kubectl` line). Oracles: the lab's own records (nodes, pod
CIDRs), the real kubectl reading the lab's API (pods listed or gone), the kernel (PIDs alive).
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from labstore import REPO, VIA_KUBECTL
from labtools import diag_cli

pytestmark = [pytest.mark.lab, pytest.mark.skipif(shutil.which("kubectl") is None,
                                                  reason="kubectl not installed")]


def manifest(bundle) -> dict:
    return json.loads((Path(bundle.path) / "manifest.json").read_text())


def via_line(up) -> list[str]:
    (line,) = [line.strip() for line in up.up_stdout.splitlines()
               if line.strip().startswith("diag collect --kube")]
    return shlex.split(line)


def table(bundle, name: str) -> list[dict]:
    proc = diag_cli("facts", str(bundle.path), "--table", name, "--format", "json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    return rows["rows"] if isinstance(rows, dict) else rows


def assert_complete_but_for_the_image(m: dict) -> None:
    """Every command ran, except those whose tool the agent image lacks (like Cilium's and
    Calico's images, the lab's has no ethtool): recorded MISSING, never a failed node."""
    missing = {c["id"] for host in m["hosts"].values() for c in host["commands"]
               if c.get("outcome") == "MISSING"}
    assert missing and all(i.startswith("ethtool-k-") for i in missing), missing
    assert m["status"] == "partial" and set(m["partial_reasons"]) == {"COMMAND_MISSING"}, \
        m["partial_reasons"]
    assert all(c.get("outcome") in ("OK", "MISSING") for host in m["hosts"].values()
               for c in host["commands"] if not c["id"].startswith("capture"))


def real_kubectl(lab, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([shutil.which("kubectl"), "--kubeconfig",
                           str(lab.cluster.kubeconfig_path), *args], check=False,
                          capture_output=True,
                          text=True, timeout=30, env={"PATH": os.environ["PATH"],
                                                      "HOME": "/nonexistent"})


def debug_pods(lab) -> list[str]:
    proc = real_kubectl(lab, "get", "pods", "--all-namespaces", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    return [p["metadata"]["name"] for p in json.loads(proc.stdout)["items"]
            if p["metadata"]["name"].startswith("node-debugger-")]


def pod_processes(lab) -> list[str]:
    from diag.lab.system import is_alive

    return [p.key for p in lab.reload().processes
            if p.key.startswith("kube/pod/") and is_alive(p.pid, p.starttime)]


@pytest.mark.parametrize("cni", ["cilium", "calico"])
def test_no_ssh_every_node_through_its_agent_pod(labs, cni):
    up = labs.running(cni, "native")
    lab = up.lab
    status = json.loads(diag_cli("lab", "status", "--json", "--name", lab.name).stdout)
    assert status["kubectl"] == str(lab.cluster.kubectl_path)      # the stand-in
    argv = via_line(up)
    assert argv[:5] == ["diag", "collect", "--kube", "--via", "kubectl"]
    assert argv[argv.index("--kubectl") + 1] == status["kubectl"]
    bundle = labs.bundle(cni, "native", None, extra=VIA_KUBECTL)
    m = manifest(bundle)
    assert_complete_but_for_the_image(m)
    assert m["run"]["targets"] == [] and m["run"]["via"] == "kubectl"
    nodes = sorted(h for h, info in lab.hosts.items() if info.role == "node")
    assert sorted(m["hosts"]) == nodes == m["via"]["nodes"]
    daemon = "CILIUM" if cni == "cilium" else "BIRD"
    for name, host in m["hosts"].items():
        assert host["transport"] == "kubectl" and host["pod"]["namespace"] == "kube-system"
        assert {c["reached"] for c in host["commands"]} == {"pod"}
        ids = {c["id"]: c for c in host["commands"]}
        assert {"ip-route-v4", "ss-tanpi", "ip-neigh"} <= set(ids)
        read = {d for d, o in host["daemons"].items() if o["reached"] == "pod"}
        assert read == {daemon}
        # the lab's gobgpd (Cilium embeds GoBGP; the lab runs it beside the agent) is seen
        # on the node's sockets, noted, and not run: no gobgp in the agent's image
        assert all(o["reached"] == "none" for d, o in host["daemons"].items() if d != daemon)
        wanted = ["cilium-bgp-peers", "cilium-bgp-routes"] if cni == "cilium" else \
            ["bird-protocols-all", "bird-route-all"]
        assert all(ids[i]["outcome"] == "OK" and ids[i]["bytes"] > 0 for i in wanted), name
        if cni == "calico":
            assert ids["bird-protocols-all"]["argv"][:3] == ["birdcl", "-s",
                                                              "/var/run/calico/bird.ctl"]
        else:   # the lab's agent is Cilium 1.18: no `-f detailed`, its shell form is taken
            assert host["daemons"]["CILIUM"]["form"] == "shell"
            assert ids["cilium-bgp-peers"]["tried"][0]["form"] == "shell-detailed"
    proc = diag_cli("facts", str(bundle.path), "--format", "json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts["parse_errors"] == []
    for node in nodes:
        assert facts["model"]["hosts"][node]["pod_cidr"]["value"] == lab.hosts[node].pod_cidr
    peers = [r for r in table(bundle, "bgp_peers") if r["source"] in
             ("cilium-bgp-peers", "bird-protocols-all")]
    assert sorted(r["host"] for r in peers) == nodes
    assert {r["state"] for r in peers} == {"ESTABLISHED"}
    paths = {(r["host"], r["prefix"]) for r in table(bundle, "bgp_paths")}
    for node in nodes:      # every node's daemon holds every pod CIDR
        assert {(node, lab.hosts[n].pod_cidr) for n in nodes} <= paths, node


def test_rib_not_in_fib_ranked_first_from_ciliums_own_routes(labs):
    bundle = labs.bundle("cilium", "native", "rib-not-in-fib", extra=VIA_KUBECTL)
    assert_complete_but_for_the_image(manifest(bundle))
    proc = diag_cli("explain", str(bundle.path), "--format", "json", timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    first = json.loads(proc.stdout)["findings"][0]
    assert (first["code"], first["severity"]) == ("ROUTE_RIB_NOT_IN_FIB", "error")
    assert first["hosts"] == ["k8s-ctr"]
    assert any(e["file"] == "hosts/k8s-ctr/cilium-bgp-routes.out" for e in first["evidence"])


def test_containerised_calico_bird_over_ssh_through_nsenter(labs):
    bundle = labs.bundle("calico", "native", None)
    m = manifest(bundle)
    lab = labs.lab("calico", "native")
    router = lab.plan.router.name
    assert m["hosts"][router]["daemons"]["FRR"]["reached"] == "host"   # own mount ns, host root
    for name, info in lab.hosts.items():
        if info.role != "node":
            continue
        host = m["hosts"][name]
        bird = host["daemons"]["BIRD"]
        assert (bird["reached"], bird["socket"], bird["client"]) == \
            ("nsenter", "/var/run/calico/bird.ctl", "birdcl")
        ids = {c["id"]: c for c in host["commands"]}
        roots = (Path(bundle.path) / ids["daemon-root"]["path"]).read_text().split()
        assert roots[1] != roots[3], roots      # /proc/self/root vs BIRD's root
        for spec in ("bird-protocols-all", "bird-route-all", "bird-status"):
            record = ids[spec]
            assert record["outcome"] == "OK" and record["reached"] == "nsenter"
            assert record["argv"][:6] == ["nsenter", "--target", bird["pid"], "--mount", "--",
                                          "birdcl"]
        text = (Path(bundle.path) / ids["bird-protocols-all"]["path"]).read_text()
        assert "Established" in text


def test_debug_pod_capture_then_gone_also_after_sigint(labs, tmp_path):
    up = labs.running("cilium", "native")
    lab = up.lab
    argv = [sys.executable, "-m", "diag", *via_line(up)[1:], "--debug-image",
            "nicolaka/netshoot"]
    done = subprocess.run([*argv, "--capture", "5s", "--filter", "tcp port 179", "-o",
                           str(tmp_path / "short")], check=False, capture_output=True,
                          text=True, timeout=180, cwd=REPO)
    assert done.returncode in (0, 3), done.stderr[-2000:]       # 3: partial (no ethtool)
    m = json.loads((tmp_path / "short" / "manifest.json").read_text())
    assert_complete_but_for_the_image(m)
    for host in m["hosts"].values():
        (capture,) = [c for c in host["commands"] if c["id"] == "capture"]
        assert capture["outcome"] == "OK" and capture["reached"] == "debug-pod", capture
        # BGP keepalives every 3 s on every node: a 5 s capture on tcp/179 sees some
        assert capture["packets"] > 0 and capture["debug_pod"]["deleted"] is True, capture
    assert debug_pods(lab) == [] and pod_processes(lab) == []
    # Ctrl-C in the middle of a long capture: a real SIGINT to the collector
    proc = subprocess.Popen([*argv, "--capture", "60s", "-o", str(tmp_path / "cut")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 180      # the catalogue first, on a busy machine too
        # the lab's `kubectl debug` starts the process, then writes the Pod once its container
        # runs: wait for both (under load the second comes seconds later)
        while len(pod_processes(lab)) < 3 or len(debug_pods(lab)) < 3:
            assert time.monotonic() < deadline, "no debug pods started"
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.2)
        assert len(debug_pods(lab)) == 3
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130, proc.stderr.read().decode()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert debug_pods(lab) == [] and pod_processes(lab) == []
    m = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert "INTERRUPTED" in m["partial_reasons"]
    for host in m["hosts"].values():
        (capture,) = [c for c in host["commands"] if c["id"] == "capture"]
        assert capture["debug_pod"]["deleted"] is True


def test_a_clusters_errors_from_the_lab_kubectl(labs, tmp_path):
    import asyncio

    from diag.collect.pods import AgentPod, PodTransport, ViaOptions, missing_tool
    from diag.collect.runner import classify

    up = labs.running("cilium", "native")
    lab = up.lab
    kubectl = str(lab.cluster.kubectl_path)
    base = ["--kubeconfig", str(lab.cluster.kubeconfig_path)]
    pods = json.loads(real_kubectl(lab, "get", "pods", "-n", "kube-system", "-o", "json").stdout)
    pod = next(p for p in pods["items"] if p["spec"]["nodeName"] == "k8s-w1")
    name = pod["metadata"]["name"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([kubectl, *base, *args], check=False, capture_output=True,
                              text=True,
                              timeout=60)

    gone = run("exec", "-n", "kube-system", "cilium-nosuch", "--", "id")
    assert gone.returncode == 1 and 'pods "cilium-nosuch" not found' in gone.stderr
    lacks = run("exec", "-n", "kube-system", name, "--", "tcpdump", "--version")
    assert lacks.returncode != 0 and missing_tool(lacks.returncode, lacks.stderr)
    wrong = run("exec", "-n", "kube-system", name, "-c", "nope", "--", "id")
    assert "container not found" in wrong.stderr
    via = ViaOptions(kubectl=kubectl, base=tuple(base), timeout=1)
    agent = AgentPod("k8s-w1", "kube-system", name, "cilium-agent", "cilium", "CILIUM")
    denied, delay = lab.cluster.denied_path, lab.cluster.dir / "exec-delay"
    before = denied.read_text() if denied.exists() else None

    async def connect_and_run(timeout: float):
        transport = PodTransport(via, agent, "k8s-w1")
        try:
            await transport.connect()
        except Exception as err:      # noqa: BLE001 - the kind is what is checked
            return getattr(err, "kind", repr(err)), None
        return "OK", await transport.run(["id", "-u"], timeout=timeout, cap=64)

    try:
        denied.write_text((before or "") + "pods/exec\n")
        assert asyncio.run(connect_and_run(1))[0] == "FORBIDDEN"
    finally:
        if before is None:
            denied.unlink(missing_ok=True)
        else:
            denied.write_text(before)
    assert asyncio.run(connect_and_run(1))[0] == "OK"
    try:
        delay.write_text("8")         # the exec hangs longer than the bound and its grace
        kind, _ = asyncio.run(connect_and_run(1))
        assert kind == "CONNECT_TIMEOUT"
    finally:
        delay.unlink(missing_ok=True)
    kind, result = asyncio.run(connect_and_run(1))
    assert kind == "OK" and classify(result) == "OK" and result.stdout.strip() == b"0"
