"""The root command: ``diag``, its global options, and the one way every command exits.

Contract: :data:`app` is the typer application the command modules of this package add their
commands to; :func:`run(call)` runs one command's call and turns its outcome into the process
exit status through :class:`diag.errors.ExitStatus` — the returned status, an expected error
(:class:`diag.errors.DiagError`: one red line, an optional hint), Ctrl-C (130) or a bug (70, one
line; ``diag --traceback`` shows the trace).
"""
from __future__ import annotations

import errno
import os
import sys

import typer

from diag import __version__
from diag.errors import DiagError, ExitStatus, raised_by_interrupt

app = typer.Typer(
    name="diag",
    help="Diagnose Kubernetes/Linux networking: captures (BGP, VXLAN/GENEVE, ARP), evidence "
    "bundles, findings, reports, and a namespace lab.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state = {"traceback": False, "interrupted": False}


def interrupt_reported() -> bool:
    """Whether :func:`run` has already answered a Ctrl-C (its line is printed)."""
    return bool(_state["interrupted"])


def _version(value: bool) -> None:
    if value:
        from diag.pipeline import decoder_name

        print(f"diag {__version__}")
        print(f"decoder: {decoder_name()}")
        raise typer.Exit(int(ExitStatus.OK))


@app.callback()
def _root(
    traceback: bool = typer.Option(False, "--traceback", help="Show full tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    _state["traceback"] = traceback


# errors writing an output that are the machine's, not diag's: one line and OUTPUT_FAILED
_WRITE_ERRNOS = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS))


def run(call) -> None:
    """Run one command; map its outcome to the exit status (see the module docstring)."""
    try:
        status = call()
        sys.stdout.flush()          # a full disk shows here, not at the interpreter's exit
    except DiagError as err:
        fail(err.message, err.hint)
        raise typer.Exit(int(err.exit_status))
    except KeyboardInterrupt:
        _interrupted()
    except BrokenPipeError:
        _stdout_to_devnull()
        fail("output closed early (broken pipe)", None)
        raise typer.Exit(int(ExitStatus.BROKEN_PIPE))
    except OSError as err:
        if err.errno not in _WRITE_ERRNOS or _state["traceback"]:
            return _internal(err)
        _stdout_to_devnull()
        where = f" {err.filename}" if err.filename else ""
        fail(f"cannot write{where}: {err.strerror}", None)
        raise typer.Exit(int(ExitStatus.OUTPUT_FAILED))
    except Exception as err:  # noqa: BLE001 - a bug: one line unless --traceback
        if raised_by_interrupt(err):
            _interrupted()
        return _internal(err)
    raise typer.Exit(int(status or ExitStatus.OK))


def _interrupted() -> None:
    from diag.interrupts import answered

    answered()
    _state["interrupted"] = True
    fail("interrupted", None)
    raise typer.Exit(int(ExitStatus.INTERRUPTED))


def _internal(err: Exception) -> None:
    if _state["traceback"]:
        raise err
    fail(f"internal error: {type(err).__name__}: {err}", "rerun with --traceback and report it")
    raise typer.Exit(int(ExitStatus.INTERNAL))


def _stdout_to_devnull() -> None:
    """Whatever is still buffered for stdout is dropped: the interpreter's last flush would
    otherwise fail again and print about it."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def fail(message: str, hint: str | None) -> None:
    """The one error line (and a hint): what it quotes from evidence is shown visibly, never
    interpreted by the terminal."""
    from diag.report.safe import visible

    red, dim, reset = ("\x1b[31m", "\x1b[2m", "\x1b[0m") if _isatty(sys.stderr) else ("", "", "")
    try:
        print(f"{red}diag: error: {visible(message)}{reset}", file=sys.stderr)
        if hint:
            print(f"{dim}hint: {visible(hint)}{reset}", file=sys.stderr)
    except OSError:     # stderr gone too: the exit status still says what happened
        pass


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False
