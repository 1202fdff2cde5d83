"""Render an explanation (findings, checks) as text, JSON or Markdown: ``diag explain``'s output.

Contract: :func:`explain_document(result, facts) -> dict` is the JSON document (docs/explain.md):
``schema_version``; ``bundle`` {source, kind, sha256, complete, hosts}; ``findings`` (ranked,
``Finding.to_dict()``); ``checked`` and ``not_checked`` ([{check, passed, detail, needs}]).
``flows``: the tunnelled flows behind the overlay findings, as the overlay ledger followed them
across the captures (``FlowLadder.to_dict()``: flow, sender, receiver, points [{role, host,
iface, captured, packets, first_frame, last_frame, file, detail}], sent, delivered, lost_after,
verdict, code, one_ended). ``sha256`` is the archive's or, for a directory, its manifest.json's
(None for a bare capture).
:func:`render(result, facts, fmt) -> str` gives ``text``, ``json`` (that document) or ``md``.
``result`` is an :class:`diag.analyze.Explanation`, ``facts`` a :class:`diag.facts.Facts`; both
are read, never computed here.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diag.bundle import source_sha256
from diag.report.safe import md_cell, visible
from diag.words import counted

SCHEMA_VERSION = 1
FORMATS = ("text", "json", "md")


def explain_document(result, facts) -> dict[str, Any]:
    bundle = facts.bundle or {}
    return {
        "schema_version": SCHEMA_VERSION,
        "bundle": {"source": facts.source, "kind": facts.kind,
                   "sha256": source_sha256(Path(facts.source)) if facts.kind == "bundle"
                   else None,
                   "complete": bundle.get("status") == "complete",
                   "hosts": sorted((bundle.get("hosts") or {}).keys())},
        "findings": [f.to_dict() for f in result.findings],
        "checked": [{"check": c.name, "passed": c.passed, "detail": c.detail}
                    for c in result.checked],
        "not_checked": [{"check": c.name, "needs": c.needs} for c in result.not_checked],
        "flows": [ladder.to_dict() for ladder in getattr(result, "flows", ())],
    }


def render(result, facts, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(explain_document(result, facts), indent=2, default=str) + "\n"
    # text and Markdown quote evidence (names, values, reasons): shown, never obeyed
    if fmt == "md":
        return visible(_markdown(result, facts))
    return visible(_text(result, facts))


def _hosts(facts) -> str:
    n = len((facts.bundle or {}).get("hosts") or {})
    return counted(n, "host")


def _confidence(c) -> str:
    text = f"{c.level} ({', '.join(sorted(set(c.sources)))})"
    return text + "".join(f"; limited: {why}" for why in c.limits)


def _cited(e) -> str:
    """Where a piece of evidence is: host, file, pointer — a bare capture's host and file are
    both "capture", said once."""
    return " ".join(dict.fromkeys((e.host, e.file))) + f" {e.pointer}"


def _text(result, facts) -> str:
    kube_only = sum(1 for h in facts.model.hosts.values() if not h.collected)
    nodes = (f", {counted(kube_only, 'Kubernetes Node')} without host outputs"
             if kube_only else "")
    lines = [f"diag explain {facts.source} ({facts.kind}, {_hosts(facts)}{nodes})", ""]
    if not result.findings:
        lines.append("No findings.")
    for i, f in enumerate(result.findings, 1):
        caused = f"  (effect of {f.caused_by})" if f.caused_by else ""
        lines.append(f"{i}. [{f.severity.upper()}] {f.code}{caused}")
        lines.append(f"   {f.summary}")
        lines.append(f"   confidence: {_confidence(f.confidence)}")
        if f.severity_reason:
            lines.append(f"   severity: {f.severity_reason}")
        if f.note:
            lines.append(f"   note: {f.note}")
        if f.evidence:
            lines.append("   evidence:")
            for e in f.evidence:
                lines.append(f"     - {_cited(e)}: {e.value}")
        if f.fix:
            lines.append("   fix:")
            for cmd in f.fix:
                lines.append(f"     $ {cmd}" if not cmd.startswith("#") else f"     {cmd}")
        lines.append("")
    flows = getattr(result, "flows", ())
    if flows:
        lines.append("Tunnelled flows (where each one's packets were seen, in path order):")
        for ladder in flows:
            lines += ["  " + line for line in ladder_text(ladder)]
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
                  f"- confidence: {_confidence(f.confidence)}"]
        if f.severity_reason:
            lines.append(f"- severity: {f.severity_reason}")
        if f.note:
            lines.append(f"- note: {f.note}")
        lines += ["", "| host | file | pointer | value |", "|---|---|---|---|"]
        lines += [f"| {md_cell(e.host)} | `{md_cell(e.file)}` | `{md_cell(e.pointer)}` | "
                  f"{md_cell(e.value)} |" for e in f.evidence]
        if f.fix:
            lines += ["", "```sh", *f.fix, "```"]
        lines.append("")
    flows = getattr(result, "flows", ())
    if flows:
        lines += ["## Tunnelled flows", "",
                  "Where each flow behind an overlay finding was seen, in path order.", ""]
        for ladder in flows:
            lines += [f"### {ladder.flow} ({ladder.sender} -> {ladder.receiver})"
                      + (f" `{ladder.code}`" if ladder.code else ""), "", ladder.verdict, "",
                      *_ladder_table(ladder), ""]
    lines += ["## Checked", ""] + [f"- {'passed' if c.passed else 'FAILED'}: {c.name}"
                                   for c in result.checked]
    lines += ["", "## Not checked", ""] + [f"- {c.name}: {c.needs}" for c in result.not_checked]
    return "\n".join(lines) + "\n"


ROLE_NAMES = {"pod-out": "pod", "vtep-out": "VTEP", "underlay-out": "underlay",
              "path-in": "in", "path-out": "out", "underlay-in": "underlay", "vtep-in": "VTEP",
              "pod-in": "pod"}


def _ladder_table(ladder) -> list[str]:
    """A flow's ladder as a Markdown table: one row per point, the last one seen marked."""
    rows = ["| point | host | device | packets | frames | |", "|---|---|---|---|---|---|"]
    for p in ladder.points:
        frames = ("" if p.first_frame is None else f"{p.first_frame}" if
                  p.first_frame == p.last_frame else f"{p.first_frame}..{p.last_frame}")
        rows.append(f"| {ROLE_NAMES.get(p.role, p.role)} ({p.role}) | {p.host} | "
                    f"`{p.iface or '?'}` | {p.packets if p.captured else 'not captured'} | "
                    f"{frames} | {'**last seen** ' if _last_seen(ladder, p) else ''}"
                    f"{p.detail} |")
    return rows


def _last_seen(ladder, p) -> bool:
    return bool(ladder.lost_after) and p.role == ladder.lost_after.split()[0] and \
        p.host == (ladder.lost_after.split()[1] if " " in ladder.lost_after else p.host)


def ladder_text(ladder) -> list[str]:
    """A flow's ladder as lines: the flow and its verdict, then one line per point with its
    packets and frames (``-`` where the host was not captured)."""
    lines = [f"{ladder.flow} ({ladder.sender} -> {ladder.receiver})"
             + (f" [{ladder.code}]" if ladder.code else "") + f": {ladder.verdict}"]
    for p in ladder.points:
        seen = (f"{p.packets:>3} pkt" if p.captured else "  - not captured")
        frames = (f" frames {p.first_frame}..{p.last_frame}" if p.first_frame is not None
                  and p.first_frame != p.last_frame else
                  f" frame {p.first_frame}" if p.first_frame is not None else "")
        mark = "  <- last seen" if _last_seen(ladder, p) else ""
        lines.append(f"  {ROLE_NAMES.get(p.role, p.role):<8} {p.host:<10} {p.iface or '?':<13}"
                     f" {seen}{frames}" + (f" ({p.detail})" if p.detail else "") + mark)
    return lines


def render_trace(trace, fmt: str) -> str:
    """A path walk (:class:`diag.analyze.trace.Trace`) as ``json`` (``{schema_version,
    trace}``) or text: one line per hop, then the outcome."""
    if fmt == "json":
        return json.dumps({"schema_version": SCHEMA_VERSION, "trace": trace.to_dict()},
                          indent=2, default=str) + "\n"
    return visible(trace_text(trace)) + "\n"


def trace_text(trace) -> str:
    lines = [f"trace {trace.src} -> {trace.dst}"]
    for i, hop in enumerate(trace.hops, 1):
        lk = hop.lookup
        rule = f"rule {lk.rule.priority} " if lk.rule else ""
        what = lk.route.text if lk.route else lk.reason
        nxt = ""
        if hop.next_hop:
            nxt = f" -> {hop.next_hop}" + (f" ({hop.next_host})" if hop.next_host else "")
            nxt += f" [neigh {hop.neighbor}]" if hop.neighbor else ""
        tun = f" {hop.tunnel}" if hop.tunnel else ""
        lines.append(f"  {i}. {hop.host}"
                     + (f" in {hop.iif}" if hop.iif else "")
                     + f": {rule}table {lk.table or '-'}: {what}{tun}{nxt}")
    lines.append(f"  => {trace.outcome} at {trace.where}: {trace.reason}")
    return "\n".join(lines)
