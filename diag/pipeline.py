"""The pipeline: the only code that puts diag's stages in order.

::

    hosts ─collect─▶ bundle ─parse/decode─▶ facts ─analyze─▶ findings ─report─▶ terminal/md/html/json
    capture ────────────────decode────────▶ facts ─analyze─▶ ...
    capture ─decode─▶ summary / tables (diag pcap)

Every command calls one function here and hands its result to a renderer of :mod:`diag.report`;
no stage imports another (facts uses parse and decode: assembling their outputs is its job), so
each stage reads alone. docs/architecture.md draws the house.

Contract (one function per job; heavy modules are imported inside them, so ``diag --help`` and
``diag pcap`` on a small capture stay fast):

- :func:`pcap_summary`, :func:`pcap_export`, :func:`pcap_frame`, :func:`pcap_frame_deep`:
  a capture -> the ``diag pcap`` summary dict, the tables written to a directory, one frame's
  rows, one frame through Wireshark's dissectors; :func:`pcap_summaries`: several captures,
  here or on a Dask cluster (the same dicts and files).
- :func:`facts_export`, :func:`lake_query`: a bundle's facts appended to an evidence lake, SQL
  over the lake.
- :func:`load_facts(source, inventory=None, ports=Ports()) -> Facts`: a bundle directory or
  archive, or a capture, as tables and the cluster model.
- :func:`explain(source, ports) -> (Facts, Explanation)`; :func:`trace(source, src, dst, ports)`.
- :func:`report(source, ports) -> (explain document, ReportData)`: the bundle opened once (an
  archive extracted into a temporary directory removed at the end), facts, explain, the
  document ``diag explain --format json`` prints, and what the report shows besides.
- :func:`collect_options(request)`, then :func:`collect(options, listener)` or
  :func:`collect_plan(options)`: hosts -> a bundle.

Loading and analysing build millions of long-lived objects (table cells): the cyclic GC is
paused through them (:class:`paused_gc`, which the command line also holds while it renders),
which halves the time of a large bundle and changes no result.
"""
from __future__ import annotations

from contextlib import nullcontext
import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from diag.errors import UnusableInput, UsageError


@dataclass(frozen=True)
class Ports:
    """Extra ports carrying BGP, VXLAN, GENEVE (the defaults 179, 4789/8472, 6081 always are)."""

    bgp: tuple[int, ...] = ()
    vxlan: tuple[int, ...] = ()
    geneve: tuple[int, ...] = ()

    def decode_options(self):
        from diag.decode import DecodeOptions

        return DecodeOptions(tuple(self.bgp), tuple(self.vxlan), tuple(self.geneve))


class paused_gc:
    """Pause the cyclic GC while a block builds many objects that all stay alive: with
    millions of live table cells, each collection would re-scan them for no garbage. The
    command line renders inside it too (the first collections after a load would otherwise walk
    every table cell: 0.2-0.3 s at 500 hosts x 5,000 routes). Nested pauses are one pause."""

    def __enter__(self) -> "paused_gc":
        self.enabled = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            gc.enable()


# --- diag pcap --------------------------------------------------------------------------------

def decoder_name() -> str:
    """Which capture decoder runs: the compiled core or the pure-Python reference (and why)."""
    from diag.decode.core import decoder_name as name

    return name()


def pcap_summary(file: Path, ports: Ports = Ports(), workers: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """The ``diag pcap`` summary of a capture (docs/pcap-json.md), by ``workers`` processes
    (None: every usable core for a large file, else one; the result is the same).
    ``progress(bytes_read, packets)`` is called as the decode goes."""
    from diag.decode import iter_rows
    from diag.decode.gcpolicy import fewer_collections
    from diag.decode.parallel import auto_workers, summarize
    from diag.decode.summary import CaptureSummary

    options = ports.decode_options()
    file = _capture(file)
    workers = auto_workers(file) if workers is None else workers
    if workers > 1:
        return summarize(file, options, workers, progress=progress)
    summary = CaptureSummary()
    # the summary folds row buffers: a small capture is summarised without pandas (and the
    # compiled decoder builds no table columns)
    with fewer_collections():
        for chunk in iter_rows(file, options, tables=False):
            summary.add(chunk)
            if progress is not None:
                progress(chunk.info.bytes_read, summary.total)
        return summary.result()


def pcap_export(file: Path, directory: Path, fmt: str, ports: Ports = Ports(),
                progress: Callable[[int, int], None] | None = None) -> dict:
    """Every table of the capture written to ``directory`` chunk by chunk (Parquet or CSV),
    and the summary of the same pass."""
    from diag.decode import iter_rows, to_tables
    from diag.decode.summary import CaptureSummary
    from diag.report.export import TableWriter

    summary = CaptureSummary()
    file = _capture(file)
    with TableWriter(directory, fmt) as writer:
        for chunk in iter_rows(file, ports.decode_options()):
            summary.add(chunk)
            writer.write(to_tables(chunk))
            if progress is not None:
                progress(chunk.info.bytes_read, summary.total)
    return summary.result()


def pcap_summaries(files: list[Path], ports: Ports = Ports(), workers: int | None = None,
                   scheduler=None, export: Path | None = None, fmt: str = "parquet",
                   spool: Path | None = None,
                   progress: Callable[[Path], object] | None = None) -> list[dict]:
    """The ``diag pcap`` summary of each capture, in order — the same dicts whether decoded
    here (``workers`` processes per file) or on a Dask cluster (``scheduler``: an address,
    ``"local"`` for a LocalCluster of ``workers`` processes, or a ``dask.distributed.Client``).
    ``export``: every table written too (:mod:`diag.report.export`), into ``export`` for one
    capture, ``export/<file name>`` for several (the same files either way)."""
    from diag.report.export import PartWriter, prepare_directory

    files = [Path(f) for f in files]        # the decoder says what is wrong with a file
    targets: list[Path | None] = [None] * len(files)
    if export is not None:
        names = [f.name for f in files]
        if len(set(names)) < len(names):
            raise UsageError("--export with several captures writes one directory per file "
                             "name: two files share a name", hint="rename or export them apart")
        targets = [Path(export)] if len(files) == 1 else [Path(export) / n for n in names]
    if scheduler is None:
        out = []
        for f, t in zip(files, targets):
            # progress(file): a context giving the file's progress(bytes_read, packets) callback
            with progress(f) if progress is not None else nullcontext() as shown:
                out.append(pcap_export(f, t, fmt, ports, shown) if t is not None else
                           pcap_summary(f, ports, workers, shown))
        return out
    from diag.decode import distributed

    sinks = None if export is None else [PartWriter(prepare_directory(t, fmt), fmt)
                                         for t in targets]
    options = ports.decode_options()
    if not isinstance(scheduler, str):
        return distributed.summarize_many(files, scheduler, options, sinks, spool)
    with distributed.connect(scheduler, workers) as client:
        return distributed.summarize_many(files, client, options, sinks, spool)


def pcap_frame(file: Path, frame: int, ports: Ports = Ports()) -> dict[str, list[dict]]:
    """Every decoded row of frame ``frame`` (1-based, as in Wireshark), by table name."""
    from diag.decode import iter_decode

    found: dict[str, list[dict]] = {}
    last = 0
    for chunk in iter_decode(_capture(file), ports.decode_options(), chunk_packets=4096):
        for name, df in chunk.items():
            if name == "interfaces" or not len(df) or "frame" not in df.columns:
                continue
            hit = df[df["frame"] == frame]
            if len(hit):
                found.setdefault(name, []).extend(hit.to_dict("records"))
        if len(chunk.packets):
            last = int(chunk.packets["frame"].max())
        if last > frame and "packets" in found:
            break
    if "packets" not in found:
        raise UsageError(f"frame {frame} is not in {file} ({last} frames)")
    return found


def pcap_frame_deep(file: Path, frame: int, ports: Ports = Ports()) -> str:
    """Frame ``frame`` through Wireshark's dissectors (tshark), with diag's ports decoded as
    diag decodes them."""
    from diag.decode.wireshark import dissect

    pcap_frame(file, frame, ports)          # the same "no such frame" answer as without --deep
    return dissect(file, frame, ports.decode_options())


# --- facts, explain, report -------------------------------------------------------------------

def load_facts(source: Path, inventory: Path | None = None, ports: Ports = Ports()):
    """A bundle (directory or archive) or a capture -> :class:`diag.facts.Facts`."""
    from diag.facts import load_facts as facts_of
    from diag.facts.inventory import load_inventory

    declared = load_inventory(Path(inventory)) if inventory else None
    source = _existing(source)
    with paused_gc():
        return facts_of(_existing(source), inventory=declared,
                        decode_options=ports.decode_options())


def facts_export(source: Path, directory: Path, inventory: Path | None = None,
                 ports: Ports = Ports()) -> dict[str, Any]:
    """Append a bundle's (or a capture's) facts to the evidence lake ``directory``
    (:mod:`diag.lake`): ``{"bundle": id, "added": bool, "rows": {table: n}, "lake": DIR}``;
    a bundle already there is not loaded again (appending is idempotent by bundle id)."""
    from diag import lake
    from diag.bundle import bundle_id, is_bundle, sha256_file
    from diag.facts.export import lake_record, lake_tables

    source = _existing(source)
    ident = bundle_id(source) if is_bundle(source) else sha256_file(source)
    if lake.contains(directory, ident):
        entry = lake.bundles(directory)[ident]
        return {"bundle": ident, "added": False, "rows": entry.get("rows", {}),
                "lake": str(directory)}
    with paused_gc():
        facts = load_facts(source, inventory, ports)
        added = lake.append(directory, ident, lake_tables(facts), lake_record(facts))
    entry = lake.bundles(directory)[ident]
    return {"bundle": ident, "added": added, "rows": entry.get("rows", {}),
            "coerced": entry.get("coerced", {}), "lake": str(directory)}


def lake_query(directory: Path, sql: str):
    """One SQL statement over the evidence lake (DuckDB): a pyarrow Table."""
    from diag import lake

    if not Path(directory).is_dir():
        raise UsageError(f"no such lake: {directory}")
    return lake.query(directory, sql)


def explain(source: Path, ports: Ports = Ports()):
    """(facts, :class:`diag.analyze.Explanation`) of a bundle or capture."""
    from diag.analyze import explain as analyze

    with paused_gc():
        facts = load_facts(source, ports=ports)
        return facts, analyze(facts)


def explain_lake(directory: Path, bundle: str | None = None, timings: dict | None = None):
    """(facts header, :class:`diag.analyze.Explanation`) of the routing analyzers over one
    bundle of an evidence lake (``bundle``: its id or a unique prefix; the only one when
    None), read column-wise from the Parquet files: fleet scale (docs/explain.md)."""
    from diag import lake
    from diag.analyze import explain_lake as analyze
    from diag.facts import Facts
    from diag.facts.export import model_from_rows

    known = lake.bundles(directory)
    chosen = [b for b in known if bundle is None or b.startswith(bundle)]
    if len(chosen) != 1:
        raise UsageError(f"{len(chosen)} bundles in {directory} match "
                         f"{bundle or 'no --bundle'}", hint="choose one with --bundle ID: "
                         + ", ".join(sorted(b[:12] for b in known)[:10]))
    ident = chosen[0]
    reader = lake.LakeBundle(directory, ident)
    with paused_gc():
        try:
            model = model_from_rows(reader.frame("model_hosts").to_dict("records"),
                                    reader.frame("model_cluster").to_dict("records"),
                                    reader.frame("tunnels").to_dict("records"))
            result = analyze(reader, model, timings)
        finally:
            reader.close()
    entry = known[ident]
    header = Facts(f"{directory} (bundle {ident[:12]}: {entry.get('source')})", "lake", {},
                   model, None, (), {"status": entry.get("status"),
                                     "hosts": {h: {} for h in model.hosts}})
    return header, result


def is_lake(source: Path) -> bool:
    """An evidence lake (a directory with the lake's manifest), not a bundle."""
    from diag import lake

    return Path(source).is_dir() and bool(lake.manifest(source, missing_ok=True))


def trace(source: Path, src: str, dst: str, ports: Ports = Ports()):
    """The walk of a packet ``src`` -> ``dst`` over the collected FIBs
    (:class:`diag.analyze.trace.Trace`); a source no host owns is a usage error."""
    from diag.analyze.trace import trace as walk

    facts = load_facts(source, ports=ports)
    with paused_gc():
        try:
            return walk(facts.tables, facts.model, src, dst, outputs=facts.outputs)
        except (LookupError, ValueError) as err:
            raise UsageError(f"--trace: {err}",
                             "SRC is a host name, one of its addresses, or a pod address") from None


def report(source: Path, ports: Ports = Ports()):
    """(explain document, :class:`diag.report.data.ReportData`) of a bundle or capture."""
    import dataclasses
    import tempfile

    from diag.analyze import explain as analyze
    from diag.bundle import is_bundle, open_bundle
    from diag.facts import load_facts as facts_of
    from diag.report.data import gather
    from diag.report.explain import explain_document

    source = _existing(source)
    options = ports.decode_options()
    with tempfile.TemporaryDirectory(prefix="diag-report-") as tmp, paused_gc():
        bundle = None
        if is_bundle(source):
            bundle = open_bundle(source, Path(tmp) / "bundle")
            # the facts read the verified tree; the document names what the user gave (and
            # its sha256 is the archive's, as explain's)
            facts = dataclasses.replace(facts_of(bundle.root, decode_options=options),
                                        source=str(source))
        else:
            facts = facts_of(source, decode_options=options)
        doc = explain_document(analyze(facts), facts)
        return doc, gather(facts, bundle, doc)


def _existing(source: Path) -> Path:
    """A bundle or capture to read: a regular file or a directory (FIFOs, devices refused)."""
    from diag.bundle import checked_input

    return checked_input(source)


def _capture(file: Path) -> Path:
    """A capture to read: a regular file (directories, FIFOs, devices refused)."""
    from diag.bundle import checked_input

    return checked_input(file, directories=False, what="capture")


# --- diag collect -----------------------------------------------------------------------------

def collect_options(request):
    """The checked :class:`diag.collect.runner.CollectOptions` of a
    :class:`diag.collect.request.CollectRequest`: every value parsed and validated before any
    host is contacted (the default bundle directory is named by the time, once)."""
    from diag.collect.request import options_from

    return options_from(request)


def collect_plan(options) -> dict[str, Any]:
    """What ``diag collect`` would run where (``--dry-run``: ``{out, hosts, kube}``, ``kube``
    the kubectl commands of ``--kube`` or None); contacts nothing."""
    from diag.collect.kube import plan_kube
    from diag.collect.runner import plan

    return {"out": str(options.out), "hosts": plan(options),
            "kube": plan_kube(options.kube) if options.kube is not None else None}


def collect(options, listener: Callable | None = None):
    """Collect the bundle (:class:`diag.collect.runner.RunResult`); ``listener`` sees per-host
    progress."""
    from diag.collect.runner import collect as run

    return run(options, listener=listener)


def collect_request(**fields: Any):
    """A :class:`diag.collect.request.CollectRequest` from the command line's values."""
    from diag.collect.request import CollectRequest

    return CollectRequest(**fields)


def collect_view() -> Iterator:
    """The live per-host progress view of a collection (a context manager with ``update``)."""
    from diag.collect.progress import LiveView

    return LiveView()


def collect_summary(result) -> dict[str, Any]:
    """The JSON-able summary of a finished collection (``diag collect --format json``)."""
    from diag.collect.progress import summary

    return summary(result)


__all__ = ["Ports", "collect", "collect_options", "collect_plan", "collect_request", "collect_summary",
           "collect_view", "explain", "explain_lake", "facts_export", "lake_query", "load_facts", "paused_gc",
           "pcap_export", "pcap_frame", "pcap_frame_deep", "pcap_summaries", "pcap_summary", "report",
           "trace"]
