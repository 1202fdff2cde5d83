"""Every fault of `diag lab faults`, on every (cni, mode) it applies to: apply, see the symptom with
our own probes, heal, see the healthy state again.

The labs are the session store's (tests/labstore.py; one per cni x mode, default addressing),
shared with the explain/report tests and test_lab_e2e.py, which run after these on the same labs
(tests/conftest.py orders them). Each cell asks the store for the cell's shared bundle: the store
applies the fault with ``diag lab fault NAME`` and starts the lab's printed collect command (with
a short capture); our probes check the symptom meanwhile, then the test heals. Each fault is so
applied once per lab per session. Oracles are independent of diag's own probes: real pings from
the pods, ``ip route get``, the daemons' JSON/CLI (vtysh, gobgp, birdc), arping, sysctl,
``ip -d -j link``.
"""
from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import time

import pytest

from labtools import CASES, diag_cli

pytestmark = pytest.mark.lab

DEFAULT_CASES = [case for case in CASES if case[2] == "default"]
FAULT_NAMES = ["rib-not-in-fib", "missing-podcidr-route-other-subnet", "egress-leak-default-route",
               "route-wrong-table", "rp-filter-strict", "vxlan-port-mismatch",
               "overlay-mtu-blackhole", "overlay-udp-blocked", "vxlan-vni-mismatch",
               "overlay-checksum-broken", "overlay-drop-after-decap", "arp-unanswered", "arp-multiple-responders",
               "bgp-transport-blocked", "bgp-no-listener", "bgp-bad-peer-as",
               "bgp-hold-timer-expired", "bgp-md5-mismatch", "bgp-ebgp-requires-policy",
               "bgp-as-path-loop", "bgp-no-advertisement"]      # the table, written out: a
# fault added to diag.lab.faults without a symptom oracle here fails test_every_fault_has_a_cell


def _ns(lab, host: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", lab.hosts[host].netns, *argv],
                          capture_output=True, text=True, timeout=20)


def _ping_rc(lab, src: str, dst: str, *extra: str) -> int:
    proc = subprocess.run(["ip", "netns", "exec", lab.hosts[src].pod_netns, "ping", "-n", "-q",
                           "-c", "2", "-i", "0.2", "-W", "1", "-w", "2", *extra,
                           lab.hosts[dst].pod_ip], capture_output=True, text=True, timeout=10)
    assert proc.returncode in (0, 1), proc.stderr          # 2 = ping itself failed
    return proc.returncode


def _pod_ping(lab, src: str, dst: str, *extra: str) -> bool:
    return _ping_rc(lab, src, dst, *extra) == 0


def _unanswered(lab, src: str, dst: str, *extra: str) -> bool:
    return _ping_rc(lab, src, dst, *extra) == 1


def _route_dev(lab, host: str, dst: str) -> str:
    return json.loads(_ns(lab, host, "ip", "-j", "route", "get", dst).stdout or "[{}]")[0].get("dev", "")


def _frr_peers(lab) -> dict:
    out = _ns(lab, "router", "vtysh", "--vty_socket", str(lab.files.frr_dir), "-c",
              "show bgp summary json").stdout
    return json.loads(out)["ipv4Unicast"]["peers"]


def _node_prefixes(lab, node: str) -> set[str]:
    if lab.cni == "cilium":
        rib = json.loads(_ns(lab, node, "gobgp", "global", "rib", "-j", "-a", "ipv4").stdout or "{}")
        return {p for p, paths in rib.items() if any("neighbor-ip" in x for x in paths)}
    # BIRD's own table: Calico's BIRD 1.6 leaves VXLAN pools' routes out of the kernel
    birdc = ["birdc", "-s", str(lab.files.bird_socket(node))]
    protocols = _ns(lab, node, *birdc, "show", "protocols").stdout.splitlines()
    (bgp,) = [line.split()[0] for line in protocols if line.split()[1:2] == ["BGP"]]
    out = _ns(lab, node, *birdc, "show", "route", "protocol", bgp).stdout
    return {line.split()[0] for line in out.splitlines() if line[:1].isdigit()}


def _arping_macs(lab, ip: str, count: int = 2) -> set[str]:
    iface = lab.plan.router_nic_for(lab.plan.host("k8s-ctr")).name
    out = _ns(lab, "router", "arping", "-r", "-c", str(count), "-w", str(count), "-i", iface,
              ip).stdout
    return {line.strip().lower() for line in out.splitlines() if line.strip()}


def _lb_ip(lab) -> str:
    seg = lab.plan.segment(lab.plan.host("k8s-ctr").cluster_nic.segment)
    return str(ipaddress.ip_network(seg.cidr).network_address + 212)


# --- what each fault must look like, seen by the test's own probes -------------------------------

def _symptom(lab, name: str) -> None:
    ctr, w1, w0 = (lab.hosts[n] for n in ("k8s-ctr", "k8s-w1", "k8s-w0"))
    peers = _frr_peers(lab)
    if name in ("rib-not-in-fib", "missing-podcidr-route-other-subnet", "egress-leak-default-route",
                "route-wrong-table"):
        assert _route_dev(lab, "k8s-ctr", w0.pod_ip) == ctr.mgmt_iface       # the leak
        assert _unanswered(lab, "k8s-ctr", "k8s-w0")
        if name == "rib-not-in-fib":
            assert w0.pod_cidr in _node_prefixes(lab, "k8s-ctr")          # RIB yes, FIB no
        if name == "missing-podcidr-route-other-subnet":
            assert _pod_ping(lab, "k8s-ctr", "k8s-w1")                   # on-link works
            assert not _node_prefixes(lab, "k8s-ctr")
        if name == "egress-leak-default-route":
            assert not _node_prefixes(lab, "k8s-ctr")
            assert _pod_ping(lab, "k8s-w1", "k8s-w0")                    # peers unaffected
        if name == "route-wrong-table":
            assert json.loads(_ns(lab, "k8s-ctr", "ip", "-j", "route", "show", "table",
                                  "100").stdout)
    elif name == "rp-filter-strict":
        assert _ns(lab, "k8s-w0", "sysctl", "-n", "net.ipv4.conf.all.rp_filter").stdout.strip() == "1"
        assert _unanswered(lab, "k8s-ctr", "k8s-w0")
        assert _pod_ping(lab, "k8s-ctr", "k8s-w1")
    elif name == "vxlan-port-mismatch":
        link = json.loads(_ns(lab, "k8s-w0", "ip", "-d", "-j", "link", "show", "type", "vxlan").stdout)
        assert link[0]["linkinfo"]["info_data"]["port"] == 4789
        assert _unanswered(lab, "k8s-ctr", "k8s-w0")
        assert _pod_ping(lab, "k8s-ctr", "k8s-w1")
    elif name == "overlay-mtu-blackhole":
        assert _pod_ping(lab, "k8s-ctr", "k8s-w0")
        assert _unanswered(lab, "k8s-ctr", "k8s-w0", "-s", "1472", "-M", "do")
    elif name == "overlay-udp-blocked":
        assert _unanswered(lab, "k8s-ctr", "k8s-w0")
        assert _pod_ping(lab, "k8s-ctr", "k8s-w1")                  # no router between
        node = subprocess.run(["ip", "netns", "exec", ctr.netns, "ping", "-n", "-q", "-c", "2",
                               "-i", "0.2", "-W", "1", "-w", "2", w0.cluster_ip],
                              capture_output=True, text=True, timeout=10)
        assert node.returncode == 0                                 # other traffic passes
        rules = _ns(lab, "router", "nft", "list", "table", "inet", "diag_fault").stdout
        assert "udp dport 8472" in rules and "drop" in rules
    elif name == "vxlan-vni-mismatch":
        ids = {n: json.loads(_ns(lab, n, "ip", "-d", "-j", "link", "show", "type",
                                 "vxlan").stdout)[0]["linkinfo"]["info_data"]
               for n in ("k8s-ctr", "k8s-w1", "k8s-w0")}
        assert ids["k8s-w0"]["id"] != ids["k8s-ctr"]["id"] == ids["k8s-w1"]["id"]
        assert {i["port"] for i in ids.values()} == {8472}
        assert _unanswered(lab, "k8s-ctr", "k8s-w0")
        assert _pod_ping(lab, "k8s-ctr", "k8s-w1")
    elif name == "overlay-checksum-broken":
        def counter(node: str) -> int:
            out = subprocess.run(["ip", "netns", "exec", lab.hosts[node].pod_netns, "nstat",
                                  "-asz", "TcpInCsumErrors"], capture_output=True, text=True,
                                 timeout=10).stdout
            return int(next((ln.split()[1] for ln in out.splitlines()
                             if ln.startswith("TcpInCsumErrors")), "0"))
        before = counter("k8s-w0")
        connect = subprocess.run(["ip", "netns", "exec", ctr.pod_netns, "nc", "-z", "-w", "2",
                                  w0.pod_ip, "8080"], capture_output=True, timeout=10)
        assert connect.returncode != 0                              # TCP fails
        assert _pod_ping(lab, "k8s-ctr", "k8s-w0")                  # ICMP passes
        assert counter("k8s-w0") > before                           # the receiver verified
        offload = subprocess.run(["ip", "netns", "exec", w0.pod_netns, "ethtool", "-k", "eth0"],
                                 capture_output=True, text=True, timeout=10).stdout
        assert "rx-checksumming: off" in offload
    elif name == "overlay-drop-after-decap":
        assert _unanswered(lab, "k8s-ctr", "k8s-w0")
        assert _pod_ping(lab, "k8s-ctr", "k8s-w1")
        rules = _ns(lab, "k8s-w0", "nft", "list", "table", "inet", "diag_fault").stdout
        assert "oifname" in rules and "drop" in rules
    elif name == "arp-unanswered":
        assert _arping_macs(lab, _lb_ip(lab), count=1) == set()
    elif name == "arp-multiple-responders":
        assert len(_arping_macs(lab, _lb_ip(lab))) == 2
    elif name in ("bgp-transport-blocked", "bgp-no-listener", "bgp-bad-peer-as",
                  "bgp-hold-timer-expired"):
        assert peers[ctr.cluster_ip]["state"] != "Established"
        assert peers[w0.cluster_ip]["state"] == "Established"
    elif name == "bgp-md5-mismatch":
        assert peers[w1.cluster_ip]["state"] != "Established"
    elif name == "bgp-ebgp-requires-policy":
        assert all(p["state"] == "Established" and p["pfxRcd"] == 0 for p in peers.values())
        assert json.loads(_ns(lab, "router", "ip", "-j", "route", "show", "proto", "bgp").stdout) == []
    elif name == "bgp-as-path-loop":
        assert peers[ctr.cluster_ip]["pfxSnt"] >= 2
        assert not _node_prefixes(lab, "k8s-ctr") & {w1.pod_cidr, w0.pod_cidr}
    elif name == "bgp-no-advertisement":
        assert peers[w0.cluster_ip]["pfxRcd"] == 0
        routes = json.loads(_ns(lab, "router", "ip", "-j", "route", "show", "proto", "bgp").stdout)
        assert w0.pod_cidr not in {r["dst"] for r in routes}
    else:
        raise AssertionError(f"no symptom oracle for {name}")


def _healthy(lab, name: str) -> None:
    peers = _frr_peers(lab)
    assert {p["state"] for p in peers.values()} == {"Established"}, peers
    assert all(p["pfxRcd"] == 1 for p in peers.values()), peers
    nodes = ("k8s-ctr", "k8s-w1", "k8s-w0")
    for src in nodes:                                   # every direction, as in a fresh lab
        for dst in nodes:
            if src != dst:
                assert _pod_ping(lab, src, dst), f"{src} -> {dst} after healing {name}"
    if name == "overlay-mtu-blackhole":
        assert _pod_ping(lab, "k8s-ctr", "k8s-w0", "-s", "1422", "-M", "do")
    if name in ("overlay-udp-blocked", "overlay-checksum-broken", "overlay-drop-after-decap"):
        for host in ("router", "k8s-w0"):
            assert _ns(lab, host, "nft", "list", "table", "inet", "diag_fault").returncode != 0
    if name == "overlay-checksum-broken":
        for node in ("k8s-ctr", "k8s-w0"):
            offload = subprocess.run(["ip", "netns", "exec", lab.hosts[node].pod_netns,
                                      "ethtool", "-k", "eth0"], capture_output=True, text=True,
                                     timeout=10).stdout
            assert "rx-checksumming: on" in offload and "tx-checksumming: on" in offload
    if name.startswith("arp-"):
        assert len(_arping_macs(lab, _lb_ip(lab), count=1)) == 1
    fresh = type(lab).load(lab.name)                 # background traffic stopped by PID
    assert not [p.key for p in fresh.state.processes if p.key.startswith("fault/")]


def test_every_fault_has_a_cell():
    from diag.lab import faults

    assert FAULT_NAMES == faults.ORDER


@pytest.mark.parametrize("running_lab", DEFAULT_CASES, indirect=True,
                         ids=lambda c: "-".join(c))
@pytest.mark.parametrize("name", FAULT_NAMES)
def test_fault_cycle(running_lab, labs, name):
    from diag.errors import UsageError
    from diag.lab import faults

    lab = running_lab.lab
    fault = faults.FAULTS[name]
    assert fault.name == name and fault.first_code.isupper()
    if not fault.applies_to(lab.cni, lab.mode):
        with pytest.raises(UsageError, match="applies to"):
            faults.apply(lab, name)
        return
    started = time.monotonic()
    # the cell's shared bundle: applied through `diag lab fault`, collected in the background
    labs.begin(running_lab.cni, running_lab.mode, name)
    lab = running_lab.lab                             # reloaded: the CLI started processes
    current = faults.active(lab)
    if current is None or current.name != name:      # bundle from earlier, fault healed since
        faults.apply(lab, name)
        current = faults.active(lab)
    assert current.name == name and current.phase == "active" and current.evidence
    _symptom(lab, name)
    lb = labs.bundle(running_lab.cni, running_lab.mode, name)     # collected with it active
    assert lb.path.is_dir() and lb.fault == name
    assert faults.active(lab).name == name            # still active when the collection ended
    healing = time.monotonic()
    healed = faults.heal(lab, name)
    assert healed.action == "healed" and faults.active(lab) is None
    _healthy(lab, name)
    again = faults.heal(lab, name)               # idempotent
    assert again.action == "healed"
    labs.note(running_lab.name, name, time.monotonic() - healing, "heal+checks")
    print(f"\n{running_lab.name} {name}: {time.monotonic() - started:.1f} s "
          f"(collect {lb.seconds:.1f} s, heal {healed.seconds:.1f} s)")


@pytest.mark.parametrize("running_lab", DEFAULT_CASES[:1], indirect=True,
                         ids=lambda c: "-".join(c))
def test_cli_fault_status_heal_and_down_cleanup(running_lab):
    """Through the CLI: table, a fault that does not apply (exit 2), apply, status shows it,
    applying another heals the first, heal, and heal again (idempotent)."""
    name = running_lab.name
    table = diag_cli("lab", "faults", "--name", name)
    assert table.returncode == 0
    assert "ROUTE_RIB_NOT_IN_FIB" in table.stdout and "-vxlan-port-mismatch" in table.stdout
    wrong = diag_cli("lab", "fault", "overlay-mtu-blackhole", "--name", name)
    assert wrong.returncode == 2 and "applies to vxlan" in wrong.stderr
    unknown = diag_cli("lab", "fault", "no-such-fault", "--name", name)
    assert unknown.returncode == 2 and "no fault named" in unknown.stderr
    applied = diag_cli("lab", "fault", "arp-unanswered", "--name", name)
    assert applied.returncode == 0, applied.stderr
    assert "ARP_UNANSWERED" in applied.stdout
    status = json.loads(diag_cli("lab", "status", "--json", "--name", name).stdout)
    assert status["fault"]["name"] == "arp-unanswered" and status["fault"]["phase"] == "active"
    assert any(p["key"].startswith("fault/") and p["running"] for p in status["processes"])
    other = diag_cli("lab", "fault", "bgp-ebgp-requires-policy", "--name", name)
    assert other.returncode == 0 and "healed arp-unanswered first" in other.stdout
    healed = diag_cli("lab", "heal", "--name", name)
    assert healed.returncode == 0 and "healed" in healed.stdout
    assert "fault: none" in diag_cli("lab", "status", "--name", name).stdout
    assert diag_cli("lab", "heal", "--name", name).returncode == 0     # nothing active: fine
    status = json.loads(diag_cli("lab", "status", "--json", "--name", name).stdout)
    assert not [p for p in status["processes"] if p["key"].startswith("fault/")]


@pytest.mark.skipif(not (shutil.which("gobgpd") and shutil.which("bird")),
                    reason="gobgpd and bird2 needed")
def test_fault_config_knobs_accepted_by_the_daemons(tmp_path):
    """The BgpOptions the faults add (GoBGP passive-mode, BIRD kernel table) render configs the
    daemons' own parsers accept, and the healthy render has neither."""
    from diag.lab import configs
    from diag.lab.kube_objects import KubeObjectOptions, cluster_objects
    from diag.lab.kube_reconcile import node_daemon_config
    from diag.lab.plan import addressing_plan

    plan = addressing_plan("default")
    node = plan.host("k8s-ctr")

    def render(cni: str, options) -> str:
        objects = [o for items in cluster_objects(plan, KubeObjectOptions(cni=cni)).values()
                   for o in items]
        return node_daemon_config(objects, node.name, cni=cni, bird="2", options=options,
                                  log_path=tmp_path / "b.log")

    healthy = configs.BgpOptions(md5_password="x")
    fault = configs.BgpOptions(md5_password="x", passive_nodes=frozenset({node.name}),
                               kernel_table=100)
    assert "passive-mode" not in render("cilium", healthy)
    assert "kernel table" not in render("calico", healthy)
    gobgp = render("cilium", fault)
    bird = render("calico", fault)
    assert "passive-mode = true" in gobgp and "kernel table 100;" in bird
    (tmp_path / "g.toml").write_text(gobgp)
    (tmp_path / "b.conf").write_text(bird)
    for argv in (["gobgpd", "-d", "-f", str(tmp_path / "g.toml"), "-t", "toml"],
                 ["bird", "-p", "-c", str(tmp_path / "b.conf")]):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        assert proc.returncode == 0, proc.stdout + proc.stderr
