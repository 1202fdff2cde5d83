"""`diag report SOURCE -o FILE`: one file to attach to an incident (thin CLI; docs/report.md).

Contract: :func:`register(app, run)` adds the command to the root typer app; :func:`run_report`
does the work and returns an :class:`~diag.errors.ExitStatus`, like ``diag explain``: ``FINDINGS``
(1) when a finding is at or above ``--fail-on`` (default ``error``; ``never`` always gives 0),
else ``OK`` — the report is written in both cases. This module is the only place that puts the
stages in order for a report: the bundle (:func:`diag.bundle.open_bundle`, extracted once into a
temporary directory that is removed at the end), the facts (:func:`diag.facts.load_facts`), the
explain JSON document (:func:`diag.analyze.explain` + :func:`diag.analyze.report.as_dict`, exactly
what ``diag explain --format json`` prints), then :mod:`diag.report.data` and one renderer.
The format comes from the output's extension and is checked before anything is read. Heavy
imports happen inside the functions.
"""
from __future__ import annotations

from pathlib import Path
from typing import List

import typer

FAIL_ON = ("info", "warning", "error", "never")


def register(app: typer.Typer, run) -> None:
    @app.command("report")
    def report_command(
        source: Path = typer.Argument(..., help="Bundle directory, bundle archive or a pcap."),
        output: Path = typer.Option(..., "-o", "--output",
                                    help="Report file: .html, .md or .json (format by extension)."),
        fail_on: str = typer.Option("error", "--fail-on",
                                    help="Exit 1 when a finding is at or above: info, warning, "
                                         "error; never: always 0."),
        bgp_port: List[int] = typer.Option([], "--bgp-port", help="Extra TCP port carrying "
                                                                  "BGP (for a bare pcap)."),
        vxlan_port: List[int] = typer.Option([], "--vxlan-port", help="Extra UDP port carrying "
                                                                      "VXLAN (for a bare pcap)."),
    ) -> None:
        """Write one self-contained report (HTML, Markdown or JSON) of what explain finds."""
        run(lambda: run_report(source, output, fail_on=fail_on, bgp_ports=bgp_port,
                               vxlan_ports=vxlan_port))


def _is_bundle(path: Path) -> bool:
    import tarfile

    if path.is_dir() or path.name.lower().endswith((".tar.gz", ".tgz", ".tar")):
        return True
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def build_report(source: Path, bgp_ports=(), vxlan_ports=()):
    """(explain JSON document, ReportData) for a source: the pipeline, in order."""
    import dataclasses
    import tempfile

    from diag.analyze import explain
    from diag.analyze.cli import SCHEMA_VERSION
    from diag.analyze.report import as_dict
    from diag.bundle import open_bundle
    from diag.decode import DEFAULT_BGP_PORTS, DecodeOptions
    from diag.errors import UnusableInput
    from diag.facts import load_facts
    from diag.report.data import gather

    source = Path(source)
    if not source.exists():
        raise UnusableInput(f"not found: {source}")
    options = DecodeOptions(tuple(bgp_ports), tuple(vxlan_ports))
    ports = tuple(sorted(set(DEFAULT_BGP_PORTS) | set(bgp_ports)))
    with tempfile.TemporaryDirectory(prefix="diag-report-") as tmp:
        bundle = None
        if _is_bundle(source):
            bundle = open_bundle(source, Path(tmp) / "bundle")
            # the facts read the verified tree; the document names what the user gave (and
            # its sha256 is the archive's, as explain's)
            facts = dataclasses.replace(load_facts(bundle.root, decode_options=options),
                                        source=str(source))
        else:
            facts = load_facts(source, decode_options=options)
        doc = as_dict(explain(facts), facts, SCHEMA_VERSION)
        data = gather(facts, bundle, doc, ports)
    return doc, data


def run_report(source: Path, output: Path, *, fail_on: str = "error", bgp_ports=(),
               vxlan_ports=()) -> int:
    from diag.errors import ExitStatus, UsageError
    from diag.model import severity_rank
    from diag.report.output import format_for, render, write_atomic

    fmt = format_for(output)
    if fail_on not in FAIL_ON:
        raise UsageError(f"unknown severity {fail_on!r} for --fail-on",
                         f"use one of: {', '.join(FAIL_ON)}")
    doc, data = build_report(source, bgp_ports, vxlan_ports)
    write_atomic(output, render(fmt, doc, data))
    worst = max((severity_rank(f["severity"]) for f in doc["findings"]), default=-1)
    if fail_on != "never" and worst >= severity_rank(fail_on):
        return ExitStatus.FINDINGS
    return ExitStatus.OK
