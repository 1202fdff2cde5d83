"""cilium-config against what the nodes do: routing mode, auto-direct-node-routes, the tunnel,
the native routing CIDR.

Contract: :func:`analyze(objects, state) -> (verdicts, checks)` (:mod:`diag.analyze.intent`).
The ConfigMap ``kube-system/cilium-config`` is read as Cilium's agents read it at start
(``routing-mode``, before 1.14 ``tunnel``; ``tunnel-protocol`` default vxlan;
``tunnel-port`` default 8472 for vxlan, 6081 for geneve; ``auto-direct-node-routes``;
``ipv4-native-routing-cidr``); the state is each node's ``ip -d link`` and ``ip route``:

- ``ROUTE_MISSING_PODCIDR_OFF_LINK``: native routing with ``auto-direct-node-routes: true`` and
  nodes on different L2 subnets (the Nodes' InternalIPs against the collected hosts'
  subnets): a node routes its on-link peers' pod CIDRs directly (the agents applied it) and has
  no route but the default one for an off-link node's pod CIDR;
- ``VXLAN_PORT_MISMATCH``: tunnel mode, and the nodes' Cilium tunnel devices disagree, some on
  the configured port and some not (agents restarted after the change and agents not);
- ``NATIVE_ROUTING_CIDR_MISMATCH``: native routing, and a node's pod CIDR (allocated and
  routed on the node) outside ``ipv4-native-routing-cidr``;
- ``INTENT_NOT_APPLIED``: the ConfigMap asks for auto-direct routes or a tunnel port that no
  node runs yet (every agent still on the old configuration).
"""
from __future__ import annotations

from typing import Any

from diag.analyze.intent import Objects, State, Verdict, address, finding, net
from diag.model import Check
from diag.words import counted

CONFIG_MAP = ("", "ConfigMap")
DEFAULT_PORTS = {"vxlan": 8472, "geneve": 6081}
CILIUM_DEVICES = {"vxlan": "cilium_vxlan", "geneve": "cilium_geneve"}
RESTART = "kubectl -n kube-system delete pod -l k8s-app=cilium --field-selector spec.nodeName={}"


def analyze(objects: Objects, state: State) -> tuple[list[Verdict], list[Check]]:
    config = objects.config()
    if not config:
        return [], []
    mode = _routing(config)
    verdicts: list[Verdict] = []
    checks: list[Check] = []
    nodes = _nodes(objects, state)
    if mode == "native":
        v, c = _auto_direct(objects, state, config, nodes)
        verdicts += v
        checks += c
        v, c = _native_cidr(objects, state, config, nodes)
        verdicts += v
        checks += c
    elif mode == "tunnel":
        v, c = _tunnel(objects, state, config, nodes)
        verdicts += v
        checks += c
    return verdicts, checks


def _routing(config: dict[str, dict]) -> str:
    if "routing-mode" in config:
        return str(config["routing-mode"]["value"])
    legacy = config.get("tunnel")
    if legacy is not None:
        return "native" if str(legacy["value"]) == "disabled" else "tunnel"
    return "tunnel"


def _nodes(objects: Objects, state: State) -> list[dict[str, Any]]:
    """Each Node: name, IP, host (collected), pod CIDRs (the IPAM's), its host's subnets."""
    cilium = {str(r["node"]): r for r in objects.rows("cilium_nodes")}
    out = []
    for r in objects.rows("k8s_nodes"):
        name = str(r["name"])
        cidrs = list((cilium.get(name) or {}).get("pod_cidrs") or r["pod_cidrs"] or [])
        host = state.host(name)
        ips = [address(ip) for ip in r["internal_ips"] or []]
        # the node's L2 subnet: the one holding its InternalIP (the cluster NIC's)
        subnets = [net(f"{a['address']}/{a['prefixlen']}") for a in state.addresses(host)
                   if a.get("prefixlen") is not None and a["prefixlen"] < 32
                   and address(a["address"]) in ips] if host else []
        out.append({"name": name, "row": r, "ip": (r["internal_ips"] or [None])[0],
                    "host": host if host and state.collected(host) else None,
                    "cidrs": [c for c in cidrs if net(c) and net(c).version == 4],
                    "subnets": [s for s in subnets if s is not None]})
    return out


def _covering(state: State, host: str, target: str) -> dict[str, Any] | None:
    """The most specific non-default route of ``host`` (any table) covering ``target``."""
    ip = address(target)
    best = None
    for r in state.routes(host):
        dst = r.get("dst")
        if not dst or dst == "default" or r.get("type") not in (None, "unicast"):
            continue
        network = net(dst)
        if network is None or network.prefixlen == 0 or ip is None or ip not in network:
            continue
        if best is None or network.prefixlen > net(best["dst"]).prefixlen:
            best = r
    return best


def _auto_direct(objects, state, config, nodes) -> tuple[list[Verdict], list[Check]]:
    name = "auto-direct-node-routes reaches every node (nodes on one L2 subnet)"
    row = config.get("auto-direct-node-routes")
    if row is None or str(row["value"]).lower() != "true":
        return [], []
    collected = [n for n in nodes if n["host"] and n["subnets"]]
    if not collected:
        return [], [Check(name, None, needs="the nodes' addresses and routes (diag collect over "
                                            "SSH or through the agent pods)")]
    verdicts, applied_anywhere, pairs = [], False, []
    for me in collected:
        on_link = [p for p in nodes if p is not me and p["ip"] and
                   any(address(p["ip"]) in s for s in me["subnets"])]
        off_link = [p for p in nodes if p is not me and p["ip"] and p not in on_link]
        direct = [(p, r) for p in on_link for c in p["cidrs"]
                  for r in [_covering(state, me["host"], str(net(c).network_address + 1))]
                  if r and r.get("gateway") == p["ip"]]
        if direct:
            applied_anywhere = True
        for peer in off_link:
            for cidr in peer["cidrs"]:
                probe = str(net(cidr).network_address + 1)
                route = _covering(state, me["host"], probe)
                if route is None:
                    pairs.append((me, peer, cidr, direct))
    if pairs and applied_anywhere:
        by_host: dict[str, list] = {}
        for me, peer, cidr, direct in pairs:
            by_host.setdefault(me["name"], []).append((me, peer, cidr, direct))
        for node, items in by_host.items():
            me = items[0][0]
            cidrs = [cidr for _, _, cidr, _ in items]
            peers = sorted({p["name"] for _, p, _, _ in items})
            ev = [objects.evidence(row, "auto-direct-node-routes: true"),
                  objects.evidence(config["routing-mode"], f"routing-mode: "
                                   f"{config['routing-mode']['value']}")
                  if "routing-mode" in config else None]
            for _, peer, _, _ in items[:2]:
                ev.append(objects.evidence(peer["row"], f"InternalIP {peer['ip']} (off "
                                           f"{', '.join(str(net) for net in me['subnets'])})",
                                           "status", "addresses", at=""))
            for peer, route in items[0][3][:1]:
                ev.append(state.route_evidence(route))
            ev += _no_route_evidence(state, me["host"], cidrs)
            verdicts.append(Verdict(finding(
                "ROUTE_MISSING_PODCIDR_OFF_LINK",
                f"{node}: cilium-config routes pods natively with auto-direct-node-routes, which "
                f"only reaches nodes on its own L2 subnet; {', '.join(peers)} "
                f"({', '.join(cidrs)}) {'is' if len(peers) == 1 else 'are'} off-link and "
                f"{node} has no route to {'it' if len(cidrs) == 1 else 'them'} but the "
                "default one",
                ["objects", "ip"], ev,
                [objects.patch(config["routing-mode"], [{"op": "replace",
                                                         "path": "/data/routing-mode",
                                                         "value": "tunnel"}])
                 + "   # encapsulate between subnets, then restart the agents"
                 if "routing-mode" in config else "# switch Cilium to tunnel mode",
                 "# or keep native routing and let BGP (or static routes via the router) carry "
                 "the pod CIDRs of the other subnets"],
                reason="the ConfigMap's routing against the nodes' subnets, confirmed by the "
                       "nodes' routes", hosts=[me["host"]], subject=", ".join(cidrs)),
                absorbs=tuple(("ROUTE_MISSING_PODCIDR_OFF_LINK", c) for c in cidrs),
                effects=tuple((code, c) for c in cidrs for code in (
                    "EGRESS_LEAK_DEFAULT_ROUTE", "ROUTE_RIB_NOT_IN_FIB"))))
        return verdicts, [Check(name, False, "; ".join(v.finding.summary[:80]
                                                       for v in verdicts))]
    if not applied_anywhere and any(p for p in nodes if p["ip"]):
        on_link_pairs = [(me, p) for me in collected for p in nodes if p is not me and p["ip"]
                         and any(address(p["ip"]) in s for s in me["subnets"]) and p["cidrs"]]
        if on_link_pairs:
            me, peer = on_link_pairs[0]
            route = _covering(state, me["host"], str(net(peer["cidrs"][0]).network_address + 1))
            ev = [objects.evidence(row, "auto-direct-node-routes: true")]
            ev += [state.route_evidence(route)] if route else \
                _no_route_evidence(state, me["host"], peer["cidrs"][:1])
            return [Verdict(finding(
                "INTENT_NOT_APPLIED",
                f"cilium-config asks for auto-direct-node-routes, but no node routes its on-link "
                f"peers' pod CIDRs directly (e.g. {me['name']} -> {peer['name']} "
                f"{peer['cidrs'][0]} {'via ' + str(route['gateway']) if route and route.get('gateway') else 'has no such route'}): "
                "the agents have not restarted since the change; when they do, nodes on "
                "other subnets lose their pod routes",
                ["objects", "ip"], ev,
                [RESTART.format(me["name"]) + "   # after checking the off-link nodes' routes"],
                hosts=[me["host"]], subject=" ".join(peer["cidrs"])))], \
                [Check(name, False, "not applied")]
    return [], [Check(name, True, f"{counted(len(collected), 'node')}: every node's pod CIDR "
                                  "is routed")]


def _no_route_evidence(state: State, host: str, cidrs: list[str]) -> list:
    from diag.model import Evidence

    rows = state.routes(host)
    if not rows:
        return []
    default = next((r for r in rows if r.get("dst") == "default"), None)
    out = [Evidence(host, state.file(host, rows[0]["source"]), f"no line with {c}",
                    f"{host}: no route to {c}") for c in cidrs[:1]]
    if default:
        out.append(state.route_evidence(default))
    return out


def _tunnel(objects, state, config, nodes) -> tuple[list[Verdict], list[Check]]:
    name = "the tunnel devices use cilium-config's protocol and port"
    protocol = str(config["tunnel-protocol"]["value"]) if "tunnel-protocol" in config else "vxlan"
    if "tunnel" in config and "routing-mode" not in config:
        protocol = str(config["tunnel"]["value"])
    port_row = config.get("tunnel-port")
    try:
        port = int(port_row["value"]) if port_row and int(port_row["value"]) else \
            DEFAULT_PORTS.get(protocol)
    except ValueError:
        port = DEFAULT_PORTS.get(protocol)
    device = CILIUM_DEVICES.get(protocol)
    links = []
    for n in nodes:
        if not n["host"]:
            continue
        link = next((r for r in state.links(n["host"]) if r["ifname"] == device), None)
        if link is not None:
            links.append((n, link))
    if not links:
        return [], [Check(name, None, needs=f"the nodes' {device or 'tunnel'} devices "
                                            "(ip -d link)")]
    right = [(n, l) for n, l in links if l.get("vxlan_port") == port]
    wrong = [(n, l) for n, l in links if l.get("vxlan_port") != port]
    if not wrong:
        return [], [Check(name, True, f"{counted(len(links), 'node')} on {protocol} port {port}")]
    cite = objects.evidence(port_row, f"tunnel-port: {port_row['value']}") if port_row else \
        objects.evidence(next(iter(config.values())), f"no tunnel-port: {protocol}'s default "
                         f"{port}", at="/data")
    ev = [cite] + [state.link_evidence(l, f"{n['name']} {device} dstport {l.get('vxlan_port')}")
                   for n, l in links]
    stale = sorted(n["name"] for n, _ in wrong)
    if right:
        fix = [RESTART.format(node) + "   # its agent recreates the device from the ConfigMap"
               for node in stale]
        if port_row:
            old = wrong[0][1].get("vxlan_port")
            fix.append("# or, to go back: " + objects.patch(port_row, [
                {"op": "replace", "path": port_row["pointer"], "value": str(old)}])
                + f" and restart the agents on {', '.join(sorted(n['name'] for n, _ in right))}")
        return [Verdict(finding(
            "VXLAN_PORT_MISMATCH",
            f"cilium-config sets the {protocol} port to {port}; "
            f"{', '.join(sorted(n['name'] for n, _ in right))} "
            f"{'runs' if len(right) == 1 else 'run'} it, but "
            f"{', '.join(stale)} still use "
            f"{', '.join(sorted({str(l.get('vxlan_port')) for _, l in wrong}))}: their agents "
            "have not restarted since the change, and the nodes cannot reach each other's pods",
            ["objects", "ip-link"], ev, fix,
            hosts=[n["host"] for n, _ in links],
            subject=" ".join([str(port)] + [str(l.get("vxlan_port")) for _, l in wrong])),
            absorbs=(("VXLAN_PORT_MISMATCH", "*"),),
            effects=tuple((code, n["host"]) for n, _ in links for code in (
                "EGRESS_LEAK_DEFAULT_ROUTE", "OVERLAY_UDP_BLOCKED")))], \
            [Check(name, False, f"{', '.join(stale)} on another port")]
    return [Verdict(finding(
        "INTENT_NOT_APPLIED",
        f"cilium-config sets the {protocol} port to {port}, but every node's {device} still "
        f"uses {', '.join(sorted({str(l.get('vxlan_port')) for _, l in wrong}))}: the agents "
        "have not restarted since the change; restarted one by one, they split the cluster "
        "into two ports until the last one restarts",
        ["objects", "ip-link"], ev,
        ["kubectl -n kube-system rollout restart ds/cilium   # all agents, then every node "
         f"uses {port}"], hosts=[n["host"] for n, _ in links], subject=str(port)))], \
        [Check(name, False, "not applied")]


def _native_cidr(objects, state, config, nodes) -> tuple[list[Verdict], list[Check]]:
    name = "ipv4-native-routing-cidr covers the pod CIDRs"
    row = config.get("ipv4-native-routing-cidr")
    if row is None or net(str(row["value"]).split()[0]) is None:
        return [], []
    native = net(str(row["value"]).split()[0])
    outside = []
    for n in nodes:
        for cidr in n["cidrs"]:
            network = net(cidr)
            if network.version == native.version and not network.subnet_of(native):
                routed = n["host"] and any(r.get("dst") == cidr for r in state.routes(n["host"]))
                if routed:
                    outside.append((n, cidr))
    if not outside:
        return [], [Check(name, True, f"{native} holds every node's pod CIDR")]
    ev = [objects.evidence(row, f"ipv4-native-routing-cidr: {row['value']}")]
    for n, cidr in outside[:3]:
        route = next(r for r in state.routes(n["host"]) if r.get("dst") == cidr)
        ev.append(state.route_evidence(route))
    return [Verdict(finding(
        "NATIVE_ROUTING_CIDR_MISMATCH",
        f"cilium-config's ipv4-native-routing-cidr {native} does not cover "
        + ", ".join(f"{c} ({n['name']})" for n, c in outside)
        + ": Cilium masquerades the pod traffic to them instead of routing it",
        ["objects", "ip"], ev,
        [objects.patch(row, [{"op": "replace", "path": row["pointer"],
                              "value": "<a CIDR holding every pod CIDR>"}])],
        subject=" ".join(c for _, c in outside)))], [Check(name, False, "")]
