"""``diag facts SOURCE``: argv -> :func:`diag.pipeline.load_facts` -> :mod:`diag.report.facts`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from diag.cli.app import app, run
from diag.cli.options import BgpPorts, GenevePorts, VxlanPorts, ports
from diag.errors import ExitStatus, UsageError


@app.command("facts")
def facts_command(
    source: Path = typer.Argument(..., help="Bundle directory, bundle archive (.tar.gz), or a capture (pcap/pcapng)."),
    table: Optional[str] = typer.Option(None, "--table", help="Show one table (e.g. routes, bgp_peers)."),
    fmt: str = typer.Option("text", "--format", help="text, json, or csv (csv needs --table)."),
    inventory: Optional[Path] = typer.Option(None, "--inventory", "-i", help="Inventory (TOML/JSON): declared role, pod_cidr, cluster_iface, lb_ips win over inference."),
    bgp_port: BgpPorts = [],
    vxlan_port: VxlanPorts = [],
    geneve_port: GenevePorts = [],
    export: Optional[Path] = typer.Option(None, "--export", help="Append every table and the model to the evidence lake DIR (Parquet; idempotent by bundle id); query it with diag query DIR SQL."),
) -> None:
    """Show what diag believes: the cluster model (and how each part was inferred) and the tables."""
    run(lambda: _facts(source, table, fmt, inventory, ports(bgp_port, vxlan_port, geneve_port),
                       export))


def _facts(source: Path, table: str | None, fmt: str, inventory: Path | None,
           carried, export: Path | None = None) -> ExitStatus:
    from diag import pipeline
    from diag.report.facts import FORMATS, write_facts

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: use text, json or csv")
    if fmt == "csv" and not table:
        raise UsageError("--format csv needs --table NAME")
    if export is not None:
        from diag.report.lake import write_export

        if table or fmt == "csv":
            raise UsageError("--export writes every table: drop --table / --format csv")
        from diag.lake import LAKE_MANIFEST
        from diag.report.output import check_directory_target

        check_directory_target(export, "--export", marker=LAKE_MANIFEST)
        write_export(pipeline.facts_export(source, export, inventory, carried), fmt)
        return ExitStatus.OK
    with pipeline.paused_gc():
        facts = pipeline.load_facts(source, inventory, carried)
        if table:
            facts.table(table)  # a clear error for an unknown name, before any output
        write_facts(facts, table, fmt)
    return ExitStatus.OK
