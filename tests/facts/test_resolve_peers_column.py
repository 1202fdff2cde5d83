"""resolve_bird_peers without BIRD rows builds the peer column from its distinct values: the
same column (values, dtype, pickle) as pandas makes of the list of values, non-strings None."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from diag.facts.merge import resolve_bird_peers

_VALUES = st.one_of(st.sampled_from(["10.0.0.1", "fd00::1", "", "peer"]), st.text(max_size=4),
                    st.none(), st.just(np.nan), st.just(pd.NA), st.integers(-3, 3))
_PEERS = pd.DataFrame({"host": ["h"], "daemon": ["BIRD"], "name": ["bgp1"], "peer": ["1.1.1.1"]})


@settings(max_examples=150, deadline=None)
@given(st.lists(_VALUES, min_size=1, max_size=30), st.sampled_from(["GoBGP", "FRR"]))
def test_peer_column_as_pandas_makes_it_of_the_list(values, daemon):
    n = len(values)
    paths = pd.DataFrame({"host": ["h"] * n, "daemon": [daemon] * n, "local": [False] * n,
                          "protocol": ["bgp1"] * n,
                          "peer": pd.Series(values, dtype=object)})
    expected = paths.copy(deep=False)
    expected["peer"] = [v if isinstance(v, str) else None for v in values]
    got = resolve_bird_peers(paths, _PEERS)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert list(got.dtypes) == list(expected.dtypes)
    assert pickle.dumps(got) == pickle.dumps(expected)


def test_bird_rows_still_get_their_protocols_peer():
    paths = pd.DataFrame({"host": ["h", "h"], "daemon": ["BIRD", "GoBGP"], "local": [False, False],
                          "protocol": ["bgp1", None], "peer": pd.Series([None, "2.2.2.2"],
                                                                        dtype=object)})
    got = resolve_bird_peers(paths, _PEERS)
    assert got["peer"].tolist() == ["1.1.1.1", "2.2.2.2"]
