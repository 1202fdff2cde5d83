"""The Markdown report: for a ticket on GitHub, GitLab or Jira (no HTML needed; no analysis here).

Contract: :func:`render_markdown(doc, data) -> str` with the explain JSON document and a
:class:`diag.report.data.ReportData`. Headings, simple pipe tables (``|`` escaped, newlines
flattened, cells cut at ``CELL_MAX`` characters), fixes in fenced ``sh`` blocks (the fence grows
when a line holds backticks). Long tables are cut at ``TABLE_MAX_ROWS`` rows with a line saying
how many were left out; the HTML report has them all.
"""
from __future__ import annotations

from typing import Any

from diag.report.data import ReportData, side_by_side
from diag.report.safe import utc_text, visible

CELL_MAX = 160
TABLE_MAX_ROWS = 60


def cell(value: Any, cut: bool = True) -> str:
    text = "" if value is None else str(value)
    text = " ".join(text.split())            # no newline may end a table row
    if cut and len(text) > CELL_MAX:
        text = text[:CELL_MAX - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def code(value: Any) -> str:
    text = cell(value)
    return f"`{text}`" if text and "`" not in text else text


def table(headers: list[str], rows: list[list[str]], max_rows: int = TABLE_MAX_ROWS) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(r) + " |" for r in rows[:max_rows]]
    if len(rows) > max_rows:
        out.append(f"\n_{len(rows) - max_rows} more rows not shown (see the HTML report)._")
    return out + [""]


def fence(lines: list[str], lang: str = "sh") -> list[str]:
    ticks = "```"
    while any(ticks in line for line in lines):
        ticks += "`"
    return [ticks + lang, *lines, ticks, ""]


def _when(ts: float | None) -> str:
    return utc_text(ts, "%H:%M:%S.%f")


def render_markdown(doc: dict[str, Any], data: ReportData) -> str:
    findings = doc.get("findings") or []
    hosts = (doc.get("bundle") or {}).get("hosts") or []
    out = [f"# diag report: {cell(data.source)}", ""]
    counts = ", ".join(f"{sum(1 for f in findings if f.get('severity') == s)} {s}"
                       for s in ("error", "warning", "info"))
    out += [f"- **source**: {code(data.source)} ({data.kind})",
            f"- **sha256**: {code(data.source_sha256 or '-')}",
            f"- **generated**: {data.generated} by diag {data.diag_version}",
            f"- **collected**: {cell(data.started or '-')} → {cell(data.finished or '-')}",
            f"- **hosts** ({len(hosts)}): {cell(', '.join(hosts))}",
            f"- **completeness**: {cell(data.status)}"
            + (f" ({cell(', '.join(data.partial_reasons))})" if data.partial_reasons else ""),
            f"- **findings**: {counts}"]
    for h, r, err in data.failed_hosts:
        out.append(f"- **host not collected**: {cell(h)}: {cell(r)} {cell(err)}")
    if data.failed_commands:
        out.append("- **failed commands**: " + cell(", ".join(
            f"{c.host} {c.id} ({c.outcome})" for c in data.failed_commands[:15]))
            + (" …" if len(data.failed_commands) > 15 else ""))
    for p in data.problems[:10]:
        out.append(f"- **bundle damage**: {cell(p.get('kind'))} {code(p.get('path'))}")
    out.append("")
    for m in data.missing:
        out += [f"> {cell(m, cut=False)}", ""]
    out += ["## Findings", ""]
    if not findings:
        out += ["No findings.", ""]
    for i, f in enumerate(findings, 1):
        caused = f" (effect of `{cell(f['caused_by'])}`)" if f.get("caused_by") else ""
        conf = f.get("confidence") or {}
        out += [f"### {i}. `{cell(f.get('code'))}` — {cell(f.get('severity'))}{caused}", "",
                cell(f.get("summary"), cut=False), "",
                f"- confidence: {cell(conf.get('level'))} "
                f"({cell(', '.join(conf.get('sources') or []))})"
                + "".join(f"; limited: {cell(why, cut=False)}" for why in conf.get("limits") or [])]
        if f.get("severity_reason"):
            out.append(f"- severity: {cell(f['severity_reason'], cut=False)}")
        if f.get("note"):
            out.append(f"- note: {cell(f['note'], cut=False)}")
        out.append("")
        ev = f.get("evidence") or []
        side = side_by_side(ev)
        if side:
            out += ["The object and the state:", ""] + table(
                ["the object (intent)", "the state that shows the effect"],
                [[_pair_cell(o), _pair_cell(s)] for o, s in side])
        if ev:
            out += table(["host", "file", "pointer", "value", "frame"],
                         [[cell(e.get("host")), code(e.get("file")), code(e.get("pointer")),
                           cell(e.get("value")), cell(e.get("frame"))] for e in ev])
        if f.get("fix"):
            out += ["Fix:", ""] + fence([str(x) for x in f["fix"]])
    out += _flows(data) + _topology(data) + _timeline(data) + _routes(data) + _arp(data)
    out += ["## Checks", ""] + table(
        ["result", "check", "detail"],
        [["passed" if c.get("passed") else "**FAILED**", cell(c.get("check")),
          cell(c.get("detail"))]
         for c in doc.get("checked") or []])
    nc = doc.get("not_checked") or []
    if nc:
        out += ["### Not checked", ""] + table(["check", "what would supply it"],
                                               [[cell(c.get("check")), cell(c.get("needs"))]
                                                for c in nc])
    out += _appendix(data)
    # everything quoted from evidence is shown, never obeyed by a terminal or a Markdown viewer
    return visible("\n".join(out).rstrip("\n") + "\n")


def _flows(data: ReportData) -> list[str]:
    if not data.ladders:
        return []
    out = ["## Tunnelled flows", "",
           "Each flow as the overlay ledger followed it across the hosts' captures, in path "
           "order (pod → VTEP → underlay → hosts between → underlay → VTEP → pod).", ""]
    for ladder in data.ladders:
        backs = f" — backs #{ladder.finding} `{ladder.code}`" if ladder.finding else ""
        out += [f"**{cell(ladder.flow)}** ({cell(ladder.sender)} → {cell(ladder.receiver)}): "
                f"{cell(ladder.verdict, cut=False)}{backs}", ""]
        out += table(["point", "host", "device", "packets", "frames", "detail"],
                     [[cell(p.role), cell(p.host), cell(p.iface or "-"),
                       str(p.packets) if p.captured else "not captured",
                       "" if p.first_frame is None else f"{p.first_frame}–{p.last_frame}",
                       cell(p.detail)] for p in ladder.points])
    return out


def _pair_cell(e) -> str:
    if not e:
        return ""
    return f"{cell(e.get('value'))} ({code(e.get('file'))} {code(e.get('pointer'))})"


def _topology(data: ReportData) -> list[str]:
    topo = data.topology
    out = ["## Topology", ""]
    if topo.source == "wire":
        out += ["_From a bare capture: endpoints seen on the wire._", ""]
    if topo.hosts:
        out += table(["host", "role", "node IP", "AS", "pod CIDR", "addresses"],
                     [[cell(h.name), cell(h.role), cell(h.node_ip), cell(h.asn), cell(h.pod_cidr),
                       cell(", ".join(f"{i} {a}".strip() for i, a in h.addresses))]
                      for h in topo.hosts])
    if topo.sessions:
        out += ["### BGP sessions", ""] + table(
            ["end", "end", "state", "as each end sees it"],
            [[cell(s.a), cell(s.b), f"**{cell(s.state)}**" if s.state != "ESTABLISHED"
              else cell(s.state), cell(s.detail)] for s in topo.sessions])
    if topo.tunnels:
        out += ["### Tunnels", ""] + table(
            ["host", "device", "kind", "vni", "port", "remote", "remote host"],
            [[cell(t.host), cell(t.device), cell(t.kind), cell(t.vni), cell(t.port),
              cell(t.remote), cell(t.remote_host or "-")] for t in topo.tunnels])
    return out


def _timeline(data: ReportData) -> list[str]:
    tl = data.timeline
    out = ["## BGP timeline", ""]
    if not tl.has_capture:
        return out + ["No capture in this bundle: no BGP timeline "
                      "(collect with `diag collect --capture 20s ...`).", ""]
    if not tl.lanes:
        return out + ["No BGP message in the captures.", ""]
    out += table(["peers", "capture", "messages and events", "at the end"],
                 [[cell(f"{ln.a} ⇄ {ln.b}"), cell(ln.host), cell(ln.summary), cell(ln.state)]
                  for ln in tl.lanes])
    notable = sorted(((ln, m) for ln in tl.lanes for m in ln.notable), key=lambda lm: lm[1].ts)
    if notable:
        out += ["### NOTIFICATIONs and session resets", ""] + table(
            ["time (UTC)", "peers", "event", "frame", "what"],
            [[_when(m.ts), cell(f"{ln.a} ⇄ {ln.b}"), cell(m.kind), cell(m.frame), cell(m.text)]
             for ln, m in notable])
    return out


def _routes(data: ReportData) -> list[str]:
    out = ["## Routing rows the findings point at", ""]
    if data.kind != "bundle":
        return out + ["A bare capture has no routing tables.", ""]
    rows = [[cell(t.host), code(t.file), code(f"/{r.index}"),
             cell(" ".join(f"{k}={r.route[k]}" for k in ("dst", "gateway", "dev", "table", "type")
                           if r.route.get(k) is not None)), cell(", ".join(r.marks))]
            for t in data.routes for r in t.highlighted]
    if not rows:
        return out + ["No finding points into a routing table.", ""]
    return out + table(["host", "file", "pointer", "route", "findings"], rows)


def _arp(data: ReportData) -> list[str]:
    out = ["## ARP requests without replies", ""]
    if not data.timeline.has_capture:
        return out + ["No capture: ARP is read from captures.", ""]
    window = f" within {data.arp_reply_window:g} s" if data.arp_reply_window else ""
    if not data.arp_unanswered:
        return out + [f"Every ARP request got a reply{window}.", ""]
    return out + table(["who-has", "asked by", "requests", "unanswered", "replies seen",
                        "captured on", "the captures may not see replies"],
                       [[cell(a.target), cell(", ".join(a.requesters)), str(a.requests),
                         str(a.unanswered), str(a.replies), cell(", ".join(a.hosts)),
                         cell(a.unverified or "-", cut=False)]
                        for a in data.arp_unanswered])


def _appendix(data: ReportData) -> list[str]:
    out = ["## Appendix: collected commands", ""]
    if not data.commands:
        return out + ["No command was run (a bare capture).", ""]
    failed = [c for c in data.commands if c.outcome != "OK"]
    hosts = sorted({c.host for c in data.commands})
    out.append(f"{len(data.commands)} command{'s' * (len(data.commands) != 1)} on "
               f"{len(hosts)} host{'s' * (len(hosts) != 1)}, {len(failed)} not OK.")
    out.append("")
    rows = data.commands if len(data.commands) <= TABLE_MAX_ROWS * 3 else failed
    if rows is failed and failed:
        out += ["Only the commands that were not OK are listed (the HTML report has all).", ""]
    if rows:
        out += table(["host", "id", "outcome", "exit", "seconds"],
                     [[cell(c.host), code(c.id), cell(c.outcome), cell(c.exit_code),
                       cell("" if c.duration_s is None else f"{c.duration_s:.2f}")] for c in rows],
                     max_rows=TABLE_MAX_ROWS * 3)
    return out
