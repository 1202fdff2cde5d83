"""Error types with hints, and the one table of exit codes (docs/exit-codes.md mirrors it).

Every command exits through :class:`ExitStatus`. Expected failures are raised as
:class:`DiagError` (message, hint, exit status) and printed by the CLI as one red line; anything
else is a bug and is shown as a traceback only with ``--traceback``.
"""
from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0                  # success, no finding at or above --fail-on
    FINDINGS = 1            # findings at or above --fail-on
    USAGE = 2               # bad command line (typer/click also uses 2)
    INCOMPLETE = 3          # collection incomplete: some host or command failed
    UNUSABLE_INPUT = 4      # evidence unusable: unreadable capture/bundle, unknown format
    ENVIRONMENT = 5         # missing privilege or tool (e.g. lab without root, no tshark)
    INTERNAL = 70           # a bug in diag (EX_SOFTWARE): one line, --traceback shows it
    OUTPUT_FAILED = 74      # an output could not be written: disk full, quota, I/O (EX_IOERR)
    INTERRUPTED = 130       # Ctrl-C
    BROKEN_PIPE = 141       # the reader of stdout went away (128 + SIGPIPE, as a shell says)


class DiagError(Exception):
    """An expected failure: one line for the user, an optional hint, an exit status."""

    exit_status: ExitStatus = ExitStatus.UNUSABLE_INPUT

    def __init__(self, message: str, hint: str | None = None,
                 exit_status: ExitStatus | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_status is not None:
            self.exit_status = exit_status


class UnusableInput(DiagError):
    """The input cannot be read at all (not a capture, truncated header, unknown format)."""

    exit_status = ExitStatus.UNUSABLE_INPUT


class UsageError(DiagError):
    exit_status = ExitStatus.USAGE


class EnvironmentProblem(DiagError):
    """Something outside diag is missing: root, a Debian package, a kernel feature."""

    exit_status = ExitStatus.ENVIRONMENT


def raised_by_interrupt(err: BaseException) -> bool:
    """Whether ``err`` is a Ctrl-C in disguise: a KeyboardInterrupt that Python wrapped while it
    ran code for the interpreter itself (3.11 turns one raised in a descriptor's
    ``__set_name__`` while a class is made, e.g. a dataclass field as a module is imported,
    into ``RuntimeError("Error calling __set_name__ ...")``). Follows the cause chain. Any
    error raised while a Ctrl-C is unanswered (:func:`diag.interrupts.unanswered`: a library
    replaced it with its own) is taken as the Ctrl-C's doing."""
    from diag.interrupts import unanswered

    if unanswered():
        return True
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return True
        seen.add(id(err))
        err = err.__cause__
    return False
