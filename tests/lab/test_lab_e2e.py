"""End-to-end: each (cni, mode) and the alt addressing — sessions, pod-to-pod pings, SSH, teardown.

Oracles: the daemons' own JSON/CLI (vtysh, gobgp, birdc), the kernel (ip, ss), real ping and ssh.
Tests of one lab run in file order; the last one tears the lab down and checks nothing is left.
"""
from __future__ import annotations

import json
import os
import re
import signal
import shlex
import subprocess
import time

import pytest

from labtools import diag_cli, leftovers, root_namespace_snapshot

pytestmark = pytest.mark.lab

SSH_STRICT = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]


@pytest.fixture(autouse=True)
def _healthy(running_lab):
    """These tests check the healthy lab: a fault a store test left active (a bundle collected
    outside the fault cycles, e.g. through the agent pods) is healed first, with live probes."""
    from diag.lab import faults

    faults.heal(running_lab.lab)


def _ns(lab, host: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run argv in the host's namespace with plain ``ip netns exec`` (not through diag)."""
    return subprocess.run(["ip", "netns", "exec", lab.hosts[host].netns, *argv],
                          capture_output=True, text=True, timeout=20, check=check)


def _nodes(lab) -> list[str]:
    return [n for n, h in lab.hosts.items() if h.role == "node"]


def test_up_prints_ready_to_paste_commands(running_lab):
    lab = running_lab.lab
    out = running_lab.up_stdout
    collect = next(line.strip() for line in out.splitlines() if line.strip().startswith("diag collect"))
    argv = shlex.split(collect)
    assert argv[argv.index("--ssh-config") + 1] == str(lab.files.ssh_config_path)
    assert argv[argv.index("--known-hosts") + 1] == str(lab.files.known_hosts_path)
    assert set(argv[-4:]) == {"router", "k8s-ctr", "k8s-w1", "k8s-w0"}
    assert re.search(rf"^\s*ssh -F {re.escape(str(lab.files.ssh_config_path))} k8s-w1\s*$", out, re.M)


def test_root_namespace_untouched(running_lab):
    assert root_namespace_snapshot() == running_lab.root_before


def test_router_sessions_established_frr_json(running_lab):
    lab = running_lab.lab
    summary = json.loads(_ns(lab, "router", "vtysh", "--vty_socket", str(lab.files.frr_dir),
                             "-c", "show bgp summary json").stdout)
    peers = summary["ipv4Unicast"]["peers"]
    node_ips = {lab.hosts[n].cluster_ip for n in _nodes(lab)}
    assert set(peers) == node_ips
    for addr, peer in peers.items():
        assert peer["state"] == "Established", (addr, peer)
        assert peer["pfxRcd"] == 1, (addr, peer)          # each node's own pod CIDR
        assert peer["remoteAs"] == lab.hosts["k8s-ctr"].asn
    assert summary["ipv4Unicast"]["as"] == lab.hosts["router"].asn


def test_node_sessions_established_own_cli(running_lab):
    lab = running_lab.lab
    for node in _nodes(lab):
        if running_lab.cni == "cilium":
            neighbors = json.loads(_ns(lab, node, "gobgp", "neighbor", "-j").stdout)
            assert len(neighbors) == 1
            assert neighbors[0]["state"]["session_state"] == 6, neighbors[0]["state"]  # ESTABLISHED
        else:
            out = _ns(lab, node, "birdc", "-s", str(lab.files.bird_socket(node)), "show", "protocols").stdout
            bgp_lines = [line for line in out.splitlines() if " BGP " in line]
            assert len(bgp_lines) == 1 and "Established" in bgp_lines[0], out


def test_shared_as_routes_are_accepted(running_lab):
    """Nodes share one AS: allow-own-as / allow local as must keep the others' pod CIDRs."""
    lab = running_lab.lab
    cidrs = {n: lab.hosts[n].pod_cidr for n in _nodes(lab)}
    router_routes = json.loads(_ns(lab, "router", "ip", "-j", "route", "show", "proto", "bgp").stdout)
    assert {r["dst"] for r in router_routes} == set(cidrs.values())
    for node in cidrs:
        others = {c for n, c in cidrs.items() if n != node}
        if running_lab.cni == "cilium":
            rib = json.loads(_ns(lab, node, "gobgp", "global", "rib", "-j", "-a", "ipv4").stdout)
            assert others <= set(rib), (node, sorted(rib))
            # Cilium's GoBGP never programs the kernel
            kernel = json.loads(_ns(lab, node, "ip", "-j", "route", "show", "proto", "bgp").stdout)
            assert kernel == []
        else:
            birdc = ["birdc", "-s", str(lab.files.bird_socket(node))]
            (bgp,) = [line.split()[0] for line in _ns(lab, node, *birdc, "show",
                                                      "protocols").stdout.splitlines()
                      if line.split()[1:2] == ["BGP"]]
            table = _ns(lab, node, *birdc, "show", "route", "protocol", bgp).stdout
            assert others <= {line.split()[0] for line in table.splitlines()
                              if line[:1].isdigit()}, (node, table)
            kernel = {r["dst"] for r in json.loads(_ns(lab, node, "ip", "-j", "route", "show",
                                                       "proto", "bird").stdout)}
            # Calico's BIRD programs pool routes unless the pool is VXLAN (Felix's routes)
            assert kernel == (others if running_lab.mode == "native" else set()), (node, kernel)


def test_pod_to_pod_every_direction(running_lab):
    lab = running_lab.lab
    nodes = _nodes(lab)
    failures = []
    for src in nodes:
        for dst in nodes:
            if src == dst:
                continue
            proc = subprocess.run(["ip", "netns", "exec", lab.hosts[src].pod_netns, "ping", "-n",
                                   "-q", "-c", "2", "-i", "0.2", "-W", "1", "-w", "4",
                                   lab.hosts[dst].pod_ip], capture_output=True, text=True,
                                  timeout=15)
            if proc.returncode != 0 or " 0% packet loss" not in proc.stdout:
                failures.append(f"{src} -> {dst}: {proc.stdout.strip().splitlines()[-2:]}")
    assert not failures, failures


def test_two_nic_trap_default_route_via_mgmt_to_sink(running_lab):
    lab = running_lab.lab
    for node in _nodes(lab):
        default = json.loads(_ns(lab, node, "ip", "-j", "route", "show", "default").stdout)
        assert len(default) == 1
        assert default[0]["dev"] == lab.hosts[node].mgmt_iface
        assert default[0]["gateway"] == lab.plan.mgmt_gateway
        assert lab.hosts[node].mgmt_iface != lab.hosts[node].cluster_iface


def test_datapath_to_other_pods(running_lab):
    lab = running_lab.lab
    for node in _nodes(lab):
        info = lab.hosts[node]
        for other in _nodes(lab):
            if other == node:
                continue
            got = json.loads(_ns(lab, node, "ip", "-j", "route", "get", lab.hosts[other].pod_ip).stdout)[0]
            if running_lab.mode == "vxlan":
                assert got["dev"] in ("cilium_vxlan", "vxlan.calico"), got
            else:
                assert got["dev"] == info.cluster_iface, got     # never out of the mgmt NIC
                if running_lab.cni == "cilium":                  # the static pod-range route
                    assert got["gateway"] == lab.plan.host(node).gateway, got


def test_vxlan_devices_and_encapsulation(running_lab):
    lab = running_lab.lab
    dev = "cilium_vxlan" if running_lab.cni == "cilium" else "vxlan.calico"
    nodes = _nodes(lab)
    if running_lab.mode == "native":         # native routing: no overlay device at all
        for node in nodes:
            links = json.loads(_ns(lab, node, "ip", "-d", "-j", "link").stdout)
            assert not [l for l in links if l.get("linkinfo", {}).get("info_kind") == "vxlan"]
        return

    def tx_packets(node: str) -> int:
        link = json.loads(_ns(lab, node, "ip", "-s", "-j", "link", "show", "dev", dev).stdout)[0]
        return link["stats64"]["tx"]["packets"]

    for node in nodes:
        link = json.loads(_ns(lab, node, "ip", "-d", "-j", "link", "show", "dev", dev).stdout)[0]
        assert link["mtu"] == 1450
        assert link["linkinfo"]["info_kind"] == "vxlan"
        assert link["linkinfo"]["info_data"]["port"] == 8472
        fdb = json.loads(_ns(lab, node, "bridge", "-j", "fdb", "show", "dev", dev).stdout)
        others = {lab.hosts[n].cluster_ip for n in nodes if n != node}
        assert {e.get("dst") for e in fdb} == others
    before = tx_packets("k8s-ctr")
    subprocess.run(["ip", "netns", "exec", lab.hosts["k8s-ctr"].pod_netns, "ping", "-n", "-q",
                    "-c", "3", "-i", "0.2", "-W", "1", lab.hosts["k8s-w0"].pod_ip],
                   capture_output=True, timeout=15, check=True)
    assert tx_packets("k8s-ctr") >= before + 3


def test_md5_only_on_router_to_k8s_w1(running_lab):
    lab = running_lab.lab
    w1_sockets = _ns(lab, "k8s-w1", "ss", "-tnie", "state", "established", "( dport = :179 or sport = :179 )").stdout
    ctr_sockets = _ns(lab, "k8s-ctr", "ss", "-tnie", "state", "established", "( dport = :179 or sport = :179 )").stdout
    assert "md5keys:" in w1_sockets
    assert ":179" in ctr_sockets and "md5keys:" not in ctr_sockets
    config = _ns(lab, "router", "vtysh", "--vty_socket", str(lab.files.frr_dir), "-c",
                 "show running-config").stdout
    w1_ip = lab.hosts["k8s-w1"].cluster_ip
    assert f"neighbor {w1_ip} password {lab.files.md5_password}" in config
    assert len(lab.files.md5_password) >= 16
    assert (lab.run_dir / "md5_password").stat().st_mode & 0o077 == 0


def test_ssh_with_printed_command(running_lab):
    line = next(l.strip() for l in running_lab.up_stdout.splitlines() if l.strip().startswith("ssh -F"))
    proc = subprocess.run(shlex.split(line) + SSH_STRICT + ["hostname"], capture_output=True,
                          text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "k8s-w1"


def test_ssh_every_host_reaches_its_daemon(running_lab):
    """What diag collect will do: plain daemon CLIs over SSH with the lab's config."""
    lab = running_lab.lab
    base = ["ssh", "-F", str(lab.files.ssh_config_path), *SSH_STRICT]
    router = subprocess.run(base + ["router", "vtysh -c 'show bgp summary json'"],
                            capture_output=True, text=True, timeout=20)
    assert router.returncode == 0, router.stderr
    states = {p["state"] for p in json.loads(router.stdout)["ipv4Unicast"]["peers"].values()}
    assert states == {"Established"}
    for node in _nodes(lab):
        command = "gobgp neighbor" if running_lab.cni == "cilium" else "birdc show protocols"
        proc = subprocess.run(base + [node, f"hostname; {command}"], capture_output=True,
                              text=True, timeout=20)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[0] == node
        assert "Establ" in proc.stdout, proc.stdout


def test_asyncssh_honours_the_config(running_lab):
    """diag collect uses asyncssh: the same ssh_config (ProxyCommand, key, known_hosts) must work."""
    import asyncio

    import asyncssh

    lab = running_lab.lab

    async def hostnames() -> list[str]:
        out = []
        for host in lab.hosts:
            async with asyncssh.connect(host, config=[str(lab.files.ssh_config_path)],
                                        connect_timeout=10) as conn:
                out.append((await conn.run("hostname", check=True)).stdout.strip())
        return out

    assert asyncio.run(asyncio.wait_for(hostnames(), 60)) == list(lab.hosts)


def test_ssh_refuses_unknown_host_key(running_lab):
    lab = running_lab.lab
    proc = subprocess.run(["ssh", "-F", str(lab.files.ssh_config_path), *SSH_STRICT,
                           "-o", "UserKnownHostsFile=/dev/null", "k8s-w0", "true"],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 255
    assert "Host key verification failed" in proc.stderr


def test_status_cli(running_lab):
    name = running_lab.name
    text = diag_cli("lab", "status", "--name", name)
    assert text.returncode == 0, text.stderr
    assert len(re.findall(r"peer \S+ +Established", text.stdout)) == 6, text.stdout
    assert "diag collect --ssh-config" in text.stdout
    st = json.loads(diag_cli("lab", "status", "--name", name, "--json").stdout)
    assert st["phase"] == "ready"
    assert all(st["namespaces"].values()) and len(st["namespaces"]) == 9
    assert all(p["running"] for p in st["processes"])
    assert st["timings"]["bringup_s"] > 0


def test_exec_cli_runs_on_the_host(running_lab):
    name = running_lab.name
    proc = diag_cli("lab", "exec", "--name", name, "k8s-w0", "--", "sh", "-c", "hostname; exit 3")
    assert proc.returncode == 3
    assert proc.stdout.strip() == "k8s-w0"


def test_api_spawn_stop_and_restart_bgp(running_lab):
    """The API faults build on: tracked background processes and a daemon restart."""
    lab = running_lab.lab
    record = lab.daemons.spawn("test/ping", "k8s-ctr", ["ping", "-n", "-q", "-i", "0.5",
                                                lab.hosts["k8s-w0"].pod_ip], pod=True)
    assert lab.daemons.is_running("test/ping") and lab.daemons.pid("test/ping") == record.pid
    os.kill(record.pid, signal.SIGSTOP)         # a frozen process stops promptly too
    assert _wait_state(record.pid, "T")
    started = time.monotonic()
    assert lab.daemons.stop("test/ping") and not lab.daemons.is_running("test/ping")
    assert time.monotonic() - started < 0.9     # SIGTERM took effect, no SIGKILL grace needed
    assert _proc_state(record.pid) in (None, "Z")
    # left running on purpose: down must stop it by PID
    lab.daemons.spawn("test/ping-left", "k8s-w1", ["ping", "-n", "-q", "-i", "0.5",
                                           lab.hosts["k8s-ctr"].pod_ip], pod=True)
    if running_lab.cni == "calico" or running_lab.name == "tlcn":   # GoBGP reconnects in 5-10 s
        old = lab.daemons.pid(f"k8s-w1/{'gobgpd' if running_lab.cni == 'cilium' else 'bird'}")
        lab.daemons.restart_bgp("k8s-w1")
        new = lab.daemons.pid(f"k8s-w1/{'gobgpd' if running_lab.cni == 'cilium' else 'bird'}")
        assert new and new != old and _proc_state(old) in (None, "Z")
        states = lab.daemons.wait_established(timeout=30)
        assert len(states) == 6
        deadline = time.monotonic() + 15           # routes re-learned after Established
        while lab.pod_ping("k8s-w1", "k8s-w0", count=1, deadline=2).returncode != 0:
            assert time.monotonic() < deadline, "pods unreachable after restarting k8s-w1's BGP"


def _wait_state(pid: int, state: str, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while _proc_state(pid) != state:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def _lab_pids(lab) -> set[int]:
    """Every process of the lab as the kernel sees it: in its namespaces, or recorded."""
    pids = set()
    for ns in lab.state.namespaces:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
        pids |= {int(p) for p in out.split()}
    state = json.loads((lab.run_dir / "state.json").read_text())
    return pids | {p["pid"] for p in state["processes"]}


def test_down_removes_everything(running_lab):
    """Last test of each lab: measured teardown, nothing left, bring-up within budget."""
    name = running_lab.name
    bringup = running_lab.lab.state.timings["bringup_s"]
    pids = {p for p in _lab_pids(running_lab.lab) if _proc_state(p) not in (None, "Z")}
    assert len(pids) >= 9                       # zebra, bgpd, 4 sshd, 3 speakers (+ ping)
    frr_dirs = [f"/var/tmp/frr/{p.key.split('/')[1]}.{p.pid}"
                for p in running_lab.lab.state.processes if p.key in ("router/zebra", "router/bgpd")]
    assert len(frr_dirs) == 2
    started = time.monotonic()
    proc = diag_cli("lab", "down", "--name", name)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert leftovers(name) == []
    assert [p for p in pids if _proc_state(p) not in (None, "Z")] == []
    assert [d for d in frr_dirs if os.path.exists(d)] == []
    assert root_namespace_snapshot() == running_lab.root_before
    print(f"\n{name}: bring-up {bringup:.1f} s, teardown {elapsed:.2f} s (CLI incl. start-up)")
    assert bringup <= 25, f"bring-up took {bringup:.1f} s (aim <= 15 s)"
    assert elapsed <= 5, f"teardown took {elapsed:.1f} s (aim <= 2 s)"
