"""Smoke runs of the hostile-evidence benchmarks at a tiny size (the real runs stay out of CI):
benchmarks/fuzz.py tries its three targets and reports no internal error; the memory benchmark
builds its hostile bundle (every output at the reading limit) and facts reads it with exit 0."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_fuzz_benchmark_runs_small(tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/fuzz.py", "--scale", "0.0004",
                           "--workers", "1", "--crashes", str(tmp_path / "crashes")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "inputs tried: decoder 400, parsers 40, whole bundles 2" in proc.stdout
    assert "internal errors: 0 (0 distinct)" in proc.stdout and "peak RSS" in proc.stdout


def test_memory_benchmark_bundle_is_read(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import hostile_memory
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from diag.bundle import MAX_OUTPUT_BYTES

    root = hostile_memory.build_bundle(tmp_path, capture_mb=1)
    sizes = {p.stat().st_size for p in root.rglob("*.out")}
    assert all(MAX_OUTPUT_BYTES - 64 <= size <= MAX_OUTPUT_BYTES for size in sizes)  # at the limit
    code, peak, _ = hostile_memory.measure(["facts", str(root)], ROOT)
    assert code == 0 and peak > 0
