"""The :class:`Lab`: bring a lab up, find it again, run things in it, tear it down.

Contract: see the package docstring (:mod:`diag.lab`) for the API. ``Lab.up`` records every
namespace before creating it and every process right after starting it (see
:mod:`diag.lab.state`), so :func:`teardown` works from the run directory alone — after a crash or a
SIGKILLed ``up`` — and additionally sweeps any process still living in one of the lab's namespaces.
Waiting is polling with deadlines; the bring-up time is measured to "all sessions Established and
every node holding the other nodes' pod routes".
"""
from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from diag.errors import EnvironmentProblem, UsageError
from diag.lab import bgp, configs, environment, network
from diag.lab import plan as P
from diag.lab.state import (NAME_RE, LabState, ProcessRecord, lab_names, last_teardown,
                            record_teardown, run_dir, run_root)
from diag.lab.system import (CommandFailed, is_alive, netns_delete, netns_list, proc_stat, run,
                             spawn, stop_pids, wait_for)

DEFAULT_NAME = "diag"
UP_TIMEOUT = float(os.environ.get("DIAG_LAB_UP_TIMEOUT", "40"))
FRR_BIN = Path("/usr/lib/frr")


@dataclass(frozen=True)
class HostInfo:
    """What callers need to know about one lab host."""

    name: str
    role: str                 # "router" or "node"
    netns: str
    ips: tuple[str, ...]      # every address, "ip/len", management NIC included
    cluster_iface: str
    cluster_ip: str
    mgmt_iface: str           # "" on the router
    asn: int
    daemon: str               # "frr", "gobgp" or "bird"
    pod_cidr: str = ""
    pod_ip: str = ""
    pod_netns: str = ""


def validate(name: str, cni: str = "cilium", mode: str = "native",
             addressing: str = "default") -> None:
    if not NAME_RE.match(name):
        raise UsageError(f"invalid lab name {name!r}",
                         hint="1-12 characters, lower-case letters and digits, starting with a "
                              "letter (it prefixes namespace names)")
    for value, allowed, what in ((cni, P.CNIS, "--cni"), (mode, P.MODES, "--mode"),
                                 (addressing, P.ADDRESSINGS, "--addressing")):
        if value not in allowed:
            raise UsageError(f"invalid {what} {value!r}", hint=f"choose one of: {', '.join(allowed)}")


class Lab:
    """A running (or half-built) lab, backed by its run directory."""

    def __init__(self, state: LabState) -> None:
        self._state = state
        self.name = state.name
        self.cni = state.cni
        self.mode = state.mode
        self.addressing = state.addressing
        self.plan = P.addressing_plan(state.addressing)
        self.run_dir = run_dir(state.name)

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def up(cls, name: str = DEFAULT_NAME, cni: str = "cilium", mode: str = "native",
           addressing: str = "default", *, timeout: float = UP_TIMEOUT,
           progress: Callable[[str], None] | None = None) -> "Lab":
        """Build the lab and return once every session is Established and routes are in place."""
        validate(name, cni, mode, addressing)
        environment.check()
        say = progress or (lambda _msg: None)
        if LabState.read(name) is not None or run_dir(name).exists():
            raise UsageError(f"lab {name!r} already exists ({run_dir(name)})",
                             hint=f"diag lab status --name {name}, or remove it first: "
                                  f"diag lab down --name {name}")
        plan = P.addressing_plan(addressing)
        clash = sorted(set(network.namespace_names(name)) & netns_list())
        if clash:
            raise UsageError(f"namespaces of a lab {name!r} are left over: {', '.join(clash)}",
                             hint=f"diag lab down --name {name}")
        started = time.monotonic()
        run_root().mkdir(mode=0o755, parents=True, exist_ok=True)
        _check_traversable(run_root())
        try:
            run_dir(name).mkdir()
        except FileExistsError:
            raise UsageError(f"lab {name!r} is being created by another `diag lab up`") from None
        run_dir(name).chmod(0o711)   # FRR runs as frr and must traverse to its directory
        state = LabState(name=name, cni=cni, mode=mode, addressing=addressing,
                         namespaces=network.namespace_names(name, plan))
        state.save()                          # namespaces recorded before they exist
        lab = cls(state)
        try:
            say(f"building namespaces and links ({cni}, {mode}, addressing {addressing})")
            network.build(name, plan, cni, mode)
            state.timings["network_s"] = round(time.monotonic() - started, 3)
            state.phase = "starting"
            state.save()
            say("starting sshd, FRR, " + ("GoBGP" if cni == "cilium" else "BIRD"))
            lab._write_secrets()
            lab._start_all()
            say("waiting for BGP sessions and routes")
            lab._wait_ready(timeout, started)
            lab._write_ssh_client_files()
        except BaseException as err:
            state = lab._state
            state.phase = "failed"
            state.error = f"{type(err).__name__}: {err}"
            state.save()
            if os.environ.get("DIAG_LAB_KEEP_FAILED") != "1":
                teardown(name)
            if isinstance(err, (CommandFailed, TimeoutError)):
                raise EnvironmentProblem(f"lab {name!r} did not come up: {err}",
                                         hint="rerun with DIAG_LAB_KEEP_FAILED=1 and read the "
                                              f"logs in {run_dir(name)}/hosts/*/") from err
            raise
        state = lab._state
        state.phase = "ready"
        state.timings["bringup_s"] = round(time.monotonic() - started, 3)
        state.save()
        return lab

    @classmethod
    def load(cls, name: str = DEFAULT_NAME) -> "Lab":
        """The lab ``name`` as recorded in its run directory."""
        validate(name)
        state = LabState.read(name)
        if state is None:
            others = lab_names()
            raise UsageError(f"no lab named {name!r}",
                             hint=(f"labs here: {', '.join(others)} (use --name)" if others
                                   else "start one: diag lab up"))
        return cls(state)

    def down(self) -> float:
        """Stop every process, delete every namespace and file; return the seconds it took."""
        return teardown(self.name)

    # --- what callers read --------------------------------------------------------------------

    @property
    def state(self) -> LabState:
        return self._state

    @property
    def hosts(self) -> dict[str, HostInfo]:
        out = {}
        for host in self.plan.hosts:
            mgmt = next((n.name for n in host.nics if n.segment == "mgmt"), "")
            out[host.name] = HostInfo(
                name=host.name, role=host.role, netns=self.netns(host.name),
                ips=tuple(n.address for n in host.nics), cluster_iface=host.cluster_nic.name,
                cluster_ip=host.ip, mgmt_iface=mgmt, asn=host.asn, daemon=self.daemon(host.name),
                pod_cidr=host.pod_cidr, pod_ip=host.pod_ip,
                pod_netns=network.pod_netns(self.name, host.name) if host.role == "node" else "")
        return out

    def netns(self, host: str) -> str:
        self._host(host)
        return network.host_netns(self.name, host)

    def daemon(self, host: str) -> str:
        if self._host(host).role == "router":
            return "frr"
        return "gobgp" if self.cni == "cilium" else "bird"

    @property
    def ssh_config_path(self) -> Path:
        return self.run_dir / "ssh_config"

    @property
    def known_hosts_path(self) -> Path:
        return self.run_dir / "known_hosts"

    @property
    def identity_path(self) -> Path:
        return self.run_dir / "ssh" / "id_ed25519"

    @property
    def md5_password(self) -> str:
        return (self.run_dir / "md5_password").read_text().strip()

    @property
    def md5_peers(self) -> tuple[str, str]:
        """The two hosts whose BGP session uses TCP-MD5."""
        return (self.plan.router.name, P.MD5_PEER)

    def host_dir(self, host: str) -> Path:
        return self.run_dir / "hosts" / host

    @property
    def frr_dir(self) -> Path:
        """The router's FRR state: vty sockets, zserv.api, pid and log files, configs."""
        return self.host_dir(self.plan.router.name) / "frr"

    def bird_socket(self, host: str) -> Path:
        return self.host_dir(host) / "bird" / "bird.ctl"

    def collect_command(self) -> str:
        hosts = " ".join(h.name for h in self.plan.hosts)
        return (f"diag collect --ssh-config {self.ssh_config_path} "
                f"--known-hosts {self.known_hosts_path} {hosts}")

    def ssh_command(self, host: str = P.MD5_PEER) -> str:
        return f"ssh -F {self.ssh_config_path} {host}"

    # --- running things -----------------------------------------------------------------------

    def enter_argv(self, host: str) -> list[str]:
        """argv prefix that runs a command "on" ``host``: its namespace, its hostname (own UTS
        namespace) and its daemons' control sockets at their default paths (private mounts), so
        plain ``vtysh``, ``birdc`` and ``gobgp`` work as on a real machine."""
        self._host(host)
        steps = [f"hostname {shlex.quote(host)}"]
        for source, target in self._default_socket_mounts(host):
            steps.append(f"mount --bind {shlex.quote(str(source))} {target}")
        script = " && ".join(steps) + ' && exec "$@"'
        return ["ip", "netns", "exec", self.netns(host), "unshare", "--uts", "--",
                "sh", "-c", script, "diag-lab"]

    def exec(self, host: str, argv: Sequence[str], *, check: bool = True, timeout: float = 30,
             input: str | None = None) -> subprocess.CompletedProcess:
        """Run argv on ``host`` (see :meth:`enter_argv`); capture text output."""
        return run(self.enter_argv(host) + list(argv), check=check, timeout=timeout, input=input)

    def exec_pod(self, host: str, argv: Sequence[str], *, check: bool = True,
                 timeout: float = 30) -> subprocess.CompletedProcess:
        """Run argv inside the pod of node ``host``."""
        if self._host(host).role != "node":
            raise UsageError(f"{host} has no pod (the router is not a node)")
        return run(["ip", "netns", "exec", network.pod_netns(self.name, host), *argv],
                   check=check, timeout=timeout)

    def pod_ping(self, src: str, dst: str, *, count: int = 2,
                 deadline: float = 4) -> subprocess.CompletedProcess:
        """Ping from the pod of ``src`` to the pod of ``dst`` (real ICMP, bounded)."""
        target = self._host(dst).pod_ip
        return self.exec_pod(src, ["ping", "-n", "-q", "-c", str(count), "-i", "0.2",
                                   "-W", "1", "-w", f"{deadline:g}", target],
                             check=False, timeout=deadline + 5)

    def spawn(self, key: str, host: str, argv: Sequence[str], *, pod: bool = False) -> ProcessRecord:
        """Start a long-running process on ``host`` (or in its pod), tracked in the run dir so
        ``stop``/``down`` end it by PID. ``key`` must be unique in the lab."""
        self._reload()
        if any(p.key == key and is_alive(p.pid, p.starttime) for p in self._state.processes):
            raise UsageError(f"process {key!r} already runs in lab {self.name!r}")
        prefix = (["ip", "netns", "exec", network.pod_netns(self.name, host)] if pod
                  else self.enter_argv(host))
        log = self.run_dir / "logs" / (key.replace("/", "_") + ".log")
        log.parent.mkdir(exist_ok=True)
        full = prefix + list(argv)
        pid, starttime = spawn(full, log)
        record = ProcessRecord(key=key, host=host, pid=pid, starttime=starttime, argv=full,
                               log=str(log))
        self._state.processes = [p for p in self._state.processes if p.key != key] + [record]
        self._state.save()
        return record

    def stop(self, key: str) -> bool:
        """Stop the tracked process ``key`` by PID; True if it was running."""
        self._reload()
        record = self._state.process(key)
        if record is None:
            return False
        was_alive = is_alive(record.pid, record.starttime)
        stop_pids([(record.pid, record.starttime)])
        _forget_frr_state(record)
        self._state.processes = [p for p in self._state.processes if p.key != key]
        self._state.save()
        return was_alive

    def pid(self, key: str) -> int | None:
        """PID of the tracked process ``key`` ("router/bgpd", "k8s-w1/gobgpd", ...) if it runs."""
        self._reload()
        record = self._state.process(key)
        return record.pid if record and is_alive(record.pid, record.starttime) else None

    def is_running(self, key: str) -> bool:
        self._reload()
        record = self._state.process(key)
        return record is not None and is_alive(record.pid, record.starttime)

    # --- BGP ----------------------------------------------------------------------------------

    def bgp_state(self) -> list[bgp.PeerState]:
        """Every configured session as each speaker reports it (router and nodes)."""
        out: list[bgp.PeerState] = []
        for host in self.plan.hosts:
            ns_run = self._ns_runner(host.name)
            if host.role == "router":
                out += bgp.frr_peers(host.name, ns_run, str(self.frr_dir))
            elif self.cni == "cilium":
                out += bgp.gobgp_peers(host.name, ns_run)
            else:
                out += bgp.bird_peers(host.name, ns_run, str(self.bird_socket(host.name)))
        return out

    def vtysh(self, *commands: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run vtysh commands against the router's FRR (``-c`` each)."""
        argv = ["vtysh", "--vty_socket", str(self.frr_dir)]
        for command in commands:
            argv += ["-c", command]
        return run(["ip", "netns", "exec", self.netns(self.plan.router.name), *argv], check=check)

    def restart_bgp(self, host: str, options: configs.BgpOptions | None = None) -> None:
        """Re-render ``host``'s BGP daemon config with ``options`` (default: healthy) and restart
        it (bgpd on the router; gobgpd or bird on a node). Does not wait for sessions."""
        opts = options or self.bgp_options()
        h = self._host(host)
        if h.role == "router":
            self.stop(f"{host}/bgpd")
            self._write_frr_configs(opts)
            self._start_bgpd()
        else:
            daemon = "gobgpd" if self.cni == "cilium" else "bird"
            self.stop(f"{host}/{daemon}")
            self._start_node_daemon(h, opts)
            if self.cni == "cilium":
                self._gobgp_originate(h, opts)

    def bgp_config_is(self, host: str, options: configs.BgpOptions | None = None) -> bool:
        """True if ``host``'s BGP daemon config on disk is what ``options`` (default: healthy)
        renders — so a fault's heal restarts a daemon only when its config was changed."""
        opts = options or self.bgp_options()
        h = self._host(host)
        hd = self.host_dir(host)
        if h.role == "router":
            path, text = self.frr_dir / "bgpd.conf", configs.render_bgpd(self.plan, h, opts)
        elif self.cni == "cilium":
            path, text = hd / "gobgpd.toml", configs.render_gobgpd(self.plan, h, opts)
        else:
            path, text = hd / "bird.conf", configs.render_bird(self.plan, h, opts, hd / "bird.log")
        try:
            return path.read_text() == text
        except FileNotFoundError:
            return False

    def bgp_options(self) -> configs.BgpOptions:
        """The healthy baseline's options."""
        return configs.BgpOptions(md5_password=self.md5_password)

    def wait_established(self, timeout: float = 20) -> list[bgp.PeerState]:
        """Poll until both ends of every session report Established; return the states."""
        expected = 2 * len(self.plan.nodes)

        def all_established() -> list[bgp.PeerState] | None:
            states = self.bgp_state()
            ok = len(states) == expected and all(p.established for p in states)
            return states if ok else None

        return wait_for(all_established, timeout=timeout, interval=0.1,
                        what="all BGP sessions Established")

    # --- internals ----------------------------------------------------------------------------

    def _host(self, name: str) -> P.Host:
        try:
            return self.plan.host(name)
        except KeyError:
            raise UsageError(f"no host {name!r} in lab {self.name!r}",
                             hint="hosts: " + ", ".join(h.name for h in self.plan.hosts)) from None

    def _reload(self) -> None:
        fresh = LabState.read(self.name)
        if fresh is not None:
            self._state = fresh

    def _ns_runner(self, host: str):
        ns = self.netns(host)
        return lambda argv: run(["ip", "netns", "exec", ns, *argv], check=False, timeout=10)

    def _default_socket_mounts(self, host: str) -> list[tuple[Path, str]]:
        h = self._host(host)
        if h.role == "router":
            return [(self.frr_dir, "/run/frr")]
        if self.cni == "calico":
            return [(self.bird_socket(host).parent, "/run/bird")]
        return []

    def _write_secrets(self) -> None:
        md5 = self.run_dir / "md5_password"
        md5.touch(mode=0o600)
        md5.write_text(secrets.token_hex(12) + "\n")
        ssh = self.run_dir / "ssh"
        ssh.mkdir(mode=0o700)
        jobs = [subprocess.Popen(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                                  f"diag-lab-{self.name}", "-f", str(self.identity_path)])]
        for host in self.plan.hosts:
            hd = self.host_dir(host.name)
            hd.mkdir(parents=True)
            hd.chmod(0o711)
            hd.parent.chmod(0o711)
            jobs.append(subprocess.Popen(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                                          f"{host.name}@diag-lab-{self.name}",
                                          "-f", str(hd / "ssh_host_ed25519_key")]))
        if any(job.wait() != 0 for job in jobs):
            raise EnvironmentProblem("ssh-keygen failed to generate the lab's keys")
        shutil.copyfile(f"{self.identity_path}.pub", ssh / "authorized_keys")

    def _start_all(self) -> None:
        opts = self.bgp_options()
        for mountpoint in ("/run/sshd", "/run/bird"):
            # sshd needs its privilege-separation directory; /run/bird is only a mount point for
            # the lab's BIRD sockets inside lab hosts' private mount namespaces. Both stay empty.
            if not Path(mountpoint).exists() and (mountpoint != "/run/bird" or self.cni == "calico"):
                Path(mountpoint).mkdir(mode=0o755, exist_ok=True)
        self._write_frr_configs(opts)
        if self.cni == "calico":
            for node in self.plan.nodes:      # bind-mounted by every process on the node
                self.bird_socket(node.name).parent.mkdir(exist_ok=True)
        self._spawn_daemon(self.plan.router.name, "zebra", [
            str(FRR_BIN / "zebra"), "-f", str(self.frr_dir / "zebra.conf"),
            "-i", str(self.frr_dir / "zebra.pid"), "-z", str(self.frr_dir / "zserv.api"),
            "--vty_socket", str(self.frr_dir), "-P", "0",
            "--log", f"file:{self.frr_dir / 'zebra.log'}"])
        for host in self.plan.hosts:
            self._start_sshd(host)
        for node in self.plan.nodes:
            self._start_node_daemon(node, opts)
        wait_for(lambda: self._check_daemons_alive() or (self.frr_dir / "zserv.api").exists(),
                 timeout=10,
                 what="zebra's zserv socket")
        self._start_bgpd()
        if self.cni == "cilium":
            for node in self.plan.nodes:
                self._gobgp_originate(node, opts)

    def _spawn_daemon(self, host: str, daemon: str, argv: list[str]) -> None:
        self._reload()                  # another process may have recorded one meanwhile
        full = self.enter_argv(host) + argv
        log = self.host_dir(host) / f"{daemon}.out"
        pid, starttime = spawn(full, log)
        self._state.processes.append(ProcessRecord(key=f"{host}/{daemon}", host=host, pid=pid,
                                                   starttime=starttime, argv=full, log=str(log)))
        self._state.save()

    def _write_frr_configs(self, opts: configs.BgpOptions) -> None:
        router = self.plan.router
        self.frr_dir.mkdir(parents=True, exist_ok=True)
        (self.frr_dir / "zebra.conf").write_text(configs.render_zebra(self.plan, router))
        bgpd_conf = self.frr_dir / "bgpd.conf"
        bgpd_conf.touch(mode=0o600)
        bgpd_conf.write_text(configs.render_bgpd(self.plan, router, opts))
        # zebra and bgpd drop to the frr user: they must own their directory and files
        for path in [self.frr_dir, *self.frr_dir.iterdir()]:
            shutil.chown(path, "frr", "frr")

    def _start_bgpd(self) -> None:
        d = self.frr_dir
        self._spawn_daemon(self.plan.router.name, "bgpd", [
            str(FRR_BIN / "bgpd"), "-f", str(d / "bgpd.conf"), "-i", str(d / "bgpd.pid"),
            "-z", str(d / "zserv.api"), "--vty_socket", str(d), "-P", "0",
            "--log", f"file:{d / 'bgpd.log'}"])

    def _start_sshd(self, host: P.Host) -> None:
        hd = self.host_dir(host.name)
        conf = hd / "sshd_config"
        (hd / "sshd.pid").unlink(missing_ok=True)
        conf.write_text(configs.render_sshd(
            host, host_key=hd / "ssh_host_ed25519_key", pid_file=hd / "sshd.pid",
            authorized_keys=self.run_dir / "ssh" / "authorized_keys", use_pam=_root_is_locked()))
        self._spawn_daemon(host.name, "sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)])

    def _start_node_daemon(self, node: P.Host, opts: configs.BgpOptions) -> None:
        hd = self.host_dir(node.name)
        if self.cni == "cilium":
            conf = hd / "gobgpd.toml"
            conf.touch(mode=0o600)
            conf.write_text(configs.render_gobgpd(self.plan, node, opts))
            self._spawn_daemon(node.name, "gobgpd", [
                "gobgpd", "-f", str(conf), "-t", "toml", "--api-hosts", "127.0.0.1:50051",
                "--pprof-disable", "--log-plain", "-l", "info"])
        else:
            sock_dir = self.bird_socket(node.name).parent
            sock_dir.mkdir(exist_ok=True)
            conf = hd / "bird.conf"
            conf.touch(mode=0o600)
            conf.write_text(configs.render_bird(self.plan, node, opts, hd / "bird.log"))
            self._spawn_daemon(node.name, "bird", [
                "bird", "-f", "-c", str(conf), "-s", str(self.bird_socket(node.name)),
                "-P", str(hd / "bird.pid")])

    def _gobgp_originate(self, node: P.Host, opts: configs.BgpOptions) -> None:
        """Originate the node's pod CIDR in GoBGP (what Cilium does through the API)."""
        if not opts.advertise:
            return
        ns_run = self._ns_runner(node.name)
        argv = ["gobgp", "global", "rib", "add", "-a", "ipv4", node.pod_cidr]
        wait_for(lambda: ns_run(argv).returncode == 0, timeout=10, interval=0.05,
                 what=f"GoBGP API on {node.name}")

    def _wait_ready(self, timeout: float, started: float) -> None:
        deadline = started + timeout

        def remaining() -> float:
            return max(0.5, deadline - time.monotonic())

        for host in self.plan.hosts:
            pid_file = self.host_dir(host.name) / "sshd.pid"
            wait_for(pid_file.exists, timeout=remaining(), what=f"sshd on {host.name}")
        self._check_daemons_alive()
        try:
            self.wait_established(timeout=remaining())
        except TimeoutError:
            self._check_daemons_alive()
            states = ", ".join(f"{p.host}->{p.peer} {p.state}" for p in self.bgp_state())
            raise TimeoutError(f"BGP sessions not Established after {timeout:g}s "
                               f"({states or 'no daemon answered'})") from None
        self._state.timings["established_s"] = round(time.monotonic() - started, 3)
        wait_for(self._routes_ready, timeout=remaining(), interval=0.1,
                 what="pod routes on every node")

    def _check_daemons_alive(self) -> None:
        for record in self._state.processes:
            if not is_alive(record.pid, record.starttime):
                tail = Path(record.log).read_text(errors="replace").strip().splitlines()[-3:]
                raise CommandFailed(record.argv, subprocess.CompletedProcess(
                    record.argv, 1, "", f"{record.key} exited: " + " | ".join(tail)))

    def _routes_ready(self) -> bool:
        """Each node knows every other node's pod CIDR (GoBGP RIB on cilium, kernel on calico),
        and the router's kernel has all of them."""
        import json

        router_ns = self.netns(self.plan.router.name)
        routes = json.loads(run(["ip", "-n", router_ns, "-j", "route", "show", "proto", "bgp"]).stdout)
        if {r["dst"] for r in routes} < {n.pod_cidr for n in self.plan.nodes}:
            return False
        for node in self.plan.nodes:
            others = {n.pod_cidr for n in self.plan.nodes if n is not node}
            if self.cni == "cilium":
                out = self._ns_runner(node.name)(["gobgp", "global", "rib", "-j", "-a", "ipv4"])
                try:
                    have = set(json.loads(out.stdout or "{}"))
                except json.JSONDecodeError:
                    return False
            else:
                raw = run(["ip", "-n", self.netns(node.name), "-j", "route", "show", "proto", "bird"])
                have = {r["dst"] for r in json.loads(raw.stdout or "[]")}
            if not others <= have:
                return False
        return True

    def _write_ssh_client_files(self) -> None:
        keys = {h.name: (self.host_dir(h.name) / "ssh_host_ed25519_key.pub").read_text()
                for h in self.plan.hosts}
        self.known_hosts_path.write_text(configs.render_known_hosts(keys))
        self.ssh_config_path.write_text(configs.render_ssh_config(
            self.name, {h.name: self.netns(h.name) for h in self.plan.hosts},
            identity=self.identity_path, known_hosts=self.known_hosts_path))


def _check_traversable(path: Path) -> None:
    """FRR drops to the frr user: every directory above the run dir must be searchable by all."""
    for parent in [path, *path.parents]:
        if not parent.stat().st_mode & 0o001:
            raise EnvironmentProblem(f"the lab's run directory {path} is below {parent}, which "
                                     "other users cannot traverse (FRR runs as user frr)",
                                     hint="set DIAG_LAB_RUN_DIR to a directory under /run or /var/lib")


def _root_is_locked() -> bool:
    """sshd without PAM refuses accounts whose password starts with '!' (Ubuntu's root)."""
    try:
        for line in Path("/etc/shadow").read_text().splitlines():
            if line.startswith("root:"):
                return line.split(":")[1].startswith("!")
    except OSError:
        pass
    return False


# --- teardown ---------------------------------------------------------------------------------

def teardown(name: str) -> float:
    """Remove lab ``name``: processes by PID (recorded ones, then anything still inside its
    namespaces), namespaces, run directory. Works with or without a state file. Returns seconds."""
    validate(name)
    environment.check()
    started = time.monotonic()
    state = LabState.read(name)
    recorded = [(p.pid, p.starttime) for p in state.processes] if state else []
    stop_pids(recorded)
    candidates = set(network.namespace_names(name)) | set(state.namespaces if state else [])
    present = sorted(candidates & netns_list())
    leftovers = _pids_in_namespaces(present)
    if leftovers:
        stop_pids([(pid, st) for pid, st in leftovers])
    jobs = [subprocess.Popen(["ip", "netns", "delete", ns], stderr=subprocess.DEVNULL)
            for ns in present]
    for job in jobs:
        job.wait()
    for ns in present:          # a failed parallel delete gets a second, sequential chance
        netns_delete(ns)
    for record in state.processes if state else []:
        _forget_frr_state(record)
    shutil.rmtree(run_dir(name), ignore_errors=True)
    seconds = time.monotonic() - started
    if present or state is not None:
        run_root().mkdir(mode=0o755, parents=True, exist_ok=True)
        record_teardown(name, seconds)
    return seconds


def _forget_frr_state(record: ProcessRecord) -> None:
    """FRR keeps per-process state in /var/tmp/frr/<daemon>.<pid>; a daemon that did not exit
    cleanly (SIGKILLed, failed start) leaves it behind. Call only once the process is dead."""
    daemon = record.key.rsplit("/", 1)[-1]
    if daemon in ("zebra", "bgpd"):
        shutil.rmtree(f"/var/tmp/frr/{daemon}.{record.pid}", ignore_errors=True)


def lab_exists(name: str) -> bool:
    """True if lab ``name`` has a run directory or any namespace."""
    return run_dir(name).exists() or bool(set(network.namespace_names(name)) & netns_list())


def existing_labs() -> list[str]:
    """Labs with a run directory or with namespaces left (``<name>-sink``/``<name>-switch``)."""
    names = set(lab_names())
    for ns in netns_list():
        for suffix in (f"-{network.SINK}", f"-{network.SWITCH}"):
            if ns.endswith(suffix) and NAME_RE.match(ns[: -len(suffix)]):
                names.add(ns[: -len(suffix)])
    return sorted(names)


def _pids_in_namespaces(names: Sequence[str]) -> list[tuple[int, int]]:
    """(pid, starttime) of every live process whose network namespace is one of ``names``."""
    inodes = set()
    for ns in names:
        try:
            inodes.add(os.stat(f"/run/netns/{ns}").st_ino)
        except FileNotFoundError:
            pass
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            link = os.readlink(f"/proc/{entry}/ns/net")      # "net:[4026532281]"
        except OSError:
            continue
        if int(link[5:-1]) in inodes:
            stat = proc_stat(int(entry))
            if stat is not None and stat.state not in ("Z", "X"):
                found.append((int(entry), stat.starttime))
    return found


def last_teardown_seconds(name: str) -> float | None:
    return last_teardown(name)
