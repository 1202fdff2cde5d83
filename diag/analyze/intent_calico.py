"""Calico's objects against BIRD, the kernel and the devices: the BGP topology (mesh, peers,
route reflectors), the peers' AS, IP pools' encapsulation, BGP filters.

Contract: :func:`analyze(objects, state) -> (verdicts, checks)` (:mod:`diag.analyze.intent`).
The intent follows calico-node's BIRD configuration (confd): the node-to-node mesh unless
BGPConfiguration ``default`` sets ``nodeToNodeMeshEnabled: false``; BGPPeers that are global
(no ``node``, no ``nodeSelector``), name the node, or select it with a Calico ``nodeSelector``;
a peer with a ``peerSelector`` peers its nodes with the selected ones (both ways, as route
reflectors and their clients do). Verdicts:

- ``BGP_RR_MISCONFIG``: the mesh is off and no peer applies to a node, while its BIRD has no
  Established session and no other speaker holds its blocks;
- ``BGP_BAD_PEER_AS``: a BGPPeer's ``asNumber`` differs from the AS the peer runs (its own
  daemon's local AS, its OPEN in a capture) and the node's session is down;
- ``IPPOOL_ENCAPSULATION_MISMATCH``: an IPPool with ``vxlanMode`` (or ``ipipMode``) Always or
  CrossSubnet where a node has no ``vxlan.calico`` (``tunl0``) device and no route to another
  node's block that needs encapsulation (FelixConfiguration ``vxlanEnabled: false`` named when
  set): the pool's routes are Felix's, and BIRD keeps them out of the kernel;
- ``BIRD_FILTER_REJECT``: a BGPFilter rule rejecting imports, named by the node's BGPPeer,
  and prefixes the peer holds missing from the node's BIRD table;
- ``INTENT_NOT_APPLIED``: the objects changed and BIRD (or Felix) still runs the old
  configuration (sessions still up, routes still imported or programmed natively).
"""
from __future__ import annotations

import json
from typing import Any

from diag.analyze.intent import (
    Objects,
    State,
    Verdict,
    address,
    finding,
    net,
    not_checkable,
    ref_of,
    show,
)
from diag.k8s.selectors import SelectorError, calico_selector_matches
from diag.model import Check, Evidence
from diag.words import counted

BGP_CONFIGURATION = ("calico", "BGPConfiguration")
BGP_PEER = ("calico", "BGPPeer")
IP_POOL = ("calico", "IPPool")
NODE = ("", "Node")
DEVICES = {"vxlan": "vxlan.calico", "ipip": "tunl0"}


def _selects(expression, labels) -> bool:
    try:
        return calico_selector_matches(expression, labels)
    except SelectorError:
        return False


class Calico:
    def __init__(self, objects: Objects, state: State) -> None:
        self.o, self.s = objects, state
        self.labels = objects.node_labels()
        self.configs = objects.rows("calico_bgp_configurations")
        self.peers = objects.rows("calico_bgp_peers")
        self.default = next((r for r in self.configs if r["name"] == "default"), None)
        self.blocks = self._blocks()

    def _blocks(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for r in self.o.rows("calico_block_affinities"):
            if not r["deleted"] and r.get("state") in (None, "confirmed"):
                out.setdefault(str(r["node"]), []).append(str(r["cidr"]))
        for r in self.o.rows("calico_ipam_blocks"):
            if r["node"] and not r["deleted"] and str(r["node"]) not in out:
                out.setdefault(str(r["node"]), []).append(str(r["cidr"]))
        return out

    @property
    def mesh(self) -> bool:
        value = (self.default or {}).get("node_to_node_mesh")
        return True if value is None else bool(value)

    def applying(self, node: str) -> list[dict[str, Any]]:
        labels = self.labels.get(node, {})
        out = []
        for p in self.peers:
            if p["node"]:
                if p["node"] == node:
                    out.append(p)
            elif p["node_selector"]:
                if _selects(p["node_selector"], labels):
                    out.append(p)
                elif p["peer_selector"] and _selects(p["peer_selector"], labels):
                    out.append(p)             # a reflector's (or peer node's) client
            else:
                out.append(p)
        return out


def analyze(objects: Objects, state: State) -> tuple[list[Verdict], list[Check]]:
    if not any(objects.read("calico", k) for k in ("BGPConfiguration", "BGPPeer", "IPPool")):
        return [], []
    c = Calico(objects, state)
    verdicts: list[Verdict] = []
    checks: list[Check] = []
    for rule in (_topology, _peer_as, _pools, _filters):
        v, ch = rule(c)
        verdicts += v
        checks += ch
    return verdicts, checks


def _topology(c: Calico) -> tuple[list[Verdict], list[Check]]:
    name = "every Calico node has a BGP path (mesh, BGPPeers, route reflectors)"
    missing = not_checkable(name, c.o, BGP_CONFIGURATION, BGP_PEER, NODE)
    if missing:
        return [], [missing]
    if c.mesh:
        return [], [Check(name, True, "node-to-node mesh on")]
    verdicts, unknown = [], []
    for node in sorted(c.labels):
        if c.applying(node):
            continue
        host = c.s.host(node)
        blocks = c.blocks.get(node, [])
        up = [r for r in c.s.established(host)] if host else []
        mesh_ev = c.o.evidence(c.default, "nodeToNodeMeshEnabled: false",
                               "nodeToNodeMeshEnabled")
        peer_ev = [c.o.evidence(p, f"{'node ' + p['node'] if p['node'] else 'nodeSelector ' + repr(p['node_selector'])} "
                                f"does not select {node}", at=p["pointer"])
                   for p in c.peers[:3]]
        fix = [c.o.patch(c.default, [{"op": "replace", "path": "nodeToNodeMeshEnabled",
                                      "value": True}]) + "   # or:",
               f"# a BGPPeer for {node}: spec.node: {node} (or a nodeSelector matching its "
               f"labels), peerIP and asNumber of its ToR or route reflector"]
        if up:
            verdicts.append(Verdict(finding(
                "INTENT_NOT_APPLIED",
                f"{node}: the objects give it no BGP peer (mesh off, no BGPPeer selects it), "
                f"but its BIRD still has {counted(len(up), 'Established session')}: "
                "calico-node has not reconfigured BIRD since the change",
                ["objects", "bird"], [mesh_ev, *peer_ev, c.s.session_evidence(up[0])], fix,
                hosts=[host], subject=f"{node} {' '.join(blocks)}")))
            continue
        held = [r for b in blocks for r in c.s.holders(b, exclude=host)]
        speakers = [s for s in c.s.speakers(exclude=host) if c.s.established(s)]
        if held or not (host and c.s.collected(host)) and not speakers:
            unknown.append(f"{node}: no BGP peer in the objects; its BIRD and its peers' "
                           "tables not collected")
            continue
        ev = [mesh_ev, *peer_ev]
        ev += [Evidence(host, c.s.file(host, "bird-protocols-all"), "no line with Established",
                        f"{host}: BIRD has no Established BGP protocol")] if host else []
        ev += [e for s in speakers[:2] for b in blocks[:1]
               for e in [c.s.rib_evidence(s, b)] if e]
        verdicts.append(Verdict(finding(
            "BGP_RR_MISCONFIG",
            f"{node}: the node-to-node mesh is off and no BGPPeer selects it (no route reflector "
            f"or ToR path): it exchanges no routes, and nobody learns its block "
            f"{', '.join(blocks) or '?'}",
            ["objects", "bird", "bgp" if speakers else None], ev, fix,
            hosts=[host or node], subject=" ".join([node, host or node] + blocks)),
            absorbs=tuple(("BGP_NO_ADVERTISEMENT", t) for t in blocks + [host or node]),
            effects=tuple((code, t) for t in blocks + [host or node] for code in (
                "EGRESS_LEAK_DEFAULT_ROUTE", "ROUTE_RIB_NOT_IN_FIB", "BGP_SESSION_NOT_ESTABLISHED",
                "ROUTE_WRONG_TABLE_OR_BLACKHOLE", "BGP_NO_LISTENER"))))
    if verdicts:
        return verdicts, [Check(name, False, "; ".join(v.finding.summary[:60] for v in verdicts))]
    if unknown:
        return [], [Check(name, None, needs="; ".join(unknown))]
    return [], [Check(name, True, f"{counted(len(c.labels), 'node')}, each with a BGPPeer")]


def _peer_as(c: Calico) -> tuple[list[Verdict], list[Check]]:
    name = "BGPPeers' asNumber is the AS the peer runs"
    verdicts, checked = [], 0
    for p in c.peers:
        if not p["peer_ip"] or not p["as_number"]:
            continue
        real, proof = c.s.real_as(str(p["peer_ip"]))
        if real is None or real == int(p["as_number"]):
            checked += real is not None
            continue
        nodes = [n for n in c.labels if p in c.applying(n)]
        sessions = [r for n in nodes for h in [c.s.host(n)] if h
                    for r in c.s.sessions(h) if r["peer"] == p["peer_ip"]]
        if not sessions:
            continue
        ev = [c.o.evidence(p, f"peerIP {p['peer_ip']} asNumber {p['as_number']}", "asNumber")]
        fix = [c.o.patch(p, [{"op": "replace", "path": "asNumber", "value": real}])]
        up = [r for r in sessions if r.get("state") == "ESTABLISHED"]
        hosts = sorted({r["host"] for r in sessions})
        if up:
            verdicts.append(Verdict(finding(
                "INTENT_NOT_APPLIED",
                f"{ref_of(p)} says {p['peer_ip']} is AS {p['as_number']}, but it runs AS {real} "
                f"and {', '.join(hosts)} are Established with it: BIRD has not been "
                "reconfigured since the change; when it is, the sessions break",
                ["objects", "bird", "config"], ev + proof + [c.s.session_evidence(up[0])],
                fix, hosts=hosts, subject=f"{' '.join(hosts)} {p['peer_ip']}")))
            continue
        tokens = hosts + [str(p["peer_ip"])]
        verdicts.append(Verdict(finding(
            "BGP_BAD_PEER_AS",
            f"{', '.join(hosts)} <-> {p['peer_ip']}: not Established; {ref_of(p)} gives the "
            f"peer asNumber {p['as_number']} but it runs AS {real}",
            ["objects", "config", "bird", "pcap" if any(e.frame for e in proof) else None],
            ev + proof + [c.s.session_evidence(r) for r in sessions[:2]], fix,
            hosts=hosts, subject=" ".join(tokens)),
            absorbs=tuple((code, t) for t in tokens for code in (
                "BGP_BAD_PEER_AS", "BGP_SESSION_NOT_ESTABLISHED")),
            effects=tuple(("EGRESS_LEAK_DEFAULT_ROUTE", h) for h in hosts)))
    if verdicts:
        return verdicts, [Check(name, False, "; ".join(v.finding.code for v in verdicts))]
    return [], [Check(name, True, f"{counted(checked, 'peer')} checked")] if checked else []


def _felix(c: Calico, key: str) -> dict[str, Any] | None:
    return next((r for r in c.o.rows("calico_felix_settings") if r["key"] == key
                 and r["name"] == "default"), None)


def _pools(c: Calico) -> tuple[list[Verdict], list[Check]]:
    name = "IP pools' encapsulation matches the nodes' devices and routes"
    pools = [p for p in c.o.rows("calico_ip_pools") if not p["disabled"]
             and net(p["cidr"]) and net(p["cidr"]).version == 4]
    if not pools:
        return [], []
    nodes = [(n, c.s.host(n)) for n in sorted(c.labels)]
    collected = [(n, h) for n, h in nodes if h and c.s.collected(h) and c.s.routes(h)]
    if not collected:
        return [], [Check(name, None, needs="the nodes' devices and routes (ip -d link, "
                                            "ip route)")]
    node_ips = {n: (r["internal_ips"] or [None])[0] for r in c.o.rows("k8s_nodes")
                for n in [str(r["name"])]}
    verdicts = []
    for pool in pools:
        for kind, mode in (("vxlan", pool["vxlan_mode"]), ("ipip", pool["ipip_mode"])):
            if mode not in ("Always", "CrossSubnet"):
                continue
            device = DEVICES[kind]
            for node, host in collected:
                subnets = [net(f"{a['address']}/{a['prefixlen']}") for a in c.s.addresses(host)
                           if a.get("prefixlen") is not None and a["prefixlen"] < 32]
                needing = [(peer, b) for peer, blocks in c.blocks.items() if peer != node
                           for b in blocks if net(b) and net(b).subnet_of(net(pool["cidr"]))
                           and (mode == "Always" or not any(
                               s and address(node_ips.get(peer)) in s for s in subnets))]
                if not needing:
                    continue
                has_device = any(r["ifname"] == device for r in c.s.links(host))
                routes = {b: _route_for(c.s, host, b) for _, b in needing}
                through = [b for b, r in routes.items() if r and r.get("dev") == device]
                if has_device and through:
                    continue
                native = [(b, r) for b, r in routes.items() if r and r.get("dev") != device]
                ev = [c.o.evidence(pool, f"{kind}Mode: {mode} ({pool['cidr']})", f"{kind}Mode")]
                felix = _felix(c, f"{kind}Enabled")
                if felix is not None:
                    ev.append(c.o.evidence(felix, f"{kind}Enabled: {show(felix['value'])}"))
                ev.append(Evidence(host, c.s.file(host, "ip-link"), f"no line with {device}",
                                   f"{host}: no {device} device") if not has_device else None)
                if native:
                    ev += [c.s.route_evidence(r) for _, r in native[:2]]
                    verdicts.append(Verdict(finding(
                        "INTENT_NOT_APPLIED",
                        f"{node}: {ref_of(pool)} asks for {kind} ({mode}) to "
                        f"{', '.join(sorted({p for p, _ in needing}))}, but the node still "
                        f"routes {', '.join(b for b, _ in native)} natively and has "
                        f"{'no ' + device if not has_device else 'no route through ' + device}: "
                        "Felix and BIRD have not applied the change",
                        ["objects", "ip", "ip-link"], ev,
                        [f"# restart calico-node on {node} (kubectl -n kube-system delete pod "
                         f"-l k8s-app=calico-node --field-selector spec.nodeName={node}) once "
                         f"{kind} is enabled in Felix"], hosts=[host],
                        subject=" ".join(b for b, _ in native))))
                    continue
                blocks = [b for _, b in needing]
                ev += _missing_routes(c.s, host, blocks)
                fix = []
                if felix is not None and str(felix["value"]).lower() == "false":
                    fix.append(c.o.patch(felix, [{"op": "replace", "path": felix["pointer"],
                                                  "value": True}])
                               + "   # Felix then creates " + device)
                fix.append(c.o.patch(pool, [{"op": "replace", "path": f"{kind}Mode",
                                             "value": "Never"}])
                           + "   # or route the pool natively (BIRD programs it then)")
                verdicts.append(Verdict(finding(
                    "IPPOOL_ENCAPSULATION_MISMATCH",
                    f"{node}: {ref_of(pool)} sends {pool['cidr']} over {kind} ({kind}Mode "
                    f"{mode}), but the node has {'no ' + device if not has_device else 'no route through ' + device}"
                    + (f" (FelixConfiguration {felix['name']} {kind}Enabled: {show(felix['value'])})"
                       if felix is not None and str(felix['value']).lower() == 'false' else "")
                    + f" and BIRD leaves the pool's routes to Felix: no route to "
                    f"{', '.join(blocks)} but the default one",
                    ["objects", "ip", "ip-link"], ev, fix, hosts=[host],
                    subject=" ".join(blocks + [host])),
                    effects=tuple((code, t) for t in blocks + [host] for code in (
                        "EGRESS_LEAK_DEFAULT_ROUTE", "ROUTE_RIB_NOT_IN_FIB",
                        "ROUTE_MISSING_PODCIDR_OFF_LINK", "ROUTE_WRONG_TABLE_OR_BLACKHOLE"))))
    if verdicts:
        return verdicts, [Check(name, False, "; ".join(v.finding.code for v in verdicts))]
    modes = ", ".join(f"{p['name']} vxlan {p['vxlan_mode']} ipip {p['ipip_mode']}" for p in pools)
    return [], [Check(name, True, modes)]


def _route_for(state: State, host: str, block: str) -> dict[str, Any] | None:
    probe = address(str(net(block).network_address + 1))
    best = None
    for r in state.routes(host):
        dst = r.get("dst")
        if not dst or dst == "default" or r.get("type") not in (None, "unicast"):
            continue
        network = net(dst)
        if network is None or network.prefixlen == 0 or probe not in network:
            continue
        if best is None or network.prefixlen > net(best["dst"]).prefixlen:
            best = r
    return best


def _missing_routes(state: State, host: str, blocks: list[str]) -> list[Evidence]:
    rows = state.routes(host)
    if not rows:
        return []
    out = [Evidence(host, state.file(host, rows[0]["source"]), f"no line with {b}",
                    f"{host}: no route to {b}") for b in blocks[:1]]
    default = next((r for r in rows if r.get("dst") == "default"), None)
    if default:
        out.append(state.route_evidence(default))
    return out


def _filters(c: Calico) -> tuple[list[Verdict], list[Check]]:
    name = "BGP filters let the routes the nodes need through (Calico BGPFilter)"
    rules = c.o.rows("calico_bgp_filter_rules")
    named = [p for p in c.peers if p["filters"]]
    if not rules or not named:
        return [], []
    verdicts = []
    for p in named:
        rejecting = [r for r in rules if r["filter"] in (p["filters"] or [])
                     and r["direction"] == "importV4" and str(r["action"]).lower() == "reject"]
        if not rejecting:
            continue
        nodes = [n for n in c.labels if p in c.applying(n)]
        peer_host = c.s.model.host_of_ip(str(p["peer_ip"])) if p["peer_ip"] else None
        # what the peer offers: its own table when collected, else what the other nodes
        # hold from it or from its kind (the other nodes' blocks, which it reflects)
        offered = {str(r["prefix"]) for r in c.s.paths(peer_host)} if peer_host else set()
        offered |= {str(r["prefix"]) for r in c.s.paths()
                    if r.get("peer") == p["peer_ip"] or r.get("nexthop") == p["peer_ip"]}
        offered |= {b for blocks in c.blocks.values() for b in blocks}
        offered = sorted(offered)
        for node in nodes:
            host = c.s.host(node)
            if not host or not c.s.rib_read(host):
                continue                    # its BIRD table not read: nothing to compare
            mine = {str(r["prefix"]) for r in c.s.paths(host)}
            own = set(c.blocks.get(node, []))
            hit = [x for x in offered if x not in own and any(_rule_matches(r, x)
                                                              for r in rejecting)]
            if not hit:
                continue
            session = next((r for r in c.s.sessions(host) if r["peer"] == p["peer_ip"]), None)
            ev = [c.o.evidence(p, f"filters {json.dumps(p['filters'])}", "filters")]
            ev += [c.o.evidence(r, f"{r['direction']} {r['action']} {r['match_operator']} "
                                f"{r['cidr']}") for r in rejecting[:2]]
            ev += [c.s.session_evidence(session)] if session else []
            ev += [c.s.path_evidence(r) for r in c.s.paths() if r["host"] != host
                   and str(r["prefix"]) in hit and not r.get("local") and r.get("best")][:2]
            missing = [x for x in hit if x not in mine]
            if not missing:
                verdicts.append(Verdict(finding(
                    "INTENT_NOT_APPLIED",
                    f"{node}: {ref_of(p)}'s filter rejects {', '.join(hit)} from "
                    f"{p['peer_ip']}, but BIRD still imports them: calico-node has not "
                    "reconfigured BIRD since the change",
                    ["objects", "bird"], ev,
                    [f"# check the filter before BIRD applies it: kubectl get bgpfilter "
                     f"{rejecting[0]['filter']} -o yaml"], hosts=[host],
                    subject=" ".join(hit))))
                continue
            rib = c.s.rib_evidence(host, missing[0])
            verdicts.append(Verdict(finding(
                "BIRD_FILTER_REJECT",
                f"{node}: BIRD's import filter from {ref_of(p)} rejects {', '.join(missing)} "
                f"(BGPFilter {', '.join(sorted({r['filter'] for r in rejecting}))}): "
                f"{p['peer_ip']} offers them, {node}'s table lacks them"
                + (f" (BIRD: {session.get('received')} import updates received, "
                   f"{session.get('accepted')} accepted)"
                   if session and session.get("received") is not None else ""),
                ["objects", "bird", str(c.s.paths(peer_host)[0]["daemon"]).lower()
                 if peer_host and c.s.paths(peer_host) else None],
                ev + ([rib] if rib else []),
                [c.o.patch(p, [{"op": "remove", "path": f"filters/"
                                f"{(p['filters'] or []).index(rejecting[0]['filter'])}"}])
                 + "   # or narrow the rule's cidr"], hosts=[host],
                subject=" ".join(missing + [host])),
                effects=tuple((code, t) for t in missing + [host] for code in (
                    "EGRESS_LEAK_DEFAULT_ROUTE", "ROUTE_RIB_NOT_IN_FIB",
                    "ROUTE_WRONG_TABLE_OR_BLACKHOLE", "BGP_AS_PATH_LOOP",
                    "ROUTE_MISSING_PODCIDR_OFF_LINK"))))
    if verdicts:
        return verdicts, [Check(name, False, "; ".join(v.finding.code for v in verdicts))]
    return [], [Check(name, True, "no filtered route the nodes need")]


def _rule_matches(rule: dict[str, Any], prefix: str) -> bool:
    cidr, operator = rule.get("cidr"), rule.get("match_operator") or "In"
    if not cidr:
        return True
    a, b = net(prefix), net(cidr)
    if a is None or b is None or a.version != b.version:
        return False
    if operator == "Equal":
        return a == b
    if operator == "In":
        return a.subnet_of(b)
    if operator == "NotEqual":
        return a != b
    if operator == "NotIn":
        return not a.subnet_of(b)
    return False
