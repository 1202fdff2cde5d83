"""Benchmark runner: diag's full decode against the ground truth, beside tshark and scapy.

Usage (from the repository root)::

    python benchmarks/run.py /tmp/mix.pcap               # a capture made by generate.py
    python benchmarks/run.py --packets 1000000 --out /tmp/mix.pcap   # generate first
    python benchmarks/run.py /tmp/mix.pcap --profile 200000          # + cProfile of the decode
    python benchmarks/run.py --packets 1000000 --mix bgp-heavy --out /tmp/heavy.pcap  # issue 21's

Which decoder runs is printed first (the compiled core when it is built; ``DIAG_DECODER=python``
in the environment times the pure-Python reference instead).

What it measures, each in a child process so that peak RSS (``ru_maxrss`` from ``wait4``, and
``VmHWM`` inside the child) belongs to that one run:

* diag, marginal: ``iter_decode`` consuming every table (BGP reassembly, per-prefix rows, tunnels,
  ARP) plus :class:`diag.decode.summary.CaptureSummary`, timed after the imports (start-up apart);
* diag, whole process: ``python -m diag pcap FILE --format json`` from exec to exit;
* both pinned to one core (``taskset -c 0``);
* ``diag pcap``'s work (decode + summary, no tables) in one process pinned to one core and with
  ``--workers`` = every usable core (:mod:`diag.decode.parallel`), marginal (imports apart) and
  whole process; CPU time includes the workers'; the summaries must be identical;
* tshark (``-T fields`` with VXLAN decode-as on 8472) and scapy (``rdpcap`` + layer access) on a
  fixed slice of the same file (the first 20,000 packets, written with struct), with diag's
  marginal rate on the same slice; tshark's peak RSS;
* start-up: ``diag --help`` and ``diag pcap`` on a 50-packet capture (median of 5 runs);
* the counts-only reader (benchmarks/count_reader.py: pure Python with struct, counting packets,
  VXLAN VNIs with the inner protocol, BGP message types from reassembled streams and ARP opcodes)
  on the whole file, pinned to the same core, its counts checked against the truth too; the
  runner prints how many times faster ``diag pcap --workers 1``'s work is;
* the same ``diag pcap --format json --workers 1`` output from the pure-Python reference decoder
  on the slice (``--reference-packets``), which must be identical;
* the targets (issue 21), each met or not: ``diag pcap --workers 1`` >= 1,000,000 packets/s on
  one core and >= 1.3x the counts-only reader, ``iter_decode`` (all tables) >= 500,000/s, peak
  RSS <= 200 MB (as measured on this file: a 1 GB file is the target's size), ``--workers N``
  near-linear, start-up <= 0.3 s, counts exact. Rates per wall second and per CPU second
  (steadier on a shared machine); the load average is printed before and after.

The counts diag produces (packets, BGP messages by type, prefix rows, unique prefixes, packets per
VNI, ARP requests/replies/answered/unanswered, multiple responders, malformed) are compared with
the generator's truth (``x.truth.json`` beside ``x.pcap``); the exit status is 1 if any differs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SLICE_PACKETS = 20_000
TINY_PACKETS = 50
TARGET_RATE = 500_000             # iter_decode, all tables, one core
TARGET_PCAP_RATE = 1_000_000      # diag pcap --workers 1 (decode + summary), one core
TARGET_READER_RATIO = 1.3         # diag pcap --workers 1 against the counts-only reader
TARGET_RSS_MB = 200
TARGET_STARTUP = 0.3
REFERENCE_PACKETS = 200_000


# --- slicing (classic pcap, struct) ------------------------------------------------------------
def _record_header(head: bytes) -> struct.Struct | None:
    """A classic pcap file's record header, by the byte order its magic says; None for any
    other file (pcapng)."""
    if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        return struct.Struct("<IIII")
    if head[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        return struct.Struct(">IIII")
    return None


def is_classic_pcap(path: Path) -> bool:
    with open(path, "rb") as fh:
        return _record_header(fh.read(24)) is not None


def write_slice(src: Path, dst: Path, packets: int) -> int:
    """Copy the first ``packets`` records of a classic pcap file; returns how many were copied."""
    with open(src, "rb") as fh, open(dst, "wb") as out:
        head = fh.read(24)
        rec = _record_header(head)
        if rec is None:
            out.close()
            dst.unlink()
            if not shutil.which("editcap"):
                raise SystemExit(f"{src}: not a classic pcap and no editcap to slice it")
            subprocess.run(["editcap", "-r", str(src), str(dst), f"1-{packets}"], check=True)
            return packets
        out.write(head)
        n = 0
        while n < packets:
            h = fh.read(16)
            if len(h) < 16:
                break
            incl = rec.unpack(h)[2]
            out.write(h + fh.read(incl))
            n += 1
        return n


def write_pieces(src: Path, directory: Path, pieces: int, packets: int) -> list[Path]:
    """Cut the first ``packets`` records of a classic pcap file into ``pieces`` files of
    consecutive records, as equal in count as they can be (the perfect split's inputs)."""
    sizes = [packets // pieces + (1 if k < packets % pieces else 0) for k in range(pieces)]
    paths = [directory / f"piece-{k}-of-{pieces}.pcap" for k in range(pieces)]
    with open(src, "rb") as fh:
        head = fh.read(24)
        rec = _record_header(head)
        if rec is None:
            raise SystemExit(f"{src}: the perfect split needs a classic pcap file")
        for path, size in zip(paths, sizes):
            with open(path, "wb") as out:
                out.write(head)
                for _ in range(size):
                    h = fh.read(16)
                    if len(h) < 16:
                        raise SystemExit(f"{src}: fewer than {packets} records")
                    out.write(h + fh.read(rec.unpack(h)[2]))
    return paths


# --- running children --------------------------------------------------------------------------
def run_child(argv: list[str], pin: bool, capture_stdout: bool = True,
              env: dict | None = None) -> dict:
    """Run argv to completion: wall seconds, peak RSS (MB, from wait4), rc, stdout."""
    if pin and shutil.which("taskset"):
        argv = ["taskset", "-c", "0", *argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out if capture_stdout else subprocess.DEVNULL,
                                stderr=err, cwd=REPO,
                                env=None if env is None else {**os.environ, **env})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                  "rss_mb": usage.ru_maxrss / 1024, "rc": proc.returncode,
                  "stdout": out.read().decode(errors="replace"),
                  "stderr": err.read().decode(errors="replace")}
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result['rc']}):\n{result['stderr'][-2000:]}")
    return result


def child(mode: str, path: str, extra: str | None) -> dict:
    return json.loads(run_child([sys.executable, str(Path(__file__).resolve()), "--child", mode,
                                 path, *([] if extra is None else ["--child-arg", extra])],
                                pin=True)["stdout"])


def _proc_status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# --- child: diag pcap's work, one process or several -------------------------------------------
def child_summary(path: str, workers: str | None) -> dict:
    """Imports first, then time decode + summary (what ``diag pcap`` does) with N processes."""
    import hashlib
    import resource

    import diag.bundle  # noqa: F401  (imported before the clock starts: start-up apart)
    import diag.decode.parallel  # noqa: F401
    import diag.decode.summary  # noqa: F401
    from diag.decode import core
    from diag.pipeline import pcap_summary

    core.load()
    n = int(workers or 1)
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, c0 = time.perf_counter(), time.process_time()
    # diag pcap's own code: diag.pipeline.pcap_summary (one process, or summarize with N)
    result = pcap_summary(Path(path), workers=n)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers_cpu = (kids.ru_utime + kids.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    text = json.dumps(result, default=str)
    found = counts_from_summary(result)
    return {"elapsed": elapsed, "cpu": cpu + workers_cpu, "parent_cpu": cpu,
            "workers": n, "packets": found["packets"], "hwm_mb": _proc_status_kb("VmHWM") / 1024,
            "workers_max_rss_mb": kids.ru_maxrss / 1024 if n > 1 else 0.0,
            "sha256": hashlib.sha256(text.encode()).hexdigest(), "found": found}


def child_summary_on_cue(path: str, _extra: str | None) -> dict:
    """``diag pcap``'s one-process work on ``path``, started when a line arrives on stdin
    (after the imports: the perfect split's pieces start together); times on the clock every
    process shares."""
    import diag.bundle  # noqa: F401
    import diag.decode.summary  # noqa: F401
    from diag.decode import core
    from diag.pipeline import pcap_summary

    core.load()
    print("ready", flush=True)
    sys.stdin.readline()
    t0, c0 = time.monotonic(), time.process_time()
    result = pcap_summary(Path(path), workers=1)
    return {"start": t0, "end": time.monotonic(), "cpu": time.process_time() - c0,
            "packets": counts_from_summary(result)["packets"]}


def perfect_split(pieces: list[Path]) -> dict:
    """The yardstick for ``--workers N``: N one-process decodes of 1/N of the file each, one
    pinned to each core, started together; no reading of the others' parts, no merge, no
    parent. Wall time from the first start to the last end; CPU summed."""
    procs, cpus = [], sorted(os.sched_getaffinity(0))
    try:
        for k, piece in enumerate(pieces):
            argv = [sys.executable, str(Path(__file__).resolve()), "--child", "summary-on-cue",
                    str(piece)]
            if shutil.which("taskset"):
                argv = ["taskset", "-c", str(cpus[k % len(cpus)]), *argv]
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    cwd=REPO, text=True)
            procs.append(proc)
            if proc.stdout.readline().strip() != "ready":
                raise SystemExit(f"the perfect split's child for {piece} did not start")
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        parts = []
        for proc in procs:
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"the perfect split's child failed ({proc.returncode})")
            parts.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {"elapsed": max(p["end"] for p in parts) - min(p["start"] for p in parts),
            "cpu": sum(p["cpu"] for p in parts), "packets": sum(p["packets"] for p in parts),
            "each": [p["end"] - p["start"] for p in parts]}


# --- child: diag's decode ----------------------------------------------------------------------
def child_decode(path: str, workers: str | None) -> dict:
    """Imports first (start-up apart), then time the full decode plus the summary."""
    import pandas  # noqa: F401  (the decoder builds DataFrames; import before the clock starts)

    from diag.decode import DecodeOptions, iter_decode
    from diag.decode.summary import CaptureSummary

    options = DecodeOptions()
    rss_after_imports = _proc_status_kb("VmRSS")
    clock, cpu_clock = time.perf_counter, time.process_time
    cpu = 0.0                       # CPU seconds of the same timed parts (robust to a busy host)
    summary = CaptureSummary()
    rows: Counter = Counter()
    types: Counter = Counter()
    actions: Counter = Counter()
    vnis: Counter = Counter()
    malformed = 0
    t_decode = t_summary = 0.0      # the cross-check counting below is not timed: not diag's work
    cpu_decode = 0.0
    chunks = iter_decode(path, options)
    while True:
        t0, c0 = clock(), cpu_clock()
        chunk = next(chunks, None)
        t1 = clock()
        t_decode += t1 - t0
        cpu_decode += cpu_clock() - c0
        if chunk is None:
            cpu += cpu_clock() - c0
            break
        summary.add(chunk)
        t_summary += clock() - t1
        cpu += cpu_clock() - c0
        for name, df in chunk.items():
            rows[name] += len(df)
        if len(chunk.bgp_messages):
            types.update(chunk.bgp_messages["type_name"].value_counts().to_dict())
            malformed += int(chunk.bgp_messages["malformed"].notna().sum())
        if len(chunk.bgp_routes):
            actions.update(chunk.bgp_routes["action"].value_counts().to_dict())
        if len(chunk.tunnels):
            vx = chunk.tunnels[chunk.tunnels["type"] == "vxlan"]
            vnis.update({int(k): int(v) for k, v in vx["vni"].value_counts().items()})
            malformed += int(chunk.tunnels["malformed"].notna().sum())
        for name in ("packets", "arp"):
            df = getattr(chunk, name)
            if len(df):
                malformed += int(df["malformed"].notna().sum())
        del chunk
    t1, c0 = clock(), cpu_clock()
    result = summary.result()
    t_summary += clock() - t1
    cpu += cpu_clock() - c0
    elapsed = t_decode + t_summary
    found = counts_from_summary(result)
    # the same numbers straight from the tables, as a cross-check of the summary
    found["table_rows"] = dict(rows)
    found["table_bgp_messages"] = {k: int(v) for k, v in types.items()}
    found["table_prefix_rows"] = {k: int(v) for k, v in actions.items()}
    found["table_vnis"] = {str(k): v for k, v in sorted(vnis.items())}
    found["table_malformed"] = malformed
    return {"elapsed": elapsed, "cpu": cpu, "decode_s": t_decode, "summary_s": t_summary,
            "decode_cpu": cpu_decode,
            "packets": found["packets"],
            "rss_after_imports_mb": rss_after_imports / 1024,
            "hwm_mb": _proc_status_kb("VmHWM") / 1024, "found": found}


def counts_from_summary(s: dict) -> dict:
    """The truth's numbers, read from a ``diag pcap --format json`` summary."""
    bgp, arp = s["bgp"], s["arp"]
    by_vni = {str(r["vni"]): r["packets"] for r in s["tunnels"].get("by_vni", [])
              if r["type"] == "vxlan"}
    return {
        "packets": s["packets"]["total"],
        "malformed": s["packets"]["malformed"] + bgp["malformed"] + s["tunnels"]["malformed"],
        "bgp_messages": {k: v for k, v in bgp["messages"].items() if v},
        "prefix_rows": {"announce": sum(x["announce_rows"] for x in bgp["sessions"]),
                        "withdraw": sum(x["withdraw_rows"] for x in bgp["sessions"])},
        "unique_prefixes": {"announced": bgp["prefixes"]["announced"],
                            "withdrawn": bgp["prefixes"]["withdrawn"]},
        "vxlan_by_vni": by_vni,
        "arp": {"requests": arp["requests"], "replies": arp["replies"],
                "answered": arp["answered"], "unanswered": arp["unanswered"],
                "multiple_responders": sorted(m["ip"] for m in arp["multiple_responders"])},
        "stream_events": bgp.get("stream_events", {}),
    }


def compare(truth: dict, found: dict) -> list[tuple[str, object, object]]:
    """(what, diag, truth) for every number the truth holds."""
    t_bgp = truth["bgp"]
    pairs = [
        ("packets", found["packets"], truth["packets"]),
        ("malformed", found["malformed"], truth["malformed"]),
        ("BGP messages by type", found["bgp_messages"],
         {k: v for k, v in t_bgp["messages"].items() if v}),
        ("BGP prefix rows", found["prefix_rows"], t_bgp["prefix_rows"]),
        ("BGP unique prefixes", found["unique_prefixes"], t_bgp["unique_prefixes"]),
        ("BGP stream events", found["stream_events"], {}),
        ("VXLAN packets by VNI", found["vxlan_by_vni"], truth["vxlan"]["by_vni"]),
        ("ARP", found["arp"], truth["arp"]),
    ]
    if "table_bgp_messages" in found:
        pairs += [
            ("tables: BGP message rows", found["table_bgp_messages"],
             {k: v for k, v in t_bgp["messages"].items() if v}),
            ("tables: prefix rows", found["table_prefix_rows"], t_bgp["prefix_rows"]),
            ("tables: VXLAN rows by VNI", found["table_vnis"], truth["vxlan"]["by_vni"]),
            ("tables: malformed", found["table_malformed"], 0),
        ]
    return pairs


# --- child: the counts-only reader ---------------------------------------------------------
def child_reader(path: str) -> dict:
    """benchmarks/count_reader.py on the whole file; imports apart."""
    import count_reader

    start, cpu_start = time.perf_counter(), time.process_time()
    counts = count_reader.count(path)
    return {"elapsed": time.perf_counter() - start, "cpu": time.process_time() - cpu_start,
            "packets": counts["packets"], "counts": counts,
            "hwm_mb": _proc_status_kb("VmHWM") / 1024}


def reader_matches(truth: dict, counts: dict) -> list[str]:
    """What the counts-only reader got wrong against the generator's truth (empty: nothing)."""
    codes = {"OPEN": "1", "UPDATE": "2", "NOTIFICATION": "3", "KEEPALIVE": "4",
             "ROUTE-REFRESH": "5"}
    want_bgp = {codes[k]: v for k, v in truth["bgp"]["messages"].items() if v}
    by_vni: Counter = Counter()
    for key, n in counts["vxlan"].items():
        by_vni[key.split("/")[0]] += n
    bad = []
    for what, got, want in (
            ("packets", counts["packets"], truth["packets"]),
            ("BGP messages by type", counts["bgp_types"], want_bgp),
            ("VXLAN packets by VNI", dict(by_vni), truth["vxlan"]["by_vni"]),
            ("ARP opcodes", counts["arp_ops"],
             {"1": truth["arp"]["requests"], "2": truth["arp"]["replies"]})):
        if got != want:
            bad.append(f"{what}: {got} != truth {want}")
    return bad


# --- child: scapy ------------------------------------------------------------------------------
def child_scapy(path: str) -> dict:
    """rdpcap + layer access (VXLAN VNI, every BGP message header, ARP op); imports apart."""
    from scapy.contrib.bgp import BGPHeader
    from scapy.layers.inet import UDP
    from scapy.layers.l2 import ARP
    from scapy.layers.vxlan import VXLAN
    from scapy.packet import bind_layers
    from scapy.utils import rdpcap

    bind_layers(UDP, VXLAN, dport=8472)
    start, cpu_start = time.perf_counter(), time.process_time()
    packets = rdpcap(path)
    vnis: Counter = Counter()
    bgp: Counter = Counter()
    arp: Counter = Counter()
    for p in packets:
        if VXLAN in p:
            vnis[p[VXLAN].vni] += 1
        elif BGPHeader in p:
            layer = p[BGPHeader]
            while layer:                    # NoPayload is falsy
                if isinstance(layer, BGPHeader):
                    bgp[str(layer.type)] += 1
                layer = layer.payload
        elif ARP in p:
            arp[str(p[ARP].op)] += 1
    elapsed = time.perf_counter() - start
    return {"elapsed": elapsed, "cpu": time.process_time() - cpu_start, "packets": len(packets),
            "bgp_types": dict(bgp),
            "vxlan_packets": sum(vnis.values()), "arp_ops": dict(arp),
            "hwm_mb": _proc_status_kb("VmHWM") / 1024}


def child_profile(path: str, top: str | None) -> dict:
    import cProfile
    import io
    import pstats

    import pandas  # noqa: F401

    from diag.decode import iter_decode
    from diag.decode.summary import CaptureSummary

    def work() -> None:
        summary = CaptureSummary()
        for chunk in iter_decode(path):
            summary.add(chunk)
        summary.result()

    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.runcall(work)
    elapsed = time.perf_counter() - start
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text)
    stats.sort_stats("tottime").print_stats(int(top or 25))
    text.write("--- the same run by cumulative time (top 25) ---\n")
    stats.sort_stats("cumulative").print_stats(25)
    return {"elapsed_under_profile": elapsed, "report": text.getvalue()}


# --- tshark ------------------------------------------------------------------------------------
def tshark_counts(stdout: str) -> dict:
    bgp: Counter = Counter()
    vxlan = 0
    arp: Counter = Counter()
    for line in stdout.splitlines():
        f = line.split("\t")
        if len(f) < 4:
            continue
        for t in filter(None, f[1].split(",")):
            bgp[t] += 1
        vxlan += bool(f[2])
        if f[3]:
            arp[f[3]] += 1
    return {"bgp_types": dict(bgp), "vxlan_packets": vxlan, "arp_ops": dict(arp)}


TSHARK_FIELDS = ["-d", "udp.port==8472,vxlan", "-T", "fields", "-e", "frame.number",
                 "-e", "bgp.type", "-e", "vxlan.vni", "-e", "arp.opcode"]


def tshark_argv(path: Path) -> list[str]:
    return ["tshark", "-n", "-r", str(path), *TSHARK_FIELDS]


# --- the report --------------------------------------------------------------------------------
def rate(packets: int, seconds: float, cpu: float | None = None) -> str:
    """Packets per wall second, and per CPU second when known (steadier on a shared host)."""
    text = f"{packets / seconds:>10,.0f} pkt/s" if seconds > 0 else "n/a"
    if cpu:
        text += f" ({packets / cpu:,.0f} per CPU-s)"
    return text


def _compile_bytecode() -> str:
    """diag's bytecode compiled (``compileall``, into the gitignored ``__pycache__``), as an
    install leaves it; says what it found."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("diag")
    where = Path(spec.origin).parent if spec and spec.origin else REPO / "diag"
    before = sum(1 for _ in where.rglob("__pycache__/*.pyc"))
    compileall.compile_dir(str(where), quiet=1)
    after = sum(1 for _ in where.rglob("__pycache__/*.pyc"))
    return (f"bytecode as installed: {after - before} modules compiled now"
            if after > before else "bytecode as installed")


def median_wall(argv: list[str], runs: int = 5) -> tuple[float, float]:
    walls = [run_child(argv, pin=False, capture_stdout=False)["wall"] for _ in range(runs)]
    return statistics.median(walls), min(walls)


def _profile(capture: Path, work: Path, packets: int, results: dict) -> None:
    prof_slice = work / "profile.pcap"
    got = write_slice(capture, prof_slice, packets)
    prof = child("profile", str(prof_slice), "25")
    results["profile"] = prof
    print(f"\n== cProfile of the decode of {got:,} packets (top 25 by tottime; "
          f"{prof['elapsed_under_profile']:.1f} s under the profiler)")
    print(prof["report"])


def _quick_end(args, truth: dict | None, dec: dict, results: dict) -> int:
    ok = True
    if truth:
        bad = [(w, g, t) for w, g, t in compare(truth, dec["found"]) if g != t]
        for what, got, want in bad:
            print(f"  [DIFF] {what}: {got} != truth {want}")
        ok = not bad
        print(f"counts: {'all equal the ground truth' if ok else 'DIFFER'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0 if ok else 1


def _multicore(capture: Path, args, results: dict, whole: dict | None = None) -> dict:
    """diag pcap's work (decode + summary) in one process on one core, then with a worker per
    usable core, marginal and whole process; prints both and returns the counts found."""
    cores = usable_cores()
    me = [sys.executable, str(Path(__file__).resolve()), "--child", "summary", str(capture),
          "--child-arg"]
    reps = range(max(1, args.repeat))
    print(f"\n== diag pcap's work (decode + summary, no tables): 1 core and {cores} cores "
          f"(--workers {cores}); load average {os.getloadavg()[0]:.2f} before")
    ones, manys, splits = [], [], []
    split_too = cores > 1 and is_classic_pcap(capture)
    with tempfile.TemporaryDirectory(prefix="diag-bench-split-") as tmp:
        pieces = None
        for _ in reps:      # alternated, so that the three share the machine's minutes
            ones.append(json.loads(run_child([*me, "1"], pin=True)["stdout"]))
            manys.append(json.loads(run_child([*me, str(cores)], pin=False)["stdout"]))
            if split_too:
                pieces = pieces or write_pieces(capture, Path(tmp), cores, ones[0]["packets"])
                splits.append(perfect_split(pieces))
    one = min(ones, key=lambda r: r["elapsed"])
    many = min(manys, key=lambda r: r["elapsed"])
    n = one["packets"]
    for label, r in (("1 core   ", one), (f"{cores} workers", many)):
        worker = (f", largest worker {r['workers_max_rss_mb']:.0f} MB" if r["workers"] > 1
                  else "")
        print(f"marginal, {label}: {rate(n, r['elapsed'], r['cpu'])}  ({r['elapsed']:.2f} s, "
              f"{r['cpu']:.2f} CPU-s; peak RSS {r['hwm_mb']:.0f} MB{worker})")
    same = one["sha256"] == many["sha256"]
    print(f"  speed-up {one['elapsed'] / many['elapsed']:.2f}x wall; CPU "
          f"{many['cpu'] / one['cpu']:.2f}x of one process's; summaries "
          f"{'identical' if same else 'DIFFER'}")
    if splits:
        split = min(splits, key=lambda r: r["elapsed"])
        if split["packets"] != n:
            raise SystemExit(f"the perfect split decoded {split['packets']} packets, not {n}")
        print(f"perfect split (the yardstick: {cores} one-process decodes of 1/{cores} of the "
              f"file, one per core, started together; no coordination, no merge): "
              f"{split['elapsed']:.2f} s ({', '.join(f'{e:.2f}' for e in split['each'])}), "
              f"{split['cpu']:.2f} CPU-s: {one['elapsed'] / split['elapsed']:.2f}x; "
              f"--workers {cores} reached {split['elapsed'] / many['elapsed']:.0%} of it")
        results["perfect_split"] = split
    elif cores > 1:
        print("perfect split: not measured (it cuts classic pcap files only)")
    base = [sys.executable, "-m", "diag", "pcap", str(capture), "--format", "json"]
    if whole is None:
        whole = min((run_child([*base, "--workers", "1"], pin=True) for _ in reps),
                    key=lambda r: r["wall"])
        print(f"whole process, 1 core: {rate(n, whole['wall'], whole['cpu'])}  "
              f"({whole['wall']:.2f} s, peak RSS {whole['rss_mb']:.0f} MB)")
    whole_all = min((run_child([*base, "--workers", str(cores)], pin=False) for _ in reps),
                    key=lambda r: r["wall"])
    same_out = whole_all["stdout"] == whole["stdout"]
    print(f"whole process, {cores} workers: {rate(n, whole_all['wall'], whole_all['cpu'])}  "
          f"(`diag pcap FILE --format json --workers {cores}`: {whole_all['wall']:.2f} s, "
          f"largest process {whole_all['rss_mb']:.0f} MB; output "
          f"{'identical' if same_out else 'DIFFERS'}; speed-up "
          f"{whole['wall'] / whole_all['wall']:.2f}x)")
    print(f"  load average after: {os.getloadavg()[0]:.2f}")
    results["diag_summary_1core"] = {k: v for k, v in one.items() if k != "found"}
    results["diag_summary_all"] = {k: v for k, v in many.items() if k != "found"}
    results["diag_whole_all"] = {"wall": whole_all["wall"], "cpu": whole_all["cpu"],
                                 "rss_mb": whole_all["rss_mb"], "rate": n / whole_all["wall"],
                                 "workers": cores, "identical": same_out}
    results["loadavg_after_multicore"] = os.getloadavg()
    if not (same and same_out):
        raise SystemExit("the multi-worker summary differs from the one-process summary")
    return many["found"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", type=Path, help="capture written by generate.py")
    parser.add_argument("--packets", type=int, help="generate a capture of this many packets first")
    parser.add_argument("--out", type=Path, help="where --packets writes (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mix", default="bgp-heavy", help="with --packets: generate.py's mix "
                        "(bgp-heavy: issue 21's; light: the earlier benchmark mix)")
    parser.add_argument("--reference-packets", type=int, default=REFERENCE_PACKETS,
                        help="packets on which the reference decoder's output is compared")
    parser.add_argument("--slice", type=int, default=SLICE_PACKETS,
                        help="packets in the slice timed with tshark and scapy")
    parser.add_argument("--profile", type=int, metavar="N",
                        help="also print a cProfile (top 25 by tottime) of the decode of N packets")
    parser.add_argument("--skip-peers", action="store_true", help="do not time tshark and scapy")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run diag's timings N times and keep the fastest (shared machines)")
    parser.add_argument("--quick", action="store_true",
                        help="only diag's marginal decode and the counts (for iterating on speed)")
    parser.add_argument("--multicore", action="store_true",
                        help="only diag pcap's work on 1 core and on all cores (+ the counts)")
    parser.add_argument("--json", type=Path, help="also write the measurements to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-arg", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        sys.path.insert(0, str(REPO))
        sys.path.insert(0, str(HERE))
        fn = {"decode": child_decode, "scapy": lambda p, _x: child_scapy(p),
              "reader": lambda p, _x: child_reader(p),
              "profile": child_profile, "summary": child_summary,
              "summary-on-cue": child_summary_on_cue}[args.child]
        json.dump(fn(str(args.file), args.child_arg), sys.stdout)
        return 0

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(HERE))
    import generate

    work = Path(tempfile.mkdtemp(prefix="diag-bench-"))
    capture = args.file
    if args.packets:
        capture = args.out or work / f"mix-{args.packets}.pcap"
        t0 = time.perf_counter()
        generate.generate(args.packets, capture, args.seed, mix=args.mix)
        print(f"generated {capture} ({args.packets:,} packets, "
              f"{capture.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t0:.1f} s")
    if capture is None:
        parser.error("give a capture FILE or --packets N")
    truth_file = generate.truth_path(capture)
    truth = json.loads(truth_file.read_text()) if truth_file.exists() else None
    size_mb = capture.stat().st_size / 1e6
    results: dict = {"file": str(capture), "size_mb": size_mb, "cpus": os.cpu_count(),
                     "loadavg": os.getloadavg()}
    print(f"capture: {capture} ({size_mb:,.0f} MB); truth: "
          f"{truth_file if truth else 'none (counts not checked)'}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} "
          "(shared machine: rates vary with other load)")
    from diag.decode.core import decoder_name

    results["decoder"] = decoder_name()
    print(f"decoder: {results['decoder']}")
    ok = True
    if args.multicore:
        found = _multicore(capture, args, results)
        shutil.rmtree(work, ignore_errors=True)
        return _quick_end(args, truth, {"found": found}, results)

    # diag, marginal, one core
    dec = min((child("decode", str(capture), None) for _ in range(max(1, args.repeat))),
              key=lambda r: r["elapsed"])
    n = dec["packets"]
    results["diag_marginal_1core"] = {k: v for k, v in dec.items() if k != "found"}
    print("\n== diag (full decode: all tables, BGP reassembly, per-prefix rows, + summary)"
          + (f"; fastest of {args.repeat} runs" if args.repeat > 1 else ""))
    print(f"marginal, 1 core   : {rate(n, dec['elapsed'], dec['cpu'])}  ({n:,} packets in "
          f"{dec['elapsed']:.2f} s; peak RSS {dec['hwm_mb']:.0f} MB, "
          f"{dec['rss_after_imports_mb']:.0f} MB after imports)")
    print(f"  of which iter_decode {dec['decode_s']:.2f} s ({rate(n, dec['decode_s']).strip()}), "
          f"CaptureSummary {dec['summary_s']:.2f} s")
    if args.quick:
        if args.profile:
            _profile(capture, work, args.profile, results)
        shutil.rmtree(work, ignore_errors=True)
        return _quick_end(args, truth, dec, results)
    # diag, whole process, one core
    whole = min((run_child([sys.executable, "-m", "diag", "pcap", str(capture), "--format",
                            "json", "--workers", "1"], pin=True)
                 for _ in range(max(1, args.repeat))), key=lambda r: r["wall"])
    whole_found = counts_from_summary(json.loads(whole["stdout"]))
    results["diag_whole_1core"] = {"wall": whole["wall"], "cpu": whole["cpu"],
                                   "rss_mb": whole["rss_mb"], "rate": n / whole["wall"],
                                   "rate_cpu": n / whole["cpu"]}
    print(f"whole process, 1 core: {rate(n, whole['wall'], whole['cpu'])}  "
          "(`python -m diag pcap FILE "
          f"--format json`: {whole['wall']:.2f} s, peak RSS {whole['rss_mb']:.0f} MB)")
    if n >= 4 * 65536:   # several chunks in both runs: does peak memory grow with the file?
        quarter = work / "quarter.pcap"
        write_slice(capture, quarter, n // 4)
        dq = child("decode", str(quarter), None)
        results["diag_marginal_quarter"] = {k: v for k, v in dq.items() if k != "found"}
        print(f"memory flatness    : peak RSS {dq['hwm_mb']:.0f} MB on the first {n // 4:,} "
              f"packets, {dec['hwm_mb']:.0f} MB on all {n:,} "
              f"({rate(n // 4, dq['elapsed'], dq['cpu']).strip()} on the quarter)")
    _multicore(capture, args, results, whole)

    # ground truth
    if truth:
        print("\n== counts against the ground truth")
        for source, found in (("decode", dec["found"]), ("diag pcap", whole_found)):
            for what, got, want in compare(truth, found):
                good = got == want
                ok &= good
                shown = got if good else f"{got}  !=  truth {want}"
                if isinstance(got, dict) and good and len(str(got)) > 70:
                    total = sum(v for v in got.values() if isinstance(v, int))
                    shown = f"{total} in {len(got)} keys"
                print(f"  [{'ok' if good else 'DIFF'}] {source:9} {what:26} {shown}")
        results["counts_ok"] = ok
    rows = dec["found"]
    print(f"rows produced: {sum(rows['table_bgp_messages'].values()):,} BGP messages, "
          f"{sum(rows['table_prefix_rows'].values()):,} prefix rows, "
          f"{len(rows['table_vnis'])} VNIs ({sum(rows['table_vnis'].values()):,} tunnel rows), "
          f"{rows['arp']['answered']:,} ARP request/reply pairs "
          f"({rows['table_rows'].get('arp', 0):,} ARP rows)")

    # the counts-only reader, whole file, same core
    reps = range(max(1, args.repeat))
    reader = min((child("reader", str(capture), None) for _ in reps), key=lambda r: r["elapsed"])
    one = results["diag_summary_1core"]
    results["reader"] = {k: v for k, v in reader.items() if k != "counts"}
    ratio_wall = reader["elapsed"] / one["elapsed"]
    ratio_cpu = reader["cpu"] / one["cpu"]
    results["reader_ratio"] = {"wall": ratio_wall, "cpu": ratio_cpu}
    print(f"\n== the counts-only reader (benchmarks/count_reader.py, pure Python + struct; whole "
          f"file, 1 core)")
    print(f"counts-only reader : {rate(n, reader['elapsed'], reader['cpu'])}  "
          f"({reader['elapsed']:.2f} s; peak RSS {reader['hwm_mb']:.0f} MB)")
    print(f"diag pcap's work   : {rate(n, one['elapsed'], one['cpu'])}  (1 core, decode + "
          "summary)")
    print(f"  diag pcap --workers 1 is {ratio_wall:.2f}x the counts-only reader (wall), "
          f"{ratio_cpu:.2f}x in CPU time")
    if truth:
        wrong = reader_matches(truth, reader["counts"])
        print("  the reader's counts: " + ("equal the ground truth" if not wrong else
                                             "DIFFER: " + "; ".join(wrong)))

    # the reference decoder's output on a slice: identical?
    ref_path = work / "reference.pcap"
    ref_n = write_slice(capture, ref_path, args.reference_packets)
    argv = [sys.executable, "-m", "diag", "pcap", str(ref_path), "--format", "json",
            "--workers", "1"]
    compiled = run_child(argv, pin=True)
    reference = run_child(argv, pin=True, env={"DIAG_DECODER": "python"})
    same_ref = compiled["stdout"] == reference["stdout"]
    results["reference_identical"] = {"packets": ref_n, "identical": same_ref,
                                      "reference_wall": reference["wall"],
                                      "reference_cpu": reference["cpu"]}
    ok &= same_ref
    print(f"\n== the pure-Python reference decoder (DIAG_DECODER=python) on the first "
          f"{ref_n:,} packets")
    print(f"reference, whole process: {rate(ref_n, reference['wall'], reference['cpu'])}; "
          f"`diag pcap --format json` output {'identical' if same_ref else 'DIFFERS'} to "
          f"{results['decoder'].split(' (')[0]}'s")

    # peers on the slice
    slice_path = work / "slice.pcap"
    sliced = write_slice(capture, slice_path, args.slice)
    print(f"\n== peers on the first {sliced:,} packets of the same file (1 core)")
    dec_slice = min((child("decode", str(slice_path), None) for _ in reps),
                    key=lambda r: r["elapsed"])
    results["diag_slice"] = {k: v for k, v in dec_slice.items() if k != "found"}
    s_found = dec_slice["found"]
    print(f"diag marginal      : {rate(sliced, dec_slice['elapsed'], dec_slice['cpu'])}  peak RSS "
          f"{dec_slice['hwm_mb']:.0f} MB; BGP {s_found['bgp_messages']}, VXLAN "
          f"{sum(s_found['vxlan_by_vni'].values())}")
    if not args.skip_peers:
        if shutil.which("tshark"):
            ts = min((run_child(tshark_argv(slice_path), pin=True) for _ in reps),
                     key=lambda r: r["wall"])
            tc = tshark_counts(ts["stdout"])
            results["tshark_slice"] = {"wall": ts["wall"], "cpu": ts["cpu"], "rss_mb": ts["rss_mb"],
                                       "rate": sliced / ts["wall"],
                                       "rate_cpu": sliced / ts["cpu"], "counts": tc}
            print(f"tshark -T fields   : {rate(sliced, ts['wall'], ts['cpu'])}  "
                  f"peak RSS {ts['rss_mb']:.0f} MB"
                  f"; BGP types {tc['bgp_types']}, VXLAN {tc['vxlan_packets']}")
            tiny_ts = work / "tshark-tiny.pcap"
            write_slice(capture, tiny_ts, TINY_PACKETS)
            t0 = min((run_child(tshark_argv(tiny_ts), pin=True) for _ in range(3)),
                     key=lambda r: r["wall"])
            results["tshark_startup"] = {"wall": t0["wall"], "cpu": t0["cpu"]}
            if ts["wall"] > t0["wall"]:
                marginal = rate(sliced, ts["wall"] - t0["wall"], ts["cpu"] - t0["cpu"])
                print(f"tshark marginal    : {marginal}"
                      f"  (its start-up apart: {t0['wall']:.2f} s on {TINY_PACKETS} packets)")
                results["tshark_slice"]["rate_marginal"] = sliced / (ts["wall"] - t0["wall"])
            tv = run_child(["tshark", "-n", "-r", str(slice_path), "-d", "udp.port==8472,vxlan",
                            "-V"], pin=True, capture_stdout=False)
            results["tshark_verbose_slice"] = {"wall": tv["wall"], "cpu": tv["cpu"],
                                               "rss_mb": tv["rss_mb"], "rate": sliced / tv["wall"],
                                               "rate_cpu": sliced / tv["cpu"]}
            print(f"tshark -V          : {rate(sliced, tv['wall'], tv['cpu'])}  "
                  f"peak RSS {tv['rss_mb']:.0f} MB"
                  " (every field of every layer, as text)")
        else:
            print("tshark: not installed")
        sc = child("scapy", str(slice_path), None)
        results["scapy_slice"] = {"elapsed": sc["elapsed"], "cpu": sc["cpu"],
                                  "hwm_mb": sc["hwm_mb"], "rate": sliced / sc["elapsed"],
                                  "rate_cpu": sliced / sc["cpu"], "counts": sc}
        print(f"scapy rdpcap+layers: {rate(sliced, sc['elapsed'], sc['cpu'])}  "
              f"peak RSS {sc['hwm_mb']:.0f} MB"
              f"; BGP types {sc['bgp_types']}, VXLAN {sc['vxlan_packets']} (imports apart)")
        if "tshark_slice" in results:
            r = results
            d_el, d_cpu = r["diag_slice"]["elapsed"], r["diag_slice"]["cpu"]
            print(f"diag is {r['tshark_slice']['wall'] / d_el:.1f}x tshark -T fields, "
                  f"{r['tshark_verbose_slice']['wall'] / d_el:.1f}x tshark -V and "
                  f"{sc['elapsed'] / d_el:.1f}x scapy on the slice (wall); "
                  f"{r['tshark_slice']['cpu'] / d_cpu:.1f}x, "
                  f"{r['tshark_verbose_slice']['cpu'] / d_cpu:.1f}x and "
                  f"{sc['cpu'] / d_cpu:.1f}x in CPU time")

    # start-up
    tiny = work / "tiny.pcap"
    write_slice(capture, tiny, TINY_PACKETS)
    # the console script next to this interpreter: a version manager's shim on PATH (pyenv's is a
    # shell script) would add its own start-up to diag's
    script = Path(sys.executable).parent / "diag"
    found = str(script) if script.exists() else shutil.which("diag")
    diag_cmd = [found] if found else [sys.executable, "-m", "diag"]
    # as an install leaves it: pip compiles a package's bytecode when it installs it, and Python
    # writes it at the first import of an editable one, unless PYTHONDONTWRITEBYTECODE is set
    # (some machines set it): then every start compiles diag's sources again
    compiled = _compile_bytecode()
    help_med, help_min = median_wall([*diag_cmd, "--help"])
    pcap_med, pcap_min = median_wall([*diag_cmd, "pcap", str(tiny)])
    pcapj_med, pcapj_min = median_wall([*diag_cmd, "pcap", str(tiny), "--format", "json"])
    results["startup"] = {"help": help_med, "pcap_tiny": pcap_med, "pcap_tiny_json": pcapj_med}
    print(f"\n== start-up ({' '.join(Path(c).name for c in diag_cmd)}; median of 5; target <= "
          f"{TARGET_STARTUP} s; {compiled})")
    for what, med, low in (("diag --help", help_med, help_min),
                           (f"diag pcap ({TINY_PACKETS} packets)", pcap_med, pcap_min),
                           (f"diag pcap --format json ({TINY_PACKETS})", pcapj_med, pcapj_min)):
        print(f"  {what:34} {med:.3f} s (min {low:.3f})  "
              f"{'ok' if med <= TARGET_STARTUP else 'over target'}")

    print(f"\n== against the targets (issue 21; load average now "
          f"{os.getloadavg()[0]:.2f}, {os.cpu_count()} cores shared)")
    met = {}

    def target(name: str, good: bool, text: str) -> None:
        met[name] = good
        print(f"  [{'met' if good else 'NOT MET'}] {text}")

    for label, secs in (("wall", one["elapsed"]), ("per CPU-second", one["cpu"])):
        r1 = n / secs
        target(f"pcap_{label}", r1 >= TARGET_PCAP_RATE,
               f"diag pcap --workers 1 >= {TARGET_PCAP_RATE:,} pkt/s on one core ({label}): "
               f"{r1:,.0f}")
    target("reader_ratio", max(ratio_wall, ratio_cpu) >= TARGET_READER_RATIO,
           f"diag pcap --workers 1 >= {TARGET_READER_RATIO}x the counts-only reader: "
           f"{ratio_wall:.2f}x wall, {ratio_cpu:.2f}x CPU")
    for label, secs in (("wall", dec["decode_s"]), ("per CPU-second", dec["decode_cpu"])):
        r2 = n / secs
        target(f"iter_decode_{label}", r2 >= TARGET_RATE,
               f"iter_decode, all tables >= {TARGET_RATE:,} pkt/s ({label}): {r2:,.0f}")
    peak = max(dec["hwm_mb"], whole["rss_mb"])
    target("rss", peak <= TARGET_RSS_MB,
           f"peak RSS <= {TARGET_RSS_MB} MB: {peak:.0f} MB on {size_mb:,.0f} MB "
           f"(iter_decode + summary {dec['hwm_mb']:.0f} MB, diag pcap {whole['rss_mb']:.0f} MB"
           f"{'' if size_mb >= 1000 else '; the target is for 1 GB: run on a 1 GB file'})")
    many = results["diag_summary_all"]
    one_s = results["diag_summary_1core"]["elapsed"]
    speedup = one_s / many["elapsed"]
    cores = many["workers"]
    split = results.get("perfect_split")
    beside = (f"; the perfect split {one_s / split['elapsed']:.2f}x" if split else "")
    target("workers", speedup >= 0.8 * cores,
           f"--workers {cores} near-linear (>= {0.8 * cores:.1f}x): {speedup:.2f}x wall, CPU "
           f"{many['cpu'] / one['cpu']:.2f}x of one process's{beside}")
    target("startup", help_med <= TARGET_STARTUP and pcap_med <= TARGET_STARTUP,
           f"start-up <= {TARGET_STARTUP} s: diag --help {help_med:.3f} s, diag pcap "
           f"({TINY_PACKETS} packets) {pcap_med:.3f} s")
    if truth:
        target("counts", ok, "counts exact against the generator's truth, output identical "
                             "to the reference decoder's")
    results["targets"] = met
    if args.profile:
        _profile(capture, work, args.profile, results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    if truth and not ok:
        print("COUNTS DIFFER FROM THE GROUND TRUTH", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
