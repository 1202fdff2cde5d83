"""Joins across parsers of one daemon: one BGP peer row per (host, daemon, peer); BIRD paths
named by their protocol get the protocol's neighbour address.

Contract: :func:`merge_peers` folds FRR's ``show bgp neighbors json`` and ``show bgp summary
json`` rows for the same session into one (the neighbours row first; the summary fills what it
lacks: uptime, counts), ``source`` lists both; a session is its VRF and its address, or its
interface for an interface (unnumbered) peer, whose address FRR's summary does not print.
:func:`resolve_bird_peers` fills ``peer`` of BIRD BGP paths from the ``bgp_peers`` row whose ``name`` is the path's protocol.
"""
from __future__ import annotations

_SOURCE_ORDER = {"frr-bgp-neighbors": 0, "frr-bgp-summary": 1}


def merge_peers(peers):
    if peers.empty:
        return peers
    df = peers.copy()
    df["_order"] = df["source"].map(_SOURCE_ORDER).fillna(0)
    df = df.sort_values(["_order"], kind="stable")
    # an interface peer is one session whether or not the row knows its link-local address
    df["_session"] = df["interface"].where(df["interface"].notna(), df["peer"]) \
        if "interface" in df else df["peer"]
    keys = ["host", "daemon"] + (["vrf"] if "vrf" in df else []) + ["_session"]
    sources = df.groupby(keys, sort=False, dropna=False)["source"].agg(
        lambda s: "+".join(dict.fromkeys(s)))
    merged = df.groupby(keys, sort=False, dropna=False).first()
    merged["source"] = sources
    merged = merged.reset_index().drop(columns=["_order", "_session"])
    return merged.reindex(columns=peers.columns)


def resolve_bird_peers(paths, peers):
    if paths.empty or peers.empty:
        return paths
    names = {(h, n): p for h, d, n, p in zip(peers["host"], peers["daemon"], peers["name"],
                                             peers["peer"]) if d == "BIRD" and isinstance(n, str)}
    df = paths.copy(deep=False)
    df["peer"] = _filled_peers(df, names)
    return df


def _filled_peers(df, names):
    """The peer column's values with BIRD's unnamed paths filled in, non-strings None (a list,
    or the column it makes when there is no BIRD row); only the BIRD rows are visited (a
    bundle may hold millions of GoBGP/FRR paths)."""
    import numpy as np
    import pandas as pd

    bird = np.flatnonzero((df["daemon"] == "BIRD").to_numpy(dtype=bool))
    if not len(bird):
        fast = _strings_or_none(df["peer"])
        if fast is not None:
            return fast
    peers = df["peer"].to_numpy(dtype=object)
    if pd.api.types.infer_dtype(peers, skipna=True) not in ("string", "empty"):
        peers = np.array([p if isinstance(p, str) else None for p in peers], dtype=object)
    else:
        peers = peers.copy()
        peers[pd.isna(peers)] = None
    for n in bird.tolist():
        if not df["local"].iat[n] and peers[n] is None:
            peers[n] = names.get((df["host"].iat[n], df["protocol"].iat[n]))
    return peers.tolist()


def _strings_or_none(column):
    """What the list of ``column``'s values, its non-strings made None, becomes as a column
    (pandas infers its ``str`` dtype from such a list), built from the few distinct values
    instead of millions of cells (converting the list was most of :func:`resolve_bird_peers`
    at 2.5 million GoBGP paths). None when pandas would not infer an arrow-backed ``str``
    column (older pandas, the option off) or no value is a string: the caller's list then."""
    import numpy as np
    import pandas as pd

    dtype = pd.Series(["", None]).dtype
    if not isinstance(dtype, pd.StringDtype) or dtype.storage != "pyarrow":
        return None
    import pyarrow as pa

    codes, uniques = pd.factorize(column.to_numpy(dtype=object), size_hint=1 << 12)
    texts = [u if isinstance(u, str) else None for u in uniques.tolist()]
    if not any(isinstance(u, str) for u in texts):
        return None                 # all None: pandas keeps such a list as object
    indices = pa.array(codes.astype(np.int32), mask=codes < 0)
    decoded = pa.DictionaryArray.from_arrays(indices, pa.array(texts, type=pa.large_string()))
    return pd.arrays.ArrowStringArray(pa.chunked_array([decoded.dictionary_decode()]),
                                      dtype=dtype)
