"""Render an explanation as text, JSON or Markdown (no analysis here).

Contract: :func:`render(result, facts, fmt, schema_version) -> str`. JSON shape (docs/explain.md):
``schema_version``; ``bundle`` {source, kind, sha256, complete, hosts}; ``findings`` (ranked,
``Finding.to_dict()``); ``checked`` and ``not_checked`` ([{check, passed, detail, needs}]).
``sha256`` is the archive's or, for a directory, its manifest.json's (None for a bare capture).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _sha256(source: str, kind: str) -> str | None:
    path = Path(source)
    target = path / "manifest.json" if path.is_dir() else path
    if kind != "bundle" or not target.is_file():
        return None
    from diag.bundle import sha256_file

    return sha256_file(target)


def as_dict(result, facts, schema_version: int) -> dict[str, Any]:
    bundle = facts.bundle or {}
    return {
        "schema_version": schema_version,
        "bundle": {"source": facts.source, "kind": facts.kind,
                   "sha256": _sha256(facts.source, facts.kind),
                   "complete": bundle.get("status") == "complete",
                   "hosts": sorted((bundle.get("hosts") or {}).keys())},
        "findings": [f.to_dict() for f in result.findings],
        "checked": [{"check": c.name, "passed": c.passed, "detail": c.detail}
                    for c in result.checked],
        "not_checked": [{"check": c.name, "needs": c.needs} for c in result.not_checked],
    }


def render(result, facts, fmt: str, schema_version: int) -> str:
    if fmt == "json":
        return json.dumps(as_dict(result, facts, schema_version), indent=2, default=str) + "\n"
    if fmt == "md":
        return _markdown(result, facts)
    return _text(result, facts)


def _text(result, facts) -> str:
    lines = [f"diag explain {facts.source} ({facts.kind}, "
             f"{len((facts.bundle or {}).get('hosts') or {})} hosts)", ""]
    if not result.findings:
        lines.append("No findings.")
    for i, f in enumerate(result.findings, 1):
        caused = f"  (effect of {f.caused_by})" if f.caused_by else ""
        lines.append(f"{i}. [{f.severity.upper()}] {f.code}{caused}")
        lines.append(f"   {f.summary}")
        lines.append(f"   confidence: {f.confidence.level} ({', '.join(sorted(set(f.confidence.sources)))})")
        if f.severity_reason:
            lines.append(f"   severity: {f.severity_reason}")
        if f.note:
            lines.append(f"   note: {f.note}")
        if f.evidence:
            lines.append("   evidence:")
            for e in f.evidence:
                lines.append(f"     - {e.host} {e.file} {e.pointer}: {e.value}")
        if f.fix:
            lines.append("   fix:")
            for cmd in f.fix:
                lines.append(f"     $ {cmd}" if not cmd.startswith("#") else f"     {cmd}")
        lines.append("")
    lines.append("Checked:")
    for c in result.checked:
        lines.append(f"  {'ok  ' if c.passed else 'FAIL'} {c.name}")
        if c.detail:
            lines.append(f"       {c.detail}")
    lines.append("Not checked:")
    for c in result.not_checked:
        lines.append(f"  -    {c.name}")
        lines.append(f"       needs {c.needs}")
    return "\n".join(lines) + "\n"


def _markdown(result, facts) -> str:
    lines = [f"# diag explain: {facts.source}", ""]
    if not result.findings:
        lines += ["No findings.", ""]
    for i, f in enumerate(result.findings, 1):
        caused = f" (effect of `{f.caused_by}`)" if f.caused_by else ""
        lines += [f"## {i}. `{f.code}` — {f.severity}{caused}", "", f.summary, "",
                  f"- confidence: {f.confidence.level} "
                  f"({', '.join(sorted(set(f.confidence.sources)))})"]
        if f.severity_reason:
            lines.append(f"- severity: {f.severity_reason}")
        if f.note:
            lines.append(f"- note: {f.note}")
        lines += ["", "| host | file | pointer | value |", "|---|---|---|---|"]
        lines += [f"| {e.host} | `{e.file}` | `{e.pointer}` | {e.value} |" for e in f.evidence]
        if f.fix:
            lines += ["", "```sh", *f.fix, "```"]
        lines.append("")
    lines += ["## Checked", ""] + [f"- {'passed' if c.passed else 'FAILED'}: {c.name}"
                                   for c in result.checked]
    lines += ["", "## Not checked", ""] + [f"- {c.name}: {c.needs}" for c in result.not_checked]
    return "\n".join(lines) + "\n"
