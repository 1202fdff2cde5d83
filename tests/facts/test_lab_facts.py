"""Live end-to-end (marker ``lab``, root): a fresh lab, ``diag collect`` with a capture, then
``load_facts`` — the model must match what the lab's own API says it built. The fast tests use
bundles saved from exactly this pipeline (tests/fixtures/bundles); this keeps them honest."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("cni, mode, addressing, name", [
    ("cilium", "vxlan", "alt", "fxt1"),
    ("calico", "native", "default", "fxt2"),
])
def test_live_bundle_model_matches_the_lab(tmp_path, cni, mode, addressing, name):
    if os.geteuid() != 0 or not shutil.which("gobgpd") or not shutil.which("bird"):
        pytest.skip("needs root and the lab's Debian packages")
    from diag.facts import load_facts
    from diag.lab import Lab, teardown

    teardown(name)
    lab = Lab.up(name, cni=cni, mode=mode, addressing=addressing)
    try:
        nodes = [h for h, info in lab.hosts.items() if info.role == "node"]
        lab.daemons.spawn("fxt/ping", nodes[0], ["ping", "-c", "300", "-i", "0.2",
                                         lab.hosts[nodes[-1]].pod_ip], pod=True)
        out = tmp_path / "bundle"
        argv = [sys.executable, "-m", "diag"] + lab.collect_command().split()[1:] + [
            "-o", str(out), "--capture", "3", "--filter", "udp port 8472 or icmp or arp"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        facts = load_facts(out)
    finally:
        lab.down()
    assert facts.bundle["status"] == "complete" and facts.problems == ()
    assert len(facts.parse_errors) == 0
    for host, info in lab.hosts.items():
        model = facts.model.hosts[host]
        assert model.role.value == info.role
        if info.role == "node":
            assert (model.node_ip.value, model.cluster_iface.value, model.default_iface.value,
                    model.pod_cidr.value) == (info.cluster_ip, info.cluster_iface,
                                              info.mgmt_iface, info.pod_cidr)
    peers = facts.tables["bgp_peers"]
    assert set(peers.state) == {"ESTABLISHED"} and len(peers) == 2 * len(nodes)
    assert facts.tables["packets"].iface.notna().all()
    if mode == "vxlan":
        assert {t.host for t in facts.model.tunnels} == set(nodes)
        assert not facts.tables["wire_tunnels"].empty
