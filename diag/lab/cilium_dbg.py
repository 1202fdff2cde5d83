"""The lab's ``cilium-dbg`` (lab only): Cilium 1.18's BGP commands, rendering the node's GoBGP.

In a real cluster the BGP speaker is GoBGP embedded in cilium-agent and ``cilium-dbg`` asks the
agent; in the lab the speaker is gobgpd on the node, so this program asks it (``gobgp ... -j``
on 127.0.0.1:50051, the pod sharing the node's network) and prints what Cilium 1.18 prints:

- ``cilium-dbg bgp peers [-o json]`` — ``Local AS  Peer AS  Peer Address  Session  Uptime
  Family  Received  Advertised`` (the peer as ``addr:port``), or the API's ``BgpPeer`` list;
- ``cilium-dbg bgp routes available|advertised ipv4 unicast`` — ``VRouter [Peer] Prefix NextHop
  Age Attrs``, every path of the Loc-RIB (or the Adj-RIB-Out of each peer);
- ``cilium-dbg shell -- bgp/peers`` and ``bgp/routes [available|advertised] [afi] [safi]`` —
  the ``pkg/bgpv1`` shell commands: the same tables without ``Uptime`` and ``Age``; a flag they
  do not have (``-f detailed``, newer releases') fails as the shell does;
- ``cilium-dbg status`` — a few lines of the agent's status.

The tables are laid out by :func:`tabwrite`, Go's ``tabwriter`` with Cilium's settings (minimum
width 5, padding 3, the last cell unpadded); ``tests/lab/test_lab_pods.py`` checks the layout
against Cilium's own golden files, so the collector's parsers are never tested only on this.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

GOBGP = "/usr/bin/gobgp"
STATES = {1: "idle", 2: "connect", 3: "active", 4: "opensent", 5: "openconfirm",
          6: "established"}
ORIGIN = {0: "i", 1: "e", 2: "?"}
PEER_PORT = 179


def tabwrite(rows: list[list[str]], minwidth: int = 5, padding: int = 3) -> str:
    """Go's ``text/tabwriter`` (``NewWriter(w, 5, 0, 3, ' ', 0)``): every cell but a line's
    last padded to its column's width plus ``padding``."""
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell) + padding, minwidth)
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + row[-1:]
        lines.append("".join(cells))
    return "".join(line + "\n" for line in lines)


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` of a whole number of seconds (``1h2m3s``, ``0s``)."""
    total = int(max(0, seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _gobgp(*args: str) -> Any:
    done = subprocess.run([GOBGP, *args, "-j"], check=False, capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise SystemExit(f"Error: cannot reach the BGP control plane: {done.stderr.strip()}")
    return json.loads(done.stdout or "null")


def _local_asn() -> int:
    info = _gobgp("global") or {}
    return int(info.get("asn") or info.get("as") or 0)


def peers() -> list[dict[str, Any]]:
    """The agent API's ``BgpPeer`` list, from GoBGP's neighbours."""
    out = []
    now = time.time()
    for nb in _gobgp("neighbor") or []:
        conf, state = nb.get("conf") or {}, nb.get("state") or {}
        session = STATES.get(state.get("session_state"), "unknown")
        timers = (nb.get("timers") or {}).get("state") or {}
        uptime = (timers.get("uptime") or {}).get("seconds")
        families = []
        for afi_safi in nb.get("afi_safis") or []:
            st = afi_safi.get("state") or {}
            family = st.get("family") or {}
            families.append({"afi": {1: "ipv4", 2: "ipv6"}.get(family.get("afi"), "ipv4"),
                             "safi": {1: "unicast"}.get(family.get("safi"), "unicast"),
                             "received": int(st.get("received", 0) or 0),
                             "accepted": int(st.get("accepted", 0) or 0),
                             "advertised": int(st.get("advertised", 0) or 0)})
        if not families:
            families = [{"afi": "ipv4", "safi": "unicast", "received": 0, "accepted": 0,
                         "advertised": 0}]
        address = conf.get("neighbor_address") or state.get("neighbor_address")
        if session == "established":
            advertised = _gobgp("neighbor", address, "adj-out", "-a", "ipv4") or {}
            families[0]["advertised"] = len(advertised)
        out.append({"peer-address": address, "peer-port": PEER_PORT,
                    "peer-asn": conf.get("peer_asn") or state.get("peer_asn"),
                    "local-asn": conf.get("local_asn"), "session-state": session,
                    "uptime-nanoseconds": int((now - uptime) * 1e9)
                    if session == "established" and uptime else 0,
                    "families": families,
                    "applied-hold-time-seconds": timers.get("negotiated_hold_time", 0),
                    "applied-keep-alive-time-seconds": timers.get("keepalive_interval", 0)})
    return out


def peers_table(items: list[dict[str, Any]], uptime: bool = True) -> str:
    header = ["Local AS", "Peer AS", "Peer Address", "Session"] + (["Uptime"] if uptime else []) \
        + ["Family", "Received", "Advertised"]
    rows = [header]
    for peer in items:
        for i, family in enumerate(peer["families"]):
            lead = [str(peer["local-asn"]), str(peer["peer-asn"]),
                    f"{peer['peer-address']}:{peer['peer-port']}", peer["session-state"]] \
                + ([go_duration(peer["uptime-nanoseconds"] / 1e9)] if uptime else []) \
                if i == 0 else [""] * (5 if uptime else 4)
            rows.append(lead + [f"{family['afi']}/{family['safi']}", str(family["received"]),
                                str(family["advertised"])])
    return tabwrite(rows)


def _attrs(attrs: list[dict[str, Any]]) -> tuple[str, str]:
    """(next hop, Cilium's ``Attrs`` text) of a GoBGP path's attributes."""
    words, nexthop = [], ""
    for attr in attrs:
        kind = attr.get("type")
        if kind == 1:
            words.append(f"{{Origin: {ORIGIN.get(attr.get('value'), '?')}}}")
        elif kind == 2:
            asns = [str(a) for seg in attr.get("as_paths") or [] for a in seg.get("asns") or []]
            if asns:
                words.append(f"{{AsPath: {' '.join(asns)}}}")
        elif kind == 3:
            nexthop = attr.get("nexthop", "")
            words.append(f"{{Nexthop: {nexthop}}}")
        elif kind == 4:
            words.append(f"{{Med: {attr.get('metric')}}}")
        elif kind == 5:
            words.append(f"{{LocalPref: {attr.get('value')}}}")
    return nexthop, "[" + " ".join(words) + "]"


def routes_table(kind: str, age: bool = True) -> str:
    asn = str(_local_asn())
    now = time.time()
    advertised = kind == "advertised"
    rows = [["VRouter"] + (["Peer"] if advertised else []) + ["Prefix", "NextHop"]
            + (["Age"] if age else []) + ["Attrs"]]
    if advertised:
        sources = [(p["peer-address"], _gobgp("neighbor", p["peer-address"], "adj-out", "-a",
                                              "ipv4") or {})
                   for p in peers() if p["session-state"] == "established"]
    else:
        sources = [(None, _gobgp("global", "rib", "-a", "ipv4") or {})]
    for peer, rib in sources:
        for prefix in sorted(rib):
            for path in rib[prefix]:
                nexthop, text = _attrs(path.get("attrs") or [])
                row = [asn] + ([peer] if advertised else []) + [prefix, nexthop or "0.0.0.0"]
                if age:
                    row.append(go_duration(now - float(path.get("age") or now)))
                rows.append(row + [text])
    return tabwrite(rows)


def status() -> str:
    established = sum(p["session-state"] == "established" for p in peers())
    return tabwrite([["KVStore:", "Disabled"],
                     ["Kubernetes:", "Ok   1.32 (v1.32.0-diag-lab) [linux/amd64]"],
                     ["Cilium:", "Ok   1.18.0 (v1.18.0-diag-lab)"],
                     ["Routing:", "Network: Native   Host: Legacy"],
                     ["BGP Control Plane:", f"{established} peers established"]], padding=1)


def shell(argv: list[str]) -> int:
    """The ``pkg/bgpv1`` shell commands (no ``-f``: newer releases' flag)."""
    if not argv:
        print("Error: no command", file=sys.stderr)
        return 1
    command, args = argv[0], argv[1:]
    flags = [a for a in args if a.startswith("-")]
    if flags:
        print(f"Error: unknown shorthand flag: '{flags[0].lstrip('-')[:1]}' in {flags[0]}",
              file=sys.stderr)
        return 1
    if command == "bgp/peers":
        sys.stdout.write(peers_table(peers(), uptime=False))
        return 0
    if command == "bgp/routes":
        sys.stdout.write(routes_table(args[0] if args else "available", age=False))
        return 0
    print(f'Error: unknown command "{command}"', file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--lab"]:           # the lab's script names its lab (unused: one node each)
        argv = argv[2:]
    args = argv[1:] if argv[:1] == ["--"] else argv
    output = None
    if "-o" in args:
        at = args.index("-o")
        output = args[at + 1] if at + 1 < len(args) else None
        args = args[:at] + args[at + 2:]
    if args[:1] == ["shell"]:
        rest = args[1:]
        return shell(rest[1:] if rest[:1] == ["--"] else rest)
    if args == ["status"]:
        sys.stdout.write(status())
        return 0
    if args[:2] == ["bgp", "peers"]:
        items = peers()
        sys.stdout.write(json.dumps(items, indent=2) + "\n" if output == "json"
                         else peers_table(items))
        return 0
    if args[:2] == ["bgp", "routes"] and args[2:3] in (["available"], ["advertised"]):
        sys.stdout.write(routes_table(args[2]))
        return 0
    print(f"Error: unknown command {' '.join(args)!r} for \"cilium-dbg\"", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
