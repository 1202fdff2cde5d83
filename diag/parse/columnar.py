"""Column-wise reading of the two outputs that grow with the cluster: ``ip -j route`` and GoBGP's
``rib -j`` (a bundle of 500 hosts x 5,000 routes holds 2.5 million of each, 0.9 GB of JSON).

Contract: :func:`route_records(data)` and :func:`gobgp_path_records(data)` return a
:class:`Records` — per record (route / path, in document order) the one field that differs
from record to record (the route's ``dst``, the path's prefix) as a pyarrow string array, and
the rest of the record (``body``: the other keys, as JSON decoded into a dict by ``json``)
once per distinct spelling, with each record's index into those bodies — or ``None`` when the
text is not in the regular shape these readers know (pretty printed, nested route objects,
escapes in the varying field, another GoBGP layout, invalid UTF-8, anything the checks below do
not prove). ``None`` means "use the reference parser": the callers (:mod:`diag.parse.ip_route`,
:mod:`diag.parse.gobgp`) keep their row-by-row parsers, which accept everything JSON allows and
are what the tests compare these readers with. Nothing is guessed: the whole document is
checked (the separators between records, the head of every record, each distinct body parsed
by ``json``).

Why: ``json.loads`` builds a dict, lists and strings per record (GoBGP: ~10 objects per path,
~5 µs). Here pyarrow splits the text on fixed separators in C++, the bodies — a few distinct
spellings per host (next hop, AS path, flags) — are hashed there too, and Python sees only the
distinct ones.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Records:
    key: Any                 # pyarrow string array: the varying field of every record
    bodies: list[dict]       # the distinct rest of the records, decoded
    body_index: Any          # numpy int array: each record's index into ``bodies``


def _text_array(data: bytes):
    """One-element pyarrow string array over ``data`` (no copy), or None unless UTF-8."""
    import numpy as np
    import pyarrow as pa

    array = pa.LargeStringArray.from_buffers(
        1, pa.py_buffer(np.array([0, len(data)], dtype=np.int64).tobytes()), pa.py_buffer(data))
    try:
        array.validate(full=True)
    except pa.ArrowInvalid:
        return None
    return array


def _split(column, separator: str, parts: int, reverse: bool = False):
    """Each string split in exactly ``parts`` pieces at ``separator`` (the first ``parts - 1``
    occurrences, or the last when ``reverse``): a list of arrays, or None when a string has
    fewer occurrences."""
    import pyarrow.compute as pc

    lists = pc.split_pattern(column, separator, max_splits=parts - 1, reverse=reverse)
    if pc.min(pc.list_value_length(lists)).as_py() != parts:
        return None
    return [pc.list_element(lists, k) for k in range(parts)]


def _all(mask) -> bool:
    import pyarrow.compute as pc

    return len(mask) == 0 or bool(pc.all(mask).as_py())


def _bodies(body, decode) -> tuple[list[dict], Any] | None:
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(body)
    out = []
    for text in encoded.dictionary.to_pylist():
        try:
            value = decode(text)
        except ValueError:
            return None
        if not isinstance(value, dict):
            return None
        out.append(value)
    return out, encoded.indices.to_numpy(zero_copy_only=False)


def route_records(data: bytes) -> Records | None:
    """``ip -j route``: ``[{..."dst":"X",...},...]`` with flat records (no nested objects)."""
    import pyarrow.compute as pc

    text = data.strip()
    if not (text.startswith(b"[{") and text.endswith(b"}]")) or len(text) < 5:
        return None
    inner = text[2:-2]
    separators = inner.count(b"},{")
    if inner.count(b"{") != separators or inner.count(b"}") != separators:
        return None                      # nested objects (nexthops, metrics): the reference
    array = _text_array(inner)
    if array is None:
        return None
    records = pc.list_flatten(pc.split_pattern(array, "},{"))
    around = _split(records, '"dst":', 2)
    if around is None:
        return None
    pre, after = around
    quoted = _split(after, '"', 3)
    if quoted is None or not _all(pc.equal(quoted[0], "")):
        return None
    dst, rest = quoted[1], quoted[2]
    if pc.any(pc.match_substring(dst, "\\")).as_py():
        return None
    import pyarrow as pa

    # JSON text holds no raw newline: it separates the two halves of the body
    body = pc.binary_join_element_wise(pre, rest, pa.scalar("\n", pa.large_string()))

    def decode(joined: str) -> dict:
        before, _, after_dst = joined.partition("\n")
        value = json.loads("{" + before + '"dst":""' + after_dst + "}")
        if not isinstance(value, dict) or value.get("dst") != "":
            raise ValueError("dst given twice")
        return value

    decoded = _bodies(body, decode)
    if decoded is None:
        return None
    return Records(dst, decoded[0], decoded[1])


def gobgp_path_records(data: bytes) -> Records | None:
    """GoBGP ``-j`` RIB: ``{"PREFIX":[{"nlri":{"prefix":"P"},"age":N,"best":B,...},...],...}``.
    ``bodies`` are the paths without nlri and age (``{"best": ..., "attrs": ..., ...}``)."""
    import re

    import pyarrow.compute as pc

    text = data.strip()
    if not text.endswith(b"}]}"):
        return None
    head, sep, _ = text.partition(b'{"nlri":')
    if not sep or re.fullmatch(rb'\{"[^"\\]*":\[', head) is None:
        return None
    array = _text_array(text[len(head) + len(sep):-2])
    if array is None:
        return None
    records = pc.list_flatten(pc.split_pattern(array, '{"nlri":'))
    pieces = _split(records, '"', 5)
    if pieces is None or not (_all(pc.equal(pieces[0], "{")) and
                              _all(pc.equal(pieces[1], "prefix")) and
                              _all(pc.equal(pieces[2], ":"))):
        return None
    prefix, rest = pieces[3], pieces[4]
    if pc.any(pc.match_substring(prefix, "\\")).as_py() or pc.any(pc.equal(prefix, "")).as_py():
        return None
    age_best = _split(rest, ',"best":', 2)
    if age_best is None or not _all(pc.match_substring_regex(age_best[0],
                                                              r'^\},"age":-?[0-9]+$')):
        return None
    ends = _split(age_best[1], "}", 2, reverse=True)
    if ends is None:
        return None
    body, tail = ends
    n = len(tail)
    # between two paths: "," (same prefix) or '],"PREFIX":[' (next prefix); nothing after the last
    if tail[n - 1].as_py() != "" or not _all(pc.match_substring_regex(
            tail.slice(0, n - 1), r'^(?:,|\],"[^"\\]*":\[)$')):
        return None
    # one key per prefix (json would keep only the last of a repeated key)
    keys = pc.filter(tail, pc.starts_with(tail, "],"))
    first = "]," + head[1:].decode("utf-8", "replace")
    if pc.count_distinct(keys).as_py() != len(keys) or pc.any(pc.equal(keys, first)).as_py():
        return None

    def decode(remainder: str) -> dict:
        value = json.loads('{"best":' + remainder + "}")
        if not isinstance(value, dict) or "nlri" in value or "age" in value:
            raise ValueError("nlri/age given twice")
        return value

    decoded = _bodies(body, decode)
    if decoded is None:
        return None
    return Records(prefix, decoded[0], decoded[1])


def objects(values: list):
    """A 1-d numpy object array of ``values`` (lists stay elements, never a second axis)."""
    import numpy as np

    out = np.empty(len(values), dtype=object)
    for k, value in enumerate(values):
        out[k] = value
    return out


def typed(values, distinct: list, index=None):
    """A table column as :func:`diag.parse.common.frame` types it (int64/Int64, bool/boolean,
    Float64, else object), decided from the ``distinct`` values the rows hold."""
    import pandas as pd

    present = [v for v in distinct if v is not None]
    gaps = len(present) < len(distinct)
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pd.array(values.tolist(), dtype="Int64") if gaps else \
            pd.array(values.astype("int64"), dtype="int64")
    if present and all(isinstance(v, bool) for v in present):
        return pd.array(values.tolist(), dtype="boolean") if gaps else \
            pd.array(values.astype(bool), dtype="bool")
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.array([float(v) if v is not None else None for v in values], dtype="Float64")
    return pd.Series(values, dtype=object, index=index)
