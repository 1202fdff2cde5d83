"""Peak memory of facts, explain and report on hostile evidence at the reading limits.

Usage::

    python benchmarks/hostile_memory.py [--work /tmp/hostile] [--capture-mb 200] [--big-gb 1.0]
                                        [--skip-big] [--budget-mb 300]

Builds, from the 4-host fixture bundle of tests/fixtures/bundles, a bundle in which every command
output is at the reading limit (diag.bundle.MAX_OUTPUT_BYTES, the collector's cap) and filled
with hostile content — binary junk, junk of one-byte lines, JSON nested millions deep, JSON
with a million tiny objects of the wrong types — and every host's capture is ``--capture-mb``
of zero-length records (the collector's default capture cap is 200 MB); then a bare capture of
``--big-gb`` GB of zero-length records. It runs ``diag facts``, ``diag explain`` and ``diag
report`` on each as separate processes and prints each one's peak RSS (``wait4``), wall time
and exit status; the goal (issue: hostile evidence) is at most ``--budget-mb`` (300) for every
run and never exit status 70. Exit status: 0 when every run is within the budget, 1 otherwise.

Not a timed test: a full run (4 x 200 MB captures, a 1 GB capture) takes tens of minutes on two
cores. tests/test_benchmark_smoke.py runs it at a tiny size.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "bundles" / "calico-vxlan-alt.tar.gz"
MIB = 1 << 20


def _zero_records(path: Path, size: int) -> None:
    """A classic pcap of ``size`` bytes: the header, then zero-length records only."""
    record = struct.pack("<IIII", 1_700_000_000, 0, 0, 0)
    block = record * (MIB // len(record))
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        left = max(0, size - 24) // len(record) * len(record)
        while left > 0:
            piece = block[:min(left, len(block))]
            out.write(piece)
            left -= len(piece)


def _filler(kind: str, size: int) -> bytes:
    if kind == "junk":
        seed = hashlib.sha256(b"diag").digest()
        return (seed * (size // len(seed) + 1))[:size]
    if kind == "lines":
        return b"x\n" * (size // 2)
    if kind == "deep":
        return b"[" * (size // 2) + b"]" * (size // 2)
    if kind == "wide":         # a million small objects of the wrong types
        item = b'{"ifname":5,"mtu":"x","dst":[],"priority":"p","flags":7},'
        count = (size - 2) // len(item)
        return (b"[" + item * count)[:-1] + b"]"
    raise ValueError(kind)


KINDS = ("junk", "lines", "deep", "wide")


def build_bundle(work: Path, capture_mb: int) -> Path:
    """The fixture bundle with every output at the reading limit and hostile, and every capture
    ``capture_mb`` of zero-length records; the manifest's sizes and hashes made to match (the
    files are damaged content, not a damaged bundle)."""
    from diag.bundle import MAX_OUTPUT_BYTES

    with tarfile.open(FIXTURE) as tar:
        tar.extractall(work, filter="data")
    root = work / FIXTURE.name.removesuffix(".tar.gz")
    manifest = json.loads((root / "manifest.json").read_text())
    fillers = {kind: _filler(kind, MAX_OUTPUT_BYTES) for kind in KINDS}
    for n, (host, record) in enumerate(sorted(manifest["hosts"].items())):
        for k, command in enumerate(record["commands"]):
            path = command.get("path")
            if not path:
                continue
            target = root / path
            if path.endswith(".pcap"):
                _zero_records(target, capture_mb * MIB)
            else:
                target.write_bytes(fillers[KINDS[(n + k) % len(KINDS)]])
            command["bytes"] = target.stat().st_size
            command["sha256"] = _sha256(target)
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return root


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def measure(args: list[str], cwd: Path) -> tuple[int, float, float]:
    """(exit status, peak RSS in MB, seconds) of ``python -m diag ARGS`` in its own process."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "diag", *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    err = proc.stderr.read().decode(errors="replace").strip()
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        print(f"    exit {code}: {err.splitlines()[-1] if err else ''}")
    return code, usage.ru_maxrss / 1024, seconds


def run(source: Path, out: Path, budget: float) -> bool:
    within = True
    for args in (["facts", str(source)], ["explain", str(source)],
                 ["report", str(source), "-o", str(out / "report.html")]):
        code, peak, seconds = measure(args, ROOT)
        ok = peak <= budget and code in (0, 1)
        within &= ok
        print(f"  {args[0]:<8} peak RSS {peak:7.1f} MB  {seconds:7.1f} s  exit {code}"
              f"  {'ok' if ok else 'OVER BUDGET' if code in (0, 1) else 'FAILED'}")
    return within


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (kept)")
    parser.add_argument("--capture-mb", type=int, default=200,
                        help="each host's capture, in MB of zero-length records (default 200)")
    parser.add_argument("--big-gb", type=float, default=1.0,
                        help="the bare capture, in GB of zero-length records (default 1)")
    parser.add_argument("--skip-big", action="store_true", help="no bare capture")
    parser.add_argument("--budget-mb", type=float, default=300.0)
    options = parser.parse_args(argv)
    work = options.work or Path(tempfile.mkdtemp(prefix="diag-hostile-"))
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    print(f"hostile bundle: 4 hosts, every output at the reading limit ({', '.join(KINDS)}), "
          f"captures of {options.capture_mb} MB of zero-length records")
    bundle = build_bundle(work / "bundle", options.capture_mb)
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    print(f"  {size / MIB:.0f} MB in {bundle}")
    within = run(bundle, work, options.budget_mb)
    if not options.skip_big:
        big = work / "zero-length.pcap"
        _zero_records(big, int(options.big_gb * 1024 * MIB))
        print(f"bare capture: {big.stat().st_size / MIB:.0f} MB of zero-length records")
        within &= run(big, work, options.budget_mb)
    if options.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print("within the budget" if within else f"OVER the budget of {options.budget_mb:.0f} MB")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
