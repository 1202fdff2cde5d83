"""A lab's processes: its daemons started, restarted and stopped by PID, and asked how BGP is.

Contract: :class:`Daemons` of a :class:`~diag.lab.lab.Lab`:

- processes: :meth:`spawn` a long-running process on a host (or in its pod; :meth:`spawn_local`
  in the root namespace), tracked in the run directory so :meth:`stop` and ``diag lab down`` end
  it by PID; :meth:`pid`, :meth:`is_running`.
- daemons: :meth:`start_all` (zebra, sshd everywhere, GoBGP or BIRD 1.6/2 on the nodes
  configured from the lab's Kubernetes objects, bgpd, the prefixes the nodes' BGP
  advertisements select originated in GoBGP), :meth:`restart_bgp` (a host's BGP daemon
  re-rendered with other options and restarted), :meth:`vtysh` (the router's FRR);
  :meth:`gobgp_originated`, :meth:`bird_learned`, :meth:`bird_protocols` (what the node
  speakers hold, in their own words).
- state: :meth:`bgp_state` (every session as each speaker reports it), :meth:`wait_established`,
  :meth:`wait_ready` (sshd up, sessions Established, every node holding the others' pod routes),
  :meth:`check_alive` (a daemon that died, with the tail of its log).

Waiting is polling with deadlines. The files the daemons read are written by
:mod:`diag.lab.files`.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from diag.errors import UsageError
from diag.lab import bgp, configs, environment, network, pods
from diag.lab import plan as P
from diag.lab.state import ProcessRecord
from diag.lab.system import CommandFailed, is_alive, run, spawn, stop_pids, wait_for

if TYPE_CHECKING:
    from diag.lab.lab import Lab

FRR_BIN = Path("/usr/lib/frr")


def forget_frr_state(record: ProcessRecord) -> None:
    """FRR keeps per-process state in /var/tmp/frr/<daemon>.<pid>; a daemon that did not exit
    cleanly (SIGKILLed, failed start) leaves it behind. Call only once the process is dead."""
    daemon = record.key.rsplit("/", 1)[-1]
    if daemon in ("zebra", "bgpd"):
        shutil.rmtree(f"/var/tmp/frr/{daemon}.{record.pid}", ignore_errors=True)


class Daemons:
    def __init__(self, lab: "Lab") -> None:
        self.lab = lab

    @property
    def _files(self):
        return self.lab.files

    # --- processes ----------------------------------------------------------------------------

    def spawn(self, key: str, host: str, argv: Sequence[str], *, pod: bool = False) -> ProcessRecord:
        """Start a long-running process on ``host`` (or in its pod), tracked in the run dir so
        ``stop``/``down`` end it by PID. ``key`` must be unique in the lab."""
        state = self.lab.reload()
        if any(p.key == key and is_alive(p.pid, p.starttime) for p in state.processes):
            raise UsageError(f"process {key!r} already runs in lab {self.lab.name!r}")
        prefix = (["ip", "netns", "exec", network.pod_netns(self.lab.name, host)] if pod
                  else self.lab.enter_argv(host))
        log = self.lab.run_dir / "logs" / (key.replace("/", "_") + ".log")
        log.parent.mkdir(exist_ok=True)
        full = prefix + list(argv)
        pid, starttime = spawn(full, log)
        record = ProcessRecord(key=key, host=host, pid=pid, starttime=starttime, argv=full,
                               log=str(log))
        state.processes = [p for p in state.processes if p.key != key] + [record]
        state.save()
        return record

    def spawn_local(self, key: str, argv: Sequence[str]) -> ProcessRecord:
        """Start a long-running lab process in the root namespace (the lab's Kubernetes API
        endpoint: it only listens on 127.0.0.1), tracked like :meth:`spawn`."""
        state = self.lab.reload()
        if any(p.key == key and is_alive(p.pid, p.starttime) for p in state.processes):
            raise UsageError(f"process {key!r} already runs in lab {self.lab.name!r}")
        log = self.lab.run_dir / "logs" / (key.replace("/", "_") + ".log")
        log.parent.mkdir(exist_ok=True)
        pid, starttime = spawn(list(argv), log)
        record = ProcessRecord(key=key, host="", pid=pid, starttime=starttime, argv=list(argv),
                               log=str(log))
        state.processes = [p for p in state.processes if p.key != key] + [record]
        state.save()
        return record

    def stop(self, key: str) -> bool:
        """Stop the tracked process ``key`` by PID; True if it was running."""
        state = self.lab.reload()
        record = state.process(key)
        if record is None:
            return False
        was_alive = is_alive(record.pid, record.starttime)
        stop_pids([(record.pid, record.starttime)])
        forget_frr_state(record)
        state.processes = [p for p in state.processes if p.key != key]
        state.save()
        return was_alive

    def pid(self, key: str) -> int | None:
        """PID of the tracked process ``key`` ("router/bgpd", "k8s-w1/gobgpd", ...) if it runs."""
        record = self.lab.reload().process(key)
        return record.pid if record and is_alive(record.pid, record.starttime) else None

    def is_running(self, key: str) -> bool:
        record = self.lab.reload().process(key)
        return record is not None and is_alive(record.pid, record.starttime)

    def check_alive(self) -> None:
        """Raise :class:`CommandFailed` (with the tail of its log) if a tracked process died."""
        for record in self.lab.state.processes:
            if not is_alive(record.pid, record.starttime):
                tail = Path(record.log).read_text(errors="replace").strip().splitlines()[-3:]
                raise CommandFailed(record.argv, subprocess.CompletedProcess(
                    record.argv, 1, "", f"{record.key} exited: " + " | ".join(tail)))

    # --- the daemons --------------------------------------------------------------------------

    def start_all(self, use_pam: bool) -> None:
        lab, files = self.lab, self._files
        opts = files.bgp_options()
        for mountpoint in ("/run/sshd", "/run/bird"):
            # sshd needs its privilege-separation directory; /run/bird is only a mount point for
            # the lab's BIRD sockets inside lab hosts' private mount namespaces. Both stay empty.
            if not Path(mountpoint).exists() and (mountpoint != "/run/bird" or lab.cni == "calico"):
                Path(mountpoint).mkdir(mode=0o755, exist_ok=True)
        files.write_frr_configs(opts)
        if lab.cni == "calico":
            for node in lab.plan.nodes:      # bind-mounted by every process on the node
                files.bird_socket(node.name).parent.mkdir(exist_ok=True)
        frr = files.frr_dir
        self._spawn_daemon(lab.plan.router.name, "zebra", [
            str(FRR_BIN / "zebra"), "-f", str(frr / "zebra.conf"),
            "-i", str(frr / "zebra.pid"), "-z", str(frr / "zserv.api"),
            "--vty_socket", str(frr), "-P", "0", "--log", f"file:{frr / 'zebra.log'}"])
        for host in lab.plan.hosts:
            conf = files.write_sshd_config(host, use_pam)
            self._spawn_daemon(host.name, "sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)])
        if lab.cni == "calico":
            pods.write_scripts(lab.run_dir, lab.name, shutil.which("kubectl"))
        for node in lab.plan.nodes:
            self._start_node_daemon(node, opts)
        self.start_agent_pods()
        wait_for(lambda: self.check_alive() or (frr / "zserv.api").exists(), timeout=10,
                 what="zebra's zserv socket")
        self._start_bgpd()
        if lab.cni == "cilium":
            for node in lab.plan.nodes:
                self._gobgp_originate(node, opts)

    def restart_bgp(self, host: str, options: configs.BgpOptions | None = None) -> None:
        """Re-render ``host``'s BGP daemon config with ``options`` (default: healthy) and restart
        it (bgpd on the router; gobgpd or bird on a node). Does not wait for sessions."""
        opts = options or self._files.bgp_options()
        h = self.lab.plan_host(host)
        if h.role == "router":
            self.stop(f"{host}/bgpd")
            self._files.write_frr_configs(opts)
            self._start_bgpd()
        else:
            daemon = "gobgpd" if self.lab.cni == "cilium" else "bird"
            self.stop(f"{host}/{daemon}")
            self._start_node_daemon(h, opts)
            if self.lab.cni == "cilium":
                self._gobgp_originate(h, opts)

    def vtysh(self, *commands: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run vtysh commands against the router's FRR (``-c`` each)."""
        argv = ["vtysh", "--vty_socket", str(self._files.frr_dir)]
        for command in commands:
            argv += ["-c", command]
        return run(["ip", "netns", "exec", self.lab.netns(self.lab.plan.router.name), *argv],
                   check=check)

    def _spawn_daemon(self, host: str, daemon: str, argv: list[str]) -> None:
        state = self.lab.reload()          # another process may have recorded one meanwhile
        full = self.lab.enter_argv(host) + argv
        log = self._files.host_dir(host) / f"{daemon}.out"
        pid, starttime = spawn(full, log)
        state.processes.append(ProcessRecord(key=f"{host}/{daemon}", host=host, pid=pid,
                                             starttime=starttime, argv=full, log=str(log)))
        state.save()

    def _start_bgpd(self) -> None:
        d = self._files.frr_dir
        self._spawn_daemon(self.lab.plan.router.name, "bgpd", [
            str(FRR_BIN / "bgpd"), "-f", str(d / "bgpd.conf"), "-i", str(d / "bgpd.pid"),
            "-z", str(d / "zserv.api"), "--vty_socket", str(d), "-P", "0",
            "--log", f"file:{d / 'bgpd.log'}"])

    def _start_node_daemon(self, node: P.Host, opts: configs.BgpOptions) -> None:
        conf = self._files.write_node_config(node, opts)
        if self.lab.cni == "cilium":
            self._spawn_daemon(node.name, "gobgpd", [
                "gobgpd", "-f", str(conf), "-t", "toml", "--api-hosts", "127.0.0.1:50051",
                "--pprof-disable", "--log-plain", "-l", "info"])
        elif self.lab.state.bird == "1.6":
            # Calico's BIRD lives in calico-node: its own mount namespace (the container), its
            # socket at /var/run/calico/bird.ctl (the lab's socket directory, bound there)
            hd = self._files.host_dir(node.name)
            name = pods.agent_pod_name("calico", node.name)
            root = self.lab.run_dir / "pods" / name / "root"
            root.mkdir(parents=True, exist_ok=True)
            binds = pods.common_binds(self.lab.run_dir) + [
                (str(self._files.bird_socket(node.name).parent), pods.CALICO_SOCKET_DIR)]
            argv = pods.container_argv(
                self.lab.netns(node.name), node.name, root,
                pods.tools("calico", self.lab.run_dir), binds,
                [str(environment.BIRD1), "-f", "-c", str(conf), "-s",
                 f"{pods.CALICO_SOCKET_DIR}/bird.ctl", "-P", str(hd / "bird.pid")])
            self._spawn_raw(node.name, "bird", argv)
        else:
            hd = self._files.host_dir(node.name)
            self._spawn_daemon(node.name, "bird", [
                "bird", "-f", "-c", str(conf), "-s", str(self._files.bird_socket(node.name)),
                "-P", str(hd / "bird.pid")])

    def start_agent_pods(self) -> None:
        """The cilium agent pods (calico's are its BIRD containers): a process holding each
        pod's namespaces, with the pod's tools and the lab's cilium-dbg."""
        lab = self.lab
        if lab.cni != "cilium":
            return
        pods.write_scripts(lab.run_dir, lab.name, shutil.which("kubectl"))
        for node in lab.plan.nodes:
            name = pods.agent_pod_name("cilium", node.name)
            root = lab.run_dir / "pods" / name / "root"
            root.mkdir(parents=True, exist_ok=True)
            argv = pods.container_argv(lab.netns(node.name), node.name, root,
                                       pods.tools("cilium", lab.run_dir),
                                       pods.common_binds(lab.run_dir),
                                       ["sleep", "infinity"])
            self._spawn_raw(node.name, "cilium-agent", argv)
        for node in lab.plan.nodes:          # ready once its root holds the pod's tools
            key = pods.agent_key("cilium", node.name)
            wait_for(lambda key=key: self.check_alive() or (
                self.pid(key) is not None and
                Path(f"/proc/{self.pid(key)}/root{pods.POD_PATH}/cilium-dbg").exists()),
                timeout=10, interval=0.05, what=f"the agent pod of {node.name}")

    def _spawn_raw(self, host: str, daemon: str, full: list[str]) -> None:
        """Track a process started by ``full`` as it is (a pod's container argv)."""
        state = self.lab.reload()
        log = self._files.host_dir(host) / f"{daemon}.out"
        pid, starttime = spawn(full, log)
        state.processes.append(ProcessRecord(key=f"{host}/{daemon}", host=host, pid=pid,
                                             starttime=starttime, argv=full, log=str(log)))
        state.save()

    def _gobgp_originate(self, node: P.Host, opts: configs.BgpOptions) -> None:
        """Originate in GoBGP what the node's BGP advertisements select (its pod CIDR): what
        Cilium's BGP control plane does through GoBGP's API."""
        if not opts.advertise:
            return
        ns_run = self._ns_runner(node.name)
        prefixes = self.lab.cluster.node_prefixes(node.name)
        wait_for(lambda: ns_run(["gobgp", "global", "rib", "summary"]).returncode == 0,
                 timeout=10, interval=0.05, what=f"GoBGP API on {node.name}")
        for prefix in prefixes:
            ns_run(["gobgp", "global", "rib", "add", "-a", "ipv4", prefix])

    def gobgp_originated(self, node: str) -> set[str]:
        """The IPv4 prefixes GoBGP on ``node`` originates (paths without a neighbor)."""
        out = self._ns_runner(node)(["gobgp", "global", "rib", "-j", "-a", "ipv4"])
        try:
            rib = json.loads(out.stdout or "{}") or {}
        except json.JSONDecodeError:
            return set()
        return {prefix for prefix, paths in rib.items()
                if any(p.get("neighbor-ip") in (None, "<nil>") for p in paths)}

    def bird_learned(self, node: str) -> set[str]:
        """Prefixes BIRD on ``node`` holds from its BGP peers (its table, whether or not it
        programs them into the kernel: Calico leaves VXLAN pools' routes to Felix)."""
        out = self._ns_runner(node)(["birdc", "-s", str(self._files.bird_socket(node)),
                                     "show", "route", "protocol",
                                     self.bird_protocols(node, "BGP")[0] or "none"])
        return {line.split()[0] for line in out.stdout.splitlines()
                if line[:1].isdigit() and "/" in line.split()[0]}

    def bird_protocols(self, node: str, proto: str) -> list[str]:
        """Names of ``node``'s BIRD protocols of type ``proto`` ("BGP", "Static"), as BIRD
        lists them (Calico names BGP peers Node_/Global_/Mesh_<ip>; 1.6 names an unnamed
        static protocol static1)."""
        out = self._ns_runner(node)(["birdc", "-s", str(self._files.bird_socket(node)),
                                     "show", "protocols"])
        names = [line.split()[0] for line in out.stdout.splitlines()
                 if len(line.split()) > 1 and line.split()[1] == proto]
        return names or [""]

    def _ns_runner(self, host: str):
        ns = self.lab.netns(host)
        return lambda argv: run(["ip", "netns", "exec", ns, *argv], check=False, timeout=10)

    # --- BGP state and readiness --------------------------------------------------------------

    def bgp_state(self) -> list[bgp.PeerState]:
        """Every configured session as each speaker reports it (router and nodes)."""
        out: list[bgp.PeerState] = []
        for host in self.lab.plan.hosts:
            ns_run = self._ns_runner(host.name)
            if host.role == "router":
                out += bgp.frr_peers(host.name, ns_run, str(self._files.frr_dir))
            elif self.lab.cni == "cilium":
                out += bgp.gobgp_peers(host.name, ns_run)
            else:
                out += bgp.bird_peers(host.name, ns_run, str(self._files.bird_socket(host.name)))
        return out

    def wait_established(self, timeout: float = 20) -> list[bgp.PeerState]:
        """Poll until both ends of every session report Established; return the states."""
        expected = 2 * len(self.lab.plan.nodes)

        def all_established() -> list[bgp.PeerState] | None:
            states = self.bgp_state()
            ok = len(states) == expected and all(p.established for p in states)
            return states if ok else None

        return wait_for(all_established, timeout=timeout, interval=0.1,
                        what="all BGP sessions Established")

    def wait_ready(self, timeout: float, started: float) -> None:
        deadline = started + timeout

        def remaining() -> float:
            return max(0.5, deadline - time.monotonic())

        for host in self.lab.plan.hosts:
            pid_file = self._files.host_dir(host.name) / "sshd.pid"
            wait_for(pid_file.exists, timeout=remaining(), what=f"sshd on {host.name}")
        self.check_alive()
        try:
            self.wait_established(timeout=remaining())
        except TimeoutError:
            self.check_alive()
            states = ", ".join(f"{p.host}->{p.peer} {p.state}" for p in self.bgp_state())
            raise TimeoutError(f"BGP sessions not Established after {timeout:g}s "
                               f"({states or 'no daemon answered'})") from None
        self.lab.state.timings["established_s"] = round(time.monotonic() - started, 3)
        wait_for(self.routes_ready, timeout=remaining(), interval=0.1,
                 what="pod routes on every node")

    def routes_ready(self) -> bool:
        """Each node knows every other node's pod CIDR (GoBGP RIB on cilium, kernel on calico),
        and the router's kernel has all of them."""
        lab = self.lab
        router_ns = lab.netns(lab.plan.router.name)
        routes = json.loads(run(["ip", "-n", router_ns, "-j", "route", "show", "proto",
                                 "bgp"]).stdout)
        if {r["dst"] for r in routes} < {n.pod_cidr for n in lab.plan.nodes}:
            return False
        for node in lab.plan.nodes:
            others = {n.pod_cidr for n in lab.plan.nodes if n is not node}
            if lab.cni == "cilium":
                out = self._ns_runner(node.name)(["gobgp", "global", "rib", "-j", "-a", "ipv4"])
                try:
                    have = set(json.loads(out.stdout or "{}"))
                except json.JSONDecodeError:
                    return False
            else:
                have = self.bird_learned(node.name)
                if lab.mode == "native" or lab.state.bird == "2":    # BIRD programs them
                    raw = run(["ip", "-n", lab.netns(node.name), "-j", "route", "show",
                               "proto", "bird"])
                    have &= {r["dst"] for r in json.loads(raw.stdout or "[]")}
            if not others <= have:
                return False
        return True
