"""Cilium's agent shell commands (``cilium-dbg shell -- bgp/peers``, ``bgp/routes``) of two
generations, and the ``available``/``advertised`` tables without an ``Age`` column, on real
upstream outputs (tests/fixtures/cilium-bgp-*/PROVENANCE.md: Cilium's own script tests' golden
files and a public demo)."""
from __future__ import annotations

import pytest

from diag.parse import ParseContext, cilium, parser_for
from diag.parse.common import ParseError
from tests.parse.helpers import fixture


def test_detailed_peers_of_pkg_bgp_carry_addresses_counts_and_timers():
    df = cilium.parse_peers(fixture("cilium-bgp-peers", "upstream-shell-bgp-detailed.out"))
    assert list(df["peer"]) == ["fd00:10:99:7::1", "fd00:10:99:7::2", "fd00:10:99:7::3",
                                "fd00:10:99:7::4"]
    assert list(df["name"]) == ["peer0", "peer1", "peer0", "peer1"]
    assert list(df["peer_as"]) == [65000, 65000, 65001, 65001]
    assert set(df["state"]) == {"ESTABLISHED"}
    # ipv4/unicast and ipv6/unicast, one route each way: summed as for the tables
    assert list(df["received"]) == [2] * 4 and list(df["advertised"]) == [2] * 4
    assert (df.iloc[0]["hold_time"], df.iloc[0]["keepalive"]) == (90.0, 30.0)
    assert df["uptime_s"].isna().all()        # the golden file hides the uptime


def test_instance_table_of_pkg_bgp_names_peers_without_addresses():
    df = cilium.parse_peers(fixture("cilium-bgp-peers", "upstream-shell-bgp-instances.out"))
    assert list(df["name"]) == ["peer0", "peer1", "peer0", "peer1"]
    assert df["peer"].isna().all()           # the table has no addresses: never guessed
    assert list(df["received"]) == [2] * 4 and list(df["accepted"]) == [2] * 4


@pytest.mark.parametrize("name,peers,advertised", [
    ("upstream-shell-bgpv1-multi-peer.out", ["10.99.0.101", "10.99.0.102"], [2, 2]),
    ("upstream-shell-bgpv1-multi-instance.out", ["10.99.0.101", "10.99.0.102", "10.99.0.103"],
     [3, 3, 3]),
])
def test_bgpv1_shell_peers_have_no_uptime_column(name, peers, advertised):
    df = cilium.parse_peers(fixture("cilium-bgp-peers", name))
    assert list(df["peer"]) == peers            # the port (1790) dropped
    assert list(df["advertised"]) == advertised and set(df["state"]) == {"ESTABLISHED"}


def test_loc_rib_of_pkg_bgp_marks_originated_routes_by_next_hop():
    v4 = cilium.parse_routes(fixture("cilium-bgp-routes", "upstream-shell-bgp-loc-ipv4.out"))
    assert list(v4["prefix"]) == ["10.244.0.0/24"] * 2
    assert set(v4["rib"]) == {"loc"} and v4["local"].all() and v4["best"].all()
    v6 = cilium.parse_routes(fixture("cilium-bgp-routes", "upstream-shell-bgp-loc-ipv6.out"))
    assert list(v6["nexthop"]) == ["::", "::"] and v6["local"].all()


def test_a_learned_route_in_the_agent_table_is_not_local():
    row = cilium.parse_routes(fixture("cilium-bgp-routes",
                                      "upstream-agent-available-learned.out")).iloc[0]
    assert (row["prefix"], row["nexthop"], row["as_path"], row["local"], row["rib"]) == \
        ("10.10.1.0/24", "172.21.0.3", [65100], False, "loc")


@pytest.mark.parametrize("name,peers", [
    ("upstream-shell-bgpv1-multi-peer.out", ["10.99.0.101", "10.99.0.101", "10.99.0.102",
                                              "10.99.0.102"]),
    ("upstream-shell-bgp-out-ipv4.out", ["peer0", "peer1", "peer0", "peer1"]),
])
def test_advertised_routes_of_both_shell_generations(name, peers):
    data = fixture("cilium-bgp-routes-advertised", name)
    parser = parser_for("cilium-bgp-routes-advertised")
    df = parser.parse(data, ParseContext(spec="cilium-bgp-routes-advertised"))
    assert list(df["peer"]) == peers and set(df["rib"]) == {"adj-out"}
    assert not df["local"].any()


@pytest.mark.parametrize("text", [
    "Instance    Peer    Session State   Uptime   Family\ninstance0   peer0   established\n",
    "Instance    Prefix          NextHop   Best   Age\ninstance0   not-a-prefix   0.0.0.0   true   -\n",
    "Instance: instance0\n  Peer: peer0\n    Port: 1790\n",       # a peer without its address
    "Instance: instance0\n  Bogus: x\n",
])
def test_unknown_shell_shapes_are_errors_not_empty_tables(text):
    parse = cilium.parse_routes if "Prefix" in text else cilium.parse_peers
    with pytest.raises(ParseError):
        parse(text)


def test_a_learned_copy_of_an_originated_prefix_is_not_best():
    # constructed from the demo's two real rows (the control plane's own 10.10.1.0/24 and the
    # worker's learned copy), as one agent's table when a peer sends a node its own prefix back
    learned = fixture("cilium-bgp-routes", "upstream-agent-available-learned.out").decode()
    own = "65200     10.10.1.0/24   0.0.0.0      5m53s   [{Origin: i} {Nexthop: 0.0.0.0}]\n"
    df = cilium.parse_routes(learned + own)
    assert [(r.nexthop, r.local, r.best) for r in df.itertuples()] == [
        ("172.21.0.3", False, False), ("0.0.0.0", True, True)]
    alone = cilium.parse_routes(learned)
    assert alone.iloc[0]["best"]                   # learned and not originated here: best
