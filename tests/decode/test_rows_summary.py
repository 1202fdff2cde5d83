"""``diag pcap`` folds row buffers (RowChunk), not DataFrames: the summary must not depend on
which decoding path produced the rows, and a small capture must not import numpy or pandas.

Oracles: the per-packet reference decoder's rows (vectorize=False) against the vectorised pass's
mixed numpy/row chunks, cut into many chunks; the interpreter's own ``sys.modules``.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from diag.decode import DecodeOptions, iter_decode, iter_rows
from diag.decode.summary import CaptureSummary

FIXTURES = Path(__file__).parent.parent / "fixtures"
REAL = sorted((FIXTURES / "pcap").glob("*.pcap")) + sorted((FIXTURES / "pcap-facts").glob("*.pcap*"))


def _summary(chunks) -> str:
    s = CaptureSummary()
    for c in chunks:
        s.add(c)
    return json.dumps(s.result(), default=str)


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
@pytest.mark.parametrize("chunk", [4, 65536])
def test_summary_is_the_same_from_either_decoding_path(path, chunk):
    slow = _summary(iter_rows(path, DecodeOptions(), chunk_packets=chunk, vectorize=False))
    fast = _summary(iter_rows(path, DecodeOptions(), chunk_packets=chunk, vectorize=True))
    assert fast == slow
    # and from the Tables that iter_decode yields (they carry their RowChunk)
    assert _summary(iter_decode(path, DecodeOptions(), chunk_packets=chunk)) == slow


def test_summary_counts_match_the_tables():
    """An independent count from the DataFrames (pandas value_counts) against the summary."""
    path = FIXTURES / "pcap" / "bgp_session.pcap"
    chunks = list(iter_decode(path, chunk_packets=7, vectorize=True))
    s = CaptureSummary()
    for c in chunks:
        s.add(c)
    result = s.result()
    import pandas as pd

    msgs = pd.concat([c.bgp_messages for c in chunks])
    routes = pd.concat([c.bgp_routes for c in chunks])
    assert result["packets"]["total"] == sum(len(c.packets) for c in chunks)
    counts = msgs["type_name"].value_counts().to_dict()
    assert {k: v for k, v in result["bgp"]["messages"].items() if v} == counts
    announced = routes[routes["action"] == "announce"]["prefix"].nunique()
    assert result["bgp"]["prefixes"]["announced"] == announced


def test_small_capture_summary_imports_neither_numpy_nor_pandas():
    """Nor pydantic (and asyncio, which it imports): typer 0.29 builds a pydantic TypeAdapter
    per option, ~0.09 s of each start (pyproject.toml keeps typer below it)."""
    path = FIXTURES / "pcap" / "bgp_session.pcap"
    code = ("import sys, io, contextlib\n"
            "from diag.cli import app\n"
            "for fmt in ('json', 'text'):\n"
            "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "        try:\n"
            f"            app(['pcap', {str(path)!r}, '--format', fmt])\n"
            "        except SystemExit as end:\n"
            "            assert end.code == 0, end.code\n"
            "    assert 'BGP' in out.getvalue() or 'bgp' in out.getvalue()\n"
            "print(sorted(m for m in ('numpy', 'pandas', 'pyarrow', 'scapy', 'pydantic', 'asyncio')\n"
            "             if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_prefix_counts_survive_spilling_into_numpy(monkeypatch):
    """Distinct-prefix counting gives the same answer held in sets or spilled into arrays."""
    from diag.decode import summary as summary_module

    path = FIXTURES / "pcap" / "bgp_session.pcap"
    kept = _summary(iter_rows(path, chunk_packets=3))
    monkeypatch.setattr(summary_module, "SPILL_TOTAL", 1)
    spilled = _summary(iter_rows(path, chunk_packets=3))
    assert json.loads(spilled)["bgp"]["prefixes"]["announced"] > 1
    assert spilled == kept


def test_int64_columns_built_without_pandas_inference_equal_pandas():
    """tables._int64 stands in for pd.array(..., dtype="Int64") on object columns: same values,
    mask and dtype, and it refuses what pandas must judge (text, floats, bools)."""
    import numpy as np
    import pandas as pd

    from diag.decode.tables import _int64

    for values in ([1, None, 3], [None, None], [2**40, 0, None], [None, 7]):
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        want, got = pd.array(arr, dtype="Int64"), _int64(arr)
        assert got.dtype == want.dtype and want.equals(got)
    for values in (["vxlan", None], [1.5, None], [True, None], ["12", 3]):
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        with pytest.raises((TypeError, ValueError)):
            _int64(arr)
