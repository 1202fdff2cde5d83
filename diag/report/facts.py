"""``diag facts`` output: the model with how each value was inferred, table sizes, one table.

Contract: :func:`write_facts(facts, table, fmt)` writes a :class:`diag.facts.Facts` to stdout as
text (rich), JSON (:func:`facts_json`, schema in docs/facts.md) or CSV (one table). A bundle
with parse errors or damage still shows, and says so. Nothing is computed here.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

from diag.report.safe import markup, visible
from diag.values import is_missing

SCHEMA_VERSION = 1
FORMATS = ("text", "json", "csv")


def records(df) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-able dicts (NaN -> null, numpy scalars -> Python)."""
    return json.loads(df.to_json(orient="records", default_handler=str))


def facts_json(facts, table: str | None = None) -> dict[str, Any]:
    if table:
        return {"schema_version": SCHEMA_VERSION, "source": facts.source, "table": table,
                "rows": records(facts.table(table))}
    return {"schema_version": SCHEMA_VERSION, "source": facts.source, "kind": facts.kind,
            "bundle": facts.bundle, "model": asdict(facts.model),
            "tables": {name: int(len(df)) for name, df in sorted(facts.tables.items())},
            "parse_errors": records(facts.parse_errors), "problems": list(facts.problems)}


def write_facts(facts, table: str | None, fmt: str) -> None:
    if fmt == "json":
        json.dump(facts_json(facts, table), sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    elif fmt == "csv":      # cells from evidence: their control characters shown, not obeyed
        facts.table(table).to_csv(_Visible(sys.stdout), index=False)
    else:
        _text(facts, table)


class _Visible:
    """A text stream that writes everything through :func:`visible`."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(visible(text))


def _cell(value: Any) -> str:
    if is_missing(value):
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value) or "-"
    return str(value)


def _described(item) -> str:
    value = item.value
    if isinstance(value, dict):
        value = " ".join(f"{k} {_cell(v)}" for k, v in value.items())
    extra = f" [agrees: {', '.join(item.agrees)}]" if item.agrees else ""
    extra += f" [conflicts: {'; '.join(item.conflicts)}]" if item.conflicts else ""
    return f"{_cell(value)} <- {item.how}{extra}"


def _text(facts, table: str | None) -> None:
    from rich.table import Table

    from diag.report.terminal import console as terminal

    # addresses must never be cut: a pipe or file gets a wide console, a terminal its width
    console = terminal(highlight=False, soft_wrap=False,
                       width=None if sys.stdout.isatty() else 200)
    if table:
        import pandas as pd

        df = facts.table(table)
        console.print(visible(f"{table}: {len(df)} row{'s' * (len(df) != 1)}"), markup=False)
        with pd.option_context("display.max_rows", None, "display.max_columns", None,
                               "display.width", 10_000, "display.max_colwidth", 60):
            sys.stdout.write(visible(df.to_string(index=False)) + "\n")
        return
    model = facts.model
    reasons = ", ".join(facts.bundle.get("partial_reasons") or [])
    hosts = Table(title=markup(f"cluster model: {facts.source} ({facts.kind}, "
                               f"{facts.bundle.get('status')}{': ' + reasons if reasons else ''})"))
    for column in ("host", "role", "node IP", "cluster NIC", "default NIC", "pod CIDR", "AS"):
        hosts.add_column(column)
    for h in model.hosts.values():
        hosts.add_row(*map(markup, (h.name, _cell(h.role.value), _cell(h.node_ip.value),
                                    _cell(h.cluster_iface.value), _cell(h.default_iface.value),
                                    _cell(h.pod_cidr.value), _cell(h.asn.value))))
    console.print(hosts)
    console.print("[bold]how each part was inferred[/bold]")
    for h in model.hosts.values():
        parts = [("role", h.role), ("node IP", h.node_ip), ("cluster NIC", h.cluster_iface),
                 ("default NIC", h.default_iface), ("pod CIDR", h.pod_cidr)]
        if h.kube_node.known:
            parts.insert(0, ("Kubernetes Node", h.kube_node))
        for label, item in parts:
            # soft wrap: a how with its conflicts is one line, never cut at the console width
            console.print(visible(f"  {h.name} {label}: {_described(item)}"), markup=False,
                          soft_wrap=True)
    cluster = [("pod range", model.pod_range), ("LoadBalancer IPs", model.lb_ips)]
    cluster += [(label, item) for label, item in (
        ("CNI", model.cni), ("IPAM", model.ipam), ("routing", model.routing),
        ("tunnel", model.tunnel)) if item.known or item.source != "none"]
    for label, item in cluster:
        console.print(visible(f"  {label}: {_described(item)}"), markup=False, soft_wrap=True)
    for t in model.tunnels:
        console.print(visible(f"  tunnel {t.host} {t.device}: {t.kind} vni {_cell(t.vni)} port "
                              f"{_cell(t.port)} local {_cell(t.local)} mtu {_cell(t.mtu)} "
                              f"remotes {_cell(t.remotes)} <- {t.how}"), markup=False)
    for note in model.notes:
        console.print(visible(f"  note: {note}"), markup=False)
    sizes = Table(title="tables")
    sizes.add_column("table")
    sizes.add_column("rows", justify="right")
    for name, df in sorted(facts.tables.items()):
        sizes.add_row(markup(name), str(len(df)))
    console.print(sizes)
    if len(facts.parse_errors):
        n = len(facts.parse_errors)
        console.print(f"[yellow]{n} output{'s' * (n != 1)} not understood:[/yellow]")
        for row in facts.parse_errors.itertuples(index=False):
            where = f"{row.host} " if not is_missing(row.host) else ""
            console.print(visible(f"  {where}{row.source} ({row.parser}): {row.reason}"),
                          markup=False)
    for problem in facts.problems:
        console.print(f"[red]bundle problem[/red] {markup(problem['kind'])} "
                      f"{markup(problem['path'])} {markup(problem['detail'])}")
