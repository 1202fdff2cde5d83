"""``diag explain SOURCE``: argv -> :func:`diag.pipeline.explain` (or ``trace``) ->
:mod:`diag.report.explain`.

Exit status: ``FINDINGS`` (1) when a finding is at or above ``--fail-on`` (default ``error``),
else ``OK``; with ``--trace SRC DST``, 1 when the packet is dropped or loops, 0 when it is
delivered or leaves.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import List, Optional

import typer

from diag.cli.app import app, run
from diag.cli.options import BgpPorts, FailOn, VxlanPorts, ports
from diag.errors import ExitStatus, UsageError
from diag.model import SEVERITIES, severity_rank


@app.command("explain")
def explain_command(
    source: Path = typer.Argument(..., help="Bundle directory, bundle archive or a pcap."),
    fmt: str = typer.Option("text", "--format", help="Output: text, json or md."),
    fail_on: FailOn = "error",
    trace: Optional[List[str]] = typer.Option(
        None, "--trace", help="Walk a packet SRC DST over the hosts' FIBs (give twice: "
                              "--trace SRC --trace DST, or --trace 'SRC DST')."),
    bgp_port: BgpPorts = [],
    vxlan_port: VxlanPorts = [],
    bundle: Optional[str] = typer.Option(None, "--bundle", help="With an evidence lake as SOURCE: the bundle (id or prefix) whose routing to explain."),
) -> None:
    """Explain what is wrong: ranked findings with evidence and fixes (docs/explain.md).
    SOURCE may be an evidence lake (diag facts --export): the routing analyzers then run
    from its Parquet files, at fleet scale."""
    run(lambda: _explain(source, fmt, fail_on, trace, ports(bgp_port, vxlan_port), bundle))


def _trace_args(trace: list[str]) -> tuple[str, str]:
    parts = [p for item in trace for p in item.replace(",", " ").split()]
    if len(parts) != 2:
        raise UsageError("--trace needs two addresses: SRC DST",
                         "e.g. diag explain BUNDLE --trace 172.20.0.10 --trace 172.20.2.10")
    try:
        ipaddress.ip_address(parts[1])
    except ValueError:
        raise UsageError(f"--trace destination {parts[1]!r} is not an IP address") from None
    return parts[0], parts[1]


def _explain(source: Path, fmt: str, fail_on: str, trace: list[str] | None,
             carried, bundle: str | None = None) -> ExitStatus:
    from diag import pipeline
    from diag.report.explain import FORMATS, render, render_trace

    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    if fail_on not in SEVERITIES:
        raise UsageError(f"unknown severity {fail_on!r} for --fail-on",
                         f"use one of: {', '.join(SEVERITIES)}")
    if trace:
        src, dst = _trace_args(trace)
        walk = pipeline.trace(source, src, dst, carried)
        print(render_trace(walk, fmt), end="")
        return ExitStatus.FINDINGS if walk.outcome in ("dropped", "loop") else ExitStatus.OK
    lake = pipeline.is_lake(source)
    if bundle is not None and not lake:
        raise UsageError("--bundle chooses a bundle of an evidence lake", "SOURCE is not one")
    if lake and trace:
        raise UsageError("--trace walks a bundle's FIBs", "give the bundle, not the lake")
    with pipeline.paused_gc():
        facts, result = pipeline.explain_lake(source, bundle) if lake else \
            pipeline.explain(source, carried)
        print(render(result, facts, fmt), end="")
    worst = max((severity_rank(f.severity) for f in result.findings), default=-1)
    return ExitStatus.FINDINGS if worst >= severity_rank(fail_on) else ExitStatus.OK
