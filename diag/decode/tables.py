"""Rows and columns -> pandas DataFrames, cheaply.

Contract: ``records_frame(records, columns)`` (tuples), ``arrays_frame(arrays, columns)``
(numpy/object arrays from the vectorised path), ``merge(quick, slow, keys)`` and
``routes_frame(groups, columns)`` (BGP route groups expanded to one row per prefix with
``np.repeat``, never a dict or tuple per prefix). Integer columns that may be empty become pandas'
nullable ``Int64``; text columns stay ``object`` — building pandas' Arrow-backed ``str`` columns
costs several times more than decoding the packets, and ``.str`` accessors work on both.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

# integer columns that may hold "none": pandas' nullable Int64 instead of float
INTEGER_COLUMNS = frozenset((
    "frame", "first_frame", "ifindex", "ttl", "ip_proto", "sport", "dport", "tunnel_depth",
    "depth", "vni", "outer_sport", "outer_dport", "inner_proto", "inner_sport", "inner_dport",
    "flags", "type", "length", "open_version", "open_my_as", "open_hold_time", "notify_code",
    "notify_subcode", "refresh_subtype", "n_withdrawn", "n_announced", "path_id", "med",
    "local_pref", "evpn_type", "ethernet_tag", "ip_id", "fragments", "size",
    "largest_fragment", "port_vlan", "max_frame_size",
    # diag.decode.sightings
    "outer_len", "outer_ip_id", "outer_fragments", "outer_size", "proto", "tcp_seq", "tcp_ack", "tcp_flags", "icmp_type",
    "icmp_id", "icmp_seq",
))


def _array(values: np.ndarray | Sequence) -> np.ndarray:
    """A numeric numpy array when every value is a number or bool, else an object array."""
    if isinstance(values, np.ndarray):
        return values
    if values.count(None) == len(values):      # a column no row has (counted in C): no scan
        return np.full(len(values), None, dtype=object)
    first = next((v for v in values if v is not None), None)
    if not isinstance(first, (int, float, np.number)):     # text, lists, all None: no numpy try
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values)
        return arr
    try:
        arr = np.array(values)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.ndim != 1 or arr.dtype.kind not in "iufb":
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values)
    return arr


def _int64(arr: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``pd.array(arr, dtype="Int64")`` for an object array of ints and Nones, without pandas'
    per-element type inference: the mask and one cast, both in C (most of these columns are all
    None, or ints with a few Nones). Raises TypeError/ValueError/OverflowError as pandas would
    on values that are not integers, so that the caller falls back."""
    missing = np.equal(arr, None)
    if missing.all():
        return missing_int64(len(arr))
    data = np.zeros(len(arr), dtype=np.int64)
    present = arr[~missing]
    if type(present[0]) is not int:
        raise TypeError("not int")                  # let pandas judge (text, NaN, 1.0, bools)
    data[~missing] = present.astype(np.int64)
    return pd.arrays.IntegerArray(data, missing)


def missing_int64(n: int) -> pd.api.extensions.ExtensionArray:
    """An integer-named column of ``n`` Nones, as the tables hold it."""
    return pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.bool_))


def _words(arr: np.ndarray) -> bool:
    """Whether the first value present is text that is no integer (tunnels.type: "vxlan"):
    then no Int64 conversion can succeed (pandas', which reads "7" as 7, fails on it after a
    costly attempt), so none is tried."""
    if len(arr) and arr[0] is not None:
        first = arr[0]                # most columns: no search
    else:
        try:                          # the first value present, found in C (~1 ns a cell)
            present = np.flatnonzero(~np.equal(arr, None))
            first = arr[present[0]] if len(present) else None
        except (TypeError, ValueError):   # a value that will not compare with None (pd.NA)
            first = next((v for v in arr if v is not None), None)
    if not isinstance(first, str):
        return False
    try:
        int(first)
    except ValueError:
        return True
    return False


def _series(values: np.ndarray | Sequence, name: str) -> pd.Series | np.ndarray:
    arr = _array(values)
    if arr.dtype.kind == "O":
        if name in INTEGER_COLUMNS and not _words(arr):
            try:
                return _int64(arr)
            except (TypeError, ValueError, OverflowError):
                try:
                    return pd.array(arr, dtype="Int64")
                except (TypeError, ValueError):
                    pass      # not integers in this table
        return pd.Series(arr, dtype=object, copy=False)
    if name in INTEGER_COLUMNS and arr.dtype.kind == "f":
        return pd.array(arr, dtype="Int64")
    return arr


# copy=False below: every column array is made for this one frame, so pandas' default copy of a
# dict's columns (into consolidated blocks) only added a second copy to each chunk's peak memory
def arrays_frame(arrays: dict, columns: Iterable[str]) -> pd.DataFrame:
    columns = list(columns)
    return pd.DataFrame({c: _series(arrays[c], c) for c in columns}, columns=columns, copy=False)


def records_frame(records: list[tuple], columns: Iterable[str]) -> pd.DataFrame:
    columns = list(columns)
    if not records:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns}, columns=columns)
    cols = list(zip(*records))
    return pd.DataFrame({c: _series(v, c) for c, v in zip(columns, cols)}, columns=columns,
                        copy=False)


def merge(quick: pd.DataFrame, slow: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if not len(slow):
        out = quick
    elif not len(quick):
        out = slow
    else:
        out = pd.concat([quick, slow], ignore_index=True)
    return out.sort_values(keys, kind="stable", ignore_index=True)


def routes_frame(groups: list[tuple[tuple, list]], columns: Sequence[str],
                 packed_texts: np.ndarray | None = None) -> pd.DataFrame:
    """One row per prefix from ``(row, prefixes)`` groups.

    ``prefixes`` is a list of ``(path_id, prefix)`` pairs or a packed
    :class:`diag.decode.nlri.PackedPrefixes`, whose texts are made here for all groups at once
    (or given: ``packed_texts``, the texts of every packed group's prefixes in group order).
    """
    from diag.decode.nlri import PackedPrefixes, texts

    if not groups:
        return records_frame([], columns)
    rows, prefix_lists = zip(*groups)
    counts = np.fromiter(map(len, prefix_lists), dtype=np.int64, count=len(prefix_lists))
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    prefixes = np.empty(total, dtype=object)
    path_ids = np.full(total, None, dtype=object)
    packed = [i for i, p in enumerate(prefix_lists) if isinstance(p, PackedPrefixes)]
    if packed:
        where = np.repeat(starts[packed], counts[packed]) + (
            np.arange(int(counts[packed].sum())) - np.repeat(
                np.cumsum(counts[packed]) - counts[packed], counts[packed]))
        prefixes[where] = (texts([prefix_lists[i] for i in packed]) if packed_texts is None
                           else packed_texts)
    if len(packed) < len(prefix_lists):
        is_packed = set(packed)
        for i, pairs in enumerate(prefix_lists):
            if i in is_packed or not pairs:
                continue
            at = int(starts[i])
            ids, texts_ = zip(*pairs)
            path_ids[at:at + len(pairs)] = ids
            prefixes[at:at + len(pairs)] = texts_
    out = {}
    for name, values in zip(columns, zip(*rows)):
        if name == "prefix":
            out[name] = prefixes
        elif name == "path_id":
            out[name] = path_ids
        else:
            out[name] = np.repeat(_array(values), counts)
    return arrays_frame(out, columns)
