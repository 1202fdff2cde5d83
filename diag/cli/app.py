"""The root command: ``diag``, its global options, and the one way every command exits.

Contract: :data:`app` is the typer application the command modules of this package add their
commands to; :func:`run(call)` runs one command's call and turns its outcome into the process
exit status through :class:`diag.errors.ExitStatus` — the returned status, an expected error
(:class:`diag.errors.DiagError`: one red line, an optional hint), Ctrl-C (130) or a bug (70, one
line; ``diag --traceback`` shows the trace).
"""
from __future__ import annotations

import sys

import typer

from diag import __version__
from diag.errors import DiagError, ExitStatus

app = typer.Typer(
    name="diag",
    help="Diagnose Kubernetes/Linux networking: captures (BGP, VXLAN/GENEVE, ARP), evidence "
    "bundles, findings, reports, and a namespace lab.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state = {"traceback": False}


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


def run(call) -> None:
    """Run one command; map its outcome to the exit status (see the module docstring)."""
    try:
        status = call()
    except DiagError as err:
        fail(err.message, err.hint)
        raise typer.Exit(int(err.exit_status))
    except KeyboardInterrupt:
        fail("interrupted", None)
        raise typer.Exit(int(ExitStatus.INTERRUPTED))
    except BrokenPipeError:
        raise typer.Exit(int(ExitStatus.OK))
    except Exception as err:  # a bug: one line unless --traceback
        if _state["traceback"]:
            raise
        fail(f"internal error: {type(err).__name__}: {err}", "rerun with --traceback and report it")
        raise typer.Exit(int(ExitStatus.INTERNAL))
    raise typer.Exit(int(status or ExitStatus.OK))


def fail(message: str, hint: str | None) -> None:
    red, dim, reset = ("\x1b[31m", "\x1b[2m", "\x1b[0m") if sys.stderr.isatty() else ("", "", "")
    print(f"{red}diag: error: {message}{reset}", file=sys.stderr)
    if hint:
        print(f"{dim}hint: {hint}{reset}", file=sys.stderr)
