"""Inline SVG pictures of a report: the topology, the BGP timeline and the tunnelled flows' ladders
(no script, no external refs).

Contract: :func:`topology_svg(topology, flagged) -> str`, :func:`timeline_svg(timeline) -> str` and
:func:`ladder_svg(ladder, index) -> str` return one ``<svg>`` element each (ids ``topology-svg``,
``timeline-svg``, ``ladder-svg-N``), every text escaped. A ladder is drawn as the ledger gave it:
one box per point (pod A -> VTEP A -> underlay A -> hosts between -> underlay B -> VTEP B -> pod
B) with the packets seen there, green arrows where packets went on, a red cross where they stopped
(the loss point), grey dashed boxes where the host was not captured.
``flagged`` maps host names to the worst severity of the findings naming them (outlined red /
orange). Pictures scale with ``viewBox``; big inputs stay bounded: above ``BUS_LAYOUT_MAX_HOSTS``
hosts the topology is a grid without subnet buses or tunnel arcs (the tables say the rest), and
timeline marks of one kind falling on the same pixel are drawn once (the tooltip counts them).
"""
from __future__ import annotations

from html import escape

from diag.report.data import Ladder, Topology
from diag.report.safe import utc_text
from diag.report.timeline import Timeline
from diag.words import counted

BUS_LAYOUT_MAX_HOSTS = 16
STATE_COLOURS = {"ESTABLISHED": "#2e7d32", "OPENCONFIRM": "#ef6c00", "OPENSENT": "#ef6c00",
                 "CONNECT": "#c62828", "ACTIVE": "#c62828", "IDLE": "#c62828",
                 "UNKNOWN": "#757575"}
SEVERITY_COLOURS = {"error": "#c62828", "warning": "#ef6c00", "info": "#1565c0"}
SUBNET_COLOURS = ("#1565c0", "#6a1b9a", "#00838f", "#827717", "#4e342e", "#ad1457", "#37474f")
TUNNEL_COLOUR = "#7b1fa2"
MARK_COLOURS = {"OPEN": "#1565c0", "UPDATE": "#2e7d32", "KEEPALIVE": "#9e9e9e",
                "NOTIFICATION": "#c62828", "ROUTE-REFRESH": "#00838f", "RST": "#c62828",
                "FIN": "#ef6c00", "RESET": "#c62828"}


def _e(value) -> str:
    return escape(str(value), quote=True)


def _text(x: float, y: float, text, size: int = 12, anchor: str = "start", weight: str = "normal",
          fill: str = "#212121") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}">{_e(text)}</text>')


# --- topology -----------------------------------------------------------------------------------

BOX_W, LINE_H = 190, 14


def _box_lines(h) -> list[str]:
    lines = []
    role = h.role or "?"
    lines.append(f"{role}" + (f" · AS {h.asn}" if h.asn not in (None, "") else ""))
    if h.node_ip:
        lines.append(f"node IP {h.node_ip}")
    if h.pod_cidr:
        lines.append(f"pods {h.pod_cidr}")
    if h.reachability and h.reachability != "OK":
        lines.append(f"NOT COLLECTED: {h.reachability}")
    return lines


def topology_svg(topo: Topology, flagged: dict[str, str] | None = None) -> str:
    flagged = flagged or {}
    names = [h.name for h in topo.hosts]
    peers = sorted({n for s in topo.sessions for n in (s.a, s.b) if n not in names})
    vteps: dict[str, list[str]] = {}
    for t in topo.tunnels:
        label = f"{t.kind} {t.device} vni {t.vni} port {t.port}"
        if label not in vteps.setdefault(t.host, []):
            vteps[t.host].append(label)
    if len(names) + len(peers) > BUS_LAYOUT_MAX_HOSTS:
        return _grid_topology(topo, peers, vteps, flagged)
    return _bus_topology(topo, peers, vteps, flagged)


def _host_box(x: float, y: float, h, lines: list[str], flagged: dict[str, str],
              height: float) -> str:
    sev = flagged.get(h.name)
    stroke = SEVERITY_COLOURS.get(sev, "#424242") if sev in ("error", "warning") else "#424242"
    width = 3 if sev in ("error", "warning") else 1.2
    fill = "#fff8e1" if h.role == "router" else "#f5f5f5"
    parts = [f'<g class="host" data-host="{_e(h.name)}"><title>{_e(h.name)}'
             + (f" — named by a finding ({_e(sev)})" if sev else "") + "</title>",
             f'<rect x="{x:.1f}" y="{y:.1f}" width="{BOX_W}" height="{height:.1f}" rx="6" '
             f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>',
             _text(x + 8, y + 16, h.name, 13, weight="bold")]
    for i, line in enumerate(lines):
        colour = TUNNEL_COLOUR if line.startswith(("vxlan", "geneve")) else "#424242"
        parts.append(_text(x + 8, y + 31 + i * LINE_H, line[:34], 10.5, fill=colour))
    parts.append("</g>")
    return "".join(parts)


def _bus_topology(topo: Topology, peers: list[str], vteps: dict[str, list[str]],
                  flagged: dict[str, str]) -> str:
    from diag.report.data import HostRecord

    hosts = list(topo.hosts) + [HostRecord(p, "peer (not collected)", None, None, None, None,
                                           None, None) for p in peers]
    top = [h for h in hosts if h.role in ("router", "peer (not collected)")] or hosts[:1]
    bottom = [h for h in hosts if h not in top]
    lines = {h.name: _box_lines(h) + vteps.get(h.name, []) for h in hosts}
    height = {n: 24 + LINE_H * max(1, len(ls)) for n, ls in lines.items()}
    gap = 40
    width = max(len(top), len(bottom), 1) * (BOX_W + gap) + 220
    pos: dict[str, tuple[float, float]] = {}
    top_h = max((height[h.name] for h in top), default=0)
    for row, y in ((top, 20.0), (bottom, None)):
        if y is None:
            break
        x0 = (width - 200 - len(row) * (BOX_W + gap) + gap) / 2 + 200
        for i, h in enumerate(row):
            pos[h.name] = (x0 + i * (BOX_W + gap), y)
    buses = [s for s in topo.subnets]
    bus_y0 = 20 + top_h + 40
    bus_y = {s.network: bus_y0 + i * 34 for i, s in enumerate(buses)}
    bottom_y = bus_y0 + max(len(buses), 1) * 34 + 30
    x0 = (width - 200 - len(bottom) * (BOX_W + gap) + gap) / 2 + 200
    for i, h in enumerate(bottom):
        pos[h.name] = (x0 + i * (BOX_W + gap), bottom_y)
    bottom_h = max((height[h.name] for h in bottom), default=0)
    arcs_y = bottom_y + bottom_h + 20
    n_tunnel_pairs = len({tuple(sorted((t.host, t.remote_host or t.remote))) for t in topo.tunnels})
    total_h = arcs_y + (40 + 16 * min(n_tunnel_pairs, 8) if topo.tunnels else 0) + 110
    out = [f'<svg id="topology-svg" xmlns="http://www.w3.org/2000/svg" role="img" '
           f'viewBox="0 0 {width:.0f} {total_h:.0f}" width="{width:.0f}" '
           f'style="max-width:100%;height:auto" font-family="sans-serif">',
           "<title>Topology: hosts, subnets, BGP sessions, tunnels</title>"]
    # subnet buses with each member's attachment
    for k, s in enumerate(buses):
        colour = SUBNET_COLOURS[k % len(SUBNET_COLOURS)]
        y = bus_y[s.network]
        xs = []
        attach = []
        for host, ifname, addr in s.members:
            if host not in pos:
                continue
            hx, hy = pos[host]
            slot = sum(1 for b in buses[:k] if any(m[0] == host for m in b.members))
            cx = hx + 30 + slot * 14
            xs.append(cx)
            is_top = host in {h.name for h in top}
            y_from = hy + height[host] if is_top else hy
            attach.append(f'<line x1="{cx:.1f}" y1="{y_from:.1f}" x2="{cx:.1f}" y2="{y:.1f}" '
                          f'stroke="{colour}" stroke-width="1.5"/>'
                          f'<circle cx="{cx:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>'
                          + _text(cx + 4, y - 5 if is_top else y + 12, f"{ifname} {addr}", 9,
                                  fill=colour))
        if not xs:
            continue
        out.append(f'<g class="subnet" data-network="{_e(s.network)}">'
                   f'<line x1="{min(min(xs) - 20, 190):.1f}" y1="{y}" '
                   f'x2="{max(max(xs) + 20, width - 20):.1f}" y2="{y}" '
                   f'stroke="{colour}" stroke-width="5" stroke-linecap="round" opacity="0.8"/>'
                   + _text(12, y + 4, s.network, 11, weight="bold", fill=colour)
                   + "".join(attach) + "</g>")
    # BGP sessions: curves between the boxes, coloured by state
    for i, s in enumerate(topo.sessions):
        if s.a not in pos or s.b not in pos:
            continue
        (ax, ay), (bx, by) = pos[s.a], pos[s.b]
        a_top = ay <= by
        x1, y1 = ax + BOX_W - 40, (ay + height[s.a]) if a_top else ay
        x2, y2 = bx + BOX_W - 40, by if a_top else (by + height[s.b])
        if ay == by:
            y1 = y2 = ay
        cx, cy = (x1 + x2) / 2 + 60, (y1 + y2) / 2 - (60 if ay == by else 0)
        colour = STATE_COLOURS.get(s.state, "#757575")
        dash = "" if s.state == "ESTABLISHED" else ' stroke-dasharray="7 4"'
        out.append(f'<g class="bgp-session" data-state="{_e(s.state)}"><title>BGP {_e(s.a)} — '
                   f'{_e(s.b)}: {_e(s.state)} ({_e(s.detail)})</title>'
                   f'<path d="M{x1:.1f},{y1:.1f} Q{cx:.1f},{cy:.1f} {x2:.1f},{y2:.1f}" '
                   f'fill="none" stroke="{colour}" stroke-width="3"{dash}/>'
                   # only a broken session gets a label: colour and legend say Established
                   + (_text((x1 + 2 * cx + x2) / 4 + 4, (y1 + 2 * cy + y2) / 4,
                            f"BGP {s.state}", 10, weight="bold", fill=colour)
                      if s.state != "ESTABLISHED" else "") + "</g>")
    # hosts on top of the lines
    for h in hosts:
        x, y = pos[h.name]
        out.append(_host_box(x, y, h, lines[h.name], flagged, height[h.name]))
    # tunnels: arcs under the bottom row, one per VTEP pair
    pairs: dict[tuple[str, str], list] = {}
    for t in topo.tunnels:
        other = t.remote_host or t.remote
        pairs.setdefault(tuple(sorted((t.host, other))), []).append(t)
    for j, ((a, b), ends) in enumerate(sorted(pairs.items())[:8]):
        if a not in pos or b not in pos:
            continue
        (ax, ay), (bx, by) = pos[a], pos[b]
        x1, y1 = ax + BOX_W / 2 + 20, ay + height[a]
        x2, y2 = bx + BOX_W / 2 - 20, by + height[b]
        depth = arcs_y + 20 + 16 * j
        ports = sorted({str(t.port) for t in ends})
        label = f"{ends[0].kind} vni {ends[0].vni} port {'/'.join(ports)}"
        colour = "#c62828" if len(ports) > 1 else TUNNEL_COLOUR
        out.append(f'<g class="tunnel"><title>{_e(a)} ⇄ {_e(b)}: '
                   + _e("; ".join(f"{t.host} {t.device} -> {t.remote} port {t.port}" for t in ends))
                   + f'</title><path d="M{x1:.1f},{y1:.1f} C{x1:.1f},{depth:.1f} {x2:.1f},'
                   f'{depth:.1f} {x2:.1f},{y2:.1f}" fill="none" stroke="{colour}" '
                   f'stroke-width="2" stroke-dasharray="3 3"/>'
                   + _text((x1 + x2) / 2, depth - 2, label, 9.5, "middle", fill=colour) + "</g>")
    out.append(_topology_legend(10, total_h - 90, topo))
    out.append("</svg>")
    return "".join(out)


def _topology_legend(x: float, y: float, topo: Topology, extra: str = "") -> str:
    items = [('<line x1="0" y1="0" x2="26" y2="0" stroke="#2e7d32" stroke-width="3"/>',
              "BGP Established"),
             ('<line x1="0" y1="0" x2="26" y2="0" stroke="#ef6c00" stroke-width="3" '
              'stroke-dasharray="7 4"/>', "BGP OpenSent/OpenConfirm"),
             ('<line x1="0" y1="0" x2="26" y2="0" stroke="#c62828" stroke-width="3" '
              'stroke-dasharray="7 4"/>', "BGP Idle/Active/Connect"),
             (f'<line x1="0" y1="0" x2="26" y2="0" stroke="{TUNNEL_COLOUR}" stroke-width="2" '
              'stroke-dasharray="3 3"/>', "tunnel (VTEP pair; red: ports differ)"),
             ('<line x1="0" y1="0" x2="26" y2="0" stroke="#1565c0" stroke-width="5"/>',
              "subnet / segment"),
             ('<rect x="0" y="-8" width="26" height="14" rx="3" fill="#f5f5f5" stroke="#c62828" '
              'stroke-width="3"/>', "host named by an error finding")]
    out = [f'<g class="legend" transform="translate({x:.1f},{y:.1f})">',
           _text(0, 0, "Legend" + (f" — {extra}" if extra else "")
                 + (" (from the wire: endpoints seen in the capture)" if topo.source == "wire"
                    else ""), 11, weight="bold")]
    for i, (shape, label) in enumerate(items):
        col, row = i % 3, i // 3
        ox, oy = col * 300, 22 + row * 24
        out.append(f'<g transform="translate({ox},{oy})">{shape}</g>'
                   + _text(ox + 34, oy + 4, label, 10.5))
    out.append("</g>")
    return "".join(out)


def _grid_topology(topo: Topology, peers: list[str], vteps: dict[str, list[str]],
                   flagged: dict[str, str]) -> str:
    from diag.report.data import HostRecord

    hosts = list(topo.hosts) + [HostRecord(p, "peer (not collected)", None, None, None, None,
                                           None, None) for p in peers]
    cols = 8
    cell_w, cell_h = BOX_W + 20, 24 + LINE_H * 4 + 16
    rows = (len(hosts) + cols - 1) // cols
    width, height = cols * cell_w + 20, rows * cell_h + 150
    pos = {h.name: (10 + (i % cols) * cell_w, 10 + (i // cols) * cell_h)
           for i, h in enumerate(hosts)}
    out = [f'<svg id="topology-svg" xmlns="http://www.w3.org/2000/svg" role="img" '
           f'viewBox="0 0 {width} {height}" width="{width}" style="max-width:100%;height:auto" '
           f'font-family="sans-serif"><title>Topology (grid: {len(hosts)} hosts)</title>']
    for s in topo.sessions:
        if s.a in pos and s.b in pos:
            (ax, ay), (bx, by) = pos[s.a], pos[s.b]
            colour = STATE_COLOURS.get(s.state, "#757575")
            dash = "" if s.state == "ESTABLISHED" else ' stroke-dasharray="7 4"'
            out.append(f'<line class="bgp-session" data-state="{_e(s.state)}" '
                       f'x1="{ax + BOX_W / 2:.0f}" y1="{ay + 20:.0f}" x2="{bx + BOX_W / 2:.0f}" '
                       f'y2="{by + 20:.0f}" stroke="{colour}" stroke-width="1" opacity="0.5"'
                       f'{dash}><title>BGP {_e(s.a)} — {_e(s.b)}: {_e(s.state)}</title></line>')
    for h in hosts:
        x, y = pos[h.name]
        lines = (_box_lines(h) + vteps.get(h.name, []))[:4]
        out.append(_host_box(x, y, h, lines, flagged, 24 + LINE_H * 4))
    extra = f"{len(topo.subnets)} subnets and {len(topo.tunnels)} tunnel links are in the tables"
    out.append(_topology_legend(10, height - 80, topo, extra))
    out.append("</svg>")
    return "".join(out)


# --- timeline ------------------------------------------------------------------------------------

LABEL_W, PLOT_W, LANE_H = 250, 760, 58


def _nice_step(span: float) -> float:
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if span / step <= 10:
            return step
    return span / 10


def timeline_svg(tl: Timeline) -> str:
    lanes = tl.lanes
    t0 = tl.t0 if tl.t0 is not None else min((m.ts for ln in lanes for m in ln.marks), default=0.0)
    t1 = tl.t1 if tl.t1 is not None else max((m.ts for ln in lanes for m in ln.marks), default=1.0)
    span = max(t1 - t0, 1e-3)
    width, top = LABEL_W + PLOT_W + 30, 44
    height = top + LANE_H * max(len(lanes), 1) + 110

    def x_of(ts: float) -> float:
        return LABEL_W + (ts - t0) / span * PLOT_W

    start = utc_text(t0)
    out = [f'<svg id="timeline-svg" xmlns="http://www.w3.org/2000/svg" role="img" '
           f'viewBox="0 0 {width} {height}" width="{width}" style="max-width:100%;height:auto" '
           f'font-family="sans-serif"><title>BGP messages per peer pair over time</title>',
           _text(LABEL_W, 14, f"t = 0 at {start} UTC; capture spans {span:.2f} s", 11)]
    step = _nice_step(span)
    tick = 0.0
    while tick <= span + 1e-9:
        x = LABEL_W + tick / span * PLOT_W
        out.append(f'<line x1="{x:.1f}" y1="{top - 12}" x2="{x:.1f}" '
                   f'y2="{top + LANE_H * max(len(lanes), 1)}" stroke="#e0e0e0"/>'
                   + _text(x, top - 16, f"+{tick:g}s", 10, "middle", fill="#616161"))
        tick += step
    for i, lane in enumerate(lanes):
        y = top + i * LANE_H + LANE_H / 2
        out.append(f'<g class="lane" data-a="{_e(lane.a)}" data-b="{_e(lane.b)}">'
                   f'<rect x="0" y="{y - LANE_H / 2 + 2:.1f}" width="{width}" '
                   f'height="{LANE_H - 4}" fill="{"#fafafa" if i % 2 else "#ffffff"}"/>'
                   + _text(8, y - 8, f"{lane.a} → {lane.b}", 11, weight="bold")
                   + _text(8, y + 6, f"{lane.b} → {lane.a}", 11)
                   + _text(8, y + 20, f"capture: {lane.host}"
                           + (f" (also {', '.join(lane.other_hosts)})" if lane.other_hosts else ""),
                           9, fill="#757575")
                   + f'<line x1="{LABEL_W}" y1="{y:.1f}" x2="{LABEL_W + PLOT_W}" y2="{y:.1f}" '
                   f'stroke="#bdbdbd"/>')
        drawn: dict[tuple[str, bool, int], int] = {}
        for m in lane.marks:
            key = (m.kind, m.forward, int(x_of(m.ts)))
            drawn[key] = drawn.get(key, 0) + 1
        first: set[tuple[str, bool, int]] = set()
        for m in lane.marks:
            key = (m.kind, m.forward, int(x_of(m.ts)))
            if key in first:
                continue
            first.add(key)
            out.append(_mark(m, x_of(m.ts), y, drawn[key], m.ts - t0))
        out.append("</g>")
    out.append(_timeline_legend(10, height - 70))
    out.append("</svg>")
    return "".join(out)


def _mark(m, x: float, y: float, count: int, rel: float) -> str:
    colour = MARK_COLOURS.get(m.kind, "#424242")
    yy = y - 12 if m.forward else y + 12
    more = f" (+{count - 1} more at this pixel)" if count > 1 else ""
    title = f"<title>+{rel:.3f}s frame {m.frame}: {_e(m.text)}{more}</title>"
    cls = f'class="mark mark-{_e(m.kind.lower())}"'
    if m.kind == "OPEN":
        shape = f'<circle cx="{x:.1f}" cy="{yy:.1f}" r="5" fill="{colour}"/>'
    elif m.kind == "UPDATE":
        shape = f'<rect x="{x - 4:.1f}" y="{yy - 4:.1f}" width="8" height="8" fill="{colour}"/>'
    elif m.kind == "KEEPALIVE":
        shape = f'<circle cx="{x:.1f}" cy="{yy:.1f}" r="3" fill="{colour}"/>'
    elif m.kind == "NOTIFICATION":
        shape = (f'<path d="M{x:.1f},{yy - 8:.1f} L{x + 7:.1f},{yy:.1f} L{x:.1f},{yy + 8:.1f} '
                 f'L{x - 7:.1f},{yy:.1f} Z" fill="{colour}" stroke="#000" stroke-width="0.8"/>')
    elif m.kind == "RST":
        shape = (f'<path d="M{x - 6:.1f},{yy - 6:.1f} L{x + 6:.1f},{yy + 6:.1f} M{x + 6:.1f},'
                 f'{yy - 6:.1f} L{x - 6:.1f},{yy + 6:.1f}" stroke="{colour}" stroke-width="3"/>')
    elif m.kind == "FIN":
        shape = (f'<rect x="{x - 2:.1f}" y="{yy - 8:.1f}" width="4" height="16" '
                 f'fill="{colour}"/>')
    elif m.kind == "RESET":
        shape = (f'<line x1="{x:.1f}" y1="{y - 26:.1f}" x2="{x:.1f}" y2="{y + 26:.1f}" '
                 f'stroke="{colour}" stroke-width="2" stroke-dasharray="4 3"/>'
                 + _text(x + 3, y - 18, "reset", 9, fill=colour))
    else:
        shape = f'<circle cx="{x:.1f}" cy="{yy:.1f}" r="4" fill="none" stroke="{colour}"/>'
    return f"<g {cls}>{title}{shape}</g>"


def _timeline_legend(x: float, y: float) -> str:
    from diag.report.timeline import Mark

    kinds = ("OPEN", "UPDATE", "KEEPALIVE", "NOTIFICATION", "ROUTE-REFRESH", "RST", "FIN", "RESET")
    out = [f'<g class="legend" transform="translate({x},{y})">',
           _text(0, 0, "Legend (upper row: first address sends; lower row: the other)", 11,
                 weight="bold")]
    for i, kind in enumerate(kinds):
        ox = i * 125
        out.append(_mark(Mark(0.0, kind, True, None, kind), ox + 8, 36, 1, 0.0)
                   + _text(ox + 20, 28, kind, 10))
    out.append("</g>")
    return "".join(out)


# --- tunnelled flow ladders -----------------------------------------------------------------------

LADDER_BOX_W, LADDER_BOX_H, LADDER_GAP = 112, 74, 34
ROLE_LABELS = {"pod-out": "pod", "vtep-out": "VTEP", "underlay-out": "underlay", "path-in": "in",
               "path-out": "out", "underlay-in": "underlay", "vtep-in": "VTEP", "pod-in": "pod"}
GOOD, LOST, UNKNOWN = "#2e7d32", "#c62828", "#9e9e9e"


def _ladder_groups(ladder: Ladder) -> list[tuple[str, int, int]]:
    """(host, first point, last point) runs of consecutive points on one host."""
    groups: list[tuple[str, int, int]] = []
    for i, p in enumerate(ladder.points):
        if groups and groups[-1][0] == p.host:
            groups[-1] = (p.host, groups[-1][1], i)
        else:
            groups.append((p.host, i, i))
    return groups


def ladder_svg(ladder: Ladder, index: int) -> str:
    points = ladder.points
    n = max(len(points), 1)
    left, top = 14, 44
    width = left * 2 + n * LADDER_BOX_W + (n - 1) * LADDER_GAP
    height = top + LADDER_BOX_H + 58
    out = [f'<svg id="ladder-svg-{index}" class="ladder" xmlns="http://www.w3.org/2000/svg" '
           f'viewBox="0 0 {width} {height}" width="{width}" style="max-width:100%;height:auto" '
           f'role="img" aria-label="{_e(ladder.flow)}: {_e(ladder.verdict)}">',
           f"<title>{_e(ladder.flow)} ({_e(ladder.sender)} -> {_e(ladder.receiver)}): "
           f"{_e(ladder.verdict)}</title>",
           _text(left, 16, ladder.flow + (f"  [{ladder.code}]" if ladder.code else ""), 13,
                 weight="bold"),
           _text(left, 32, ladder.verdict, 11, fill=LOST if ladder.lost_after
                 or "bad" in ladder.verdict else GOOD)]
    xs = [left + i * (LADDER_BOX_W + LADDER_GAP) for i in range(len(points))]
    lost_at = None
    for i in range(len(points) - 1):
        a, b = points[i], points[i + 1]
        x1, x2, y = xs[i] + LADDER_BOX_W, xs[i + 1], top + LADDER_BOX_H / 2
        if not b.captured:
            colour, dash = UNKNOWN, ' stroke-dasharray="4 3"'
        elif a.packets and not b.packets:
            colour, dash = LOST, ' stroke-dasharray="5 3"'
            lost_at = lost_at if lost_at is not None else i
        elif b.packets:
            colour, dash = GOOD, ""
        else:
            colour, dash = UNKNOWN, ""
        out.append(f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{x2 - 6:.1f}" y2="{y:.1f}" '
                   f'stroke="{colour}" stroke-width="2"{dash}/>'
                   f'<polygon points="{x2:.1f},{y:.1f} {x2 - 7:.1f},{y - 4:.1f} '
                   f'{x2 - 7:.1f},{y + 4:.1f}" fill="{colour}"/>')
        if lost_at == i:
            mx = (x1 + x2) / 2
            out.append(f'<g class="loss-point" data-after="{_e(a.role)} {_e(a.host)}">'
                       f'<line x1="{mx - 7:.1f}" y1="{y - 7:.1f}" x2="{mx + 7:.1f}" '
                       f'y2="{y + 7:.1f}" stroke="{LOST}" stroke-width="3"/>'
                       f'<line x1="{mx - 7:.1f}" y1="{y + 7:.1f}" x2="{mx + 7:.1f}" '
                       f'y2="{y - 7:.1f}" stroke="{LOST}" stroke-width="3"/>'
                       + _text(mx, y - 12, "lost", 10, "middle", "bold", LOST) + "</g>")
    for x, p in zip(xs, points):
        bad = "checksum bad" in p.detail
        stroke = UNKNOWN if not p.captured else LOST if bad else "#424242"
        dash = ' stroke-dasharray="4 3"' if not p.captured else ""
        frames = ("" if p.first_frame is None else f"frame {p.first_frame}" if
                  p.first_frame == p.last_frame else f"frames {p.first_frame}-{p.last_frame}")
        tip = (f"{p.role} on {p.host} {p.iface or ''}: "
               + (f"{counted(p.packets, 'packet')}, {frames} of {p.file}" if p.captured
                  else "not captured") + (f"; {p.detail}" if p.detail else ""))
        out.append(f'<g class="ladder-point" data-role="{_e(p.role)}" data-host="{_e(p.host)}" '
                   f'data-packets="{p.packets}"><title>{_e(tip)}</title>'
                   f'<rect x="{x:.1f}" y="{top}" width="{LADDER_BOX_W}" height="{LADDER_BOX_H}" '
                   f'rx="6" fill="{"#fafafa" if p.captured else "#ffffff"}" stroke="{stroke}" '
                   f'stroke-width="{2 if bad else 1.2}"{dash}/>'
                   + _text(x + LADDER_BOX_W / 2, top + 15, ROLE_LABELS.get(p.role, p.role), 11,
                           "middle", "bold")
                   + _text(x + LADDER_BOX_W / 2, top + 29, p.iface or "?", 10, "middle")
                   + _text(x + LADDER_BOX_W / 2, top + 47,
                           f"{p.packets} pkt" if p.captured else "not captured", 13, "middle",
                           "bold", GOOD if p.packets else LOST if p.captured else UNKNOWN)
                   + _text(x + LADDER_BOX_W / 2, top + 63, frames or p.detail[:18], 9,
                           "middle", fill="#616161") + "</g>")
    for host, first, last in _ladder_groups(ladder):
        x1, x2 = xs[first], xs[last] + LADDER_BOX_W
        y = top + LADDER_BOX_H + 12
        out.append(f'<line x1="{x1:.1f}" y1="{y}" x2="{x2:.1f}" y2="{y}" stroke="#757575"/>'
                   + _text((x1 + x2) / 2, y + 15, host, 12, "middle", "bold"))
    out.append("</svg>")
    return "".join(out)
