"""The pod transport's pure parts: a missing program told apart from a failing one (on the real
messages runtimes print, tests/fixtures/kubectl-exec/SOURCE.md), a failed connection's kind,
agent pods from a Pod List, the options --via and --debug-image, the plan. The transport itself
runs against the lab's kubectl in tests/lab/test_lab_pods.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from diag.collect.pods import AGENTS, agent_pods, connect_failure, missing_tool
from diag.collect.request import CollectRequest, options_from
from diag.errors import UsageError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "kubectl-exec"


@pytest.mark.parametrize("name,rc", [("containerd-executable-not-found.err", 1),
                                     ("docker-stat-no-such-file.err", 126),
                                     ("env-no-such-file.err", 127)])
def test_a_program_the_image_lacks_is_missing(name, rc):
    assert missing_tool(rc, (FIXTURES / name).read_bytes())


def test_a_failing_program_is_not_missing():
    assert not missing_tool(1, b"Error: unknown shorthand flag: 'f' in -f\n"
                               b"command terminated with exit code 1\n")
    assert not missing_tool(127, b"ip: can't find device\n")     # 127 alone is not enough
    assert not missing_tool(0, (FIXTURES / "env-no-such-file.err").read_bytes())


@pytest.mark.parametrize("stderr,kind", [
    (('Error from server (Forbidden): pods "cilium-x" is forbidden: User "u" cannot create '
      'resource "pods/exec" in API group "" in the namespace "kube-system"'), "FORBIDDEN"),
    ('Error from server (NotFound): pods "cilium-x" not found', "NOT_FOUND"),
    ('error: unable to upgrade connection: container not found ("cilium-agent")', "NOT_FOUND"),
    (("The connection to the server 127.0.0.1:6443 was refused - did you specify the right "
      "host or port?\nUnable to connect to the server"), "UNREACHABLE"),
    ("error: something else", "ERROR"),
])
def test_connect_failures_by_kind(stderr, kind):
    assert connect_failure(stderr) == kind


def test_agent_pods_keep_the_running_scheduled_ones():
    def pod(name, node, phase="Running", deleting=False, containers=("cilium-agent",)):
        meta = {"name": name, "namespace": "kube-system"}
        if deleting:
            meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        return {"metadata": meta, "spec": {"nodeName": node, "containers": [
            {"name": c, "image": f"img-{c}"} for c in containers]}, "status": {"phase": phase}}
    doc = {"items": [pod("cilium-a", "n1"), pod("cilium-b", None), pod("cilium-c", "n2",
                                                                         deleting=True),
                     pod("cilium-d", "n3", containers=("mounter", "cilium-agent"))]}
    found = agent_pods(doc, AGENTS[0])
    assert [(p.name, p.node, p.container, p.image) for p in found] == [
        ("cilium-a", "n1", "cilium-agent", "img-cilium-agent"),
        ("cilium-d", "n3", "cilium-agent", "img-cilium-agent")]


def test_via_needs_kube_and_a_plain_image():
    with pytest.raises(UsageError, match="--via kubectl"):
        options_from(CollectRequest(via="kubectl"))
    with pytest.raises(UsageError, match="expected kubectl"):
        options_from(CollectRequest(kube=True, via="ssh"))
    with pytest.raises(UsageError, match="--debug-image"):
        options_from(CollectRequest(kube=True, via="kubectl", kubectl="/bin/true",
                                    debug_image="img; reboot"))
    with pytest.raises(UsageError, match="--debug-image"):
        options_from(CollectRequest(targets=("local",), debug_image="nicolaka/netshoot"))


def test_via_options_share_the_kube_kubectl_and_context(tmp_path):
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text("{}")
    options = options_from(CollectRequest(kube=True, via="kubectl", kubectl="/bin/true",
                                          kubeconfig=kubeconfig, context="prod",
                                          debug_image="nicolaka/netshoot:v0.13",
                                          capture="5s", out=tmp_path / "b"))
    assert options.via.base == ("--kubeconfig", str(kubeconfig), "--context", "prod")
    assert options.via.debug_image == "nicolaka/netshoot:v0.13" and options.capture
    from diag.collect.runner import plan

    (row,) = plan(options)
    assert row["transport"] == "kubectl"
    exec_prefix = ["/bin/true", "--kubeconfig", str(kubeconfig), "--context", "prod", "exec",
                   "-n", "NS", "POD", "-c", "CONTAINER", "--"]
    ids = {c["id"]: c["argv"] for c in row["commands"]}
    assert ids["ip-route-v4"][:len(exec_prefix)] == exec_prefix
    assert ids["bird-protocols-all"][len(exec_prefix):] == [
        "birdcl", "-s", "/var/run/calico/bird.ctl", "show", "protocols", "all"]
