from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from diag.parse import gobgp, ip_route

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BUNDLES = FIXTURES / "bundles"
CASES = sorted(p.name[:-len(".truth.json")] for p in BUNDLES.glob("*.truth.json"))


def fixture(spec: str, case: str) -> bytes:
    return (FIXTURES / spec / case).read_bytes()


def truth(case: str) -> dict:
    return json.loads((BUNDLES / f"{case}.truth.json").read_text())


def reference_routes(data: bytes):
    """`ip -j route` through the row-by-row reference parser (the columnar path switched off)."""
    saved = ip_route._parse_columnar
    ip_route._parse_columnar = lambda _data: None
    try:
        return ip_route.parse(data)
    finally:
        ip_route._parse_columnar = saved


def reference_rib(data: bytes, **kwargs):
    """GoBGP's RIB through the row-by-row reference parser."""
    saved = gobgp._parse_rib_columnar
    gobgp._parse_rib_columnar = lambda *_args: None
    try:
        return gobgp.parse_rib(data, **kwargs)
    finally:
        gobgp._parse_rib_columnar = saved


def same_frame(fast, slow) -> None:
    """Equal values, dtypes and order."""
    pd.testing.assert_frame_equal(fast, slow, check_exact=True)
    assert list(fast.dtypes) == list(slow.dtypes)
