"""The session's lab store: one lab per (cni, mode, addressing), faults cycled in it, one bundle per
(lab, fault) collected once with the real `diag collect` command the lab prints, shared by the lab,
explain and report tests (fixture ``labs`` in tests/conftest.py).

With each bundle the kernel's own answers are recorded at the same moment (the oracle for the path
tracer): ``ip -j route get ADDR`` on every host for pod IPs, node IPs, management addresses, an
address of each node subnet no host holds (LoadBalancer-ish), an unallocated pod-range address and
an off-cluster address.

Lab names come from LAB_NAMES, prefixed by $DIAG_TEST_LAB_PREFIX (default empty) so two suites on
one machine do not clobber each other's labs.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


LAB_NAMES = {("cilium", "native", "default"): "exc", ("calico", "native", "default"): "exk",
             ("calico", "vxlan", "default"): "exv", ("calico", "native", "alt"): "exa"}
OFF_CLUSTER = "198.51.100.77"     # TEST-NET-2: routed by nobody in the lab, an outside address


@dataclass(frozen=True)
class LabBundle:
    path: Path
    lab: object
    fault: str | None
    kernel: dict            # (host, addr) -> parsed `ip -j route get` or {"error": stderr}
    seconds: float


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


class Labs:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.labs: dict = {}
        self.bundles: dict = {}
        self.timings: list[tuple[str, float]] = []

    def lab(self, cni: str, mode: str, addressing: str = "default"):
        key = (cni, mode, addressing)
        if key not in self.labs:
            from diag.lab import Lab, teardown

            name = os.environ.get("DIAG_TEST_LAB_PREFIX", "") + LAB_NAMES[key]
            teardown(name)
            started = time.monotonic()
            self.labs[key] = Lab.up(name, cni=cni, mode=mode, addressing=addressing)
            self.timings.append((f"up {name}", time.monotonic() - started))
        return self.labs[key]

    def bundle(self, cni: str, mode: str, fault: str | None, addressing: str = "default",
               extra: tuple[str, ...] = ()) -> LabBundle:
        key = (cni, mode, addressing, fault)
        if key in self.bundles:
            return self.bundles[key]
        from diag.lab import faults

        lab = self.lab(cni, mode, addressing)
        started = time.monotonic()
        if fault is None:
            faults.heal(lab)
        else:
            faults.apply(lab, fault)
        kernel = kernel_answers(lab, probe_addresses(lab))
        out = self.tmp / f"{lab.name}-{fault or 'healthy'}"
        argv = shlex.split(lab.collect_command())
        assert argv[:2] == ["diag", "collect"]
        proc = subprocess.run([sys.executable, "-m", "diag", *argv[1:], *extra, "-o", str(out)],
                              capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[2])
        assert proc.returncode in (0, 3), proc.stderr[-2000:]
        seconds = time.monotonic() - started
        self.timings.append((f"{lab.name} {fault or 'healthy'}", seconds))
        result = LabBundle(out, lab, fault, kernel, seconds)
        self.bundles[key] = result
        return result

    def down(self) -> None:
        for lab in self.labs.values():
            try:
                lab.down()
            except Exception:  # noqa: BLE001 - teardown must go on for the other labs
                pass
