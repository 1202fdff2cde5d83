"""The vectorised helpers behind explain at scale give what the plain computations they replace
give (hypothesis, bounded): the FIB's sort (one stable argsort of a combined key vs numpy's
lexsort), each route's index in its output (vs pandas' cumcount), the recoded type/table codes
(vs ``str(value or default)`` per row, factorized), the routing join's membership test (a table
of the key range vs ``np.isin``) and its mapping of one factorization onto another."""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from diag.analyze.routing import _isin, _on_left
from diag.analyze.fib import _position_in_output, _recoded_codes, _route_order

SMALL = st.integers(0, 40)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 32),
                          st.one_of(st.integers(0, 5), st.integers(0, (1 << 32) - 1))),
                max_size=60))
def test_route_order_is_the_lexsort(rows):
    groups = np.array([g for g, _, _ in rows], dtype=np.int64)
    plen = np.array([p for _, p, _ in rows], dtype=np.int16)
    metrics = np.array([m for _, _, m in rows], dtype=np.int64)
    expected = np.lexsort((np.arange(len(rows)), metrics, -plen.astype(np.int64), groups))
    assert _route_order(groups, plen, metrics).tolist() == expected.tolist()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 5), max_size=40), st.booleans())
def test_position_in_output_is_cumcount(codes, blocks):
    values = sorted(codes) if blocks else codes          # each output in one block, or not
    if not values:
        return
    array, names = pd.factorize(np.array(values))
    expected = pd.Series(array).groupby(array).cumcount().to_numpy()
    assert _position_in_output(array, len(names)).tolist() == expected.tolist()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([None, "", "main", "local", 2004, "2004", np.nan]),
                min_size=1, max_size=30))
def test_recoded_codes_as_per_row_strings(values):
    series = pd.Series(values, dtype=object)
    codes, names = _recoded_codes(series, "main")
    per_row = [str(v) if (v and not (isinstance(v, float) and v != v)) else "main"
               for v in values]
    # pandas treats NaN as missing: the default, as for None
    expected_codes, expected_names = pd.factorize(np.array(per_row, dtype=object))
    assert [names[c] for c in codes] == per_row
    assert names == expected_names.tolist() and codes.tolist() == expected_codes.tolist()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-3, 200), max_size=50), st.lists(st.integers(-3, 200), max_size=50),
       st.booleans())
def test_isin_is_numpy_isin(values, members, wide):
    scale = (1 << 40) if wide else 1                      # past the table: pandas decides
    v = np.array(values, dtype=np.int64) * scale
    m = np.array(members, dtype=np.int64) * scale
    assert _isin(v, m).tolist() == np.isin(v, m).tolist()


def test_on_left_maps_shared_values_and_keeps_missing():
    left = ["a", "b", "c"]
    right_codes, right_names = pd.factorize(np.array(["b", None, "z", "a", "b"], dtype=object))
    mapped = _on_left(left, right_codes, right_names.tolist())
    assert mapped.tolist() == [1, -1, -2, 0, 1]
