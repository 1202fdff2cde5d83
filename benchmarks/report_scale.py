"""Benchmark `diag report` at scale: the synthetic bundle of benchmarks/explain_scale.py, rendered
as HTML, Markdown and JSON; prints the wall time of each run (a subprocess, as an operator runs it)
and the size of each file.

    python3 benchmarks/report_scale.py                         # 100 hosts x 1,000 routes
    python3 benchmarks/report_scale.py --hosts 500 --routes 5000 --break-node 7
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _scale_module():
    spec = importlib.util.spec_from_file_location("explain_scale",
                                                  REPO / "benchmarks/explain_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--break-node", type=int, default=None,
                        help="remove one kernel route on this node (a finding to point at)")
    parser.add_argument("--formats", default="html,md,json")
    parser.add_argument("--keep", type=Path, default=None, help="write bundle and reports here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="diag-report-scale-") as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        bundle = _scale_module().build(out / "bundle", args.hosts, args.routes, args.break_node)
        took = time.monotonic() - started
        print(f"built {args.hosts} hosts x {args.routes} routes in {took:.1f} s")
        for fmt in args.formats.split(","):
            target = out / f"report.{fmt}"
            started = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "diag", "report", str(bundle), "-o",
                                   str(target), "--fail-on", "never"], cwd=REPO,
                                  capture_output=True, text=True)
            took = time.monotonic() - started
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            size = target.stat().st_size / 1024
            print(f"diag report -o report.{fmt}: {took:.1f} s, {size:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
