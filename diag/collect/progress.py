"""What the user sees: a rich live table while collecting, a summary at the end, or JSON.

:func:`summary` turns a finished run into a JSON-able dict (the ``--format json`` output, stable
keys: bundle, archive, status, partial_reasons, hosts[name, reachability, error, commands_ok,
commands_total, failed[id, outcome, exit_code], capture{bytes, packets}, clock_offset_s],
kube: None without ``--kube``, else {context, server_version, kinds_ok, objects, not_installed,
unknown, failed[id, outcome, exit_code, status_reason, status_message]}).
:class:`LiveView` shows per-host progress on stderr while collecting (the summary's table is
:func:`diag.report.collect.render_summary`).
Rich is imported inside functions so ``diag --help`` stays fast.
"""
from __future__ import annotations

import sys
from typing import Any

from diag.collect.runner import HostState, RunResult


def summary(result: RunResult) -> dict[str, Any]:
    hosts = []
    for name, record in result.manifest["hosts"].items():
        commands = record.get("commands", [])
        capture = next((c for c in commands if c["id"] == "capture"), None)
        hosts.append({
            "name": name,
            "target": record.get("target"),
            "reachability": record.get("reachability"),
            "error": record.get("error"),
            "commands_ok": sum(1 for c in commands if c["outcome"] == "OK"),
            "commands_total": len(commands),
            "failed": [{"id": c["id"], "outcome": c["outcome"], "exit_code": c["exit_code"]}
                       for c in commands if c["outcome"] != "OK"],
            "daemons": sorted(record.get("daemons", {})),
            "capture": None if capture is None else {"bytes": capture["bytes"],
                                                     "packets": capture.get("packets")},
            "clock_offset_s": record.get("clock_offset_s"),
        })
    return {"bundle": str(result.bundle),
            "archive": str(result.archive) if result.archive else None,
            "status": result.status, "partial_reasons": result.partial_reasons,
            "redactions": result.manifest["redactions"]["count"], "hosts": hosts,
            "kube": _kube_summary(result.manifest.get("kube"))}


def _kube_summary(section: dict[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(section, dict):
        return None
    resources = section.get("resources", [])
    commands = section.get("commands", [])
    failed = [r for r in commands + resources
              if r.get("outcome") not in ("OK", "NOT_INSTALLED", "SKIPPED", "UNKNOWN")]
    return {"context": section.get("context"), "server_version": section.get("server_version"),
            "kinds_ok": sum(1 for r in resources if r.get("outcome") == "OK"),
            "objects": sum(r.get("objects") or 0 for r in resources
                           if r.get("outcome") == "OK"),
            "not_installed": sum(1 for r in resources if r.get("outcome") == "NOT_INSTALLED"),
            "unknown": sum(1 for r in resources if r.get("outcome") == "UNKNOWN"),
            "failed": [{key: r.get(key) for key in ("id", "outcome", "exit_code",
                                                     "status_reason", "status_message")}
                       for r in failed]}


class LiveView:
    """A live per-host table on stderr (only when stderr is a terminal)."""

    def __init__(self) -> None:
        self.states: dict[str, HostState] = {}
        self._live: Any = None

    def __enter__(self) -> "LiveView":
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self._live = Live(get_renderable=self._table, console=Console(stderr=True),
                              refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def update(self, states: dict[str, HostState]) -> None:
        self.states = states

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None)
        for column in ("host", "state", "done", "failed", "capture"):
            table.add_column(column)
        for state in self.states.values():
            table.add_row(state.name, state.status, f"{state.done}/{state.total}",
                          str(state.failures),
                          f"{state.capture_bytes} B" if state.capture_bytes else "")
        return table
