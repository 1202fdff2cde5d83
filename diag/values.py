"""Plain values from table cells: the one rule for "missing".

A cell of a facts table is missing when it is ``None``, a float NaN, ``pandas.NA`` or
``pandas.NaT``; strings, numbers, booleans, lists, tuples and dicts are values (an empty string
or list included). Every stage asks here instead of spelling its own test.

- :func:`is_missing(value) -> bool`
- :func:`or_none(value)`: the value, or None when it is missing
- :func:`column_objects(series)`: a pandas column as a numpy object array, missing cells as None
- :func:`column_list(series)`: the same as a Python list

A floor module: it imports nothing from diag, and pandas only when a value is of a type it does
not know already (so a capture summary that never meets a pandas scalar never imports pandas).
"""
from __future__ import annotations

from typing import Any

_NA_TYPES: tuple = ()
_PLAIN = (str, int, list, tuple, dict)


def _na_types() -> tuple:
    global _NA_TYPES
    if not _NA_TYPES:
        import pandas as pd

        _NA_TYPES = (type(pd.NA), type(pd.NaT))
    return _NA_TYPES


def is_missing(value: Any) -> bool:
    """None, NaN, pandas.NA or pandas.NaT (lists and strings are values)."""
    if value is None:
        return True
    if isinstance(value, float):                # numpy's float64 too
        return value != value
    if isinstance(value, _PLAIN):
        return False
    if type(value).__module__ == "numpy":       # numpy scalars: NaN and NaT differ from themselves
        try:
            return bool(value != value)
        except (TypeError, ValueError):
            return False
    return isinstance(value, _na_types())


def or_none(value: Any) -> Any:
    """``value``, or None when it is missing."""
    return None if is_missing(value) else value


def column_objects(series):
    """A column as a numpy object array, its missing cells (NaN, None, NA) as None."""
    values = series.to_numpy(dtype=object)     # arrow-backed strings iterate slowly as a Series
    missing = series.isna().to_numpy()
    if missing.any():
        values = values.copy()
        values[missing] = None
    return values


def column_list(series) -> list:
    """A column as a list, its missing cells (NaN, None, NA) as None."""
    return column_objects(series).tolist()


__all__ = ["column_list", "column_objects", "is_missing", "or_none"]
