"""The fan-out benchmark at smoke size: it runs, completes every bundle and prints its figures."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_collect_fanout_benchmark_smoke(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    proc = subprocess.run([sys.executable, "benchmarks/collect_fanout.py", "--smoke",
                           "--delay", "0.2", "--json", str(tmp_path / "r.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "delayed hosts:" in proc.stdout and "ms per extra host" in proc.stdout
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["many_delayed"]["hosts"] == 3 and results["plain"]["hosts"] == 5
    assert results["ratio_many_to_one"] > 0
