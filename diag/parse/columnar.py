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
from typing import Any, Callable


@dataclass(frozen=True)
class Records:
    key: Any                 # pyarrow string array: the varying field of every record
    bodies: list[dict]       # the distinct rest of the records, decoded
    body_index: Any          # numpy int array: each record's index into ``bodies``


@dataclass(frozen=True)
class Part:
    """One output read column-wise, not yet a DataFrame: its :class:`Records`, the table row
    the reference parser makes of each distinct body (without the varying field), and the
    function that makes ONE frame of consecutive outputs' parts (``combine``: the facts tables
    build a table of all hosts at once — a frame per output and their concatenation cost more
    than the reading). Parts combine when their ``signature`` (the per-column dtypes their
    frames alone would have) is equal: their frame is then the concatenation exactly."""

    records: Records
    rows: list[dict]
    combine: Callable[[list["Part"]], Any]
    signature: tuple = ()

    def __len__(self) -> int:
        return len(self.records.body_index)


def global_index(parts: list[Part]):
    """Every record's index into the parts' bodies laid end to end (``rows`` concatenated)."""
    import numpy as np

    offsets = np.cumsum([0] + [len(one.rows) for one in parts[:-1]])
    if len(parts) == 1:
        return parts[0].records.body_index
    return np.concatenate([one.records.body_index + offset
                           for one, offset in zip(parts, offsets.tolist())])


def joined_keys(parts: list[Part]):
    """The parts' varying fields as one pyarrow string array, in order."""
    import pyarrow as pa

    if len(parts) == 1:
        return parts[0].records.key
    return pa.chunked_array([one.records.key for one in parts]).combine_chunks()


_WHITESPACE = frozenset(b" \t\n\r\x0b\x0c")        # what bytes.strip() removes


def _stripped(data: bytes) -> tuple[int, int]:
    """(start, end) of ``data.strip()`` within ``data``, without copying it (outputs of a
    large bundle are megabytes each)."""
    start, end = 0, len(data)
    while start < end and data[start] in _WHITESPACE:
        start += 1
    while end > start and data[end - 1] in _WHITESPACE:
        end -= 1
    return start, end


def _text_array(data: bytes, start: int = 0, end: int | None = None):
    """One-element pyarrow string array over ``data[start:end]`` (no copy), or None unless
    UTF-8."""
    import numpy as np
    import pyarrow as pa

    end = len(data) if end is None else end
    array = pa.LargeStringArray.from_buffers(
        1, pa.py_buffer(np.array([start, end], dtype=np.int64).tobytes()), pa.py_buffer(data))
    try:
        array.validate(full=True)
    except pa.ArrowInvalid:
        return None
    return array


def _split(column, separator: str, parts: int, reverse: bool = False,
           keep: tuple[int, ...] | None = None):
    """Each string split in exactly ``parts`` pieces at ``separator`` (the first ``parts - 1``
    occurrences, or the last when ``reverse``): a list of arrays (the pieces ``keep`` when
    given, else all), or None when a string has fewer occurrences."""
    import pyarrow.compute as pc

    lists = pc.split_pattern(column, separator, max_splits=parts - 1, reverse=reverse)
    if pc.min(pc.list_value_length(lists)).as_py() != parts:
        return None
    return [pc.list_element(lists, k) for k in (range(parts) if keep is None else keep)]


def _ages(column) -> bool:
    """Every string is ``},"age":`` and an integer (``-?[0-9]+``), without a regex per string
    (plain kernels over a few thousand short strings)."""
    import pyarrow.compute as pc

    if not _all(pc.starts_with(column, '},"age":')):
        return False
    number = pc.utf8_slice_codeunits(column, 8)   # after 8 ASCII characters: byte 8
    digits = pc.if_else(pc.starts_with(number, "-"), pc.utf8_slice_codeunits(number, 1),
                        number)
    return _all(pc.ascii_is_decimal(digits))


def _separators(column) -> bool:
    """Every string is ``,`` or ``],"KEY":[`` with no quote or backslash in KEY (what the
    regex ``^(?:,|\\],"[^"\\\\]*":\\[)$`` says), without a regex per string."""
    import pyarrow.compute as pc

    key = pc.and_(pc.and_(pc.starts_with(column, '],"'), pc.ends_with(column, '":[')),
                  pc.and_(pc.greater_equal(pc.binary_length(column), 6),
                          pc.equal(pc.count_substring(column, '"'), 2)))
    key = pc.and_(key, pc.invert(pc.match_substring(column, "\\")))
    return _all(pc.or_(pc.equal(column, ","), key))


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

    start, end = _stripped(data)        # the text: data[start:end], never copied
    if not (data.startswith(b"[{", start, end) and data.endswith(b"}]", start, end)) or \
            end - start < 5:
        return None
    array = _text_array(data, start + 2, end - 2)
    if array is None:
        return None
    records = pc.list_flatten(pc.split_pattern(array, "},{"))
    # Flat records only: no "{" or "}" between the brackets but the separators' (nested
    # objects — nexthops, metrics — go to the reference). Counted with numpy over the bytes
    # (the split found the separators: a "},{" cannot straddle "[{" or "}]"): bytes.count,
    # three times, was a third of this function and held the GIL.
    import numpy as np

    inner = np.frombuffer(data, dtype=np.uint8, count=end - start - 4, offset=start + 2)
    separators = len(records) - 1
    if np.count_nonzero(inner == ord("{")) != separators or \
            np.count_nonzero(inner == ord("}")) != separators:
        return None
    around = _split(records, '"dst":', 2)
    if around is None:
        return None
    pre, after = around
    if not _all(pc.starts_with(after, '"')):
        return None
    quoted = _split(after, '"', 3, keep=(1, 2))
    if quoted is None:
        return None
    dst, rest = quoted
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

    return _records(dst, body, decode)


def _records(keys, body, decode) -> Records | None:
    """:class:`Records` of ``keys`` and their ``body`` texts decoded by ``decode``; None when a
    body does not decode (the reference parser then decides)."""
    decoded = _bodies(body, decode)
    return None if decoded is None else Records(keys, decoded[0], decoded[1])


def gobgp_path_records(data: bytes) -> Records | None:
    """GoBGP ``-j`` RIB: ``{"PREFIX":[{"nlri":{"prefix":"P"},"age":N,"best":B,...},...],...}``.
    ``bodies`` are the paths without nlri and age (``{"best": ..., "attrs": ..., ...}``)."""
    import re

    import pyarrow.compute as pc

    start, end = _stripped(data)        # the text: data[start:end], never copied
    if not data.endswith(b"}]}", start, end):
        return None
    at = data.find(b'{"nlri":', start, end)
    head = data[start:at] if at >= 0 else b""
    if at < 0 or re.fullmatch(rb'\{"[^"\\]*":\[', head) is None:
        return None
    array = _text_array(data, at + len(b'{"nlri":'), end - 2)
    if array is None:
        return None
    records = pc.list_flatten(pc.split_pattern(array, '{"nlri":'))
    # '{"prefix":"P"},"age":N,"best":...': split at the quotes, pieces 3 (P) and 4 (the rest)
    if not _all(pc.starts_with(records, '{"prefix":"')):
        return None
    prefix_rest = _split(records, '"', 5, keep=(3, 4))
    if prefix_rest is None:
        return None
    prefix, rest = prefix_rest
    if pc.any(pc.match_substring(prefix, "\\")).as_py() or pc.any(pc.equal(prefix, "")).as_py():
        return None
    age_best = _split(rest, ',"best":', 2)
    if age_best is None or not _ages(age_best[0]):
        return None
    ends = _split(age_best[1], "}", 2, reverse=True)
    if ends is None:
        return None
    body, tail = ends
    n = len(tail)
    # between two paths: "," (same prefix) or '],"PREFIX":[' (next prefix); nothing after the last
    if tail[n - 1].as_py() != "" or not _separators(tail.slice(0, n - 1)):
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

    return _records(prefix, body, decode)


class ObjectBlock:
    """The object columns of a large table filled in one 2-D array (pandas keeps them so): a
    column array each, then pandas copying them into its block, was twice the memory — each
    fresh page is zeroed by the kernel, seconds at millions of rows.

    The block starts as NULL references (zeroed memory, as ``np.ndarray`` allocates an object
    array), not as ``np.empty``'s None in every cell: that fill, and taking the None back out
    when a column is put, was ~0.4 s per 25 million cells. Every column is filled by
    :meth:`put` or :meth:`set` before the block is read (:meth:`column`, :meth:`filled`); one
    left out becomes None there, so no NULL ever leaves it."""

    def __init__(self, names: list[str], length: int) -> None:
        import numpy as np

        self.names = names
        self.values = np.ndarray((len(names), length), dtype=object)
        self._unfilled = set(names)

    def put(self, name: str, distinct, codes) -> None:
        """The column ``name`` as ``distinct[codes]`` (numpy object array, int codes)."""
        import numpy as np

        # mode "clip": no bounds-check buffer (the codes index ``distinct`` by construction)
        np.take(distinct, codes, out=self.values[self.names.index(name)], mode="clip")
        self._unfilled.discard(name)

    def set(self, name: str, values) -> None:
        """The column ``name`` as ``values`` (a numpy array of the block's length)."""
        self.values[self.names.index(name)] = values
        self._unfilled.discard(name)

    def filled(self):
        """The 2-D object array, every column filled (None where none was put)."""
        for name in sorted(self._unfilled):
            self.values[self.names.index(name)] = None
        self._unfilled.clear()
        return self.values

    def column(self, name: str):
        if name in self._unfilled:
            self.set(name, None)
        return self.values[self.names.index(name)]


def assemble(columns: list[str], block: ObjectBlock, others: dict[str, Any], index):
    """The DataFrame of ``columns`` (in order): ``block``'s object columns as they are (no copy)
    and ``others`` (name -> numpy or pandas extension array)."""
    import numpy as np
    import pandas as pd

    try:
        from pandas.api.internals import create_dataframe_from_blocks
    except ImportError:             # pandas < 3: the constructor (it copies the object block)
        data = {name: pd.Series(block.column(name), dtype=object, index=index)
                for name in block.names}
        data.update(others)
        return pd.DataFrame(data, columns=columns, index=index)
    where = {name: k for k, name in enumerate(columns)}
    blocks = [(block.filled(), np.array([where[name] for name in block.names], dtype=np.intp))]
    for name, values in others.items():
        if isinstance(values, pd.arrays.NumpyExtensionArray) or \
                isinstance(values.dtype, np.dtype):     # bool, int64: a numpy block
            values = np.asarray(values).reshape(1, -1)
        blocks.append((values, np.array([where[name]], dtype=np.intp)))
    return create_dataframe_from_blocks(blocks, index=index, columns=pd.Index(columns))


def strings_into(block: ObjectBlock, name: str, array) -> None:
    """:func:`strings` of ``array`` put in ``block`` as column ``name``."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(array)
    if encoded.null_count:
        block.set(name, array.to_numpy(zero_copy_only=False))
        return
    block.put(name, encoded.dictionary.to_numpy(zero_copy_only=False),
              encoded.indices.to_numpy(zero_copy_only=False))


def strings(array):
    """A pyarrow string array as a numpy object array of ``str``, one object per distinct
    value shared by its rows (the same prefixes recur on every host: 2.5 million cells, a few
    thousand texts — memory, and hashing them later, once per text)."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(array)
    texts = encoded.dictionary.to_numpy(zero_copy_only=False)
    if encoded.null_count:
        return array.to_numpy(zero_copy_only=False)
    return texts[encoded.indices.to_numpy(zero_copy_only=False)]


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
    return typed_as(typed_kind(distinct), values, index)


def typed_kind(distinct: list) -> str:
    """The dtype :func:`typed` gives a column holding the ``distinct`` values."""
    present = [v for v in distinct if v is not None]
    gaps = len(present) < len(distinct)
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "Int64" if gaps else "int64"
    if present and all(isinstance(v, bool) for v in present):
        return "boolean" if gaps else "bool"
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                       for v in present):
        return "Float64"
    return "object"


def typed_as(kind: str, values, index=None):
    """``values`` (a numpy object array) as a column of dtype ``kind`` (:func:`typed_kind`)."""
    import pandas as pd

    if kind == "Int64":
        return pd.array(values.tolist(), dtype="Int64")
    if kind == "int64":
        return pd.array(values.astype("int64"), dtype="int64")
    if kind == "boolean":
        return pd.array(values.tolist(), dtype="boolean")
    if kind == "bool":
        return pd.array(values.astype(bool), dtype="bool")
    if kind == "Float64":
        return pd.array([float(v) if v is not None else None for v in values], dtype="Float64")
    return pd.Series(values, dtype=object, index=index)
