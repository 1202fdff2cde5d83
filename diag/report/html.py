"""The HTML report: one self-contained file, safe to open offline (no analysis here).

Contract: :func:`render_html(doc, data) -> str`. ``doc`` is the explain JSON document (findings,
checked, not_checked, bundle), ``data`` a :class:`diag.report.data.ReportData`. The page loads
nothing: no script, no external stylesheet, font or image; a Content-Security-Policy meta tag
(``default-src 'none'``) makes the browser refuse any load that would slip in. Every value from
the bundle is escaped (bundle content is untrusted). Long tables sit in ``<details>`` (collapsed
above ``COLLAPSE_ROWS`` rows). Sections (ids): ``summary``, ``findings``, ``checks``,
``topology``, ``timeline``, ``routes``, ``arp``, ``appendix``. Highlighted routing rows carry
``class="hl"`` with ``data-file`` and ``data-index`` (the row's JSON pointer ``/N``).
"""
from __future__ import annotations

import json
from html import escape
from typing import Any

from diag.report.data import ReportData, RouteTable, side_by_side
from diag.report.safe import utc_text
from diag.report.svg import STATE_COLOURS, ladder_svg, timeline_svg, topology_svg

COLLAPSE_ROWS = 15
MAX_TABLE_ROWS = 500
MAX_SUBNET_MEMBERS = 40
APPENDIX_DETAIL_MAX_HOSTS = 100
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'none'"

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
  max-width:1280px;padding:0 18px 40px;color:#212121;line-height:1.4}
h1{font-size:1.5em;margin:18px 0 6px}
h2{border-bottom:2px solid #e0e0e0;padding-bottom:3px;margin-top:32px}
table{border-collapse:collapse;margin:6px 0;font-size:.86em}
th,td{border:1px solid #e0e0e0;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f5f5f5}
td.num{text-align:right}
code,pre{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:.92em}
pre{background:#263238;color:#eceff1;padding:8px 10px;border-radius:4px;overflow-x:auto;
  white-space:pre-wrap}
.finding{border:1px solid #e0e0e0;border-left:6px solid #9e9e9e;border-radius:4px;
  padding:6px 14px;margin:12px 0}
.finding.sev-error{border-left-color:#c62828}
.finding.sev-warning{border-left-color:#ef6c00}
.finding.sev-info{border-left-color:#1565c0}
.badge{display:inline-block;padding:1px 7px;border-radius:10px;color:#fff;font-size:.8em;
  font-weight:600}
.b-error{background:#c62828}
.b-warning{background:#ef6c00}
.b-info{background:#1565c0}
.b-ok{background:#2e7d32}
.b-bad{background:#c62828}
.b-grey{background:#757575}
.meta td:first-child{font-weight:600;background:#fafafa;white-space:nowrap}
tr.hl td{background:#fff3cd;font-weight:600}
tr.bad td{background:#ffebee}
.note{color:#455a64;font-style:italic}
.muted{color:#757575}
details>summary{cursor:pointer;color:#1565c0;margin:4px 0}
nav a{margin-right:12px}
.notice{background:#fff8e1;border:1px solid #ffe082;padding:8px 12px;border-radius:4px}
svg{display:block;margin:8px 0;border:1px solid #eeeeee;background:#fff}
@media print{details{display:block}details>summary{display:none}}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _when(ts: float | None) -> str:
    return utc_text(ts, "%H:%M:%S.%f")


def _table(headers: list[str], rows: list[str], what: str, collapse: int = COLLAPSE_ROWS,
           open_: bool = False) -> str:
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr>"
    more = ""
    if len(rows) > MAX_TABLE_ROWS:          # the file stays small: the JSON/bundle has the rest
        more = (f'<p class="muted">{len(rows) - MAX_TABLE_ROWS} more {_e(what)} not shown.</p>')
        rows = rows[:MAX_TABLE_ROWS]
    table = f"<table>{head}{''.join(rows)}</table>{more}"
    if len(rows) <= collapse:
        return table
    return (f"<details{' open' if open_ else ''}><summary>{_e(what)}: {len(rows)} "
            f"row{'s' * (len(rows) != 1)} "
            f"(click to expand)</summary>{table}</details>")


def _row(cells: list[Any], cls: str = "", attrs: str = "") -> str:
    tds = "".join(c if isinstance(c, _Raw) else f"<td>{_e(c)}</td>" for c in cells)
    return f'<tr{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}{attrs}>{tds}</tr>'


class _Raw(str):
    """A cell already rendered (escaped) as ``<td>``."""


def _num(value: Any) -> _Raw:
    return _Raw(f'<td class="num">{_e(value)}</td>')


def render_html(doc: dict[str, Any], data: ReportData) -> str:
    findings = doc.get("findings") or []
    flagged: dict[str, str] = {}
    order = {"info": 0, "warning": 1, "error": 2}
    for f in findings:
        sev = str(f.get("severity"))
        for h in f.get("hosts") or []:
            if order.get(sev, 0) > order.get(flagged.get(h, ""), -1):
                flagged[h] = sev
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>diag report: {_e(data.source)}</title><style>{STYLE}</style></head><body>",
             _header(doc, data),
             '<nav><a href="#findings">Findings</a><a href="#flows">Tunnelled flows</a>'
             '<a href="#topology">Topology</a>'
             '<a href="#timeline">BGP timeline</a><a href="#routes">Routing tables</a>'
             '<a href="#arp">ARP</a><a href="#checks">Checks</a>'
             '<a href="#appendix">Commands</a></nav>',
             _findings(findings),
             _flows(data),
             _topology(data, flagged),
             _timeline(data),
             _routes(data),
             _arp(data),
             _checks(doc),
             _appendix(data),
             f'<footer class="muted"><p>Generated by diag {_e(data.diag_version)} at '
             f'{_e(data.generated)}. This file loads nothing from the network.</p></footer>',
             "</body></html>"]
    return "\n".join(parts) + "\n"


def _header(doc: dict[str, Any], data: ReportData) -> str:
    findings = doc.get("findings") or []
    counts = {s: sum(1 for f in findings if f.get("severity") == s)
              for s in ("error", "warning", "info")}
    hosts = (doc.get("bundle") or {}).get("hosts") or []
    status = data.status or "-"
    badge = "b-ok" if status == "complete" else "b-grey" if status == "capture" else "b-bad"
    rows = [
        ("source", f"<code>{_e(data.source)}</code> ({_e(data.kind)})"),
        ("sha256", f"<code>{_e(data.source_sha256 or '-')}</code>"),
        ("generated", _e(data.generated) + f" by diag {_e(data.diag_version)}"),
        ("collected", (f"{_e(data.started)} → {_e(data.finished)}"
                       + (f" (collector diag {_e(data.bundle_diag_version)})"
                          if data.bundle_diag_version else " (first and last packet)"))
         if data.started else "-"),
        ("hosts", f"{len(hosts)}: " + _e(", ".join(hosts)) if len(hosts) <= 20 else
         f"<details><summary>{len(hosts)} hosts</summary>{_e(', '.join(hosts))}</details>"),
        ("completeness", f'<span class="badge {badge}">{_e(status)}</span> '
         + _e(", ".join(data.partial_reasons))),
        ("findings", " ".join(f'<span class="badge b-{s}">{counts[s]} {s}</span>'
                              for s in counts)),
    ]
    if data.failed_hosts:
        rows.append(("hosts not collected", "<br>".join(
            f"<b>{_e(h)}</b>: {_e(r)} {_e(err)}" for h, r, err in data.failed_hosts)))
    if data.failed_commands:
        shown = data.failed_commands[:20]
        more = len(data.failed_commands) - len(shown)
        rows.append(("failed commands", "<br>".join(
            f"<b>{_e(c.host)}</b> <code>{_e(c.id)}</code>: {_e(c.outcome)} (exit "
            f"{_e(c.exit_code)}) {_e(c.stderr)}" for c in shown)
            + (f"<br>… and {more} more (appendix)" if more > 0 else "")))
    if data.problems:
        rows.append(("bundle damage", "<br>".join(
            f"{_e(p.get('kind'))} <code>{_e(p.get('path'))}</code> {_e(p.get('detail'))}"
            for p in data.problems[:20])))
    if data.parse_errors:
        rows.append(("outputs not understood", "<br>".join(
            f"{_e(p.get('host'))} <code>{_e(p.get('path') or p.get('source'))}</code> "
            f"({_e(p.get('parser'))}): {_e(p.get('reason'))}" for p in data.parse_errors[:20])))
    table = "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in rows)
    missing = "".join(f'<p class="notice">{_e(m)}</p>' for m in data.missing)
    return (f'<header id="summary"><h1>diag report: {_e(data.source)}</h1>'
            f'<table class="meta">{table}</table>{missing}</header>')


def _findings(findings: list[dict[str, Any]]) -> str:
    out = ['<section id="findings"><h2>Findings</h2>']
    if not findings:
        out.append("<p>No findings: every check that could run passed (see Checks).</p>")
    first_of = {}
    for i, f in enumerate(findings, 1):
        first_of.setdefault(f.get("code"), i)
    for i, f in enumerate(findings, 1):
        sev = str(f.get("severity"))
        conf = f.get("confidence") or {}
        out.append(f'<article class="finding sev-{_e(sev)}" id="finding-{i}" '
                   f'data-code="{_e(f.get("code"))}" data-rank="{i}">')
        out.append(f'<h3>{i}. <code>{_e(f.get("code"))}</code> '
                   f'<span class="badge b-{_e(sev)}">{_e(sev)}</span></h3>')
        out.append(f'<p class="summary">{_e(f.get("summary"))}</p><ul>')
        out.append(f"<li>confidence: <b>{_e(conf.get('level'))}</b> — sources: "
                   f"{_e(', '.join(conf.get('sources') or []))}"
                   + "".join(f"; limited: {_e(why)}" for why in conf.get("limits") or [])
                   + "</li>")
        if f.get("severity_reason"):
            out.append(f"<li>severity: {_e(f['severity_reason'])}</li>")
        if f.get("caused_by"):
            target = first_of.get(f["caused_by"])
            link = f'<a href="#finding-{target}">' if target else ""
            out.append(f"<li>caused by: {link}<code>{_e(f['caused_by'])}</code>"
                       f"{'</a>' if target else ''}</li>")
        if f.get("hosts"):
            out.append(f"<li>hosts: {_e(', '.join(f['hosts']))}; "
                       f"about: {_e(f.get('subject'))}</li>")
        out.append("</ul>")
        if f.get("note"):
            out.append(f'<p class="note">note: {_e(f["note"])}</p>')
        evidence = f.get("evidence") or []
        side = side_by_side(evidence)
        if side:
            out.append("<h4>The object and the state</h4>" + _table(
                ["the object (intent)", "the state that shows the effect"],
                [_row([_Raw(_cell(o)), _Raw(_cell(s))]) for o, s in side], "evidence pairs",
                open_=True))
        if evidence:
            rows = [_row([e.get("host"), _Raw(f"<td><code>{_e(e.get('file'))}</code></td>"),
                          _Raw(f"<td><code>{_e(e.get('pointer'))}</code></td>"), e.get("value"),
                          "" if e.get("frame") is None else e.get("frame")])
                    for e in evidence]
            out.append("<h4>Evidence</h4>"
                       + _table(["host", "file", "pointer", "value", "frame"], rows,
                                "evidence"))
        if f.get("fix"):
            out.append("<h4>Fix</h4><pre>" + _e("\n".join(f["fix"])) + "</pre>")
        out.append("</article>")
    out.append("</section>")
    return "\n".join(out)


def _flows(data: ReportData) -> str:
    out = ['<section id="flows"><h2>Tunnelled flows</h2>']
    if not data.ladders:
        out.append("<p>No overlay finding rests on a tunnelled flow (or no capture to follow "
                   "one): nothing to draw.</p></section>")
        return "".join(out)
    out.append('<p class="muted">Each flow as the overlay ledger followed it across the '
               "captures of every host (clock offsets from the manifest): pod A → VTEP A → "
               "underlay A → hosts between → underlay B → VTEP B → pod B, the packets seen at "
               "each point, and where they stopped.</p>")
    for i, ladder in enumerate(data.ladders, 1):
        anchor = (f' — backs <a href="#finding-{ladder.finding}">#{ladder.finding} '
                  f"<code>{_e(ladder.code)}</code></a>" if ladder.finding else "")
        out.append(f'<figure class="ladder" id="flow-{i}" data-code="{_e(ladder.code)}">')
        out.append(ladder_svg(ladder, i))
        out.append(f"<figcaption>{_e(ladder.flow)} ({_e(ladder.sender)} → "
                   f"{_e(ladder.receiver)}): {_e(ladder.verdict)}{anchor}"
                   + (" (one end captured)" if ladder.one_ended else "") + "</figcaption>")
        rows = [_row([p.role, p.host, p.iface or "-", _num(p.packets) if p.captured
                      else "not captured",
                      "" if p.first_frame is None else f"{p.first_frame}–{p.last_frame}",
                      _Raw(f"<td><code>{_e(p.file)}</code></td>"), p.detail]) for p in
                ladder.points]
        out.append(_table(["point", "host", "device", "packets", "frames", "capture",
                           "detail"], rows, f"points of flow {i}", collapse=0))
        out.append("</figure>")
    out.append("</section>")
    return "\n".join(out)


def _cell(e: dict[str, Any] | None) -> str:
    if not e:
        return "<td></td>"
    return (f"<td>{_e(e.get('value'))}<br><code>{_e(e.get('file'))}</code> "
            f"<code>{_e(e.get('pointer'))}</code></td>")


def _topology(data: ReportData, flagged: dict[str, str]) -> str:
    topo = data.topology
    out = ['<section id="topology"><h2>Topology</h2>']
    if topo.source == "wire":
        out.append('<p class="notice">From a bare capture: the BGP speakers and tunnel endpoints '
                   "seen on the wire (no host state).</p>")
    if not topo.hosts and not topo.sessions:
        out.append("<p>Nothing to draw: no host, BGP speaker or tunnel endpoint.</p></section>")
        return "".join(out)
    out.append(topology_svg(topo, flagged))
    rows = [_row([s.a, s.b, _Raw(f'<td><span class="badge" style="background:'
                                 f'{STATE_COLOURS.get(s.state, "#757575")}">{_e(s.state)}'
                                 "</span></td>"), s.detail]) for s in topo.sessions]
    if rows:
        out.append("<h3>BGP sessions</h3>"
                   + _table(["end", "end", "state (worse end)", "as each end sees it"], rows,
                            "BGP sessions"))
    if topo.subnets:
        rows = [_row([s.network, _num(len(s.members)),
                      ", ".join(f"{h} {i} {a}" for h, i, a in s.members[:MAX_SUBNET_MEMBERS])
                      + (f" … and {len(s.members) - MAX_SUBNET_MEMBERS} more"
                         if len(s.members) > MAX_SUBNET_MEMBERS else "")])
                for s in topo.subnets]
        out.append("<h3>Subnets</h3>" + _table(["network", "hosts", "members (host iface address)"],
                                                rows, "subnets"))
    if topo.tunnels:
        rows = [_row([t.host, t.device, t.kind, t.vni, t.port, t.local, t.remote,
                      t.remote_host or "-"]) for t in topo.tunnels]
        out.append("<h3>Tunnels (VTEPs)</h3>" + _table(
            ["host", "device", "kind", "vni", "port", "local", "remote", "remote host"], rows,
            "tunnel links"))
    out.append("</section>")
    return "\n".join(out)


def _timeline(data: ReportData) -> str:
    tl = data.timeline
    out = ['<section id="timeline"><h2>BGP timeline</h2>']
    if not tl.has_capture:
        out.append('<p class="notice" id="no-capture">no capture in this bundle: the BGP '
                   "timeline needs one (<code>diag collect --capture 20s ...</code>).</p>"
                   "</section>")
        return "".join(out)
    caps = ", ".join(f"{h} ({n} packet{'s' * (n != 1)})" for h, _f, n in tl.captures)
    out.append(f"<p class=\"muted\">captures: {_e(caps)}</p>")
    if not tl.lanes:
        out.append('<p class="notice" id="no-bgp">no BGP message in the captures.</p></section>')
        return "".join(out)
    out.append(timeline_svg(tl))
    rows = [_row([f"{ln.a} ⇄ {ln.b}", ln.host, ln.summary,
                  _Raw(f'<td><span class="badge" style="background:'
                       f'{STATE_COLOURS.get(ln.state, "#757575")}">{_e(ln.state)}</span></td>')])
            for ln in tl.lanes]
    out.append("<h3>Per peer pair</h3>" + _table(["peers", "capture", "messages and events",
                                                  "at the end"], rows, "peer pairs"))
    notable = [(ln, m) for ln in tl.lanes for m in ln.notable]
    if notable:
        rows = [_row([_when(m.ts), f"{ln.a} ⇄ {ln.b}", m.kind, ln.host, m.frame, m.text],
                     cls="bad") for ln, m in sorted(notable, key=lambda lm: lm[1].ts)]
        out.append("<h3>NOTIFICATIONs and session resets</h3>" + _table(
            ["time (UTC)", "peers", "event", "capture", "frame", "what"], rows,
            "notable events", collapse=40, open_=True))
    out.append("</section>")
    return "\n".join(out)


ROUTE_COLUMNS = ("table", "type", "dst", "gateway", "dev", "protocol", "metric", "scope",
                 "prefsrc", "flags")


def _route_cell(route: dict[str, Any], key: str) -> str:
    value = route.get(key)
    if key == "gateway" and value is None and route.get("nexthops"):
        value = " ".join(f"{n.get('gateway', '')}@{n.get('dev', '')}" for n in route["nexthops"]
                         if isinstance(n, dict))
    if key == "table" and value is None:
        value = "main"                      # iproute2 omits the main table's name
    if isinstance(value, (list, dict)):
        value = json.dumps(value) if value else None
    return "" if value is None else str(value)


def _route_table(t: RouteTable) -> str:
    if t.error:
        return (f"<details><summary>{_e(t.host)} <code>{_e(t.file)}</code>: {_e(t.error)}"
                "</summary></details>")
    rows = []
    for r in t.rows:
        attrs = f' data-file="{_e(t.file)}" data-index="{r.index}"'
        rows.append(_row([_num(f"/{r.index}")] + [_route_cell(r.route, k) for k in ROUTE_COLUMNS]
                         + [", ".join(r.marks)], cls="hl" if r.marks else "", attrs=attrs))
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in
                            ("pointer",) + ROUTE_COLUMNS + ("findings",)) + "</tr>"
    hidden = t.total - len(t.rows)
    more = (f'<p class="muted">{hidden} more row{"s" * (hidden != 1)} not shown (the first {len(t.rows)} and every '
            f"row a finding points at are); all are in <code>{_e(t.file)}</code>.</p>"
            if hidden > 0 else "")
    hl = len(t.highlighted)
    label = (f"{_e(t.host)} — <code>{_e(t.file)}</code>: {t.total} route{'s' * (t.total != 1)}"
             + (f', <b>{hl} pointed at by findings</b>' if hl else ""))
    open_ = " open" if hl or len(t.rows) <= COLLAPSE_ROWS else ""
    return (f'<details class="route-table" data-host="{_e(t.host)}"{open_}><summary>{label}'
            f"</summary><table>{head}{''.join(rows)}</table>{more}</details>")


def _routes(data: ReportData) -> str:
    out = ['<section id="routes"><h2>Routing tables</h2>']
    if data.kind != "bundle":
        out.append('<p class="notice">A bare capture has no routing tables.</p></section>')
        return "".join(out)
    out.append('<p class="muted">From each host\'s <code>ip -j route show table all</code>; '
               "highlighted rows are the ones the findings' evidence points at (JSON pointer "
               "<code>/N</code> = row N of the file).</p>")
    if not data.routes and not data.route_summary:
        out.append("<p>No routing table was collected.</p>")
    out.extend(_route_table(t) for t in data.routes)
    if data.route_summary:
        rows = [_row([h, _num(n)]) for h, n in data.route_summary]
        out.append("<h3>Other hosts (no finding points into their routes)</h3>"
                   + _table(["host", "routes"], rows, "hosts"))
    out.append("</section>")
    return "\n".join(out)


def _arp(data: ReportData) -> str:
    out = ['<section id="arp"><h2>ARP requests without replies</h2>']
    if not data.timeline.has_capture:
        out.append('<p class="notice">no capture in this bundle: ARP is read from captures.</p>')
    elif not data.arp_unanswered:
        out.append("<p>Every ARP request in the captures got a reply"
                   f"{_within(data.arp_reply_window)}.</p>")
    else:
        rows = [_row([a.target, ", ".join(a.requesters), _num(a.requests), _num(a.unanswered),
                      _num(a.replies), _when(a.first_ts), _when(a.last_ts), ", ".join(a.hosts),
                      "; ".join(a.frames), a.unverified or "-"],
                     cls="bad" if not a.replies and not a.unverified else "")
                for a in data.arp_unanswered]
        out.append('<p class="muted">A request (its copies on other interfaces or in a tunnel '
                   "counted once) is unanswered when no reply from the target to the asker "
                   f"follows{_within(data.arp_reply_window)} in the same capture.</p>"
                   + _table(["who-has", "asked by", "requests", "unanswered", "replies seen",
                             "first", "last", "captured on", "frames",
                             "the captures may not see replies"], rows, "addresses"))
    out.append("</section>")
    return "\n".join(out)


def _within(window: float | None) -> str:
    return f" within {window:g} s" if window else ""


def _checks(doc: dict[str, Any]) -> str:
    checked = doc.get("checked") or []
    not_checked = doc.get("not_checked") or []
    rows = [_row([_Raw(f'<td><span class="badge {"b-ok" if c.get("passed") else "b-bad"}">'
                       f'{"passed" if c.get("passed") else "FAILED"}</span></td>'),
                  c.get("check"), c.get("detail")]) for c in checked]
    rows2 = [_row([c.get("check"), c.get("needs")]) for c in not_checked]
    return ('<section id="checks"><h2>Checks</h2>'
            + _table(["result", "check", "detail"], rows, "checks run")
            + "<h3>Not checked</h3>"
            + (_table(["check", "what would supply it"], rows2, "not checked") if rows2
               else "<p>Everything could be checked.</p>")
            + "</section>")


def _appendix(data: ReportData) -> str:
    out = ['<section id="appendix"><h2>Appendix: every collected command</h2>']
    if not data.commands:
        out.append("<p>No command was run (a bare capture).</p></section>")
        return "".join(out)
    by_host: dict[str, list] = {}
    for c in data.commands:
        by_host.setdefault(c.host, []).append(c)
    quiet = []
    for host, cmds in by_host.items():
        bad = [c for c in cmds if c.outcome != "OK"]
        if len(by_host) > APPENDIX_DETAIL_MAX_HOSTS and not bad:
            quiet.append((host, len(cmds), sum(c.duration_s or 0 for c in cmds)))
            continue
        rows = [_row([c.id, _Raw(f"<td><code>{_e(c.argv)}</code></td>"), c.outcome,
                      _num("" if c.exit_code is None else c.exit_code),
                      _num("" if c.duration_s is None else f"{c.duration_s:.2f}"),
                      _num("" if c.bytes is None else c.bytes),
                      "yes" if c.truncated else "", c.stderr],
                     cls="bad" if c.outcome != "OK" else "") for c in cmds]
        head = "<tr>" + "".join(f"<th>{h}</th>" for h in
                                ("id", "command", "outcome", "exit", "seconds", "bytes",
                                 "truncated", "stderr (first line)")) + "</tr>"
        summary = f"{_e(host)}: {len(cmds)} command{'s' * (len(cmds) != 1)}" + (
            f', <b>{len(bad)} not OK</b>' if bad else ", all OK")
        out.append(f'<details class="commands" data-host="{_e(host)}"{" open" if bad else ""}>'
                   f"<summary>{summary}</summary><table>{head}{''.join(rows)}</table></details>")
    if quiet:
        rows = [_row([h, _num(n), _num(f"{d:.1f}")]) for h, n, d in quiet]
        out.append(f"<h3>{len(quiet)} more hosts where every command was OK</h3>"
                   + _table(["host", "commands", "seconds (sum)"], rows, "hosts"))
    out.append("</section>")
    return "\n".join(out)


__all__ = ["render_html"]
