"""Many captures: ``diag pcap FILE... --workers 2`` against a Dask LocalCluster of 2 workers.

    python3 benchmarks/dask_decode.py                                 # 16 captures x 100,000
    python3 benchmarks/dask_decode.py --captures 4 --packets 20000    # smaller
    python3 benchmarks/dask_decode.py --dir /tmp/caps                 # keep the captures

The captures are benchmarks/generate.py's mix (seeds 1..N; ~38 MB per 100,000 packets, so each
is split in two by ``--workers 2``). Both runs are whole processes, as an operator runs them:
``diag pcap FILES --format json --workers 2`` (each file in turn, two processes each) and the
same with ``--scheduler local`` (a LocalCluster of two worker processes started by the command,
its start-up included; files are dealt to the workers whole). Prints wall and CPU seconds
(CPU: the command and its children; a LocalCluster's workers are its children) and exits 1
unless the two outputs are the same bytes. On one machine the two should be on par: the point of
the Dask path is that the same code runs on more machines.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("bench_generate", REPO / "benchmarks/generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def captures(directory: Path, count: int, packets: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    generate = None
    for seed in range(1, count + 1):
        path = directory / f"mix-{packets}-{seed:02d}.pcap"
        if not path.exists():
            generate = generate or _generator().generate
            generate(packets, path, seed=seed)
        out.append(path)
    return out


def timed(argv: list[str]) -> tuple[float, float, bytes]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(argv, check=False, capture_output=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[3:6])} failed: {proc.stderr.decode()[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu, proc.stdout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--captures", type=int, default=16)
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir", type=Path, help="where the captures are (made if missing)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dask-decode-") as tmp:
        started = time.monotonic()
        files = [str(p) for p in captures(args.dir or Path(tmp), args.captures, args.packets)]
        made = time.monotonic() - started
        base = [sys.executable, "-m", "diag", "pcap", *files, "--format", "json"]
        local = timed(base + ["--workers", str(args.workers)])
        dask = timed(base + ["--scheduler", "local", "--workers", str(args.workers)])
    same = local[2] == dask[2]
    result = {"captures": args.captures, "packets_each": args.packets,
              "bytes_total_mib": round(sum(Path(f).stat().st_size for f in files) / 2**20, 1)
              if args.dir else None,
              "generate_s": round(made, 1),
              "workers_s": round(local[0], 2), "workers_cpu_s": round(local[1], 2),
              "dask_local_cluster_s": round(dask[0], 2), "dask_cpu_s": round(dask[1], 2),
              "same_output": same, "output_sha256": hashlib.sha256(local[2]).hexdigest()[:16],
              "load_average": round(os.getloadavg()[0], 1)}
    print(json.dumps(result, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
