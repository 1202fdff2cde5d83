"""Benchmark `diag collect` fan-out against real sshd endpoints in network namespaces.

    sudo python3 benchmarks/collect_fanout.py [--hosts 10] [--delay 0.3] [--plain 50] [--smoke]

1. one host whose every command carries a fixed added delay (sshd ``ForceCommand sleep D; ...``),
2. ``--hosts`` such hosts at once: the wall-time ratio to (1) measures fan-out, not this machine's
   cores (target <= 1.5x),
3. ``--plain`` hosts without delay: wall time, and diag's own CPU time and peak RSS per host
   (``wait4`` rusage of the ``diag collect`` process and its children, i.e. including the
   ``ip netns exec nc`` ProxyCommands).

Prints measured figures (and ``--json FILE``); needs root for the namespaces. Uses the tests'
sshd harness (tests/collect/sshd_netns.py); everything it creates is removed at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "collect"))

import sshd_netns  # noqa: E402


def run_collect(harness: sshd_netns.Harness, names: list[str], out: Path,
                fanout: int) -> dict:
    argv = [sys.executable, "-m", "diag", "collect", "--ssh-config", str(harness.ssh_config),
            "-o", str(out), "--format", "json", "--fanout", str(fanout), *names]
    started = time.monotonic()
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    process.stdout.close()
    process.stderr.close()
    summary = json.loads(stdout)
    return {"hosts": len(names), "wall_s": round(wall, 3),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "max_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "status": summary["status"], "exit": os.waitstatus_to_exitcode(status),
            "commands": sum(h["commands_total"] for h in summary["hosts"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.3)
    parser.add_argument("--plain", type=int, default=50)
    parser.add_argument("--fanout", type=int, default=16)
    parser.add_argument("--smoke", action="store_true", help="3 delayed and 5 plain hosts")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.smoke:
        args.hosts, args.plain = 3, 5
    reason = sshd_netns.available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 5
    work = Path(tempfile.mkdtemp(prefix="diag-bench-collect-"))
    harness = sshd_netns.Harness(work / "sshd", f"dgb{os.getpid() % 10000}")
    results: dict[str, dict] = {}
    try:
        delayed = [f"d{i}" for i in range(args.hosts)]
        for name in delayed:
            harness.add(name, delay=args.delay)
        results["one_delayed"] = run_collect(harness, delayed[:1], work / "b1", args.fanout)
        results["many_delayed"] = run_collect(harness, delayed, work / "b2", args.fanout)
        for name in delayed:
            harness.kill_sshd(harness.hosts[name])
        plain = [f"p{i}" for i in range(args.plain)]
        started = time.monotonic()
        for name in plain:
            harness.add(name)
        setup = time.monotonic() - started
        results["plain"] = run_collect(harness, plain, work / "b3", args.fanout)
        results["plain"]["sshd_setup_s"] = round(setup, 2)
    finally:
        harness.cleanup()
    one, many, plain_run = results["one_delayed"], results["many_delayed"], results["plain"]
    ratio = many["wall_s"] / one["wall_s"]
    print(f"delay {args.delay:g}s per command, fanout {args.fanout}")
    print(f"1 delayed host : {one['wall_s']:.2f}s wall ({one['commands']} commands)")
    print(f"{args.hosts} delayed hosts: {many['wall_s']:.2f}s wall -> {ratio:.2f}x one host "
          f"(target <= 1.5x)")
    # per host: the increase over the one-host run (Python start-up and imports are paid once)
    extra_hosts = max(1, args.plain - 1)
    cpu_per_host = (plain_run["cpu_s"] - one["cpu_s"]) / extra_hosts
    rss_per_host = (plain_run["max_rss_mib"] - one["max_rss_mib"]) / extra_hosts
    print(f"{args.plain} plain hosts : {plain_run['wall_s']:.2f}s wall, "
          f"CPU {plain_run['cpu_s']:.2f}s (+{cpu_per_host * 1000:.0f} ms per extra host), "
          f"peak RSS {plain_run['max_rss_mib']:.0f} MiB (+{rss_per_host:.2f} MiB per extra host; "
          f"one host: {one['cpu_s']:.2f}s CPU, {one['max_rss_mib']:.0f} MiB), "
          f"status {plain_run['status']}")
    results["ratio_many_to_one"] = round(ratio, 3)
    results["cpu_ms_per_extra_host"] = round(cpu_per_host * 1000, 1)
    results["rss_mib_per_extra_host"] = round(rss_per_host, 3)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    ok = all(r["status"] == "complete" for r in (one, many, plain_run))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
