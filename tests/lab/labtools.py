"""Helpers for the lab tests: the case table, running the CLI, finding leftovers, root snapshot.

The labs themselves belong to the session lab store (tests/labstore.py: names ``tl...``,
prefixed by $DIAG_TEST_LAB_PREFIX). Oracles are the kernel (``ip``, ``ss``, /proc), the daemons'
own CLIs and real ``ping``/``ssh`` — never diag's own reading of them.
"""
from __future__ import annotations

import os
from pathlib import Path

from tests.labstore import (LAB_NAMES, diag_cli, lab_prerequisites,  # noqa: F401 - re-exported
                            root_namespace_snapshot)

# (cni, mode, addressing) -> lab name, the store's
CASES = LAB_NAMES


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
