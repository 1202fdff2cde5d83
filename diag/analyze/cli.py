"""`diag explain`: findings with evidence, ranked, from a bundle or a capture (thin CLI).

Contract: :func:`register(app, run)` adds the command to the root typer app; :func:`run_explain`
does the work and returns an :class:`~diag.errors.ExitStatus`: ``FINDINGS`` (1) when a finding is
at or above ``--fail-on`` (default ``error``), else ``OK``. ``--trace SRC DST`` prints the path
walk instead (exit 1 when the packet is dropped or loops, 0 when delivered or leaves). Output
formats text, json (schema in docs/explain.md), md. Heavy imports happen inside the functions.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

SCHEMA_VERSION = 1
FORMATS = ("text", "json", "md")


def register(app: typer.Typer, run) -> None:
    @app.command("explain")
    def explain_command(
        source: Path = typer.Argument(..., help="Bundle directory, bundle archive or a pcap."),
        fmt: str = typer.Option("text", "--format", help="Output: text, json or md."),
        fail_on: str = typer.Option("error", "--fail-on",
                                    help="Exit 1 when a finding is at or above: info, warning, "
                                         "error."),
        trace: Optional[List[str]] = typer.Option(
            None, "--trace", help="Walk a packet SRC DST over the hosts' FIBs (give twice: "
                                  "--trace SRC --trace DST, or --trace 'SRC DST').",
        ),
        bgp_port: List[int] = typer.Option([], "--bgp-port", help="Extra TCP port carrying "
                                                                  "BGP (for a bare pcap)."),
        vxlan_port: List[int] = typer.Option([], "--vxlan-port", help="Extra UDP port carrying "
                                                                      "VXLAN (for a bare pcap)."),
    ) -> None:
        """Explain what is wrong: ranked findings with evidence and fixes (docs/explain.md)."""
        run(lambda: run_explain(source, fmt=fmt, fail_on=fail_on, trace=trace,
                                bgp_ports=bgp_port, vxlan_ports=vxlan_port))


def _trace_args(trace: list[str]) -> tuple[str, str]:
    from diag.errors import UsageError

    parts = [p for item in trace for p in item.replace(",", " ").split()]
    if len(parts) != 2:
        raise UsageError("--trace needs two addresses: SRC DST",
                         "e.g. diag explain BUNDLE --trace 172.20.0.10 --trace 172.20.2.10")
    return parts[0], parts[1]


def run_explain(source: Path, *, fmt: str = "text", fail_on: str = "error",
                trace: list[str] | None = None, bgp_ports=(), vxlan_ports=()) -> int:
    import ipaddress

    from diag.errors import ExitStatus, UsageError
    from diag.model import SEVERITIES, severity_rank

    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    if fail_on not in SEVERITIES:
        raise UsageError(f"unknown severity {fail_on!r} for --fail-on",
                         f"use one of: {', '.join(SEVERITIES)}")
    src_dst = _trace_args(trace) if trace else None
    if src_dst:
        try:
            ipaddress.ip_address(src_dst[1])
        except ValueError:
            raise UsageError(f"--trace destination {src_dst[1]!r} is not an IP address") from None
    facts = _load(source, bgp_ports, vxlan_ports)
    if src_dst:
        return _run_trace(facts, src_dst, fmt)

    from diag.analyze import explain
    from diag.analyze.report import render
    from diag.analyze.trace import paused_gc

    # The loaded tables are millions of live objects, all still in the GC's youngest
    # generation when loading ends: the first collections after it would walk every one of
    # them (0.2-0.3 s at 500 hosts x 5,000 routes) for no garbage; the analysis makes none
    # that outlives it.
    with paused_gc():
        result = explain(facts)
        print(render(result, facts, fmt, SCHEMA_VERSION), end="")
    worst = max((severity_rank(f.severity) for f in result.findings), default=-1)
    return ExitStatus.FINDINGS if worst >= severity_rank(fail_on) else ExitStatus.OK


def _load(source: Path, bgp_ports, vxlan_ports):
    from diag.facts import load_facts

    options = None
    if bgp_ports or vxlan_ports:
        from diag.decode import DecodeOptions

        options = DecodeOptions(tuple(bgp_ports), tuple(vxlan_ports))
    return load_facts(source, decode_options=options)


def _run_trace(facts, src_dst: tuple[str, str], fmt: str) -> int:
    import json

    from diag.analyze.trace import trace
    from diag.errors import ExitStatus, UsageError

    try:
        result = trace(facts.tables, facts.model, *src_dst)
    except (LookupError, ValueError) as err:
        raise UsageError(f"--trace: {err}",
                         "SRC is a host name, one of its addresses, or a pod address") from None
    if fmt == "json":
        print(json.dumps({"schema_version": SCHEMA_VERSION, "trace": result.to_dict()},
                         indent=2, default=str))
    else:
        print(result.text())
    return ExitStatus.FINDINGS if result.outcome in ("dropped", "loop") else ExitStatus.OK
