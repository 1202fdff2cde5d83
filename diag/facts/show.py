"""What ``diag facts`` prints: the model with how each value was inferred, table sizes, one table.

Contract: :func:`run_facts` loads facts (:func:`diag.facts.load_facts`) and writes text (rich),
JSON (:func:`facts_json`, schema in docs/facts.md) or CSV (one table) to stdout; returns the exit
status (0; a bundle with parse errors or damage still shows, and says so). Bad options raise
:class:`diag.errors.UsageError`.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from diag.errors import UsageError

SCHEMA_VERSION = 1
FORMATS = ("text", "json", "csv")


def load_inventory(path: Path) -> dict[str, dict[str, Any]]:
    """``[[hosts]]`` with name + declared fields (TOML), or the same shape in JSON."""
    from diag.errors import UnusableInput

    try:
        text = path.read_bytes()
    except OSError as err:
        raise UnusableInput(f"cannot read inventory {path}: {err.strerror}") from None
    try:
        if path.suffix == ".json":
            doc = json.loads(text)
        else:
            import tomllib
            doc = tomllib.loads(text.decode())
    except (ValueError, UnicodeDecodeError) as err:
        raise UnusableInput(f"inventory {path} is not valid TOML/JSON: {err}") from None
    hosts = doc.get("hosts") if isinstance(doc, dict) else None
    if not isinstance(hosts, list):
        raise UnusableInput(f"inventory {path} has no [[hosts]] list")
    out: dict[str, dict[str, Any]] = {}
    for entry in hosts:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            out[entry["name"]] = {k: entry[k] for k in ("role", "pod_cidr", "cluster_iface",
                                                        "lb_ips") if k in entry}
    return out


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


def run_facts(source: Path, table: str | None = None, fmt: str = "text",
              inventory: Path | None = None, bgp_ports=(), vxlan_ports=(), geneve_ports=()) -> int:
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: use text, json or csv")
    if fmt == "csv" and not table:
        raise UsageError("--format csv needs --table NAME")
    from diag.decode import DecodeOptions
    from diag.facts import load_facts

    options = DecodeOptions(bgp_ports=tuple(bgp_ports), vxlan_ports=tuple(vxlan_ports),
                            geneve_ports=tuple(geneve_ports))
    declared = load_inventory(inventory) if inventory else None
    facts = load_facts(source, inventory=declared, decode_options=options)
    if table:
        facts.table(table)  # a clear error for an unknown name, before any output
    if fmt == "json":
        json.dump(facts_json(facts, table), sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    elif fmt == "csv":
        facts.table(table).to_csv(sys.stdout, index=False)
    else:
        _text(facts, table)
    return 0


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value) or "-"
    return str(value)


def _text(facts, table: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    # addresses must never be cut: a pipe or file gets a wide console, a terminal its width
    console = Console(highlight=False, soft_wrap=False,
                      width=None if sys.stdout.isatty() else 200)
    if table:
        import pandas as pd

        df = facts.table(table)
        console.print(f"{table}: {len(df)} rows", markup=False)
        with pd.option_context("display.max_rows", None, "display.max_columns", None,
                               "display.width", 10_000, "display.max_colwidth", 60):
            sys.stdout.write(df.to_string(index=False) + "\n")
        return
    model = facts.model
    reasons = ", ".join(facts.bundle.get("partial_reasons") or [])
    hosts = Table(title=f"cluster model: {facts.source} ({facts.kind}, "
                  f"{facts.bundle.get('status')}{': ' + reasons if reasons else ''})")
    for column in ("host", "role", "node IP", "cluster NIC", "default NIC", "pod CIDR", "AS"):
        hosts.add_column(column)
    for h in model.hosts.values():
        hosts.add_row(h.name, _cell(h.role.value), _cell(h.node_ip.value),
                      _cell(h.cluster_iface.value), _cell(h.default_iface.value),
                      _cell(h.pod_cidr.value), _cell(h.asn.value))
    console.print(hosts)
    console.print("[bold]how each part was inferred[/bold]")
    for h in model.hosts.values():
        for label, item in (("role", h.role), ("node IP", h.node_ip),
                            ("cluster NIC", h.cluster_iface), ("default NIC", h.default_iface),
                            ("pod CIDR", h.pod_cidr)):
            extra = f" [agrees: {', '.join(item.agrees)}]" if item.agrees else ""
            extra += f" [conflicts: {'; '.join(item.conflicts)}]" if item.conflicts else ""
            console.print(f"  {h.name} {label}: {_cell(item.value)} <- {item.how}{extra}",
                          markup=False)
    console.print(f"  pod range: {_cell(model.pod_range.value)} <- {model.pod_range.how}",
                  markup=False)
    console.print(f"  LoadBalancer IPs: {_cell(model.lb_ips.value)} <- {model.lb_ips.how}",
                  markup=False)
    for t in model.tunnels:
        console.print(f"  tunnel {t.host} {t.device}: {t.kind} vni {_cell(t.vni)} port "
                      f"{_cell(t.port)} local {_cell(t.local)} mtu {_cell(t.mtu)} remotes "
                      f"{_cell(t.remotes)} <- {t.how}", markup=False)
    for note in model.notes:
        console.print(f"  note: {note}", markup=False)
    sizes = Table(title="tables")
    sizes.add_column("table")
    sizes.add_column("rows", justify="right")
    for name, df in sorted(facts.tables.items()):
        sizes.add_row(name, str(len(df)))
    console.print(sizes)
    if len(facts.parse_errors):
        console.print(f"[yellow]{len(facts.parse_errors)} output(s) not understood:[/yellow]")
        for row in facts.parse_errors.itertuples(index=False):
            console.print(f"  {row.host} {row.source}: {row.error}", markup=False)
    for problem in facts.problems:
        console.print(f"[red]bundle problem[/red] {problem['kind']} {problem['path']} "
                      f"{problem['detail']}")
