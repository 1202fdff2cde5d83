"""BGP faults: sessions that cannot come up or stay up, and routes that are refused or never sent.

Contract: :data:`FAULTS` as in :mod:`diag.lab.faults.base`. Symptoms come from the daemons' own
state (FRR JSON, GoBGP JSON, BIRD CLI), the kernel's sockets and counters (``ss``, ``nstat``),
nftables counters and tcpdump; healthy means every session Established again and the routes back.
Node-side configuration faults re-render the daemon's config (:class:`~diag.lab.BgpOptions`) and
restart it; router-side ones change FRR live through vtysh (:mod:`diag.lab.faults.routerconf`).
"""
from __future__ import annotations

import json
import os
import secrets
import signal
from dataclasses import replace
from typing import TYPE_CHECKING

from diag.lab.faults import probes, routerconf
from diag.lab.faults.base import ALL, BOTH_MODES, Fault, in_ns, roles
from diag.lab.plan import MD5_PEER
from diag.lab.system import is_alive, proc_stat, run

if TYPE_CHECKING:
    from diag.lab import Lab

NFT_TABLE = "diag_fault"


def _daemon_key(lab: "Lab", node: str) -> str:
    return f"{node}/{'gobgpd' if lab.cni == 'cilium' else 'bird'}"


def _down(lab: "Lab", node: str) -> tuple[str, str] | None:
    """Both ends of node's session not Established (None while either still is)."""
    router_view, node_view = probes.session_states(lab, node)
    if "Established" in (router_view, node_view):
        return None
    return router_view, node_view


def _restore_node_config(lab: "Lab", node: str) -> None:
    if not lab.files.bgp_config_is(node):
        lab.daemons.restart_bgp(node)


def _session_back(lab: "Lab") -> list[str] | None:
    """Every session Established, the routes back, and no handshake on :179 left half-open
    anywhere (a router keeps the SYN-RECV of handshakes it answered while a block dropped them
    for up to a minute: a fault applied next must not show them as its own evidence)."""
    ok = probes.all_established(lab)
    if not ok or not lab.daemons.routes_ready() or probes.lab_half_open_179(lab):
        return None
    return ok + ["every node holds the others' pod CIDRs",
                 "no TCP handshake on :179 half-open"]


def _notification(lab: "Lab", node: str, code: str, words: str) -> str | None:
    """The router's record of the last NOTIFICATION on node's session, if it is ``code``
    ("0202") or mentions ``words``."""
    info = probes.frr_neighbor(lab, lab.hosts[node].cluster_ip)
    text = json.dumps({k: info[k] for k in ("lastErrorCodeSubcode", "lastNotificationReason",
                                            "lastResetDueTo") if k in info})
    if code in text or words.lower() in text.lower():
        return text
    return None


# --- bgp-transport-blocked ----------------------------------------------------------------------

def _blocked_inject(lab: "Lab") -> dict:
    node = roles(lab).node.name
    rules = (f"table inet {NFT_TABLE} {{\n chain input {{\n"
             "  type filter hook input priority 0;\n"
             "  tcp dport 179 counter drop\n  tcp sport 179 counter drop\n }\n}\n")
    run(["ip", "netns", "exec", lab.netns(node), "nft", "-f", "-"], input=rules)
    # the established session would only notice at its hold timer: abort its socket now (the
    # kernel sends an RST that the router receives); reconnecting is what the rule blocks
    in_ns(lab, node, ["ss", "-K", "( sport = :179 or dport = :179 )"])
    return {"node": node}


def _blocked_heal(lab: "Lab") -> None:
    in_ns(lab, roles(lab).node.name, ["nft", "delete", "table", "inet", NFT_TABLE])


def _nft_drops(lab: "Lab", node: str) -> int:
    proc = in_ns(lab, node, ["nft", "-j", "list", "table", "inet", NFT_TABLE])
    return probes.nft_counted_packets(proc.stdout)


def _blocked_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    down = _down(lab, r.node.name)
    if down is None:
        return None
    router_syn = [p for p in probes.syn_sent_to_179(lab, lab.plan.router.name)
                  if p.startswith(r.node.ip + ":")]
    node_syn = probes.syn_sent_to_179(lab, r.node.name)
    drops = _nft_drops(lab, r.node.name)
    if not (router_syn or node_syn) or drops < 1:
        return None
    return [f"session router <-> {r.node.name}: router {down[0]}, {r.node.name} {down[1]}",
            "SYN-SENT to :179 unanswered: " + ", ".join(
                [f"router -> {p}" for p in router_syn] + [f"{r.node.name} -> {p}" for p in node_syn]),
            f"{r.node.name}: nftables dropped {drops} BGP packet(s)"]


# --- bgp-no-listener ----------------------------------------------------------------------------

def _nolisten_inject(lab: "Lab") -> dict:
    node = roles(lab).node.name
    lab.daemons.restart_bgp(node, replace(lab.files.bgp_options(), passive_nodes=frozenset({node})))
    return {"node": node}


def _nolisten_heal(lab: "Lab") -> None:
    _restore_node_config(lab, roles(lab).node.name)


def _nolisten_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    down = _down(lab, r.node.name)
    if down is None or probes.listens_on_179(lab, r.node.name):
        return None
    # a closed port answers at once: a handshake half-open between the two is not this fault's
    if any(word.startswith(f"{r.node.ip}:")
           for line in probes.half_open_179(lab, lab.plan.router.name) for word in line.split()):
        return None
    resets = probes.tcpdump_count(
        lab.netns(r.node.name), r.node.cluster_nic.name,
        f"tcp src port 179 and src host {r.node.ip} and tcp[tcpflags] & tcp-rst != 0",
        lambda: None, timeout=4)
    if resets < 1:
        return None
    return [f"session router <-> {r.node.name}: router {down[0]}, {r.node.name} {down[1]}",
            f"{r.node.name}: nothing listens on :179 and its speaker is passive",
            f"{r.node.name} answers the router's SYNs to :179 with RST"]


# --- bgp-bad-peer-as ----------------------------------------------------------------------------

def _wrong_as(lab: "Lab") -> int:
    return lab.plan.router.asn + 100


def _badas_inject(lab: "Lab") -> dict:
    node = roles(lab).node.name
    lab.daemons.restart_bgp(node, replace(lab.files.bgp_options(), peer_as_override={node: _wrong_as(lab)}))
    return {"node": node, "configured_peer_as": _wrong_as(lab)}


def _badas_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    down = _down(lab, r.node.name)
    if down is None:
        return None
    seen = _notification(lab, r.node.name, "0202", "Bad Peer AS")
    if not seen:   # GoBGP resets the connection right after its NOTIFICATION: FRR may not read it
        seen = probes.tcpdump_match(lab.netns(r.node.name), r.node.cluster_nic.name,
                                    f"tcp port 179 and host {r.node.ip}", r"Bad Peer AS")
    if not seen:
        return None
    return [f"session router <-> {r.node.name}: router {down[0]}, {r.node.name} {down[1]}",
            f"{r.node.name} expects AS {_wrong_as(lab)}, the router is AS {lab.plan.router.asn}",
            f"NOTIFICATION 2/2 Bad Peer AS: {seen}"]


# --- bgp-hold-timer-expired ---------------------------------------------------------------------

def _frozen_pid(lab: "Lab") -> int | None:
    return lab.daemons.pid(_daemon_key(lab, roles(lab).node.name))


def _hold_inject(lab: "Lab") -> dict:
    pid = _frozen_pid(lab)
    if pid is None:
        raise RuntimeError("the node's BGP daemon is not running")
    os.kill(pid, signal.SIGSTOP)
    return {"pid": pid}


def _hold_heal(lab: "Lab") -> None:
    pid = _frozen_pid(lab)
    if pid is not None:
        os.kill(pid, signal.SIGCONT)


def _hold_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    pid = _frozen_pid(lab)
    stat = proc_stat(pid) if pid else None
    if stat is None or stat.state != "T":
        return None
    # only the router is asked: the frozen speaker cannot answer its CLI
    router_view = probes.frr_neighbor(lab, r.node.ip).get("bgpState", "missing")
    seen = _notification(lab, r.node.name, "0400", "Hold Timer Expired")
    if router_view == "Established" or not seen:
        return None
    return [f"{r.node.name}: BGP daemon pid {pid} stopped (SIGSTOP), state T",
            f"router: session to {r.node.name} {router_view} after its hold timer expired",
            f"router's last NOTIFICATION (4/0 Hold Timer Expired): {seen}"]


def _hold_healthy(lab: "Lab") -> list[str] | None:
    pid = _frozen_pid(lab)
    stat = proc_stat(pid) if pid else None
    if stat is None or stat.state == "T" or not is_alive(pid):
        return None
    return _session_back(lab)


# --- bgp-md5-mismatch ---------------------------------------------------------------------------

def _md5_failures(lab: "Lab") -> int:
    hosts = (lab.plan.router.name, MD5_PEER)
    return sum(probes.nstat(lab, h, "TcpExtTCPMD5Failure")["TcpExtTCPMD5Failure"] for h in hosts)


def _md5_inject(lab: "Lab") -> dict:
    wrong = secrets.token_hex(12)
    baseline = _md5_failures(lab)
    routerconf.md5_password(lab, lab.hosts[MD5_PEER].cluster_ip, wrong)
    return {"node": MD5_PEER, "md5_failures_before": baseline}


def _md5_heal(lab: "Lab") -> None:
    routerconf.md5_password(lab, lab.hosts[MD5_PEER].cluster_ip, lab.files.md5_password)


def _md5_symptom(lab: "Lab") -> list[str] | None:
    from diag.lab.faults import state

    down = _down(lab, MD5_PEER)
    if down is None:
        return None
    active = state.read(lab)
    before = int(active.data.get("md5_failures_before", 0)) if active else 0
    failures = _md5_failures(lab) - before
    if failures < 1:
        return None
    return [f"session router <-> {MD5_PEER}: router {down[0]}, {MD5_PEER} {down[1]}",
            f"router and {MD5_PEER}: nstat TCPMD5Failure +{failures} (segments with a wrong "
            "TCP-MD5 signature dropped)"]


# --- bgp-ebgp-requires-policy -------------------------------------------------------------------

def _policy_symptom(lab: "Lab") -> list[str] | None:
    peers = probes.frr_summary(lab)
    bgp_routes = probes.routes(lab, lab.plan.router.name, "proto", "bgp")
    if not peers or bgp_routes or any(p.get("peerState") != "Policy" or p.get("pfxRcd")
                                      for p in peers.values()):
        return None
    return ["router: every peer Established but peerState 'Policy', prefixes received 0 / "
            "sent 0 ((Policy) in show bgp summary)",
            "router: no BGP route in its kernel; the nodes' pod CIDRs are not forwarded"]


def _policy_healthy(lab: "Lab") -> list[str] | None:
    peers = probes.frr_summary(lab)
    if any(p.get("peerState") == "Policy" for p in peers.values()):
        return None
    return _session_back(lab)


# --- bgp-as-path-loop ---------------------------------------------------------------------------

def _loop_inject(lab: "Lab") -> dict:
    node = roles(lab).node.name
    lab.daemons.restart_bgp(node, replace(lab.files.bgp_options(), allow_own_as=False))
    return {"node": node}


def _loop_heal(lab: "Lab") -> None:
    _restore_node_config(lab, roles(lab).node.name)


def _loop_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    router_view, node_view = probes.session_states(lab, r.node.name)
    if (router_view, node_view) != ("Established", "Established"):
        return None
    sent = probes.frr_summary(lab).get(r.node.ip, {}).get("pfxSnt", 0)
    held = probes.node_bgp_prefixes(lab, r.node.name)
    others = {n.pod_cidr for n in lab.plan.nodes if n is not r.node}
    if sent < len(others) or held & others:
        return None
    return [f"session router <-> {r.node.name} Established; the router sent {sent} prefixes",
            f"{r.node.name} accepted none of {', '.join(sorted(others))}: their AS path "
            f"({lab.plan.router.asn} {r.node.asn}) contains its own AS {r.node.asn}"]


# --- bgp-no-advertisement -----------------------------------------------------------------------

def _origination(lab: "Lab", node: str, on: bool) -> None:
    cidr = lab.hosts[node].pod_cidr
    if lab.cni == "cilium":
        in_ns(lab, node, ["gobgp", "global", "rib", "add" if on else "del", "-a", "ipv4", cidr])
    else:       # the static protocol holding the node's block (1.6: Calico's unnamed static1)
        static = lab.daemons.bird_protocols(node, "Static")[0]
        in_ns(lab, node, ["birdc", "-s", str(lab.files.bird_socket(node)),
                          "enable" if on else "disable", static])


def _noadv_inject(lab: "Lab") -> dict:
    node = roles(lab).remote.name
    _origination(lab, node, False)
    return {"node": node}


def _noadv_heal(lab: "Lab") -> None:
    _origination(lab, roles(lab).remote.name, True)


def _noadv_symptom(lab: "Lab") -> list[str] | None:
    r = roles(lab)
    peer = probes.frr_summary(lab).get(r.remote.ip, {})
    router_routes = {x.get("dst") for x in probes.routes(lab, lab.plan.router.name, "proto", "bgp")}
    if peer.get("state") != "Established" or peer.get("pfxRcd") != 0 \
            or r.remote.pod_cidr in router_routes:
        return None
    return [f"session router <-> {r.remote.name} Established, prefixes received from it: 0",
            f"router: no route to {r.remote.pod_cidr} ({r.remote.name}'s pod CIDR)"]


FAULTS = [
    Fault("bgp-transport-blocked",
          "k8s-ctr's BGP session (no TCP connection can be made)",
          "nftables in k8s-ctr's namespace drops tcp/179 both ways (the established session is "
          "aborted with ss -K so the failure shows at once)",
          "BGP_TRANSPORT_BLOCKED", ALL, BOTH_MODES,
          _blocked_inject, _blocked_heal, _blocked_symptom, _session_back,
          healthy_timeout=90),
    Fault("bgp-no-listener",
          "k8s-ctr's BGP session (nobody dials, nobody listens)",
          "k8s-ctr's GoBGP set passive: it does not dial, and like Cilium it never listens; "
          "the router's SYNs get RST",
          "BGP_NO_LISTENER", ("cilium",), BOTH_MODES,
          _nolisten_inject, _nolisten_heal, _nolisten_symptom, _session_back,
          healthy_timeout=60),
    Fault("bgp-bad-peer-as",
          "k8s-ctr's BGP session (OPEN refused)",
          "k8s-ctr's speaker configured with the wrong peer AS (router AS + 100)",
          "BGP_BAD_PEER_AS", ALL, BOTH_MODES,
          _badas_inject, _nolisten_heal, _badas_symptom, _session_back),
    Fault("bgp-hold-timer-expired",
          "k8s-ctr's BGP session (keepalives stop)",
          "k8s-ctr's speaker frozen with SIGSTOP until the router's hold timer (9 s) fires; "
          "heal = SIGCONT",
          "BGP_HOLD_TIMER_EXPIRED", ALL, BOTH_MODES,
          _hold_inject, _hold_heal, _hold_symptom, _hold_healthy),
    Fault("bgp-md5-mismatch",
          "k8s-w1's BGP session (segments with a wrong signature are dropped)",
          "the router's TCP-MD5 password for k8s-w1 changed (live, vtysh); k8s-w1 keeps the old",
          "BGP_MD5_MISMATCH", ALL, BOTH_MODES,
          _md5_inject, _md5_heal, _md5_symptom, _session_back),
    Fault("bgp-ebgp-requires-policy",
          "every route through the router (accepted and sent: none)",
          "FRR back to its default `bgp ebgp-requires-policy` (RFC 8212) with no policies",
          "BGP_EBGP_REQUIRES_POLICY", ALL, BOTH_MODES,
          lambda lab: routerconf.ebgp_requires_policy(lab, True) or {},
          lambda lab: routerconf.ebgp_requires_policy(lab, False),
          _policy_symptom, _policy_healthy),
    Fault("bgp-as-path-loop",
          "k8s-ctr's learned routes (dropped as loops; data path via routes on native calico)",
          "allow-own-as (GoBGP) / allow local as (BIRD) removed on k8s-ctr; the nodes share one AS",
          "BGP_AS_PATH_LOOP", ALL, BOTH_MODES,
          _loop_inject, _loop_heal, _loop_symptom, _session_back),
    Fault("bgp-no-advertisement",
          "k8s-w0's pod CIDR (nobody learns it)",
          "k8s-w0 stops originating its pod CIDR (GoBGP rib del / BIRD static protocol disabled)",
          "BGP_NO_ADVERTISEMENT", ALL, BOTH_MODES,
          _noadv_inject, _noadv_heal, _noadv_symptom, _session_back),
]
