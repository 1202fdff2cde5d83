"""Many outputs' column-wise parts made into ONE frame (``ip_route.frame_of_parts``,
``gobgp.rib_frame_of_parts``, as the facts tables do for every host at once) are exactly the
concatenation of each output's reference frame (the row-by-row parsers): values, dtypes and row
order — on the committed real outputs, on synthetic outputs whose per-output dtypes differ
(a GoBGP column of ints on one host, with gaps on another: the parts then group by signature,
``diag.facts.tables._combined``), and with the default route, host routes and IPv6 mixed in."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diag.facts.tables import _combined
from diag.parse import columnar, gobgp, ip_route
from tests.parse.helpers import FIXTURES
from tests.parse.helpers import reference_rib as _reference_rib
from tests.parse.helpers import reference_routes as _reference_routes
from tests.parse.helpers import same_frame as _same


def _concat(frames):
    return pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else \
        frames[0].reset_index(drop=True)


def test_routes_of_every_fixture_as_one_frame():
    datas = [p.read_bytes() for p in sorted(FIXTURES.glob("ip-route-v*/*.out"))]
    parts = [ip_route.part(d) for d in datas]
    used = [(d, p) for d, p in zip(datas, parts) if p is not None]
    assert len(used) >= 8
    _same(ip_route.frame_of_parts([p for _, p in used]),
          _concat([_reference_routes(d) for d, _ in used]))


def test_gobgp_paths_of_every_fixture_as_one_frame():
    datas = [p.read_bytes() for p in sorted(FIXTURES.glob("gobgp-global-rib/*.out"))]
    used = [(d, gobgp.rib_part(d)) for d in datas]
    used = [(d, p) for d, p in used if p is not None]
    assert len(used) >= 4
    frames = _combined([p for _, p in used])           # grouped by signature, in order
    _same(_concat(frames), _concat([_reference_rib(d) for d, _ in used]))


ROUTE = st.fixed_dictionaries({
    "dst": st.sampled_from(["10.1.0.0/24", "default", "10.0.0.9", "198.18.0.1", "fd00::/64",
                            "fd00::1"]),
    "gateway": st.sampled_from(["10.0.0.1", "10.0.0.2", "fe80::1"]),
    "dev": st.sampled_from(["eth0", "eth1"]),
}, optional={"protocol": st.sampled_from(["bgp", "kernel", "bird"]),
             "metric": st.integers(0, 1 << 32), "table": st.sampled_from(["local", "main"]),
             "type": st.sampled_from(["local", "unicast"]), "nhid": st.integers(1, 9),
             "scope": st.sampled_from(["link", "host"]), "prefsrc": st.just("10.0.0.5")})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(ROUTE, min_size=1, max_size=6), min_size=1, max_size=5))
def test_route_outputs_as_one_frame_are_their_concatenation(outputs):
    datas = [json.dumps([dict(r, flags=[]) for r in routes], separators=(",", ":")).encode()
             for routes in outputs]
    parts = [ip_route.part(d) for d in datas]
    assert all(p is not None for p in parts)
    _same(ip_route.frame_of_parts(parts), _concat([_reference_routes(d) for d in datas]))


PATH = st.fixed_dictionaries({
    "med": st.one_of(st.none(), st.integers(0, 50)),
    "local_pref": st.one_of(st.none(), st.integers(0, 200)),
    "learned": st.booleans(),
    "nexthop": st.sampled_from(["10.0.0.1", "0.0.0.0"]),
})


def _rib(paths: list[dict], base: int) -> bytes:
    doc = {}
    for k, spec in enumerate(paths):
        prefix = f"10.{base}.{k}.0/24"
        attrs = [{"type": 1, "value": 0}]
        if spec["learned"]:
            attrs.append({"type": 2, "as_paths": [{"segment_type": 2, "num": 1,
                                                   "asns": [65000]}]})
        attrs.append({"type": 3, "nexthop": spec["nexthop"]})
        if spec["med"] is not None:
            attrs.append({"type": 4, "metric": spec["med"]})
        if spec["local_pref"] is not None:
            attrs.append({"type": 5, "value": spec["local_pref"]})
        path = {"nlri": {"prefix": prefix}, "age": 1700000000 + k, "best": True,
                "attrs": attrs}
        if spec["learned"]:
            path["neighbor-ip"] = "10.0.0.1"
        doc[prefix] = [path]
    return json.dumps(doc, separators=(",", ":")).encode()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(PATH, min_size=1, max_size=5), min_size=1, max_size=5))
def test_rib_outputs_as_frames_by_signature_are_their_concatenation(outputs):
    datas = [_rib(paths, base) for base, paths in enumerate(outputs)]
    parts = [gobgp.rib_part(d) for d in datas]
    assert all(p is not None for p in parts)
    _same(_concat(_combined(parts)), _concat([_reference_rib(d) for d in datas]))


def test_strings_share_one_object_per_text():
    import pyarrow as pa

    array = pa.array(["a", "b", "a", "a"], pa.large_string())
    out = columnar.strings(array)
    assert out.tolist() == ["a", "b", "a", "a"] and out[0] is out[2] is out[3]


@pytest.mark.parametrize("kind,values", [
    ("int64", [1, 2]), ("Int64", [1, None]), ("bool", [True, False]),
    ("boolean", [True, None]), ("Float64", [1, 2.5, None]), ("object", ["x", None, 3])])
def test_typed_kinds(kind, values):
    assert columnar.typed_kind(values) == kind
    made = columnar.typed_as(kind, columnar.objects(values))
    expected = columnar.typed(columnar.objects(values), values)
    pd.testing.assert_series_equal(pd.Series(made), pd.Series(expected), check_exact=True)
    assert str(pd.Series(made).dtype) == kind
