"""The lab as a Kubernetes cluster, live: the real kubectl reads what `diag lab up` wrote, the
objects drive the daemons (an edit, `diag lab kube apply`, and the router's RIB changes), the L2
announcement's Lease holder answers ARP on the wire, calico runs BIRD 1.6 read with bird2's
birdcl, and the router's peering variants (interface, dynamic range) come up.

Labs: the session store's (tests/labstore.py), restored after every edit; the two variant labs
are this module's own. Oracles: kubectl, the daemons' own CLIs (vtysh JSON, gobgp JSON,
birdc/birdcl), the kernel (ip, ss), tcpdump's reading of a capture, real ping.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time

import pytest
from labtools import CASES, diag_cli, leftovers

pytestmark = pytest.mark.lab

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (bash .ci/test "
                                   "installs Debian's kubernetes-client)")
CILIUM_NATIVE = [("cilium", "native", "default")]
CALICO = [case for case in CASES if case[0] == "calico"]
VARIANTS = {"tvbi": ("calico", ("--bird", "2", "--peering", "interface")),
            "tvcr": ("cilium", ("--peering", "range"))}


def _ns(lab, host: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", lab.hosts[host].netns, *argv],
                          capture_output=True, text=True, timeout=20, check=check)


def kubectl(lab, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([KUBECTL, "--kubeconfig", str(lab.cluster.kubeconfig_path), *args],
                          capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"})
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def kget(lab, *args: str) -> dict:
    return json.loads(kubectl(lab, "get", *args, "-o", "json").stdout)


def wait(probe, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(0.2)


def router_prefixes(lab) -> set[str]:
    out = _ns(lab, "router", "vtysh", "--vty_socket", str(lab.files.frr_dir), "-c",
              "show bgp ipv4 unicast json").stdout
    return set(json.loads(out).get("routes", {}))


def router_states(lab) -> dict[str, str]:
    out = _ns(lab, "router", "vtysh", "--vty_socket", str(lab.files.frr_dir), "-c",
              "show bgp summary json").stdout
    return {k: v["state"] for k, v in json.loads(out)["ipv4Unicast"]["peers"].items()}


def apply(lab) -> str:
    proc = diag_cli("lab", "kube", "apply", "--name", lab.name)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def edit(lab, stem: str, change) -> dict:
    """Change the objects file ``stem`` in place with ``change(items)``; return the original."""
    path = lab.cluster.objects_dir / f"{stem}.json"
    original = json.loads(path.read_text())
    document = json.loads(path.read_text())
    change(document["items"])
    path.write_text(json.dumps(document, indent=1))
    return original


def restore(lab, stem: str, original: dict) -> None:
    (lab.cluster.objects_dir / f"{stem}.json").write_text(json.dumps(original, indent=1))


# --- the real kubectl reads the lab ----------------------------------------------------------

@needs_kubectl
def test_kubectl_reads_the_lab_as_a_cluster(running_lab):
    lab = running_lab.lab
    status = json.loads(diag_cli("lab", "status", "--json", "--name", lab.name).stdout)
    assert status["kubectl_real"] == KUBECTL
    assert status["kubectl"] == str(lab.cluster.kubectl_path)   # the lab's exec/debug stand-in
    assert status["kubeconfig"] == str(lab.cluster.kubeconfig_path)
    assert lab.cluster.kubeconfig_path.stat().st_mode & 0o077 == 0
    printed = [line.strip() for line in running_lab.up_stdout.splitlines()
               if line.strip().startswith("diag collect")]
    assert printed[0].startswith("diag collect --ssh-config")          # the SSH line stays
    assert shlex.split(printed[1]) == ["diag", "collect", "--kube", "--via", "kubectl",
                                       "--kubectl", status["kubectl"], "--kubeconfig",
                                       status["kubeconfig"]]
    nodes = {n["metadata"]["name"]: [a["address"] for a in n["status"]["addresses"]
                                     if a["type"] == "InternalIP"]
             for n in kget(lab, "nodes")["items"]}
    assert nodes == {name: [h.cluster_ip] for name, h in lab.hosts.items() if h.role == "node"}
    if running_lab.cni == "cilium":
        config = kget(lab, "configmap", "-n", "kube-system", "cilium-config")["data"]
        assert config["routing-mode"] == ("native" if running_lab.mode == "native" else "tunnel")
        cidrs = {n["metadata"]["name"]: n["spec"]["ipam"]["podCIDRs"]
                 for n in kget(lab, "ciliumnodes")["items"]}
        assert cidrs == {n: [h.pod_cidr] for n, h in lab.hosts.items() if h.role == "node"}
        _node_configs_show_gobgps_state(lab)
        _lease_holder_holds_the_ip(lab)
    else:
        (pool,) = kget(lab, "ippools.crd.projectcalico.org")["items"]
        assert pool["spec"]["vxlanMode"] == ("Always" if running_lab.mode == "vxlan" else "Never")
        affinities = {(a["spec"]["node"], a["spec"]["cidr"])
                      for a in kget(lab, "blockaffinities.crd.projectcalico.org")["items"]}
        assert affinities == {(n, h.pod_cidr) for n, h in lab.hosts.items() if h.role == "node"}
    # the endpoint is a lab process in the root namespace, on loopback only
    pid = lab.daemons.pid("kube/api")
    sockets = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True).stdout
    mine = [line.split()[3] for line in sockets.splitlines() if f"pid={pid}," in line]
    assert mine and all(address.startswith("127.0.0.1:") for address in mine), mine


def _node_configs_show_gobgps_state(lab) -> None:
    """Each CiliumBGPNodeConfig's status is what GoBGP itself says (refreshed when read)."""
    for item in kget(lab, "ciliumbgpnodeconfigs")["items"]:
        node = item["metadata"]["name"]
        (neighbor,) = json.loads(_ns(lab, node, "gobgp", "neighbor", "-j").stdout)
        received = sum(a["state"].get("received", 0) for a in neighbor["afi_safis"])
        adj_out = json.loads(_ns(lab, node, "gobgp", "neighbor",
                                 neighbor["conf"]["neighbor_address"], "adj-out", "-a", "ipv4",
                                 "-j").stdout or "{}")
        (instance,) = item["status"]["bgpInstances"]
        (peer,) = instance["peers"]
        assert neighbor["state"]["session_state"] == 6 and peer["peeringState"] == "established"
        assert peer["peerAddress"] == neighbor["conf"]["neighbor_address"]
        assert peer["routeCount"] == [{"afi": "ipv4", "safi": "unicast", "received": received,
                                       "advertised": len(adj_out)}], node
        assert received == 3 and len(adj_out) == 1


def _lease_holder_holds_the_ip(lab) -> None:
    (lease,) = kget(lab, "leases", "-n", "kube-system")["items"]
    (service,) = kget(lab, "services", "-A")["items"]
    lb_ip = service["status"]["loadBalancer"]["ingress"][0]["ip"]
    holders = [n for n, h in lab.hosts.items() if h.role == "node" and
               f"{lb_ip}/32" in _ns(lab, n, "ip", "-o", "-4", "addr", "show", "dev",
                                    h.cluster_iface).stdout]
    assert holders == [lease["spec"]["holderIdentity"]] == ["k8s-w1"]


@needs_kubectl
@pytest.mark.parametrize("running_lab", CILIUM_NATIVE, indirect=True, ids=lambda c: "-".join(c))
def test_kinds_marked_denied_answer_403(running_lab):
    lab = running_lab.lab
    denied = lab.cluster.denied_path
    before = denied.read_text()
    try:
        denied.write_text(before + "ciliumnodes.cilium.io\n")
        refused = kubectl(lab, "get", "ciliumnodes", check=False)
        assert refused.returncode == 1
        assert 'Error from server (Forbidden): ciliumnodes.cilium.io is forbidden: User ' \
               '"diag-lab" cannot list resource "ciliumnodes" in API group "cilium.io" at the ' \
               'cluster scope' in refused.stderr
        assert kubectl(lab, "get", "nodes").returncode == 0          # the rest still reads
    finally:
        denied.write_text(before)
    assert kubectl(lab, "get", "ciliumnodes").returncode == 0


@needs_kubectl
@pytest.mark.parametrize("cni, mode", [("cilium", "native"), ("calico", "native")])
def test_collect_kube_beside_ssh_gives_facts_every_pod_cidr_from_kubernetes(labs, cni, mode):
    """`diag lab up`'s two collect lines in one run (SSH hosts and --kube), then `diag facts`:
    every node's pod CIDR comes from the object the IPAM in force keeps, and what the hosts
    showed agrees with it."""
    up = labs.running(cni, mode)
    printed = [shlex.split(line.strip()) for line in up.up_stdout.splitlines()
               if line.strip().startswith("diag collect --kube")]
    (kube,) = printed
    # the objects beside the SSH hosts (the printed line's --via kubectl would add the nodes
    # again, through their pods: tests/lab/test_lab_pods.py)
    kube = [a for a in kube if a not in ("--via", "kubectl")]
    kube = kube[:kube.index("--kubectl")] + kube[kube.index("--kubectl") + 2:]
    bundle = labs.bundle(cni, mode, None, extra=tuple(kube[2:]))
    proc = diag_cli("facts", str(bundle.path), "--format", "json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts["parse_errors"] == [] and facts["problems"] == []
    kind = "CiliumNode" if cni == "cilium" else "BlockAffinity"
    for name, host in up.lab.hosts.items():
        if host.role != "node":
            continue
        pod_cidr = facts["model"]["hosts"][name]["pod_cidr"]
        assert (pod_cidr["value"], pod_cidr["source"]) == (host.pod_cidr, "kubernetes"), name
        assert pod_cidr["how"].startswith(f"kubernetes {kind}/{name}"), pod_cidr["how"]
        assert pod_cidr["agrees"] and pod_cidr["conflicts"] == [], pod_cidr


# --- the objects drive the daemons ------------------------------------------------------------

@pytest.mark.parametrize("running_lab", CILIUM_NATIVE, indirect=True, ids=lambda c: "-".join(c))
def test_advertisement_labels_decide_what_gobgp_announces(running_lab):
    """The PeerConfig's family selects advertisements labelled advertise=bgp: relabel the
    advertisement and every node's GoBGP withdraws its pod CIDR — the router's RIB empties while
    the sessions stay up — then put the label back and the routes return."""
    lab = running_lab.lab
    pod_cidrs = {h.pod_cidr for h in lab.hosts.values() if h.role == "node"}
    assert router_prefixes(lab) == pod_cidrs

    def relabel(value):
        def change(items):
            (advert,) = [o for o in items if o["kind"] == "CiliumBGPAdvertisement"]
            advert["metadata"]["labels"]["advertise"] = value
        return change

    original = edit(lab, "cilium-bgp", relabel("nothing"))
    try:
        said = apply(lab)
        assert sorted(re.findall(r"GoBGP withdraws (\S+)", said)) == sorted(pod_cidrs), said
        wait(lambda: not router_prefixes(lab), 15, "the router's RIB emptied")
        assert set(router_states(lab).values()) == {"Established"}
        for node in (n for n, h in lab.hosts.items() if h.role == "node"):
            rib = json.loads(_ns(lab, node, "gobgp", "global", "rib", "-j").stdout or "{}")
            assert lab.hosts[node].pod_cidr not in rib
    finally:
        restore(lab, "cilium-bgp", original)
        said = apply(lab)
    assert sorted(re.findall(r"GoBGP advertises (\S+)", said)) == sorted(pod_cidrs), said
    wait(lambda: router_prefixes(lab) == pod_cidrs, 15, "the pod CIDRs back in the router's RIB")
    assert apply(lab).strip() == "nothing to change: the daemons run the objects"


@pytest.mark.parametrize("running_lab", CILIUM_NATIVE, indirect=True, ids=lambda c: "-".join(c))
def test_l2_lease_holder_answers_arp_on_the_wire(running_lab, tmp_path):
    """The router asks for the LoadBalancer IP; a capture on its NIC shows the reply from the
    Lease holder's MAC, and after the Lease moves (an edit, then kube apply) from the new
    holder's."""
    from diag.lab.capture import recording

    lab = running_lab.lab
    lb_ip = kget(lab, "services", "-A")["items"][0]["status"]["loadBalancer"]["ingress"][0]["ip"]
    router_nic = lab.plan.router_nic_for(lab.plan.host("k8s-w1")).name

    def replies(name: str) -> set[tuple[str, str]]:
        pcap = tmp_path / f"{name}.pcap"
        with recording(lab, "router", router_nic, pcap, "arp"):
            _ns(lab, "router", "arping", "-c", "1", "-w", "2", "-i", router_nic, lb_ip,
                check=False)
        text = subprocess.run(["tcpdump", "-r", str(pcap), "-n", "-e"], capture_output=True,
                              text=True, check=True).stdout
        return set(re.findall(rf"^\S+ (\S+) > \S+, ethertype ARP .*Reply {re.escape(lb_ip)} "
                              r"is-at (\S+),", text, re.MULTILINE))

    def mac(node: str) -> str:
        return json.loads(_ns(lab, node, "ip", "-j", "link", "show",
                              lab.hosts[node].cluster_iface).stdout)[0]["address"]

    assert replies("w1") == {(mac("k8s-w1"), mac("k8s-w1"))}

    def move(holder):
        def change(items):
            items[0]["spec"]["holderIdentity"] = holder
        return change

    original = edit(lab, "leases", move("k8s-ctr"))
    try:
        said = apply(lab)
        assert f"k8s-ctr: announces {lb_ip} on {lab.hosts['k8s-ctr'].cluster_iface}" in said
        assert replies("ctr") == {(mac("k8s-ctr"), mac("k8s-ctr"))}
    finally:
        restore(lab, "leases", original)
        said = apply(lab)
    assert f"k8s-w1: announces {lb_ip}" in said
    assert replies("w1-again") == {(mac("k8s-w1"), mac("k8s-w1"))}


@pytest.mark.parametrize("running_lab", CALICO, indirect=True, ids=lambda c: "-".join(c))
def test_calico_runs_bird16_read_by_birdcl(running_lab):
    """calico-node's BIRD 1.6, read the way calico-node is read: bird2's birdcl on the 1.6
    socket, with 1.6's own output (lower-case header, Node_<ip> as Calico names the peer)."""
    lab = running_lab.lab
    socket = str(lab.files.bird_socket("k8s-ctr"))
    router_ip = lab.plan.router_nic_for(lab.plan.host("k8s-ctr")).ip
    protocols = _ns(lab, "k8s-ctr", "birdcl", "-s", socket, "show", "protocols", "all").stdout
    assert protocols.startswith("BIRD 1.6.8 ready.\nname     proto    table    state  since")
    assert re.search(rf"^Node_{router_ip.replace('.', '_')} +BGP +master +up +\S+ +Established",
                     protocols, re.MULTILINE), protocols
    assert f"Neighbor address: {router_ip}" in protocols
    routes = _ns(lab, "k8s-ctr", "birdcl", "-s", socket, "show", "route", "all").stdout
    assert f"BGP.as_path: {lab.plan.router.asn} {lab.hosts['k8s-w0'].asn}" in routes
    # on the host, as a person would: the host's bird and birdc are 1.6, birdcl is bird2's
    inside = lab.exec("k8s-ctr", ["sh", "-c", ("bird --version 2>&1; birdc show status; "
                                               "echo ==; birdcl show protocols")])
    assert "BIRD version 1.6.8" in inside.stdout and "\nBIRD 1.6.8\n" in inside.stdout
    assert inside.stdout.split("==\n", 1)[1].startswith("BIRD 1.6.8 ready.\nname     proto")


@pytest.mark.parametrize("running_lab", [("calico", "native", "default")], indirect=True,
                         ids=lambda c: "-".join(c))
def test_calico_bgppeer_edit_reconfigures_bird(running_lab):
    """The BGPPeer of the TCP-MD5 node names another node: calico-node's BIRD on k8s-w1 drops
    the peer (reconfigured, not restarted) and the router's session goes down; put back, it
    comes back Established."""
    lab = running_lab.lab
    w1 = lab.hosts["k8s-w1"]
    pid = lab.daemons.pid("k8s-w1/bird")

    def rename(node):
        def change(items):
            (peer,) = [o for o in items if o["kind"] == "BGPPeer" and "node" in o["spec"]]
            peer["spec"]["node"] = node
        return change

    original = edit(lab, "calico-bgp", rename("k8s-none"))
    try:
        said = apply(lab)
        assert said.startswith("k8s-w1: BIRD reconfigured"), said
        birdc = ["birdc", "-s", str(lab.files.bird_socket("k8s-w1")), "show", "protocols"]
        assert " BGP " not in _ns(lab, "k8s-w1", *birdc).stdout
        wait(lambda: router_states(lab)[w1.cluster_ip] != "Established", 15,
             "the router's session to k8s-w1 down")
    finally:
        restore(lab, "calico-bgp", original)
        apply(lab)
    wait(lambda: router_states(lab)[w1.cluster_ip] == "Established", 20,
         "the router's session to k8s-w1 back")
    assert lab.daemons.pid("k8s-w1/bird") == pid                # reconfigured, never restarted
    wait(lambda: lab.daemons.routes_ready(), 20, "every node's routes back")


# --- the router's peering variants ------------------------------------------------------------

@pytest.fixture(scope="module")
def variant_labs():
    from labtools import lab_prerequisites

    reason = lab_prerequisites()
    if reason:
        pytest.skip(reason)
    prefix = os.environ.get("DIAG_TEST_LAB_PREFIX", "")
    names = {}
    try:
        for short, (cni, extra) in VARIANTS.items():
            name = prefix + short
            diag_cli("lab", "down", "--name", name)
            proc = diag_cli("lab", "up", "--name", name, "--cni", cni, *extra)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            names[short] = name
        yield names
    finally:
        for name in names.values():
            diag_cli("lab", "down", "--name", name)
            assert leftovers(name) == []


def test_router_peers_by_interface_with_bird2(variant_labs):
    from diag.lab import Lab

    lab = Lab.load(variant_labs["tvbi"])
    w0 = lab.hosts["k8s-w0"]
    nic = lab.plan.router_nic_for(lab.plan.host("k8s-w0")).name
    out = _ns(lab, "router", "vtysh", "--vty_socket", str(lab.files.frr_dir), "-c",
              "show bgp summary json").stdout
    peers = json.loads(out)["ipv4Unicast"]["peers"]
    assert peers[nic]["idType"] == "interface" and peers[nic]["state"] == "Established"
    neighbor = json.loads(_ns(lab, "router", "vtysh", "--vty_socket", str(lab.files.frr_dir),
                              "-c", f"show bgp neighbors {nic} json").stdout)[nic]
    assert neighbor["bgpNeighborAddr"] == w0.cluster_ip
    assert router_prefixes(lab) == {h.pod_cidr for h in lab.hosts.values() if h.role == "node"}
    banner = _ns(lab, "k8s-w0", "birdc", "-s", str(lab.files.bird_socket("k8s-w0")),
                 "show", "status").stdout
    assert banner.startswith("BIRD 2.")
    assert lab.pod_ping("k8s-ctr", "k8s-w0").returncode == 0
    with pytest.raises(Exception, match="peers by interface"):
        from diag.lab import faults
        faults.apply(lab, "bgp-no-advertisement")


def test_router_accepts_dynamic_neighbours_from_a_range(variant_labs):
    from diag.lab import Lab

    lab = Lab.load(variant_labs["tvcr"])
    config = _ns(lab, "router", "vtysh", "--vty_socket", str(lab.files.frr_dir), "-c",
                 "show running-config").stdout
    for segment in ("lan1", "lan2"):
        cidr = lab.plan.segment(segment).cidr
        assert f" bgp listen range {cidr} peer-group K8S-NODES" in config
    text = _ns(lab, "router", "vtysh", "--vty_socket", str(lab.files.frr_dir), "-c",
               "show bgp summary").stdout
    dynamic = set(re.findall(r"^\*(\d+\.\d+\.\d+\.\d+) ", text, re.MULTILINE))
    assert dynamic == {lab.hosts[n].cluster_ip for n in ("k8s-ctr", "k8s-w0")}
    assert "2 dynamic neighbor(s)" in text
    assert set(router_states(lab).values()) == {"Established"}
    assert router_prefixes(lab) == {h.pod_cidr for h in lab.hosts.values() if h.role == "node"}
    assert lab.pod_ping("k8s-w1", "k8s-w0").returncode == 0
