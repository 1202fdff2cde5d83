"""The evidence lake on the terminal: what ``diag facts --export`` appended, what ``diag query``
found.

Contract: :func:`write_export(result, fmt)` prints the export result of
:func:`diag.pipeline.facts_export` (text: one line per bundle; json: the dict);
:func:`write_query(table, fmt)` prints a query's pyarrow Table as a rich table (``text``),
JSON (a list of row objects) or CSV (a header, then the rows). Nothing is computed here.
Cells come from evidence: in text and CSV their control characters are shown, never obeyed, and
in text rich markup (``[/]``) is text (:mod:`diag.report.safe`); JSON escapes them itself.
"""
from __future__ import annotations

import json
import sys
from typing import Any

from diag.report.safe import markup, visible
from diag.words import counted

QUERY_FORMATS = ("text", "json", "csv")


def write_export(result: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        json.dump(result, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
        return
    rows = sum(result.get("rows", {}).values())
    if result["added"]:
        line = (f"bundle {result['bundle'][:16]} added to {result['lake']}: "
                f"{len(result['rows'])} tables, {rows} rows")
    else:
        line = f"bundle {result['bundle'][:16]} is already in {result['lake']}: nothing written"
    print(line)
    for column, count in sorted((result.get("coerced") or {}).items()):
        print(f"  {column}: {counted(count, 'value')} did not fit the column's type and are NULL",
              file=sys.stderr)


def _plain(value):
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


def write_query(table, fmt: str) -> None:
    if fmt == "json":
        rows = [{k: _plain(v) for k, v in row.items()} for row in table.to_pylist()]
        json.dump(rows, sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    elif fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([visible(name) for name in table.column_names])
        for row in table.to_pylist():
            writer.writerow(["" if v is None else visible(_plain(v)) for v in row.values()])
    else:
        from rich.table import Table

        from diag.report.terminal import console as terminal

        out = Table(show_lines=False)
        for name in table.column_names:
            out.add_column(markup(name), overflow="fold")
        for row in table.to_pylist():
            out.add_row(*("" if v is None else markup(_plain(v)) for v in row.values()))
        console = terminal()
        console.print(out)
        console.print(counted(table.num_rows, "row"), style="dim")
