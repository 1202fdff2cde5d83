"""Overlay faults located from both ends (``--mode vxlan``): where a tunnelled flow dies.

Contract: :data:`FAULTS` as in :mod:`diag.lab.faults.base`. Every fault breaks the tunnel from
k8s-ctr's pod to k8s-w0's pod (the node behind the router) somewhere else on the datapath, so
that only captures on both ends tell the faults apart; k8s-ctr <-> k8s-w1 (one subnet, no router
between) keeps working. Symptoms are proven with real pings and TCP connects between the pods,
``ip -d -j link``, nftables counters and the pods' own kernel counters.

- ``overlay-udp-blocked``: the router's forward path drops UDP to the tunnel port towards k8s-w0's
  underlay (a firewall between the nodes: the packets leave k8s-ctr and never reach k8s-w0);
  k8s-ctr's node pings k8s-w0's node meanwhile (other traffic passes). A drop on a node itself
  would hide the evidence: tcpdump sees a packet before netfilter's input hooks and after its
  output hooks, so only a drop between the two captures shows as "left one, never reached the
  other".
- ``vxlan-vni-mismatch``: k8s-w0's vxlan device re-created with another VNI (same port, MAC,
  FDB): k8s-ctr's packets arrive and are dropped silently (no device for the VNI, no ICMP).
- ``overlay-checksum-broken``: the router rewrites two bytes of the inner TCP header (the urgent
  pointer, an nftables ``@ih`` payload statement on VXLAN with an inner TCP packet) without
  fixing the checksum; the pods' veths stop offloading checksums (``ethtool -K eth0 tx off rx
  off`` in both pods), so the sender writes complete checksums (good on k8s-ctr's underlay) and
  the receiving pod's kernel really verifies them (bad on k8s-w0's underlay, dropped, its
  TcpInCsumErrors rises) — over veths a kernel otherwise trusts checksums it never verified.
  ICMP passes.
- ``overlay-drop-after-decap``: nftables on k8s-w0 drops what its vxlan device hands to the
  pod's veth (forward chain; as a network policy would): decapsulated, never delivered.
"""
from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING

from diag.lab import plan as P
from diag.lab.faults import probes
from diag.lab.faults.base import ALL, Fault, background, bounded_ping, in_ns, in_pod, roles
from diag.lab.faults.overlay import NFT_TABLE, _recreate_vtep, vxlan_port
from diag.lab.system import run

if TYPE_CHECKING:
    from diag.lab import Lab

OTHER_VNI = P.VXLAN_VNI + 1
TCP_PORT = 8080
# VXLAN payload (after the outer UDP header): VXLAN 8 + inner Ethernet 14, then inner IPv4 (the
# lab's pods send 20-byte headers): protocol at byte 31, the TCP urgent pointer at 22 + 20 + 18
INNER_PROTO_BITS = (8 + 14 + 9) * 8
URGENT_POINTER_BITS = (8 + 14 + 20 + 18) * 8
CORRUPT = "0x1234"
__all__ = ["FAULTS", "TCP_PORT", "OTHER_VNI"]


def _nft(lab: "Lab", host: str, rules: str) -> None:
    run(["ip", "netns", "exec", lab.netns(host), "nft", "-f", "-"], input=rules, check=True)


def _nft_drop_table(lab: "Lab", host: str) -> None:
    in_ns(lab, host, ["nft", "delete", "table", "inet", NFT_TABLE])


def _nft_counted(lab: "Lab", host: str) -> int:
    proc = in_ns(lab, host, ["nft", "-j", "list", "table", "inet", NFT_TABLE])
    return probes.nft_counted_packets(proc.stdout) if proc.returncode == 0 else 0


def _nft_present(lab: "Lab", host: str) -> bool:
    return in_ns(lab, host, ["nft", "list", "table", "inet", NFT_TABLE]).returncode == 0


def _node_ping(lab: "Lab", src: str, dst: str) -> bool:
    proc = in_ns(lab, src, ["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", "-w", "2",
                            lab.plan.host(dst).ip], timeout=8)
    return proc.returncode == 0


def _pods_ping_both_ways(lab: "Lab", a: str, b: str) -> bool:
    return probes.pod_ping(lab, a, b, count=1) and probes.pod_ping(lab, b, a, count=1)


# --- overlay-udp-blocked ------------------------------------------------------------------------

def _blocked_inject(lab: "Lab") -> dict:
    r = roles(lab)
    towards = lab.plan.router_nic_for(r.remote).name
    _nft(lab, lab.plan.router.name,
         f"table inet {NFT_TABLE} {{\n chain forward {{\n"
         "  type filter hook forward priority 0;\n"
         f"  oifname {towards} udp dport {P.VXLAN_PORT} counter drop\n }}\n}}\n")
    background(lab, "blocked-ping", r.node.name, bounded_ping(r.remote.pod_ip), pod=True)
    background(lab, "node-ping", r.node.name, bounded_ping(r.remote.ip))
    return {"router_nic": towards, "port": P.VXLAN_PORT}


def _blocked_heal(lab: "Lab") -> None:
    _nft_drop_table(lab, lab.plan.router.name)


def _blocked_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    if not probes.pod_ping_fails(lab, r.node.name, r.remote.name, count=2, deadline=2):
        return None
    if not _node_ping(lab, r.node.name, r.remote.name):
        return None                                    # only the tunnel port is blocked
    if not probes.pod_ping(lab, r.node.name, r.neighbor.name, count=1):
        return None                                    # no router between: unaffected
    dropped = _nft_counted(lab, lab.plan.router.name)
    if dropped < 1:
        return None
    return [f"ping {r.node.name} pod -> {r.remote.name} pod fails; {r.node.name} -> "
            f"{r.remote.name} node ping works; {r.node.name} pod -> {r.neighbor.name} pod works",
            f"router: {dropped} packets to UDP {P.VXLAN_PORT} towards {r.remote.name} dropped "
            "(nft counter)"]


def _blocked_healthy(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    if _nft_present(lab, lab.plan.router.name):
        return None
    if not _pods_ping_both_ways(lab, r.node.name, r.remote.name):
        return None
    return [f"no nftables table on the router; pods {r.node.name} <-> {r.remote.name} ping"]


# --- vxlan-vni-mismatch -------------------------------------------------------------------------

def vxlan_vni(lab: "Lab", node: str) -> int | None:
    proc = in_ns(lab, node, ["ip", "-d", "-j", "link", "show", "dev",
                             P.vxlan_device_name(lab.cni)])
    try:
        return json.loads(proc.stdout)[0]["linkinfo"]["info_data"]["id"]
    except (json.JSONDecodeError, IndexError, KeyError):
        return None


def _vni_inject(lab: "Lab") -> dict:
    r = roles(lab)
    _recreate_vtep(lab, r.remote.name, P.VXLAN_PORT, vni=OTHER_VNI)
    background(lab, "vni-ping", r.node.name, bounded_ping(r.remote.pod_ip), pod=True)
    return {"node": r.remote.name, "vni": OTHER_VNI}


def _vni_heal(lab: "Lab") -> None:
    r = roles(lab)
    if vxlan_vni(lab, r.remote.name) != P.VXLAN_VNI or \
            vxlan_port(lab, r.remote.name) != P.VXLAN_PORT:
        _recreate_vtep(lab, r.remote.name, P.VXLAN_PORT)


def _vni_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    vnis = {n.name: vxlan_vni(lab, n.name) for n in lab.plan.nodes}
    if vnis[r.remote.name] != OTHER_VNI or \
            any(v != P.VXLAN_VNI for n, v in vnis.items() if n != r.remote.name):
        return None
    if vxlan_port(lab, r.remote.name) != P.VXLAN_PORT:
        return None
    if not probes.pod_ping_fails(lab, r.node.name, r.remote.name, count=2, deadline=2):
        return None
    if not probes.pod_ping(lab, r.node.name, r.neighbor.name, count=1):
        return None
    return ["vxlan ids: " + ", ".join(f"{n} {v}" for n, v in vnis.items())
            + f" (all on UDP {P.VXLAN_PORT})",
            f"ping {r.node.name} pod -> {r.remote.name} pod fails; -> {r.neighbor.name} pod works"]


def _vni_healthy(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    if any(vxlan_vni(lab, n.name) != P.VXLAN_VNI for n in lab.plan.nodes):
        return None
    if not _pods_ping_both_ways(lab, r.node.name, r.remote.name):
        return None
    return [f"every VTEP on VNI {P.VXLAN_VNI}; pods {r.node.name} <-> {r.remote.name} ping"]


# --- overlay-checksum-broken --------------------------------------------------------------------

def _offload(lab: "Lab", node: str, state: str) -> None:
    in_pod(lab, node, ["ethtool", "-K", "eth0", "tx", state, "rx", state], check=True)


def _pod_offload(lab: "Lab", node: str) -> dict[str, str]:
    proc = in_pod(lab, node, ["ethtool", "-k", "eth0"])
    out = {}
    for line in proc.stdout.splitlines():
        name, _, value = line.strip().partition(":")
        if name in ("rx-checksumming", "tx-checksumming"):
            out[name] = value.split()[0] if value.split() else ""
    return out


def tcp_connects(lab: "Lab", src: str, dst: str, *, wait: int = 2) -> bool:
    """A TCP connection from ``src``'s pod to ``dst``'s pod on :data:`TCP_PORT` is accepted."""
    proc = in_pod(lab, src, ["nc", "-z", "-w", str(wait), lab.hosts[dst].pod_ip, str(TCP_PORT)],
                  timeout=wait + 5)
    return proc.returncode == 0


def pod_counter(lab: "Lab", node: str, name: str) -> int:
    proc = in_pod(lab, node, ["nstat", "-asz", name])
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == name and parts[1].isdigit():
            return int(parts[1])
    return 0


def _listener(lab: "Lab", node: str) -> None:
    background(lab, "tcp-listener", node, ["timeout", "300", "nc", "-lk", str(TCP_PORT)],
               pod=True)


def _checksum_inject(lab: "Lab") -> dict:
    r = roles(lab)
    _listener(lab, r.remote.name)
    before = pod_counter(lab, r.remote.name, "TcpInCsumErrors")
    for node in (r.node.name, r.remote.name):
        _offload(lab, node, "off")
    _nft(lab, lab.plan.router.name,
         f"table inet {NFT_TABLE} {{\n chain forward {{\n"
         "  type filter hook forward priority 0;\n"
         f"  udp dport {P.VXLAN_PORT} @ih,{INNER_PROTO_BITS},8 6 counter "
         f"@ih,{URGENT_POINTER_BITS},16 set {CORRUPT}\n }}\n}}\n")
    target = shlex.quote(r.remote.pod_ip)
    # a new connection every half second (each SYN its own flow): a short capture holds several
    background(lab, "tcp-connects", r.node.name,
               ["timeout", "300", "sh", "-c",
                f"while :; do timeout 0.4 nc -z -w 1 {target} {TCP_PORT}; sleep 0.1; done"],
               pod=True)
    background(lab, "checksum-ping", r.node.name, bounded_ping(r.remote.pod_ip), pod=True)
    return {"csum_errors_before": before, "tcp_port": TCP_PORT}


def _checksum_heal(lab: "Lab") -> None:
    r = roles(lab)
    _nft_drop_table(lab, lab.plan.router.name)
    for node in (r.node.name, r.remote.name):
        in_pod(lab, node, ["ethtool", "-K", "eth0", "tx", "on", "rx", "on"])


def _checksum_symptom(lab: "Lab") -> list[str] | None:
    from diag.lab.faults import state

    r = roles(lab)
    active = state.read(lab)
    before = int(active.data.get("csum_errors_before", 0)) if active else 0
    if tcp_connects(lab, r.node.name, r.remote.name):
        return None
    if not probes.pod_ping(lab, r.node.name, r.remote.name, count=1):
        return None                                        # ICMP must pass
    errors = pod_counter(lab, r.remote.name, "TcpInCsumErrors") - before
    rewritten = _nft_counted(lab, lab.plan.router.name)
    if errors < 1 or rewritten < 1:
        return None
    offload = {n: _pod_offload(lab, n) for n in (r.node.name, r.remote.name)}
    return [f"TCP {r.node.name} pod -> {r.remote.name} pod :{TCP_PORT} fails; ping passes",
            f"router: {rewritten} inner TCP headers rewritten (nft @ih counter)",
            f"{r.remote.name} pod: TcpInCsumErrors +{errors}",
            "pod eth0 offload: " + "; ".join(f"{n} {', '.join(f'{k} {v}' for k, v in o.items())}"
                                              for n, o in offload.items())]


def _checksum_healthy(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    if _nft_present(lab, lab.plan.router.name):
        return None
    if any(v != "on" for n in (r.node.name, r.remote.name)
           for v in _pod_offload(lab, n).values()):
        return None
    _listener(lab, r.remote.name)
    if not tcp_connects(lab, r.node.name, r.remote.name):
        return None
    lab.daemons.stop("fault/tcp-listener")
    return [f"TCP {r.node.name} pod -> {r.remote.name} pod :{TCP_PORT} connects; pod offload on"]


# --- overlay-drop-after-decap -------------------------------------------------------------------

def _decap_inject(lab: "Lab") -> dict:
    r = roles(lab)
    dev, veth = P.vxlan_device_name(lab.cni), P.pod_veth_name(lab.cni)
    _nft(lab, r.remote.name,
         f"table inet {NFT_TABLE} {{\n chain forward {{\n"
         "  type filter hook forward priority 0;\n"
         f"  iifname {dev} oifname {veth} counter drop\n }}\n}}\n")
    background(lab, "decap-ping", r.node.name, bounded_ping(r.remote.pod_ip), pod=True)
    return {"node": r.remote.name, "from": dev, "to": veth}


def _decap_heal(lab: "Lab") -> None:
    _nft_drop_table(lab, roles(lab).remote.name)


def _decap_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    if not probes.pod_ping_fails(lab, r.node.name, r.remote.name, count=2, deadline=2):
        return None
    dropped = _nft_counted(lab, r.remote.name)
    if dropped < 1:
        return None
    if not probes.pod_ping(lab, r.node.name, r.neighbor.name, count=1):
        return None
    return [f"ping {r.node.name} pod -> {r.remote.name} pod fails",
            f"{r.remote.name}: {dropped} packets from {P.vxlan_device_name(lab.cni)} to "
            f"{P.pod_veth_name(lab.cni)} dropped in the forward chain (nft counter)"]


def _decap_healthy(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    if _nft_present(lab, r.remote.name):
        return None
    if not _pods_ping_both_ways(lab, r.node.name, r.remote.name):
        return None
    return [f"no nftables table on {r.remote.name}; pods {r.node.name} <-> {r.remote.name} ping"]


FAULTS = [
    Fault("overlay-udp-blocked",
          "pod traffic from k8s-ctr/k8s-w1 to k8s-w0 (the tunnel port is dropped on the way)",
          f"the router's forward path drops UDP {P.VXLAN_PORT} towards k8s-w0 (nftables); "
          "node-to-node pings still pass",
          "OVERLAY_UDP_BLOCKED", ALL, ("vxlan",),
          _blocked_inject, _blocked_heal, _blocked_symptom, _blocked_healthy),
    Fault("vxlan-vni-mismatch",
          "pod traffic to and from k8s-w0 (VXLAN dropped silently at the receiver)",
          f"k8s-w0's vxlan device re-created with VNI {OTHER_VNI}, the others stay on "
          f"{P.VXLAN_VNI} (same port {P.VXLAN_PORT}, MAC, FDB)",
          "VXLAN_VNI_MISMATCH", ALL, ("vxlan",),
          _vni_inject, _vni_heal, _vni_symptom, _vni_healthy),
    Fault("overlay-checksum-broken",
          "TCP between the pods of k8s-ctr and k8s-w0 (ICMP passes)",
          "the router rewrites the inner TCP urgent pointer of VXLAN packets (nftables @ih), "
          "checksum unchanged; the pods' eth0 checksum offload off (ethtool), so the receiving "
          "kernel verifies",
          "OVERLAY_CHECKSUM_OFFLOAD", ALL, ("vxlan",),
          _checksum_inject, _checksum_heal, _checksum_symptom, _checksum_healthy),
    Fault("overlay-drop-after-decap",
          "pod traffic into k8s-w0's pod (decapsulated, then dropped)",
          "nftables on k8s-w0 drops its vxlan device -> pod veth forward path (like a network "
          "policy)",
          "OVERLAY_DROP_AFTER_DECAP", ALL, ("vxlan",),
          _decap_inject, _decap_heal, _decap_symptom, _decap_healthy),
]
