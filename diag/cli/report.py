"""``diag report SOURCE -o FILE``: argv -> :func:`diag.pipeline.report` -> one renderer.

The format comes from the output's extension and is checked before anything is read. Exit status
as ``diag explain``: ``FINDINGS`` (1) when a finding is at or above ``--fail-on`` (``never``:
always 0), else ``OK`` — the report is written in both cases.
"""
from __future__ import annotations

from pathlib import Path

import typer

from diag.cli.app import app, run
from diag.cli.options import BgpPorts, VxlanPorts, ports
from diag.errors import ExitStatus, UsageError
from diag.model import severity_rank

FAIL_ON = ("info", "warning", "error", "never")


@app.command("report")
def report_command(
    source: Path = typer.Argument(..., help="Bundle directory, bundle archive or a pcap."),
    output: Path = typer.Option(..., "-o", "--output",
                                help="Report file: .html, .md or .json (format by extension)."),
    fail_on: str = typer.Option("error", "--fail-on",
                                help="Exit 1 when a finding is at or above: info, warning, "
                                     "error; never: always 0."),
    bgp_port: BgpPorts = [],
    vxlan_port: VxlanPorts = [],
) -> None:
    """Write one self-contained report (HTML, Markdown or JSON) of what explain finds."""
    run(lambda: _report(source, output, fail_on, ports(bgp_port, vxlan_port)))


def _report(source: Path, output: Path, fail_on: str, carried) -> ExitStatus:
    from diag import pipeline
    from diag.report.output import check_target, format_for, render, write_atomic

    fmt = format_for(output)
    if fail_on not in FAIL_ON:
        raise UsageError(f"unknown severity {fail_on!r} for --fail-on",
                         f"use one of: {', '.join(FAIL_ON)}")
    check_target(output)        # before anything is read: a wrong -o costs no analysis
    with pipeline.paused_gc():
        doc, data = pipeline.report(source, carried)
        write_atomic(output, render(fmt, doc, data))
    worst = max((severity_rank(f["severity"]) for f in doc["findings"]), default=-1)
    if fail_on != "never" and worst >= severity_rank(fail_on):
        return ExitStatus.FINDINGS
    return ExitStatus.OK
