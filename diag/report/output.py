"""Which renderer an output file gets, and writing it atomically.

Contract: :func:`format_for(path) -> str` maps the file's extension to ``html`` (.html, .htm),
``md`` (.md, .markdown) or ``json`` (.json) and raises :class:`diag.errors.UsageError` for anything
else; :func:`render(fmt, doc, data) -> str` calls the renderer; :func:`write_atomic(path, text)`
writes a temporary file next to ``path``, fsyncs it and renames it over ``path``, so a reader never
sees half a report and a failed run leaves the old file as it was.

:func:`check_target(path)` and :func:`check_directory_target(path)` check where an output will go
before any input is read (``-o FILE``, ``--export DIR``), one rule for both: the parent directory
must exist (diag creates no missing parents: a typo in a path should not grow a tree), the target
must be a regular file (replaced) or absent, resp. an empty directory or absent (or an evidence
lake, for ``diag facts --export``), and the parent must accept a new file. Failures are :class:`diag.errors.UsageError` (exit 2); a write that fails
later (disk full) is ``OUTPUT_FAILED`` (74).
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


def _parent(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _check_parent(path: Path, option: str) -> None:
    import stat

    from diag.errors import UsageError

    parent = _parent(path)
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: the directory {parent} does not exist",
                         "create it first (diag does not create missing parent directories)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".diag-probe.", dir=parent)
    except OSError as err:
        raise UsageError(f"{option} {path}: cannot write into {parent}: "
                         f"{err.strerror or err}") from None
    os.close(fd)
    if not stat.S_ISREG(os.lstat(probe).st_mode):      # /proc and friends
        raise UsageError(f"{option} {path}: {parent} does not hold regular files")
    os.unlink(probe)


def check_target(path: Path, option: str = "-o") -> None:
    """A report file may be written at ``path`` (see the module docstring)."""
    import stat

    from diag.errors import UsageError

    path = Path(path)
    _check_parent(path, option)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as err:
        raise UsageError(f"{option} {path}: {err.strerror}") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"{option} {path} exists and is not a regular file",
                         "name a new file or one to replace")


def check_directory_target(path: Path, option: str = "--export", marker: str | None = None
                           ) -> None:
    """A directory of tables may be written at ``path``: absent, or an empty directory (or, with
    ``marker``, a directory holding that file: one diag appends to, such as an evidence lake)."""
    from diag.errors import UsageError

    path = Path(path)
    _check_parent(path, option)
    if path.is_dir():
        if marker is not None and (path / marker).is_file():
            return
        if marker is not None and any(path.iterdir()):
            raise UsageError(f"{path} exists and is not an evidence lake (no {marker})",
                             hint=f"choose a new directory or an existing lake for {option}")
        if any(path.iterdir()):
            raise UsageError(f"{path} exists and is not empty",
                             hint=f"choose a new directory for {option}")
    elif os.path.lexists(path):
        raise UsageError(f"{option} {path} exists and is not a directory",
                         hint=f"choose a new directory for {option}")


def write_atomic(path: Path, text: str) -> None:
    from diag.errors import DiagError, ExitStatus

    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as err:
        raise DiagError(f"cannot write {path}: {err.strerror or err}",
                        exit_status=ExitStatus.OUTPUT_FAILED) from None
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
                        exit_status=ExitStatus.OUTPUT_FAILED) from None
