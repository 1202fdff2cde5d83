"""Deterministic, scapy-built captures with known ground truth (see :mod:`.builders`)."""
from __future__ import annotations

from tests.craft.builders import Crafted, build_all, build_bad_files

__all__ = ["Crafted", "build_all", "build_bad_files", "session_captures", "session_bad_files"]

_CACHE: dict[str, object] = {}


def session_captures(tmp_path_factory: object) -> dict[str, Crafted]:
    """Build every crafted capture once per test session (pytest ``tmp_path_factory``)."""
    if "all" not in _CACHE:
        _CACHE["all"] = build_all(tmp_path_factory.mktemp("crafted"))  # type: ignore[attr-defined]
    return _CACHE["all"]  # type: ignore[return-value]


def session_bad_files(tmp_path_factory: object) -> dict[str, object]:
    if "bad" not in _CACHE:
        _CACHE["bad"] = build_bad_files(tmp_path_factory.mktemp("bad_files"))  # type: ignore[attr-defined]
    return _CACHE["bad"]  # type: ignore[return-value]
