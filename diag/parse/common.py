"""What every parser shares: input decoding, the parse error, JSON loading.

Contract: a parser module exposes ``parse(data) -> pandas.DataFrame`` (``data`` is the command's
stdout as ``str`` or ``bytes``) and, where tokenising and normalising are separable, ``raw(data)``
returning plain records. Input it does not recognise raises :class:`ParseError` with one line
saying what was expected; parsers never guess at an unknown format or version. Empty input is an
empty table with the documented columns.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from diag.errors import DiagError, ExitStatus


class ParseError(DiagError):
    """The text is not in a format this parser knows (reported, never guessed around)."""

    exit_status = ExitStatus.UNUSABLE_INPUT


def as_text(data: str | bytes) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return data


def load_json(data: str | bytes, what: str, expect: type | tuple[type, ...]) -> Any:
    """JSON of the expected top-level type, or :class:`ParseError` naming ``what``."""
    text = as_text(data).strip()
    if not text:
        return expect() if isinstance(expect, type) else expect[0]()
    try:
        value = json.loads(text)
    except ValueError as err:
        raise ParseError(f"{what}: not JSON ({err.msg} at line {err.lineno})") from None
    if value is None:  # Go prints a nil slice/map as null (gobgp with no neighbours)
        return expect() if isinstance(expect, type) else expect[0]()
    if not isinstance(value, expect):
        raise ParseError(f"{what}: expected a JSON {_names(expect)}, got {type(value).__name__}")
    return value


def _names(expect: type | tuple[type, ...]) -> str:
    types = expect if isinstance(expect, tuple) else (expect,)
    return " or ".join({"list": "array", "dict": "object"}.get(t.__name__, t.__name__)
                       for t in types)


def frame(rows: Iterable[dict[str, Any]], columns: list[str]):
    """A DataFrame with exactly ``columns`` (in order), also when there are no rows."""
    import pandas as pd

    rows = list(rows)
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    # one index object for every column: the DataFrame then takes the Series as they are
    # (with an index of their own each, pandas re-aligns every column: most of the cost of
    # the thousands of small tables a bundle gives)
    index = pd.RangeIndex(len(rows))
    data = {}
    for column in columns:
        raw = [row.get(column) for row in rows]
        values = [v for v in raw if v is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            # integers with gaps: nullable Int64, never float
            data[column] = pd.array(raw, dtype="Int64" if len(values) < len(raw) else "int64")
        elif values and all(isinstance(v, bool) for v in values):
            data[column] = pd.array(raw, dtype="boolean" if len(values) < len(raw) else "bool")
        elif values and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                            for v in values):
            data[column] = pd.array([float(v) if v is not None else None for v in raw],
                                    dtype="Float64")
        else:
            # strings, lists, booleans with gaps: object, so a missing value stays None
            data[column] = pd.Series(raw, dtype=object, index=index)
    return pd.DataFrame(data, columns=columns, index=index)


def int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
