"""``diag query LAKE SQL``: argv -> :func:`diag.pipeline.lake_query` -> :mod:`diag.report.lake`."""
from __future__ import annotations

from pathlib import Path

import typer

from diag.cli.app import app, run
from diag.errors import ExitStatus, UsageError


@app.command("query")
def query_command(
    lake: Path = typer.Argument(..., help="An evidence lake (diag facts BUNDLE --export LAKE)."),
    sql: str = typer.Argument(..., help="One SQL statement (DuckDB); every facts table is a view under its own name (routes, bgp_peers, ...), with bundle and host columns; bundles lists the bundles."),
    fmt: str = typer.Option("text", "--format", help="text (a table), json or csv."),
) -> None:
    """Ask SQL questions across every bundle exported into an evidence lake."""
    run(lambda: _query(lake, sql, fmt))


def _query(lake: Path, sql: str, fmt: str) -> ExitStatus:
    from diag import pipeline
    from diag.report.lake import QUERY_FORMATS, write_query

    if fmt not in QUERY_FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", hint="use text, json or csv")
    write_query(pipeline.lake_query(lake, sql), fmt)
    return ExitStatus.OK
