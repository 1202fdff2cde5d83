"""The scale benchmark at a tiny size (CI): the synthetic bundle is a real bundle (written by the
bundle writer, read back with sha256s verified), explain finds nothing wrong in it, finds the one
route the generator removed, and the indexed longest-prefix match of the tracer gives the same
answers as a plain scan of every route with ``ipaddress`` containment (the old algorithm)."""
from __future__ import annotations

import importlib.util
import ipaddress
import subprocess
import sys
import time
from pathlib import Path

from diag.analyze import explain
from diag.analyze.fib import build_fib
from diag.analyze.lookup import _table_lookup
from diag.facts import load_facts

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("explain_scale",
                                                  ROOT / "benchmarks/explain_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_small_synthetic_bundle_is_healthy_and_fast(tmp_path):
    bench = _bench()
    bench.build(tmp_path / "b", hosts=12, routes=120)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/explain_scale.py"), "--hosts",
                           "12", "--routes", "120"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "diag explain" in proc.stdout and "0 warning/error" in proc.stdout, proc.stdout
    facts = load_facts(tmp_path / "b")
    assert not facts.problems and facts.bundle.get("status", "complete") == "complete"
    assert len(facts.model.nodes()) == 11
    result = explain(facts)
    assert not [f for f in result.findings if f.severity != "info"], result.findings
    assert time.monotonic() - started < 20


def test_removed_route_is_found(tmp_path):
    bench = _bench()
    bench.build(tmp_path / "b", hosts=12, routes=120, break_node=3)
    result = explain(load_facts(tmp_path / "b"))
    first = result.findings[0]
    lost = bench.pod_cidr(3 % 11 + 1)
    assert first.code == "ROUTE_RIB_NOT_IN_FIB" and first.severity == "error", result.findings
    assert first.hosts == ("node-0003",) and lost in first.summary, first


def test_index_matches_a_linear_scan(tmp_path):
    bench = _bench()
    bench.build(tmp_path / "b", hosts=6, routes=60)
    fib = build_fib(load_facts(tmp_path / "b").tables)
    probes = [ipaddress.ip_address(a) for a in (
        "172.16.1.1", "172.16.5.200", "172.16.99.1", "198.18.0.7", "198.18.0.200", "10.0.0.1",
        "10.0.0.12", "10.128.0.11", "8.8.8.8", "0.0.0.0", "255.255.255.255")]
    compared = 0
    for (host, table), routes in fib.routes.items():
        for address in probes:
            scan = next((r for r in routes if address in r.dst), None)
            assert _table_lookup(fib, host, table, address) is scan, (host, table, address)
            compared += 1
    assert compared >= 6 * len(probes)


def _faulty_bundle(bundle: Path) -> Path:
    """A synthetic bundle with a blackhole, a route in an unused table and ECMP on node 2."""
    bench = _bench()
    plain = bench._node_routes

    def faulty(i, hosts, extra):
        routes = plain(i, hosts, extra)
        if i == 2:
            for route in routes:
                if route["dst"] == bench.pod_cidr(3):
                    route.update(type="blackhole", protocol="static")
                    route.pop("gateway"), route.pop("dev")
                elif route["dst"] == bench.pod_cidr(4):
                    route["table"] = "2004"
                elif route["dst"] == bench.pod_cidr(5):
                    route.pop("gateway"), route.pop("dev")
                    route["nexthops"] = [{"gateway": bench.ROUTER_IP, "dev": "eth1", "weight": 1,
                                          "flags": []},
                                         {"gateway": bench.node_ip(6), "dev": "eth1",
                                          "weight": 1, "flags": []}]
        return routes

    bench._node_routes = faulty
    bench.build(bundle, hosts=8, routes=40)
    return bundle


def test_quick_route_agrees_with_the_full_lookup(tmp_path):
    """The analyzers' cheap check (trace.quick_route: type, out device, gateways without the
    records) answers as lookup() does, on every committed lab bundle and on a synthetic one with
    a blackhole, a route in an unused table and ECMP — or steps aside (None)."""
    import ipaddress

    from diag.analyze.lookup import lookup, quick_route

    _faulty_bundle(tmp_path / "b")
    bundles = sorted((ROOT / "tests/fixtures/bundles").glob("*.tar.gz")) + [tmp_path / "b"]
    compared = 0
    for bundle in bundles:
        facts = load_facts(bundle)
        fib = build_fib(facts.tables)
        pods = [h.pod_cidr.value for h in facts.model.hosts.values() if h.pod_cidr.value]
        targets = sorted(fib.owners) + ["8.8.8.8", "198.18.0.3", "255.255.255.255"] + [
            str(ipaddress.ip_network(p).network_address + k) for p in pods for k in (0, 1, 10)]
        for host in fib.hosts:
            for dst in targets:
                quick = quick_route(fib, host, dst)
                if quick is None:
                    continue
                lk = lookup(fib, host, dst)
                assert quick == (lk.type, lk.dev, lk.gateways), (bundle.name, host, dst, lk)
                compared += 1
    assert compared > 1000


def test_batched_quick_routes_answer_as_one_by_one(tmp_path):
    """lookup.quick_routes (the sweeps' vectorised step: numpy per prefix length) leaves in the
    memo exactly what quick_route computes alone (lookup._quick_route), on the committed lab
    bundles and the faulty synthetic one, for addresses in and around every pod CIDR."""
    import ipaddress
    import random

    from diag.analyze.lookup import _quick_route, quick_routes

    bundles = sorted((ROOT / "tests/fixtures/bundles").glob("*.tar.gz")) + [
        _faulty_bundle(tmp_path / "b")]
    rnd = random.Random(7)
    batched = 0
    for bundle in bundles:
        facts = load_facts(bundle)
        fib = build_fib(facts.tables)
        pods = [h.pod_cidr.value for h in facts.model.hosts.values() if h.pod_cidr.value]
        targets = sorted(fib.owners) + ["8.8.8.8", "0.0.0.0", "255.255.255.255", "fd00::1"] + [
            str(ipaddress.ip_network(p).network_address + k) for p in pods for k in (0, 1, 10)] \
            + [str(ipaddress.IPv4Address(rnd.getrandbits(32))) for _ in range(200)]
        for host in fib.hosts:
            quick_routes(fib, host, targets)
            for dst in targets:
                memo = fib.cache.get(("quick", host, dst), "not batched")
                if memo == "not batched":
                    continue
                assert memo == _quick_route(fib, host, dst), (bundle.name, host, dst)
                batched += 1
    assert batched > 2000
