"""The lake and Dask benchmarks at smoke sizes (CI): each runs, and says its outputs agree —
the Dask run prints the bytes of the local run, the healthy fleet has no warning, the
questions of docs/facts.md run on exported lab bundles. The figures are in docs, not checked."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def _run(*argv, timeout=300):
    proc = subprocess.run([sys.executable, *map(str, argv)], check=False, capture_output=True, text=True,
                          cwd=ROOT, env=ENV, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    start = proc.stdout.index("{") if proc.stdout.lstrip().startswith("{") else \
        proc.stdout.index("[")
    return json.loads(proc.stdout[start:])


def test_fleet_explain_from_a_lake_written_directly():
    pytest.importorskip("duckdb")
    doc = _run(ROOT / "benchmarks/lake_scale.py", "--hosts", "30", "--routes", "200", "--split")
    assert doc["warnings_or_errors"] == 0 and doc["findings"] == 0
    assert doc["stages"]["sweep_rows_covering_a_probe"] >= 29 * 28


def test_export_and_questions_on_lab_bundles():
    pytest.importorskip("duckdb")
    (doc,) = _run(ROOT / "benchmarks/lake_bench.py", "--bundles", "9")
    assert doc["parquet_files"] >= 9 * 20
    assert doc["queries"]["rib_not_in_fib"]["rows"] > 0      # Cilium: GoBGP installs nothing


def test_dask_against_workers():
    pytest.importorskip("distributed")
    doc = _run(ROOT / "benchmarks/dask_decode.py", "--captures", "3", "--packets", "2000")
    assert doc["same_output"] is True
