"""The BGP parsers on every version's real output: BIRD 1.5/1.6 (Calico's fork included), 2 and 3;
FRR 3 to 8.4 (interface/unnumbered, dynamic and peer-group neighbours, ``vrf all`` wrappers);
calicoctl's wrapped and refused tables; cilium tables of several releases. Oracles: the
configuration the daemon ran with (tests/fixtures/*/configs, the BIRD 1.6 .conf), the daemon's
own other rendering of the same state (FRR's text summary beside its JSON), and the values
printed in the upstream sample itself, read off by hand. Provenance: each directory's
PROVENANCE.md."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from diag.parse import bird, calico, cilium, frr
from diag.parse.bgp_schema import PATH_COLUMNS, PEER_COLUMNS
from diag.parse.common import ParseError
from tests.parse.helpers import FIXTURES, fixture

# --- BIRD 1.x ---------------------------------------------------------------------------------


def test_bird16_protocols_against_its_configuration():
    """BIRD 1.6.8 run here (namespace, GoBGP peers): the .conf beside the output is the oracle."""
    conf = (FIXTURES / "bird-protocols-all" / "bird16-lab-calico-like.conf").read_text()
    configured = dict(re.findall(r"neighbor (\S+) as (\d+);", conf))
    df = bird.parse_protocols(fixture("bird-protocols-all", "bird16-lab-calico-like.out"))
    assert list(df.columns) == PEER_COLUMNS
    assert {p: str(a) for p, a in zip(df.peer, df.peer_as)} == configured
    rows = df.set_index("name")
    up = rows.loc["Global_10_255_0_2"]
    assert (up.state, up.local_address, up.peer_router_id) == ("ESTABLISHED", "10.255.0.1",
                                                               "10.255.0.2")
    assert (up.received, up.accepted, up.advertised, up.hold_time, up.keepalive) == (
        4, 4, 1, 9.0, 3.0)                       # gobgp.toml: hold-time 9, keepalive 3
    assert rows.loc["Global_10_255_0_4"].hold_time == 90.0   # GoBGP's default, not configured
    bad = rows.loc["Global_10_255_0_3"]
    assert (bad.state, bad.last_error) == ("IDLE", "BGP Error: Bad peer AS")
    passive = rows.loc["Mesh_10_255_0_9"]        # `passive on`, nobody there
    assert (passive.state, passive.state_raw) == ("ACTIVE", "start Passive")
    assert df.local_as.isna().all()              # BIRD 1.x prints no Local AS line


def test_bird16_short_protocols_take_the_address_from_calicos_names():
    short = bird.parse_protocols(fixture("bird-protocols-all", "bird16-lab-short.out"))
    full = bird.parse_protocols(fixture("bird-protocols-all", "bird16-lab-calico-like.out"))
    assert list(zip(short.name, short.peer, short.state)) == list(zip(full.name, full.peer,
                                                                      full.state))
    calico_short = bird.parse_protocols(fixture("bird-protocols-all",
                                                "upstream-calico-bird168-short.out"))
    assert list(calico_short.peer) == ["10.1.1.11", "10.1.1.12", "10.1.1.14"]
    assert set(calico_short.state) == {"ESTABLISHED"}
    refused = bird.parse_protocols(fixture("bird-protocols-all",
                                           "upstream-calico-bird168-vxlan-short.out"))
    assert list(zip(refused.peer, refused.state, refused.last_error)) == [
        ("192.168.11.73", "ESTABLISHED", None),
        ("192.168.11.71", "ACTIVE", "Socket: Connection refused")]
    assert bird._calico_peer("Mesh_fd00_10__20") == "fd00:10::20"
    assert bird._calico_peer("static1") is None


def test_bird15_calico_protocols_all():
    df = bird.parse_protocols(fixture("bird-protocols-all", "upstream-calico-bird150-kumina.out"))
    assert list(df.name) == ["Mesh_10_101_4_114", "Mesh_10_101_4_182"]   # static1 is not BGP
    down, up = df.iloc[0], df.iloc[1]
    assert (down.peer, down.state, down.last_error) == ("10.101.4.114", "ACTIVE",
                                                        "Socket: Host is unreachable")
    assert (up.peer, up.peer_as, up.local_address, up.hold_time, up.keepalive) == (
        "10.101.4.182", 64511, "10.101.4.148", 240.0, 80.0)
    assert (up.received, up.accepted, up.advertised) == (1, 1, 1)


def test_bird16_routes_against_what_the_peers_announced():
    """The GoBGP peers announced (gobgp global rib add): 10.244.2.0/26 med 10 from AS 65000 and
    AS path 65005 from AS 65004; 10.244.3.0/26 path 65010 65011; 198.51.100.0/24 an AS_SET;
    192.0.2.0/24 with next hop 10.255.0.20. BIRD's own: the static blackhole, the direct
    subnet, two kernel routes."""
    df = bird.parse_routes(fixture("bird-route-all", "bird16-lab-calico-like.out"))
    assert list(df.columns) == PATH_COLUMNS
    learned = df[~df.local]
    got = {(p, r.protocol): r for p, r in zip(learned.prefix, learned.itertuples())}
    two = got[("10.244.2.0/26", "Global_10_255_0_2")]
    assert (two.as_path, two.med, two.origin, two.nexthop, two.best) == (
        [65000], 10, "IGP", "10.255.0.2", True)
    alt = got[("10.244.2.0/26", "Global_10_255_0_4")]
    assert (alt.as_path, alt.best, alt.origin) == ([65004, 65005], False, "INCOMPLETE")
    assert got[("10.244.3.0/26", "Global_10_255_0_2")].as_path == [65000, 65010, 65011]
    aset = got[("198.51.100.0/24", "Global_10_255_0_2")]
    assert (aset.as_path, aset.as_path_str) == ([65000, 65020, 65021], "65000 {65020,65021}")
    far = got[("192.0.2.0/24", "Global_10_255_0_2")]
    assert (far.peer, far.nexthop) == ("10.255.0.2", "10.255.0.20")   # "from" printed
    assert set(learned.local_pref) == {100}
    own = df[df.local].set_index("prefix")
    assert set(own.index) == {"10.244.1.0/26", "10.255.0.0/24", "10.98.0.0/24", "10.99.0.0/24"}
    assert own.loc["10.244.1.0/26"].protocol == "static1"
    assert not own.loc["10.98.0.0/24"].valid                # `unreachable` kernel route
    assert own.loc["10.99.0.0/24"].nexthop == "10.255.0.2"


def test_bird16_primary_route_the_kernel_refused_is_still_the_best():
    """BIRD marks a primary route whose kernel export failed with "!" instead of "*"
    (nest/rt-table.c: ``primary ? (sync_error ? " !" : " *") : ""``): here the kernel already
    held another route to 172.20.0.0/24 with the same metric. It is the best path all the same,
    and the lines after it still read."""
    df = bird.parse_routes(fixture("bird-route-all", "bird16-lab-sync-error.out"))
    learned = df[~df.local].set_index("prefix")
    refused = learned.loc["172.20.0.0/24"]
    assert (refused.best, refused.protocol, refused.nexthop, refused.as_path) == (
        True, "Node_192_168_20_200", "192.168.20.200", [65000, 65001])
    assert learned.loc["172.20.1.0/24"].best
    own = df[df.prefix == "172.20.2.0/24"]
    assert list(zip(own.protocol, own.best, own.local)) == [
        ("static1", True, True), ("Node_192_168_20_200", False, False)]


def test_calico_mesh_routes_are_learned_not_originated():
    """``[i]``: an iBGP path with an empty AS path — learned from the mesh, not this node's."""
    df = bird.parse_routes(fixture("bird-route-all", "upstream-calico-bird168-mesh.out"))
    mesh = df[df.protocol.str.startswith("Mesh_")]
    assert len(mesh) == 12 and not mesh.local.any() and set(mesh.origin) == {"IGP"}
    assert all(p == [] for p in mesh.as_path)
    best = mesh[mesh.best]
    assert list(zip(best.prefix, best.peer, best.nexthop)) == [
        ("10.255.153.64/26", "192.168.13.30", "192.168.13.36"),
        ("10.255.77.128/26", "192.168.13.30", "192.168.13.35"),
        ("10.255.74.64/26", None, "192.168.13.30")]
    own = df[df.local & (df.protocol == "static1")]
    assert list(own.prefix) == ["10.255.18.128/26"]
    vx = bird.parse_routes(fixture("bird-route-all", "upstream-calico-bird168-vxlan.out"))
    assert list(vx[~vx.local].prefix) == ["172.16.0.0/26", "172.16.0.0/26", "172.16.2.64/26"]


def test_bird163_and_bird3_routes_read_alike():
    """The same route server state printed by 1.6.3 (``BGP.as_path``, ``Type: BGP``) and by
    3.0.1 (``bgp_path``, ``source: BGP``, ``from:``): AS paths and local-pref are kept and
    learned paths are not marked originated."""
    old = bird.parse_routes(fixture("bird-route-all", "upstream-bird163-birdwatcher.out"))
    new = bird.parse_routes(fixture("bird-route-all", "upstream-bird301-birdwatcher.out"))
    columns = ["prefix", "protocol", "nexthop", "as_path", "origin", "best", "local",
               "local_pref"]
    assert old[columns].to_dict("records") == new[columns].to_dict("records")
    assert list(new.as_path) == [[1340], [1339], [1340], [1340]]
    assert not new.local.any() and set(new.local_pref) == {100}
    assert list(new.peer) == ["1.2.3.16", "1.2.3.15", "1.2.3.16", "1.2.3.16"]  # from: lines
    assert list(new.best) == [True, True, False, True]


def test_bird3_short_protocols():
    df = bird.parse_protocols(fixture("bird-protocols-all",
                                      "upstream-bird301-short-birdwatcher.out"))
    assert len(df) == 19                          # rpki1, device1, bfd1 are not BGP
    lost = df[df.state == "ACTIVE"]
    assert len(lost) == 6 and set(lost.last_error) == {"Error: Neighbor lost"}
    assert set(lost.state_raw) == {"start Passive Error: Neighbor lost"}


@pytest.mark.parametrize("name, version, router_id, hostname", [
    ("bird16-lab.out", "1.6.8", "10.255.0.1", None),
    ("bird2-lab.out", "2.0.12", "10.255.0.1", "vm"),
    ("upstream-bird209-birdwatcher.out", "v2.0.9-11-g207ac485", "1.2.3.4", "rs42"),
    ("upstream-bird301-birdwatcher.out", "3.0.1", "1.2.3.4", "rs2-par1"),
])
def test_bird_status_every_version(name, version, router_id, hostname):
    row = bird.parse_status(fixture("bird-status", name)).iloc[0]
    assert (row.version, row.router_id, row.hostname) == (version, router_id, hostname)
    assert row.status == "Daemon is up and running" and row.last_reboot


# --- FRR ----------------------------------------------------------------------------------------

def _text_summary_uptimes(text: str) -> dict[str, float]:
    """FRR's own text ``show bgp summary`` (same daemon, same second): Up/Down per neighbour,
    keyed as the JSON keys them (``leaf2(hpa1)`` -> hpa1, ``*leaf2(10.255.2.5)`` -> the
    address)."""
    out = {}
    for line in text.splitlines():
        match = re.match(r"^\*?(?:\S+\((\S+)\)|(\d\S+))\s+4\s+\d+(?:\s+\d+){5}\s+"
                         r"(\d\d):(\d\d):(\d\d)\s", line)
        if match:
            key = match[1] or match[2]
            out[key] = int(match[3]) * 3600 + int(match[4]) * 60 + int(match[5])
    return out


def test_frr84_interface_dynamic_and_peer_group_neighbours():
    """FRR 8.4 run here: tor1 has ``neighbor hpa1 interface peer-group FABRIC``, a ``bgp listen
    range 10.255.2.0/24 peer-group DYN`` that leaf2 (10.255.2.5) joined, and two neighbours
    with ``remote-as internal|external`` nobody answers (configs/frr84-lab-tor1-bgpd.conf)."""
    neighbors = frr.parse_neighbors(fixture("frr-bgp-neighbors",
                                            "frr84-lab-unnumbered-dynamic.out"))
    rows = {(r.interface or r.peer): r for r in neighbors.itertuples()}
    unnumbered = rows["hpa1"]
    assert unnumbered.peer.startswith("fe80::") and unnumbered.peer != "hpa1"
    assert (unnumbered.peer_group, unnumbered.dynamic, unnumbered.peer_as) == ("FABRIC", False,
                                                                                65200)
    dynamic = rows["10.255.2.5"]
    assert (dynamic.interface, dynamic.peer_group, dynamic.dynamic) == (None, "DYN", True)
    for address in ("10.255.3.9", "10.255.3.10"):   # AS not learned yet: unknown, not AS 0
        assert pd.isna(rows[address].peer_as)
        assert rows[address].state == "ACTIVE"
    assert set(neighbors.vrf) == {"default"} and set(neighbors.hold_time) == {9.0}
    summary = frr.parse_summary(fixture("frr-bgp-summary", "frr84-lab-unnumbered-dynamic.out"))
    by_key = {(r.interface or r.peer): r for r in summary.itertuples()}
    assert by_key["hpa1"].peer is None         # FRR 8.4's summary does not print the address
    assert by_key["10.255.2.5"].dynamic and not by_key["hpa1"].dynamic
    assert summary.peer_as.isna().sum() == 2
    text = (FIXTURES / "frr-bgp-summary" / "frr84-lab-unnumbered-dynamic.txt").read_text()
    uptimes = _text_summary_uptimes(text)
    assert set(uptimes) == {"hpa1", "10.255.2.5"}
    for key, seconds in uptimes.items():
        assert by_key[key].uptime_s == pytest.approx(seconds, abs=1)
        assert rows[key].uptime_s == pytest.approx(seconds, abs=1)
    assert (by_key["hpa1"].accepted, by_key["hpa1"].advertised) == (2, 3)  # text: 2 and 3


def test_frr84_vrf_all_wrappers_have_a_vrf_column():
    for parse, spec in ((frr.parse_summary, "frr-bgp-summary"),
                        (frr.parse_neighbors, "frr-bgp-neighbors")):
        wrapped = parse(fixture(spec, "frr84-lab-vrf-all.out"))
        plain = parse(fixture(spec, "frr84-lab-unnumbered-dynamic.out"))
        assert len(wrapped) == len(plain) + 1
        red = wrapped[wrapped.vrf == "red"].iloc[0]
        assert (red.peer, red.peer_as, red.state) == ("10.255.4.1", 65400, "IDLE")
        assert set(wrapped[wrapped.vrf == "default"].peer.fillna("")) == \
            set(plain.peer.fillna(""))
    rib = frr.parse_bgp_rib(fixture("frr-bgp-ipv4-unicast", "frr84-lab-vrf-all.out"))
    assert set(rib.vrf) == {"default"}          # vrf red has no routes
    plain = frr.parse_bgp_rib(fixture("frr-bgp-ipv4-unicast", "frr84-lab-unnumbered-dynamic.out"))
    assert len(rib) == len(plain) == 5
    best = plain[plain.best & ~plain.local]
    assert set(best.prefix) == {"10.99.2.0/24", "10.99.3.0/24"}  # leaf2's `network`s
    assert all(p.startswith("fe80::") for p in best.peer)        # via the unnumbered session
    assert list(plain[plain.local].prefix) == ["10.99.1.0/24"]


def test_frr_exporter_vrf_all_ipv4_and_mixed_count_keys():
    df = frr.parse_summary(fixture("frr-bgp-summary", "upstream-frr-exporter-vrf-all-ipv4.out"))
    assert list(zip(df.vrf, df.peer)) == [
        ("default", "192.168.0.2"), ("default", "192.168.0.3"), ("default", "192.168.0.4"),
        ("red", "192.168.1.2"), ("red", "192.168.1.3")]
    assert list(df.accepted) == [0, 2, 2, 2, 0]   # prefixReceivedCount or pfxRcd
    assert list(df.local_as) == [64512] * 3 + [64612] * 2
    assert df.iloc[2].state_raw == "Idle (Admin)" and df.iloc[3].uptime_s == 20.0


def test_frr3_summary_remote_as_zero_is_unknown():
    df = frr.parse_summary(fixture("frr-bgp-summary", "upstream-frr3-remoteas0.out"))
    assert list(df.vrf) == ["default"] * 3      # FRR 3 spells it "Default"
    assert df.iloc[0].peer_as == 1 and df.peer_as.isna().sum() == 2
    assert (df.iloc[0].uptime_s, df.iloc[0].accepted) == (208.0, 2)


@pytest.mark.parametrize("text", [
    b'{"default": {"ipv4Unicast": {"peers": []}}}',
    b'{"default": {"vrfId": 0, "vrfName": "default", "swp2": {"nbrDesc": "x"}}}',
])
def test_frr_unknown_wrapped_layouts_are_reported(text):
    with pytest.raises(ParseError):
        (frr.parse_summary if b"ipv4Unicast" in text else frr.parse_neighbors)(text)


# --- calicoctl ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, peer, peers", [
    ("upstream-wrapped-info-global.out", "13.1.0.1", 4),
    ("upstream-wrapped-info-first.out", "192.168.50.21", 3),
])
def test_calico_wrapped_info_is_one_peer(name, peer, peers):
    df = calico.parse(fixture("calico-node-status", name))
    assert len(df) == peers and df.peer.notna().all() and (df.peer != "").all()
    row = df.set_index("peer").loc[peer]
    assert (row.state, row.last_error, row.peer_type) == ("ACTIVE", "Socket: Connection refused",
                                                          "global")
    assert row.state_raw == "start Active Socket: Connection refused"


def test_calico_error_querying_bird_is_refused_with_its_words():
    with pytest.raises(ParseError, match="Error querying BIRD: unable to connect to BIRDv4"):
        calico.parse(fixture("calico-node-status", "upstream-error-querying-bird.refused"))
    half = ("Calico process is running.\n\nIPv4 BGP status\n"
            "+------------+-----------+-------+----------+-------------+\n"
            "| PEER ADDRESS | PEER TYPE | STATE | SINCE | INFO |\n"
            "| 10.0.0.2 | node-to-node mesh | up | 01:02:03 | Established |\n"
            "+------------+-----------+-------+----------+-------------+\n\nIPv6 BGP status\n"
            "Error querying BIRD: unable to connect to BIRDv6 socket: dial unix "
            "/var/run/calico/bird6.ctl: connect: connection refused\n")
    df = calico.parse(half)
    assert list(df.peer) == ["10.0.0.2"]
    assert df.attrs["warnings"] and "BIRDv6" in df.attrs["warnings"][0]


# --- cilium -------------------------------------------------------------------------------------

def test_cilium_uptime_absent_for_sessions_that_never_came_up():
    df = cilium.parse_peers(fixture("cilium-bgp-peers", "upstream-cli-active-no-uptime.out"))
    assert list(df.node) == ["k3s-worker-node-01", "k3s-worker-node-02", "k3s-worker-node-03"]
    assert set(df.state) == {"ACTIVE"} and df.uptime_s.isna().all()
    assert list(df.received) == [0, 0, 0]
    up = cilium.parse_peers(fixture("cilium-bgp-peers", "upstream-cli-established-k3s.out"))
    assert list(up.uptime_s) == [5622.0, 5617.0, 5627.0]    # 1h33m42s, 1h33m37s, 1h33m47s
    assert list(up.received) == [1, 1, 1] and list(up.advertised) == [2, 2, 2]


def test_cilium_a_nodes_further_peers_keep_the_node():
    df = cilium.parse_peers(fixture("cilium-bgp-peers", "upstream-cli-shifted-two-peers.out"))
    assert list(zip(df.node, df.peer)) == [("k8s-w01", "192.168.1.1"), ("k8s-w01", "192.168.1.2"),
                                           ("k8s-w02", "192.168.1.1"), ("k8s-w02", "192.168.1.2")]
    assert list(df.uptime_s) == [470188.0, 429981.0] * 2   # 130h36m28s, 119h26m21s
    mixed = cilium.parse_peers(fixture("cilium-bgp-peers", "upstream-cli-egw-mixed.out"))
    assert list(mixed.state) == ["ESTABLISHED", "ACTIVE"] * 2
    assert list(mixed.received) == [5, 0, 6, 0] and list(mixed.advertised) == [1, 0, 1, 0]


@pytest.mark.parametrize("name", ["upstream-cli-shifted-two-peers.out", "upstream-cli-docs.out",
                                  "upstream-cli-egw-mixed.out", "upstream-dbg-issue31283.out"])
def test_cilium_a_column_shift_reads_the_same(name):
    """Every data row moved one character right (a wider value before it): same table."""
    text = fixture("cilium-bgp-peers", name).decode()
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if "Peer Address" in line)
    shifted = lines[:header + 1] + [" " + line if line.strip() else line
                                    for line in lines[header + 1:]]
    wide = lines[:header + 1] + [re.sub(r"(\S)(\s{2,})", r"\1 \2", line, count=3)
                                 for line in lines[header + 1:]]
    want = cilium.parse_peers(text)
    for variant in (shifted, wide):
        got = cilium.parse_peers("\n".join(variant) + "\n")
        assert got.to_dict("records") == want.to_dict("records")


def test_cilium_agent_ipv6_peer_with_port_and_mpreach_routes():
    df = cilium.parse_peers(fixture("cilium-bgp-peers", "upstream-agent-ipv6-port.out"))
    row = df.iloc[0]
    assert (row.peer, row.node, row.uptime_s, row.received, row.advertised) == (
        "fd00:11:0:2::1", None, 21 * 60 + 55.0, 4, 4)             # two families, 2 + 2
    routes = cilium.parse_routes(fixture("cilium-bgp-routes", "upstream-agent-ipv6-mpreach.out"))
    route = routes.iloc[0]
    assert (route.rib, route.peer, route.prefix, route.nexthop, route.as_path) == (
        "adj-out", "fd00:11:0:2::1", "10.1.1.0/24", "fd00:11:0:2::2", [65001])
    nodes = cilium.parse_routes(fixture("cilium-bgp-routes", "upstream-cli-node-available.out"))
    assert list(zip(nodes.node, nodes.prefix)) == [("k8s-w01", "203.0.113.10/32"),
                                                   ("k8s-w02", "203.0.113.10/32")]
    assert nodes.local.all() and set(nodes.origin) == {"IGP"}


@pytest.mark.parametrize("text", [
    # a state word the table never has: refused, not read as a peer
    ("Local AS   Peer AS   Peer Address   Session       Uptime   Family         Received   "
     "Advertised\n65001      65000     10.0.0.1       sleeping      1s       ipv4/unicast   0   0\n"),
    # the counts missing
    ("Local AS   Peer AS   Peer Address   Session       Uptime   Family         Received   "
     "Advertised\n65001      65000     10.0.0.1       established   1s       ipv4/unicast\n"),
])
def test_cilium_rows_that_do_not_fit_are_refused(text):
    with pytest.raises(ParseError):
        cilium.parse_peers(text)


def test_cilium_json_peers_use_the_agent_api_field_names():
    """Not a captured output (none was found in the public record): a document with the field
    names of cilium/cilium api/v1/models/bgp_peer.go and bgp_peer_families.go."""
    doc = ('[{"local-asn": 65001, "peer-asn": 65000, "peer-address": "10.0.1.1", '
           '"peer-port": 179, "session-state": "established", "uptime-nanoseconds": '
           '90000000000, "applied-hold-time-seconds": 9, "applied-keep-alive-time-seconds": 3, '
           '"families": [{"afi": "ipv4", "safi": "unicast", "received": 2, "accepted": 1, '
           '"advertised": 3}, {"afi": "ipv6", "safi": "unicast", "received": 1, "accepted": 1, '
           '"advertised": 1}]}, {"local-asn": 65001, "peer-asn": 65000, "peer-address": '
           '"10.0.2.1", "session-state": "active", "families": []}]')
    df = cilium.parse_peers(doc)
    assert list(zip(df.peer, df.state)) == [("10.0.1.1", "ESTABLISHED"), ("10.0.2.1", "ACTIVE")]
    assert df.iloc[0].uptime_s == 90.0 and pd.isna(df.iloc[1].uptime_s)
    assert (df.iloc[0].received, df.iloc[0].accepted, df.iloc[0].advertised) == (3, 2, 4)
    assert (df.iloc[0].hold_time, df.iloc[0].keepalive) == (9.0, 3.0)
    by_node = cilium.parse_peers('{"node-a": ' + doc + "}")
    assert set(by_node.node) == {"node-a"} and len(by_node) == 2
    with pytest.raises(ParseError):
        cilium.parse_peers('[{"session-state": "established"}]')


def test_frr84_admin_shutdown_is_idle_admin_in_both_outputs():
    """FRR 8.4 after ``neighbor 192.168.10.100 shutdown``: the summary prints ``Idle (Admin)``,
    the neighbours' JSON ``Idle`` with ``adminShutDown``; both rows say ``Idle (Admin)``, and
    the neighbours still Established keep their plain state."""
    summary = frr.parse_summary(fixture("frr-bgp-summary", "frr84-lab-admin-shutdown.out"))
    neighbors = frr.parse_neighbors(fixture("frr-bgp-neighbors", "frr84-lab-admin-shutdown.out"))
    for df in (summary, neighbors):
        states = dict(zip(df.peer, df.state_raw))
        assert states == {"192.168.10.100": "Idle (Admin)", "192.168.10.101": "Established",
                          "192.168.20.100": "Established"}, states
        assert set(df[df.peer == "192.168.10.100"].state) == {"IDLE"}
    shut = neighbors[neighbors.peer == "192.168.10.100"].iloc[0]
    assert shut.last_error == "Admin. shutdown"
