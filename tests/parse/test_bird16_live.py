"""BIRD 1.6 run for real (Debian's ``bird`` 1.6 unpacked by .ci/bird1.sh into /opt/diag-bird1)
in a network namespace this test creates and deletes, peering over a veth with GoBGP, read back
with bird2's ``birdcl`` as calico-node does. Oracle: the configuration written here and the
routes GoBGP was told to announce. Skipped (with the reason) without root, the BIRD 1.6 binary,
gobgpd or birdcl."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from diag.parse import bird

BIRD16 = Path(os.environ.get("DIAG_BIRD1_PREFIX", "/opt/diag-bird1")) / "usr/sbin/bird"
PREFIX = os.environ.get("DIAG_TEST_LAB_PREFIX", "dt")[:6]

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(not BIRD16.exists(), reason=f"no BIRD 1.6 at {BIRD16} (run .ci/bird1.sh)"),
    pytest.mark.skipif(not (shutil.which("gobgpd") and shutil.which("gobgp")),
                       reason="gobgpd not installed"),
    pytest.mark.skipif(not shutil.which("birdcl"), reason="birdcl (bird2) not installed"),
]

BIRD_CONF = """router id 10.255.9.1;
listen bgp address 10.255.9.1;
protocol kernel {{ learn; scan time 2; import all; export none; }}
protocol device {{ scan time 2; }}
protocol direct {{ interface "{veth_a}"; }}
protocol static {{ route 10.244.9.0/26 blackhole; }}
filter export_block {{ if ( net ~ 10.244.9.0/26 ) then accept; reject; }}
template bgp mesh {{ local as 65009; import all; export filter export_block;
  connect delay time 1; connect retry time 2; hold time 9; keepalive time 3; }}
protocol bgp Node_10_255_9_2 from mesh {{ neighbor 10.255.9.2 as 65010;
  source address 10.255.9.1; }}
protocol bgp Node_10_255_9_7 from mesh {{ neighbor 10.255.9.7 as 65011;
  source address 10.255.9.1; }}
"""
GOBGP_CONF = """[global.config]
  as = 65010
  router-id = "10.255.9.2"
  local-address-list = ["10.255.9.2"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.255.9.1"
    peer-as = 65009
"""


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=check)


@pytest.fixture
def bird16(tmp_path):
    ns_a, ns_b = f"{PREFIX}b16a", f"{PREFIX}b16b"
    veth_a, veth_b = f"{PREFIX}b6a", f"{PREFIX}b6b"
    procs: list[subprocess.Popen] = []
    try:
        for ns in (ns_a, ns_b):
            _run("ip", "netns", "add", ns)
        _run("ip", "link", "add", veth_a, "netns", ns_a, "type", "veth", "peer", "name", veth_b,
             "netns", ns_b)
        for ns, dev, addr in ((ns_a, veth_a, "10.255.9.1/24"), (ns_b, veth_b, "10.255.9.2/24")):
            _run("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        (tmp_path / "bird.conf").write_text(BIRD_CONF.format(veth_a=veth_a))
        (tmp_path / "gobgpd.toml").write_text(GOBGP_CONF)
        socket = tmp_path / "bird.ctl"
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", ns_b, "gobgpd", "-f", str(tmp_path / "gobgpd.toml"),
             "--api-hosts", "127.0.0.1:50151", "-p"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", ns_a, str(BIRD16), "-f", "-c", str(tmp_path / "bird.conf"),
             "-s", str(socket)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        gobgp = ["ip", "netns", "exec", ns_b, "gobgp", "-p", "50151"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            added = _run(*gobgp, "global", "rib", "add", "10.244.10.0/26", "aspath", "65020",
                         "med", "7", "-a", "ipv4", check=False)
            if added.returncode == 0:
                break
            time.sleep(0.5)
        birdcl = ["ip", "netns", "exec", ns_a, "birdcl", "-s", str(socket)]
        while time.monotonic() < deadline:
            out = _run(*birdcl, "show", "route", "all", check=False).stdout
            if "10.244.10.0/26" in out:
                break
            time.sleep(0.5)
        else:
            pytest.fail("BIRD 1.6 never learned GoBGP's route")
        yield {name: _run(*birdcl, *name.split()).stdout
               for name in ("show protocols all", "show route all", "show status")}
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for ns in (ns_a, ns_b):
            _run("ip", "netns", "del", ns, check=False)


def test_bird16_as_calico_runs_it(bird16):
    assert bird16["show status"].startswith("BIRD 1.6")
    status = bird.parse_status(bird16["show status"]).iloc[0]
    assert status.version.startswith("1.6") and status.router_id == "10.255.9.1"
    peers = bird.parse_protocols(bird16["show protocols all"]).set_index("name")
    up = peers.loc["Node_10_255_9_2"]
    assert (up.peer, up.peer_as, up.state, up.local_address) == ("10.255.9.2", 65010,
                                                                 "ESTABLISHED", "10.255.9.1")
    assert (up.hold_time, up.keepalive, up.received, up.accepted, up.advertised) == (
        9.0, 3.0, 1, 1, 1)
    nobody = peers.loc["Node_10_255_9_7"]
    assert (nobody.peer, nobody.peer_as) == ("10.255.9.7", 65011)
    assert nobody.state in ("ACTIVE", "CONNECT", "IDLE")
    routes = bird.parse_routes(bird16["show route all"])
    learned = routes[~routes.local]
    assert list(learned.prefix) == ["10.244.10.0/26"]
    row = learned.iloc[0]
    assert (row.protocol, row.nexthop, row.as_path, row.med, row.best) == (
        "Node_10_255_9_2", "10.255.9.2", [65010, 65020], 7, True)
    own = routes[routes.protocol == "static1"]
    assert list(own.prefix) == ["10.244.9.0/26"] and own.local.all()
