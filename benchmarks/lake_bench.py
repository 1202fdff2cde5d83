"""The evidence lake's export and query times at 100 and 1,000 bundles.

    python3 benchmarks/lake_bench.py                       # 100, then 1,000 bundles
    python3 benchmarks/lake_bench.py --bundles 20 --keep /tmp/lake20

The bundles are the eight lab bundles of tests/fixtures/bundles (real daemons, captures
included), each copied with one field of its manifest changed (``run.copy``), so that every
copy is a new bundle id (the files and their sha256s are the originals: the copies are read
and verified as collected bundles are). Each is exported with ``diag facts BUNDLE --export``'s
pipeline function; then the questions of docs/facts.md ("Questions across incidents") run
through ``diag query``'s, three times each (the best is printed). Prints the figures as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# the five questions of docs/facts.md, "Questions across incidents"
QUESTIONS = {
    "rib_not_in_fib": """
        SELECT p.bundle, p.host, p.prefix, p.nexthop
        FROM bgp_paths p
        JOIN model_hosts m ON m.bundle = p.bundle AND m.pod_cidr = p.prefix
        WHERE p.rib = 'loc' AND p.best AND NOT p.local
          AND NOT EXISTS (SELECT 1 FROM routes r WHERE r.bundle = p.bundle
                          AND r.host = p.host AND r.dst = p.prefix)
        ORDER BY ALL""",
    "sessions_down_by_daemon": """
        SELECT p.daemon, h.os, p.state, count(*) AS sessions, count(DISTINCT p.bundle) AS bundles
        FROM bgp_peers p LEFT JOIN hosts h ON h.bundle = p.bundle AND h.host = p.host
        WHERE p.state <> 'ESTABLISHED'
        GROUP BY ALL ORDER BY sessions DESC""",
    "strict_rp_filter": """
        SELECT bundle, host, iface FROM sysctls
        WHERE name = 'rp_filter' AND value = '1' ORDER BY ALL""",
    "notifications_seen": """
        SELECT notify_name, notify_subname, count(*) AS messages,
               count(DISTINCT bundle) AS bundles
        FROM bgp_messages WHERE type_name = 'NOTIFICATION'
        GROUP BY ALL ORDER BY messages DESC""",
    "unanswered_arp": """
        SELECT bundle, host, target_ip, count(*) AS requests FROM arp
        WHERE op = 'request' AND NOT answered
        GROUP BY ALL ORDER BY requests DESC LIMIT 20""",
}


def copies(target: Path, count: int) -> list[Path]:
    """``count`` bundle directories: the lab bundles, each copy with its own manifest."""
    sources = sorted((REPO / "tests/fixtures/bundles").glob("*.tar.gz"))
    extracted = []
    for source in sources:
        where = target / "originals" / source.name.split(".")[0]
        if not where.exists():
            with tarfile.open(source) as tar:
                tar.extractall(where, filter="data")
        (root,) = [p for p in where.iterdir() if p.is_dir()]
        extracted.append(root)
    out = []
    for k in range(count):
        root = extracted[k % len(extracted)]
        copy = target / "copies" / f"{k:05d}-{root.name}"
        if not copy.exists():
            shutil.copytree(root, copy)
            manifest = json.loads((copy / "manifest.json").read_text())
            manifest.setdefault("run", {})["copy"] = k
            (copy / "manifest.json").write_text(json.dumps(manifest))
        out.append(copy)
    return out


def questions(lake_dir: Path) -> dict:
    """Each question of docs/facts.md, best of 3 (seconds, rows)."""
    from diag.pipeline import lake_query

    queries = {}
    for name, sql in QUESTIONS.items():
        best, rows = None, 0
        for _ in range(3):
            t = time.monotonic()
            rows = lake_query(lake_dir, sql).num_rows
            took = time.monotonic() - t
            best = took if best is None else min(best, took)
        queries[name] = {"seconds": round(best, 3), "rows": rows}
    return queries


def run(count: int, work: Path, lake_dir: Path) -> dict:
    from diag.pipeline import facts_export

    bundles = copies(work, count)
    started, cpu = time.monotonic(), time.process_time()
    for bundle in bundles:
        facts_export(bundle, lake_dir)
    export_s, export_cpu = time.monotonic() - started, time.process_time() - cpu
    again = time.monotonic()
    for bundle in bundles[:20]:
        facts_export(bundle, lake_dir)             # already there: the id and nothing else
    idempotent_s = (time.monotonic() - again) / min(20, len(bundles))
    size = sum(p.stat().st_size for p in lake_dir.rglob("*.parquet"))
    files = sum(1 for _ in lake_dir.rglob("*.parquet"))
    queries = questions(lake_dir)
    return {"bundles": count, "export_s": round(export_s, 1),
            "export_cpu_s": round(export_cpu, 1),
            "export_per_bundle_s": round(export_s / count, 3),
            "already_there_per_bundle_s": round(idempotent_s, 4),
            "lake_mib": round(size / 2**20, 1), "parquet_files": files, "queries": queries,
            "load_average": round(os.getloadavg()[0], 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundles", type=int, nargs="*", default=[100, 1000])
    ap.add_argument("--keep", type=Path, help="keep the copies and the lakes here")
    ap.add_argument("--lake", type=Path, help="only time the questions on this lake")
    args = ap.parse_args(argv)
    if args.lake:
        from diag import lake

        print(json.dumps({"bundles": len(lake.bundles(args.lake)),
                          "queries": questions(args.lake),
                          "load_average": round(os.getloadavg()[0], 1)}, indent=1))
        return 0
    with tempfile.TemporaryDirectory(prefix="lake-bench-") as tmp:
        work = args.keep or Path(tmp)
        results = [run(n, work, work / f"lake-{n}") for n in args.bundles]
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
