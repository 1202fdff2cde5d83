"""`diag pcap`: decode a capture, then summarise, export or show one frame.

The pipeline function for the pcap command: it puts the decode stage and a renderer in order and
returns an :class:`diag.errors.ExitStatus`. Everything streams chunk by chunk: the summary folds
each chunk, ``--export`` appends each chunk to the table files, so memory stays flat.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Iterable

from diag.errors import EnvironmentProblem, ExitStatus, UsageError

EXPORT_FORMATS = ("parquet", "csv")


def run_pcap(file: Path, fmt: str = "text", bgp_ports: Iterable[int] = (),
             vxlan_ports: Iterable[int] = (), geneve_ports: Iterable[int] = (),
             export: Path | None = None, export_format: str = "parquet",
             frame: int | None = None, deep: bool = False,
             workers: int | None = None) -> ExitStatus:
    if fmt not in ("text", "json"):
        raise UsageError(f"unknown --format {fmt!r}", hint="use text or json")
    if export_format not in EXPORT_FORMATS:
        raise UsageError(f"unknown --export-format {export_format!r}", hint="use parquet or csv")
    if deep and frame is None:
        raise UsageError("--deep needs --frame N")
    if frame is not None and frame < 1:
        raise UsageError("--frame counts from 1, as in Wireshark")
    if workers is not None and workers < 1:
        raise UsageError("--workers must be 1 or more")

    from diag.decode import DecodeOptions

    options = DecodeOptions(tuple(bgp_ports), tuple(vxlan_ports), tuple(geneve_ports))
    if frame is not None:
        return _show_frame(file, options, frame, deep, fmt)

    from diag.decode.parallel import auto_workers

    if workers is None:
        workers = auto_workers(file)
    if workers > 1 and not export:
        from diag.decode.parallel import summarize

        result = summarize(file, options, workers)     # the same result, several processes
    else:
        result = _summary(file, options, export, export_format)
    if fmt == "json":
        json.dump(result, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        from diag.report.pcap_text import render

        console = _console()
        render(result, console)
        if export:
            console.print(f"\ntables written to {export}/ ({export_format})")
    return ExitStatus.OK


def _summary(file: Path, options, export: Path | None, export_format: str) -> dict:
    from diag.decode import iter_rows, to_tables
    from diag.decode.summary import CaptureSummary

    summary = CaptureSummary()
    writer = _Exporter(export, export_format) if export else None
    try:
        # the summary folds row buffers: pandas is imported only to export tables
        for chunk in iter_rows(file, options):
            summary.add(chunk)
            if writer:
                writer.write(to_tables(chunk))
    finally:
        if writer:
            writer.close()
    return summary.result()


def _console():
    """A terminal gets rich's layout; a pipe or file gets long lines (grep-able, no wrapping)."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console()
    return Console(width=200, soft_wrap=True)


class _Exporter:
    """Writes each table as DIR/<table>/part-NNNNN.<ext>, one part per chunk (streaming)."""

    def __init__(self, directory: Path, fmt: str) -> None:
        self.dir, self.fmt, self.part = directory, fmt, 0
        if directory.exists() and any(directory.iterdir()):
            raise UsageError(f"{directory} exists and is not empty",
                             hint="choose a new directory for --export")
        directory.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise EnvironmentProblem("Parquet export needs pyarrow",
                                         hint="pip install pyarrow, or --export-format csv") from None

    def write(self, tables) -> None:
        for name, df in tables.items():
            if name == "interfaces" or (not len(df) and self.part):
                continue
            out = self.dir / name
            out.mkdir(exist_ok=True)
            target = out / f"part-{self.part:05d}.{self.fmt}"
            tmp = target.with_suffix(target.suffix + ".tmp")
            if self.fmt == "csv":
                df.to_csv(tmp, index=False)
            else:
                _to_parquet(df, tmp)
            tmp.replace(target)
        if self.part == 0:
            tables.interfaces.to_csv(self.dir / "interfaces.csv", index=False)
        self.part += 1

    def close(self) -> None:
        pass


def _to_parquet(df, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # mixed types in an object column: keep the values, as text
        fixed = df.copy()
        for col in fixed.columns:
            if fixed[col].dtype == object:
                fixed[col] = fixed[col].map(lambda v: v if v is None else str(v))
        table = pa.Table.from_pandas(fixed, preserve_index=False)
    pq.write_table(table, path)


def _show_frame(file: Path, options, frame: int, deep: bool, fmt: str) -> ExitStatus:
    from diag.decode import iter_decode

    found: dict[str, list[dict]] = {}
    last = 0
    for chunk in iter_decode(file, options, chunk_packets=4096):
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
    if deep:
        return _deep(file, options, frame)
    if fmt == "json":
        json.dump(found, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return ExitStatus.OK
    from rich.table import Table

    console = _console()
    for name, rows in found.items():
        for i, row in enumerate(rows):
            t = Table(title=f"{name} [{i + 1}/{len(rows)}] at frame {frame}", title_justify="left",
                      show_header=False)
            t.add_column("field", style="bold")
            t.add_column("value")
            for k, v in row.items():
                if v is None or (isinstance(v, float) and v != v):
                    continue
                t.add_row(k, str(v))
            console.print(t)
    return ExitStatus.OK


def _deep(file: Path, options, frame: int) -> ExitStatus:
    """One frame through Wireshark's dissectors (pyshark over tshark), with decode-as for
    diag's ports — 8472 in particular, which Wireshark does not decode as VXLAN by itself."""
    if not shutil.which("tshark"):
        raise EnvironmentProblem("--deep needs tshark", hint="apt-get install tshark")
    import pyshark
    import asyncio

    # pyshark drives tshark through asyncio's current loop; asyncio.run() elsewhere in this
    # process (e.g. an SSH collection) leaves none set, so give pyshark a fresh one
    asyncio.set_event_loop(asyncio.new_event_loop())

    decode_as = {f"udp.port=={p}": "vxlan" for p in options.vxlan_ports if p != 4789}
    decode_as |= {f"udp.port=={p}": "geneve" for p in options.geneve_ports if p != 6081}
    decode_as |= {f"tcp.port=={p}": "bgp" for p in options.bgp_ports if p != 179}
    cap = pyshark.FileCapture(str(file), display_filter=f"frame.number == {frame}",
                              decode_as=decode_as or None,
                              override_prefs={"tcp.desegment_tcp_streams": "TRUE"})
    try:
        packets = list(cap)
    except Exception as err:  # pyshark wraps tshark failures in several exception types
        raise EnvironmentProblem(f"tshark could not dissect frame {frame}: {err}") from None
    finally:
        cap.close()
    if not packets:
        raise UsageError(f"tshark shows no frame {frame}")
    sys.stdout.write(str(packets[0]))
    sys.stdout.write("\n")
    return ExitStatus.OK
