"""iproute2 JSON parsers on real kernel output: the lab's (oracle: what the lab built, from
diag.lab's own records) and a hand-built namespace (oracle: the commands that built it)."""
from __future__ import annotations

import ipaddress
import json

import pandas as pd
import pytest

from diag.lab import plan as lab_plan
from diag.parse import bridge_fdb, ip_addr, ip_link, ip_neigh, ip_route, ip_rule
from diag.parse.common import ParseError
from tests.parse.helpers import CASES, fixture, truth

VXLAN_CASES = [c for c in CASES if truth(c)["mode"] == "vxlan"]


def test_addresses_match_what_the_lab_built(lab_case):
    for host, info in truth(lab_case)["hosts"].items():
        df = ip_addr.parse(fixture("ip-addr", f"{lab_case}--{host}.out"))
        got = {f"{a}/{p}" for a, p, s in zip(df.address, df.prefixlen, df.scope)
               if s == "global"}
        assert set(info["ips"]) <= got
        cluster = df[df.address == info["cluster_ip"]]
        assert list(cluster.ifname) == [info["cluster_iface"]]
        assert list(cluster.network) == [str(ipaddress.ip_interface(
            next(i for i in info["ips"] if i.startswith(info["cluster_ip"] + "/"))).network)]


def test_links_vxlan_parameters(lab_case):
    t = truth(lab_case)
    for host, info in t["hosts"].items():
        df = ip_link.parse(fixture("ip-link", f"{lab_case}--{host}.out"))
        vx = df[df.kind == "vxlan"]
        if t["mode"] != "vxlan" or info["role"] != "node":
            assert vx.empty
            continue
        assert len(vx) == 1
        row = vx.iloc[0]
        assert (row.vxlan_id, row.vxlan_port, row.mtu) == (
            lab_plan.VXLAN_VNI, lab_plan.VXLAN_PORT, lab_plan.VXLAN_MTU)
        assert not bool(row.vxlan_learning)
        assert row.vxlan_dev in (None, info["cluster_iface"]) or \
            row.vxlan_local == info["cluster_ip"]
        # the pod veth: peer in another namespace
        pod = df[(df.kind == "veth") & (df.link_netnsid.notna())]
        assert len(pod) >= 2


def test_reference_vxlan_port_mismatch():
    n1 = ip_link.parse(fixture("ip-link", "reference-vxlan-n1.out")).iloc[0]
    n2 = ip_link.parse(fixture("ip-link", "reference-vxlan-n2.out")).iloc[0]
    assert (n1.ifname, n1.vxlan_id, n1.vxlan_port, n1.mtu) == ("vxlan100", 100, 8472, 1450)
    assert n2.vxlan_port == 4789
    assert (n1.vxlan_local, n1.vxlan_remote) == (n2.vxlan_remote, n2.vxlan_local)
    assert n1.vxlan_dev == "eth0" and bool(n1.vxlan_learning) is True


def test_routes_lab_node(lab_case):
    t = truth(lab_case)
    for host, info in t["hosts"].items():
        df = ip_route.parse(fixture("ip-route-v4", f"{lab_case}--{host}.out"))
        main = df[df.table == "main"]
        local = df[df.table == "local"]
        assert set(local.type) <= {"local", "broadcast"}
        assert (local.type == "local").any()
        if info["role"] == "router":
            bgp = main[main.protocol == "bgp"]
            assert set(bgp.dst) == {h["pod_cidr"] for h in t["hosts"].values() if h["pod_cidr"]}
            assert set(bgp.metric) == {20}
            continue
        default = main[main.dst == "0.0.0.0/0"]
        assert list(default.dev) == [info["mgmt_iface"]]
        own = main[main.dst == info["pod_cidr"]]
        assert len(own) == 1 and own.iloc[0].protocol == "kernel" and own.iloc[0].gateway is None
        if t["cni"] == "calico":
            others = {h["pod_cidr"] for n, h in t["hosts"].items() if h["pod_cidr"] and n != host}
            bird = main[main.protocol == "bird"]
            assert set(bird.dst) == others and set(bird.metric) == {32}
        if t["mode"] == "vxlan":
            vx = main[main["dev"].fillna("").str.contains("vxlan")]
            assert len(vx) == 2 and all("onlink" in f for f in vx["flags"])


def test_routes_kernel_namespace_every_type_and_ecmp():
    df = ip_route.parse(fixture("ip-route-v4", "kernel-netns.out"))
    by_dst = {d: r for d, r in zip(df.dst, df.to_dict("records"))}
    ecmp = by_dst["203.0.113.0/24"]
    assert ecmp["ecmp"] and ecmp["gateway"] == "192.0.2.2"
    assert [(h["gateway"], h["dev"], h["weight"]) for h in ecmp["nexthops"]] == [
        ("192.0.2.2", "veth0", 1), ("198.51.100.2", "veth2", 2)]
    assert by_dst["0.0.0.0/0"]["metric"] == 100 and by_dst["0.0.0.0/0"]["protocol"] == "boot"
    assert by_dst["10.99.0.0/26"]["type"] == "blackhole"
    assert by_dst["10.99.0.0/26"]["protocol"] == "bird"       # proto 12
    assert by_dst["10.98.0.0/16"]["type"] == "unreachable"
    assert by_dst["10.97.0.0/16"]["type"] == "prohibit"
    assert by_dst["10.96.0.0/12"]["table"] == "2004"
    assert by_dst["10.11.0.0/24"]["flags"] == ["onlink"] and by_dst["10.11.0.0/24"]["metric"] == 32
    assert by_dst["127.0.0.1/32"]["type"] == "local" and by_dst["127.0.0.1/32"]["table"] == "local"
    v6 = ip_route.parse(fixture("ip-route-v6", "kernel-netns.out"))
    assert set(v6.family) == {"inet6"}
    assert v6[v6.dst == "2001:db8:1::/64"].iloc[0].gateway == "2001:db8::2"


def test_default_route_family_from_gateway():
    v6 = ip_route.parse(b'[{"dst":"default","gateway":"fe80::1","dev":"eth0","flags":[]}]')
    assert (v6.iloc[0].dst, v6.iloc[0].family) == ("::/0", "inet6")


def test_reference_frr_routes_with_nhid():
    df = ip_route.parse(fixture("ip-route-v4", "reference-tor-frr.out"))
    bgp = df[df.protocol == "bgp"]
    assert set(bgp.metric) == {20} and bgp.nhid.notna().all()


def test_ecmp_flag_follows_the_raw_nexthops():
    """``ecmp`` is True exactly where iproute2 printed more than one nexthop (the raw JSON),
    for single-path routes of every lab host and the kernel namespace's weighted pair."""
    from tests.parse.helpers import FIXTURES

    seen = {True: 0, False: 0}
    for path in sorted(FIXTURES.glob("ip-route-v*/*.out")):
        raw = json.loads(path.read_bytes() or b"[]")
        want = [len(r.get("nexthops") or []) > 1 for r in raw]
        df = ip_route.parse(path.read_bytes())
        assert list(df.ecmp) == want, path.name
        for flag in want:
            seen[flag] += 1
    assert seen[True] >= 1 and seen[False] > 100


def test_rules_selectors_and_suppress_prefixlen():
    """A namespace built with `ip rule add ... suppress_prefixlength 0`, `goto`, `nop`,
    `uidrange`, `ipproto tcp dport 179`, `sport 1024-2048`, `tos`, `protocol bgp`, `realms 3/4`,
    `suppress_ifgroup 5` (iproute2 6.1; PROVENANCE.md lists the commands)."""
    by_prio = {r["priority"]: r for r in ip_rule.parse(
        fixture("ip-rule-v4", "kernel-netns-selectors.out"), "inet").to_dict("records")}
    assert (by_prio[100]["table"], by_prio[100]["suppress_prefixlen"]) == ("main", 0)
    assert by_prio[101]["not_"] and by_prio[101]["fwmark"] == "0xca6c"
    assert by_prio[102]["uidrange"] == "1000-2000"
    assert (by_prio[103]["ipproto"], by_prio[103]["dport"]) == ("tcp", "179")
    assert by_prio[104]["sport"] == "1024-2048"
    assert (by_prio[105]["tos"], by_prio[105]["protocol"], by_prio[105]["src"]) == (
        "0x10", "bgp", "10.0.0.0/8")
    assert (by_prio[106]["action"], by_prio[106]["goto"], by_prio[106]["table"]) == (
        "goto", 110, None)
    assert by_prio[107]["suppress_ifgroup"] == "5" and by_prio[108]["realms"] == "3/4"
    assert (by_prio[109]["action"], by_prio[110]["action"]) == ("blackhole", "nop")
    assert [p for p, r in by_prio.items() if not pd.isna(r["suppress_prefixlen"])] == [100]
    v6 = ip_rule.parse(fixture("ip-rule-v6", "kernel-netns-selectors.out"), "inet6")
    assert list(v6[v6.priority == 100].suppress_prefixlen) == [0]
    tun = ip_rule.parse(fixture("ip-rule-v4", "upstream-mihomo-tun-numeric.out"), "inet")
    dns = tun[(tun.priority == 9001) & (tun.action == "lookup")].iloc[0]
    assert (dns.table, dns.suppress_prefixlen, dns.dport, bool(dns.not_)) == ("254", 0, "53",
                                                                              True)
    jump = tun[(tun.priority == 9001) & (tun.action == "goto")].iloc[0]
    assert (jump.iif, jump.goto) == ("omash-tun", 9010)
    assert list(tun[tun.priority == 9010].action) == ["nop"]


def test_rules_kernel_namespace():
    df = ip_rule.parse(fixture("ip-rule-v4", "kernel-netns.out"), "inet")
    by_prio = {p: r for p, r in zip(df.priority, df.to_dict("records"))}
    assert by_prio[9]["fwmark"] == "0x200/0xf00" and by_prio[9]["table"] == "2004"
    assert by_prio[100]["src"] == "10.11.0.0/24" and by_prio[100]["action"] == "lookup"
    assert by_prio[200]["action"] == "unreachable" and bool(by_prio[200]["not_"]) is True
    assert by_prio[200]["dst"] == "10.0.0.0/8" and not bool(by_prio[9]["not_"])
    assert [by_prio[p]["table"] for p in (0, 32766, 32767)] == ["local", "main", "default"]


def test_neighbors_states():
    df = ip_neigh.parse(fixture("ip-neigh", "kernel-netns.out"))
    states = dict(zip(df.dst, df.state))
    assert states == {"192.0.2.7": "PERMANENT", "192.0.2.8": "STALE", "192.0.2.9": "INCOMPLETE"}
    assert dict(zip(df.dst, df.resolved)) == {"192.0.2.7": True, "192.0.2.8": True,
                                              "192.0.2.9": False}
    ref = ip_neigh.parse(fixture("ip-neigh", "reference-unanswered.out")).iloc[0]
    assert (ref.state, ref.lladdr, ref.resolved) == ("INCOMPLETE", None, False)


def test_fdb_vxlan_entries():
    df = bridge_fdb.parse(fixture("bridge-fdb", "kernel-netns.out"))
    vx = df[df.ifname == "vx0"]
    assert set(zip(vx.mac, vx.dst)) >= {("00:00:00:00:00:00", "192.0.2.2"),
                                       ("0a:00:00:00:00:01", "192.0.2.3")}


@pytest.mark.parametrize("lab_case", VXLAN_CASES)
def test_fdb_lab_vteps(lab_case):
    t = truth(lab_case)
    for host, info in t["hosts"].items():
        if info["role"] != "node":
            continue
        df = bridge_fdb.parse(fixture("bridge-fdb", f"{lab_case}--{host}.out"))
        remotes = {h["cluster_ip"] for n, h in t["hosts"].items()
                   if h["role"] == "node" and n != host}
        assert set(df.dst.dropna()) == remotes


@pytest.mark.parametrize("module", [ip_addr, ip_link, ip_route, ip_rule, ip_neigh, bridge_fdb])
@pytest.mark.parametrize("text", [b"not json", b'{"a": 1}', b"default via 1.2.3.4 dev eth0"])
def test_unknown_format_is_reported(module, text):
    with pytest.raises(ParseError):
        module.parse(text)


@pytest.mark.parametrize("module", [ip_addr, ip_link, ip_route, ip_rule, ip_neigh, bridge_fdb])
def test_empty_output_is_an_empty_table_with_columns(module):
    df = module.parse(b"")
    assert df.empty and list(df.columns) == module.COLUMNS


def test_route_get_answers_and_refusals():
    from diag.parse import ip_route_get

    # verbatim `ip -j route get` answers of iproute2 6.1 (a local and a routed address)
    local = ip_route_get.parse('[{"type":"local","dst":"127.0.0.1","dev":"lo","prefsrc":'
                               '"127.0.0.1","flags":[],"uid":0,"cache":["local"]}]', "127.0.0.1")
    assert (local.iloc[0].type, local.iloc[0].dev, local.iloc[0].error) == ("local", "lo", None)
    routed = ip_route_get.parse('[{"dst":"8.8.8.8","gateway":"192.0.2.1","dev":"eth0","prefsrc":'
                                '"192.0.2.2","flags":[],"uid":0,"cache":[]}]', "8.8.8.8").iloc[0]
    assert (routed.type, routed.gateway, routed.dev) == ("unicast", "192.0.2.1", "eth0")
    refused = ip_route_get.failed("203.0.113.9", "RTNETLINK answers: Network is unreachable\n")
    assert refused["error"] == "RTNETLINK answers: Network is unreachable"
    assert refused["dev"] is None
    assert ip_route_get.probe_of("ip-route-get-2001:db8::1".replace(":", "_")) == "2001:db8::1"


def test_columnwise_routes_equal_the_row_by_row_reference():
    from tests.parse.helpers import FIXTURES

    files = sorted(FIXTURES.glob("ip-route-v*/*.out"))
    assert len(files) > 30
    for path in files:
        fast = ip_route.parse(path.read_bytes())
        slow = [ip_route.route_row(r) for r in ip_route.raw(path.read_bytes())]
        assert len(fast) == len(slow)
        for got, want in zip(fast.to_dict("records"), slow):
            got = {k: (None if v is not None and not isinstance(v, (list, str, bool)) and
                       v != v else v) for k, v in got.items()}
            got = {k: (None if str(v) == "<NA>" else v) for k, v in got.items()}
            assert got == want, path.name
