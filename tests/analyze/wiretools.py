"""Helpers of the capture-only explain tests: run `diag explain CAPTURE --format json` as a user
would, and read fields of one frame back with tshark (the oracle)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
needs_tshark = pytest.mark.skipif(
    subprocess.run(["which", "tshark"], capture_output=True).returncode != 0,
    reason="tshark not installed")


def explain(path: Path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "diag", "explain", str(path), "--format", "json"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def tshark_fields(path: Path, frame: int, *fields: str, decode_as: tuple[str, ...] = ()
                  ) -> list[str]:
    """The first occurrence of each field in ``frame`` (the outermost layer)."""
    args = ["tshark", "-n", "-r", str(path)]
    for d in decode_as:
        args += ["-d", d]
    args += ["-Y", f"frame.number=={frame}", "-T", "fields", "-E", "occurrence=f"]
    for f in fields:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout
    return out.rstrip("\n").split("\t")
