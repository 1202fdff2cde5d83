"""Joins across parsers of one daemon: one BGP peer row per (host, daemon, peer); BIRD paths
named by their protocol get the protocol's neighbour address.

Contract: :func:`merge_peers` folds FRR's ``show bgp neighbors json`` and ``show bgp summary
json`` rows for the same session into one (the neighbours row first; the summary fills what it
lacks: uptime, counts), ``source`` lists both. :func:`resolve_bird_peers` fills ``peer`` of BIRD
BGP paths from the ``bgp_peers`` row whose ``name`` is the path's protocol.
"""
from __future__ import annotations

_SOURCE_ORDER = {"frr-bgp-neighbors": 0, "frr-bgp-summary": 1}


def merge_peers(peers):
    if peers.empty:
        return peers
    df = peers.copy()
    df["_order"] = df["source"].map(_SOURCE_ORDER).fillna(0)
    df = df.sort_values(["_order"], kind="stable")
    keys = ["host", "daemon", "peer"]
    sources = df.groupby(keys, sort=False, dropna=False)["source"].agg(
        lambda s: "+".join(dict.fromkeys(s)))
    merged = df.groupby(keys, sort=False, dropna=False).first()
    merged["source"] = sources
    merged = merged.reset_index().drop(columns=["_order"])
    return merged.reindex(columns=peers.columns)


def resolve_bird_peers(paths, peers):
    if paths.empty or peers.empty:
        return paths
    names = {(h, n): p for h, d, n, p in zip(peers["host"], peers["daemon"], peers["name"],
                                             peers["peer"]) if d == "BIRD" and isinstance(n, str)}
    df = paths.copy(deep=False)
    df["peer"] = _filled_peers(df, names)
    return df


def _filled_peers(df, names) -> list:
    """The peer column with BIRD's unnamed paths filled in; only the BIRD rows are visited (a
    bundle may hold millions of GoBGP/FRR paths)."""
    import numpy as np
    import pandas as pd

    peers = df["peer"].to_numpy(dtype=object)
    if pd.api.types.infer_dtype(peers, skipna=True) not in ("string", "empty"):
        peers = np.array([p if isinstance(p, str) else None for p in peers], dtype=object)
    else:
        peers = peers.copy()
        peers[pd.isna(peers)] = None
    for n in np.flatnonzero((df["daemon"] == "BIRD").to_numpy(dtype=bool)).tolist():
        if not df["local"].iat[n] and peers[n] is None:
            peers[n] = names.get((df["host"].iat[n], df["protocol"].iat[n]))
    return peers.tolist()
