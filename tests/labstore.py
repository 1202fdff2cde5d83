"""The session's lab store: the one owner of every lab the test session builds (fixture ``labs`` in
tests/conftest.py), shared by tests/lab, tests/analyze and tests/report.

- One lab per (cni, mode, addressing), brought up through the CLI (``python -m diag lab up``) the
  first time a test asks for it; its stdout, bring-up time and the root namespace snapshot taken
  before it are kept (:class:`UpLab`) for the end-to-end tests. A lab torn down by a test (the
  e2e ``down`` test) is brought up again if another test asks for it later.
- One bundle per (lab, fault): the fault applied with ``diag lab fault NAME`` (the CLI), the
  kernel's own answers recorded (``ip -j route get ADDR`` on every host for pod IPs, node IPs,
  management addresses, an address of each node subnet no host holds, an unallocated pod-range
  address and an off-cluster address: the path tracer's oracle), then the ``diag collect``
  command the lab printed, with a short capture (:data:`CAPTURE`) and, for a hung speaker, a
  short command timeout. The fault is left applied: the fault-cycle test (tests/lab/test_faults.py)
  asks for the bundle first, checks the symptom with its own probes and heals; every later test
  asking for that (lab, fault) gets the same bundle. ``begin`` applies the fault and leaves the
  collection running in the background, so the fault test's probes run meanwhile.
- Prefetch: tests/conftest.py gives the store the plan of the collected tests (:class:`PlanItem`:
  the lab each acts on, the bundle each reads); after each test the store starts, in worker
  threads, the next planned bundles of labs no unfinished test needs (:meth:`Labs.advance`: one
  job per lab, at most ``max_jobs`` at once), so labs work side by side while the tests run one
  by one.

Lab names come from LAB_NAMES, prefixed by $DIAG_TEST_LAB_PREFIX (default empty) so that two
suites on one machine do not clobber each other's labs.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (cni, mode, addressing) -> lab name (<= 12 chars with the prefix, lower-case)
LAB_NAMES = {
    ("cilium", "native", "default"): "tlcn",
    ("cilium", "vxlan", "default"): "tlcv",
    ("calico", "native", "default"): "tlkn",
    ("calico", "vxlan", "default"): "tlkv",
    ("cilium", "native", "alt"): "tlacn",
    ("calico", "vxlan", "alt"): "tlakv",
}
OFF_CLUSTER = "198.51.100.77"     # TEST-NET-2: routed by nobody in the lab, an outside address
CAPTURE = ("--capture", "3s")     # short: the faults' background traffic is dense enough for it
# a SIGSTOPped speaker's CLI hangs until the command timeout: keep it short for that fault only
FAULT_COLLECT_ARGS = {"bgp-hold-timer-expired": ("--command-timeout", "4s")}
REQUIRED = ["ip", "unshare", "vtysh", "gobgpd", "gobgp", "bird", "birdc", "birdcl", "ssh",
            "ssh-keygen", "nc", "tcpdump", "arping"]


@lru_cache(maxsize=1)
def lab_prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)"
    from diag.lab.environment import BIRD1

    missing = [t for t in REQUIRED if not shutil.which(t)]
    if not Path("/usr/lib/frr/zebra").exists():
        missing.append("frr")
    if not BIRD1.exists():
        missing.append(f"BIRD 1.6 in {BIRD1} (sudo bash .ci/bird1.sh)")
    return f"missing tools: {', '.join(missing)}" if missing else None


def diag_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diag", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def root_namespace_snapshot() -> dict:
    """Interfaces, addresses and routes of the root namespace (what the lab must never touch)."""
    def ipj(*args: str):
        return json.loads(subprocess.run(["ip", "-j", *args], capture_output=True, text=True,
                                         check=True).stdout or "[]")
    links = sorted(link["ifname"] for link in ipj("link"))
    addrs = sorted((a["ifname"], i["local"]) for a in ipj("addr") for i in a.get("addr_info", []))
    routes = sorted(json.dumps({k: r.get(k) for k in ("dst", "dev", "gateway", "table", "type")},
                               sort_keys=True) for r in ipj("route", "show", "table", "all"))
    return {"links": links, "addrs": addrs, "routes": routes}


def lab_name(cni: str, mode: str, addressing: str = "default") -> str:
    return os.environ.get("DIAG_TEST_LAB_PREFIX", "") + LAB_NAMES[(cni, mode, addressing)]


@dataclass
class UpLab:
    name: str
    cni: str
    mode: str
    addressing: str
    up_stdout: str
    up_seconds: float
    root_before: dict
    collect_argv: tuple[str, ...]     # the `diag collect ...` line `up` printed, split

    @property
    def lab(self):
        """The lab as its state file says now (faults applied through the CLI change it)."""
        from diag.lab import Lab

        return Lab.load(self.name)

    @property
    def is_up(self) -> bool:
        from diag.lab.state import run_dir

        return (run_dir(self.name) / "state.json").exists()


@dataclass(frozen=True)
class LabBundle:
    path: Path
    lab: object
    fault: str | None
    kernel: dict            # (host, addr) -> parsed `ip -j route get` or {"error": stderr}
    seconds: float          # apply + kernel answers + collection
    apply_stdout: str = ""  # what `diag lab fault NAME` printed
    collect_argv: tuple[str, ...] = ()
    vxlan_ports: dict = field(default_factory=dict)   # host -> the kernel's vxlan dstport then


@dataclass(frozen=True)
class PlanItem:
    """What one collected test needs from the store, for the prefetcher (tests/conftest.py)."""
    nodeid: str
    lab: tuple | str | None     # (cni, mode, addressing), ANY_LAB (unknown: every lab), None
    cell: tuple | None          # the bundle it reads: (cni, mode, addressing, fault or None)
    holds_lab: bool             # acts on the live lab (probes, heals): later cells wait for it


ANY_LAB = "any"


@dataclass
class _Job:
    """One bundle under way: apply, kernel answers, collection (in a thread when prefetched)."""
    key: tuple
    applied: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    result: LabBundle | None = None
    error: BaseException | None = None


def probe_addresses(lab) -> list[str]:
    """Addresses to compare trace and kernel on, derived from the lab's own records."""
    out: list[str] = []
    for info in lab.hosts.values():
        out += [ip.split("/")[0] for ip in info.ips]
        if info.pod_ip:
            out.append(info.pod_ip)
    for info in lab.hosts.values():
        for ip in info.ips:
            net = ipaddress.ip_interface(ip).network
            if net.prefixlen <= 24:
                out.append(str(net.network_address + 212))       # LB-ish, held by nobody
    pod_range = ipaddress.ip_network(lab.plan.pod_range)
    out.append(str(pod_range.network_address + 250 * 256 + 7))  # unallocated pod-range address
    out.append(OFF_CLUSTER)
    return sorted(set(out), key=lambda a: ipaddress.ip_address(a))


def kernel_answers(lab, addresses: list[str]) -> dict:
    answers = {}
    for host in lab.hosts:
        script = "; ".join(f"echo '=={a}'; ip -j route get {a} 2>&1" for a in addresses)
        out = lab.exec(host, ["sh", "-c", script], check=False).stdout
        for chunk in out.split("==")[1:]:
            addr, _, body = chunk.partition("\n")
            body = body.strip()
            try:
                answers[(host, addr)] = json.loads(body)[0]
            except (ValueError, IndexError):
                answers[(host, addr)] = {"error": body}
    return answers


# ``extra`` starting with this: the bundle is collected with the lab's other printed line,
# `diag collect --kube --via kubectl ...` (every node through its agent pod, no SSH at all)
VIA_KUBECTL = ("<via-kubectl>",)


def collect_args(fault: str | None) -> tuple[str, ...]:
    """What the store adds to the lab's printed collect command for ``fault``'s bundle."""
    return CAPTURE + FAULT_COLLECT_ARGS.get(fault or "", ())


class Labs:
    """The store. Thread use: bundles may be prefetched by worker threads (:meth:`advance`), one
    job per lab at a time and at most :attr:`max_jobs` at once; the tests' own calls run in the
    main thread and wait for the job of the bundle they ask for."""

    max_jobs = 3

    def __init__(self, tmp: Path, plan: list[PlanItem] | None = None) -> None:
        self.tmp = tmp
        self.up: dict[tuple, UpLab] = {}
        self.bundles: dict[tuple, LabBundle] = {}
        self.jobs: dict[tuple, _Job] = {}
        self.timings: dict[str, dict[str, float]] = {}     # "lab cell" -> phase -> seconds
        self.applied: dict[tuple, int] = {}                 # (lab, fault) -> applications
        self.plan = list(plan or [])
        self.finished: set[str] = set()
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()

    # --- labs --------------------------------------------------------------------------------

    def running(self, cni: str, mode: str, addressing: str = "default") -> UpLab:
        """The session's lab for (cni, mode, addressing), brought up through the CLI if needed."""
        import pytest

        key = (cni, mode, addressing)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            known = self.up.get(key)
            if known is not None and known.is_up:
                return known
            reason = lab_prerequisites()
            if reason:
                pytest.skip(reason)
            name = lab_name(cni, mode, addressing)
            diag_cli("lab", "down", "--name", name)          # a previous, interrupted session
            root_before = root_namespace_snapshot()
            started = time.monotonic()
            proc = diag_cli("lab", "up", "--name", name, "--cni", cni, "--mode", mode,
                            "--addressing", addressing)
            elapsed = time.monotonic() - started
            assert proc.returncode == 0, f"diag lab up failed: {proc.stdout}\n{proc.stderr}"
            printed = next(line.strip() for line in proc.stdout.splitlines()
                           if line.strip().startswith("diag collect"))
            self.up[key] = UpLab(name, cni, mode, addressing, proc.stdout, elapsed, root_before,
                                 tuple(shlex.split(printed)))
            self.note(name, "up", elapsed)
            return self.up[key]

    def lab(self, cni: str, mode: str, addressing: str = "default"):
        return self.running(cni, mode, addressing).lab

    # --- bundles -----------------------------------------------------------------------------

    def begin(self, cni: str, mode: str, fault: str | None, addressing: str = "default",
              extra: tuple[str, ...] = ()) -> None:
        """Make sure ``fault`` is applied (None: healed) for that bundle and its collection is
        under way or done; returns once the fault is applied (the collection goes on)."""
        key = (cni, mode, addressing, fault, tuple(extra))
        if key in self.bundles:
            return
        job = self.jobs.get(key) or self._start(key, background=True)
        job.applied.wait()
        if job.error is not None:
            raise job.error

    def bundle(self, cni: str, mode: str, fault: str | None, addressing: str = "default",
               extra: tuple[str, ...] = ()) -> LabBundle:
        key = (cni, mode, addressing, fault, tuple(extra))
        if key in self.bundles:
            return self.bundles[key]
        job = self.jobs.get(key) or self._start(key, background=False)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def _start(self, key: tuple, *, background: bool) -> _Job:
        for other, job in list(self.jobs.items()):      # one job per lab at a time
            if other[:3] == key[:3] and other != key:
                job.done.wait()
        job = self.jobs[key] = _Job(key)
        if background:
            threading.Thread(target=self._run, args=(job,), daemon=True,
                             name=f"bundle {key}").start()
        else:
            self._run(job)
        return job

    def _run(self, job: _Job) -> None:
        cni, mode, addressing, fault, extra = job.key
        try:
            up = self.running(cni, mode, addressing)
            started = time.monotonic()
            apply_stdout = ""
            if fault is None:
                from diag.lab import faults

                faults.heal(up.lab)
            else:
                proc = diag_cli("lab", "fault", fault, "--name", up.name, timeout=120)
                assert proc.returncode == 0, \
                    f"diag lab fault {fault}: {proc.stdout}\n{proc.stderr}"
                apply_stdout = proc.stdout
                self.applied[(up.name, fault)] = self.applied.get((up.name, fault), 0) + 1
            job.applied.set()
            cell = fault or "healthy"
            self.note(up.name, cell, time.monotonic() - started, "apply")
            lab = up.lab
            out = self.tmp / f"{up.name}-{cell}{'-x' + str(len(self.jobs)) if extra else ''}"
            assert up.collect_argv[:2] == ("diag", "collect")
            if extra[:1] == VIA_KUBECTL:
                printed = next(line.strip() for line in up.up_stdout.splitlines()
                               if line.strip().startswith("diag collect --kube"))
                argv = [sys.executable, "-m", "diag", *shlex.split(printed)[1:], *extra[1:],
                        "-o", str(out)]
            else:
                argv = [sys.executable, "-m", "diag", *up.collect_argv[1:],
                        *collect_args(fault), *extra, "-o", str(out)]
            collecting = time.monotonic()
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, cwd=REPO)
            # the kernel's own answers while the collection runs: the same state, fault active
            kernel = kernel_answers(lab, probe_addresses(lab))
            ports = {}
            if mode == "vxlan":
                from diag.lab.faults.overlay import vxlan_port

                ports = {node.name: vxlan_port(lab, node.name) for node in lab.plan.nodes}
            try:
                stdout, stderr = proc.communicate(timeout=180)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
            assert proc.returncode in (0, 3), \
                f"{shlex.join(argv)} -> {proc.returncode}\n{stdout[-1000:]}\n{stderr[-2000:]}"
            now = time.monotonic()
            self.note(up.name, cell, now - collecting, "collect")
            job.result = LabBundle(out, lab, fault, kernel, now - started, apply_stdout,
                                   ("diag", *argv[3:]), ports)
            self.bundles[job.key] = job.result
        except BaseException as err:  # noqa: BLE001 - re-raised in the test that asks for it
            job.error = err
        finally:
            job.applied.set()
            job.done.set()

    # --- prefetching -------------------------------------------------------------------------

    def test_finished(self, nodeid: str) -> None:
        self.finished.add(nodeid)

    def advance(self) -> None:
        """Start the next planned bundles of labs nobody is using, in the background: a lab is
        free when no job runs on it and every earlier test acting on it has finished."""
        if not self.plan or lab_prerequisites():
            return
        running = [k for k, j in self.jobs.items() if not j.done.is_set()]
        busy = {k[:3] for k in running}
        blocked: set = set()          # labs an unfinished test (or an earlier cell) still needs
        for item in self.plan:
            if len(running) >= self.max_jobs:
                return
            if item.nodeid in self.finished:
                continue
            if item.cell is not None:
                key = (*item.cell, ())
                lab = item.cell[:3]
                if key not in self.jobs and lab not in busy and lab not in blocked \
                        and ANY_LAB not in blocked:
                    self._start(key, background=True)
                    running.append(key)
                    busy.add(lab)
                if key not in self.bundles:
                    blocked.add(lab)              # its later cells wait for this one
            if item.holds_lab and item.lab is not None:
                blocked.add(item.lab)

    # --- bookkeeping -------------------------------------------------------------------------

    def note(self, lab: str, cell: str, seconds: float, phase: str | None = None) -> None:
        phases = self.timings.setdefault(f"{lab} {cell}" if phase else lab, {})
        phases[phase or cell] = phases.get(phase or cell, 0.0) + seconds

    def report(self, total: float) -> str:
        lines = ["", f"lab store timings (total {total:.1f} s, {len(self.bundles)} bundles):"]
        for what, phases in self.timings.items():
            parts = ", ".join(f"{phase} {secs:.1f} s" for phase, secs in phases.items())
            lines.append(f"  {what}: {parts}")
        again = {k: n for k, n in self.applied.items() if n > 1}
        if again:
            lines.append(f"  faults applied more than once: {again}")
        return "\n".join(lines) + "\n"

    def down(self) -> None:
        for job in list(self.jobs.values()):
            job.done.wait(timeout=240)
        for up in self.up.values():
            if up.is_up:
                diag_cli("lab", "down", "--name", up.name)
