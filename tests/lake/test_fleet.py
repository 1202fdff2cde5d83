"""Fleet-scale explain from the lake gives the routing findings the in-memory analyzers give.

Oracle: :func:`diag.analyze.routing.analyze` over the whole FIB of the loaded facts (what
``diag explain BUNDLE`` runs), compared finding by finding (``Finding.to_dict()``: code,
severity, summary, evidence, fixes, order) and check by check with
:func:`diag.analyze.fleet.analyze` over the same bundle exported into a lake: the eight lab
bundles (real daemons) and synthetic bundles with faults (a blackhole, a route in an unused
table, ECMP, a lost route, a leak by the default route, one prefix twice with two metrics, a
host with fwmark rules). And the rows
``benchmarks/lake_scale.py`` writes straight into a lake are the rows the export makes of the
bundle ``benchmarks/explain_scale.py`` writes for the same cluster.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from diag import lake
from diag.analyze import fleet, routing
from diag.analyze.fib import build_fib
from diag.facts.export import model_from_rows
from diag.pipeline import facts_export, load_facts

pytest.importorskip("duckdb", reason="the [lake] extra (DuckDB) is not installed")

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = sorted((ROOT / "tests/fixtures/bundles").glob("*.tar.gz"))


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / f"benchmarks/{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec.loader.exec_module(module)
    return module


def _in_memory(source: Path):
    facts = load_facts(source)
    return routing.analyze(facts.tables, facts.model,
                           build_fib(facts.tables, outputs=facts.outputs))


def _from_lake(directory: Path, ident: str, timings: dict | None = None):
    reader = lake.LakeBundle(directory, ident)
    try:
        model = model_from_rows(reader.frame("model_hosts").to_dict("records"),
                                reader.frame("model_cluster").to_dict("records"),
                                reader.frame("tunnels").to_dict("records"))
        return fleet.analyze(reader, model, timings)
    finally:
        reader.close()


def _same(expected, got) -> None:
    (f1, c1), (f2, c2) = expected, got
    assert [f.to_dict() for f in f2] == [f.to_dict() for f in f1]
    assert c2 == c1


def _faulty(bench, root: Path, fault: str) -> Path:
    plain = bench._node_routes

    def routes(i, hosts, extra):
        rows = plain(i, hosts, extra)
        if i != 2:
            return rows
        for route in rows:
            if fault == "blackhole" and route["dst"] == bench.pod_cidr(3):
                route.update(type="blackhole", protocol="static")
                route.pop("gateway"), route.pop("dev")
            elif fault == "table" and route["dst"] == bench.pod_cidr(4):
                route["table"] = "2004"
            elif fault == "ecmp" and route["dst"] == bench.pod_cidr(5):
                route.pop("gateway"), route.pop("dev")
                route["nexthops"] = [{"gateway": bench.ROUTER_IP, "dev": "eth1", "weight": 1,
                                      "flags": []},
                                     {"gateway": bench.node_ip(6), "dev": "eth1", "weight": 1,
                                      "flags": []}]
            elif fault == "leak" and route["dst"] == bench.pod_cidr(6):
                route.update(gateway="10.128.0.1", dev="eth0", metric=5)
        if fault == "metric":          # the same prefix twice: the lower metric (eth0) wins
            rows += [dict(r, gateway="10.128.0.1", dev="eth0", metric=5) for r in rows
                     if r["dst"] == bench.pod_cidr(7)]
            rows += [dict(r, metric=30) for r in rows if r["dst"] == bench.pod_cidr(8)]
        return rows

    bench._node_routes = routes
    try:
        bench.build(root, hosts=9, routes=30, break_node=4 if fault == "lost" else None)
    finally:
        bench._node_routes = plain
    if fault == "rules":               # node 3 selects on a mark: walked in full, not swept
        rule = root / "hosts" / "node-0003" / "ip-rule-v4.out"
        rules = json.loads(rule.read_text())
        rules.insert(1, {"priority": 100, "src": "all", "fwmark": "0x200/0xf00",
                         "table": "2004"})
        rule.write_text(json.dumps(rules))
        _reseal(root)
    return root


def _reseal(root: Path) -> None:
    """The manifest's sha256 of an output edited after the writer (a test's own bundle)."""
    from diag.bundle import sha256_file

    manifest = json.loads((root / "manifest.json").read_text())
    for host in manifest["hosts"].values():
        for command in host.get("commands", []):
            if command.get("path"):
                path = root / command["path"]
                command["sha256"], command["bytes"] = sha256_file(path), path.stat().st_size
    (root / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def shared_lake(tmp_path_factory):
    return tmp_path_factory.mktemp("fleet") / "lake"


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name.split(".")[0] for b in BUNDLES])
def test_lab_bundles_give_the_same_routing_findings(shared_lake, bundle):
    ident = facts_export(bundle, shared_lake)["bundle"]
    _same(_in_memory(bundle), _from_lake(shared_lake, ident))


@pytest.mark.parametrize("method", ["columns", "sql"])
@pytest.mark.parametrize("fault", ["blackhole", "table", "ecmp", "lost", "leak", "metric",
                                   "rules"])
def test_faulty_synthetic_bundles_give_the_same_findings(tmp_path, monkeypatch, fault, method):
    """Both ways of joining the RIB with the FIB (column-wise, the default; DuckDB SQL, kept
    measured in docs/explain.md) give the in-memory findings."""
    monkeypatch.setattr(fleet, "RIB_VS_FIB", method)
    bundle = _faulty(_module("explain_scale"), tmp_path / "b", fault)
    ident = facts_export(bundle, tmp_path / "lake")["bundle"]
    expected = _in_memory(bundle)
    if fault not in ("rules", "ecmp"):        # ECMP via the router is healthy
        assert [f for f in expected[0] if f.severity != "info"], "the fault must show"
    _same(expected, _from_lake(tmp_path / "lake", ident))


def test_the_comparison_catches_a_sweep_that_flags_nothing(tmp_path, monkeypatch):
    """Mutant: the sweep's verdict says every pair is fine — the findings must differ."""
    bundle = _faulty(_module("explain_scale"), tmp_path / "b", "blackhole")
    ident = facts_export(bundle, tmp_path / "lake")["bundle"]
    real = fleet.sweep

    def blind(source, model, timings=None, routes=None):
        swept = real(source, model, timings, routes)
        swept.flagged = {host: [] for host in swept.flagged}
        return swept

    monkeypatch.setattr(fleet, "sweep", blind)
    with pytest.raises(AssertionError):
        _same(_in_memory(bundle), _from_lake(tmp_path / "lake", ident))


def test_the_benchmark_writes_the_rows_the_export_makes(tmp_path):
    bench, scale = _module("explain_scale"), _module("lake_scale")
    bench.build(tmp_path / "b", hosts=6, routes=14, break_node=2)
    exported = facts_export(tmp_path / "b", tmp_path / "exported")["bundle"]
    written = scale.write(tmp_path / "written", 6, 14, break_node=2)
    columns = {
        "routes": "host source phase \"table\" family type dst gateway dev nexthops ecmp protocol "
                  "metric scope prefsrc flags",
        "bgp_paths": "host source daemon rib peer prefix nexthop as_path as_path_str origin best "
                     "valid stale local",
        "rules": "host priority family src dst \"table\" action not_",
        "addresses": "host ifname family address prefixlen network scope",
        "model_hosts": "host role node_ip cluster_iface default_iface pod_cidr asn peering_ips "
                       "forwarding daemons",
        "model_cluster": "pod_range lb_ips",
    }
    for table, names in columns.items():
        select = ", ".join(names.split())
        rows = {}
        for directory, ident in ((tmp_path / "exported", exported),
                                 (tmp_path / "written", written)):
            got = lake.query(directory, f"SELECT {select} FROM {table} WHERE bundle = '{ident}'")
            rows[directory.name] = Counter(tuple(r.values()) for r in got.to_pylist())
        assert rows["written"] == rows["exported"], table
    assert sum(rows["written"].values()) > 0


def test_explain_lake_from_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from diag.cli import app

    bundle = _faulty(_module("explain_scale"), tmp_path / "b", "blackhole")
    facts_export(bundle, tmp_path / "lake")
    facts_export(ROOT / "captures/bgp_session.pcap", tmp_path / "lake")
    result = CliRunner().invoke(app, ["explain", str(tmp_path / "lake")])
    assert result.exit_code == 2 and "2 bundles" in result.stderr
    ident = next(b for b, e in lake.bundles(tmp_path / "lake").items() if e["kind"] == "bundle")
    result = CliRunner().invoke(app, ["explain", str(tmp_path / "lake"), "--bundle", ident[:10],
                                      "--format", "json"])
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["findings"][0]["code"] == "ROUTE_WRONG_TABLE_OR_BLACKHOLE"
    assert any("routing analyzers" in c["needs"] for c in doc["not_checked"])
