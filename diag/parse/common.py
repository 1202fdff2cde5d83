"""What every parser shares: input decoding, the parse error, JSON loading.

Contract: a parser module exposes ``parse(data) -> pandas.DataFrame`` (``data`` is the command's
stdout as ``str`` or ``bytes``) and, where tokenising and normalising are separable, ``raw(data)``
returning plain records; the small per-host outputs' modules also expose
``records(data) -> Rows`` (``parse`` is ``records(data).frame()``), from which the facts tables
make one frame per table (:func:`frames_by_kind`). Input it does not recognise raises
:class:`ParseError` with one line saying what was expected; parsers never guess at an unknown
format or version. Empty input is an empty table with the documented columns.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any, Iterable

from diag.bundle import load_json as load_bounded_json
from diag.errors import DiagError, ExitStatus


class ParseError(DiagError):
    """The text is not in a format this parser knows (reported, never guessed around)."""

    exit_status = ExitStatus.UNUSABLE_INPUT


# A command's output is text: more lines than this in one output (16 bytes a line at the
# collector's 16 MiB cap; real lines are 50-200 bytes) is junk, refused before it is split
# (a list of millions of lines is most of a junk output's cost in memory).
MAX_TEXT_LINES = 1_000_000


def as_text(data: str | bytes, lines: bool = True) -> str:
    """The output as text (invalid UTF-8 replaced: an interface name may hold any bytes).
    :class:`ParseError` for what is not text at all: NUL bytes, more than 1 % of the bytes not
    UTF-8, or (``lines``, for line-oriented outputs) more than :data:`MAX_TEXT_LINES` lines."""
    if isinstance(data, bytes):
        if lines and data.count(b"\n") > MAX_TEXT_LINES:
            raise ParseError(f"more than {MAX_TEXT_LINES} lines: not a command's output")
        if b"\0" in data:
            raise ParseError("binary data (NUL bytes), not a command's text output")
        text = data.decode("utf-8", errors="replace")
        if not data.isascii() and text.count("\ufffd") > len(text) // 100 + 16:
            raise ParseError("binary data (mostly not UTF-8), not a command's text output")
        return text
    return data


# Reading a JSON document row by row costs ~400 bytes per object; more objects than this in one
# output (an upper bound: every "{" is counted) is refused rather than read: 200,000 objects is
# ~80 MB, and the large outputs that are legitimately bigger (routes, GoBGP RIBs) are read
# column-wise before this (diag.parse.columnar), in the shapes the collector writes.
MAX_JSON_OBJECTS = 200_000


def load_json(data: str | bytes, what: str, expect: type | tuple[type, ...]) -> Any:
    """JSON of the expected top-level type, or :class:`ParseError` naming ``what``."""
    if len(data) > MAX_JSON_OBJECTS:
        objects = data.count(b"{" if isinstance(data, bytes) else "{")
        if objects > MAX_JSON_OBJECTS:
            raise ParseError(f"{what}: {objects} JSON objects, more than the {MAX_JSON_OBJECTS} "
                             "one output may hold to be read row by row")
    text = as_text(data, lines=False).strip()       # FRR pretty-prints: many lines are fine
    if not text:
        return expect() if isinstance(expect, type) else expect[0]()
    try:
        value = load_bounded_json(text)     # depth-limited: evidence may nest anything
    except json.JSONDecodeError as err:
        raise ParseError(f"{what}: not JSON ({err.msg} at line {err.lineno})") from None
    except ValueError as err:
        raise ParseError(f"{what}: {err}") from None
    if value is None:  # Go prints a nil slice/map as null (gobgp with no neighbours)
        return expect() if isinstance(expect, type) else expect[0]()
    if not isinstance(value, expect):
        raise ParseError(f"{what}: expected a JSON {_names(expect)}, got {type(value).__name__}")
    return value


def _names(expect: type | tuple[type, ...]) -> str:
    types = expect if isinstance(expect, tuple) else (expect,)
    return " or ".join({"list": "array", "dict": "object"}.get(t.__name__, t.__name__)
                       for t in types)


@dataclass(frozen=True)
class Rows:
    """One output's records and its table's columns, before any DataFrame is made: the facts
    tables build one frame from many outputs' rows (:func:`frames_by_kind`), a DataFrame per
    small output was most of the cost of a 500-host bundle's thousands of them."""

    rows: list[dict[str, Any]]
    columns: list[str]

    def frame(self):
        return frame(self.rows, self.columns)

    def values(self) -> list[list[Any]]:
        """Each column's values, in row order (None where a row lacks the key)."""
        return [list(map(dict.get, self.rows, repeat(column))) for column in self.columns]


_PLAIN = frozenset({int, float, bool, str, list, dict, tuple, type(None)})


def _kind(raw: list[Any]) -> str:
    types = set(map(type, raw))
    if types <= _PLAIN:  # the parsers' plain values: decided by their set of types at C speed
        gaps = type(None) in types
        types.discard(type(None))
        if not types:
            return "empty"
        if types == {int}:
            return "Int64" if gaps else "int64"
        if types == {bool}:
            return "boolean" if gaps else "bool"
        return "Float64" if types <= {int, float} else "object"
    return _kind_of_values(raw)


def _kind_of_values(raw: list[Any]) -> str:
    values = [v for v in raw if v is not None]
    if not values:
        return "empty"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "Int64" if len(values) < len(raw) else "int64"  # gaps: nullable, never float
    if all(isinstance(v, bool) for v in values):
        return "boolean" if len(values) < len(raw) else "bool"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "Float64"
    return "object"


def frame(rows: Iterable[dict[str, Any]], columns: list[str]):
    """A DataFrame with exactly ``columns`` (in order), also when there are no rows."""
    rows = list(rows)
    values = Rows(rows, columns).values()
    return _frame(columns, values, [_kind(v) for v in values], len(rows))


def _frame(columns: list[str], values: list[list[Any]], kinds: list[str], length: int):
    import pandas as pd

    if not length:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    # one index object for every column: the DataFrame then takes the Series as they are
    # (with an index of their own each, pandas re-aligns every column: most of the cost of
    # the thousands of small tables a bundle gives)
    index = pd.RangeIndex(length)
    data = {}
    for column, raw, kind in zip(columns, values, kinds):
        if kind in ("int64", "Int64", "bool", "boolean"):
            data[column] = pd.array(raw, dtype=kind)
        elif kind == "Float64":
            data[column] = pd.array([float(v) if v is not None else None for v in raw],
                                    dtype="Float64")
        else:
            # strings, lists, booleans with gaps: object, so a missing value stays None
            data[column] = pd.Series(raw, dtype=object, index=index)
    return pd.DataFrame(data, columns=columns, index=index)


def frames_by_kind(parts: list[Rows]) -> list[tuple[list[int], Any]]:
    """``parts`` as few DataFrames as their dtypes allow: one per distinct (columns, per-column
    dtype) of the parts, each with those parts' rows in order, with the parts' positions in
    ``parts``. Every part of a group would have given :func:`frame` the same dtypes, so the
    group's frame is their concatenation exactly (values and dtypes)."""
    groups: dict[tuple, list[tuple[int, list[list[Any]]]]] = {}
    for position, part in enumerate(parts):
        values = part.values()
        key = (tuple(part.columns), tuple(_kind(v) for v in values))
        groups.setdefault(key, []).append((position, values))
    out = []
    for (columns, kinds), members in groups.items():
        merged = [list(chain.from_iterable(values[k] for _, values in members))
                  for k in range(len(columns))]
        length = sum(len(parts[p].rows) for p, _ in members)
        out.append(([p for p, _ in members], _frame(list(columns), merged, list(kinds), length)))
    return out


def int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
