"""What Kubernetes knows about the cluster, read from the Kubernetes tables (pure).

Contract: :func:`read_kube(tables) -> KubeView` and :func:`match_nodes(view, hosts, tables)`.
Only kinds whose list was read (``kube_resources`` outcome ``OK``) count: a kind refused by
RBAC, not installed or never collected says nothing, and the model then infers as without
Kubernetes. Every value is an :class:`~diag.facts.model.Inferred` with ``source``
``kubernetes`` and a ``how`` that starts ``kubernetes <Kind>/<name>``:

- the Nodes: name, InternalIPs (the node IP), the other addresses, the ``Hostname`` address;
  a CiliumNode without a Node read (Nodes refused) stands for its node (name, InternalIPs);
- the CNI (``cilium`` from the ConfigMap ``kube-system/cilium-config`` or the CiliumNodes,
  ``calico`` from its IPPools, BlockAffinities, IPAMBlocks) and its IPAM mode: Cilium's ``ipam``
  key (absent: Cilium's default ``cluster-pool``), ``calico`` for Calico's block IPAM;
- each node's pod CIDRs as the IPAM in force assigned them: ``kubernetes`` ->
  ``Node.spec.podCIDRs``; ``cluster-pool`` -> ``CiliumNode.spec.ipam.podCIDRs``; ``multi-pool``
  -> the CIDRs of ``CiliumNode.spec.ipam.pools.allocated``; Calico -> the confirmed
  BlockAffinities of the node (else the IPAMBlocks whose affinity is ``host:<node>``). Cilium's
  cloud modes (``eni``, ``azure``, ...) assign no per-node CIDR: none is taken. With no Cilium
  or Calico object at all, ``Node.spec.podCIDRs`` is the only allocation Kubernetes knows
  (host-local IPAM of flannel, kindnet, ...) and is taken, saying so;
- the cluster's pod range (Cilium's ``cluster-pool-ipv4-cidr`` or
  ``ipv4-native-routing-cidr``; the one enabled IPv4 Calico IPPool);
- routing (``native``, ``tunnel``, or Calico's ``cross-subnet``) and the tunnel
  (``{"protocol", "port"}``): Cilium's ``routing-mode``/``tunnel-protocol``/``tunnel-port``
  (before 1.14 ``tunnel: disabled|vxlan|geneve``; defaults tunnel, vxlan, 8472/6081); Calico's
  IPPool ``vxlanMode``/``ipipMode`` and FelixConfiguration ``vxlanPort`` (default 4789);
- the LoadBalancer IPs: ``status.loadBalancer.ingress`` of the Services of type LoadBalancer.

:func:`match_nodes` pairs SSH hosts with Nodes: first by address (a Node address is an address
of the host, from ``ip addr``), then by name (the Node's name or ``Hostname`` address equals the
host's name or the ``hostname`` it printed, whole or up to the first dot, case-insensitive).
Each Node and each host is matched at most once.
"""
from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from diag.facts.model import NOT_READ, Inferred
from diag.values import is_missing

SOURCE = "kubernetes"
CILIUM_CONFIG = ("kube-system", "cilium-config")
CILIUM_TUNNEL_PORTS = {"vxlan": 8472, "geneve": 6081}
CALICO_VXLAN_PORT = 4789
CALICO_GROUPS = ("projectcalico.org", "crd.projectcalico.org")


@dataclass(frozen=True)
class KubeNode:
    name: str
    internal_ips: tuple[str, ...]
    addresses: tuple[str, ...]          # every address of status.addresses but Hostname
    hostname: str | None
    pod_cidrs: tuple[str, ...]          # what the IPAM in force assigned (maybe none)
    pod_how: str                        # where they come from, or why there are none
    kind: str = "Node"                  # the object known: Node, or CiliumNode without a Node


@dataclass(frozen=True)
class KubeView:
    read: frozenset[tuple[str, str]]    # (group, kind) whose list was read
    nodes: dict[str, KubeNode] = field(default_factory=dict)
    cni: Inferred = NOT_READ
    ipam: Inferred = NOT_READ
    pod_range: Inferred = NOT_READ
    routing: Inferred = NOT_READ
    tunnel: Inferred = NOT_READ
    lb_ips: Inferred = NOT_READ

    @property
    def present(self) -> bool:
        return bool(self.read)


def ref(kind: str, name: Any, namespace: Any = None) -> str:
    """``kubernetes <Kind>/<name>`` (``in <namespace>`` for a namespaced object)."""
    where = f" in {namespace}" if namespace and not is_missing(namespace) else ""
    return f"{SOURCE} {kind}/{name}{where}"


def _records(df, *columns: str) -> list[dict[str, Any]]:
    if df is None or not len(df):
        return []
    out = []
    for row in df[list(columns)].to_dict("records"):
        out.append({k: (None if not isinstance(v, (list, dict, tuple)) and is_missing(v) else v)
                    for k, v in row.items()})
    return out


def _net(text: Any):
    try:
        return ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        return None


def _v4_first(cidrs) -> list[str]:
    """IPv4 first, else in the IPAM's order (the model's pod CIDR is one prefix; a dual-stack
    node has two, a multi-pool node one per pool)."""
    return sorted((str(c) for c in cidrs if _net(c) is not None), key=lambda c: _net(c).version)


def read_kube(tables: dict[str, Any]) -> KubeView:
    read = frozenset((str(r["group"] or ""), str(r["kind"]))
                     for r in _records(tables.get("kube_resources"), "group", "kind", "outcome")
                     if r["outcome"] == "OK")
    if not read:
        return KubeView(read)
    config = _cilium_config(tables) if ("", "ConfigMap") in read else None
    cilium_nodes = {r["node"]: r for r in _records(tables.get("cilium_nodes"), "node",
                                                   "pod_cidrs", "pool_cidrs")} \
        if ("cilium.io", "CiliumNode") in read else {}
    calico = any((group, kind) in read for group in CALICO_GROUPS
                 for kind in ("IPPool", "BlockAffinity", "IPAMBlock"))
    cni, ipam = _cni_and_ipam(config, bool(cilium_nodes), calico, tables)
    nodes = _nodes(tables, read, ipam.value, cilium_nodes, config)
    routing, tunnel = _routing(config, tables) if cni.value == "cilium" and config else \
        _calico_routing(tables) if cni.value == "calico" else \
        (Inferred(None, "no cilium-config or Calico IPPool read"),) * 2
    return KubeView(read=read, nodes=nodes, cni=cni, ipam=ipam,
                    pod_range=_pod_range(cni.value, ipam.value, config, tables),
                    routing=routing, tunnel=tunnel, lb_ips=_lb_ips(tables, read))


def _cilium_config(tables: dict[str, Any]) -> dict[str, str] | None:
    rows = [r for r in _records(tables.get("cilium_config"), "namespace", "name", "key", "value")
            if (r["namespace"], r["name"]) == CILIUM_CONFIG]
    return {r["key"]: str(r["value"]) for r in rows} if rows else None


CONFIG_REF = ref("ConfigMap", CILIUM_CONFIG[1], CILIUM_CONFIG[0])


def _cni_and_ipam(config: dict[str, str] | None, cilium_nodes: bool, calico: bool,
                  tables: dict[str, Any]) -> tuple[Inferred, Inferred]:
    if config is not None:
        mode = config.get("ipam")
        how = f"{CONFIG_REF} ipam: {mode}" if mode else \
            f"{CONFIG_REF} has no ipam key: Cilium's default cluster-pool"
        return Inferred("cilium", CONFIG_REF, SOURCE), Inferred(mode or "cluster-pool", how,
                                                                 SOURCE)
    if cilium_nodes:
        return (Inferred("cilium", f"{SOURCE} CiliumNode objects exist", SOURCE),
                Inferred(None, "cilium-config not read: Cilium's IPAM mode unknown"))
    if calico:
        pools = _records(tables.get("calico_ip_pools"), "name")
        blocks = _records(tables.get("calico_block_affinities"), "name")
        what = ref("IPPool", pools[0]["name"]) if pools else \
            ref("BlockAffinity", blocks[0]["name"]) if blocks else f"{SOURCE} Calico IPAM kinds"
        return Inferred("calico", what, SOURCE), Inferred("calico", f"{what}: Calico's block "
                                                          "IPAM (BlockAffinity, IPAMBlock)",
                                                          SOURCE)
    return (Inferred(None, "no cilium-config, CiliumNode or Calico IPAM object read"),
            Inferred(None, "no Cilium or Calico IPAM configuration read"))


def _nodes(tables: dict[str, Any], read, ipam: str | None, cilium_nodes: dict[str, dict],
           config: dict[str, str] | None) -> dict[str, KubeNode]:
    """The Nodes; and, for a node whose Node was not read (Nodes refused by RBAC), its
    CiliumNode, which carries the node's addresses too."""
    addresses: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for r in _records(tables.get("k8s_node_addresses"), "node", "type", "address"):
        addresses[r["node"]].append((r["type"], r["address"]))
    affinities = _calico_blocks(tables) if ipam == "calico" else {}
    rows = _records(tables.get("k8s_nodes"), "name", "hostname", "internal_ips",
                    "pod_cidrs") if ("", "Node") in read else []
    out = {}
    for r in rows:
        name = r["name"]
        cidrs, how = _pod_cidrs(name, list(r["pod_cidrs"] or []), ipam, cilium_nodes,
                                affinities, config)
        out[name] = KubeNode(
            name=name, internal_ips=tuple(r["internal_ips"] or ()),
            addresses=tuple(a for kind, a in addresses.get(name, []) if kind != "Hostname"),
            hostname=r["hostname"], pod_cidrs=tuple(_v4_first(cidrs)), pod_how=how)
    extra = _records(tables.get("cilium_nodes"), "node", "internal_ips") if cilium_nodes else []
    for r in extra:
        if r["node"] in out:
            continue
        cidrs, how = _pod_cidrs(r["node"], [], ipam, cilium_nodes, affinities, config)
        ips = tuple(r["internal_ips"] or ())
        out[r["node"]] = KubeNode(name=r["node"], internal_ips=ips, addresses=ips,
                                  hostname=None, pod_cidrs=tuple(_v4_first(cidrs)),
                                  pod_how=how, kind="CiliumNode")
    return out


def _pod_cidrs(name: str, node_cidrs: list[str], ipam: str | None,
               cilium_nodes: dict[str, dict], affinities: dict[str, list[tuple[str, str]]],
               config: dict[str, str] | None) -> tuple[list[str], str]:
    mode = f"ipam {ipam}: {CONFIG_REF}" if config is not None else f"ipam {ipam}"
    if ipam == "kubernetes":
        return node_cidrs, f"{ref('Node', name)} spec.podCIDRs ({mode})"
    if ipam in ("cluster-pool", "cluster-pool-v2beta", "multi-pool") or \
            (ipam is None and cilium_nodes):
        cn = cilium_nodes.get(name)
        if cn is None:
            return [], f"no CiliumNode {name} read ({mode})"
        if ipam == "multi-pool":
            pools = [p for p in cn["pool_cidrs"] or [] if isinstance(p, dict)]
            cidrs = [c for p in pools for c in p.get("cidrs") or []]
            named = ", ".join(str(p.get("pool")) for p in pools)
            return cidrs, (f"{ref('CiliumNode', name)} spec.ipam.pools.allocated "
                           f"(pools {named or 'none'}; {mode})")
        known = mode if ipam else "ipam mode unknown: cilium-config not read"
        return list(cn["pod_cidrs"] or []), \
            f"{ref('CiliumNode', name)} spec.ipam.podCIDRs ({known})"
    if ipam == "calico":
        blocks = affinities.get(name, [])
        if not blocks:
            return [], f"no Calico block is affine to {name}"
        return [cidr for _, cidr in blocks], "; ".join(how for how, _ in blocks)
    if ipam is not None:
        return [], f"Cilium ipam {ipam} assigns no per-node CIDR ({CONFIG_REF})"
    return node_cidrs, (f"{ref('Node', name)} spec.podCIDRs (no Cilium or Calico IPAM found: "
                        "the kube-controller-manager's allocation, as host-local IPAM uses it)")


def _calico_blocks(tables: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """node -> [(how, cidr)]: its confirmed BlockAffinities, else the IPAMBlocks whose affinity
    is ``host:<node>`` (a cluster read without BlockAffinities, e.g. refused)."""
    affine: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for r in _records(tables.get("calico_block_affinities"), "name", "node", "cidr", "state",
                      "deleted"):
        if r["deleted"] or r["state"] not in (None, "confirmed"):
            continue
        affine[r["node"]].append((f"{ref('BlockAffinity', r['name'])} spec.cidr", r["cidr"]))
    blocks: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for r in _records(tables.get("calico_ipam_blocks"), "name", "node", "cidr", "deleted"):
        if r["node"] and not r["deleted"]:
            blocks[r["node"]].append(((f"{ref('IPAMBlock', r['name'])} spec.affinity "
                                       f"host:{r['node']}"), r["cidr"]))
    return {node: affine.get(node) or blocks[node] for node in set(affine) | set(blocks)}


def _pod_range(cni: str | None, ipam: str | None, config: dict[str, str] | None,
               tables: dict[str, Any]) -> Inferred:
    if cni == "cilium" and config is not None:
        for key in (("cluster-pool-ipv4-cidr",) if ipam in ("cluster-pool", None) else ()) + \
                ("ipv4-native-routing-cidr",):
            if config.get(key) and _net(config[key].split()[0]) is not None:
                return Inferred(str(_net(config[key].split()[0])),
                                f"{CONFIG_REF} {key}", SOURCE)
        return Inferred(None, f"{CONFIG_REF} names no cluster pod range")
    if cni == "calico":
        pools = [r for r in _records(tables.get("calico_ip_pools"), "name", "cidr", "disabled")
                 if not r["disabled"] and _net(r["cidr"]) and _net(r["cidr"]).version == 4]
        if len(pools) == 1:
            return Inferred(str(_net(pools[0]["cidr"])),
                            f"{ref('IPPool', pools[0]['name'])} spec.cidr", SOURCE)
        return Inferred(None, f"{len(pools)} enabled IPv4 Calico IPPools: no one pod range")
    return Inferred(None, "no cilium-config or Calico IPPool read")


def _routing(config: dict[str, str], tables: dict[str, Any]) -> tuple[Inferred, Inferred]:
    mode, legacy = config.get("routing-mode"), config.get("tunnel")
    if mode:
        routing = Inferred(mode, f"{CONFIG_REF} routing-mode: {mode}", SOURCE)
        protocol = config.get("tunnel-protocol") or "vxlan"
        protocol_how = f"tunnel-protocol: {protocol}" if config.get("tunnel-protocol") else \
            "no tunnel-protocol: Cilium's default vxlan"
    elif legacy:
        native = legacy == "disabled"
        routing = Inferred("native" if native else "tunnel",
                           f"{CONFIG_REF} tunnel: {legacy} (the key before Cilium 1.14)", SOURCE)
        protocol, protocol_how = (None, "") if native else (legacy, f"tunnel: {legacy}")
    else:
        routing = Inferred("tunnel", f"{CONFIG_REF} has no routing-mode: Cilium's default "
                           "tunnel", SOURCE)
        protocol, protocol_how = "vxlan", "Cilium's default vxlan"
    if routing.value != "tunnel" or protocol is None:
        return routing, Inferred(None, f"{routing.how}: no tunnel", SOURCE)
    port_text = config.get("tunnel-port")
    try:
        port = int(port_text) if port_text and int(port_text) else \
            CILIUM_TUNNEL_PORTS.get(protocol)
    except ValueError:
        port = CILIUM_TUNNEL_PORTS.get(protocol)
    port_how = f"tunnel-port: {port_text}" if port_text and port_text != "0" else \
        f"Cilium's default port {port}"
    return routing, Inferred({"protocol": protocol, "port": port},
                             f"{CONFIG_REF} {protocol_how}, {port_how}", SOURCE)


def _calico_routing(tables: dict[str, Any]) -> tuple[Inferred, Inferred]:
    pools = [r for r in _records(tables.get("calico_ip_pools"), "name", "cidr", "vxlan_mode",
                                 "ipip_mode", "disabled") if not r["disabled"]]
    if not pools:
        return (Inferred(None, "no enabled Calico IPPool read"),) * 2
    pool = pools[0]
    what = ref("IPPool", pool["name"])
    vxlan, ipip = pool["vxlan_mode"] or "Never", pool["ipip_mode"] or "Never"
    modes = f"{what} vxlanMode: {vxlan}, ipipMode: {ipip}"
    if vxlan == "Never" and ipip == "Never":
        return Inferred("native", modes, SOURCE), Inferred(None, f"{modes}: no tunnel", SOURCE)
    routing = "cross-subnet" if "CrossSubnet" in (vxlan, ipip) else "tunnel"
    if vxlan != "Never":
        port, port_how = CALICO_VXLAN_PORT, f"Calico's default VXLAN port {CALICO_VXLAN_PORT}"
        for r in _records(tables.get("calico_felix_settings"), "name", "key", "value"):
            if r["key"] == "vxlanPort" and r["value"] is not None:
                port = int(r["value"])
                port_how = f"{ref('FelixConfiguration', r['name'])} vxlanPort: {port}"
        return Inferred(routing, modes, SOURCE), Inferred({"protocol": "vxlan", "port": port},
                                                          f"{modes}; {port_how}", SOURCE)
    return Inferred(routing, modes, SOURCE), Inferred({"protocol": "ipip", "port": None}, modes,
                                                      SOURCE)


def _lb_ips(tables: dict[str, Any], read) -> Inferred:
    if ("", "Service") not in read:
        return Inferred(None, "Services not read")
    found: dict[str, list[str]] = defaultdict(list)
    for r in _records(tables.get("k8s_services"), "namespace", "name", "type", "ingress_ips"):
        if r["type"] == "LoadBalancer":
            for ip in r["ingress_ips"] or []:
                found[ip].append(ref("Service", r["name"], r["namespace"]))
    if not found:
        return Inferred([], f"{SOURCE}: no Service of type LoadBalancer has an ingress IP",
                        SOURCE)
    how = "; ".join(f"{ip}: {', '.join(refs)} status.loadBalancer.ingress"
                    for ip, refs in sorted(found.items()))
    return Inferred(sorted(found), how, SOURCE)


def match_nodes(view: KubeView, hosts: list[str], tables: dict[str, Any]) -> dict[str, Inferred]:
    """SSH host -> the Node it is (value: the Node's name), by address, then by name."""
    if not view.nodes:
        return {}
    held: dict[str, set[str]] = defaultdict(set)
    for r in _records(tables.get("addresses"), "host", "address"):
        held[r["host"]].add(str(r["address"]).split("%")[0])
    printed = {r["host"]: r["hostname"] for r in _records(tables.get("hosts"), "host",
                                                           "hostname")}
    out: dict[str, Inferred] = {}
    taken: set[str] = set()
    for host in hosts:                                    # by address first
        for node in view.nodes.values():
            if node.name in taken:
                continue
            shared = [a for a in node.internal_ips + node.addresses if a in held.get(host, ())]
            if shared:
                out[host] = Inferred(node.name, f"{ref(node.kind, node.name)} address {shared[0]} "
                                     f"is an address of {host} (ip-addr)", SOURCE)
                taken.add(node.name)
                break
    for host in hosts:                                    # then by name
        if host in out:
            continue
        names = {_short(host): f"{host}'s name"}
        if printed.get(host):
            names.setdefault(_short(printed[host]), f"the hostname {host} printed")
        for node in view.nodes.values():
            if node.name in taken:
                continue
            for candidate in filter(None, (node.name, node.hostname)):
                if _short(candidate) in names:
                    out[host] = Inferred(node.name, f"{ref(node.kind, node.name)} is named like "
                                         f"{names[_short(candidate)]} ({candidate})", SOURCE)
                    taken.add(node.name)
                    break
            if host in out:
                break
    return out


def _short(name: str) -> str:
    """A name compared up to its first dot (``k8s-w1.example.com`` is ``k8s-w1``); an address
    whole."""
    text = str(name).strip().lower()
    try:
        ipaddress.ip_address(text.strip("[]"))
        return text
    except ValueError:
        return text.split(".")[0]
