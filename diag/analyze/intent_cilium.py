"""Cilium's BGP control plane: what its objects ask each node to do, against what the node's
speaker, its peers and the captures show.

Contract: :func:`analyze(objects, state) -> (verdicts, checks)` (:mod:`diag.analyze.intent`).
The intent is computed as Cilium does: a CiliumBGPPeeringPolicy (legacy, ``v2alpha1``) that
selects a node wins over the CiliumBGPClusterConfigs, and several selecting one node means none
applies; otherwise the one ClusterConfig whose ``nodeSelector`` matches the node (absent: every
node; two are a conflict and none applies). Each peer takes its CiliumBGPPeerConfig's families
(none named: Cilium's defaults, which select no advertisement); each family's
``advertisements`` selector picks CiliumBGPAdvertisements by their labels (absent selects none);
a ``PodCIDR`` advertisement announces the node's pod CIDRs (its CiliumNode, else its Node).

Verdicts, each joined with the state that shows the effect:

- ``BGP_NO_ADVERTISEMENT``: a node with pods whose peers' families select no PodCIDR
  advertisement (the selector chain is the evidence: PeerConfig family -> selector ->
  advertisements' labels), while the state shows nothing from it (the peer's RIB, the node's
  originated paths, the NodeConfig status, the other speakers' RIBs);
- ``BGP_NODE_NOT_SELECTED``: a node with pods no config or policy gives a BGP instance, while
  the node has no BGP session and no speaker holds its pod CIDR; a ClusterConfig whose selector
  matches no node, while no node peers with its peers;
- ``BGP_BAD_PEER_AS``: a peer's ``peerASN`` differs from the AS the peer runs (its OPEN in a
  capture, its own daemon's local AS) and the session is down;
- ``BGP_EBGP_MULTIHOP_TTL``: an eBGP peer on none of the node's subnets with ``ebgpMultihop``
  1 (Cilium's default) and the session down;
- ``CILIUM_FEATURE_DISABLED``: BGP objects select nodes while ``enable-bgp-control-plane`` is
  off and no node has a session;
- ``INTENT_NOT_APPLIED``: any of the above in the objects while the daemons still do what the
  objects asked before (advertising, peering, Established with the other AS).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
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
from diag.k8s.selectors import SelectorError, label_selector_matches
from diag.model import Check
from diag.words import counted

CLUSTER_CONFIG = ("cilium.io", "CiliumBGPClusterConfig")
PEER_CONFIG = ("cilium.io", "CiliumBGPPeerConfig")
ADVERTISEMENT = ("cilium.io", "CiliumBGPAdvertisement")
POLICY = ("cilium.io", "CiliumBGPPeeringPolicy")
NODE = ("", "Node")
CILIUM_NODE = ("cilium.io", "CiliumNode")
CONFIG_MAP = ("", "ConfigMap")


def _selects(selector, labels, *, absent: bool) -> bool:
    try:
        return label_selector_matches(selector, labels, absent=absent)
    except SelectorError:
        return False


@dataclass
class Peer:
    row: dict[str, Any]              # cilium_bgp_peers (ClusterConfig) or policy neighbor row
    address: str | None
    peer_asn: int | None
    local_asn: int | None
    peer_config: str | None
    legacy: bool = False


@dataclass
class NodeIntent:
    node: str
    source: dict[str, Any] | None    # the ClusterConfig instance / policy router row applied
    why: str                          # how it was decided (or why nothing applies)
    peers: list[Peer] = field(default_factory=list)
    selectors: list[dict[str, Any]] = field(default_factory=list)   # rows that decided


class Cilium:
    def __init__(self, objects: Objects, state: State) -> None:
        self.o, self.s = objects, state
        self.labels = objects.node_labels()
        self.instances = [r for r in objects.rows("cilium_bgp_instances")
                          if r["source"] == "cluster"]
        self.peers = [r for r in objects.rows("cilium_bgp_peers") if r["source"] == "cluster"]
        self.policies = objects.rows("cilium_bgp_policies")
        self.neighbors = objects.rows("cilium_bgp_policy_neighbors")
        self.families = objects.rows("cilium_bgp_peer_families")
        self.peer_configs = objects.rows("cilium_bgp_peer_configs")
        self.adverts = objects.rows("cilium_bgp_advertisements")
        self.pod_cidrs = self._pod_cidrs()

    # --- what the objects ask ------------------------------------------------------------------

    def _pod_cidrs(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for r in self.o.rows("cilium_nodes"):
            if r["pod_cidrs"]:
                out[str(r["node"])] = [c for c in r["pod_cidrs"] if net(c) and net(c).version == 4]
        for r in self.o.rows("k8s_nodes"):
            if str(r["name"]) not in out and r["pod_cidrs"]:
                out[str(r["name"])] = [c for c in r["pod_cidrs"]
                                       if net(c) and net(c).version == 4]
        return out

    def intent(self, node: str) -> NodeIntent:
        labels = self.labels.get(node, {})
        policies = {r["name"] for r in self.policies
                    if _selects(r["node_selector"], labels, absent=True)}
        if len(policies) > 1:
            rows = [r for r in self.policies if r["name"] in policies]
            return NodeIntent(node, None, f"CiliumBGPPeeringPolicies {', '.join(sorted(policies))} "
                              "all select it: none applies", selectors=rows)
        if policies:
            routers = [r for r in self.policies if r["name"] in policies]
            router = routers[0]
            peers = [Peer(n, n["peer_ip"], n["peer_asn"], n["local_asn"], None, legacy=True)
                     for n in self.neighbors if n["name"] == router["name"]
                     and n["item"] == router["item"] and n["router"] == router["router"]]
            return NodeIntent(node, router, f"{ref_of(router)} selects it", peers, [router])
        configs = {r["name"] for r in self.instances
                   if _selects(r["node_selector"], labels, absent=True)}
        if len(configs) > 1:
            rows = [r for r in self.instances if r["name"] in configs]
            return NodeIntent(node, None, f"CiliumBGPClusterConfigs {', '.join(sorted(configs))} "
                              "all select it: a conflict, none applies", selectors=rows)
        if not configs:
            return NodeIntent(node, None, "no CiliumBGPClusterConfig selects it"
                              + ("" if not self.instances else " ("
                                 + "; ".join(f"{r['name']} nodeSelector {show(r['node_selector'])}"
                                             for r in self.instances) + ")"),
                              selectors=list(self.instances))
        instance = next(r for r in self.instances if r["name"] in configs)
        peers = [Peer(p, p["peer_address"], p["peer_asn"], instance["local_asn"],
                      p["peer_config"])
                 for p in self.peers if p["name"] == instance["name"]
                 and p["item"] == instance["item"] and p["instance"] == instance["instance"]]
        return NodeIntent(node, instance, f"{ref_of(instance)} selects it", peers, [instance])

    def chain(self, peer: Peer, afi: str = "ipv4") -> tuple[list[dict], list[dict], bool]:
        """(families, advertisements they select, PodCIDR among them) for one peer."""
        if peer.legacy:
            export = bool(self._router(peer)["export_pod_cidr"])
            return [], [], export
        families = [f for f in self.families if f["name"] == peer.peer_config
                    and f["afi"] == afi] if peer.peer_config else []
        selected = []
        for family in families:
            selected += [a for a in self.adverts
                         if _selects(family["advertisements"], a["labels"] or {}, absent=False)]
        return families, selected, any(a["type"] == "PodCIDR" for a in selected)

    def _router(self, peer: Peer) -> dict[str, Any]:
        return next(r for r in self.policies if r["name"] == peer.row["name"]
                    and r["item"] == peer.row["item"] and r["router"] == peer.row["router"])

    # --- what the state shows ----------------------------------------------------------------

    def node_ip(self, node: str) -> str | None:
        row = next((r for r in self.o.rows("k8s_nodes") if r["name"] == node), None)
        if row and row["internal_ips"]:
            return str(row["internal_ips"][0])
        host = self.s.host(node)
        return self.s.model.hosts[host].node_ip.value if host else None

    def peer_host(self, peer_address: str | None) -> str | None:
        return self.s.model.host_of_ip(peer_address) if peer_address else None

    def advertised(self, node: str, cidr: str) -> tuple[bool | None, list, list]:
        """Does the state show ``node`` announcing ``cidr``? (verdict, evidence for, against);
        None when nothing collected can tell."""
        host = self.s.host(node)
        ip = self.node_ip(node)
        yes, no = [], []
        if host:
            mine = self.s.paths(host)
            local = [r for r in mine if r.get("local") and str(r["prefix"]) == cidr]
            out = [r for r in self.s.rows("bgp_paths") if r["host"] == host
                   and r.get("rib") == "adj-out" and str(r["prefix"]) == cidr]
            if local or out:
                yes.append(self.s.path_evidence((local or out)[0]))
            elif mine or self.s.rib_read(host):
                no.append(self.s.rib_evidence(host, cidr))
                no += [self.s.session_evidence(r) for r in self.s.established(host)
                       if r.get("advertised") == 0][:1]
        for r in self.s.holders(cidr, exclude=host):
            if r.get("nexthop") == ip or r.get("peer") == ip or r.get("node") == node:
                yes.append(self.s.path_evidence(r))
        for speaker in self.s.speakers(exclude=host):
            held = [r for r in self.s.holders(cidr) if r["host"] == speaker]
            if not held and self._should_hear(speaker, node):
                no.append(self.s.rib_evidence(speaker, cidr))
        for r in self.o.rows("cilium_bgp_node_peer_status"):
            if r["node"] == node and r.get("state") == "ESTABLISHED" and \
                    r.get("advertised") == 0:
                no.append(self.o.evidence(r, f"peer {r['peer_address']} established, "
                                          "advertised 0", role="state"))
        if yes:
            return True, yes, no
        return (False if no else None), yes, no

    def _should_hear(self, speaker: str, node: str) -> bool:
        """A speaker whose RIB should hold the node's routes: it has an Established session
        (the router peering with the node, or a node hearing the others through it)."""
        return bool(self.s.established(speaker))

    def sessions_of(self, node: str) -> list[dict[str, Any]]:
        host = self.s.host(node)
        return self.s.sessions(host) if host else []

    def router_sessions_to(self, ip: str | None) -> list[dict[str, Any]]:
        return [r for r in self.s.rows("bgp_peers") if ip and r["peer"] == ip
                and r["host"] != self.s.host_of_node.get(ip, "")]


def analyze(objects: Objects, state: State) -> tuple[list[Verdict], list[Check]]:
    checks: list[Check] = []
    name = "Cilium BGP objects against the speakers (selection, advertisements, peer AS)"
    if not (objects.read(*CLUSTER_CONFIG) or objects.read(*POLICY)):
        if objects.refused(*CLUSTER_CONFIG) or objects.refused(*POLICY):
            checks.append(not_checkable(name, objects, CLUSTER_CONFIG, POLICY))
        return [], checks
    if not (objects.rows("cilium_bgp_instances") or objects.rows("cilium_bgp_policies")):
        return [], [Check(name, True, "no BGP configuration objects")]
    missing = not_checkable(name, objects, NODE)
    if missing:
        return [], [missing]
    c = Cilium(objects, state)
    feature = _feature_off(c)
    if feature is not None:
        return [feature], [Check(name, False, feature.finding.summary)]
    rules = {"selection": "Cilium BGP: every node with pods gets a BGP instance",
             "advertisement": "Cilium BGP: each node's pod CIDR is advertised",
             "peer": "Cilium BGP: peers' AS and reachability match the objects"}
    results: dict[str, dict[str, list]] = {k: {"bad": [], "unknown": [], "ok": []} for k in rules}
    verdicts: list[Verdict] = []

    def note(rule: str, node: str, outcome) -> None:
        if isinstance(outcome, Verdict):
            verdicts.append(outcome)
            results[rule]["bad"].append(outcome.finding.code)
        elif outcome:
            results[rule]["unknown"].append(outcome)
        else:
            results[rule]["ok"].append(node)

    for node in sorted(c.labels):
        cidrs = c.pod_cidrs.get(node, [])
        intent = c.intent(node)
        if intent.source is None:
            note("selection", node, _not_selected(c, node, intent, cidrs))
            continue
        note("selection", node, None)
        for peer in intent.peers:
            note("peer", node, _peer_as(c, node, intent, peer))
            note("peer", node, _multihop(c, node, intent, peer))
        if cidrs:
            note("advertisement", node, _advertisement(c, node, intent, cidrs))
    if not any(v.finding.code == "BGP_NODE_NOT_SELECTED" for v in verdicts):
        for v in _configs_selecting_nothing(c):
            note("selection", "", v)
    if not any(c.pod_cidrs.values()) and not objects.read(*CILIUM_NODE):
        results["advertisement"] = {"bad": [], "ok": [], "unknown": [
            "not checkable: no CiliumNode (cilium.io) objects and no Node.spec.podCIDRs: the pod "
            "CIDRs the PodCIDR advertisements announce"]}
    speakers = [h for h in c.s.host_of_node.values() if c.s.sessions(h) or c.s.rib_read(h)]
    if not speakers and not objects.rows("cilium_bgp_node_status"):
        # the objects alone: what they ask is computed, whether the nodes do it is not known
        for rule in rules:
            if not results[rule]["bad"]:
                results[rule] = {"bad": [], "ok": [], "unknown": results[rule]["unknown"] + [
                    "the speakers' state (diag collect --kube --via kubectl, or over SSH): "
                    "the objects alone show what is asked, not what the nodes do"]}
    checks = []
    for rule, title in rules.items():
        r = results[rule]
        if r["bad"]:
            checks.append(Check(title, False, "; ".join(dict.fromkeys(r["bad"]))))
        elif r["unknown"]:
            checks.append(Check(title, None, needs="; ".join(dict.fromkeys(r["unknown"]))))
        elif r["ok"]:
            checks.append(Check(title, True, f"{counted(len(set(r['ok'])), 'node')}: the "
                                             "objects and the speakers agree"))
    return verdicts, checks


def _feature_off(c: Cilium) -> Verdict | None:
    config = c.o.config()
    if not config:
        return None
    row = config.get("enable-bgp-control-plane")
    if row is not None and str(row["value"]).lower() == "true":
        return None
    selected = [n for n in c.labels if c.intent(n).source is not None]
    hosts = [c.s.host(n) for n in selected if c.s.host(n)]
    if not selected or not hosts or any(c.s.established(h) for h in hosts):
        return None
    evidence = [c.o.evidence(row, f"enable-bgp-control-plane: {row['value']}") if row else
                c.o.evidence(next(iter(config.values())), "has no enable-bgp-control-plane "
                             "(Cilium's default: off)", at="/data")]
    evidence += [c.o.evidence(c.intent(n).source, f"selects {n}") for n in selected[:3]]
    for host in hosts:
        routers = c.router_sessions_to(c.s.model.hosts[host].node_ip.value)
        evidence += [c.s.session_evidence(r) for r in routers[:1]]
    any_row = row or next(iter(config.values()))
    fix = c.o.patch(any_row, [{"op": "add" if row is None else "replace",
                               "path": "/data/enable-bgp-control-plane", "value": "true"}])
    return Verdict(finding(
        "CILIUM_FEATURE_DISABLED",
        f"cilium-config turns the BGP control plane off while BGP objects select "
        f"{', '.join(selected)}: no node runs a BGP session",
        ["objects", "bgp"], evidence,
        [fix, "kubectl -n kube-system rollout restart ds/cilium   # agents read it at start"],
        hosts=hosts, subject="enable-bgp-control-plane"),
        effects=tuple(("BGP_SESSION_NOT_ESTABLISHED", h) for h in hosts)
        + tuple(("BGP_NO_LISTENER", h) for h in hosts))


def _not_selected(c: Cilium, node: str, intent: NodeIntent, cidrs: list[str]):
    if not cidrs:
        if not c.o.read(*CILIUM_NODE):
            return (f"{node}: no BGP instance in the objects ({intent.why}); whether it has pods "
                    "is not known: not checkable: no CiliumNode (cilium.io) objects")
        return None                            # no pod CIDR: nothing of its to announce
    host = c.s.host(node)
    ip = c.node_ip(node)
    mine = [r for r in c.sessions_of(node) if r.get("state") == "ESTABLISHED"]
    if mine:
        ev = [c.s.session_evidence(r) for r in mine[:2]]
        ev += [c.o.evidence(r, f"nodeSelector {show(r['node_selector'])} leaves out {node}",
                            at="/spec/nodeSelector") for r in intent.selectors[:3]]
        return Verdict(finding(
            "INTENT_NOT_APPLIED",
            f"{node}: the BGP objects give it no BGP instance ({intent.why}) but its speaker "
            f"still has {counted(len(mine), 'Established session')}: the agent runs the "
            "configuration from before the change; its next restart stops them",
            ["objects", *(str(r["daemon"]).lower() for r in mine)], ev,
            _selection_fix(c, node, intent), hosts=[host],
            subject=f"{node} {' '.join(cidrs)}"))
    held, _, _ = c.advertised(node, cidrs[0])
    routers = [r for r in c.router_sessions_to(ip)]
    down = [r for r in routers if r.get("state") != "ESTABLISHED"]
    node_read = host is not None and c.s.collected(host)
    decided = held is False or (held is None and (down or node_read))
    if held is True or not decided:
        return (f"{node}: no BGP instance in the objects ({intent.why}); the state "
                "(its speaker, its peers' RIBs) was not collected")
    _, _, no = c.advertised(node, cidrs[0])
    suspects = culprits(c, intent)
    evidence = [c.o.evidence(r, f"nodeSelector {show(r['node_selector'])}"
                             + (": matches no Node" if r in suspects and len(suspects) <
                                len(intent.selectors) else ""), at="/spec/nodeSelector")
                for r in (suspects + [x for x in intent.selectors if x not in suspects])[:3]]
    evidence.append(c.o.evidence(_node_row(c, node), f"labels {show(c.labels.get(node))}",
                                 "metadata", "labels", at=""))
    evidence += [c.s.session_evidence(r) for r in down[:1]] + no[:2]
    if node_read and not c.sessions_of(node):
        evidence.append(_no_speaker_evidence(c, host))
    effects = tuple(("EGRESS_LEAK_DEFAULT_ROUTE", x) for x in cidrs) + \
        tuple((code, x) for x in cidrs + [ip or node, host or node]
              for code in ("BGP_SESSION_NOT_ESTABLISHED", "BGP_NO_LISTENER",
                           "BGP_TRANSPORT_BLOCKED", "ROUTE_RIB_NOT_IN_FIB",
                           "ROUTE_WRONG_TABLE_OR_BLACKHOLE", "ARP_UNANSWERED"))
    return Verdict(finding(
        "BGP_NODE_NOT_SELECTED",
        f"{node}: {_why_short(c, intent)}, so it runs no BGP instance and nobody learns its "
        f"pod CIDR {', '.join(cidrs)}",
        ["objects", "bgp", "router" if down else None], evidence,
        _selection_fix(c, node, intent), hosts=[host or node],
        subject=f"{node} {' '.join(cidrs)}"),
        absorbs=tuple(("BGP_NO_ADVERTISEMENT", x) for x in cidrs + [host or node]),
        effects=effects)


def _why_short(c: Cilium, intent: NodeIntent) -> str:
    suspects = culprits(c, intent)
    if intent.source is None and suspects and len(suspects) < len(intent.selectors):
        return ("no CiliumBGPClusterConfig selects it; "
                + ", ".join(f"{r['name']}'s nodeSelector {show(r['node_selector'])} matches no "
                            "Node" for r in suspects))
    return intent.why


def _node_row(c: Cilium, node: str) -> dict[str, Any]:
    return next(r for r in c.o.rows("k8s_nodes") if r["name"] == node)


def _no_speaker_evidence(c: Cilium, host: str):
    from diag.model import Evidence

    failed = c.s.failed_commands(host, ("cilium-bgp", "gobgp"))
    if failed:
        return failed[0]
    return Evidence(host, c.s.file(host, "ss-tanpi"), "no line with ESTAB :179",
                    f"{host}: no BGP session (no Established TCP connection on port 179)")


def _key(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def culprits(c: Cilium, intent: NodeIntent) -> list[dict[str, Any]]:
    """The configs most likely meant for the node: those selecting no node at all (an edit
    went wrong there), else every config that was considered."""
    idle = [r for r in intent.selectors if not any(
        _selects(r["node_selector"], labels, absent=True) for labels in c.labels.values())]
    return idle or intent.selectors


def _selection_fix(c: Cilium, node: str, intent: NodeIntent) -> list[str]:
    labels = c.labels.get(node, {})
    out = []
    for row in culprits(c, intent)[:2]:
        selector = row.get("node_selector") or {}
        wanted = (selector.get("matchLabels") or {})
        differing = {k: v for k, v in wanted.items() if labels.get(k) != str(v)}
        idle = not any(_selects(selector, other, absent=True) for other in c.labels.values())
        for key, value in differing.items():
            same_value = [k for k, v in labels.items() if v == str(value) and k not in wanted]
            base = "/spec/nodeSelector/matchLabels/"
            if idle and same_value:
                # the value is the node's under another key: the key was mistyped
                out.append(c.o.patch(row, [{"op": "move", "from": base + _key(key),
                                            "path": base + _key(same_value[0])}]))
            elif idle and key in labels:
                out.append(c.o.patch(row, [{"op": "replace", "path": base + _key(key),
                                            "value": labels[key]}]))
            else:
                out.append(f"kubectl label node {node} {key}={value}")
        if not differing and selector.get("matchExpressions"):
            out.append(f"# {ref_of(row)}: its nodeSelector matchExpressions leave {node} out "
                       f"(labels {show(labels)}); edit them or the node's labels")
    if intent.source is None and "conflict" in intent.why:
        out.append("# make the nodeSelectors of the ClusterConfigs disjoint: one config per node")
    return out or [f"# give {node} a BGP instance: a CiliumBGPClusterConfig whose nodeSelector "
                   f"matches its labels {show(labels)}"]


def _advertisement(c: Cilium, node: str, intent: NodeIntent, cidrs: list[str]):
    chains = [(peer, *c.chain(peer)) for peer in intent.peers]
    if not chains or any(pod for *_, pod in chains):
        return None
    host = c.s.host(node)
    held, yes, no = c.advertised(node, cidrs[0])
    evidence = []
    for peer, families, selected, _ in chains[:2]:
        if peer.legacy:
            evidence.append(c.o.evidence(c._router(peer), "exportPodCIDR is not true"))
            continue
        config_rows = [r for r in c.peer_configs if r["name"] == peer.peer_config]
        evidence.append(c.o.evidence(peer.row, f"peer {peer.address} uses PeerConfig "
                                     f"{peer.peer_config or '(none: Cilium defaults)'}",
                                     "peerConfigRef"))
        if not config_rows and peer.peer_config:
            evidence.append(c.o.evidence(peer.row, f"names PeerConfig {peer.peer_config}, which "
                                         "does not exist: Cilium's default families select "
                                         "no advertisement", "peerConfigRef", "name"))
        for family in families:
            evidence.append(c.o.evidence(family, f"{family['afi']}/{family['safi']} selects "
                                         f"advertisements {show(family['advertisements'])}",
                                         "advertisements"))
        for advert in c.adverts[:3]:
            if advert not in selected:
                evidence.append(c.o.evidence(advert, f"{advert['type']} labelled "
                                             f"{show(advert['labels'])}: not selected",
                                             "metadata", "labels", at=""))
    chain = (f"the advertisements selector of its peers' families selects "
             f"{'only ' + ', '.join(sorted({a['type'] for *_, s, _ in chains for a in s})) if any(s for *_, s, _ in chains) else 'no CiliumBGPAdvertisement'}"
             " (no PodCIDR)")
    if held is True:
        return Verdict(finding(
            "INTENT_NOT_APPLIED",
            f"{node}: the objects announce none of its pod CIDRs ({chain}) but its speaker "
            f"still announces {cidrs[0]}: the agent has not applied the change; it will "
            "withdraw the route when it does",
            ["objects", "bgp"], evidence + yes[:2], _advert_fix(c, chains),
            hosts=[host or node], subject=f"{node} {' '.join(cidrs)}"))
    if held is None:
        return (f"{node}: the objects announce no pod CIDR ({chain}); nothing collected shows "
                "what its speaker announces")
    effects = tuple((code, x) for x in cidrs for code in (
        "EGRESS_LEAK_DEFAULT_ROUTE", "ROUTE_RIB_NOT_IN_FIB", "ROUTE_MISSING_PODCIDR_OFF_LINK",
        "ROUTE_WRONG_TABLE_OR_BLACKHOLE"))
    return Verdict(finding(
        "BGP_NO_ADVERTISEMENT",
        f"{node}: {chain}, so its pod CIDR {', '.join(cidrs)} is announced to nobody; "
        f"the sessions stay up and carry nothing from it",
        ["objects", "bgp"], evidence + no[:3], _advert_fix(c, chains),
        reason="the selector chain of the objects, confirmed by what the speakers hold",
        hosts=[host or node], subject=" ".join(cidrs + [host or node])),
        absorbs=tuple(("BGP_NO_ADVERTISEMENT", x) for x in cidrs + [host or node]),
        effects=effects)


def _advert_fix(c: Cilium, chains) -> list[str]:
    out = []
    pod = [a for a in c.adverts if a["type"] == "PodCIDR"]
    for peer, families, _, _ in chains[:1]:
        for family in families[:1]:
            selector = family["advertisements"] or {}
            wanted = selector.get("matchLabels") or {}
            if pod and wanted:
                advert = pod[0]
                labels = advert["labels"] or {}
                for key, value in wanted.items():
                    out.append(c.o.patch(advert, [{"op": "add" if key not in labels else
                                                   "replace", "path": "/metadata/labels/"
                                                   + key.replace("~", "~0").replace("/", "~1"),
                                                   "value": str(value)}]))
                out.append(f"# or make {ref_of(family)}'s family select the PodCIDR "
                           f"advertisement's labels {show(labels)}")
            elif pod:
                out.append(c.o.patch(family, [{"op": "add", "path": "advertisements",
                                               "value": {"matchLabels": pod[0]["labels"] or {}}}]))
    if not out:
        out.append("# add a CiliumBGPAdvertisement with advertisementType PodCIDR whose labels "
                   "the PeerConfig families' advertisements selector matches")
    return out


def _peer_as(c: Cilium, node: str, intent: NodeIntent, peer: Peer):
    if not peer.address or not peer.peer_asn:
        return None
    real, proof = c.s.real_as(peer.address)
    host = c.s.host(node)
    if real is None:
        return (f"{node}: the AS of peer {peer.address} (no OPEN from it in a capture, its "
                "daemon not collected)")
    if real == int(peer.peer_asn):
        return None
    mine = [r for r in c.sessions_of(node) if r["peer"] == peer.address]
    status = [r for r in c.o.rows("cilium_bgp_node_peer_status") if r["node"] == node
              and r["peer_address"] == peer.address]
    up = [r for r in mine if r.get("state") == "ESTABLISHED"] or \
        [r for r in status if r.get("state") == "ESTABLISHED"]
    evidence = [c.o.evidence(peer.row, f"peer {peer.address} peerASN {peer.peer_asn}",
                             "peerASN")]
    fix = [c.o.patch(peer.row, [{"op": "replace", "path": "peerASN", "value": real}])]
    if up:
        ev = [c.s.session_evidence(r) if "source" in r else
              c.o.evidence(r, f"peer {peer.address} {r['peering_state']}", role="state")
              for r in up[:1]]
        return Verdict(finding(
            "INTENT_NOT_APPLIED",
            f"{node}: {ref_of(peer.row)} says peer {peer.address} is AS {peer.peer_asn}, but "
            f"it runs AS {real} and the session is Established: the agent still runs the "
            "configuration from before the change; its next restart breaks the session",
            ["objects", "bgp", "config"], evidence + proof + ev, fix, hosts=[host or node],
            subject=f"{host or node} {peer.address}"))
    down = mine or status
    if not down and not c.router_sessions_to(c.node_ip(node)):
        return (f"{node}: the session to {peer.address} (no speaker state for it collected)")
    ev = [c.s.session_evidence(r) if "source" in r else
          c.o.evidence(r, f"peer {peer.address} {r['peering_state']}", role="state")
          for r in down[:1]]
    ev += [c.s.session_evidence(r) for r in c.router_sessions_to(c.node_ip(node))[:1]]
    tokens = [host or node, peer.address]
    return Verdict(finding(
        "BGP_BAD_PEER_AS",
        f"{node} <-> {peer.address}: not Established; {ref_of(peer.row)} gives the peer "
        f"peerASN {peer.peer_asn} but it runs AS {real}",
        ["objects", "config", "bgp", "pcap" if any(e.frame for e in proof) else None],
        evidence + proof + ev, fix,
        reason="the object's peerASN against the AS the peer announces in its OPEN / runs",
        hosts=[host or node, c.peer_host(peer.address)], subject=" ".join(tokens)),
        absorbs=tuple((code, t) for t in tokens for code in (
            "BGP_BAD_PEER_AS", "BGP_SESSION_NOT_ESTABLISHED")),
        effects=tuple((code, t) for t in tokens for code in (
            "BGP_NO_LISTENER", "BGP_TRANSPORT_BLOCKED", "BGP_NO_ADVERTISEMENT",
            "EGRESS_LEAK_DEFAULT_ROUTE", "ROUTE_RIB_NOT_IN_FIB")))


def _multihop(c: Cilium, node: str, intent: NodeIntent, peer: Peer):
    if not peer.address or peer.legacy:
        return None
    host = c.s.host(node)
    if not host or not c.s.collected(host):
        return None
    nets = [net(f"{r['address']}/{r['prefixlen']}") for r in c.s.addresses(host)
            if r.get("prefixlen") is not None]
    ip = address(peer.address)
    if ip is None or not nets or any(n and ip in n for n in nets):
        return None
    ebgp = peer.peer_asn and peer.local_asn and int(peer.peer_asn) != int(peer.local_asn)
    config = next((r for r in c.peer_configs if r["name"] == peer.peer_config), None)
    hops = (config or {}).get("ebgp_multihop") or 1
    if not ebgp or int(hops) > 1:
        return None
    mine = [r for r in c.sessions_of(node) if r["peer"] == peer.address]
    if not mine or any(r.get("state") == "ESTABLISHED" for r in mine):
        return None
    evidence = [c.o.evidence(peer.row, f"eBGP peer {peer.address} (AS {peer.peer_asn}, local "
                             f"AS {peer.local_asn})", "peerAddress")]
    if config:
        evidence.append(c.o.evidence(config, f"ebgpMultihop {hops}", "ebgpMultihop"))
    subnets = sorted({str(n) for n in nets if n and n.prefixlen < 32})
    fix = [c.o.patch(config, [{"op": "add", "path": "ebgpMultihop", "value": 2}])] if config \
        else ["# give the peer a CiliumBGPPeerConfig with ebgpMultihop 2 or more"]
    return Verdict(finding(
        "BGP_EBGP_MULTIHOP_TTL",
        f"{node} -> {peer.address}: eBGP peer on none of the node's subnets "
        f"({', '.join(subnets)}) with ebgpMultihop {hops}: its packets leave with TTL 1 and "
        "die on the way; the session stays down",
        ["objects", "ip", str(mine[0]["daemon"]).lower()],
        evidence + [c.s.session_evidence(mine[0])], fix, hosts=[host],
        subject=f"{host} {peer.address}"),
        absorbs=(("BGP_SESSION_NOT_ESTABLISHED", peer.address),
                 ("BGP_TRANSPORT_BLOCKED", peer.address)))


def _configs_selecting_nothing(c: Cilium) -> list[Verdict]:
    out = []
    by_name: dict[str, list[dict]] = defaultdict(list)
    for r in c.instances:
        by_name[r["name"]].append(r)
    for name, rows in by_name.items():
        if any(any(_selects(r["node_selector"], labels, absent=True)
                   for labels in c.labels.values()) for r in rows):
            continue
        row = rows[0]
        peers = [p["peer_address"] for p in c.peers if p["name"] == name and p["peer_address"]]
        sessions = [r for r in c.s.rows("bgp_peers") if r["peer"] in peers
                    and r.get("state") == "ESTABLISHED"
                    and r["host"] in c.s.host_of_node.values()]
        if sessions or not c.s.rows("bgp_peers"):
            continue          # peering anyway (not applied), or nothing to show the effect
        out.append(Verdict(finding(
            "BGP_NODE_NOT_SELECTED",
            f"{ref_of(row)}: its nodeSelector {show(row['node_selector'])} matches none of the "
            f"{counted(len(c.labels), 'Node')}; no node peers with {', '.join(peers) or 'its peers'}",
            ["objects", "bgp"], [c.o.evidence(row, f"nodeSelector {show(row['node_selector'])}",
                                              at="/spec/nodeSelector")],
            [f"# fix {ref_of(row)}'s nodeSelector to match the nodes' labels "
             f"(kubectl get nodes --show-labels)"], subject=f"{name}")))
    return out
