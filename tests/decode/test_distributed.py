"""``diag pcap FILE... --scheduler``: a real Dask cluster must give the one-process output.

Oracle: the one-process decode (``CaptureSummary`` over ``iter_rows``, itself checked against
tshark and scapy elsewhere) and the one-process export (``TableWriter`` over the same chunks),
compared as JSON text and file bytes. The cluster is a real ``dask.distributed.LocalCluster``
(a scheduler and worker processes on this machine). Captures: the benchmark generator's mix
(BGP messages split over segments, so that connections straddle blocks decoded by different
tasks) cut into small blocks, and the repository's real captures. A worker killed while it
decodes must cost a retry, not a difference.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from diag.decode import SMALL_CAPTURE_BYTES, DecodeOptions, iter_rows, to_tables
from diag.decode.summary import CaptureSummary
from diag.report.export import PartWriter, TableWriter

distributed = pytest.importorskip("distributed", reason="the [dask] extra is not installed")
from diag.decode import distributed as on_dask

ROOT = Path(__file__).resolve().parents[2]
REAL = [ROOT / "captures/bgp_session.pcap",
        *sorted((ROOT / "tests/fixtures/pcap").glob("*.pcap"))[:3]]
CHUNK = 700


def _generate(path: Path, packets: int, seed: int) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_generate_dask",
                                                  ROOT / "benchmarks" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.generate(packets, path, seed=seed)
    return path


@pytest.fixture(scope="module")
def mixes(tmp_path_factory) -> list[Path]:
    where = tmp_path_factory.mktemp("dask")
    return [_generate(where / "mix-a.pcap", 5000, 5), _generate(where / "mix-b.pcap", 3000, 9)]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def _local(path: Path, chunk: int, export: Path | None = None) -> str:
    summary = CaptureSummary()
    writer = TableWriter(export, "parquet") if export else None
    for c in iter_rows(path, DecodeOptions(), chunk_packets=chunk):
        summary.add(c)
        if writer:
            writer.write(to_tables(c))
    return json.dumps(summary.result(), default=str)


def _digests(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_summaries_are_the_one_process_summaries(client, mixes, parts):
    paths = mixes + REAL
    got = on_dask.summarize_many(paths, client, parts=parts, chunk_packets=CHUNK)
    for path, summary in zip(paths, got):
        assert json.dumps(summary, default=str) == _local(path, CHUNK), (path.name, parts)


def test_exported_tables_are_the_same_files(client, mixes, tmp_path):
    paths = mixes + REAL[:1]
    sinks = []
    for k, path in enumerate(paths):
        (tmp_path / f"dask-{k}").mkdir()
        sinks.append(PartWriter(tmp_path / f"dask-{k}", "parquet"))
    got = on_dask.summarize_many(paths, client, sinks=sinks, parts=3, chunk_packets=CHUNK)
    for k, (path, summary) in enumerate(zip(paths, got)):
        assert json.dumps(summary, default=str) == _local(path, CHUNK, tmp_path / f"local-{k}")
        local, dask = _digests(tmp_path / f"local-{k}"), _digests(tmp_path / f"dask-{k}")
        assert dask == local, path.name
        if path in mixes:
            assert any(name.startswith("bgp_messages/part-00001") for name in local), \
                "the test must cover BGP rows in several parts"


def test_the_row_merge_is_needed(client, mixes, tmp_path, monkeypatch):
    """Mutant: rows of the owners concatenated instead of merged by where they were made —
    the exported BGP tables must differ (the test above would catch it)."""
    from diag.decode import parallel

    def concatenated(parts):
        return {name: [row for part in parts if part for _o, row in part[name]]
                for name in parallel.BGP_TABLES}

    (tmp_path / "d").mkdir()
    monkeypatch.setattr(parallel, "merge_bgp_rows", concatenated)
    # the cluster's workers import the module afresh: run this mutant in-process instead
    from diag.decode.distributed import _bgp_tables, _folds_of, _phase1, _phase2  # noqa: F401
    path = mixes[0]
    sink = PartWriter(tmp_path / "d", "parquet")
    vectorize = path.stat().st_size >= SMALL_CAPTURE_BYTES        # as summarize_many decides
    items = [_phase1(str(path), DecodeOptions(), CHUNK, vectorize, w, 3, str(tmp_path), sink)
             for w in range(3)]
    nblocks = sum(len(i) - 1 for i in items)
    spools = [items[b % 3][b // 3]["spool"] for b in range(nblocks)]
    owners = parallel._deal({b: 1 for s in spools for b in s}, 3)
    phase2 = [_phase2(o, spools, str(tmp_path), nblocks, items[0][-1]["last"], True)
              for o in owners]
    _bgp_tables(phase2, nblocks, items[0][-1]["info"], sink)
    _local(path, CHUNK, tmp_path / "l")
    d, loc = _digests(tmp_path / "d"), _digests(tmp_path / "l")

    def split(files, bgp):
        return {k: v for k, v in files.items() if k.split("/")[0] in parallel.BGP_TABLES} \
            if bgp else {k: v for k, v in files.items()
                         if k.split("/")[0] not in parallel.BGP_TABLES}

    assert split(d, False) and split(d, False) == split(loc, False)     # the rest is the same
    assert split(d, True) != split(loc, True)


def test_a_worker_killed_mid_run_is_retried_and_the_output_is_the_same(tmp_path):
    path = _generate(tmp_path / "big.pcap", 30000, 11)
    expected = _local(path, 1500)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        pids = c.run(os.getpid)
        out: dict = {}

        def decode():
            try:
                out["result"] = on_dask.summarize_many([path], c, parts=2, chunk_packets=1500)
            except BaseException as err:      # noqa: BLE001 - reported below
                out["error"] = err

        runner = threading.Thread(target=decode)
        runner.start()
        victim = None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            busy = {w: keys for w, keys in c.processing().items() if keys}
            running = [w for w, keys in busy.items()
                       if any("_phase1" in str(k) or "_phase2" in str(k) for k in keys)]
            if running:
                victim = running[0]
                os.kill(pids[victim], signal.SIGKILL)
                break
            time.sleep(0.05)
        runner.join(240)
        assert victim is not None, "no decode task was seen running"
        assert not runner.is_alive()
        assert "error" not in out, out.get("error")
        assert victim not in c.scheduler_info()["workers"]       # it did die
    assert json.dumps(out["result"][0], default=str) == expected


def test_the_command_line_prints_the_same_bytes_and_writes_the_same_files(mixes, tmp_path):
    files = [str(mixes[1]), str(REAL[0])]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for target in ("here", "there"):        # several captures export into an existing directory
        (tmp_path / target).mkdir()
    here = subprocess.run([sys.executable, "-m", "diag", "pcap", *files, "--format", "json",
                           "--export", str(tmp_path / "here")],
                          capture_output=True, env=env, cwd=ROOT, timeout=300)
    there = subprocess.run([sys.executable, "-m", "diag", "pcap", *files, "--format", "json",
                            "--export", str(tmp_path / "there"), "--scheduler", "local",
                            "--workers", "2"],
                           capture_output=True, env=env, cwd=ROOT, timeout=300)
    assert here.returncode == 0 and there.returncode == 0, there.stderr.decode()[-2000:]
    assert there.stdout == here.stdout
    assert len(json.loads(here.stdout)) == 2
    assert _digests(tmp_path / "there") == _digests(tmp_path / "here")
    assert {p.name for p in (tmp_path / "here").iterdir()} == {Path(f).name for f in files}


def test_no_scheduler_there_and_no_dask_are_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "diag", "pcap", str(REAL[0]), "--scheduler",
                          "tcp://127.0.0.1:9"], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert run.returncode == 5 and "cannot reach the Dask scheduler" in run.stderr
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['distributed'] = None\n")
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{ROOT}"
    run = subprocess.run([sys.executable, "-m", "diag", "pcap", str(REAL[0]), "--scheduler",
                          "local"], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120)
    assert run.returncode == 5, run.stderr
    assert "needs dask.distributed" in run.stderr and "pip install 'diag[dask]'" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_given_spool_is_left_as_it_was(client, mixes, tmp_path):
    spool = tmp_path / "shared"
    spool.mkdir()
    (spool / "someone-elses").write_text("x")
    got = on_dask.summarize_many(mixes[:1], client, spool=spool, parts=2, chunk_packets=CHUNK)
    assert json.dumps(got[0], default=str) == _local(mixes[0], CHUNK)
    assert sorted(p.name for p in spool.iterdir()) == ["someone-elses"]
