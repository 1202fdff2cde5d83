"""The small per-host outputs become one frame per table (diag.facts.tables._frames over
diag.parse.common.Rows) instead of a DataFrame per output: the table must be what pandas gives
by concatenating the per-output frames (the previous way) — same values, same dtypes, same row
order — whatever mix of ints, gaps, booleans, floats, strings and lists the outputs hold, and
also when DataFrame outputs (the big parsers') sit between them."""
from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from diag.facts.tables import _frames
from diag.parse.common import Rows

COLUMNS = ["a", "b", "c"]
VALUES = st.one_of(st.none(), st.integers(-5, 5), st.booleans(), st.floats(-2, 2),
                   st.sampled_from(["x", "y"]), st.just(["l"]))
# a column's values drawn from one of a few shapes, so that outputs often share dtypes
SHAPES = st.sampled_from([st.integers(0, 3), st.one_of(st.none(), st.integers(0, 3)),
                          st.booleans(), st.one_of(st.none(), st.booleans()),
                          st.floats(0, 1), st.none(), st.sampled_from(["x", "y"]), VALUES])


@st.composite
def outputs(draw):
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        shapes = [draw(SHAPES) for _ in COLUMNS]
        rows = [{c: draw(shape) for c, shape in zip(COLUMNS, shapes) if draw(st.booleans())
                 or c != "c"} for _ in range(draw(st.integers(1, 4)))]
        part = Rows(rows, COLUMNS)
        parts.append(part.frame() if draw(st.integers(0, 4)) == 0 else part)
    return parts


def _assemble(parts):
    frames, order = _frames(parts)
    df = pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else \
        frames[0].reset_index(drop=True)
    return df if order is None else df.take(order).reset_index(drop=True)


@settings(max_examples=300, deadline=None)
@given(outputs())
def test_one_frame_per_table_is_the_concatenation(parts):
    reference = pd.concat([p.frame() if isinstance(p, Rows) else p for p in parts],
                          ignore_index=True, sort=False)
    got = _assemble(parts)
    pd.testing.assert_frame_equal(got, reference, check_exact=True)
    assert list(got.dtypes) == list(reference.dtypes)


def test_mixed_dtypes_keep_their_order():
    ints = Rows([{"a": 1, "b": "x", "c": None}], COLUMNS)
    gaps = Rows([{"a": None, "b": "y", "c": 1.5}, {"a": 2, "b": "z", "c": None}], COLUMNS)
    parts = [ints, gaps, ints, gaps]
    got = _assemble(parts)
    assert got["b"].tolist() == ["x", "y", "z", "x", "y", "z"]
    reference = pd.concat([p.frame() for p in parts], ignore_index=True)
    pd.testing.assert_frame_equal(got, reference, check_exact=True)
