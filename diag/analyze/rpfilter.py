"""Reverse-path filter analyzer: does strict rp_filter drop traffic that comes back another way?

Contract: :func:`analyze(tables, model, fib) -> (findings, checks)`; pure, no I/O. For each host
with strict reverse-path filtering (``max(conf.all.rp_filter, conf.IFACE.rp_filter) == 1``, as
the kernel computes it) on a receiving interface, the path tracer walks traffic from every other
node (its pod CIDR and its node IP) to this host's pod CIDR and node IP; where it arrives on a
strict interface, the reverse lookup (the route back to the source) must leave by that same
interface, else the kernel drops the packet:

- ``ASYMMETRIC_RP_FILTER`` (error): packets from SRC arrive on IIF but the route back leaves by
  another NIC. Sources: ``sysctl`` (rp_filter=1 on IIF), ``ip`` (the reverse route and the
  forward walk), ``nstat`` (TcpExtIPReversePathFilter > 0: the kernel counted such drops).
  The fix: loose mode (2) on the interface, or a route back by the interface the traffic uses.
"""
from __future__ import annotations

import ipaddress

from diag.analyze.catalog import default_severity
from diag.analyze.fib import Fib
from diag.analyze.lookup import lookup
from diag.analyze.overlay import counter_peak
from diag.analyze.trace import trace
from diag.bundle import OutputIndex
from diag.model import Check, Confidence, Evidence, Finding


def rp_modes(tables, outputs: OutputIndex) -> dict[str, dict[str, tuple[int, Evidence]]]:
    """host -> {iface or 'all' -> (rp_filter value, evidence)} from the collected sysctls."""
    df = tables.get("sysctls")
    if df is None or df.empty:
        return {}
    rows = df[df["name"] == "rp_filter"]
    out: dict[str, dict[str, tuple[int, Evidence]]] = {}
    for row in rows.itertuples(index=False):
        try:
            value = int(str(row.value).strip())
        except ValueError:
            continue
        path = outputs.path(row.host, str(row.source))
        out.setdefault(row.host, {})[str(row.iface)] = (
            value, Evidence(row.host, path, f"line starting {row.key}", f"{row.key} = {value}"))
    return out


def effective(modes: dict[str, tuple[int, Evidence]], iface: str
              ) -> tuple[int, tuple[Evidence, ...]]:
    """The kernel uses the larger of conf.all and conf.IFACE (0 off, 1 strict, 2 loose)."""
    found = [modes[k] for k in ("all", iface) if k in modes]
    if not found:
        return 0, ()
    value = max(v for v, _ in found)
    return value, tuple(e for v, e in found if v == value)


def _probe(cidr: str) -> str:
    net = ipaddress.ip_network(cidr, strict=False)
    return str(net.network_address + (1 if net.num_addresses > 2 else 0))


def _endpoints(hm) -> list[tuple[str, str]]:
    """(address to walk from/to, what it is) for a node: a pod address and the node IP."""
    out = []
    if hm.pod_cidr.value:
        out.append((_probe(hm.pod_cidr.value), f"{hm.name}'s pods ({hm.pod_cidr.value})"))
    if hm.node_ip.value:
        out.append((hm.node_ip.value, f"{hm.name} ({hm.node_ip.value})"))
    return out


def analyze(tables, model, fib: Fib) -> tuple[list[Finding], list[Check]]:
    modes = rp_modes(tables, fib.outputs)
    name = "reverse path matches the arrival NIC where rp_filter is strict (ASYMMETRIC_RP_FILTER)"
    if not modes:
        return [], [Check(name, None, needs="`sysctl net.ipv4.conf` from every host "
                                            "(diag collect)")]
    strict_hosts = [h for h in model.nodes()
                    if any(v == 1 for v, _ in modes.get(h.name, {}).values())]
    findings: list[Finding] = []
    for hm in strict_hosts:
        drops: list[tuple[str, str, str, object, tuple[Evidence, ...], object]] = []
        for other in model.nodes():
            if other.name == hm.name:
                continue
            for src, what in _endpoints(other):
                for dst, _ in _endpoints(hm):
                    got = _arrival(tables, model, fib, src, dst, hm.name)
                    if got is None:
                        continue
                    iif, forward_ev = got
                    mode, sysctl_ev = effective(modes[hm.name], iif)
                    if mode != 1:
                        continue
                    back = lookup(fib, hm.name, src)
                    if back.type == "unicast" and iif in {d for _, d in back.nexthops}:
                        continue
                    drops.append((src, what, iif, back, sysctl_ev + forward_ev, other))
                    break               # one destination is enough per source
        if drops:
            findings.append(_finding(tables, fib, hm, drops))
    checked = bool(strict_hosts)
    return findings, [Check(name, not findings,
                            "strict on " + ", ".join(h.name for h in strict_hosts) if checked
                            else "rp_filter strict nowhere on the nodes")]


def _arrival(tables, model, fib: Fib, src: str, dst: str, host: str
             ) -> tuple[str, tuple[Evidence, ...]] | None:
    """The interface on which traffic src -> dst arrives at ``host`` (forward walk)."""
    try:
        walk = trace(tables, model, src, dst, fib)
    except (LookupError, ValueError):
        return None
    for i, hop in enumerate(walk.hops):
        if i and hop.host == host and hop.iif:
            before = walk.hops[i - 1].lookup
            return hop.iif, ((before.route.evidence,) if before.route else ())
    return None


def _finding(tables, fib: Fib, hm, drops) -> Finding:
    sources = {"sysctl", "ip"}
    evidence: list[Evidence] = []
    fix: list[str] = []
    parts = []
    for src, what, iif, back, ev, other in drops:
        evidence += list(ev)
        evidence += list(back.evidence)
        out = back.dev if back.type == "unicast" else f"nowhere ({back.reason})"
        parts.append(f"from {what} arrive on {iif} but the route back to {src} leaves by {out}")
    ifaces = sorted({iif for _, _, iif, _, _, _ in drops})
    counted = counter_peak(tables, fib.outputs, hm.name, "TcpExtIPReversePathFilter")
    if counted and counted[0] > 0:
        sources.add("nstat")
        evidence.append(counted[1])
    fix.append("sysctl -w net.ipv4.conf.all.rp_filter=2 "
               + " ".join(f"net.ipv4.conf.{i}.rp_filter=2" for i in ifaces)
               + "   # loose mode: any route back is enough")
    for src, what, iif, back, ev, other in drops:
        cidr = other.pod_cidr.value if other.pod_cidr.value and ipaddress.ip_address(src) in \
            ipaddress.ip_network(other.pod_cidr.value, strict=False) else f"{src}/32"
        gw = _gateway_on(fib, hm.name, other.node_ip.value, iif)
        if back.route is not None and back.route.dst != ipaddress.ip_network("0.0.0.0/0"):
            fix.append(f"# or route it back the way it came: ip route del {back.route.dst} "
                       f"{'via ' + back.gateway + ' ' if back.gateway else ''}dev {back.dev}")
        if gw:
            fix.append(f"# or: ip route replace {cidr} via {gw} dev {iif}")
    return Finding(
        "ASYMMETRIC_RP_FILTER", default_severity("ASYMMETRIC_RP_FILTER"),
        f"{hm.name}: strict rp_filter on {', '.join(ifaces)} drops traffic: packets "
        + "; ".join(parts),
        Confidence(tuple(sorted(sources))), tuple(dict.fromkeys(evidence)), tuple(fix),
        severity_reason="rp_filter=1 (strict) drops a packet whose route back leaves by another "
        "interface than it arrived on" + ("; nstat counted such drops" if "nstat" in sources
                                          else ""),
        hosts=(hm.name,),
        subject=", ".join(dict.fromkeys(
            d[5].pod_cidr.value or d[0] for d in drops)))


def _gateway_on(fib: Fib, host: str, address: str | None, iif: str) -> str | None:
    """The next hop towards ``address`` if the host reaches it by ``iif``; else an address of a
    neighbour on ``iif`` that forwards (the hop the traffic came through)."""
    if not address:
        return None
    lk = lookup(fib, host, address)
    if lk.type == "unicast" and lk.dev == iif:
        return lk.gateway or address
    for h, table in list(fib.routes):       # the keys: only this host's routes are made
        if h != host:
            continue
        for route in fib.routes[(h, table)]:
            for gw, dev in route.nexthops:
                if dev == iif and gw:
                    return gw
    return None
