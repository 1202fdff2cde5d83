"""`diag lab up` killed with SIGKILL midway, then `diag lab down` must leave nothing behind.

The kill points are read from the lab's own state file (written before namespaces are created and
after each daemon starts), so the test kills at a known phase rather than after a guessed sleep.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labtools import diag_cli, lab_prerequisites, leftovers, root_namespace_snapshot

pytestmark = pytest.mark.lab

RUN_ROOT = Path(os.environ.get("DIAG_LAB_RUN_DIR", "/run/diag-lab"))


def _state(name: str) -> dict | None:
    try:
        return json.loads((RUN_ROOT / name / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("kill_point", ["namespaces", "daemons"])
def test_down_after_sigkilled_up(kill_point):
    reason = lab_prerequisites()
    if reason:
        pytest.skip(reason)
    name = f"tlk{kill_point[0]}"
    diag_cli("lab", "down", "--name", name)
    root_before = root_namespace_snapshot()
    up = subprocess.Popen([sys.executable, "-m", "diag", "lab", "up", "--name", name],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if kill_point == "namespaces":
            _wait(lambda: os.path.exists(f"/run/netns/{name}-router"), 20, "the first namespace")
        else:   # GoBGP's first connect takes >= 5 s, so "starting" lasts long enough to hit
            _wait(lambda: (s := _state(name)) and s["phase"] == "starting"
                  and len(s["processes"]) >= 6, 30, "daemons started")
        up.send_signal(signal.SIGKILL)
        up.wait(timeout=10)
        state = _state(name)
        assert state is not None and state["phase"] != "ready"
        if kill_point == "daemons":
            assert leftovers(name), "the killed up left nothing to clean: the test proves nothing"
        frr_dirs = [f"/var/tmp/frr/{p['key'].split('/')[1]}.{p['pid']}"
                    for p in state["processes"] if p["key"] in ("router/zebra", "router/bgpd")]
        down = diag_cli("lab", "down", "--name", name)
        assert down.returncode == 0, down.stderr
        assert leftovers(name) == []
        assert [d for d in frr_dirs if os.path.exists(d)] == []
        assert root_namespace_snapshot() == root_before
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        diag_cli("lab", "down", "--name", name)


def test_two_labs_then_down_all():
    """Two labs at once (different --name), then `down --all` removes both.

    `down --all` removes every lab on the host, and other people's labs may be running: so this
    test runs in a private mount namespace with its own empty /run/netns and run directory, where
    only its two labs are visible.
    """
    reason = lab_prerequisites()
    if reason:
        pytest.skip(reason)
    names = ["tlall1", "tlall2"]
    # not under tmp_path: FRR runs as user frr and must be able to traverse to its directory
    private_root = Path(f"/run/diag-lab-test-{os.getpid()}")
    run_root = private_root / "diag-lab"
    script = "\n".join([
        "set -e",
        "mkdir -p /run/netns && mount -t tmpfs -o mode=755 diag-lab-test /run/netns",
        *[f"{sys.executable} -m diag lab up --name {n} --cni calico >/dev/null" for n in names],
        "ip netns list | sort",
        f"{sys.executable} -m diag lab down --all",
        "echo remaining: $(ip netns list | wc -l)",
    ])
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DIAG_LAB_RUN_DIR": str(run_root)})
    try:
        assert proc.returncode == 0, proc.stderr
        listed = proc.stdout.split()
        for n in names:
            assert f"{n}-router" in listed and f"{n}-k8s-w1-pod" in listed
            assert f"lab {n} removed" in proc.stdout
            assert not (run_root / n).exists()
            assert leftovers(n) == []
        assert "remaining: 0" in proc.stdout
    finally:
        shutil.rmtree(private_root, ignore_errors=True)
        for n in names:      # only if the script died half-way: processes of the private labs
            for line in leftovers(n):
                if line.startswith("process "):
                    os.kill(int(line.split()[1].rstrip(":")), signal.SIGKILL)
