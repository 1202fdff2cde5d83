"""Lab fixtures: one real lab per (cni, mode, addressing) per test session, built through the CLI.

Each lab is brought up with ``python -m diag lab up`` (so the printed commands are tested too) and
torn down with ``diag lab down`` by the last test of its group; the finalizer tears down again in
case a test failed half-way. Helpers and the case table live in labtools.py.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from labtools import CASES, diag_cli, lab_prerequisites, root_namespace_snapshot  # noqa: E402


@dataclass
class RunningLab:
    name: str
    cni: str
    mode: str
    addressing: str
    up_stdout: str
    up_seconds: float
    root_before: dict
    lab: object            # diag.lab.Lab


@pytest.fixture(scope="session", params=list(CASES), ids=lambda c: "-".join(c))
def running_lab(request):
    reason = lab_prerequisites()
    if reason:
        pytest.skip(reason)
    from diag.lab import Lab

    cni, mode, addressing = request.param
    name = CASES[request.param]
    diag_cli("lab", "down", "--name", name)          # a previous, interrupted session
    root_before = root_namespace_snapshot()
    started = time.monotonic()
    proc = diag_cli("lab", "up", "--name", name, "--cni", cni, "--mode", mode,
                    "--addressing", addressing)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, f"diag lab up failed: {proc.stdout}\n{proc.stderr}"
    try:
        yield RunningLab(name, cni, mode, addressing, proc.stdout, elapsed, root_before,
                         Lab.load(name))
    finally:
        diag_cli("lab", "down", "--name", name)
