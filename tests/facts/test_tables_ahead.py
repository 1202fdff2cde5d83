"""The facts tables of a bundle are the same whether the column-wise outputs (routes, GoBGP
RIBs) are read ahead in two threads (``diag.facts.tables._Ahead``) or one by one in manifest
order: every table (values, dtypes, row order) and every parse error, on the committed lab
bundles and on a synthetic bundle with an unreadable and an irregular output; and adding the
columns a table lacks at its end (``_in_columns``) is what ``DataFrame.reindex`` gives."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from diag.bundle import open_bundle
from diag.facts import tables as tables_module
from tests.facts.helpers import BUNDLES

ROOT = Path(__file__).resolve().parents[2]


def _build(bundle, workers: int):
    saved = tables_module._Ahead.WORKERS
    tables_module._Ahead.WORKERS = workers
    try:
        return tables_module.build_tables(bundle)
    finally:
        tables_module._Ahead.WORKERS = saved


def _same_tables(one, other) -> None:
    (a, a_errors), (b, b_errors) = one, other
    assert list(a) == list(b)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)
        assert list(a[name].dtypes) == list(b[name].dtypes), name
    pd.testing.assert_frame_equal(a_errors, b_errors, check_exact=True)


@pytest.mark.parametrize("name", ["cilium-native-default", "calico-vxlan-alt"])
def test_threads_give_the_same_tables(tmp_path, name):
    bundle = open_bundle(BUNDLES / f"{name}.tar.gz", tmp_path / "x")
    _same_tables(_build(bundle, 2), _build(bundle, 1))


def test_threads_keep_errors_and_irregular_outputs_in_order(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("explain_scale",
                                                  ROOT / "benchmarks/explain_scale.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    root = bench.build(tmp_path / "b", hosts=6, routes=30)
    # one RIB pretty printed (the reference parser reads it), one route output gone
    rib = root / "hosts/node-0002/gobgp-global-rib.out"
    rib.write_text(json.dumps(json.loads(rib.read_text()), indent=2))
    (root / "hosts/node-0003/ip-route-v4.out").unlink()
    bundle = open_bundle(root)
    threaded, plain = _build(bundle, 2), _build(bundle, 1)
    _same_tables(threaded, plain)
    errors = threaded[1]
    assert any("unreadable" in e for e in errors["reason"]), errors
    assert (threaded[0]["bgp_paths"]["host"] == "node-0002").any()


def test_missing_columns_at_the_end_as_reindex():
    df = pd.DataFrame({"a": pd.Series(["x", None], dtype=object), "b": [1, 2],
                       "c": pd.array([True, None], dtype="boolean")})
    for columns in (["a", "b", "c", "node"], ["a", "b", "c", "node", "more"], ["a", "b", "c"],
                    ["b", "a", "c", "node"], ["a", "b", "c", "a"]):
        expected = df.reindex(columns=columns) if len(set(columns)) == len(columns) else None
        if expected is None:
            continue
        got = tables_module._in_columns(df.copy(), columns)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        assert list(got.dtypes) == list(expected.dtypes)
    empty = pd.DataFrame({"a": pd.Series([], dtype=object)})
    pd.testing.assert_frame_equal(tables_module._in_columns(empty.copy(), ["a", "node"]),
                                  empty.reindex(columns=["a", "node"]), check_exact=True)
    assert np.isnan(tables_module._in_columns(df.copy(), ["a", "b", "c", "n"])["n"]).all()
