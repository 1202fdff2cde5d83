"""The column-wise readers of ``ip -j route`` and GoBGP's ``rib -j`` (diag.parse.columnar) give
exactly the table of the row-by-row reference parsers — values and dtypes — on every committed
real output, are really used on them, and step aside (None: the reference decides, errors
included) on every text outside the regular shape: pretty-printed, escapes, ECMP nexthops, a
repeated key, another key order, truncation."""
from __future__ import annotations

import json

import pytest

from diag.parse import columnar, gobgp, ip_route
from diag.parse.common import ParseError
from tests.parse.helpers import FIXTURES
from tests.parse.helpers import reference_rib as _reference_rib
from tests.parse.helpers import reference_routes as _reference_routes
from tests.parse.helpers import same_frame as _same


def _outcome(parse, data, **kwargs):
    try:
        return parse(data, **kwargs)
    except ParseError as err:
        return f"ParseError: {err.message}"


def test_routes_equal_the_reference_on_every_fixture():
    files = sorted(FIXTURES.glob("ip-route-v*/*.out"))
    used = 0
    for path in files:
        data = path.read_bytes()
        used += columnar.route_records(data) is not None
        _same(ip_route.parse(data), _reference_routes(data))
    # the lab's outputs (iproute2 6.1, nhid included) are all in the regular shape
    lab = [p for p in files if p.parent.name == "ip-route-v4" and "--" in p.name]
    assert lab and all(columnar.route_records(p.read_bytes()) is not None for p in lab)
    assert used >= len(lab)


def test_gobgp_paths_equal_the_reference_on_every_fixture():
    files = sorted(FIXTURES.glob("gobgp-global-rib/*.out"))
    adj = sorted(FIXTURES.glob("gobgp-adj-in/*.out"))
    assert files and adj
    for path in files:
        data = path.read_bytes()
        if data.strip() not in (b"", b"null", b"{}"):
            assert columnar.gobgp_path_records(data) is not None, path.name
        _same(gobgp.parse_rib(data), _reference_rib(data))
    for path in adj:
        peer = path.name.rsplit("--", 1)[1][:-4]
        data = path.read_bytes()
        _same(gobgp.parse_rib(data, rib="adj-in", peer=peer),
              _reference_rib(data, rib="adj-in", peer=peer))


def _a_route_file() -> bytes:
    return next(p for p in sorted(FIXTURES.glob("ip-route-v4/*--*.out"))).read_bytes()


def _a_rib_file() -> bytes:
    return next(p for p in sorted(FIXTURES.glob("gobgp-global-rib/*.out"))
                if len(p.read_bytes()) > 200).read_bytes()


ROUTE = '{"dst":"10.1.0.0/24","gateway":"10.0.0.1","dev":"eth1","protocol":"bgp","flags":[]}'


@pytest.mark.parametrize("text", [
    json.dumps(json.loads(_a_route_file()), indent=2),                     # pretty printed
    _a_route_file().decode()[:-40],                                        # truncated
    f'[{ROUTE},{{"dst":"10.2.0.0/24","nexthops":[{{"gateway":"10.0.0.1","dev":"eth1",'
    '"weight":1,"flags":[]},{"gateway":"10.0.0.2","dev":"eth1","weight":1,"flags":[]}],'
    '"flags":[]}]',                                                          # ECMP
    f'[{ROUTE},{{"dst":"10.3.0.0/24","dev":"e\\u00e9th","flags":[]}}]',     # an escape
    f'[{ROUTE},{{"dev":"eth1","dst":"10.4.0.0/24","flags":[]}}]',           # key order
    f'[{ROUTE},{{"dst":"10.5.0.0/24","dst":"10.6.0.0/24","flags":[]}}]',    # dst twice
    f'[{ROUTE},{{"dst":"not-a-prefix","dev":"eth1","flags":[]}}]',          # bad dst
    f'[{ROUTE},{{"dst":"default","gateway":"fe80::1","dev":"eth0","flags":[]}}]',
    f'[{ROUTE},{{"type":"local","dst":"10.0.0.9","dev":"eth1","table":"local","flags":[]}}]',
    f'[{ROUTE},{{"dst":"10.7.0.0/24","dev":"eth1","table":2004,"metric":7,"flags":["onlink"]}}]',
])
def test_routes_outside_the_regular_shape_match_the_reference(text):
    data = text.encode()
    fast, slow = _outcome(ip_route.parse, data), _outcome(_reference_routes, data)
    if isinstance(slow, str) or isinstance(fast, str):
        assert fast == slow
    else:
        _same(fast, slow)


def _rib_variants() -> list[str]:
    text = _a_rib_file().decode().strip()
    doc = json.loads(text)
    first = next(iter(doc))
    return [
        json.dumps(doc, indent=1),                                          # pretty printed
        text[:-30],                                                         # truncated
        text[:-1] + f',"{first}":[]' + "}",                                 # repeated key
        text.replace('"best":', '"filtered":true,"best":', 1),              # another order
        text.replace('"stale":false', '"stale":false,"filtered":true', 1),  # filtered path
        text.replace('"prefix":"', '"prefix":"\\u0031', 1),                 # an escape
        text.replace('"nlri":{"prefix":"', '"nlri":{"prefix":"', 1).replace(
            '"age":', '"age":"x",', 1),                                      # malformed
        "[" + json.dumps(doc[first][0]) + "]",                              # a list of paths
    ]


@pytest.mark.parametrize("index", range(8))
def test_gobgp_outside_the_regular_shape_match_the_reference(index):
    data = _rib_variants()[index].encode()
    fast, slow = _outcome(gobgp.parse_rib, data), _outcome(_reference_rib, data)
    if isinstance(slow, str) or isinstance(fast, str):
        assert fast == slow
    else:
        _same(fast, slow)
