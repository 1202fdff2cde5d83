"""`diag collect` against real sshd in network namespaces: outcomes, host keys, timeouts, captures.

Oracles are independent of diag: the kernel (commands run directly in the namespace), the sshd
host key files, scapy reading the pcaps, /proc for leftover processes.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scapy.all import PcapReader
from typer.testing import CliRunner

from diag.bundle import open_bundle
from diag.cli import app

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str):
    result = CliRunner().invoke(app, ["collect", *args])
    return result.exit_code, result.stdout


def collect_json(harness, out: Path, *args: str):
    code, stdout = run_cli("--ssh-config", str(harness.ssh_config), "-o", str(out),
                           "--format", "json", "--connect-timeout", "5", *args)
    return code, json.loads(stdout[stdout.index("{"):]) if "{" in stdout else stdout


def hosts_by_name(summary):
    return {h["name"]: h for h in summary["hosts"]}


def wait_for(predicate, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_good_host_and_down_host_give_a_partial_bundle(harness, tmp_path):
    good = harness.add("good")
    harness.add("down", start=False)
    code, summary = collect_json(harness, tmp_path / "b", "good", "down", "--archive")
    assert code == 3
    hosts = hosts_by_name(summary)
    assert hosts["down"]["reachability"] == "UNREACHABLE"
    assert hosts["good"]["reachability"] == "OK" and hosts["good"]["failed"] == []
    assert summary["status"] == "partial" and "HOST_UNREACHED" in summary["partial_reasons"]
    bundle = open_bundle(tmp_path / "b")
    assert bundle.problems == ()
    # the bundle holds what the kernel says, read independently in the namespace
    direct = json.loads(subprocess.run(good.ns("ip", "-j", "-d", "link"), capture_output=True,
                                       check=True).stdout)
    collected = json.loads(bundle.read("hosts/good/ip-link.out"))
    assert [link["ifname"] for link in collected] == [link["ifname"] for link in direct]
    record = {c["id"]: c for c in bundle.manifest["hosts"]["good"]["commands"]}
    assert record["ip-link"]["argv"] == ["ip", "-j", "-d", "link"]
    assert record["ip-link"]["exit_code"] == 0 and record["ip-link"]["sha256"]
    # same kernel clock on both ends: the true offset is 0, and by construction the estimate is
    # within its uncertainty (the remote reading lies between our send and receive)
    host = bundle.manifest["hosts"]["good"]
    assert abs(host["clock_offset_s"]) <= host["clock_uncertainty_s"] + 1e-4
    assert host["clock_uncertainty_s"] < 0.5
    assert open_bundle(tmp_path / "b.tar.gz", tmp_path / "x").problems == ()


def test_every_host_reached_gives_a_complete_bundle_and_exit_0(harness, tmp_path):
    harness.add("n1")
    harness.add("n2")
    code, summary = collect_json(harness, tmp_path / "b", "n1", "n2", "--probe", "127.0.0.1")
    assert code == 0, summary
    assert summary["status"] == "complete"
    route = json.loads(open_bundle(tmp_path / "b").read("hosts/n1/ip-route-get-127.0.0.1.out"))
    assert route[0]["dst"] == "127.0.0.1"


def test_wrong_key_is_auth_failed(harness, tmp_path):
    harness.add("h")
    wrong = tmp_path / "wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    config = harness.ssh_config.read_text().replace(str(harness.user_key), str(wrong))
    harness.ssh_config.write_text(config)
    code, summary = collect_json(harness, tmp_path / "b", "h")
    assert code == 3
    assert hosts_by_name(summary)["h"]["reachability"] == "AUTH_FAILED"


def test_unknown_host_key_refused_then_accepted_with_opt_in(harness, tmp_path):
    host = harness.add("new")
    harness.write_config(known=[])
    code, summary = collect_json(harness, tmp_path / "b1", "new")
    assert code == 3
    assert hosts_by_name(summary)["new"]["reachability"] == "HOST_KEY_UNKNOWN"
    assert harness.known_hosts.read_text() == ""

    code, summary = collect_json(harness, tmp_path / "b2", "new", "--accept-new-host-keys")
    assert code == 0, summary
    recorded = harness.known_hosts.read_text().split()
    key_type, key_b64 = host.host_public_key().split()[:2]
    assert recorded == ["new", key_type, key_b64]
    assert open_bundle(tmp_path / "b2").manifest["hosts"]["new"]["host_key_accepted_new"]


def test_changed_host_key_refused_even_with_opt_in(harness, tmp_path):
    harness.add("h")
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = "h " + " ".join(other.with_suffix(".pub").read_text().split()[:2]) + "\n"
    harness.known_hosts.write_text(known)
    for extra in ((), ("--accept-new-host-keys",)):
        code, summary = collect_json(harness, tmp_path / f"b{len(extra)}", "h", *extra)
        assert code == 3
        assert hosts_by_name(summary)["h"]["reachability"] == "HOST_KEY_CHANGED"
    assert harness.known_hosts.read_text() == known


def _fake_tool_dir(tmp_path, name, body):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text("#!/bin/sh\n" + body + "\n")
    tool.chmod(0o755)
    return f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin"


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
                    if state != "Z":
                        found.append(int(entry))
            except OSError:
                pass
    return found


def test_hanging_command_times_out_with_rc_124_and_is_killed(harness, tmp_path):
    marker = f"{600 + os.getpid() % 1000}.{int(time.time()) % 1000:03d}"
    path = _fake_tool_dir(tmp_path, "nstat", f"exec sleep {marker}")
    harness.add("slow", env_path=path)
    started = time.monotonic()
    code, summary = collect_json(harness, tmp_path / "b", "slow", "--command-timeout", "2")
    assert time.monotonic() - started < 20
    assert code == 3
    assert hosts_by_name(summary)["slow"]["failed"] == [
        {"id": "nstat", "outcome": "TIMEOUT", "exit_code": 124}]
    wait_for(lambda: not _processes_with(f"sleep {marker}"), 10, "the hung command to be killed")


def test_missing_command_is_recorded_as_127(harness, tmp_path):
    harness.add("bare", env_path=_fake_tool_dir(tmp_path, "nothing", "true")
                .replace(":/usr/sbin:/usr/bin:/sbin:/bin", ":/usr/bin:/bin"))
    code, summary = collect_json(harness, tmp_path / "b", "bare")
    assert code == 3
    failed = {f["id"]: f for f in hosts_by_name(summary)["bare"]["failed"]}
    # sysctl lives in /usr/sbin only; bridge and ip are found through /usr/bin or /bin links
    assert failed["sysctl-net"] == {"id": "sysctl-net", "outcome": "MISSING", "exit_code": 127}


def test_no_shell_injection_through_arguments(harness, tmp_path):
    import asyncio

    from diag.collect.ssh import SshOptions, SshTransport
    from diag.collect.targets import parse_target

    harness.add("h")
    mark = tmp_path / "pwned"

    async def run():
        transport = SshTransport(parse_target("h"), SshOptions(config=harness.ssh_config))
        await transport.connect()
        try:
            return await transport.run(["echo", f"$(touch {mark}); `touch {mark}`; touch {mark}"],
                                       timeout=5, cap=1000)
        finally:
            await transport.close()

    result = asyncio.run(run())
    assert result.rc == 0 and b"$(touch" in result.stdout
    assert not mark.exists()
    # a hostile BPF filter reaches tcpdump as one argument and fails there, harmlessly
    code, summary = collect_json(harness, tmp_path / "b", "h", "--capture", "1s", "--iface", "lo",
                                 "--filter", f"port 179; touch {mark}")
    assert code == 3 and not mark.exists()
    capture = next(f for f in hosts_by_name(summary)["h"]["failed"] if f["id"] == "capture")
    assert capture["outcome"] == "FAILED"
    code, _ = run_cli("--dry-run", "h", "--filter", "-w /tmp/x", "--capture", "1")
    assert code == 2
    code, _ = run_cli("--dry-run", "h", "--probe", "1.1.1.1;reboot")
    assert code == 2


def _traffic(host, seconds=30):
    return subprocess.Popen(host.ns("ping", "-q", "-i", "0.05", "-w", str(seconds), "127.0.0.1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_capture_is_bounded_streamed_and_bracketed(harness, tmp_path):
    host = harness.add("cap")
    pinger = _traffic(host)
    try:
        code, summary = collect_json(harness, tmp_path / "b", "cap", "--capture", "2s",
                                     "--iface", "lo", "--filter", "icmp", "--max-packets", "10")
    finally:
        pinger.kill()
        pinger.wait()
    assert code == 0, summary
    bundle = open_bundle(tmp_path / "b")
    packets = list(PcapReader(str(bundle.path("hosts/cap/capture.pcap"))))
    assert len(packets) == 10  # bounded on the remote side by -c
    assert all(p.haslayer("ICMP") for p in packets)
    ids = {c["id"] for c in bundle.manifest["hosts"]["cap"]["commands"]}
    assert {"ip-neigh.after-capture", "nstat.after-capture", "capture"} <= ids


def test_capture_cut_by_max_bytes_is_a_valid_pcap(harness, tmp_path):
    host = harness.add("cap")
    pinger = _traffic(host)
    try:
        code, summary = collect_json(harness, tmp_path / "b", "cap", "--capture", "20s",
                                     "--iface", "lo", "--max-bytes", "2K")
    finally:
        pinger.kill()
        pinger.wait()
    assert code == 0, summary  # a bound reached is not a failure
    bundle = open_bundle(tmp_path / "b")
    capture = next(c for c in bundle.manifest["hosts"]["cap"]["commands"] if c["id"] == "capture")
    assert capture["truncated"] is True and capture["bytes"] <= 2048
    assert capture["duration_s"] < 15  # stopped at the bound, not at the end of the duration
    packets = list(PcapReader(str(bundle.path(capture["path"]))))
    assert len(packets) == capture["packets"] > 0


def test_sshd_killed_during_capture_keeps_the_partial_capture(harness, tmp_path):
    victim = harness.add("victim")
    harness.add("other")
    pinger = _traffic(victim)
    out = tmp_path / "b"
    process = subprocess.Popen(
        [sys.executable, "-m", "diag", "collect", "--ssh-config", str(harness.ssh_config),
         "-o", str(out), "--format", "json", "victim", "other", "--capture", "6s",
         "--iface", "lo"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        partial = out / "hosts" / "victim" / ".capture.pcap.partial"
        wait_for(lambda: partial.exists() and partial.stat().st_size > 500, 30, "capture bytes")
        harness.kill_sshd(victim)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        pinger.kill()
        pinger.wait()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 3, stderr
    bundle = open_bundle(out)
    assert bundle.problems == ()
    victim_record = bundle.manifest["hosts"]["victim"]
    assert victim_record["lost"] is True
    capture = next(c for c in victim_record["commands"] if c["id"] == "capture")
    assert capture["outcome"] == "CONNECTION_LOST"
    packets = list(PcapReader(str(bundle.path(capture["path"]))))
    assert len(packets) == capture["packets"] > 0
    other = {c["id"]: c for c in bundle.manifest["hosts"]["other"]["commands"]}
    assert other["capture"]["outcome"] == "OK"


def test_ctrl_c_leaves_a_valid_partial_bundle_and_exit_130(harness, tmp_path):
    host = harness.add("h")
    pinger = _traffic(host)
    out = tmp_path / "b"
    process = subprocess.Popen(
        [sys.executable, "-m", "diag", "collect", "--ssh-config", str(harness.ssh_config),
         "-o", str(out), "h", "--capture", "60s", "--iface", "lo", "--archive"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        partial = out / "hosts" / "h" / ".capture.pcap.partial"
        wait_for(lambda: partial.exists() and partial.stat().st_size > 200, 30, "capture bytes")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        pinger.kill()
        pinger.wait()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert b"interrupted" in stderr and f"partial bundle left in {out}".encode() in stderr
    bundle = open_bundle(out)
    assert bundle.problems == ()
    assert bundle.manifest["status"] == "partial"
    assert "INTERRUPTED" in bundle.manifest["partial_reasons"]
    capture = next(c for c in bundle.manifest["hosts"]["h"]["commands"] if c["id"] == "capture")
    assert len(list(PcapReader(str(bundle.path(capture["path"]))))) == capture["packets"] > 0
    assert open_bundle(tmp_path / "b.tar.gz", tmp_path / "x").manifest["status"] == "partial"


def test_global_deadline_finishes_a_partial_bundle(harness, tmp_path):
    harness.add("stuck", env_path=_fake_tool_dir(tmp_path, "nstat", "exec sleep 120"))
    started = time.monotonic()
    code, summary = collect_json(harness, tmp_path / "b", "stuck", "--deadline", "4s")
    assert time.monotonic() - started < 15
    assert code == 3 and "DEADLINE" in summary["partial_reasons"]
    assert open_bundle(tmp_path / "b").manifest["hosts"]["stuck"]["deadline"] is True


def test_dry_run_lists_commands_and_contacts_nothing(tmp_path):
    code, stdout = run_cli("--dry-run", "--format", "json", "nowhere.invalid", "local",
                           "--probe", "192.0.2.1", "--capture", "5s")
    assert code == 0
    plan = json.loads(stdout)
    assert [h["host"] for h in plan["hosts"]] == ["nowhere.invalid", "local"]
    ids = [c["id"] for c in plan["hosts"][0]["commands"]]
    assert "ip-route-get-192.0.2.1" in ids and "capture" in ids and "frr-bgp-summary" in ids
    assert not Path(plan["out"]).exists()


def test_tcp_md5_key_from_real_ss_never_reaches_the_bundle(harness, tmp_path):
    import gzip
    import secrets

    from diag.collect.redact import ss_escaped

    host = harness.add("md5")
    key = f"Md5!{secrets.token_hex(6)}"
    pair = subprocess.Popen(host.ns(sys.executable, str(Path(__file__).parent / "md5_sockets.py"),
                                    key, "1179"), stdout=subprocess.PIPE, text=True)
    try:
        assert pair.stdout.readline().strip() == "ready"
        # oracle: this iproute2 really prints the key somewhere in its output
        direct = subprocess.run(host.ns("ss", "-tanpi"), capture_output=True, check=True).stdout
        assert b"md5keys:127.0.0.1/32=" in direct and ss_escaped(key.encode()) in direct
        code, summary = collect_json(harness, tmp_path / "b", "md5", "--archive")
    finally:
        pair.kill()
        pair.wait()
    assert code == 0, summary
    forms = {key.encode(), ss_escaped(key.encode())}
    files = [p for p in (tmp_path / "b").rglob("*") if p.is_file()]
    assert len(files) > 15
    for path in files:
        assert not any(form in path.read_bytes() for form in forms), path
    archive = (tmp_path / "b.tar.gz").read_bytes()
    assert not any(form in archive or form in gzip.decompress(archive) for form in forms)
    bundle = open_bundle(tmp_path / "b")
    assert bundle.read("hosts/md5/ss-tanpi.out").count(b"md5keys:127.0.0.1/32=") >= 2
    report = json.loads(bundle.read("redactions.json"))["redactions"]
    assert any(r["command"] == "ss-tanpi" and r["rule"] == "SS_STRAY_BYTES" for r in report)


def test_proxyjump_from_the_ssh_config_is_honoured(harness, tmp_path):
    """`inner` listens only inside the bastion's namespace: reachable through ProxyJump alone."""
    bastion = harness.add("bastion")
    key = tmp_path / "inner_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    config = harness.sshd_config(bastion).read_text().replace("Port 22\n", "Port 2222\n")
    config = config.replace(str(bastion.host_key), str(key)).replace(
        f"{bastion.dir}/sshd.pid", f"{tmp_path}/inner.pid")
    (tmp_path / "inner_sshd_config").write_text(config)
    inner = subprocess.Popen(bastion.ns("/usr/sbin/sshd", "-D", "-e", "-f",
                                        str(tmp_path / "inner_sshd_config")),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: "127.0.0.1:2222" in subprocess.run(
            bastion.ns("ss", "-Htln"), capture_output=True, text=True).stdout, 10, "inner sshd")
        with open(harness.ssh_config, "a") as handle:
            handle.write(f"\nHost inner\n  HostName 127.0.0.1\n  Port 2222\n  User root\n"
                         f"  IdentityFile {harness.user_key}\n"
                         f"  UserKnownHostsFile {harness.known_hosts}\n"
                         f"  HostKeyAlias inner\n  ProxyJump bastion\n")
        with open(harness.known_hosts, "a") as handle:
            handle.write("inner " + " ".join(key.with_suffix(".pub").read_text().split()[:2])
                         + "\n")
        code, summary = collect_json(harness, tmp_path / "b", "inner")
    finally:
        inner.kill()
        inner.wait()
    assert code == 0, summary
    assert hosts_by_name(summary)["inner"]["reachability"] == "OK"


@pytest.fixture
def unprivileged_user(harness):
    """A throwaway account (uid >= 1000, /bin/sh, key login only: its password field ``*``,
    not locked) whose home holds a copy of the harness's authorized key, readable by it: sshd
    reads a user's authorized keys as that user, and the harness's own file lies in root's
    private temporary directory. Removed afterwards (``userdel``; the home by this fixture)."""
    import secrets
    import shutil
    import tempfile

    for tool in ("useradd", "usermod", "userdel"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not installed: no unprivileged account can be made")
    name = f"diagt{secrets.token_hex(3)}"
    home = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    home.chmod(0o755)
    keys = home / "authorized_keys"
    keys.write_text(harness.authorized_keys.read_text())
    keys.chmod(0o644)
    subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", "-K", "UID_MIN=1000",
                    name], check=True, capture_output=True)
    try:
        subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
        yield name, keys
    finally:
        subprocess.run(["userdel", "-f", name], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def test_non_root_user_runs_privileged_commands_through_sudo_n(harness, unprivileged_user,
                                                                tmp_path):
    import pwd

    user, keys = unprivileged_user
    assert pwd.getpwnam(user).pw_uid >= 1000
    harness.add("h", extra_config=f"Match User {user}\n  AuthorizedKeysFile {keys}\n")
    code, summary = collect_json(harness, tmp_path / "b", f"{user}@h")
    assert code in (0, 3), summary
    name = f"{user}@h"
    host = open_bundle(tmp_path / "b").manifest["hosts"]["h"]
    assert host["reachability"] == "OK" and host["uid"] != 0 and host["sudo"] is True, host
    commands = {c["id"]: c for c in host["commands"]}
    assert commands["ss-tanpi"]["run_as"] == "sudo -n"
    assert commands["ip-addr"]["run_as"] == "user" and commands["ip-addr"]["outcome"] == "OK"
    if commands["ss-tanpi"]["outcome"] != "OK":  # no sudo, or sudo wants a password: recorded
        assert "sudo" in commands["ss-tanpi"]["stderr"]
    assert name not in summary  # the host is keyed by its name, the user is in the target


def test_config_that_disables_known_hosts_is_refused(harness, tmp_path):
    harness.add("h")
    config = harness.ssh_config.read_text().replace(
        f"UserKnownHostsFile {harness.known_hosts}", "UserKnownHostsFile none")
    harness.ssh_config.write_text(config)
    code, summary = collect_json(harness, tmp_path / "b", "h")
    assert code == 3
    host = hosts_by_name(summary)["h"]
    assert host["reachability"] == "ERROR" and "never collects without host key" in host["error"]
