"""Helpers for the lab tests: the case table, running the CLI, finding leftovers, root snapshot.

Test labs are named ``tl...`` so they never collide with other
engineers' labs. Oracles are the kernel (``ip``, ``ss``, /proc), the daemons' own CLIs and real
``ping``/``ssh`` — never diag's own reading of them.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REQUIRED = ["ip", "unshare", "vtysh", "gobgpd", "gobgp", "bird", "birdc", "ssh", "ssh-keygen", "nc"]

# (cni, mode, addressing) -> lab name (<= 12 chars, lower-case)
CASES = {
    ("cilium", "native", "default"): "tlcn",
    ("cilium", "vxlan", "default"): "tlcv",
    ("calico", "native", "default"): "tlkn",
    ("calico", "vxlan", "default"): "tlkv",
    ("cilium", "native", "alt"): "tlacn",
    ("calico", "vxlan", "alt"): "tlakv",
}


def lab_prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)"
    missing = [t for t in REQUIRED if not shutil.which(t)]
    if not Path("/usr/lib/frr/zebra").exists():
        missing.append("frr")
    return f"missing tools: {', '.join(missing)}" if missing else None


def diag_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diag", *args], capture_output=True, text=True,
                          timeout=timeout)


def leftovers(name: str) -> list[str]:
    """Anything of lab ``name`` still on the host: namespaces, live processes, the run dir."""
    found = [f"netns {ns}" for ns in _netns() if ns.startswith(f"{name}-")]
    marker = f"/diag-lab/{name}/".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state not in ("Z", "X"):
            shown = cmdline.replace(b"\0", b" ")[:120].decode(errors="replace")
            found.append(f"process {entry}: {shown}")
    run_dir = Path(os.environ.get("DIAG_LAB_RUN_DIR", "/run/diag-lab")) / name
    if run_dir.exists():
        found.append(f"run dir {run_dir}")
    return found


def _netns() -> list[str]:
    try:
        return os.listdir("/run/netns")
    except FileNotFoundError:
        return []


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


