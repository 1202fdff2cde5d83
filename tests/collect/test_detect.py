"""Daemon detection from real `ss -H -l -n -p -A tcp,unix_stream` output of the lab's hosts."""
from __future__ import annotations

from pathlib import Path

from diag.collect.catalogue import daemon_commands, gobgp_adj_in_commands
from diag.collect.detect import detect

FIXTURES = Path(__file__).parent.parent / "fixtures" / "collect"


def _read(name):
    return (FIXTURES / name).read_text()


def test_frr_router_with_its_vty_socket_directory():
    found = detect(_read("ss_listeners_lab_router_frr.txt"))
    assert found == {"FRR": {"vty_socket": "/run/diag-lab/dcman/hosts/router/frr"}}
    argv = daemon_commands("FRR", found["FRR"])[0].argv
    assert argv[:3] == ("vtysh", "--vty_socket", "/run/diag-lab/dcman/hosts/router/frr")


def test_bird_node_with_its_control_socket():
    found = detect(_read("ss_listeners_lab_node_bird.txt"))
    assert found == {"BIRD": {"socket": "/run/diag-lab/dcman/hosts/k8s-ctr/bird/bird.ctl"}}
    assert daemon_commands("BIRD", found["BIRD"])[0].argv[:3] == (
        "birdc", "-s", "/run/diag-lab/dcman/hosts/k8s-ctr/bird/bird.ctl")


def test_gobgp_node_that_only_dials_out():
    assert detect(_read("ss_listeners_lab_node_gobgp.txt")) == {"GOBGP": {}}


def test_cilium_and_calico_agents_by_process_name():
    # constructed in ss's format: these agents cannot run in the lab (no Debian package)
    lines = ('tcp LISTEN 0 4096 127.0.0.1:9234 0.0.0.0:* users:(("cilium-agent",pid=10,fd=7))\n'
             'tcp LISTEN 0 4096 127.0.0.1:9099 0.0.0.0:* users:(("calico-node",pid=11,fd=8))\n')
    assert detect(lines) == {"CILIUM": {}, "CALICO": {}}


def test_unsafe_socket_paths_are_not_passed_on():
    line = 'u_str LISTEN 0 5 /run/x;reboot/bgpd.vty 1 * 0 users:(("bgpd",pid=1,fd=3))\n'
    assert detect(line) == {"FRR": {}}


def test_gobgp_adj_in_only_for_neighbour_addresses():
    neighbors = (FIXTURES / "gobgp_neighbor.json").read_bytes()
    specs = gobgp_adj_in_commands(neighbors, {})
    assert [s.argv for s in specs] == [("gobgp", "neighbor", "198.51.100.1", "adj-in", "-j")]
    assert gobgp_adj_in_commands(b'[{"conf": {"neighbor_address": "1.1.1.1; reboot"}}]', {}) == []
