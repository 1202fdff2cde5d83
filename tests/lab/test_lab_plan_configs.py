"""Plans and rendered configs, checked by the real daemons' own config parsers (no lab needed).

Also the CLI's refusals: no root/capabilities -> exit 5, bad name -> exit 2, unknown lab -> exit 2.
"""
from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from diag.lab import configs
from diag.lab.environment import BIRD1
from diag.lab.kube_objects import KubeObjectOptions, cluster_objects
from diag.lab.kube_reconcile import node_daemon_config
from diag.lab.plan import (MD5_PEER, addressing_plan, pod_veth_name, vxlan_device_name,
                           vxlan_mac)

PLANS = [addressing_plan("default"), addressing_plan("alt")]
PEERING_PLANS = [addressing_plan("default", "interface"), addressing_plan("alt", "range")]
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


def node_config(plan, node, opts=OPTS, *, cni="cilium", bird="1.6", log="/dev/null"):
    """What the lab runs on ``node``: generated from the objects the lab writes for ``plan``."""
    objects = [o for items in cluster_objects(plan, KubeObjectOptions(cni=cni)).values()
               for o in items]
    return node_daemon_config(objects, node.name, cni=cni, bird=bird, options=opts,
                              log_path=Path(log))


def _accepted(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(not shutil.which("gobgpd"), reason="gobgpd not installed")
@pytest.mark.parametrize("plan", PLANS + PEERING_PLANS, ids=lambda p: f"{p.key}-{p.peering}")
def test_gobgpd_accepts_config(plan, tmp_path):
    for node in plan.nodes:
        text = node_config(plan, node)
        assert "port = -1" in text and "allow-own-as = 1" in text
        assert ("auth-password" in text) == (node.name == MD5_PEER)
        assert f'neighbor-address = "{plan.router_nic_for(node).ip}"' in text
        conf = tmp_path / f"{node.name}.toml"
        conf.write_text(text)
        _accepted(["gobgpd", "-d", "-f", str(conf), "-t", "toml"])


@pytest.mark.skipif(not shutil.which("bird"), reason="bird2 not installed")
@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.key)
def test_bird2_accepts_config(plan, tmp_path):
    for node in plan.nodes:
        text = node_config(plan, node, cni="calico", bird="2", log=tmp_path / "bird.log")
        assert "allow local as;" in text
        assert ("password" in text) == (node.name == MD5_PEER)
        conf = tmp_path / f"{node.name}.conf"
        conf.write_text(text)
        _accepted(["bird", "-p", "-c", str(conf)])


@pytest.mark.skipif(not BIRD1.exists(), reason="BIRD 1.6 not unpacked (sudo bash .ci/bird1.sh)")
@pytest.mark.parametrize("plan", PLANS + PEERING_PLANS, ids=lambda p: f"{p.key}-{p.peering}")
def test_bird16_accepts_calicos_config(plan, tmp_path):
    for node in plan.nodes:
        text = node_config(plan, node, cni="calico", log=tmp_path / "bird.log")
        nic = plan.router_nic_for(node)
        assert f"protocol bgp Node_{nic.ip.replace('.', '_')} from bgp_template {{" in text
        assert f"  neighbor {nic.ip} as {plan.router.asn};" in text
        assert f"  route {node.pod_cidr} blackhole;" in text
        assert "allow local as 1;" in text
        assert ("password" in text) == (node.name == MD5_PEER)
        conf = tmp_path / f"{node.name}.conf"
        conf.write_text(text)
        _accepted([str(BIRD1), "-p", "-c", str(conf)])


def test_fault_knobs_change_the_configs():
    """The options faults turn actually change what the daemons get."""
    plan = PLANS[0]
    node = plan.host(MD5_PEER)
    loop = configs.BgpOptions(md5_password="x", allow_own_as=False)
    assert "allow-own-as" not in node_config(plan, node, loop)
    assert "allow local as" not in node_config(plan, node, loop, cni="calico", bird="2")
    assert "allow local as" not in node_config(plan, node, loop, cni="calico")
    strict = configs.BgpOptions(md5_password="x", ebgp_requires_policy=True)
    assert " bgp ebgp-requires-policy" in configs.render_bgpd(plan, plan.router, strict)
    bad_as = configs.BgpOptions(md5_password="x", peer_as_override={node.name: 65099})
    assert "peer-as = 65099" in node_config(plan, node, bad_as)
    assert "as 65099;" in node_config(plan, node, bad_as, cni="calico")
    other = configs.BgpOptions(md5_password="x", md5_override={node.name: "other"})
    assert 'auth-password = "other"' in node_config(plan, node, other)
    assert 'password "other";' in node_config(plan, node, other, cni="calico")


@pytest.mark.parametrize("key", ["default", "alt"])
def test_interface_peering_turns_the_lone_node_segment_into_a_31(key):
    plan = addressing_plan(key, "interface")
    base = addressing_plan(key)
    (lone,) = [n for n in plan.nodes if plan.interface_peered(n)]
    assert lone.name == "k8s-w0" and lone.ip == base.host("k8s-w0").ip     # address kept
    link = ipaddress.ip_network(plan.segment(lone.cluster_nic.segment).cidr)
    router_nic = plan.router_nic_for(lone)
    assert link.prefixlen == 31 and {lone.ip, router_nic.ip} == {str(a) for a in link}
    assert lone.gateway == router_nic.ip
    assert [n.ip for n in plan.nodes if n is not lone] == \
        [n.ip for n in base.nodes if n.name != lone.name]
    text = configs.render_bgpd(plan, plan.router, OPTS)
    assert f" neighbor {router_nic.name} interface remote-as {lone.asn}" in text
    assert f"  neighbor {router_nic.name} activate" in text and lone.ip not in text


def test_range_peering_listens_on_each_node_subnet_md5_node_explicit():
    plan = addressing_plan("default", "range")
    text = configs.render_bgpd(plan, plan.router, OPTS)
    assert " bgp listen range 192.168.10.0/24 peer-group K8S-NODES" in text
    assert " bgp listen range 192.168.20.0/24 peer-group K8S-NODES" in text
    w1 = plan.host(MD5_PEER).ip
    assert f" neighbor {w1} peer-group K8S-NODES" in text
    assert f" neighbor {w1} password {OPTS.md5_password}" in text
    assert text.count(" password ") == 1 and "192.168.10.100" not in text


@pytest.mark.skipif(not os.path.exists("/usr/lib/frr/bgpd"), reason="frr not installed")
@pytest.mark.parametrize("plan", PLANS + PEERING_PLANS, ids=lambda p: f"{p.key}-{p.peering}")
def test_bgpd_accepts_config(plan):
    # bgpd drops to the frr user before it reads the file: a directory frr can traverse
    with tempfile.TemporaryDirectory(prefix="diag-bgpd-", dir="/tmp") as where:
        os.chmod(where, 0o755)
        conf = Path(where) / "bgpd.conf"
        conf.write_text(configs.render_bgpd(plan, plan.router, OPTS))
        conf.chmod(0o644)
        proc = subprocess.run(["/usr/lib/frr/bgpd", "-C", "-f", str(conf), "-i",
                               f"{where}/bgpd.pid", "--vty_socket", where],
                              capture_output=True, text=True, timeout=20)
    # bgpd -C exits 0 even for a line it refuses; it logs the line with an error code
    assert proc.returncode == 0 and "[EC " not in proc.stdout + proc.stderr, \
        proc.stdout + proc.stderr


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
