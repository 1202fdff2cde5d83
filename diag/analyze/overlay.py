"""Overlay analyzers: do the VTEPs agree on the UDP port, and do full-size packets fit the tunnel?

Contract: :func:`analyze(tables, model, fib) -> (findings, checks)`; pure, no I/O. The tunnel
endpoints come from the cluster model (``model.tunnels``: ``ip -d -j link`` + FDB), MTUs and
links from the ``interfaces`` table, counters from ``nstat``, packets from the captures. Codes:

- ``VXLAN_PORT_MISMATCH``: vxlan devices sharing a VNI use different UDP destination ports. The
  port most VTEPs use is the cluster's; the others are the odd ones (a tie names every port).
  Sources: ``ip-link`` (the ports), ``nstat`` (UdpNoPorts > 0 on an odd VTEP: VXLAN arriving at a
  port nobody listens on), ``pcap`` (UDP to the cluster port arriving at an odd VTEP and ICMP
  back from it). The note says tcpdump prints UDP 8472 as "OTV" (by design: 8472 is OTV's IANA
  port, Linux/flannel/Cilium/Calico use it for VXLAN).
- ``VXLAN_VNI_MISMATCH``: vxlan devices on one UDP port whose FDB names each other's VTEPs use
  different VNIs: the receiving kernel finds no device for the VNI and drops the packets
  silently (no ICMP, no counter). The VNI most of them use is the cluster's, the others are
  named (a tie names every VNI). Source: ``ip-link`` (the flow ledger adds the packets: see
  :mod:`diag.analyze.overlay_path`).
- ``OVERLAY_MTU_BLACKHOLE``: a pod-facing device (on-link pod route) whose MTU exceeds the MTU
  of the tunnel that carries the pod's traffic to other nodes, or a tunnel whose MTU plus the
  encapsulation overhead exceeds its underlay device's MTU. ``error`` when the host's counters
  show packets already refused (IpFragFails: DF packets too big to forward, each answered with
  ICMP frag-needed) or a capture shows oversize packets towards the tunnel; ``warning`` when only
  the configuration is wrong (full-size packets then depend on ICMP frag-needed reaching the
  sender). Sources: ``ip-link``, ``nstat``, ``pcap``.
"""
from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass

from diag.analyze.catalog import default_severity
from diag.analyze.fib import Fib
from diag.analyze.lookup import lookup
from diag.bundle import OutputIndex
from diag.model import Check, Confidence, Evidence, Finding
from diag.values import or_none

OVERHEAD = {"vxlan": 50, "geneve": 50}   # outer IPv4 20 + UDP 8 + header 8 + inner Ethernet 14
OTV_PORT = 8472
_SEEN = {"nstat": "the host's IpFragFails counts packets too big for the next device",
         "pcap": "the capture shows packets larger than the tunnel MTU on the pod device"}
OTV_NOTE = ("tcpdump prints UDP port 8472 as \"OTV\" (its IANA name): Linux, flannel, Cilium and "
            "Calico use 8472 for VXLAN; decode with `tcpdump -T vxlan` or tshark "
            "`-d udp.port==8472,vxlan`.")


@dataclass(frozen=True)
class Link:
    host: str
    name: str
    kind: str | None
    mtu: int | None
    port: int | None
    vni: int | None
    local: str | None
    underlay: str | None
    evidence: Evidence



def _int(value) -> int | None:
    value = or_none(value)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def links(tables, outputs: OutputIndex) -> dict[tuple[str, str], Link]:
    """(host, ifname) -> Link, with a JSON pointer to the device in that host's ``ip -j link``."""
    df = tables["interfaces"]
    if df.empty:
        return {}
    out: dict[tuple[str, str], Link] = {}
    index = df.groupby(["host", "source"], sort=False).cumcount()
    for idx, row in zip(index, df.itertuples(index=False)):
        source = str(row.source)
        port, vni, mtu = _int(row.vxlan_port), _int(row.vxlan_id), _int(row.mtu)
        value = f"{row.ifname} {row.kind or ''} mtu {mtu}".replace("  ", " ")
        if row.kind == "vxlan":
            value = f"{row.ifname} vxlan id {vni} dstport {port} mtu {mtu}"
        ev = Evidence(row.host, outputs.path(row.host, source), f"/{idx}", value)
        out[(row.host, str(row.ifname))] = Link(
            row.host, str(row.ifname), or_none(row.kind), mtu, port, vni, or_none(row.vxlan_local),
            or_none(row.vxlan_dev), ev)
    return out


def counter(tables, outputs: OutputIndex, host: str, name: str, phase: str = "main"
            ) -> tuple[int, Evidence] | None:
    """An nstat counter of a host (``name`` without or with the TcpExt prefix) and its evidence."""
    df = tables.get("counters")
    if df is None or df.empty:
        return None
    rows = df[(df["host"] == host) & (df["name"] == name)]
    if "phase" in rows:
        rows = rows[rows["phase"] == phase]
    if rows.empty:
        return None
    row = rows.iloc[0]
    source = str(row["source"])
    value = _int(row["value"]) or 0
    return value, Evidence(host, outputs.path(host, source), f"line starting {name}", f"{name} {value}")


def counter_peak(tables, outputs: OutputIndex, host: str, name: str
                 ) -> tuple[int, Evidence] | None:
    """The larger reading of a counter (main or after the capture)."""
    found = [c for c in (counter(tables, outputs, host, name),
                         counter(tables, outputs, host, name, "after-capture")) if c]
    return max(found, key=lambda c: c[0]) if found else None


# --- VXLAN_PORT_MISMATCH ------------------------------------------------------------------------

def _port_pcap(tables, outputs: OutputIndex, odd: Link, port: int) -> list[Evidence]:
    """UDP to the cluster port arriving at the odd VTEP, and ICMP the odd VTEP sends back."""
    df = tables.get("packets")
    if df is None or df.empty or not odd.local:
        return []
    out: list[Evidence] = []
    udp = df[(df["dst"] == odd.local) & (df["dport"] == port)]
    icmp = df[(df["src"] == odd.local) & (df["ip_proto"] == 1)]
    for rows, what in ((udp, "UDP to port %d" % port), (icmp, "ICMP back")):
        for row in rows.head(1).itertuples(index=False):
            out.append(Evidence(row.host, outputs.path(row.host, "capture", ".pcap"),
                                f"frame {row.frame}",
                                f"{row.src} -> {row.dst} {what} on {row.iface}", int(row.frame)))
    return out


def _recreate(t, link: Link, port: int) -> list[str]:
    spec = (f"ip link add {t.device} type vxlan id {t.vni} dstport {port}"
            + (f" local {t.local}" if t.local else "")
            + (f" dev {t.underlay_dev}" if t.underlay_dev else "") + " nolearning")
    cmds = [f"# on {t.host} (the port of a vxlan device cannot be changed in place):",
            f"ip link del {t.device}", spec]
    if link.mtu:
        cmds.append(f"ip link set {t.device} mtu {link.mtu} up")
    cmds.append(f"# then restore its FDB entries (the CNI agent re-creates them when it owns "
                f"the device: set its VXLAN port to {port} — Calico FelixConfiguration "
                f"vxlanPort, Cilium tunnel-port)")
    return cmds


def _port_mismatch(tables, outputs: OutputIndex, model, devices: dict) -> list[Finding]:
    findings = []
    groups: dict[tuple[str, int | None], list] = {}
    for t in model.tunnels:
        if t.kind == "vxlan" and t.port is not None:
            groups.setdefault((t.kind, t.vni), []).append(t)
    for (kind, vni), members in groups.items():
        ports = Counter(t.port for t in members)
        if len(ports) < 2:
            continue
        (cluster_port, top), *rest = ports.most_common()
        tie = any(n == top for _, n in rest)
        odd = [t for t in members if tie or t.port != cluster_port]
        sources = {"ip-link"}
        evidence: list[Evidence] = [devices[(t.host, t.device)].evidence for t in members
                                    if (t.host, t.device) in devices]
        fix: list[str] = []
        for t in odd:
            if tie:
                continue
            noports = counter_peak(tables, outputs, t.host, "UdpNoPorts")
            if noports and noports[0] > 0:
                sources.add("nstat")
                evidence.append(noports[1])
            pcap = _port_pcap(tables, outputs, devices.get((t.host, t.device)) or _fake(t),
                              cluster_port)
            if pcap:
                sources.add("pcap")
                evidence += pcap
            fix += _recreate(t, devices.get((t.host, t.device)) or _fake(t), cluster_port)
        by_port = "; ".join(f"{p}: {', '.join(sorted(t.host for t in members if t.port == p))}"
                            for p, _ in ports.most_common())
        if tie:
            fix.append(f"# pick one port for every VTEP of VNI {vni} and re-create the others")
            summary = (f"VXLAN VNI {vni}: VTEPs disagree on the UDP port ({by_port}); "
                       "encapsulated traffic between the groups is dropped")
        else:
            names = ", ".join(f"{t.host} ({t.device} dstport {t.port})" for t in odd)
            summary = (f"{names} {'uses' if len(odd) == 1 else 'use'} another VXLAN port than "
                       f"the other VTEPs of VNI {vni} (UDP {cluster_port}: "
                       f"{', '.join(sorted(t.host for t in members if t.port == cluster_port))});"
                       f" their packets reach a port nobody listens on")
        note = OTV_NOTE if OTV_PORT in ports else ""
        findings.append(Finding(
            "VXLAN_PORT_MISMATCH", default_severity("VXLAN_PORT_MISMATCH"), summary,
            Confidence(tuple(sorted(sources))), tuple(dict.fromkeys(evidence)), tuple(fix),
            note=note, hosts=tuple(sorted(t.host for t in odd)),
            subject=f"vni {vni} ports {', '.join(str(p) for p in sorted(ports))}"))
    return findings


def _fake(t) -> Link:
    return Link(t.host, t.device, t.kind, t.mtu, t.port, t.vni, t.local, t.underlay_dev,
                Evidence(t.host, "", "", t.how))


# --- VXLAN_VNI_MISMATCH -------------------------------------------------------------------------

def _vni_mismatch(model, devices: dict) -> list[Finding]:
    """VTEPs joined by their FDB (one names the other's local address) on one port and kind
    whose VNIs differ."""
    by_local = {t.local: t for t in model.tunnels if t.local}
    groups: dict[tuple, set] = {}
    for t in model.tunnels:
        for remote in t.remotes:
            other = by_local.get(remote)
            if other is None or other.host == t.host or other.kind != t.kind or \
                    other.port != t.port:
                continue
            key = (t.kind, t.port)
            groups.setdefault(key, set()).update({t, other})
    findings = []
    for (kind, port), members in sorted(groups.items(), key=str):
        vnis = Counter(t.vni for t in members)
        if len(vnis) < 2:
            continue
        (cluster_vni, top), *rest = vnis.most_common()
        tie = any(n == top for _, n in rest)
        odd = sorted((t for t in members if tie or t.vni != cluster_vni),
                     key=lambda t: (t.host, t.device))
        evidence = [devices[(t.host, t.device)].evidence
                    for t in sorted(members, key=lambda t: (t.host, t.device))
                    if (t.host, t.device) in devices]
        by_vni = "; ".join(f"VNI {v}: {', '.join(sorted(t.host for t in members if t.vni == v))}"
                           for v, _ in vnis.most_common())
        if tie:
            summary = (f"{kind} UDP {port}: the VTEPs disagree on the VNI ({by_vni}); each drops "
                       "the other's packets (no device for that VNI)")
            fix = [f"# pick one VNI for every VTEP on UDP {port} and re-create the others"]
        else:
            names = ", ".join(f"{t.host} ({t.device} id {t.vni})" for t in odd)
            summary = (f"{names} {'uses' if len(odd) == 1 else 'use'} another VNI than the "
                       f"VTEPs {'it sends' if len(odd) == 1 else 'they send'} to on UDP {port} "
                       f"(VNI {cluster_vni}: "
                       f"{', '.join(sorted(t.host for t in members if t.vni == cluster_vni))}); "
                       "the receiving kernel has no device for the VNI and drops the packets "
                       "silently")
            fix = []
            for t in odd:
                link = devices.get((t.host, t.device)) or _fake(t)
                fix += [f"# on {t.host} (the VNI of a {kind} device cannot be changed in place):",
                        f"ip link del {t.device}",
                        f"ip link add {t.device} type {kind} id {cluster_vni} dstport {port}"
                        + (f" local {t.local}" if t.local else "")
                        + (f" dev {t.underlay_dev}" if t.underlay_dev else "") + " nolearning"]
                if link.mtu:
                    fix.append(f"ip link set {t.device} mtu {link.mtu} up")
            fix.append("# then restore its FDB entries (the CNI agent re-creates them when it "
                       f"owns the device: set its VNI to {cluster_vni} — Calico FelixConfiguration "
                       "vxlanVNI, flannel's VNI in net-conf.json)")
        findings.append(Finding(
            "VXLAN_VNI_MISMATCH", default_severity("VXLAN_VNI_MISMATCH"), summary,
            Confidence(("ip-link",)), tuple(dict.fromkeys(evidence)), tuple(fix),
            hosts=tuple(sorted({t.host for t in odd})),
            subject=f"port {port} vnis {', '.join(str(v) for v in sorted(vnis, key=str))}"))
    return findings


# --- OVERLAY_MTU_BLACKHOLE ----------------------------------------------------------------------

def _pod_devices(fib: Fib, model, host: str) -> list[tuple[str, object]]:
    """(device, route) for on-link routes into the pod range / the host's pod CIDR: pod veths."""
    hm = model.hosts[host]
    nets = [ipaddress.ip_network(c, strict=False) for c in (model.pod_range.value,
                                                            hm.pod_cidr.value) if c]
    if not nets:
        return []
    tunnel_devs = {d for (h, d) in fib.vxlan if h == host}
    seen: dict[str, object] = {}
    for route in fib.routes.get((host, "main"), ()):
        if route.type != "unicast" or route.gateway or not route.dev or \
                route.dev in tunnel_devs or route.dev == "lo":
            continue
        if any(route.dst.subnet_of(n) for n in nets if route.dst.version == n.version):
            seen.setdefault(route.dev, route)
    return list(seen.items())


def _oversize_pcap(tables, outputs: OutputIndex, host: str, dev: str, mtu: int
                   ) -> Evidence | None:
    df = tables.get("packets")
    if df is None or df.empty:
        return None
    rows = df[(df["host"] == host) & (df["iface"] == dev) & (df["wirelen"] > mtu + 14)]
    for row in rows.head(1).itertuples(index=False):
        return Evidence(host, outputs.path(host, "capture", ".pcap"), f"frame {row.frame}",
                        f"{row.src} -> {row.dst} {row.wirelen} bytes on {dev} (tunnel MTU {mtu})",
                        int(row.frame))
    return None


def _mtu_blackholes(tables, model, fib: Fib, devices: dict) -> list[Finding]:
    findings = []
    for t in model.tunnels:
        tunnel = devices.get((t.host, t.device))
        if tunnel is None or not tunnel.mtu:
            continue
        problems: list[str] = []
        evidence: list[Evidence] = [tunnel.evidence]
        fix: list[str] = []
        under = devices.get((t.host, t.underlay_dev or ""))
        overhead = OVERHEAD.get(t.kind, 50)
        if under and under.mtu and tunnel.mtu + overhead > under.mtu:
            problems.append(f"{t.device} MTU {tunnel.mtu} + {overhead} bytes of {t.kind} "
                            f"exceeds {under.name} MTU {under.mtu}")
            evidence.append(under.evidence)
            fix.append(f"ip link set dev {t.device} mtu {under.mtu - overhead}")
        # pod devices whose traffic to other nodes goes through this tunnel
        via_tunnel = _others_via(fib, model, t.host, t.device)
        big = []
        if via_tunnel:
            for dev, route in _pod_devices(fib, model, t.host):
                link = devices.get((t.host, dev))
                if link and link.mtu and link.mtu > tunnel.mtu:
                    big.append(link)
                    evidence += [link.evidence, route.evidence]
        for link in big:
            problems.append(f"pod device {link.name} MTU {link.mtu} > {t.device} MTU "
                            f"{tunnel.mtu} (pod traffic to {via_tunnel[0][0]} and others goes "
                            f"through {t.device})")
            fix += [f"ip link set dev {link.name} mtu {tunnel.mtu}",
                    f"# inside the pod behind {link.name}: ip link set dev eth0 mtu {tunnel.mtu}"]
        if not problems:
            continue
        evidence += [e for _, e in via_tunnel[:1]]
        sources = {"ip-link"}
        refused = counter_peak(tables, fib.outputs, t.host, "IpFragFails")
        if refused and refused[0] > 0:
            sources.add("nstat")
            evidence.append(refused[1])
        for link in big:
            pev = _oversize_pcap(tables, fib.outputs, t.host, link.name, tunnel.mtu)
            if pev:
                sources.add("pcap")
                evidence.append(pev)
        fix.append("# and set the CNI's MTU to match (Calico FelixConfiguration vxlanMTU, "
                   "Cilium --mtu), so new pods get it")
        seen = len(sources) > 1
        findings.append(Finding(
            "OVERLAY_MTU_BLACKHOLE",
            default_severity("OVERLAY_MTU_BLACKHOLE") if seen else "warning",
            f"{t.host}: full-size packets do not fit {t.device}: " + "; ".join(problems),
            Confidence(tuple(sorted(sources))), tuple(dict.fromkeys(evidence)), tuple(fix),
            severity_reason=("packets are already refused: "
                             + " and ".join(_SEEN[s] for s in sorted(sources) if s in _SEEN)
                             + " (each DF packet is answered by ICMP frag-needed; when that "
                             "ICMP is lost the sender never lowers its path MTU)")
            if seen else "configuration only: full-size packets now depend on ICMP "
            "frag-needed reaching the sender (no refused packets counted)",
            hosts=(t.host,), subject=t.device))
    return findings


def _others_via(fib: Fib, model, host: str, device: str) -> list[tuple[str, Evidence]]:
    """Other nodes whose pod CIDR this host reaches through ``device``."""
    out = []
    for other in model.nodes():
        cidr = other.pod_cidr.value
        if other.name == host or not cidr:
            continue
        net = ipaddress.ip_network(cidr, strict=False)
        probe = str(net.network_address + (1 if net.num_addresses > 2 else 0))
        lk = lookup(fib, host, probe)
        if lk.type == "unicast" and lk.dev == device and lk.route is not None:
            out.append((other.name, lk.route.evidence))
    return out


def analyze(tables, model, fib: Fib) -> tuple[list[Finding], list[Check]]:
    devices = links(tables, fib.outputs)
    checks: list[Check] = []
    names = ("VXLAN ports agree (VXLAN_PORT_MISMATCH)",
             "pods and tunnels fit the underlay MTU (OVERLAY_MTU_BLACKHOLE)",
             "VTEPs that send to each other use one VNI (VXLAN_VNI_MISMATCH)")
    if tables["interfaces"].empty:
        return [], [Check(n, None, needs="`ip -d -j link` from every node (diag collect)")
                    for n in names]
    if not model.tunnels:           # links collected, none is an overlay: nothing can disagree
        return [], [Check(n, True, "no overlay device (native routing)") for n in names]
    ports = _port_mismatch(tables, fib.outputs, model, devices)
    used = sorted({t.port for t in model.tunnels if t.port})
    detail = f"ports {', '.join(map(str, used))}"
    if OTV_PORT in used:
        detail += " (" + OTV_NOTE + ")"
    checks.append(Check(names[0], not ports, detail))
    mtu = _mtu_blackholes(tables, model, fib, devices)
    checks.append(Check(names[1], not mtu,
                        ", ".join(f"{t.host} {t.device} mtu {t.mtu}" for t in model.tunnels)))
    vnis = _vni_mismatch(model, devices)
    checks.append(Check(names[2], not vnis,
                        ", ".join(f"{t.host} {t.device} id {t.vni}" for t in model.tunnels)))
    return ports + vnis + mtu, checks
