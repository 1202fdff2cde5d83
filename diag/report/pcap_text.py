"""Terminal rendering of a capture summary (the dict of :mod:`diag.decode.summary`) with rich.

Contract: ``render(summary, console)`` prints sections — capture, BGP sessions, NOTIFICATIONs,
tunnels per VNI, ARP unanswered and multiple responders, IP fragmentation per flow, LLDP
neighbours, ICMP errors, malformed packets — and nothing else; ``render_frame(rows, frame,
console)`` prints one frame's decoded rows (``diag pcap --frame N``), one table per row;
:func:`console` is the console both print to: a terminal gets rich's layout, a pipe or file long
lines (grep-able, no wrapping).
"""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from diag.report.safe import for_rich, markup, utc_text
from diag.values import is_missing
from diag.words import counted


def _when(ts: float | None) -> str:
    return utc_text(ts)


def _clock(ts: float | None) -> str:
    return utc_text(ts, "%H:%M:%S.%f")


def render(s: dict, console: Console) -> None:
    s = for_rich(s)     # every string from the capture is text, never markup or control
    p = s["packets"]
    span = (p["last_ts"] - p["first_ts"]) if p["first_ts"] is not None else 0.0
    console.print(f"[bold]{s['file']}[/] ({s['format']}): {counted(p['total'], 'packet')} over {span:.3f} s, "
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
    if s.get("fragments", {}).get("datagrams"):
        _fragments(s["fragments"], console)
    if s.get("lldp", {}).get("neighbours"):
        _lldp(s["lldp"], console)
    if s.get("icmp_errors", {}).get("count"):
        _icmp(s["icmp_errors"], console)
    if p["malformed_examples"]:
        t = Table(title="Malformed packets (first ones)", title_justify="left")
        t.add_column("frame", justify="right")
        t.add_column("reason")
        for m in p["malformed_examples"][:20]:
            t.add_row(str(m["frame"]), m["reason"])
        console.print(t)


def _routes(families: dict) -> str:
    """'ipv4/unicast announced 3, withdrawn 2; ipv4/mpls-vpn announced 526' (distinct routes
    per address family)."""
    parts = []
    for family, n in families.items():
        counts = [f"{what} {n[what]}" for what in ("announced", "withdrawn") if n[what]]
        parts.append(f"{family} {', '.join(counts) or 'none'}")
    return "; ".join(parts) or "none"


def _bgp(b: dict, console: Console) -> None:
    total = sum(b["messages"].values())
    counts = ", ".join(f"{k} {v}" for k, v in b["messages"].items() if v)
    console.print(f"\n[bold]BGP[/]: {counted(total, 'message')} ({counts or 'none'}); routes: "
                  f"{_routes(b['prefixes'].get('by_family', {}))}; {b['malformed']} malformed",
                  highlight=False)
    for attempt in b.get("connection_attempts", []):
        what = ("refused (SYN answered by RST)" if attempt["outcome"] == "refused"
                else "unanswered (SYN, no reply)")
        times = "once" if attempt["attempts"] == 1 else f"{attempt['attempts']} times"
        console.print(f"connection {attempt['from']} > {attempt['to']} {what}, {times}, "
                      f"{_clock(attempt['first_ts'])} .. {_clock(attempt['last_ts'])}",
                      highlight=False)
    for sess in b["sessions"]:
        if sess.get("connection") in ("refused", "unanswered"):
            continue                     # shown above, grouped: each attempt is a new port
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
        console.print(f"  messages: {msgs}; routes: {_routes(sess.get('families', {}))}; "
                      f"End-of-RIB {len(sess['end_of_rib'])}; "
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
    kinds = ", ".join(f"{k}: {counted(v['packets'], 'packet')}, VNIs {v['vnis']}"
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


def _fragments(f: dict, console: Console) -> None:
    status = ", ".join(f"{k} {v}" for k, v in f["by_status"].items())
    console.print(f"\n[bold]IP fragmentation[/]: {f['datagrams']} fragmented datagrams in "
                  f"{f['fragments']} fragments ({status})", highlight=False)
    t = Table(title="Fragmented flows (the largest fragment is what the path's MTU let through)",
              title_justify="left")
    for col in ("src > dst", "proto", "depth", "datagrams", "largest fragment",
                "largest payload", "carried", "outcome"):
        t.add_column(col)
    for flow in f["by_flow"]:
        t.add_row(f"{flow['src']} > {flow['dst']}", str(flow["proto"]), str(flow["tunnel_depth"]),
                  str(flow["datagrams"]), str(flow["largest_fragment"]),
                  str(flow["largest_payload"] or "-"),
                  ", ".join(f"{k} {v}" for k, v in flow["carried"].items()) or "-",
                  ", ".join(f"{k} {v}" for k, v in flow["by_status"].items()))
    console.print(t)


def _lldp(lldp: dict, console: Console) -> None:
    t = Table(title="LLDP neighbours (who is on the other end of each link, and which port)",
              title_justify="left")
    for col in ("heard on", "system", "chassis", "port", "VLAN", "max frame", "TTL", "frames"):
        t.add_column(col)
    for n in lldp["neighbours"]:
        port = n["port_id"] or "-"
        if n.get("port_description") and n["port_description"] != port:
            port += f" ({n['port_description']})"
        t.add_row(n["interface"], n.get("system_name") or "-", n["chassis_id"] or "-", port,
                  str(n.get("port_vlan") or "-"), str(n.get("max_frame_size") or "-"),
                  str(n.get("ttl")), str(n["frames"]))
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
    copies = a.get("copies", 0)
    console.print(f"\n[bold]ARP[/]: {counted(a['requests'], 'request')}, "
                  f"{counted(a['replies'], 'reply', 'replies')}, {a['gratuitous']} gratuitous"
                  + (f", {counted(copies, 'copy', 'copies')} of a request seen elsewhere"
                     if copies else "")
                  + f"; {counted(a['answered'], 'request')} answered, {a['unanswered']} unanswered"
                  + (f" ({a['unverified']} that this capture may not see replies for)"
                     if a.get("unverified") else ""))
    if a["unanswered_by_ip"]:
        t = Table(title="ARP requests without a reply", title_justify="left")
        for col in ("who-has", "requests", "asked by", "first frame", "first", "last",
                    "replies may not be visible here"):
            t.add_column(col)
        for u in a["unanswered_by_ip"]:
            t.add_row(u["target_ip"], str(u["count"]), ", ".join(u["requesters"]),
                      str(u["first_frame"]), _clock(u["first_ts"]), _clock(u["last_ts"]),
                      u.get("unverified_because") or "-")
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
