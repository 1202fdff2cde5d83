"""BGP peers and paths from FRR, GoBGP and BIRD (real lab daemons and reference outputs), Cilium
and Calico (upstream samples): one schema, one state vocabulary. Oracles: what the lab configured
(truth.json from diag.lab), the fault the generator injected, and the outputs' own documented
values."""
from __future__ import annotations

import json

import pytest

from diag.parse import bird, calico, cilium, frr, gobgp
from diag.parse.bgp_schema import PATH_COLUMNS, PEER_COLUMNS
from diag.parse.common import ParseError
from tests.parse.helpers import CASES, FIXTURES, fixture, truth

# the lab cases whose nodes run each daemon: a test of GoBGP's output runs on the cilium
# bundles only, instead of returning early (and passing) on the calico ones
CILIUM_CASES = [c for c in CASES if truth(c)["cni"] == "cilium"]
CALICO_CASES = [c for c in CASES if truth(c)["cni"] == "calico"]


def _nodes(t):
    return {n: h for n, h in t["hosts"].items() if h["role"] == "node"}


def test_frr_router_sees_every_node_established(lab_case):
    t = truth(lab_case)
    router = t["hosts"]["router"]
    for parse, spec in ((frr.parse_summary, "frr-bgp-summary"),
                        (frr.parse_neighbors, "frr-bgp-neighbors")):
        df = parse(fixture(spec, f"{lab_case}--router.out"))
        assert list(df.columns) == PEER_COLUMNS
        assert set(df.peer) == {h["cluster_ip"] for h in _nodes(t).values()}
        assert set(df.state) == {"ESTABLISHED"}
        assert set(df.peer_as) == {h["asn"] for h in _nodes(t).values()}
        assert set(df.local_as) == {router["asn"]}
        assert set(df.accepted) == {1}  # each node originates its pod CIDR
    neighbors = frr.parse_neighbors(fixture("frr-bgp-neighbors", f"{lab_case}--router.out"))
    assert set(neighbors.hold_time) == {9.0} and set(neighbors.keepalive) == {3.0}
    assert set(neighbors.local_address) <= {i.split("/")[0] for i in router["ips"]}
    assert neighbors.interface.isna().all() and set(neighbors.vrf) == {"default"}


def test_frr_summary_uptime_against_the_raw_output(lab_case):
    """Uptime is the raw ``peerUptimeMsec`` in seconds, and agrees with the neighbours output
    (another command, run moments apart: ``bgpTimerUpMsec`` a few seconds more at most)."""
    raw = json.loads(fixture("frr-bgp-summary", f"{lab_case}--router.out"))
    msecs = {a: p["peerUptimeMsec"] for a, p in raw["ipv4Unicast"]["peers"].items()}
    summary = frr.parse_summary(fixture("frr-bgp-summary", f"{lab_case}--router.out"))
    assert dict(zip(summary.peer, summary.uptime_s)) == {a: m / 1000 for a, m in msecs.items()}
    neighbors = frr.parse_neighbors(fixture("frr-bgp-neighbors", f"{lab_case}--router.out"))
    later = dict(zip(neighbors.peer, neighbors.uptime_s))
    for peer, uptime in zip(summary.peer, summary.uptime_s):
        assert 0 < uptime and uptime - 1 <= later[peer] <= uptime + 30


def test_frr_rib_paths(lab_case):
    t = truth(lab_case)
    df = frr.parse_bgp_rib(fixture("frr-bgp-ipv4-unicast", f"{lab_case}--router.out"))
    assert list(df.columns) == PATH_COLUMNS
    expected = {(h["pod_cidr"], h["cluster_ip"]) for h in _nodes(t).values()}
    assert set(zip(df.prefix, df.nexthop)) == expected
    assert df.best.all() and df.valid.all() and not df.local.any()
    assert {tuple(p) for p in df.as_path} == {(h["asn"],) for h in _nodes(t).values()}


def test_frr_zebra_routes_installed(lab_case):
    t = truth(lab_case)
    df = frr.parse_ip_route(fixture("frr-ip-route", f"{lab_case}--router.out"))
    bgp = df[df.protocol == "bgp"]
    assert set(bgp.prefix) == {h["pod_cidr"] for h in _nodes(t).values()}
    assert bgp.installed.all() and bgp.selected.all() and set(bgp.distance) == {20}


@pytest.mark.parametrize("cni", ["cilium", "calico"])
def test_wrong_peer_as_fault(cni):
    """The generator set k8s-w0's peer AS to 65123: the session must not be Established."""
    case = f"{cni}-native-default-badpeeras"
    t = truth(f"{cni}-native-default")
    w0 = t["hosts"]["k8s-w0"]["cluster_ip"]
    summary = frr.parse_summary(fixture("frr-bgp-summary", f"{case}--router.out"))
    assert summary.set_index("peer").loc[w0, "state"] != "ESTABLISHED"
    assert set(summary[summary.peer != w0].state) == {"ESTABLISHED"}
    if cni == "cilium":
        df = gobgp.parse_neighbors(fixture("gobgp-neighbor", f"{case}--k8s-w0.out"), now=None)
    else:
        df = bird.parse_protocols(fixture("bird-protocols-all", f"{case}--k8s-w0.out"))
        assert df.iloc[0].last_error and "Bad peer AS" in df.iloc[0].last_error
    assert df.iloc[0].peer_as == 65123 and df.iloc[0].state != "ESTABLISHED"


def test_frr_reference_failures():
    bad = frr.parse_neighbors(fixture("frr-bgp-neighbors", "reference-bad-peer-as.out"))
    row = bad[bad.state != "ESTABLISHED"].iloc[0]
    assert row.last_error_code == "0202" and "Bad Peer AS" in row.last_error
    assert row.last_error_age_s is not None and row.last_error_age_s > 0
    hold = frr.parse_neighbors(fixture("frr-bgp-neighbors", "reference-holdtimer.out"))
    assert "0400" in set(hold.last_error_code.dropna())
    policy = frr.parse_summary(fixture("frr-bgp-summary", "reference-policy.out"))
    assert set(policy.state) == {"ESTABLISHED"}
    assert set(policy.state_raw) == {"Established (Policy)"}


@pytest.mark.parametrize("lab_case", CILIUM_CASES)
def test_gobgp_neighbors_lab(lab_case):
    t = truth(lab_case)
    for host, info in _nodes(t).items():
        df = gobgp.parse_neighbors(fixture("gobgp-neighbor", f"{lab_case}--{host}.out"),
                                   now=1e10)
        row = df.iloc[0]
        assert row.state == "ESTABLISHED" and row.state_raw == "6"
        assert row.local_address == info["cluster_ip"]
        assert (row.local_as, row.peer_as) == (info["asn"], t["hosts"]["router"]["asn"])
        assert row.received == row.accepted == len(_nodes(t))
        assert row.hold_time == 9.0 and row.uptime_s > 0


@pytest.mark.parametrize("lab_case", CILIUM_CASES)
def test_gobgp_rib_lab(lab_case):
    t = truth(lab_case)
    for host, info in _nodes(t).items():
        df = gobgp.parse_rib(fixture("gobgp-global-rib", f"{lab_case}--{host}.out"))
        local = df[df.local]
        assert list(local.prefix) == [info["pod_cidr"]] and local.peer.isna().all()
        learned = df[~df.local]
        assert set(learned.prefix) == {h["pod_cidr"] for h in _nodes(t).values()}
        assert {tuple(p) for p in learned.as_path} == {(t["hosts"]["router"]["asn"], info["asn"])}
        adj = FIXTURES / "gobgp-adj-in"
        for path in adj.glob(f"{lab_case}--{host}--*.out"):
            peer = path.name.rsplit("--", 1)[1][:-4]
            rows = gobgp.parse_rib(path.read_bytes(), rib="adj-in", peer=peer)
            assert set(rows.rib) == {"adj-in"} and set(rows.peer) == {peer}
            assert set(rows.prefix) == set(learned.prefix)


def test_gobgp_reference():
    df = gobgp.parse_neighbors(fixture("gobgp-neighbor", "reference.out"), now=1795235991.0)
    row = df.iloc[0]
    assert (row.peer, row.state, row.received, row.accepted) == ("198.51.100.1", "ESTABLISHED",
                                                                 3, 2)
    assert row.uptime_s == pytest.approx(100.0)


@pytest.mark.parametrize("lab_case", CALICO_CASES)
def test_bird_lab(lab_case):
    t = truth(lab_case)
    router = t["hosts"]["router"]
    for host, info in _nodes(t).items():
        peers = bird.parse_protocols(fixture("bird-protocols-all", f"{lab_case}--{host}.out"))
        assert len(peers) == 1
        row = peers.iloc[0]
        assert row.state == "ESTABLISHED" and row.local_address == info["cluster_ip"]
        assert row.peer in {i.split("/")[0] for i in router["ips"]}
        assert (row.peer_as, row.local_as) == (router["asn"], info["asn"])
        assert row.hold_time == 9.0
        paths = bird.parse_routes(fixture("bird-route-all", f"{lab_case}--{host}.out"))
        own = paths[paths.local]
        assert list(own.prefix) == [info["pod_cidr"]]
        learned = paths[~paths.local]
        others = {h["pod_cidr"] for n, h in _nodes(t).items() if n != host}
        assert others <= set(learned.prefix)
        assert all(p[0] == router["asn"] for p in learned.as_path)


def test_bird_reference_states():
    states = {name: bird.parse_protocols(fixture("bird-protocols-all", name)).iloc[0]
              for name in ("reference-tor.out", "reference-bad-peer-as.out",
                           "reference-holdtimer.out", "reference-gr-stale.out")}
    assert states["reference-tor.out"].state == "ESTABLISHED"
    assert states["reference-tor.out"].received == 4 and states["reference-tor.out"].accepted == 2
    assert states["reference-bad-peer-as.out"].state == "IDLE"
    assert states["reference-bad-peer-as.out"].last_error == "Received: Bad peer AS"
    assert states["reference-gr-stale.out"].state == "ACTIVE"
    routes = bird.parse_routes(fixture("bird-route-all", "reference.out"))
    learned = routes[routes.prefix == "203.0.113.0/26"].iloc[0]
    assert (learned.peer, learned.nexthop, learned.as_path, learned.origin) == (
        "198.51.100.1", "198.51.100.11", [65000, 65001], "INCOMPLETE")
    assert routes[routes.prefix == "203.0.113.192/26"].iloc[0].med == 0


def test_cilium_upstream_peers():
    df = cilium.parse_peers(fixture("cilium-bgp-peers", "upstream-cli-docs.out"))
    assert list(df.node) == ["bgpv2-cplane-dev-service-control-plane",
                             "bgpv2-cplane-dev-service-worker"]
    assert set(df.peer) == {"fd00:10::1"} and set(df.state) == {"ESTABLISHED"}
    assert list(df.received) == [4, 4] and list(df.advertised) == [4, 4]   # two families each
    assert df.iloc[0].uptime_s == 33 * 60 + 26
    dbg = cilium.parse_peers(fixture("cilium-bgp-peers", "upstream-dbg-issue31283.out")).iloc[0]
    assert (dbg.peer, dbg.local_as, dbg.peer_as, dbg.state) == ("76.3.95.28", 64512, 64512,
                                                                 "ESTABLISHED")
    assert dbg.uptime_s == 73 * 3600 + 34 * 60 + 19 and dbg.node is None
    active = cilium.parse_peers(fixture("cilium-bgp-peers", "upstream-cli-pr30506-active.out"))
    assert list(active.state) == ["ACTIVE"] and active.iloc[0].uptime_s is None


def test_cilium_peer_with_port_and_32bit_as():
    text = ("Local AS     Peer AS      Peer Address          Session       Uptime   Family         "
            "Received   Advertised\n"
            "4294967291   4294967291   10.55.20.111:179      active        0s       ipv4/unicast   "
            "0          2\n")
    row = cilium.parse_peers(text).iloc[0]
    assert (row.peer, row.local_as, row.state, row.advertised) == ("10.55.20.111", 4294967291,
                                                                    "ACTIVE", 2)


def test_cilium_upstream_routes():
    available = cilium.parse_routes(fixture("cilium-bgp-routes", "upstream-docs-available.out"))
    assert list(available.prefix) == ["10.1.0.0/24", "10.1.1.0/24"]
    assert available.local.all() and set(available.rib) == {"loc"}
    assert set(available.origin) == {"IGP"}
    advertised = cilium.parse_routes(fixture("cilium-bgp-routes", "upstream-docs-advertised.out"))
    assert set(advertised.rib) == {"adj-out"} and set(advertised.peer) == {"fd00:10::1"}
    assert [list(p) for p in advertised.as_path] == [[65001], [65001]]
    peer = cilium.parse_routes(fixture("cilium-bgp-routes", "upstream-pr2256-peer.out")).iloc[0]
    assert (peer.peer, peer.nexthop, peer.prefix) == ("172.0.0.1", "172.0.0.2", "10.244.0.0/24")


def test_calico_upstream():
    ok = calico.parse(fixture("calico-node-status", "upstream-docs.out"))
    assert list(zip(ok.peer, ok.state, ok.peer_type, ok.family)) == [
        ("172.17.8.102", "ESTABLISHED", "node-to-node mesh", "IPv4")]
    passive = calico.parse(fixture("calico-node-status", "upstream-issue2905-passive.out"))
    assert list(passive.state) == ["ACTIVE", "ACTIVE"]
    assert list(passive.state_raw) == ["start Passive", "start Passive"]
    row = calico.parse("Calico process is running.\n\nIPv4 BGP status\n"
                       "+------------+-------------------+-------+----------+----------------"
                       "-----------------+\n| PEER ADDRESS | PEER TYPE | STATE | SINCE | INFO |\n"
                       "|  10.0.5.102  | node-to-node mesh | start | 07:05:27 | Active        "
                       "Socket: Connection closed |\n").iloc[0]
    assert (row.state, row.last_error) == ("ACTIVE", "Socket: Connection closed")
    down = calico.parse("Calico process is not running.\n")
    assert down.empty and down.attrs["warnings"]


@pytest.mark.parametrize("call, text", [
    (frr.parse_summary, b'{"foo": {"bar": 1}}'),
    (frr.parse_neighbors, b'{"192.0.2.1": {"state": "x"}}'),
    (frr.parse_bgp_rib, b'{"prefixes": []}'),
    (frr.parse_ip_route, b'{"10.0.0.0/8": {"x": 1}}'),
    (gobgp.parse_neighbors, b'[{"foo": 1}]'),
    (gobgp.parse_rib, b'{"10.0.0.0/8": {"x": 1}}'),
    (bird.parse_protocols, b"BIRD 3.0.0 ready.\nsomething else entirely\n"),
    (bird.parse_protocols, b"BIRD version 9 says hello\n"),
    (bird.parse_protocols, b"BIRD 1.6.8 ready.\n"),
    (bird.parse_protocols, b"BIRD 1.6.8 ready.\nAccess denied\n"),
    (bird.parse_routes, b"BIRD 1.6.8 ready.\n10.0.0.0/8 via 10.0.0.1 on eth0 kernel1 * (10)\n"),
    (bird.parse_status, b"BIRD 1.6.8 ready.\nsomething\n"),
    (calico.parse, b"Calico process is running.\n\nIPv4 BGP status\nError querying BIRD: x\n"),
    (bird.parse_routes, b"BIRD 2.0.12 ready.\nTable master4:\n???\n"),
    (cilium.parse_peers, b"Name Status\nfoo bar\n"),
    (cilium.parse_routes, b"Name Status\nfoo bar\n"),
    (calico.parse, b"Calico process is running.\nsomething new\n"),
    (frr.parse_summary, b"% Unknown command: show bgp summary json"),
])
def test_unknown_formats_are_reported(call, text):
    with pytest.raises(ParseError):
        call(text)


def test_go_null_means_empty():
    assert gobgp.parse_neighbors(b"null\n").empty
    assert gobgp.parse_rib(b"null\n").empty
