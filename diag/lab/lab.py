"""The :class:`Lab`: bring a lab up, find it again, run things on its hosts, tear it down.

Contract: see the package docstring (:mod:`diag.lab`) for the API. ``Lab.up`` records every
namespace before creating it and every process right after starting it (see
:mod:`diag.lab.state`), so :func:`teardown` works from the run directory alone — after a crash or a
SIGKILLed ``up`` — and additionally sweeps any process still living in one of the lab's namespaces.
Waiting is polling with deadlines; the bring-up time is measured to "all sessions Established and
every node holding the other nodes' pod routes".
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from diag.errors import EnvironmentProblem, UsageError
from diag.lab import environment, network
from diag.lab import plan as P
from diag.lab.cluster import LabCluster
from diag.lab.daemons import Daemons, forget_frr_state
from diag.lab.files import LabFiles
from diag.lab.state import (NAME_RE, LabState, lab_names, last_teardown,
                            record_teardown, run_dir, run_root)
from diag.lab.system import (CommandFailed, netns_delete, netns_list, proc_stat, run,
                             stop_pids)

DEFAULT_NAME = "diag"
CILIUM_APIS = ("v2", "v2alpha1")
UP_TIMEOUT = float(os.environ.get("DIAG_LAB_UP_TIMEOUT", "40"))


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
             addressing: str = "default", bird: str = "1.6", peering: str = "address",
             cilium_api: str = "v2") -> None:
    if not NAME_RE.match(name):
        raise UsageError(f"invalid lab name {name!r}",
                         hint="1-12 characters, lower-case letters and digits, starting with a "
                              "letter (it prefixes namespace names)")
    for value, allowed, what in ((cni, P.CNIS, "--cni"), (mode, P.MODES, "--mode"),
                                 (addressing, P.ADDRESSINGS, "--addressing"),
                                 (bird, P.BIRDS, "--bird"), (peering, P.PEERINGS, "--peering"),
                                 (cilium_api, CILIUM_APIS, "--cilium-api")):
        if value not in allowed:
            raise UsageError(f"invalid {what} {value!r}", hint=f"choose one of: {', '.join(allowed)}")


class Lab:
    """A running (or half-built) lab, backed by its run directory: its lifecycle (:meth:`up`,
    :meth:`load`, :meth:`down`), its hosts and how to run things on them. Its files are
    ``lab.files`` (:class:`~diag.lab.files.LabFiles`), its processes and daemons
    ``lab.daemons`` (:class:`~diag.lab.daemons.Daemons`)."""

    def __init__(self, state: LabState) -> None:
        self._state = state
        self.name = state.name
        self.cni = state.cni
        self.mode = state.mode
        self.addressing = state.addressing
        self.plan = P.addressing_plan(state.addressing, state.peering)
        self.run_dir = run_dir(state.name)
        self.files = LabFiles(self)
        self.daemons = Daemons(self)
        self.cluster = LabCluster(self)

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def up(cls, name: str = DEFAULT_NAME, cni: str = "cilium", mode: str = "native",
           addressing: str = "default", *, bird: str = "1.6", peering: str = "address",
           cilium_api: str = "v2", kube_denied: Sequence[str] = (),
           timeout: float = UP_TIMEOUT, progress: Callable[[str], None] | None = None) -> "Lab":
        """Build the lab and return once every session is Established, routes are in place and
        its Kubernetes API endpoint answers. ``bird`` (calico: "1.6" as Calico, or "2"),
        ``peering`` (how the router peers: :data:`~diag.lab.plan.PEERINGS`), ``cilium_api``
        (the Cilium BGP CRDs' version), ``kube_denied`` (API resources answered with 403)."""
        validate(name, cni, mode, addressing, bird, peering, cilium_api)
        environment.check()
        if cni == "calico" and bird == "1.6":
            environment.check_bird1()
        say = progress or (lambda _msg: None)
        if LabState.read(name) is not None or run_dir(name).exists():
            raise UsageError(f"lab {name!r} already exists ({run_dir(name)})",
                             hint=f"diag lab status --name {name}, or remove it first: "
                                  f"diag lab down --name {name}")
        plan = P.addressing_plan(addressing, peering)
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
                         bird=bird if cni == "calico" else "", peering=peering,
                         cilium_api=cilium_api if cni == "cilium" else "",
                         namespaces=network.namespace_names(name, plan))
        state.save()                          # namespaces recorded before they exist
        lab = cls(state)
        try:
            say(f"building namespaces and links ({cni}, {mode}, addressing {addressing})")
            network.build(name, plan, cni, mode)
            state.timings["network_s"] = round(time.monotonic() - started, 3)
            state.phase = "starting"
            state.save()
            say("starting sshd, FRR, " + ("GoBGP" if cni == "cilium" else f"BIRD {bird}")
                + " (configured from the lab's Kubernetes objects), the Kubernetes API endpoint")
            lab.files.write_secrets()
            lab.cluster.write_objects(tuple(kube_denied))   # the daemons' configs come from them
            lab.daemons.start_all(use_pam=_root_is_locked())
            lab.cluster.start_api()
            say("waiting for BGP sessions and routes")
            lab.daemons.wait_ready(timeout, started)
            lab.cluster.wait_api(timeout=max(2.0, started + timeout - time.monotonic()))
            lab.cluster.announce()
            lab.files.write_ssh_client_files()
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
                                              f"hosts' logs under {run_dir(name)}") from err
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

    def reload(self) -> LabState:
        """The state as recorded now (another process may have changed it); kept."""
        fresh = LabState.read(self.name)
        if fresh is not None:
            self._state = fresh
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

    def plan_host(self, name: str) -> P.Host:
        """The addressing plan's host ``name``; a usage error naming the hosts otherwise."""
        try:
            return self.plan.host(name)
        except KeyError:
            raise UsageError(f"no host {name!r} in lab {self.name!r}",
                             hint="hosts: " + ", ".join(h.name for h in self.plan.hosts)) from None

    def netns(self, host: str) -> str:
        self.plan_host(host)
        return network.host_netns(self.name, host)

    def daemon(self, host: str) -> str:
        if self.plan_host(host).role == "router":
            return "frr"
        return "gobgp" if self.cni == "cilium" else "bird"

    def collect_command(self) -> str:
        hosts = " ".join(h.name for h in self.plan.hosts)
        return (f"diag collect --ssh-config {self.files.ssh_config_path} "
                f"--known-hosts {self.files.known_hosts_path} {hosts}")

    def kube_collect_command(self) -> str:
        """Reading the lab's objects with kubectl, as from a real cluster."""
        return self.cluster.collect_command()

    def ssh_command(self, host: str = P.MD5_PEER) -> str:
        return f"ssh -F {self.files.ssh_config_path} {host}"

    # --- running things -----------------------------------------------------------------------

    def enter_argv(self, host: str) -> list[str]:
        """argv prefix that runs a command "on" ``host``: its namespace, its hostname (own UTS
        namespace) and its daemons' control sockets at their default paths (private mounts), so
        plain ``vtysh``, ``birdc`` and ``gobgp`` work as on a real machine."""
        self.plan_host(host)
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
        if self.plan_host(host).role != "node":
            raise UsageError(f"{host} has no pod (the router is not a node)")
        return run(["ip", "netns", "exec", network.pod_netns(self.name, host), *argv],
                   check=check, timeout=timeout)

    def pod_ping(self, src: str, dst: str, *, count: int = 2,
                 deadline: float = 4) -> subprocess.CompletedProcess:
        """Ping from the pod of ``src`` to the pod of ``dst`` (real ICMP, bounded)."""
        target = self.plan_host(dst).pod_ip
        return self.exec_pod(src, ["ping", "-n", "-q", "-c", str(count), "-i", "0.2",
                                   "-W", "1", "-w", f"{deadline:g}", target],
                             check=False, timeout=deadline + 5)

    def _default_socket_mounts(self, host: str) -> list[tuple[Path, str]]:
        h = self.plan_host(host)
        if h.role == "router":
            return [(self.files.frr_dir, "/run/frr")]
        if self.cni == "calico":
            mounts = [(self.files.bird_socket(host).parent, "/run/bird")]
            if self.state.bird == "1.6":
                # the host's `bird` and `birdc` are BIRD 1.6's (bird2's `birdcl` stays: it
                # serves as calico-node's birdcl)
                mounts += [(environment.BIRD1, "/usr/sbin/bird"),
                           (environment.BIRD1_CLIENT, "/usr/sbin/birdc")]
            return mounts
        return []


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
        forget_frr_state(record)
    shutil.rmtree(run_dir(name), ignore_errors=True)
    seconds = time.monotonic() - started
    if present or state is not None:
        run_root().mkdir(mode=0o755, parents=True, exist_ok=True)
        record_teardown(name, seconds)
    return seconds


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
