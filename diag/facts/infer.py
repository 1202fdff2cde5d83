"""Infer the cluster model from the facts tables (see :mod:`diag.facts.model`).

Contract: :func:`infer_model(tables, hosts, declared)` is pure: tables in, model out. Nothing is
keyed on interface names, address ranges, host names or AS numbers; every value comes from the
evidence, in this order of trust (first wins; later sources that agree are listed in
``agrees``, those that disagree in ``conflicts``). When the bundle holds the cluster's objects,
what Kubernetes knows comes right after the declared values (:mod:`diag.facts.kube_model`,
:mod:`diag.facts.kube_merge`): the hosts are matched to Nodes (by address, then name), Nodes no
host matched join the model as hosts without outputs (``collected`` False), and a matched host
takes its node IP (InternalIP), role (``node``) and pod CIDR (what the IPAM in force assigned)
from them; the pod range, CNI, IPAM mode, routing, tunnel and LoadBalancer IPs likewise. The
inference below is then the fallback, and a disagreeing inferred value is a conflict (e.g. an
inferred pod CIDR that the IPAM in force did not assign).

- pod CIDR of a node: declared; the prefix the host's own BGP speaker originates
  (``bgp-origination``); a route to a local pod interface (a veth whose peer lives in another
  network namespace) or an IPAM blackhole block (``pod-route``); a prefix another speaker learned
  from this host with this host as next hop (``bgp-learned``); a route on another host through an
  overlay device whose next hop resolves, via the neighbour table and the FDB, to this host's VTEP
  (``tunnel-fdb``). Prefixes containing the host's own peering/node addresses are never pod CIDRs.
- role: declared; ``node`` when the host has a pod CIDR *and* a CNI runs there; ``router`` when it
  forwards and has BGP neighbours on two or more other hosts (or on two or more addresses when
  they are not collected); else ``other``. A CNI signal is the host's own: a route to a pod
  interface or an IPAM blackhole block (``pod-route``), or a CNI's BGP agent answering
  (cilium-dbg, calicoctl). A collected host (its ``ip link`` is in the bundle) without one is not
  a node, whatever it originates: a ToR announcing its own LAN prefix is a router, and its
  ``role.how`` says so (the prefix it originates, whether it lies outside the pod range, and
  that no CNI signal was found); the rejected prefix is listed in ``pod_cidr.conflicts``. A host
  that was not collected is judged by the others' views (``bgp-learned``, ``tunnel-fdb``) as
  before, except that a prefix outside a pod range the operators' own covering route declares
  is not its pod CIDR. Among several prefixes of one source, those overlapping a pod route of the
  host win (a node announcing a service range besides its pod block keeps its pod block).
- node IP: the local address of the host's BGP sessions (daemon JSON, or the ``ss`` socket);
  else the address of this host that other speakers peer with; else the local address of its
  overlay device.
- cluster NIC: declared; else the interface holding the node IP. Default-route NIC: the device of
  the main table's default route (lowest metric).
- cluster pod range: the shortest non-default route on a node covering two or more nodes' pod
  CIDRs (what operators add, e.g. Cilium's static route); else the smallest prefix covering every
  pod CIDR (``summary``).
- LoadBalancer IPs: declared (union of hosts' ``lb_ips``); else addresses asked for by ARP in the
  captures or present in neighbour tables that no collected host holds, that are no route's
  gateway and lie in no pod CIDR, but inside a subnet a node is connected to.
"""
from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from typing import Any

from diag.facts import kube_merge
from diag.facts.kube_model import match_nodes, read_kube, ref
from diag.facts.model import NO_NODE, ClusterModel, HostModel, Inferred, TunnelEndpoint
from diag.values import is_missing

POD_SOURCES = ("bgp-origination", "pod-route", "bgp-learned", "tunnel-fdb")


def _rows(df, *columns: str) -> list[tuple]:
    """The columns of ``df`` as tuples, with every missing value (None, NaN, NA) as None."""
    if df is None or df.empty:
        return []
    data = []
    for c in columns:
        if c not in df.columns:
            data.append([None] * len(df))
            continue
        series = df[c]
        missing = series.isna().tolist()  # vectorised: NaN, None, NA
        values = series.tolist()
        data.append([None if m else v for v, m in zip(values, missing)] if any(missing)
                    else values)
    return list(zip(*data))



def _net(text: Any):
    try:
        return ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        return None


def _ip(text: Any):
    try:
        return ipaddress.ip_address(str(text).split("%")[0])
    except ValueError:
        return None


class _Evidence:
    """Indexes over the tables that every inference step needs."""

    def __init__(self, tables: dict[str, Any], hosts: list[str]) -> None:
        self.hosts = hosts
        self.addresses: dict[str, list[tuple[str, str, Any]]] = defaultdict(list)  # host -> ...
        self.owner: dict[str, tuple[str, str]] = {}   # ip -> (host, ifname)
        for host, ifname, address, network, scope in _rows(
                tables.get("addresses"), "host", "ifname", "address", "network", "scope"):
            if scope == "host" or _ip(address) is None or _ip(address).is_loopback:
                continue
            self.addresses[host].append((ifname, address, _net(network)))
            self.owner.setdefault(address, (host, ifname))
        # a host with no addresses of its own (unreached) is known by the hostname its BGP
        # speaker announced to the others (FQDN capability)
        self.named_by_peer: dict[str, str] = {}
        for _h, peer, hostname in _rows(tables.get("bgp_peers"), "host", "peer",
                                        "peer_hostname"):
            if peer and hostname in hosts and peer not in self.owner and \
                    not self.addresses.get(hostname):
                self.owner[peer] = (hostname, None)
                self.named_by_peer[peer] = hostname
        self.links: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        links = tables.get("interfaces")
        if links is not None and not links.empty:
            for record in links.to_dict("records"):
                self.links[record["host"]][record["ifname"]] = record
        self.kinds = {(h, name): link.get("kind") for h, links_ in self.links.items()
                      for name, link in links_.items()}
        self.routes = tables.get("routes")
        self._gateways: Any = None      # (codes, distinct) of the routes' gateway column
        self.peers = tables.get("bgp_peers")
        # per-host indexes: every step below is linear in the table sizes, not hosts x rows
        self.peers_of: dict[str, list[tuple]] = defaultdict(list)
        for row in _rows(self.peers, "host", "daemon", "peer", "local_address", "source",
                         "local_as"):
            self.peers_of[row[0]].append(row[1:])
        self.sockets_179: dict[tuple[str, str], str] = {}
        for h, laddr, lport, paddr, pport in _rows(tables.get("sockets"), "host", "local_addr",
                                                   "local_port", "peer_addr", "peer_port"):
            if 179 in (lport, pport) and paddr:
                self.sockets_179.setdefault((h, paddr), laddr)
        self.sysctl_of: dict[str, dict[str, str]] = defaultdict(dict)
        for h, key, value in _rows(tables.get("sysctls"), "host", "key", "value"):
            self.sysctl_of[h][key] = value
        self.defaults_of: dict[str, list[tuple]] = defaultdict(list)
        # the routes table can hold millions of rows: each step below takes the few rows it
        # can use through a vectorised filter (a superset of what it keeps, in table order)
        # and runs its row-by-row logic on those only
        self._main = None if self.routes is None or self.routes.empty else \
            (self.routes["table"] == "main").to_numpy(dtype=bool)
        for row in self.main_routes(self._column_isin("dst", ("0.0.0.0/0", "::/0"))):
            if row[3]:
                self.defaults_of[row[0]].append(row)
        self.paths = tables.get("bgp_paths")
        self.sockets = tables.get("sockets")
        self.neighbors = tables.get("neighbors")
        self.fdb = tables.get("fdb")
        self.sysctls = tables.get("sysctls")
        self.arp = tables.get("arp")

    ROUTE_COLUMNS = ("host", "table", "dst", "dev", "metric", "family", "type", "protocol",
                     "gateway")

    def _column_isin(self, column: str, values) -> Any:
        if self.routes is None or self.routes.empty:
            return None
        return self.routes[column].isin(list(values)).to_numpy(dtype=bool)

    def main_routes(self, where: Any = None) -> list[tuple]:
        """(host, table, dst, dev, metric, family, type, protocol, gateway) of the main-table
        routes, only those rows where ``where`` (a boolean array) is true when given."""
        if self._main is None:
            return []
        mask = self._main if where is None else self._main & where
        # the rows first (few), then the columns: selecting columns first copied every row
        return _rows(self.routes[mask], *self.ROUTE_COLUMNS)

    def route_gateways(self, exclude_kinds: tuple[str, ...] = ()) -> set[str]:
        """Gateways (non-empty) of routes in every table, except routes over links of
        ``exclude_kinds``."""
        if self.routes is None or self.routes.empty:
            return set()
        import numpy as np
        import pandas as pd

        gateways = self.routes["gateway"]
        if self._gateways is None:     # asked twice: the column's codes once (millions of rows)
            self._gateways = pd.factorize(gateways.to_numpy(dtype=object), size_hint=1 << 12)
        codes, names = self._gateways
        present = codes >= 0
        devs = {dev for (_h, dev), kind in self.kinds.items() if kind in exclude_kinds}
        suspect = self._column_isin("dev", devs) & present if devs else None
        keep = present & ~suspect if suspect is not None else present
        used = np.bincount(codes[keep], minlength=len(names)) > 0
        out = {g for g, hit in zip(names.tolist(), used.tolist()) if hit and g}
        if suspect is not None and suspect.any():
            for host, dev, gateway in _rows(self.routes[suspect], "host", "dev", "gateway"):
                if gateway and self.link_kind(host, dev) not in exclude_kinds:
                    out.add(gateway)
        return out

    def paths_where(self, mask: Any, *columns: str) -> list[tuple]:
        if self.paths is None or self.paths.empty:
            return []
        return _rows(self.paths[mask], *columns)

    def link_kind(self, host: str, dev: Any) -> str | None:
        return self.kinds.get((host, dev))

    def host_of(self, address: Any) -> str | None:
        hit = self.owner.get(str(address)) if address else None
        return hit[0] if hit else None

    def iface_of(self, host: str, address: str) -> str | None:
        for ifname, addr, _net_ in self.addresses.get(host, []):
            if addr == address:
                return ifname
        return None

    def forwarding(self, host: str) -> bool | None:
        values = self.sysctl_of.get(host, {})
        for key in ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding"):
            if key in values:
                return values[key].strip() == "1"
        return None


def _truthy(series) -> Any:
    """A boolean column as a numpy mask (missing values are false), vectorised when it is one
    of pandas' boolean dtypes."""
    import numpy as np

    if str(series.dtype) in ("bool", "boolean"):
        return series.fillna(False).to_numpy(dtype=bool)
    return np.array([bool(v) and not is_missing(v) for v in series], dtype=bool)


def _session_local_addresses(ev: _Evidence, host: str) -> list[tuple[str, str, str]]:
    """(local address, peer, how) for each BGP session of ``host``."""
    out = []
    for daemon, peer, local, source, _asn in ev.peers_of.get(host, []):
        if not peer:
            continue
        if local and ev.host_of(local) == host:
            out.append((local, peer, f"local address of {daemon} session to {peer} ({source})"))
            continue
        laddr = ev.sockets_179.get((host, peer))
        if laddr and ev.host_of(laddr) == host:
            out.append((laddr, peer, f"local end of the TCP/179 socket to {peer} (ss-tanpi)"))
    return out


class _Infrastructure:
    """Addresses that are underlay (node/peering IPs, ordinary-link gateways): a prefix that
    contains one is a node subnet, never a pod CIDR. Sorted ints + bisect: O(log n) per prefix."""

    def __init__(self, addresses) -> None:
        import bisect

        self._bisect = bisect
        self.sorted: dict[int, list[int]] = defaultdict(list)
        for ip in addresses:
            if ip is not None:
                self.sorted[ip.version].append(int(ip))
        for values in self.sorted.values():
            values.sort()
        self.verdict: dict[str, bool] = {}

    def pod_like(self, prefix: str) -> bool:
        if prefix not in self.verdict:
            net = _net(prefix)
            if net is None or net.prefixlen == 0 or net.num_addresses == 1:
                self.verdict[prefix] = False
            else:
                values = self.sorted.get(net.version, [])
                first = self._bisect.bisect_left(values, int(net.network_address))
                self.verdict[prefix] = not (first < len(values) and
                                            values[first] <= int(net.broadcast_address))
        return self.verdict[prefix]


def _pod_candidates(ev: _Evidence, node_ips: dict[str, set[str]]) -> dict[str, list[tuple]]:
    """host -> [(prefix, source, how)]"""
    cand: dict[str, list[tuple]] = defaultdict(list)
    underlay = [_ip(a) for addrs in node_ips.values() for a in addrs]
    # gateways of routes over ordinary links are underlay routers (an overlay route's "gateway"
    # is often an address inside the remote pod CIDR, so those do not count)
    gateways = ev.route_gateways(exclude_kinds=("vxlan", "geneve"))
    underlay += [_ip(gateway) for gateway in gateways]
    infra = _Infrastructure(set(underlay))
    paths = ev.paths
    local_paths = None if paths is None or paths.empty else _truthy(paths["local"])

    # 1. what the host's own speaker originates
    for host, daemon, prefix, local, protocol, source in ev.paths_where(
            local_paths, "host", "daemon", "prefix", "local", "protocol", "source"):
        if local and infra.pod_like(prefix):
            via = f" (protocol {protocol})" if protocol else ""
            cand[host].append((str(_net(prefix)), "bgp-origination",
                               f"{daemon} on {host} originates {prefix}{via} ({source})"))
    # 2. routes to local pod interfaces, IPAM blackhole blocks
    # pod veths: veths into another namespace that do not carry the node's own address
    veths = {dev for (h, dev), kind in ev.kinds.items() if kind == "veth"
             and ev.links[h][dev].get("link_netnsid") is not None
             and not _is_node_iface(ev, h, dev, node_ips)}
    pod_rows = None if ev.routes is None or ev.routes.empty else \
        ev._column_isin("dev", veths) | ev._column_isin("type", ("blackhole",))
    for host, _table, dst, dev, _metric, _family, rtype, protocol, _gw in \
            ev.main_routes(pod_rows):
        if rtype == "unicast" and ev.link_kind(host, dev) == "veth":
            link = ev.links[host][dev]
            if link.get("link_netnsid") is not None and infra.pod_like(dst) and \
                    not _is_node_iface(ev, host, dev, node_ips):
                cand[host].append((dst, "pod-route",
                                   f"route {dst} dev {dev} on {host}: a veth into another "
                                   "network namespace (a pod)"))
        elif rtype == "blackhole" and protocol not in ("kernel", "boot") and \
                infra.pod_like(dst):
            cand[host].append((dst, "pod-route",
                               f"blackhole route {dst} proto {protocol} on {host} (IPAM block)"))
    # 3. learned by another speaker from this host, with this host as next hop
    learned = None
    if local_paths is not None:
        learned = ~local_paths & paths["peer"].notna().to_numpy(dtype=bool) \
            & paths["nexthop"].notna().to_numpy(dtype=bool)
        if learned.any():   # AS path of at most one AS (a missing one counts as empty)
            learned &= _short_as_paths(paths["as_path"], learned)
    for host, daemon, prefix, peer, nexthop, local, as_path in ev.paths_where(
            learned, "host", "daemon", "prefix", "peer", "nexthop", "local", "as_path"):
        if local or not peer or not nexthop or len(as_path or []) > 1:
            continue  # only paths straight from their originator (AS path of at most one AS)
        origin = ev.host_of(peer)
        if origin and origin != host and ev.host_of(nexthop) == origin and \
                infra.pod_like(prefix):
            cand[origin].append((str(_net(prefix)), "bgp-learned",
                                 f"{daemon} on {host} learned {prefix} from {peer} with next hop "
                                 f"{nexthop}"))
    # 4. overlay routes: next hop -> neighbour lladdr -> FDB VTEP -> host
    lladdr = {(h, dev, dst): mac for h, dev, dst, mac in _rows(ev.neighbors, "host", "dev", "dst",
                                                               "lladdr") if mac}
    vtep = {(h, dev, mac): dst for h, mac, dev, dst in _rows(ev.fdb, "host", "mac", "ifname",
                                                             "dst") if dst}
    overlays = {dev for (_h, dev), kind in ev.kinds.items() if kind in ("vxlan", "geneve")}
    for host, _table, dst, dev, _metric, _family, _type, _proto, gateway in ev.main_routes(
            ev._column_isin("dev", overlays)):
        if ev.link_kind(host, dev) not in ("vxlan", "geneve"):
            continue
        mac = lladdr.get((host, dev, gateway)) if gateway else None
        remote = vtep.get((host, dev, mac)) if mac else None
        origin = ev.host_of(remote) if remote else None
        if origin and origin != host and infra.pod_like(dst):
            cand[origin].append((dst, "tunnel-fdb",
                                 f"{host} routes {dst} via {gateway} dev {dev}; neighbour "
                                 f"{mac}, FDB VTEP {remote}"))
    return cand


def _is_node_iface(ev: _Evidence, host: str, dev: str, node_ips: dict[str, set[str]]) -> bool:
    return any(ev.iface_of(host, ip) == dev for ip in node_ips.get(host, ()))


CNI_AGENTS = ("CILIUM", "CALICO")      # daemons of bgp_peers rows from cilium-dbg / calicoctl


def _cni_signal(ev: _Evidence, host: str, candidates: list[tuple]) -> str | None:
    """What shows that a CNI runs on ``host`` (its own evidence), or None."""
    for _value, source, how in candidates:
        if source == "pod-route":
            return how
    for daemon, _peer, _local, source, _asn in ev.peers_of.get(host, []):
        if any(agent in str(daemon).upper() for agent in CNI_AGENTS):
            return f"the CNI's BGP agent answers ({source})"
    return None


def _choose(candidates: list[tuple], declared: Any, declared_how: str,
            kube: tuple[tuple[str, ...], str] | None = None) -> Inferred:
    """The pod CIDR: declared, else what the IPAM in force assigned (``kube``: its CIDRs and
    how), else the best inferred candidate. A candidate inside an assigned CIDR agrees; any
    other is a conflict."""
    assigned = kube[0] if kube else ()
    if declared:
        others = tuple(f"{src}: {how}" for value, src, how in candidates if value != declared)
        agree = tuple(sorted({src for value, src, _ in candidates if value == declared}))
        if assigned:
            if any(_covered(declared, cidr) for cidr in assigned):
                agree = tuple(sorted(set(agree) | {"kubernetes"}))
            else:
                others += (f"kubernetes: {', '.join(assigned)} ({kube[1]})",)
        return Inferred(declared, declared_how, "declared", agree, others)
    if assigned:
        how = kube[1] + (f"; also {', '.join(assigned[1:])}" if len(assigned) > 1 else "")
        agree = tuple(sorted({s for v, s, _ in candidates
                              if any(_covered(v, cidr) for cidr in assigned)}))
        conflicts = tuple(sorted({f"{s}: {v}" for v, s, _ in candidates
                                  if not any(_covered(v, cidr) for cidr in assigned)}))
        return Inferred(assigned[0], how, "kubernetes", agree, conflicts)
    if not candidates:
        return Inferred(None, "no evidence: no originated prefix, pod route, learned route or "
                        "tunnel route points at this host" +
                        (f" ({kube[1]})" if kube else ""))
    order = {src: n for n, src in enumerate(POD_SOURCES)}
    ranked = sorted(candidates, key=lambda c: order.get(c[1], 99))
    value, source, how = ranked[0]
    # several prefixes from the winning source: those overlapping the host's pod routes, then
    # the shortest (an IPAM block covers pod routes)
    same = [c for c in ranked if c[1] == source]
    if len(same) > 1:
        pods = [_net(v) for v, src, _ in candidates if src == "pod-route" and _net(v)]
        near = [c for c in same if any(_net(c[0]) and _net(c[0]).overlaps(p) for p in pods)]
        value, source, how = min(near or same, key=lambda c: _net(c[0]).prefixlen)
    agree = tuple(sorted({s for v, s, _ in candidates if v == value and s != source}))
    conflicts = tuple(sorted({f"{s}: {v}" for v, s, _ in candidates
                              if v != value and not _covered(v, value)}))
    return Inferred(value, how, source, agree, conflicts)


def _not_a_node(found: list[tuple], cni_range: Inferred) -> str:
    """Why a host whose prefixes looked like pod CIDRs is not a node (for ``role.how``)."""
    prefixes = sorted({value for value, _src, _how in found})
    outside = [p for p in prefixes if cni_range.known and not _covered(p, cni_range.value)]
    text = ""
    if outside:
        text = (f"it originates or is routed {', '.join(outside)}, outside the pod range "
                f"{cni_range.value} ({cni_range.how}); ")
    elif prefixes:
        text = f"{', '.join(prefixes)} point at it; "
    return text + ("no CNI signal (no pod interface, IPAM block or CNI agent on it)")


def _covered(inner: str, outer: str) -> bool:
    a, b = _net(inner), _net(outer)
    return bool(a and b and a.version == b.version and a.subnet_of(b))


def _default_iface(ev: _Evidence, host: str) -> Inferred:
    best = None
    for _h, _table, dst, dev, metric, family, *_rest in ev.defaults_of.get(host, []):
        key = (family != "inet", metric or 0)
        if best is None or key < best[0]:
            best = (key, dev, dst, metric)
    if best is None:
        return Inferred(None, f"no default route in {host}'s main table")
    _, dev, dst, metric = best
    metric_text = f" metric {metric}" if metric is not None else ""
    return Inferred(dev, f"default route ({dst}{metric_text}) in table main on {host}", "route")


class _PrefixSet:
    """Membership of addresses/prefixes in a set of prefixes, one dict lookup per length."""

    def __init__(self, nets) -> None:
        self.by_len: dict[tuple[int, int], set[int]] = defaultdict(set)
        for net in nets:
            if net is not None:
                self.by_len[(net.version, net.prefixlen)].add(
                    int(net.network_address) >> (net.max_prefixlen - net.prefixlen))

    def covers(self, ip) -> bool:
        if ip is None:
            return False
        return any((int(ip) >> (ip.max_prefixlen - plen)) in bits
                   for (version, plen), bits in self.by_len.items() if version == ip.version)


def _pod_range(ev: _Evidence, pods: dict[str, str], roles: dict[str, str]) -> Inferred:
    import numpy as np
    import pandas as pd

    nets = [_net(p) for p in pods.values() if _net(p)]
    if len(nets) < 1:
        return Inferred(None, "no pod CIDR known")
    # pods truncated to every candidate length: counting covered pods is one lookup
    truncated: dict[tuple[int, int], Counter] = {}

    def covered(net) -> int:
        key = (net.version, net.prefixlen)
        if key not in truncated:
            truncated[key] = Counter(int(n.network_address) >> (n.max_prefixlen - net.prefixlen)
                                     for n in nets if n.version == net.version
                                     and n.prefixlen > net.prefixlen)
        return truncated[key][int(net.network_address) >> (net.max_prefixlen - net.prefixlen)]

    shortest_pod = max(n.prefixlen for n in nets)
    best = None
    nodes = [h for h, role in roles.items() if role == "node"]
    rows = np.flatnonzero(ev._main & ev._column_isin("host", nodes)) \
        if nodes and ev._main is not None else None
    on_nodes = None if rows is None else ev.routes["dst"].to_numpy(dtype=object)[rows]
    # the distinct destinations in table order (.unique() sized its hash table for every row)
    distinct = [] if on_nodes is None else pd.factorize(
        on_nodes, use_na_sentinel=False, size_hint=1 << 12)[1].tolist()
    for dst in distinct:            # each destination once, in table order
        net = _net(dst)
        if net is None or net.prefixlen == 0 or net.prefixlen >= shortest_pod:
            continue
        if covered(net) >= 2 and (best is None or net.prefixlen > best.prefixlen):
            best = net
    if best:
        holders = set(ev.routes["host"].iloc[rows[on_nodes == str(best)]])
        return Inferred(str(best), f"route {best} on {', '.join(sorted(holders))} "
                        f"covers {covered(best)} nodes' pod CIDRs", "route")
    version_nets = [n for n in nets if n.version == nets[0].version]
    summary = version_nets[0]
    while not all(n.subnet_of(summary) for n in version_nets):
        summary = summary.supernet()
    return Inferred(str(summary), "smallest prefix covering every node's pod CIDR "
                    f"({', '.join(sorted(map(str, version_nets)))})", "summary")


def _lb_ips(ev: _Evidence, pods: list[str], pod_range: str | None, declared: list[str],
            node_subnets: list) -> Inferred:
    if declared:
        return Inferred(sorted(set(declared)), "declared in the inventory (lb_ips)", "declared")
    gateways = ev.route_gateways()
    excluded = _PrefixSet(_net(p) for p in pods + ([pod_range] if pod_range else []))
    attached = _PrefixSet(set(node_subnets))
    verdicts: dict[str, bool] = {}

    def candidate(address: Any) -> bool:
        if address not in verdicts:
            ip = _ip(address)
            verdicts[address] = not (ip is None or ev.host_of(address) or address in gateways
                                     or excluded.covers(ip)) and attached.covers(ip)
        return verdicts[address]

    seen: dict[str, list[str]] = defaultdict(list)
    for host, op, target, frame in _rows(ev.arp, "host", "op", "target_ip", "frame"):
        if op == "request" and candidate(target):
            seen[target].append(f"ARP request for it captured on {host} (frame {frame})")
    for host, dst, state, phase in _rows(ev.neighbors, "host", "dst", "state", "phase"):
        if candidate(dst):
            seen[dst].append(f"neighbour entry {state} on {host} ({phase})")
    if not seen:
        return Inferred([], "no ARP target or neighbour in a node subnet without an owner", "arp")
    how = "; ".join(f"{ip}: {reasons[0]}" + (f" (+{len(reasons) - 1} more)" if len(reasons) > 1
                                            else "") for ip, reasons in sorted(seen.items()))
    return Inferred(sorted(seen), f"addresses in node subnets no collected host holds: {how}",
                    "arp")


def _tunnels(ev: _Evidence, node_ip: dict[str, Inferred]) -> list[TunnelEndpoint]:
    out = []
    vteps: dict[tuple[str, str], set[str]] = defaultdict(set)
    for h, ifname, dst in _rows(ev.fdb, "host", "ifname", "dst"):
        if dst:
            vteps[(h, ifname)].add(dst)
    for host, links in sorted(ev.links.items()):
        for dev, link in sorted(links.items()):
            if link.get("kind") not in ("vxlan", "geneve"):
                continue
            remotes = sorted(vteps.get((host, dev), set()) |
                             ({link["vxlan_remote"]} if link.get("vxlan_remote") else set()))
            local = link.get("vxlan_local")
            how = f"ip -d link {dev} on {host}"
            if not local and node_ip.get(host) and node_ip[host].known:
                local = node_ip[host].value
                how += "; local address not fixed on the device: the node IP"
            out.append(TunnelEndpoint(
                host=host, device=dev, kind=link["kind"], vni=_int(link.get("vxlan_id")),
                port=_int(link.get("vxlan_port")), local=local,
                underlay_dev=link.get("vxlan_dev"), mtu=_int(link.get("mtu")),
                remotes=tuple(remotes), how=how + ("; remotes from bridge fdb" if remotes else "")))
    return out


def _wire_tunnels(ev: _Evidence, tables: dict[str, Any]) -> list[TunnelEndpoint]:
    """Overlay endpoints seen on the wire (captures), one per (host, type, vni, port, source)."""
    remotes: dict[tuple, set[str]] = defaultdict(set)
    for host, kind, vni, src, dst, dport, depth in _rows(
            tables.get("wire_tunnels"), "host", "type", "vni", "outer_src", "outer_dst",
            "outer_dport", "depth"):
        if depth == 1 and src and dst:
            remotes[(host, kind, _int(vni), _int(dport), src)].add(dst)
    return [TunnelEndpoint(host=host, device="(wire)", kind=kind, vni=vni, port=port, local=src,
                           underlay_dev=None, mtu=None, remotes=tuple(sorted(dsts)),
                           how=f"{kind} packets from {src} captured on {host}")
            for (host, kind, vni, port, src), dsts in sorted(remotes.items(), key=str)]


def _int(value: Any) -> int | None:
    try:
        return None if value is None or is_missing(value) else int(value)
    except (TypeError, ValueError):
        return None


def _short_as_paths(as_paths, rows) -> Any:
    """``as_paths.str.len().fillna(0) <= 1`` where ``rows`` (a boolean array) is true, else
    False — the lengths of only those rows (millions of paths in a large bundle)."""
    import numpy as np
    import pandas as pd

    at = np.flatnonzero(rows)
    values = as_paths.to_numpy(dtype=object)[at]
    missing = pd.isna(values)
    out = np.zeros(len(rows), dtype=bool)
    out[at] = [True if gap else len(value) <= 1 for value, gap in zip(values.tolist(),
                                                                      missing.tolist())]
    return out


def infer_model(tables: dict[str, Any], hosts: list[str],
                declared: dict[str, dict[str, Any]] | None = None) -> ClusterModel:
    declared = declared or {}
    notes: list[str] = []
    # what Kubernetes knows: the collected hosts matched to Nodes, and the Nodes no collected
    # host is (a kube-only bundle: every Node), which join the model without outputs
    kube = read_kube(tables)
    node_match = match_nodes(kube, list(hosts), tables)
    matched = {m.value for m in node_match.values()}
    kube_only = [n for n in kube.nodes if n not in matched and n not in hosts]
    for name in kube.nodes:
        if name not in matched and name in hosts:
            notes.append(f"Node {name} was matched to no collected host by address, and a "
                         "collected host of that name is another machine")
    for name in kube_only:
        node_match[name] = Inferred(name, f"{ref(kube.nodes[name].kind, name)}; no collected "
                                    "host is this node: known from Kubernetes only",
                                    "kubernetes")
        if hosts:
            notes.append(f"{name}: a Kubernetes Node that no collected host matched (by "
                         "address or name)")
    collected = set(hosts)
    hosts = list(hosts) + kube_only
    node_of = {h: kube.nodes[m.value] for h, m in node_match.items()}
    ev = _Evidence(tables, hosts)

    # node IPs / peering addresses
    sessions = {h: _session_local_addresses(ev, h) for h in hosts}
    peered_by_others: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for h, peer in _rows(ev.peers, "host", "peer"):
        owner = ev.host_of(peer)
        if owner and owner != h:
            peered_by_others[owner].append((peer, h))
    node_ip: dict[str, Inferred] = {}
    peering: dict[str, set[str]] = {}
    for h in hosts:
        counts = Counter(local for local, _, _ in sessions[h])
        peering[h] = set(counts) | {addr for addr, _ in peered_by_others.get(h, [])}
        if counts:
            address = counts.most_common(1)[0][0]
            how = next(how for local, _, how in sessions[h] if local == address)
            others = tuple(sorted({f"peered with by {o}" for a, o in peered_by_others.get(h, [])
                                   if a == address}))
            node_ip[h] = Inferred(address, how, "bgp-session", others)
        elif peered_by_others.get(h):
            address, other = peered_by_others[h][0]
            named = " (the hostname that speaker announced)" if address in ev.named_by_peer \
                else ""
            node_ip[h] = Inferred(address, f"{other} peers with {address}, an address of "
                                  f"{h}{named}", "bgp-session")
        else:
            local = next((link.get("vxlan_local") for link in ev.links.get(h, {}).values()
                          if link.get("kind") in ("vxlan", "geneve") and link.get("vxlan_local")),
                         None)
            node_ip[h] = Inferred(local, "local address of its overlay device", "tunnel") \
                if local else Inferred(None, f"no BGP session or overlay device on {h}")
        if h in node_of:
            node_ip[h] = kube_merge.node_ip(node_ip[h], node_of[h], h, ev.host_of)

    node_ips = {h: {node_ip[h].value} | peering[h] - {None} for h in hosts}
    candidates = _pod_candidates(ev, node_ips)
    # a host whose own interfaces were collected can show a CNI (or show none)
    seen_links = {h for h in hosts if ev.links.get(h)}
    signal = {h: _cni_signal(ev, h, candidates.get(h, [])) for h in hosts}
    # the pod range the CNI hosts span (operators' covering route, else their summary): what a
    # host that was not collected may be given from the others' views
    provisional = {}
    for h in hosts:
        dec = declared.get(h) or {}
        if dec.get("pod_cidr") or (signal[h] and dec.get("role") in (None, "node")):
            pod = _choose(candidates.get(h, []), dec.get("pod_cidr"), "declared")
            if pod.known:
                provisional[h] = pod.value
    cni_range = _pod_range(ev, provisional, {h: "node" for h in provisional}) \
        if provisional else Inferred(None, "no CNI host")

    host_models: dict[str, HostModel] = {}
    pods: dict[str, str] = {}
    roles: dict[str, str] = {}
    for h in hosts:
        dec = declared.get(h) or {}
        node = node_of.get(h)
        found = candidates.get(h, [])
        why_not = None          # why a host with candidate prefixes is not a node
        if not dec.get("pod_cidr") and found and node is None:   # a Kubernetes Node is a node
            if h in seen_links and not signal[h] and dec.get("role") != "node":
                why_not = _not_a_node(found, cni_range)
            elif h not in seen_links and cni_range.source == "route":
                inside = [c for c in found if _covered(c[0], cni_range.value)]
                if not inside:
                    why_not = _not_a_node(found, cni_range)
                found = inside
        pod = _choose([] if why_not else found, dec.get("pod_cidr"),
                      "declared in the inventory (pod_cidr)",
                      (node.pod_cidrs, node.pod_how) if node is not None else None)
        if why_not:
            pod = Inferred(None, f"not a node: {why_not}", "none", (), tuple(
                sorted({f"{src}: {value}" for value, src, _how in found})))
        forwarding = ev.forwarding(h)
        mine = ev.peers_of.get(h, [])  # (daemon, peer, local_address, source, local_as)
        peer_hosts = {ev.host_of(p) or p for _d, p, *_rest in mine if p}
        if dec.get("role"):
            role = Inferred(dec["role"], "declared in the inventory (role)", "declared")
        elif node is not None:
            role = Inferred("node", f"{ref(node.kind, node.name)} exists", "kubernetes",
                            (pod.source,) if pod.known and pod.source != "kubernetes" else ())
        elif pod.known:
            cni = (f"; a CNI runs here: {signal[h]}" if signal[h] else
                   "; not collected: the other speakers' views" if h not in seen_links
                   else "")
            role = Inferred("node", f"has a pod CIDR ({pod.source}){cni}", pod.source,
                            ("cni",) if signal[h] else ())
        elif forwarding and len(peer_hosts) >= 2:
            role = Inferred("router", f"forwarding on and BGP neighbours on {len(peer_hosts)} "
                            f"hosts ({', '.join(sorted(peer_hosts))})"
                            + (f"; not a node: {why_not}" if why_not else ""), "bgp-session")
        else:
            role = Inferred("other", f"not a node: {why_not}" if why_not else
                            "no pod CIDR, and not a forwarding BGP speaker with two or "
                            "more neighbours", "cni-signal" if why_not else "none")
        roles[h] = role.value
        if role.value == "node" and pod.known:
            pods[h] = pod.value
        ip = node_ip[h]
        if dec.get("cluster_iface"):
            iface = dec["cluster_iface"]
            held = ev.iface_of(h, ip.value) if ip.known else None
            cluster = Inferred(iface, "declared in the inventory (cluster_iface)", "declared",
                               ("node-ip",) if held == iface else (),
                               (f"node IP {ip.value} is on {held}",) if held and held != iface
                               else ())
        elif ip.known and ev.iface_of(h, ip.value):
            cluster = Inferred(ev.iface_of(h, ip.value), f"holds the node IP {ip.value}",
                               "node-ip")
        else:
            cluster = Inferred(None, "node IP unknown or on no interface of this host")
        asn = next((Inferred(int(a), f"local AS of its {d} sessions", "bgp-session")
                    for d, _p, _l, _s, a in mine if a is not None),
                   Inferred(None, "no BGP speaker"))
        daemons = tuple(sorted({d for d, *_rest in mine if d}))
        host_models[h] = HostModel(
            name=h, role=role, node_ip=ip, cluster_iface=cluster,
            default_iface=_default_iface(ev, h), pod_cidr=pod, asn=asn,
            peering_ips=tuple(sorted(peering[h])), forwarding=forwarding, daemons=daemons,
            kube_node=node_match.get(h, NO_NODE), collected=h in collected)
        if cluster.known and host_models[h].default_iface.value not in (None, cluster.value) \
                and role.value == "node":
            notes.append(f"{h}: cluster NIC {cluster.value} is not the default-route NIC "
                         f"{host_models[h].default_iface.value}")

    pod_range = kube_merge.over(kube.pod_range, _pod_range(ev, pods, roles), within=True)
    node_subnets = [net for h in hosts if roles.get(h) in ("node", "router")
                    for _, _, net in ev.addresses.get(h, []) if net is not None]
    all_declared_lb = [ip for h in hosts for ip in (declared.get(h) or {}).get("lb_ips") or []]
    lb = _lb_ips(ev, list(pods.values()), pod_range.value, all_declared_lb, node_subnets)
    if lb.source != "declared":
        lb = kube_merge.lb_ips(kube.lb_ips, lb)
    tunnels = _tunnels(ev, node_ip)
    device_tunnels = list(tunnels)
    if not tunnels:  # no device configuration (a bare capture): what the wire shows
        tunnels = _wire_tunnels(ev, tables)
    observed = [h for h in hosts if roles.get(h) == "node" and ev.links.get(h)]
    routing, tunnel = kube_merge.routing(kube.routing, kube.tunnel, device_tunnels, observed)
    return ClusterModel(hosts=host_models, pod_range=pod_range, lb_ips=lb,
                        tunnels=tuple(tunnels), notes=tuple(notes),
                        cni=kube_merge.over(kube.cni, _cni(tables)), ipam=kube.ipam,
                        routing=routing, tunnel=tunnel)


def _cni(tables: dict[str, Any]) -> Inferred:
    """The CNI from the daemons detected on the hosts (listening sockets), when Kubernetes did
    not say."""
    found: dict[str, list[str]] = defaultdict(list)
    for host, daemons in _rows(tables.get("hosts"), "host", "daemons"):
        for daemon in daemons if isinstance(daemons, (list, tuple)) else ():
            if daemon in ("CILIUM", "CALICO"):
                found[daemon.lower()].append(host)
    if len(found) != 1:
        return Inferred(None, "no cilium-agent or calico-node detected on the hosts" if not found
                        else f"both Cilium and Calico detected ({dict(found)})")
    cni, where = next(iter(found.items()))
    return Inferred(cni, f"{cni} detected on {', '.join(sorted(where))} (listening sockets)",
                    "daemon")
