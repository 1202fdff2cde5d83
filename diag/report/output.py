"""Which renderer an output file gets, and writing it atomically.

Contract: :func:`format_for(path) -> str` maps the file's extension to ``html`` (.html, .htm),
``md`` (.md, .markdown) or ``json`` (.json) and raises :class:`diag.errors.UsageError` for anything
else; :func:`render(fmt, doc, data) -> str` calls the renderer; :func:`write_atomic(path, text)`
writes a temporary file next to ``path``, fsyncs it and renames it over ``path``, so a reader never
sees half a report and a failed run leaves the old file as it was.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

EXTENSIONS = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md", ".json": "json"}


def format_for(path: Path) -> str:
    from diag.errors import UsageError

    fmt = EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot tell the report format from {str(path)!r}",
                         "name the output .html, .md or .json")
    return fmt


def render(fmt: str, doc: dict[str, Any], data) -> str:
    if fmt == "html":
        from diag.report.html import render_html
        return render_html(doc, data)
    if fmt == "md":
        from diag.report.markdown import render_markdown
        return render_markdown(doc, data)
    from diag.report.jsondoc import render_json
    return render_json(doc, data)


def write_atomic(path: Path, text: str) -> None:
    from diag.errors import DiagError, ExitStatus

    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as err:
        raise DiagError(f"cannot write {path}: {err.strerror or err}",
                        exit_status=ExitStatus.USAGE) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise DiagError(f"cannot write {path}: {err.strerror or err}",
                        exit_status=ExitStatus.USAGE) from None
