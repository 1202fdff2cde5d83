"""Parsers: one module per command family, command output -> pandas DataFrame (jc-style).

Each module's docstring states its output schema and an example. ``parse(data)`` takes the
command's stdout (str or bytes); input in a format the module does not know raises
:class:`diag.parse.common.ParseError` — reported, never guessed. BGP session states use one
closed vocabulary (:mod:`diag.parse.states`); BGP peers and paths share one schema across FRR,
GoBGP, BIRD, Cilium and Calico (:mod:`diag.parse.bgp_schema`).

:func:`parser_for` maps a bundle's command id (the collect catalogue's stable spec id, e.g.
``ip-route-v4``, ``gobgp-adj-in-192.0.2.1``, ``ip-neigh.after-capture``) to the facts table its
rows belong to and the function that parses it. Modules import pandas lazily (via
:func:`diag.parse.common.frame`), so importing this package is cheap.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

PHASE_SUFFIX = ".after-capture"
ETHTOOL_PREFIX = "ethtool-k-"           # one ``ethtool -k DEV`` per device: ethtool-k-<DEV>


@dataclass(frozen=True)
class ParseContext:
    """What a parser may need besides the text: when the command ran (epoch s), its spec id."""

    spec: str
    now: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SpecParser:
    table: str                                   # the facts table the rows go to
    parse: Callable[[bytes, ParseContext], Any]  # -> DataFrame
    source: str                                  # what the rows are, e.g. "frr-neighbors"
    # the same output as plain records (:class:`diag.parse.common.Rows`), for the small
    # per-host outputs: the facts tables make one frame of all hosts' rows
    records: Callable[[bytes, ParseContext], Any] | None = None
    # the outputs that grow with the cluster (routes, GoBGP RIBs), read column-wise: a
    # :class:`diag.parse.columnar.Part` (or None: not in the regular shape, ``parse`` decides),
    # of which the facts tables make one frame for all hosts
    part: Callable[[bytes, ParseContext], Any] | None = None


def _ip_rule(data: bytes, ctx: ParseContext):
    from diag.parse import ip_rule
    return ip_rule.parse(data, "inet6" if ctx.spec.endswith("-v6") else "inet")


def _gobgp_adj_in(data: bytes, ctx: ParseContext):
    from diag.parse import gobgp
    peer = ctx.spec.removeprefix("gobgp-adj-in-").replace("_", ":")
    return gobgp.parse_rib(data, rib="adj-in", peer=peer)


def _gobgp_adj_in_part(data: bytes, ctx: ParseContext):
    from diag.parse import gobgp
    peer = ctx.spec.removeprefix("gobgp-adj-in-").replace("_", ":")
    return gobgp.rib_part(data, rib="adj-in", peer=peer)


def _ip_rule_records(data: bytes, ctx: ParseContext):
    from diag.parse import ip_rule
    return ip_rule.records(data, "inet6" if ctx.spec.endswith("-v6") else "inet")


def _route_get(data: bytes, ctx: ParseContext):
    from diag.parse import ip_route_get
    return ip_route_get.parse(data, ip_route_get.probe_of(ctx.spec))


def _simple(module: str, function: str = "parse", **kwargs: Any):
    def call(data: bytes, ctx: ParseContext):
        import importlib
        mod = importlib.import_module(f"diag.parse.{module}")
        if kwargs.get("with_now"):
            return getattr(mod, function)(data, now=ctx.now)
        return getattr(mod, function)(data)
    return call


PARSERS: dict[str, SpecParser] = {
    "ip-addr": SpecParser("addresses", _simple("ip_addr"), "ip-addr",
                          _simple("ip_addr", "records")),
    "ip-link": SpecParser("interfaces", _simple("ip_link"), "ip-link",
                          _simple("ip_link", "records")),
    "ip-route-v4": SpecParser("routes", _simple("ip_route"), "ip-route",
                              part=_simple("ip_route", "part")),
    "ip-route-v6": SpecParser("routes", _simple("ip_route"), "ip-route",
                              part=_simple("ip_route", "part")),
    "ip-rule-v4": SpecParser("rules", _ip_rule, "ip-rule", _ip_rule_records),
    "ip-rule-v6": SpecParser("rules", _ip_rule, "ip-rule", _ip_rule_records),
    "ip-neigh": SpecParser("neighbors", _simple("ip_neigh"), "ip-neigh",
                           _simple("ip_neigh", "records")),
    "bridge-fdb": SpecParser("fdb", _simple("bridge_fdb"), "bridge-fdb"),
    "ss-tanpi": SpecParser("sockets", _simple("ss"), "ss"),
    "sysctl-net": SpecParser("sysctls", _simple("sysctl"), "sysctl", _simple("sysctl", "records")),
    "nstat": SpecParser("counters", _simple("nstat"), "nstat", _simple("nstat", "records")),
    "frr-bgp-summary": SpecParser("bgp_peers", _simple("frr", "parse_summary"), "frr-summary"),
    "frr-bgp-neighbors": SpecParser("bgp_peers", _simple("frr", "parse_neighbors"),
                                    "frr-neighbors"),
    "frr-bgp-ipv4-unicast": SpecParser("bgp_paths", _simple("frr", "parse_bgp_rib"), "frr-rib"),
    "frr-ip-route": SpecParser("daemon_routes", _simple("frr", "parse_ip_route"), "frr-zebra"),
    "gobgp-neighbor": SpecParser("bgp_peers", _simple("gobgp", "parse_neighbors", with_now=True),
                                 "gobgp-neighbor",
                                 _simple("gobgp", "neighbor_records", with_now=True)),
    "gobgp-global-rib": SpecParser("bgp_paths", _simple("gobgp", "parse_rib"), "gobgp-rib",
                                   part=_simple("gobgp", "rib_part")),
    "bird-protocols-all": SpecParser("bgp_peers", _simple("bird", "parse_protocols"),
                                     "bird-protocols"),
    "bird-route-all": SpecParser("bgp_paths", _simple("bird", "parse_routes"), "bird-routes"),
    "cilium-bgp-peers": SpecParser("bgp_peers", _simple("cilium", "parse_peers"), "cilium-peers"),
    "cilium-bgp-routes": SpecParser("bgp_paths", _simple("cilium", "parse_routes"),
                                    "cilium-routes"),
    "cilium-bgp-routes-advertised": SpecParser("bgp_paths", _simple("cilium",
                                                                    "parse_advertised"),
                                               "cilium-routes-advertised"),
    "bird6-protocols-all": SpecParser("bgp_peers", _simple("bird", "parse_protocols"),
                                      "bird-protocols"),
    "bird6-route-all": SpecParser("bgp_paths", _simple("bird", "parse_routes"), "bird-routes"),
    "calico-node-status": SpecParser("bgp_peers", _simple("calico"), "calico-status"),
}

# Outputs diag reads elsewhere (identity, versions) or not at all: not parse errors.
NOT_TABLES = frozenset({"hostname", "uname", "os-release", "ip-version", "ss-version",
                        "ss-listeners", "frr-version", "bird-status", "bird6-status", "capture",
                        "cilium-status", "daemon-root"})


def parser_for(spec: str) -> SpecParser | None:
    """The parser for a bundle command id, or None when the id is not a table source."""
    base = spec.removesuffix(PHASE_SUFFIX)
    if base in PARSERS:
        return PARSERS[base]
    if base.startswith("gobgp-adj-in-"):
        return SpecParser("bgp_paths", _gobgp_adj_in, "gobgp-adj-in", part=_gobgp_adj_in_part)
    if base.startswith("ip-route-get-"):
        return SpecParser("route_gets", _route_get, "ip-route-get")
    if base.startswith(ETHTOOL_PREFIX) or base == ETHTOOL_PREFIX[:-1]:
        return SpecParser("offloads", _simple("ethtool"), "ethtool", _simple("ethtool", "records"))
    return None


def phase_of(spec: str) -> str:
    return "after-capture" if spec.endswith(PHASE_SUFFIX) else "main"
