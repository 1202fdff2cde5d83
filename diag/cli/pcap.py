"""``diag pcap FILE``: argv -> :mod:`diag.pipeline` -> a renderer of :mod:`diag.report`."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from diag.cli.app import app, run
from diag.cli.options import BgpPorts, GenevePorts, VxlanPorts, ports
from diag.errors import ExitStatus, UsageError

FORMATS = ("text", "json")
MAX_WORKERS = 64        # each worker is a process with its own decoder: bounded, whatever the cores


@app.command("pcap")
def pcap_command(
    file: Path = typer.Argument(..., help="Capture file (pcap or pcapng)."),
    fmt: str = typer.Option("text", "--format", help="Output: text or json."),
    bgp_port: BgpPorts = [],
    vxlan_port: VxlanPorts = [],
    geneve_port: GenevePorts = [],
    export: Optional[Path] = typer.Option(None, "--export", help="Write the tables into DIR (Parquet, or CSV with --export-format csv)."),
    export_format: str = typer.Option("parquet", "--export-format", help="parquet or csv."),
    frame: Optional[int] = typer.Option(None, "--frame", help="Show one frame (1-based, as in Wireshark)."),
    deep: bool = typer.Option(False, "--deep", help="With --frame: show it through Wireshark's dissectors (tshark)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes for the summary (default: all cores for files of 32 MiB or more, else 1; --export and --frame use one)."),
) -> None:
    """Analyse a capture offline: BGP sessions and messages, tunnels per VNI, ARP."""
    run(lambda: _pcap(file, fmt, ports(bgp_port, vxlan_port, geneve_port), export,
                      export_format, frame, deep, workers))


def _pcap(file: Path, fmt: str, carried, export: Path | None, export_format: str,
          frame: int | None, deep: bool, workers: int | None) -> ExitStatus:
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
    if frame is not None:
        return _frame(file, frame, deep, fmt, carried)
    if export:
        result = pipeline.pcap_export(file, export, export_format, carried)
    else:
        result = pipeline.pcap_summary(file, carried, workers)
    if fmt == "json":
        json.dump(result, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        from diag.report.pcap_text import console, render

        out = console()
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
