"""The evidence lake: export bundles into one directory, ask DuckDB, get the facts back.

Every figure is compared with the facts loaded directly (``diag.pipeline.load_facts``), never
with numbers written here: the lab bundles (tests/fixtures/bundles, collected from the real
daemons) and the example capture.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diag import lake
from diag.cli import app
from diag.pipeline import facts_export, lake_query, load_facts
from diag.values import or_none

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = ROOT / "tests/fixtures/bundles"
CAPTURE = ROOT / "captures/bgp_session.pcap"
TWO = ("cilium-native-default", "calico-vxlan-alt")

pytest.importorskip("duckdb", reason="the [lake] extra (DuckDB) is not installed")


def _run(*args):
    result = CliRunner().invoke(app, [*map(str, args)])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    directory = tmp_path_factory.mktemp("lake") / "lake"
    sources = [BUNDLES / f"{name}.tar.gz" for name in TWO] + [CAPTURE]
    ids = [facts_export(s, directory)["bundle"] for s in sources]
    return directory, dict(zip(ids, sources))


def test_every_table_and_host_comes_back_with_its_rows(filled):
    directory, sources = filled
    counts = lake_query(directory, "SELECT bundle, host, count(*) AS n FROM routes "
                                   "GROUP BY ALL").to_pylist()
    got = {(r["bundle"], r["host"]): r["n"] for r in counts}
    expected = {}
    for ident, source in sources.items():
        facts = load_facts(source)
        for host, n in facts.tables["routes"].groupby("host").size().items():
            expected[(ident, host)] = int(n)
        # every table of the facts, row for row, under its own name
        for name, df in facts.tables.items():
            n = lake_query(directory, f"SELECT count(*) AS n FROM {name} "
                                      f"WHERE bundle = '{ident}'").to_pylist()[0]["n"]
            assert n == len(df), (source.name, name)
    assert got == expected


def test_values_keep_their_types_and_lists_come_back(filled):
    directory, sources = filled
    ident = next(i for i, s in sources.items() if s.name.startswith("cilium"))
    facts = load_facts(sources[ident])
    routes = facts.tables["routes"]
    rows = lake_query(directory, "SELECT host, \"table\", dst, metric, nexthops, ecmp "
                                 f"FROM routes WHERE bundle = '{ident}'").to_pylist()
    got = Counter((r["host"], r["table"], r["dst"], r["metric"],
                   json.dumps(json.loads(r["nexthops"])) if r["nexthops"] else None, r["ecmp"])
                  for r in rows)
    want = Counter((h, t, d, None if or_none(m) is None else int(m),
                    json.dumps(n) if or_none(n) is not None else None, bool(e))
                   for h, t, d, m, n, e in zip(routes["host"], routes["table"], routes["dst"],
                                               routes["metric"], routes["nexthops"],
                                               routes["ecmp"]))
    assert got == want and sum(got.values()) == len(routes)
    assert any(n for (_h, _t, _d, _m, n, _e) in got)      # lists were there to come back
    types = {r["column_name"]: r["column_type"] for r in lake_query(
        directory, "DESCRIBE SELECT * FROM routes").to_pylist()}
    assert types["metric"] == "BIGINT" and types["ecmp"] == "BOOLEAN"
    assert types["bundle"] == "VARCHAR" and types["host"] == "VARCHAR"


def test_the_model_is_in_the_lake_and_comes_back(filled):
    from diag.facts.export import model_from_rows

    directory, sources = filled
    for ident, source in sources.items():
        facts = load_facts(source)
        hosts = lake_query(directory, f"SELECT * FROM model_hosts WHERE bundle = '{ident}'"
                           ).to_pylist()
        cluster = lake_query(directory, f"SELECT * FROM model_cluster WHERE bundle = '{ident}'"
                             ).to_pylist()
        tunnels = lake_query(directory, f"SELECT * FROM tunnels WHERE bundle = '{ident}'"
                             ).to_pylist()
        back = model_from_rows(hosts, cluster, tunnels)
        assert set(back.hosts) == set(facts.model.hosts)
        for name, host in facts.model.hosts.items():
            for part in ("role", "node_ip", "cluster_iface", "default_iface", "pod_cidr", "asn"):
                a, b = getattr(host, part), getattr(back.hosts[name], part)
                assert (a.value, a.how, a.source) == (b.value, b.how, b.source), (name, part)
            assert back.hosts[name].peering_ips == host.peering_ips
            assert back.hosts[name].forwarding == host.forwarding
        assert back.pod_range.value == facts.model.pod_range.value
        assert back.lb_ips.value == facts.model.lb_ips.value
        assert back.tunnels == facts.model.tunnels
        assert back.notes == facts.model.notes


def test_appending_again_is_idempotent_and_the_archive_is_its_directory(filled, tmp_path):
    directory, sources = filled
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest()
              for p in sorted(directory.rglob("*.parquet"))}
    source = BUNDLES / f"{TWO[0]}.tar.gz"
    again = facts_export(source, directory)
    assert again["added"] is False
    # the same bundle extracted: same manifest, same id, nothing written
    with tarfile.open(source) as tar:
        tar.extractall(tmp_path, filter="data")
    (root,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert facts_export(root, directory) == {**again, "rows": again["rows"]}
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(directory.rglob("*.parquet"))}
    assert after == before
    assert len(lake.bundles(directory)) == len(sources)


def test_every_column_the_facts_have_is_declared():
    """A new column in a parser must be added to the lake's schema (and its version bumped if
    it changes anything that was there): no bundle exports undeclared columns."""
    from diag.facts.export import lake_tables
    from diag.parse.k8s import TABLES as KUBE_TABLES

    for path in sorted(BUNDLES.glob("*.tar.gz")) + [CAPTURE]:
        for name, df in lake_tables(load_facts(path)).items():
            if name in lake.SCHEMA:
                declared = {c for c, _ in lake.SCHEMA[name]}
            else:
                # a Kubernetes kind's table: declared by its parser (diag.parse.k8s), kept as
                # text, its columns recorded in the lake's manifest
                assert name in KUBE_TABLES, name
                declared = {"bundle", "host", "source", *KUBE_TABLES[name]}
            assert set(df.columns) <= declared, (path.name, name, set(df.columns) - declared)


def test_values_that_do_not_fit_are_null_and_counted(tmp_path):
    import pandas as pd

    tables = {"routes": pd.DataFrame({"host": ["a", "b", "c"], "dst": ["10.0.0.0/8"] * 3,
                                      "metric": [5, "oops", None], "novel": [1, [2], None]})}
    assert lake.append(tmp_path / "l", "x" * 64, tables, {"source": "made", "kind": "bundle"})
    entry = lake.bundles(tmp_path / "l")["x" * 64]
    assert entry["coerced"] == {"routes.metric": 1}
    assert entry["extra_columns"] == {"routes": ["novel"]}
    rows = lake.query(tmp_path / "l", "SELECT host, metric, novel FROM routes ORDER BY host"
                      ).to_pylist()
    assert rows == [{"host": "a", "metric": 5, "novel": "1"},
                    {"host": "b", "metric": None, "novel": "[2]"},
                    {"host": "c", "metric": None, "novel": None}]
    # the other tables exist, empty, with their declared columns
    assert lake.query(tmp_path / "l", "SELECT count(*) AS n FROM bgp_peers").to_pylist() == \
        [{"n": 0}]


def test_query_formats_and_errors(filled, tmp_path):
    directory, sources = filled
    sql = "SELECT bundle, kind, hosts FROM bundles ORDER BY bundle"
    code, out, err = _run("query", directory, sql, "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["bundle"] for r in rows] == sorted(sources)
    assert {r["kind"] for r in rows} == {"bundle", "capture"}
    code, out, _ = _run("query", directory, sql, "--format", "json")
    assert code == 0 and [r["bundle"] for r in json.loads(out)] == sorted(sources)
    code, out, _ = _run("query", directory, "SELECT count(*) AS n FROM bgp_peers")
    assert code == 0 and out.endswith("\n1 row\n")
    code, _, err = _run("query", directory, "SELECT nope FROM routes")
    assert code == 2 and "query: Binder Error" in err and err.count("\n") <= 2
    code, _, err = _run("query", tmp_path, "SELECT 1")
    assert code == 2 and "not an evidence lake" in err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file").write_text("x")
    code, _, err = _run("facts", CAPTURE, "--export", tmp_path / "other")
    assert code == 2 and "not an evidence lake" in err


def test_without_duckdb_the_query_exits_5_with_the_pip_hint(filled, monkeypatch):
    directory, _ = filled
    monkeypatch.setitem(sys.modules, "duckdb", None)        # import duckdb -> ImportError
    code, _, err = _run("query", directory, "SELECT 1")
    assert code == 5
    assert "needs DuckDB" in err and "pip install 'diag[lake]'" in err


def test_facts_export_json_and_text(tmp_path):
    code, out, err = _run("facts", CAPTURE, "--export", tmp_path / "l", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["added"] is True and doc["rows"]["packets"] == len(
        load_facts(CAPTURE).tables["packets"])
    code, out, _ = _run("facts", CAPTURE, "--export", tmp_path / "l")
    assert code == 0 and "already in" in out
    code, _, err = _run("facts", CAPTURE, "--export", tmp_path / "l", "--table", "routes")
    assert code == 2


def test_bundles_of_an_older_schema_are_read_by_column_name(tmp_path):
    """A bundle written before a column existed (its file lacks it, its manifest entry says
    an older schema_version): the views read both by name, the missing column is NULL."""
    import pandas as pd
    import pyarrow.parquet as pq

    directory = tmp_path / "l"
    frame = pd.DataFrame({"host": ["a"], "dst": ["10.0.0.0/8"], "nhid": [7]})
    lake.append(directory, "a" * 64, {"routes": frame}, {"source": "new", "kind": "bundle"})
    lake.append(directory, "b" * 64, {"routes": frame.assign(host="b")},
                {"source": "old", "kind": "bundle"})
    (path,) = lake.files(directory, "routes", ["b" * 64])
    pq.write_table(pq.read_table(path).drop_columns(["nhid"]), path)
    manifest = json.loads((directory / "lake.json").read_text())
    manifest["bundles"]["b" * 64]["schema_version"] = lake.SCHEMA_VERSION - 1
    (directory / "lake.json").write_text(json.dumps(manifest))
    rows = lake.query(directory, "SELECT host, nhid FROM routes ORDER BY host").to_pylist()
    assert rows == [{"host": "a", "nhid": 7}, {"host": "b", "nhid": None}]


@pytest.mark.parametrize("fmt", ["text", "csv"])
def test_query_cells_are_shown_never_obeyed(filled, fmt):
    """A lake's cells come from evidence: an escape sequence or rich markup in one is shown as
    text on the terminal (and in CSV), never obeyed; JSON escapes it itself."""
    directory, _ = filled
    sql = ("SELECT chr(27) || ']8;;http://x/' || chr(7) || '[/] [bold]x' || chr(155) AS "
           "\"name[/]\" FROM bundles LIMIT 1")
    code, out, err = _run("query", directory, sql, "--format", fmt)
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert "\\x1b]8;;http://x/\\x07[/] [bold]x\\x9b" in out and "name[/]" in out


@pytest.mark.parametrize("damage, words", [
    (lambda d: d.update(bundles=179), "field 'bundles' is a int"),
    (lambda d: next(iter(d["bundles"].values())).update(hosts=[1, None]), ".hosts' is a list"),
    (lambda d: next(iter(d["bundles"].values())).update(rows={"routes": "many"}), "not a count"),
    (lambda d: d["bundles"].update({"../../etc": {}}), "is not a bundle id"),
    (lambda d: d["tables"].update({'x"; DROP': [["a", "string"]]}), "is not a table name"),
    (lambda d: d["tables"].update(routes=[["a", "blob"]]), "not a list of [column, type]"),
    (lambda d: d.update(tables=[]), "field 'tables' is a list"),
])
def test_a_damaged_lake_manifest_is_refused_naming_the_field(filled, tmp_path, damage, words):
    """lake.json is read with its shape checked: a damaged one is exit 4 naming the field, for
    query and explain alike (bundle ids name directories and table names SQL views)."""
    import shutil

    directory, _ = filled
    copy = tmp_path / "lake"
    shutil.copytree(directory, copy)
    doc = json.loads((copy / "lake.json").read_text())
    damage(doc)
    (copy / "lake.json").write_text(json.dumps(doc))
    for args in (["query", copy, "SELECT 1 AS n"], ["explain", copy]):
        code, out, err = _run(*args)
        assert code == 4 and out == "" and words in err, (args[0], code, err)
    (copy / "lake.json").write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = _run("query", copy, "SELECT 1 AS n")
    assert code == 4 and "lake manifest" in err
