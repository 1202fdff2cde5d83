"""Overlay faults as the captures show them, for captures without the hosts' link state.

Contract: :func:`analyze(tables, model) -> (findings, checks)`; pure, no I/O. Runs only when the
cluster model knows no tunnel devices (a bare capture, or a bundle without ``ip -d -j link``):
with them, :mod:`diag.analyze.overlay` decides from configuration and cites packets itself.
Reads the ``icmp`` table (ICMP errors with the packet they quote) and ``wire_tunnels``.

- ``VXLAN_PORT_MISMATCH``: a VTEP answers VXLAN (UDP to a VXLAN port: 4789, 8472 or a port the
  capture's tunnels use) with ICMP port unreachable — nothing listens on that port there. When the
  same VTEP is seen sending VXLAN itself, the port it sends to is named: the VTEPs disagree.
- ``OVERLAY_MTU_BLACKHOLE``: ICMP frag-needed / packet-too-big about tunnel traffic (the quoted
  packet is VXLAN/GENEVE) or about packets inside the tunnel: the path cannot carry full-size
  packets. ``error`` when the same sender gets it three times or more for one destination (it
  is not lowering its path MTU: the ICMP does not reach or convince it), else ``warning``.
"""
from __future__ import annotations

from collections import defaultdict

from diag.analyze.captures import capture_files, frame_evidence
from diag.analyze.catalog import default_severity
from diag.words import counted
from diag.model import Check, Confidence, Finding

VXLAN_PORTS = frozenset((4789, 8472))
GENEVE_PORTS = frozenset((6081,))
REPEATED = 3
WIRE_DEVICE = "(wire)"          # a tunnel endpoint the model only knows from packets
CHECK_PORT = "VXLAN answered, not refused, by the VTEPs in the captures"
CHECK_MTU = "no ICMP frag-needed about overlay traffic in the captures"


def _name(model, ip) -> str:
    host = model.host_of_ip(str(ip)) if model is not None else None
    return f"{host} ({ip})" if host else str(ip)


def _tunnel_ports(tables) -> tuple[set[int], dict[str, set[int]]]:
    """(every UDP port the capture's VXLAN uses, {VTEP address: ports it sends VXLAN to})."""
    tunnels = tables.get("wire_tunnels")
    ports: set[int] = set()
    sends: dict[str, set[int]] = defaultdict(set)
    if tunnels is None or tunnels.empty or "outer_dport" not in tunnels:
        return ports, sends
    vx = tunnels[tunnels["type"] == "vxlan"]
    for src, dport in zip(vx["outer_src"], vx["outer_dport"]):
        if dport is not None and dport == dport:
            ports.add(int(dport))
            sends[str(src)].add(int(dport))
    return ports, sends


def _port_findings(tables, model, icmp, files) -> list[Finding]:
    seen_ports, sends = _tunnel_ports(tables)
    vxlan_ports = VXLAN_PORTS | seen_ports
    refused = icmp[(icmp["orig_proto"] == 17) & icmp["orig_dport"].isin(list(vxlan_ports))
                   & (((icmp["l3"] == "ipv4") & (icmp["type"] == 3) & (icmp["code"] == 3))
                      | ((icmp["l3"] == "ipv6") & (icmp["type"] == 1) & (icmp["code"] == 4)))]
    groups: dict[frozenset, list] = defaultdict(list)     # the VTEPs involved -> refusals
    for (vtep, port), rows in refused.groupby(["src", "orig_dport"], sort=True):
        involved = frozenset({str(vtep)} | {str(x) for x in rows["dst"]})
        groups[involved].append((str(vtep), int(port), rows))
    findings = []
    for involved, refusals in sorted(groups.items(), key=lambda kv: sorted(kv[0])):
        ev, parts, ports = [], [], set()
        for vtep, port, rows in refusals:
            own = sorted(sends.get(vtep, set()) - {port})
            ports |= {port, *own}
            senders = sorted({str(x) for x in rows["dst"]})
            parts.append(f"{_name(model, vtep)} refuses VXLAN on UDP {port} from "
                         f"{', '.join(_name(model, x) for x in senders)} ({len(rows)} ICMP port "
                         "unreachable)" + (f" and sends its own to UDP "
                                           f"{', '.join(map(str, own))}" if own else ""))
            ev += [frame_evidence(files, r, f"ICMP port unreachable from {_name(model, vtep)} for UDP "
                                 f"{r.orig_src} -> {r.orig_dst}:{port}")
                   for r in rows.head(2).itertuples(index=False)]
        first_port = refusals[0][1]
        fix = (f"# make every VTEP use one UDP port ({' or '.join(map(str, sorted(ports)))}): "
               "re-create the odd vxlan device with the cluster's port (ip link add ... type "
               f"vxlan ... dstport {first_port}: a vxlan port cannot be changed in place) and "
               "set the CNI's tunnel port setting to the same value on every node",)
        findings.append(Finding(
            "VXLAN_PORT_MISMATCH", default_severity("VXLAN_PORT_MISMATCH"),
            "; ".join(parts) + (": the VTEPs disagree on the port" if len(ports) > 1 else ""),
            Confidence(("pcap",)), tuple(ev), fix,
            severity_reason="VXLAN answered with port unreachable: nothing listens on that port",
            note=("tcpdump prints UDP port 8472 as \"OTV\" (its IANA name); Linux, flannel, "
                  "Cilium and Calico use it for VXLAN") if 8472 in ports else "",
            hosts=tuple(sorted({h for ip in involved
                                for h in [model.host_of_ip(ip) if model else None] if h})),
            subject=" ".join(sorted(involved))))
    return findings


def _mtu_findings(tables, model, icmp, files) -> list[Finding]:
    too_big = icmp[icmp["mtu"].notna()]
    if too_big.empty:
        return []
    overlay = too_big[(too_big["tunnel_depth"] > 0)
                      | ((too_big["orig_proto"] == 17)
                         & too_big["orig_dport"].isin(list(VXLAN_PORTS | GENEVE_PORTS)))]
    findings = []
    for (sender, target), rows in overlay.groupby(["dst", "orig_dst"], sort=True):
        mtu = int(rows["mtu"].min())
        repeated = len(rows) >= REPEATED
        ev = [frame_evidence(files, r, f"{r.type_name} from {r.src}: MTU {int(r.mtu)} for "
                            f"{r.orig_src} -> {r.orig_dst}"
                            + (" (inside the tunnel)" if r.tunnel_depth else ""))
              for r in rows.head(3).itertuples(index=False)]
        severity = default_severity("OVERLAY_MTU_BLACKHOLE") if repeated else "warning"
        findings.append(Finding(
            "OVERLAY_MTU_BLACKHOLE", severity,
            f"{_name(model, sender)} sends overlay packets to {_name(model, target)} bigger than "
            f"the path carries (MTU {mtu}; {counted(len(rows), 'ICMP error')})", Confidence(("pcap",)),
            tuple(ev),
            (f"# lower the pod/tunnel MTU on {_name(model, sender)} to fit {mtu} "
             f"(VXLAN needs 50 bytes: pod MTU <= {mtu - 50}), e.g. ip link set DEV mtu "
             f"{mtu - 50}; set the CNI's MTU setting to match",),
            severity_reason=(f"{len(rows)} frag-needed for one destination: the sender does not "
                             "lower its path MTU" if repeated else
                             "frag-needed seen; path MTU discovery may still recover"),
            hosts=tuple(h for h in [model.host_of_ip(str(sender)) if model else None] if h),
            subject=f"{sender} {target}"))
    return findings


def analyze(tables, model) -> tuple[list[Finding], list[Check]]:
    if model is not None and any(t.device != WIRE_DEVICE for t in getattr(model, "tunnels", ())):
        return [], []                 # overlay.py decides from the devices and cites packets
    icmp = tables.get("icmp")
    if icmp is None or "type" not in icmp:
        return [], []
    files = capture_files(tables)
    findings = _port_findings(tables, model, icmp, files) + _mtu_findings(tables, model, icmp,
                                                                             files)
    checks = [Check(CHECK_PORT, not any(f.code == "VXLAN_PORT_MISMATCH" for f in findings),
                    f"{counted(len(icmp), 'ICMP error')} in the captures"),
              Check(CHECK_MTU, not any(f.code == "OVERLAY_MTU_BLACKHOLE" for f in findings))]
    return findings, checks


__all__ = ["analyze"]
