"""Real sshd endpoints in network namespaces that the tests (and the benchmark) create.

Each host is a namespace ``<prefix>-<name>`` with only its loopback up and a real
``/usr/sbin/sshd -D`` listening on 127.0.0.1:22 inside it. The root namespace is never touched:
clients reach a host with ``ProxyCommand ip netns exec NS nc 127.0.0.1 22`` (written into an
ssh_config in the work directory), host keys and the user key are made by ssh-keygen, and
known_hosts is written here, never into ~/.ssh. Processes are stopped by PID.
"""
from __future__ import annotations

import os
import pwd
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def available() -> str | None:
    """Why the harness cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in (SSHD, "ssh-keygen", "nc", "ip"):
        if not shutil.which(tool):
            return f"{tool} not installed"
    return None


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


@dataclass
class Host:
    name: str
    netns: str
    dir: Path
    host_key: Path
    process: subprocess.Popen | None = None
    extra_config: str = ""

    def ns(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def host_public_key(self) -> str:
        return (self.host_key.with_suffix(".pub")).read_text().strip()


@dataclass
class Harness:
    """Creates hosts; writes ``ssh_config`` and ``known_hosts``; cleans everything up."""

    work: Path
    prefix: str
    hosts: dict[str, Host] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.user_key = self.work / "id_ed25519"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "diag-test",
             "-f", str(self.user_key))
        self.authorized_keys = self.work / "authorized_keys"
        self.authorized_keys.write_text(self.user_key.with_suffix(".pub").read_text())
        self.ssh_config = self.work / "ssh_config"
        self.known_hosts = self.work / "known_hosts"
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory

    def add(self, name: str, *, start: bool = True, extra_config: str = "",
            env_path: str | None = None, delay: float | None = None) -> Host:
        netns = f"{self.prefix}-{name}"
        _run("ip", "netns", "add", netns)
        _run("ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up")
        hdir = self.work / name
        hdir.mkdir()
        key = hdir / "ssh_host_ed25519_key"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        if env_path:
            extra_config += f"\nSetEnv PATH={env_path}\n"
        if delay:  # a fixed added delay per command (benchmark): the session sleeps first
            extra_config += f'\nForceCommand sleep {delay:g}; eval "$SSH_ORIGINAL_COMMAND"\n'
        host = Host(name=name, netns=netns, dir=hdir, host_key=key, extra_config=extra_config)
        self.hosts[name] = host
        if start:
            self.start(host)
        self.write_config()
        return host

    def sshd_config(self, host: Host) -> Path:
        path = host.dir / "sshd_config"
        path.write_text(f"""Port 22
ListenAddress 127.0.0.1
HostKey {host.host_key}
PidFile {host.dir}/sshd.pid
AuthorizedKeysFile {self.authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 200
MaxSessions 200
LogLevel ERROR
{host.extra_config}
""")
        return path

    def start(self, host: Host) -> None:
        config = self.sshd_config(host)
        # `ip netns exec` runs in a private mount namespace: hide the login shell's rc file there
        # (a heavy ~/.bashrc, e.g. pyenv init, is sourced by bash for every SSH command and would
        # make the tests measure it), never touching the real file.
        hide = "".join(f"mount --bind /dev/null {shlex.quote(str(rc))} && "
                       for rc in _shell_rc_files())
        host.process = subprocess.Popen(
            host.ns("sh", "-c", f"{hide}exec {SSHD} -D -e -f {shlex.quote(str(config))}"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            listening = _run(*host.ns("ss", "-Htln", "sport = :22"), check=False).stdout
            if "127.0.0.1:22" in listening:
                return
            if host.process.poll() is not None:
                raise RuntimeError(f"sshd for {host.name} exited: "
                                   f"{host.process.stderr.read().decode()[:500]}")
            time.sleep(0.02)
        raise RuntimeError(f"sshd for {host.name} did not listen within 10 s")

    def kill_sshd(self, host: Host) -> None:
        """Kill sshd and every session process it started (its process group is ours)."""
        if host.process is None:
            return
        pids = _children(host.process.pid)
        for pid in [host.process.pid, *pids]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        host.process.wait(timeout=10)
        host.process = None

    def write_config(self, known: list[str] | None = None) -> None:
        """ssh_config for every host; known_hosts for ``known`` (default: all hosts)."""
        blocks = []
        for host in self.hosts.values():
            blocks.append(f"""Host {host.name}
  HostName {host.name}
  User root
  Port 22
  IdentityFile {self.user_key}
  UserKnownHostsFile {self.known_hosts}
  ProxyCommand ip netns exec {host.netns} nc 127.0.0.1 22
""")
        self.ssh_config.write_text("\n".join(blocks))
        names = list(self.hosts) if known is None else known
        self.known_hosts.write_text("".join(
            f"{n} {self.hosts[n].host_public_key()}\n" for n in names))

    def cleanup(self) -> None:
        for host in self.hosts.values():
            self.kill_sshd(host)
            _run("ip", "netns", "del", host.netns, check=False)
        self.hosts.clear()


def _children(pid: int) -> list[int]:
    """All descendants of pid (sshd session processes), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _shell_rc_files() -> list[Path]:
    home = Path(pwd.getpwuid(os.geteuid()).pw_dir)
    return [rc for rc in (home / ".bashrc",) if rc.is_file()]
