"""End to end: `diag lab up`, then the collect command the lab prints, against real daemons.

Two labs for this module (cilium/native/default, calico/vxlan/alt). Checks: a complete bundle from every node and the router with
the routing daemons detected and their JSON collected; one host down gives a partial bundle that
says so; the lab's TCP-MD5 password appears in no bundle file and not in the archive's bytes.
"""
from __future__ import annotations

import gzip
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from diag.bundle import open_bundle
from diag.collect.redact import ss_escaped

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
DAEMON = {"cilium": "GOBGP", "calico": "BIRD"}


@pytest.fixture(scope="module", params=[("cilium", "native", "default"),
                                        ("calico", "vxlan", "alt")], ids="-".join)
def lab(request):
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    from diag.errors import DiagError
    from diag.lab import Lab, teardown

    cni, mode, addressing = request.param
    name = f"dc{cni[:2]}{os.getpid() % 10000}"
    try:
        running = Lab.up(name, cni=cni, mode=mode, addressing=addressing)
    except DiagError as err:
        pytest.skip(f"lab unavailable: {err.message}")
    try:
        yield running
    finally:
        teardown(name)


def _collect(lab, out: Path, *extra: str) -> tuple[int, dict]:
    argv = shlex.split(lab.collect_command())
    assert argv[:2] == ["diag", "collect"]
    proc = subprocess.run([sys.executable, "-m", "diag", *argv[1:], "-o", str(out), "--format",
                           "json", "--archive", *extra], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    return proc.returncode, json.loads(proc.stdout)


def test_lab_collect_is_complete_and_holds_the_daemons_json(lab, tmp_path):
    code, summary = _collect(lab, tmp_path / "b")
    assert code == 0, json.dumps(summary, indent=1)
    hosts = {h["name"]: h for h in summary["hosts"]}
    assert set(hosts) == set(lab.hosts)
    bundle = open_bundle(tmp_path / "b.tar.gz", tmp_path / "x")
    assert bundle.problems == () and not bundle.partial
    for name, info in lab.hosts.items():
        record = bundle.manifest["hosts"][name]
        expected = "FRR" if info.role == "router" else DAEMON[lab.cni]
        assert expected in record["daemons"], (name, record["daemons"])
        hostname = bundle.read(f"hosts/{name}/hostname.out").decode().strip()
        assert hostname == lab.exec(name, ["hostname"]).stdout.strip()
    # the router's FRR JSON, compared with the lab's own view of its BGP sessions
    router = next(n for n, info in lab.hosts.items() if info.role == "router")
    summary_json = json.loads(bundle.read(f"hosts/{router}/frr-bgp-summary.out"))
    peers = summary_json["ipv4Unicast"]["peers"]
    established = {p.peer for p in lab.daemons.bgp_state() if p.host == router
                   and p.state.lower().startswith("established")}
    assert {ip for ip, peer in peers.items() if peer["state"] == "Established"} == established
    if lab.cni == "cilium":
        node = next(n for n in lab.hosts if n != router)
        ids = {c["id"] for c in bundle.manifest["hosts"][node]["commands"]}
        assert "gobgp-neighbor" in ids and any(i.startswith("gobgp-adj-in-") for i in ids)


def test_lab_md5_password_is_nowhere_in_the_bundle(lab, tmp_path):
    code, _ = _collect(lab, tmp_path / "b")
    assert code == 0
    password = lab.files.md5_password.encode()
    forms = {password, ss_escaped(password)}
    for path in (tmp_path / "b").rglob("*"):
        if path.is_file():
            assert not any(form in path.read_bytes() for form in forms), path
    archive = (tmp_path / "b.tar.gz").read_bytes()
    assert not any(form in archive or form in gzip.decompress(archive) for form in forms)
    peer = lab.files.md5_peers[0]
    assert b"md5keys:" in (tmp_path / "b" / "hosts" / peer / "ss-tanpi.out").read_bytes()


def test_lab_with_one_host_down_gives_a_partial_bundle_that_says_so(lab, tmp_path):
    down = next(n for n, info in lab.hosts.items() if info.role != "router")
    sshd_pid = int((lab.files.host_dir(down) / "sshd.pid").read_text())
    os.kill(sshd_pid, signal.SIGSTOP)  # accepts nothing: a host that does not answer
    try:
        code, summary = _collect(lab, tmp_path / "b", "--connect-timeout", "3")
    finally:
        os.kill(sshd_pid, signal.SIGCONT)
    assert code == 3
    hosts = {h["name"]: h for h in summary["hosts"]}
    assert hosts[down]["reachability"] in ("CONNECT_TIMEOUT", "UNREACHABLE")
    assert all(h["reachability"] == "OK" for n, h in hosts.items() if n != down)
    manifest = open_bundle(tmp_path / "b").manifest
    assert manifest["status"] == "partial" and "HOST_UNREACHED" in manifest["partial_reasons"]
