"""The study notes' object sets, each with the Nodes the README describes and no state at all
(tests/fixtures/k8s/seeds/SOURCE.md): diag gives no warning, reports the alternatives as such
(one info finding per kind and name defined several times), and says "not checkable" where a
kind a check needs is absent from the set (and "not checked" where only state would show the
effect) — the objects alone never make a finding about an effect."""
from __future__ import annotations

import pytest

from tests.analyze.intentkit import bundle, explain_of, listing, seeds

LAB_A = {"k8s-ctr": "192.168.10.100", "k8s-w1": "192.168.10.101", "k8s-w0": "192.168.20.100"}
LAB_B = {"cp-1": None, "worker-1": None, "worker-2": None}


def nodes(described: dict[str, str | None]) -> list[dict]:
    out = []
    for name, ip in described.items():
        addresses = [{"type": "Hostname", "address": name}]
        if ip:
            addresses.insert(0, {"type": "InternalIP", "address": ip})
        out.append({"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                          "kubernetes.io/os": "linux"}},
                    "spec": {}, "status": {"addresses": addresses}})
    return out


SETS = {
    "lab-a": (LAB_A, ["seed000-cilium-bgp.yaml", "seed000-webpod-deployment-service.yaml",
                      "seed000-curl-pod.yaml", "seed003-lbippool-cilium-lb-ippool.yaml",
                      "seed003-lbippool-pool-cidr-variants.yaml",
                      "seed003-l2announcementpolicy-policy1.yaml"],
              {("CiliumLoadBalancerIPPool", "pool-cidr"): 4},
              ["no Lease (coordination.k8s.io", "no CiliumNode (cilium.io"]),
    "lab-b": (LAB_B, sorted(p.name for p in seeds.__globals__["ROOT"].joinpath(
        "tests/fixtures/k8s/seeds").glob("seed001-*.yaml")),
              {("CiliumBGPPeerConfig", "cilium-peer"): 6,
               ("CiliumBGPAdvertisement", "bgp-advertisements"): 4,
               ("CiliumBGPClusterConfig", "cilium-bgp"): 2,
               ("CiliumBGPAdvertisement", "pod-ip-pool-advert"): 2},
              ["Service/http-test without status", "no CiliumNode (cilium.io"]),
}


@pytest.mark.parametrize("name", sorted(SETS))
def test_seed_set(tmp_path, name):
    described, files, alternatives, not_checkable = SETS[name]
    path = bundle(tmp_path / name, seeds(*files) + nodes(described))
    facts, result = explain_of(path)
    bad = [f for f in result.findings if f.severity != "info"]
    assert not bad, listing(result)
    found = {tuple(f.subject.split("/", 1)): f for f in result.findings
             if f.code == "K8S_OBJECT_ALTERNATIVES"}
    assert {k: len(f.evidence) for k, f in found.items()} == alternatives, listing(result)
    for f in found.values():
        assert "alternative" in f.summary and all(e.role == "intent" for e in f.evidence)
    needs = " | ".join(f"{c.name}: {c.needs}" for c in result.not_checked)
    for phrase in not_checkable:
        assert phrase in needs, needs
    assert "not checkable" in needs
    # nothing passed that only state could show
    assert not any(c.passed and "Cilium BGP" in c.name for c in result.checked), result.checked
