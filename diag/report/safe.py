"""Text from evidence made safe to show: nothing in a bundle or a capture is interpreted.

Contract:

- :func:`visible(text)`: C0 and C1 control characters (escape sequences start with one), DEL and
  the Unicode bidirectional overrides are replaced by their escapes, shown as text (``\\x1b``,
  ``\\x9b``, ``\\u202e``); newlines and tabs stay. A terminal then prints what the evidence holds
  instead of obeying it (colours, titles, OSC 8 links, clearing the screen, reordered text).
- :func:`markup(text)`: :func:`visible` and then escaped for rich markup, for every string put
  into a rich renderable (``[/]`` in an interface name or a BGP shutdown message is text).
- :func:`for_rich(value)`: the same for every string (keys included) in a nest of dicts, lists and
  tuples: a summary dict made safe once, before a renderer interpolates any of it.
- :func:`utc_text(ts, layout)`: a capture's or a manifest's timestamp as UTC text; one that no
  calendar holds (a damaged or crafted record's far future, NaN, infinity) as its raw seconds
  (``"1e+300 s"``), the one rule every renderer uses.

Used by every renderer that writes to a terminal or a Markdown file and by the command line's
error line; JSON output needs nothing (``json.dumps`` escapes every control character, and
non-ASCII with its default ``ensure_ascii``); HTML keeps its own escaping.
"""
from __future__ import annotations

import re
from datetime import UTC
from typing import Any

_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _shown(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: Any) -> str:
    """``text`` as a string with every control character shown as its escape."""
    text = text if isinstance(text, str) else str(text)
    return _CONTROLS.sub(_shown, text)


def markup(text: Any) -> str:
    """``text`` visible and escaped for rich markup."""
    from rich.markup import escape

    return escape(visible(text))


def for_rich(value: Any) -> Any:
    """Every string in ``value`` (dict keys included) through :func:`markup`; other values as
    they are."""
    if isinstance(value, str):
        return markup(value)
    if isinstance(value, dict):
        return {for_rich(k): for_rich(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(for_rich(v) for v in value) if isinstance(value, list) else \
            tuple(for_rich(v) for v in value)
    return value


def md_cell(text: Any) -> str:
    """One Markdown table cell: visible, its pipes escaped, on one line."""
    return visible(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def utc_text(ts: float | None, layout: str = "%Y-%m-%d %H:%M:%S.%f", cut: int = 3) -> str:
    """``ts`` (epoch seconds) in ``layout``, UTC, the last ``cut`` characters dropped
    (microseconds to milliseconds by default); ``-`` for None; raw seconds when out of range."""
    from datetime import datetime

    if ts is None:
        return "-"
    try:
        text = datetime.fromtimestamp(ts, UTC).strftime(layout)
    except (OverflowError, OSError, ValueError):
        return f"{ts} s"
    return text[:-cut] if cut else text
