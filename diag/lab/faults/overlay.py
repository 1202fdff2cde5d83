"""Overlay faults (``--mode vxlan``): VTEPs on different UDP ports, an MTU black hole.

Contract: :data:`FAULTS` as in :mod:`diag.lab.faults.base`. Symptoms are proven with real
pod-to-pod pings, ``ip -d -j link``, kernel UDP counters and an nftables counter.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from diag.lab import plan as P
from diag.lab.faults import probes
from diag.lab.faults.base import (ALL, Fault, background, bounded_ping, in_ns, in_pod, ip_lines,
                                  roles)
from diag.lab.network import vxlan_fdb_lines, vxlan_lines
from diag.lab.system import run

if TYPE_CHECKING:
    from diag.lab import Lab

IANA_VXLAN_PORT = 4789
NFT_TABLE = "diag_fault"
BIG = 1472            # ICMP payload of a 1500-byte IPv4 packet


# --- vxlan-port-mismatch ------------------------------------------------------------------------

def vxlan_port(lab: "Lab", node: str) -> int | None:
    dev = P.vxlan_device_name(lab.cni)
    proc = in_ns(lab, node, ["ip", "-d", "-j", "link", "show", "dev", dev])
    try:
        return json.loads(proc.stdout)[0]["linkinfo"]["info_data"]["port"]
    except (json.JSONDecodeError, IndexError, KeyError):
        return None


def _recreate_vtep(lab: "Lab", node: str, port: int, vni: int = P.VXLAN_VNI) -> None:
    host = lab.plan.host(node)
    ip_lines(lab, node, [f"link del {P.vxlan_device_name(lab.cni)}"])
    run(["ip", "-n", lab.netns(node), "-batch", "-"],
        input="\n".join(vxlan_lines(lab.plan, host, lab.cni, port, vni)) + "\n")
    run(["bridge", "-n", lab.netns(node), "-batch", "-"],
        input="\n".join(vxlan_fdb_lines(lab.plan, host, lab.cni)) + "\n")


def _port_inject(lab: "Lab") -> dict:
    r = roles(lab)
    baseline = probes.nstat(lab, r.remote.name, "UdpNoPorts")["UdpNoPorts"]
    _recreate_vtep(lab, r.remote.name, IANA_VXLAN_PORT)
    background(lab, "vxlan-ping", r.node.name, bounded_ping(r.remote.pod_ip), pod=True)
    return {"node": r.remote.name, "port": IANA_VXLAN_PORT, "udp_noports_before": baseline}


def _port_heal(lab: "Lab") -> None:
    r = roles(lab)
    if vxlan_port(lab, r.remote.name) != P.VXLAN_PORT:
        _recreate_vtep(lab, r.remote.name, P.VXLAN_PORT)


def _port_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    ports = {n.name: vxlan_port(lab, n.name) for n in lab.plan.nodes}
    if ports[r.remote.name] != IANA_VXLAN_PORT:
        return None
    from diag.lab.faults import state

    active = state.read(lab)
    before = int(active.data.get("udp_noports_before", 0)) if active else 0
    if not probes.pod_ping_fails(lab, r.node.name, r.remote.name, count=2, deadline=2):
        return None
    unreachable = probes.nstat(lab, r.remote.name, "UdpNoPorts")["UdpNoPorts"] - before
    if unreachable < 1:
        return None
    return ["vxlan ports: " + ", ".join(f"{n} {p}" for n, p in ports.items()),
            f"{r.remote.name}: UDP to port {P.VXLAN_PORT} finds no socket (UdpNoPorts "
            f"+{unreachable}); ICMP port unreachable goes back",
            f"ping {r.node.name} pod -> {r.remote.name} pod fails"]


def _port_healthy(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    if any(vxlan_port(lab, n.name) != P.VXLAN_PORT for n in lab.plan.nodes):
        return None
    if not (probes.pod_ping(lab, r.node.name, r.remote.name, count=1)
            and probes.pod_ping(lab, r.remote.name, r.node.name, count=1)):
        return None
    return [f"every VTEP on UDP {P.VXLAN_PORT}; pods {r.node.name} <-> {r.remote.name} ping"]


# --- overlay-mtu-blackhole ----------------------------------------------------------------------

def _pod_mtu(lab: "Lab", node: str, mtu: int) -> None:
    ip_lines(lab, node, [f"link set {P.pod_veth_name(lab.cni)} mtu {mtu}"], check=True)
    in_pod(lab, node, ["ip", "link", "set", "eth0", "mtu", str(mtu)], check=True)


def _mtu_inject(lab: "Lab") -> dict:
    r = roles(lab)
    _pod_mtu(lab, r.node.name, 1500)
    rules = (f"table inet {NFT_TABLE} {{\n chain input {{\n"
             "  type filter hook input priority 0;\n"
             "  icmp type destination-unreachable icmp code frag-needed counter drop\n }\n}\n")
    run(["ip", "netns", "exec", lab.hosts[r.node.name].pod_netns, "nft", "-f", "-"], input=rules)
    background(lab, "mtu-ping", r.node.name, bounded_ping(r.remote.pod_ip, size=BIG, df=True),
               pod=True)
    # small pings between the same pods beside the big ones: a capture on the receiver shows
    # the path working below the tunnel's MTU (the two-ended proof of the blackhole)
    background(lab, "mtu-small-ping", r.node.name, bounded_ping(r.remote.pod_ip), pod=True)
    return {"node": r.node.name, "pod_mtu": 1500, "tunnel_mtu": P.VXLAN_MTU}


def _mtu_heal(lab: "Lab") -> None:
    r = roles(lab)
    in_pod(lab, r.node.name, ["nft", "delete", "table", "inet", NFT_TABLE])
    _pod_mtu(lab, r.node.name, P.VXLAN_MTU)


def _frag_needed_dropped(lab: "Lab", node: str) -> int:
    proc = in_pod(lab, node, ["nft", "-j", "list", "table", "inet", NFT_TABLE])
    return probes.nft_counted_packets(proc.stdout)


def _mtu_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    if not probes.pod_ping(lab, r.node.name, r.remote.name, count=1):
        return None                                         # small packets must still work
    if not probes.pod_ping_fails(lab, r.node.name, r.remote.name, size=BIG, df=True, count=2,
                                 deadline=2):
        return None
    dropped = _frag_needed_dropped(lab, r.node.name)
    if dropped < 1:
        return None
    return [f"{r.node.name} pod MTU 1500 over a {P.VXLAN_MTU}-byte VXLAN tunnel",
            f"ping -s {BIG} -M do {r.node.name} pod -> {r.remote.name} pod fails; small pings work",
            f"{r.node.name} pod: {dropped} ICMP frag-needed dropped before PMTU discovery saw them"]


def _mtu_healthy(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    fits = P.VXLAN_MTU - 28
    if not probes.pod_ping(lab, r.node.name, r.remote.name, size=fits, df=True, count=1):
        return None
    proc = in_pod(lab, r.node.name, ["nft", "list", "table", "inet", NFT_TABLE])
    if proc.returncode == 0:
        return None
    return [f"{r.node.name} pod MTU {P.VXLAN_MTU}; ping -s {fits} -M do to {r.remote.name} pod ok"]


FAULTS = [
    Fault("vxlan-port-mismatch",
          "pod traffic to and from k8s-w0 (VXLAN dropped at the receiver)",
          f"k8s-w0's vxlan device re-created on UDP {IANA_VXLAN_PORT}, the others stay on "
          f"{P.VXLAN_PORT}",
          "VXLAN_PORT_MISMATCH", ALL, ("vxlan",),
          _port_inject, _port_heal, _port_symptom, _port_healthy),
    Fault("overlay-mtu-blackhole",
          "full-size packets from k8s-ctr's pod (small ones pass)",
          f"k8s-ctr's pod MTU 1500 over the {P.VXLAN_MTU}-byte tunnel; an nftables rule in the pod "
          "drops ICMP frag-needed, so PMTU discovery never learns (no netem needed)",
          "OVERLAY_MTU_BLACKHOLE", ALL, ("vxlan",),
          _mtu_inject, _mtu_heal, _mtu_symptom, _mtu_healthy),
]
