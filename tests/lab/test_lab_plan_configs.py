"""Plans and rendered configs, checked by the real daemons' own config parsers (no lab needed).

Also the CLI's refusals: no root/capabilities -> exit 5, bad name -> exit 2, unknown lab -> exit 2.
"""
from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys

import pytest

from diag.lab import configs
from diag.lab.plan import (MD5_PEER, addressing_plan, pod_veth_name, vxlan_device_name,
                           vxlan_mac)

PLANS = [addressing_plan("default"), addressing_plan("alt")]
OPTS = configs.BgpOptions(md5_password="0123456789abcdef01234567")


def test_alt_plan_shares_no_constant_with_default():
    default, alt = PLANS
    assert [h.name for h in default.hosts] == [h.name for h in alt.hosts]
    assert default.pod_range != alt.pod_range
    assert not ipaddress.ip_network(default.pod_range).overlaps(ipaddress.ip_network(alt.pod_range))
    for d, a in zip(default.hosts, alt.hosts):
        assert d.asn != a.asn
        assert {n.address for n in d.nics}.isdisjoint({n.address for n in a.nics})
        assert {n.name for n in d.nics}.isdisjoint({n.name for n in a.nics})
        assert d.pod_cidr == a.pod_cidr == "" or d.pod_cidr != a.pod_cidr
    assert {s.cidr for s in default.segments}.isdisjoint({s.cidr for s in alt.segments})
    assert alt.nodes[0].asn > 65535          # 4-octet AS on the nodes


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.key)
def test_plan_is_consistent(plan):
    router = plan.router
    nodes = plan.nodes
    assert len(nodes) == 3 and sum(n.cluster_nic.segment == "lan2" for n in nodes) == 1
    for node in nodes:
        seg = ipaddress.ip_network(plan.segment(node.cluster_nic.segment).cidr)
        assert ipaddress.ip_address(node.ip) in seg
        assert node.gateway == plan.router_nic_for(node).ip
        assert ipaddress.ip_network(node.pod_cidr).subnet_of(ipaddress.ip_network(plan.pod_range))
        assert ipaddress.ip_address(node.pod_ip) in ipaddress.ip_network(node.pod_cidr)
        mgmt = ipaddress.ip_interface(node.nic("mgmt").address)
        assert ipaddress.ip_address(plan.mgmt_gateway) in mgmt.network
    assert len({n.asn for n in nodes}) == 1 and router.asn != nodes[0].asn   # shared node AS
    assert len({vxlan_mac(n) for n in nodes}) == 3
    for cni in ("cilium", "calico"):
        assert len(pod_veth_name(cni)) <= 15 and len(vxlan_device_name(cni)) <= 15


def test_frr_baseline():
    plan = PLANS[0]
    text = configs.render_bgpd(plan, plan.router, OPTS)
    assert " no bgp ebgp-requires-policy" in text
    assert "passive" not in text                 # the router dials too; nodes (cilium) never listen
    w1 = plan.host(MD5_PEER).ip
    assert f" neighbor {w1} password {OPTS.md5_password}" in text
    assert text.count(" password ") == 1


@pytest.mark.skipif(not shutil.which("gobgpd"), reason="gobgpd not installed")
@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.key)
def test_gobgpd_accepts_config(plan, tmp_path):
    for node in plan.nodes:
        text = configs.render_gobgpd(plan, node, OPTS)
        assert "port = -1" in text and "allow-own-as = 1" in text
        assert ("auth-password" in text) == (node.name == MD5_PEER)
        conf = tmp_path / f"{node.name}.toml"
        conf.write_text(text)
        proc = subprocess.run(["gobgpd", "-d", "-f", str(conf), "-t", "toml"],
                              capture_output=True, text=True, timeout=20)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(not shutil.which("bird"), reason="bird2 not installed")
@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.key)
def test_bird_accepts_config(plan, tmp_path):
    for node in plan.nodes:
        text = configs.render_bird(plan, node, OPTS, tmp_path / "bird.log")
        assert "allow local as;" in text
        assert ("password" in text) == (node.name == MD5_PEER)
        conf = tmp_path / f"{node.name}.conf"
        conf.write_text(text)
        proc = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True,
                              timeout=20)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_fault_knobs_change_the_configs():
    """The options faults will turn actually change what the daemons get."""
    plan = PLANS[0]
    node = plan.host(MD5_PEER)
    loop = configs.BgpOptions(md5_password="x", allow_own_as=False)
    assert "allow-own-as" not in configs.render_gobgpd(plan, node, loop)
    assert "allow local as" not in configs.render_bird(plan, node, loop, "/dev/null")
    strict = configs.BgpOptions(md5_password="x", ebgp_requires_policy=True)
    assert " bgp ebgp-requires-policy" in configs.render_bgpd(plan, plan.router, strict)
    bad_as = configs.BgpOptions(md5_password="x", peer_as_override={node.name: 65099})
    assert "peer-as = 65099" in configs.render_gobgpd(plan, node, bad_as)


def _diag(*args: str, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diag", *args], capture_output=True, text=True,
                          timeout=30)


def test_refuses_without_capabilities():
    argv = [sys.executable, "-m", "diag", "lab", "up", "--name", "tlnocap"]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("setpriv (util-linux) is needed to drop capabilities as root")
        argv = ["setpriv", "--bounding-set=-net_admin,-sys_admin", *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 5
    assert proc.stderr.startswith("diag: error: diag lab needs root with CAP_NET_ADMIN")
    assert "hint: run it as root" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.path.exists("/run/netns/tlnocap-router")


def test_bad_arguments_are_usage_errors():
    bad_name = _diag("lab", "up", "--name", "Bad-Name")
    assert bad_name.returncode == 2 and "invalid lab name" in bad_name.stderr
    bad_cni = _diag("lab", "up", "--name", "tlbad", "--cni", "flannel")
    assert bad_cni.returncode == 2 and "invalid --cni 'flannel'" in bad_cni.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="status needs root")
def test_status_of_unknown_lab():
    proc = _diag("lab", "status", "--name", "tlnosuch")
    assert proc.returncode == 2
    assert "no lab named 'tlnosuch'" in proc.stderr and "Traceback" not in proc.stderr
