"""Captured frames get the capturing host's interface names. Oracle: tshark's own reading of the
SLL2 ifindex, mapped through the host's ``ip -j link`` JSON with the json module alone."""
from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import tarfile

import pytest

from tests.facts.helpers import BUNDLES, facts, truth

CASE = "cilium-vxlan-alt"


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_iface_names_match_tshark_and_ip_link(tmp_path):
    with tarfile.open(BUNDLES / f"{CASE}.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    root = tmp_path / CASE
    f = facts(CASE)
    checked = 0
    for host in truth(CASE)["hosts"]:
        pcap = root / "hosts" / host / "capture.pcap"
        links = json.loads((root / "hosts" / host / "ip-link.out").read_text())
        names = {link["ifindex"]: link["ifname"] for link in links}
        out = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "frame.number",
                              "-e", "sll.ifindex"], capture_output=True, text=True, check=True)
        expected = {int(n): names.get(int(i)) for n, i in
                    (line.split("\t") for line in out.stdout.splitlines()) if i}
        rows = f.tables["packets"][f.tables["packets"].host == host]
        got = dict(zip(rows.frame.astype(int), rows.iface))
        assert got == expected
        checked += len(expected)
    assert checked > 50


def test_wire_tables_carry_host_and_iface():
    t, f = truth(CASE), facts(CASE)
    arp = f.tables["arp"]
    probe = arp[(arp.target_ip == t["lb_probe"]) & (arp.op == "request")]
    # a broadcast on the first node subnet: heard by every host on it, each on its NIC there
    subnet = ipaddress.ip_network(t["lb_probe"] + "/24", strict=False)
    on_subnet = {n: h["cluster_iface"] for n, h in t["hosts"].items()
                 if ipaddress.ip_address(h["cluster_ip"]) in subnet}
    assert set(probe.host) == set(on_subnet) and len(on_subnet) == 3
    assert set(zip(probe.host, probe.iface)) == set(on_subnet.items())
    assert set(probe[probe.host == "router"].direction) == {"out"}
    tunnels = f.tables["wire_tunnels"]
    assert not tunnels.empty and tunnels.iface.notna().all()
    nodes = {n: h for n, h in t["hosts"].items() if h["role"] == "node"}
    for host, iface in zip(tunnels.host, tunnels.iface):
        if host in nodes:
            assert iface == nodes[host]["cluster_iface"]
    # the router forwards node-to-node VXLAN between its two subnets: seen on both NICs
    assert len(set(tunnels[tunnels.host == "router"].iface)) == 2
    assert set(f.tables["bgp_messages"].host) == set(t["hosts"])


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_pcapng_interface_names_are_kept():
    from diag.facts import load_facts
    from tests.facts.helpers import FIXTURES

    pcap = FIXTURES / "pcap-facts" / "two-ifaces.pcapng"
    out = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "frame.number",
                          "-e", "frame.interface_name"], capture_output=True, text=True,
                         check=True)
    expected = {int(n): name for n, name in (line.split("\t") for line in out.stdout.splitlines())}
    f = load_facts(pcap)
    packets = f.tables["packets"]
    assert dict(zip(packets.frame.astype(int), packets.iface)) == expected
    assert set(expected.values()) == {"veth1", "veth3"}
    arp = f.tables["arp"]
    assert set(zip(arp.target_ip, arp.iface)) >= {("192.0.2.2", "veth1"),
                                                  ("198.51.100.2", "veth3")}


def test_lldp_neighbours_reach_the_facts(tmp_path):
    """The decoder's LLDP rows become the facts' ``lldp`` table with the capturing host, the
    interface it heard them on, and every neighbour the crafted capture announced."""
    from diag.facts.packets import capture_tables
    from tests.craft.families import build_lldp

    cap = build_lldp(tmp_path)
    tables, errors = capture_tables([("k8s-w0", cap.path)], None)
    assert not errors
    lldp = tables["lldp"]
    assert set(lldp.host) == {"k8s-w0"} and len(lldp) == len(cap.truth["lldp"])
    rows = {int(r["frame"]): r for r in lldp.to_dict("records")}
    for frame, want in cap.truth["lldp"].items():
        assert {k: rows[frame][k] for k in want} == want, frame
