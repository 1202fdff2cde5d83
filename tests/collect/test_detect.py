"""Daemon detection from real `ss -H -l -n -p -A tcp,unix_stream` output of the lab's hosts."""
from __future__ import annotations

from pathlib import Path

from diag.collect.catalogue import (daemon_commands, gobgp_adj_in_commands, nsenter_prefix,
                                    parse_roots, root_command)
from diag.collect.detect import detect

FIXTURES = Path(__file__).parent.parent / "fixtures" / "collect"


def _read(name):
    return (FIXTURES / name).read_text()


def test_frr_router_with_its_vty_socket_directory():
    found = detect(_read("ss_listeners_lab_router_frr.txt"))
    assert found == {"FRR": {"vty_socket": "/run/diag-lab/dcman/hosts/router/frr",
                             "pid": "18232"}}   # bgpd's, not zebra's (listed first)
    argv = daemon_commands("FRR", found["FRR"])[0].argv
    assert argv[:3] == ("vtysh", "--vty_socket", "/run/diag-lab/dcman/hosts/router/frr")


def test_bird_node_with_its_control_socket():
    found = detect(_read("ss_listeners_lab_node_bird.txt"))
    assert found == {"BIRD": {"socket": "/run/diag-lab/dcman/hosts/k8s-ctr/bird/bird.ctl",
                              "pid": "18219"}}
    assert daemon_commands("BIRD", found["BIRD"])[0].argv[:3] == (
        "birdc", "-s", "/run/diag-lab/dcman/hosts/k8s-ctr/bird/bird.ctl")


def test_gobgp_node_that_only_dials_out():
    assert detect(_read("ss_listeners_lab_node_gobgp.txt")) == {"GOBGP": {"pid": "32026"}}


def test_cilium_and_calico_agents_by_process_name():
    # constructed in ss's format: these agents cannot run in the lab (no Debian package)
    lines = ('tcp LISTEN 0 4096 127.0.0.1:9234 0.0.0.0:* users:(("cilium-agent",pid=10,fd=7))\n'
             'tcp LISTEN 0 4096 127.0.0.1:9099 0.0.0.0:* users:(("calico-node",pid=11,fd=8))\n')
    assert detect(lines) == {"CILIUM": {"pid": "10"}, "CALICO": {"pid": "11"}}


def test_calico_bird_and_bird6_sockets_and_birdcl_in_a_container():
    # constructed in ss's format from calico-node's layout (bird and bird6, /var/run/calico)
    lines = ('u_str LISTEN 0 8 /var/run/calico/bird.ctl 9001 * 0 users:(("bird",pid=40,fd=3))\n'
             'u_str LISTEN 0 8 /var/run/calico/bird6.ctl 9002 * 0 users:(("bird6",pid=41,fd=3))\n')
    found = detect(lines)
    assert found == {"BIRD": {"socket": "/var/run/calico/bird.ctl",
                              "socket6": "/var/run/calico/bird6.ctl", "pid": "40"}}
    options = dict(found["BIRD"], client="birdcl")
    specs = daemon_commands("BIRD", options, nsenter_prefix("40"))
    assert [s.id for s in specs] == ["bird-protocols-all", "bird-route-all", "bird-status",
                                     "bird6-protocols-all", "bird6-route-all", "bird6-status"]
    assert specs[0].argv == ("nsenter", "--target", "40", "--mount", "--", "birdcl", "-s",
                             "/var/run/calico/bird.ctl", "show", "protocols", "all")
    assert specs[3].argv[6:8] == ("-s", "/var/run/calico/bird6.ctl")
    assert {s.reached for s in specs} == {"nsenter"} and all(s.root for s in specs)


def test_nsenter_takes_only_a_pid():
    import pytest

    with pytest.raises(ValueError):
        nsenter_prefix("1; reboot")


def test_roots_tell_a_container_from_a_private_mount_namespace():
    # stat -L -c '%n %d:%i' on a host: /proc/self/root and a containerised daemon's root
    own, by_pid = parse_roots(b"/proc/self/root 2049:2\n/proc/40/root 71:3345\n"
                              b"/proc/77/root 2049:2\n")
    assert own == "2049:2" and by_pid == {"40": "71:3345", "77": "2049:2"}
    assert root_command(["40", "x"]).argv == ("stat", "-L", "-c", "%n %d:%i",
                                              "/proc/self/root", "/proc/40/root")


def test_unsafe_socket_paths_are_not_passed_on():
    line = 'u_str LISTEN 0 5 /run/x;reboot/bgpd.vty 1 * 0 users:(("bgpd",pid=1,fd=3))\n'
    assert detect(line) == {"FRR": {"pid": "1"}}


def test_gobgp_adj_in_only_for_neighbour_addresses():
    neighbors = (FIXTURES / "gobgp_neighbor.json").read_bytes()
    specs = gobgp_adj_in_commands(neighbors, {})
    assert [s.argv for s in specs] == [("gobgp", "neighbor", "198.51.100.1", "adj-in", "-j")]
    assert gobgp_adj_in_commands(b'[{"conf": {"neighbor_address": "1.1.1.1; reboot"}}]', {}) == []
