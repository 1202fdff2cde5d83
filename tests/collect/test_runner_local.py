"""The runner on the local transport: caps, missing commands, fan-out bound, timeouts, summary."""
from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from diag.bundle import open_bundle
from diag.cli import app
from diag.collect.catalogue import CommandSpec
from diag.collect.runner import CollectOptions, collect
from diag.collect.targets import Target
from diag.collect.transport import wrap_argv


def _local(name="local"):
    return Target(name=name, address="localhost", transport="local")


def _options(tmp_path, *specs, targets=None, **kw):
    return CollectOptions(targets=tuple(targets or [_local()]), out=tmp_path / "b",
                          extra_commands=tuple(specs), base=False, **kw)


def test_output_cap_truncates_and_records(tmp_path):
    spec = CommandSpec(id="zeros", argv=("head", "-c", "100000", "/dev/zero"), cap=1000)
    result = collect(_options(tmp_path, spec))
    record = result.manifest["hosts"]["local"]["commands"][0]
    assert (record["bytes"], record["truncated"]) == (1000, True)
    assert open_bundle(tmp_path / "b").read(record["path"]) == b"\0" * 1000


def test_missing_failing_and_hanging_commands_are_outcomes(tmp_path):
    specs = [CommandSpec(id="missing", argv=("no-such-tool-diag",)),
             CommandSpec(id="fails", argv=("false",)),
             CommandSpec(id="hangs", argv=("sleep", "30"), timeout=0.5),
             CommandSpec(id="fine", argv=("echo", "ok"))]
    result = collect(_options(tmp_path, *specs))
    outcomes = {c["id"]: (c["outcome"], c["exit_code"])
                for c in result.manifest["hosts"]["local"]["commands"]}
    assert outcomes == {"missing": ("MISSING", 127), "fails": ("FAILED", 1),
                        "hangs": ("TIMEOUT", 124), "fine": ("OK", 0)}
    assert result.status == "partial"
    assert set(result.partial_reasons) == {"COMMAND_MISSING", "COMMAND_FAILED", "COMMAND_TIMEOUT"}


def test_locale_is_c(tmp_path):
    result = collect(_options(tmp_path, CommandSpec(id="env", argv=("env",))))
    out = open_bundle(tmp_path / "b").read(result.manifest["hosts"]["local"]["commands"][0]["path"])
    assert b"LC_ALL=C\n" in out


def test_fanout_bounds_hosts_in_flight(tmp_path):
    active: list[int] = []

    def listener(states):
        active.append(sum(s.status in ("CONNECTING", "COLLECTING") for s in states.values()))

    targets = [_local(f"h{i}") for i in range(6)]
    spec = CommandSpec(id="nap", argv=("sleep", "0.2"))
    result = collect(_options(tmp_path, spec, targets=targets, fanout=2), listener=listener)
    assert result.status == "complete"
    assert max(active) == 2


def test_wrap_argv_sudo_timeout_locale():
    assert wrap_argv(["ss", "-tanpi"], 5, sudo=True) == [
        "timeout", "-k", "2", "5", "sudo", "-n", "env", "LC_ALL=C", "ss", "-tanpi"]
    assert wrap_argv(["ip", "-j", "addr"], 2.5, sudo=False) == [
        "timeout", "-k", "2", "2.5", "env", "LC_ALL=C", "ip", "-j", "addr"]


def test_cli_local_collect_text_summary(tmp_path):
    result = CliRunner().invoke(app, ["collect", "local", "-o", str(tmp_path / "b")])
    assert result.exit_code in (0, 3), result.stdout
    assert "bundle: " in result.stdout and "local" in result.stdout
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["status"] in ("complete", "partial")
    assert {"ip-addr", "ss-tanpi", "nstat", "sysctl-net"} <= {
        c["id"] for c in manifest["hosts"]["local"]["commands"]}


def test_no_targets_is_a_usage_error():
    result = CliRunner().invoke(app, ["collect"])
    assert result.exit_code == 2


def test_unprivileged_user_wraps_privileged_commands_in_sudo_n(tmp_path):
    """A real run as uid 65534 (privileges dropped after imports): root-only commands go through
    `sudo -n`, and when that cannot work the failure is recorded, not fatal."""
    import os
    import subprocess
    import sys

    if os.geteuid() != 0:
        import pytest
        pytest.skip("needs root to drop to another uid")
    import shutil
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="diag-unpriv-"))  # pytest's tmp is root-only
    tmp_path.chmod(0o777)
    script = f"""
import os
from pathlib import Path
from diag.collect.runner import CollectOptions, collect
from diag.collect.targets import Target
import diag.collect.redact, diag.collect.detect, diag.collect.capture, json, asyncio.subprocess
os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
result = collect(CollectOptions(targets=(Target("local", "localhost", transport="local"),),
                                out=Path({str(tmp_path / "b")!r})))
print(result.status)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=str(tmp_path))
    try:
        assert proc.returncode == 0, proc.stderr
        host = json.loads((tmp_path / "b" / "manifest.json").read_text())["hosts"]["local"]
    finally:
        shutil.rmtree(tmp_path)
    assert host["uid"] == 65534 and host["sudo"] is True
    commands = {c["id"]: c for c in host["commands"]}
    assert commands["ss-tanpi"]["run_as"] == "sudo -n"
    assert commands["ip-addr"]["run_as"] == "user" and commands["ip-addr"]["outcome"] == "OK"
    if commands["ss-tanpi"]["outcome"] != "OK":
        assert "sudo" in commands["ss-tanpi"]["stderr"]


def test_inventory_declared_model_reaches_the_manifest(tmp_path):
    inventory = tmp_path / "inv.toml"
    inventory.write_text('[[hosts]]\nname = "me"\ntransport = "local"\nrole = "router"\n'
                         'cluster_iface = "eth1"\nlb_ips = ["192.0.2.10"]\n')
    result = CliRunner().invoke(app, ["collect", "-i", str(inventory), "-o",
                                      str(tmp_path / "b"), "--format", "json"])
    assert result.exit_code in (0, 3), result.stdout
    host = open_bundle(tmp_path / "b").manifest["hosts"]["me"]
    assert host["declared"] == {"role": "router", "cluster_iface": "eth1",
                                "lb_ips": ["192.0.2.10"]}
    assert host["transport"] == "local"
