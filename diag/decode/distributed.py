"""Many captures on a Dask cluster: what ``diag pcap FILE... --scheduler ADDRESS`` runs.

Contract: :func:`summarize_many(paths, client, options=None, sinks=None, spool=None,
parts=None, chunk_packets=65536) -> list[dict]` returns, for each path in order, exactly the
summary one process makes of it (:class:`diag.decode.summary.CaptureSummary` over
:func:`diag.decode.iter_rows`; key order included), decoded by the workers of ``client`` (a
``dask.distributed.Client``). With ``sinks`` (one callable per path, e.g.
:class:`diag.report.export.PartWriter`), the workers also write every chunk's tables,
``sink(part, tables, names)``, the same parts ``diag pcap --export`` writes in one process.
:func:`connect(address)` opens a client (``local``: a ``LocalCluster`` on this machine).

How: a file is one task (the one-process decode) unless it is large (``AUTO_BYTES`` or more)
and there are fewer files than workers (or ``parts`` says how many pieces); then it is split
exactly as ``diag pcap --workers N`` splits it (:mod:`diag.decode.parallel`): phase 1, N tasks
decode its blocks ``i % N == w`` and spool the BGP segments by connection bucket into ``spool``
(a directory every worker reads and writes: a temporary directory for a cluster on this
machine, a shared path for one that is not); phase 2, the buckets dealt by bytes, each task
reassembling whole connections; the client applies the folds in block order and merges each
block's BGP folds (:func:`diag.decode.summary.merge_bgp_folds`) as ``--workers`` does; a last
task merges the BGP rows of each block (:func:`diag.decode.parallel.merge_bgp_rows`) and
writes their tables. Every task is a pure function of files that do not change while it runs:
when a worker dies, Dask runs its tasks again elsewhere and the result is the same.

Dask is an optional extra (``pip install 'diag[dask]'``); without it
:class:`diag.errors.EnvironmentProblem` (exit 5).
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from diag.errors import EnvironmentProblem

DASK_HINT = "pip install 'diag[dask]' (dask.distributed), or install the README's test extras"


def _distributed():
    try:
        import distributed
    except ImportError:
        raise EnvironmentProblem("decoding on a Dask cluster needs dask.distributed",
                                 hint=DASK_HINT) from None
    return distributed


@contextmanager
def connect(address: str, workers: int | None = None) -> Iterator:
    """A client of the scheduler at ``address`` (``tcp://host:8786``); ``local`` starts a
    LocalCluster of ``workers`` processes (default: the usable cores) for the duration."""
    distributed = _distributed()
    if address == "local":
        from diag.decode.parallel import usable_cores

        with distributed.LocalCluster(n_workers=workers or usable_cores(), threads_per_worker=1,
                                      processes=True, dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            yield client
        return
    refused = _refused(address)
    if refused:
        raise EnvironmentProblem(f"cannot reach the Dask scheduler at {address}: {refused}",
                                 hint="start one (dask scheduler; dask worker ADDRESS) or use "
                                      "--scheduler local")
    try:
        client = distributed.Client(address, timeout="15s")
    except (OSError, TimeoutError, ValueError) as err:
        raise EnvironmentProblem(f"cannot reach the Dask scheduler at {address}: {err}",
                                 hint="start one (dask scheduler; dask worker ADDRESS) or use "
                                      "--scheduler local") from None
    try:
        yield client
    finally:
        client.close()


def _refused(address: str) -> str | None:
    """Why a TCP scheduler address refuses connections (nothing listens there), else None.
    Dask's client retries a refused connection until its timeout (15 s of waiting for an
    answer that is already known); any other outcome (accepted, a timeout, a name that does
    not resolve, another transport) is left to the client."""
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme != "tcp":
            return None
        host, port = parse_host_port(location)
    except (TypeError, ValueError):
        return None
    try:
        socket.create_connection((host, port), timeout=5).close()
    except ConnectionRefusedError:
        return "connection refused (nothing listens there)"
    except OSError:
        return None
    return None


def summarize_many(paths: list, client, options=None, sinks: list | None = None,
                   spool: Path | None = None, parts: int | None = None,
                   chunk_packets: int = 65536) -> list[dict]:
    """Each path's one-process summary, decoded on the cluster (see the module docstring)."""
    from diag.decode import SMALL_CAPTURE_BYTES, DecodeOptions
    from diag.decode.parallel import AUTO_BYTES

    options = options or DecodeOptions()
    paths = [str(p) for p in paths]
    sinks = list(sinks) if sinks is not None else [None] * len(paths)
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    own_spool = spool is None
    root = Path(tempfile.mkdtemp(prefix="diag-dask-")) if own_spool else Path(spool)
    made: list[Path] = []
    try:
        plans = []
        for k, (path, sink) in enumerate(zip(paths, sinks)):
            size = Path(path).stat().st_size if Path(path).exists() else 0
            pieces = parts if parts is not None else (
                workers if size >= AUTO_BYTES and len(paths) < workers else 1)
            if pieces <= 1:
                plans.append(("whole", client.submit(_whole, path, options, sink,
                                                     chunk_packets, pure=False)))
                continue
            where = root / f"capture-{k}"
            if not own_spool and where.exists():
                from diag.errors import UsageError

                raise UsageError(f"{where} exists: another run may be using this spool",
                                 hint="give each run its own --spool directory")
            where.mkdir(parents=True)
            made.append(where)
            vectorize = size >= SMALL_CAPTURE_BYTES
            phase1 = [client.submit(_phase1, path, options, chunk_packets, vectorize, w, pieces,
                                    str(where), sink, pure=False) for w in range(pieces)]
            plans.append(("split", (path, where, pieces, phase1, sink)))
        # phase 2 of every split file once its phase 1 is in, while the other files decode
        pending = []
        for kind, plan in plans:
            if kind == "whole":
                pending.append((kind, plan))
                continue
            pending.append((kind, _submit_phase2(client, *plan)))
        return [client.gather(plan) if kind == "whole" else _finish(client, *plan)
                for kind, plan in pending]
    finally:
        if own_spool:
            shutil.rmtree(root, ignore_errors=True)
        else:                               # a shared spool: only what this run put there
            for where in made:
                shutil.rmtree(where, ignore_errors=True)


def _submit_phase2(client, path, where, pieces, phase1, sink):
    from diag.decode.parallel import _deal
    from diag.decode.summary import CaptureSummary

    decoded = client.gather(phase1)
    summary = CaptureSummary()
    spools: list = []
    weight: dict[int, int] = {}
    nblocks = sum(len(d) - 1 for d in decoded)        # each task's blocks, then its end item
    for i in range(nblocks):
        item = decoded[i % pieces][i // pieces]
        summary.apply(item["fold"])
        spools.append(item["spool"])
        for bucket, (_off, _len, nbytes) in item["spool"].items():
            weight[bucket] = weight.get(bucket, 0) + nbytes
    ends = [d[-1] for d in decoded]
    end = ends[0]
    if any("nblocks" not in e or e["nblocks"] != nblocks for e in ends):
        raise RuntimeError(f"{path}: decode tasks disagree on the blocks ({nblocks} decoded)")
    keep = sink is not None
    owners = _deal(weight, pieces)
    phase2 = [client.submit(_phase2, owned, spools, str(where), nblocks, end["last"], keep,
                            pure=False) for owned in owners]
    small = [client.submit(_folds_of, f, pure=False) for f in phase2]
    written = client.submit(_bgp_tables, phase2, nblocks, end["info"], sink, pure=False) \
        if keep else None
    return summary, end, nblocks, small, written


def _finish(client, summary, end, nblocks, small, written) -> dict:
    from diag.decode.summary import merge_bgp_folds

    results = client.gather(small)
    for i in range(nblocks):                  # as parallel.summarize: one merge per block
        summary.apply({"bgp": merge_bgp_folds([r[0][i] for r in results])})
    for _folds, stores in results:
        summary.prefixes.stores.update(stores)
    if written is not None:
        client.gather(written)
    summary.set_info(end["info"])
    return summary.result()


# --- the tasks (module functions: pickled by reference to the workers) ----------------------

def _whole(path: str, options, sink: Callable | None, chunk_packets: int) -> dict:
    """One file in one task: the one-process decode (and its tables, part by part)."""
    from diag.decode import iter_rows, to_tables
    from diag.decode.summary import CaptureSummary

    summary = CaptureSummary()
    for part, chunk in enumerate(iter_rows(path, options, chunk_packets)):
        summary.add(chunk)
        if sink is not None:
            sink(part, to_tables(chunk))
    return summary.result()


def _phase1(path, options, chunk_packets, vectorize, index, count, spool, sink) -> list:
    from diag.decode.parallel import _decode_part

    return list(_decode_part(path, options, chunk_packets, vectorize, index, count, Path(spool),
                             sink))


def _phase2(owned, spools, spool, nblocks, last, keep_rows) -> list:
    from diag.decode.parallel import _bgp_part

    return list(_bgp_part(owned, spools, Path(spool), nblocks, last, keep_rows))


def _folds_of(items: list) -> tuple[list, dict]:
    """(each block's BGP fold, the session stores): what the client needs of a phase 2 task."""
    blocks, stores = items[:-1], items[-1]
    return [b[0] if isinstance(b, tuple) else b for b in blocks], stores


def _bgp_tables(owners: list, nblocks: int, info, sink: Callable) -> int:
    """Each block's BGP tables from the rows of every owner, merged in one process's order."""
    from diag.decode import to_tables
    from diag.decode.parallel import BGP_TABLES, merge_bgp_rows
    from diag.decode.rows import RowChunk

    for i in range(nblocks):
        rows = merge_bgp_rows([items[i][1] for items in owners])
        chunk = RowChunk({"packets": [], "tunnels": [], "arp": [], "icmp": [], "fragments": [],
                          "lldp": [], **rows}, None, info)
        sink(i, to_tables(chunk), BGP_TABLES)
    return nblocks
