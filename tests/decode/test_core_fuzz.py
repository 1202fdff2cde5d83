"""The bounded fuzz run of the compiled core (CI's share of benchmarks/fuzz_core.py, whose
default is the long run of 1,000,000 inputs): 30,000 mutated frames, re-framed under every link
type, through a build with AddressSanitizer and the core's bounds assertions, every 10th batch
also against the reference decoder's summary; zero crashes."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler: no compiled core")
def test_bounded_fuzz_run_finds_no_crash(tmp_path):
    crashes = tmp_path / "crashes"
    proc = subprocess.run([sys.executable, "benchmarks/fuzz_core.py", "--inputs", "30000",
                           "--seed", "21", "--compare-every", "10", "--crashes", str(crashes)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert last.startswith("build asan: inputs 30,000") and "crashes 0" in last, last
    assert not crashes.exists()
