"""``diag pcap FILE``: argv -> :mod:`diag.pipeline` -> a renderer of :mod:`diag.report`."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from diag.cli.app import app, run
from diag.cli.options import BgpPorts, GenevePorts, VxlanPorts, ports
from diag.errors import ExitStatus, UsageError

FORMATS = ("text", "json")
MAX_WORKERS = 64        # each worker is a process with its own decoder: bounded, whatever the cores


@app.command("pcap")
def pcap_command(
    files: List[Path] = typer.Argument(..., help="Capture files (pcap or pcapng)."),
    fmt: str = typer.Option("text", "--format", help="Output: text or json."),
    bgp_port: BgpPorts = [],
    vxlan_port: VxlanPorts = [],
    geneve_port: GenevePorts = [],
    export: Optional[Path] = typer.Option(None, "--export", help="Write the tables into DIR (Parquet, or CSV with --export-format csv)."),
    export_format: str = typer.Option("parquet", "--export-format", help="parquet or csv."),
    frame: Optional[int] = typer.Option(None, "--frame", help="Show one frame (1-based, as in Wireshark)."),
    deep: bool = typer.Option(False, "--deep", help="With --frame: show it through Wireshark's dissectors (tshark)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes for the summary (default: all cores for files of 32 MiB or more, else 1; --export and --frame use one); with --scheduler local: the cluster's worker processes."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Decode on a Dask cluster: the scheduler's address (tcp://host:8786), or local for a LocalCluster on this machine. Same output as without."),
    spool: Optional[Path] = typer.Option(None, "--spool", help="With --scheduler: a directory every Dask worker can read and write (default: a temporary directory, for workers on this machine)."),
) -> None:
    """Analyse captures offline: BGP sessions and messages, tunnels per VNI, ARP."""
    run(lambda: _pcap(files, fmt, ports(bgp_port, vxlan_port, geneve_port), export,
                      export_format, frame, deep, workers, scheduler, spool))


def _pcap(files: list[Path], fmt: str, carried, export: Path | None, export_format: str,
          frame: int | None, deep: bool, workers: int | None, scheduler: str | None = None,
          spool: Path | None = None) -> ExitStatus:
    from diag import pipeline
    from diag.report.export import EXPORT_FORMATS

    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", hint="use text or json")
    if export_format not in EXPORT_FORMATS:
        raise UsageError(f"unknown --export-format {export_format!r}", hint="use parquet or csv")
    if deep and frame is None:
        raise UsageError("--deep needs --frame N")
    if frame is not None and frame < 1:
        raise UsageError("--frame counts from 1, as in Wireshark")
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise UsageError(f"--workers must be 1 to {MAX_WORKERS}",
                         "more processes than cores only adds memory; the default is every core")
    if spool is not None and scheduler is None:
        raise UsageError("--spool needs --scheduler")
    if frame is not None:
        if len(files) != 1:
            raise UsageError("--frame shows a frame of one capture: give one file")
        return _frame(files[0], frame, deep, fmt, carried)
    from functools import partial

    from diag.report.progress import capture_progress

    results = pipeline.pcap_summaries(files, carried, workers, scheduler, export, export_format,
                                      spool, progress=partial(capture_progress, fmt=fmt))
    if fmt == "json":
        json.dump(results[0] if len(results) == 1 else results, sys.stdout, indent=2,
                  default=str)
        sys.stdout.write("\n")
    else:
        from diag.report.pcap_text import console, render

        out = console()
        for k, (file, result) in enumerate(zip(files, results)):
            if len(files) > 1:
                out.print(("\n" if k else "") + f"== {file} ==")
            render(result, out)
        if export:
            out.print(f"\ntables written to {export}/ ({export_format})")
    return ExitStatus.OK


def _frame(file: Path, frame: int, deep: bool, fmt: str, carried) -> ExitStatus:
    from diag import pipeline

    if deep:            # tshark's view quotes the packet's bytes: shown, never obeyed
        from diag.report.safe import visible

        sys.stdout.write(visible(pipeline.pcap_frame_deep(file, frame, carried)) + "\n")
        return ExitStatus.OK
    found = pipeline.pcap_frame(file, frame, carried)
    if fmt == "json":
        json.dump(found, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        from diag.report.pcap_text import console, render_frame

        render_frame(found, frame, console())
    return ExitStatus.OK
