"""Terminal rendering of a capture summary (the dict of :mod:`diag.decode.summary`) with rich.

Contract: ``render(summary, console)`` prints sections — capture, BGP sessions, NOTIFICATIONs,
tunnels per VNI, ARP unanswered and multiple responders, malformed packets — and nothing else;
``render_frame(rows, frame, console)`` prints one frame's decoded rows (``diag pcap --frame N``),
one table per row; :func:`console` is the console both print to: a terminal gets rich's layout,
a pipe or file long lines (grep-able, no wrapping).
"""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from diag.report.safe import for_rich, markup, utc_text
from diag.values import is_missing


def _when(ts: float | None) -> str:
    return utc_text(ts)


def _clock(ts: float | None) -> str:
    return utc_text(ts, "%H:%M:%S.%f")


def render(s: dict, console: Console) -> None:
    s = for_rich(s)     # every string from the capture is text, never markup or control
    p = s["packets"]
    span = (p["last_ts"] - p["first_ts"]) if p["first_ts"] is not None else 0.0
    console.print(f"[bold]{s['file']}[/] ({s['format']}): {p['total']} packets over {span:.3f} s, "
                  f"{p['malformed']} malformed; from {_when(p['first_ts'])} UTC")
    if s["interfaces"]:
        names = ", ".join(f"{i['capture_iface']}:{i['name'] or '-'} ({i['linktype_name']})"
                          for i in s["interfaces"])
        console.print(f"interfaces: {names}")
    apps = ", ".join(f"{k} {v}" for k, v in p["by_app"].items())
    console.print(f"packets by kind: {apps}")
    if p.get("by_interface"):
        seen = ", ".join(f"{i['interface']} {i['direction']} {i['packets']}" for i in p["by_interface"])
        console.print(f"packets by interface and direction: {seen}")
    _bgp(s["bgp"], console)
    _tunnels(s["tunnels"], console)
    _arp(s["arp"], console)
    if s.get("icmp_errors", {}).get("count"):
        _icmp(s["icmp_errors"], console)
    if p["malformed_examples"]:
        t = Table(title="Malformed packets (first ones)", title_justify="left")
        t.add_column("frame", justify="right")
        t.add_column("reason")
        for m in p["malformed_examples"][:20]:
            t.add_row(str(m["frame"]), m["reason"])
        console.print(t)


def _bgp(b: dict, console: Console) -> None:
    total = sum(b["messages"].values())
    counts = ", ".join(f"{k} {v}" for k, v in b["messages"].items() if v)
    console.print(f"\n[bold]BGP[/]: {total} messages ({counts or 'none'}); "
                  f"{b['prefixes']['announced']} prefixes announced, "
                  f"{b['prefixes']['withdrawn']} withdrawn; {b['malformed']} malformed")
    for sess in b["sessions"]:
        console.print(f"\n[bold]session {sess['session']}[/]  "
                      f"{_clock(sess['first_ts'])} .. {_clock(sess['last_ts'])}")
        for ep, o in sess["speakers"].items():
            console.print(f"  {ep}: AS {o['as']}, BGP id {o['bgp_id']}, hold {o['hold_time']} s")
            if o["capabilities"]:
                console.print("    capabilities: " + ", ".join(o["capabilities"]),
                              highlight=False)
        if not sess["speakers"]:
            console.print("  (no OPEN seen: session context assumed)")
        msgs = ", ".join(f"{k} {v}" for k, v in sess["messages"].items()) or "none"
        events = ", ".join(f"{k} {v}" for k, v in sess["stream_events"].items())
        console.print(f"  messages: {msgs}; prefixes announced {sess['announced']}, withdrawn "
                      f"{sess['withdrawn']}; End-of-RIB {len(sess['end_of_rib'])}; "
                      f"NOTIFICATIONs {len(sess['notifications'])}"
                      + (f"; reassembly: {events}" if events else "")
                      + (f"; malformed {sess['malformed']}" if sess["malformed"] else ""))
    if b["notifications"]:
        t = Table(title="NOTIFICATIONs", title_justify="left")
        for col in ("frame", "time", "from", "code/subcode", "meaning", "text"):
            t.add_column(col)
        for n in b["notifications"]:
            t.add_row(str(n["frame"]), _clock(n["ts"]), n["from"], f"{n['code']}/{n['subcode']}",
                      f"{n['name']} / {n['subname']}", n["text"] or "")
        console.print(t)


def _tunnels(tun: dict, console: Console) -> None:
    rows = tun["by_vni"]
    kinds = ", ".join(f"{k}: {v['packets']} packets, VNIs {v['vnis']}"
                      for k, v in tun.items() if isinstance(v, dict))
    console.print(f"\n[bold]Tunnels[/]: {kinds or 'none'}")
    if rows:
        t = Table(title="Tunnels per VNI", title_justify="left")
        for col in ("type", "VNI", "packets", "outer endpoints (src > dst:port packets)", "inner"):
            t.add_column(col)
        for r in rows:
            ends = "\n".join(f"{e['src']} > {e['dst']}:{e['dport']} ({e['packets']})"
                             for e in r["endpoints"][:8])
            inner = ", ".join(f"{k} {v}" for k, v in r["inner"].items())
            t.add_row(r["type"], str(r["vni"]), str(r["packets"]), ends, inner)
        console.print(t)


def _icmp(e: dict, console: Console) -> None:
    kinds = ", ".join(f"{t['type']} ({t['code']}) {t['count']}" for t in e["by_type"])
    mtus = f"; MTUs announced: {', '.join(map(str, e['mtus']))}" if e["mtus"] else ""
    console.print(f"\n[bold]ICMP errors[/]: {e['count']}: {kinds}{mtus}")
    t = Table(title="What the ICMP errors are about (the packet they quote)", title_justify="left")
    for col in ("error", "to", "proto", "dport", "count"):
        t.add_column(col)
    for a in e["about"]:
        t.add_row(a["type"], str(a["dst"]), str(a["proto"]), str(a["dport"]), str(a["count"]))
    console.print(t)


def _arp(a: dict, console: Console) -> None:
    console.print(f"\n[bold]ARP[/]: {a['requests']} requests, {a['replies']} replies, "
                  f"{a['gratuitous']} gratuitous; {a['answered']} requests answered, "
                  f"{a['unanswered']} unanswered")
    if a["unanswered_by_ip"]:
        t = Table(title="ARP requests without a reply", title_justify="left")
        for col in ("who-has", "requests", "asked by", "first frame", "first", "last"):
            t.add_column(col)
        for u in a["unanswered_by_ip"]:
            t.add_row(u["target_ip"], str(u["count"]), ", ".join(u["requesters"]),
                      str(u["first_frame"]), _clock(u["first_ts"]), _clock(u["last_ts"]))
        console.print(t)
    if a["multiple_responders"]:
        t = Table(title="Several MACs answering for one IP", title_justify="left")
        for col in ("IP", "MACs", "frames"):
            t.add_column(col)
        for m in a["multiple_responders"]:
            t.add_row(m["ip"], ", ".join(m["macs"]), ", ".join(map(str, m["frames"][:10])))
        console.print(t)


def console() -> Console:
    import sys

    from diag.report.terminal import console as terminal

    if sys.stdout.isatty():
        return terminal()
    return terminal(width=200, soft_wrap=True)


def render_frame(found: dict[str, list[dict]], frame: int, console: Console) -> None:
    found = {name: [{markup(key): value if is_missing(value) or isinstance(value, (int, float))
                     else markup(value) for key, value in row.items()} for row in rows]
             for name, rows in found.items()}
    for name, rows in found.items():
        for i, row in enumerate(rows):
            t = Table(title=f"{name} [{i + 1}/{len(rows)}] at frame {frame}", title_justify="left",
                      show_header=False)
            t.add_column("field", style="bold")
            t.add_column("value")
            for k, v in row.items():
                if is_missing(v):
                    continue
                t.add_row(k, str(v))
            console.print(t)
