"""The command line: argv -> one call of :mod:`diag.pipeline` (or the lab) -> a renderer of
:mod:`diag.report` -> an exit status. No logic lives here.

One module per command (``pcap``, ``collect``, ``facts``, ``explain``, ``report``, ``lab``,
``query``), each
adding itself to :data:`diag.cli.app.app`; options several commands share are declared once in
:mod:`diag.cli.options`; every command exits through :func:`diag.cli.app.run` and
:class:`diag.errors.ExitStatus`. Heavy modules (pandas, rich, scapy) are imported inside the
commands, never at import time, so that ``diag --help`` starts fast.
"""
from __future__ import annotations

from diag.cli import collect, explain, facts, lab, pcap, query, report  # noqa: F401  (they register)
from diag.cli.app import app


def main() -> None:
    """The command line as the console script runs it: exits with its status
    (:func:`diag.__main__.main`: Ctrl-C is 130 from the first line on)."""
    from diag.__main__ import main as entry

    entry()


def run_command_line(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    typer's standalone mode is off so that every outcome passes through here: its usage errors
    print as it prints them (status 2), and an interrupt while options are parsed is raised as
    the KeyboardInterrupt it was (typer alone turns it into a silent 130, or "Aborted!" and 1),
    for :func:`diag.main` to answer like any other.
    """
    from diag.cli.app import interrupt_reported
    from diag.errors import ExitStatus

    try:
        status = app(args=argv, standalone_mode=False)
    except Exception as err:      # typer's and click's own, named alike in both
        kind = type(err).__name__
        if kind == "Abort":                # Ctrl-C (or EOF at a prompt)
            raise KeyboardInterrupt from None
        if kind == "Exit" and hasattr(err, "exit_code"):
            status = err.exit_code
        elif hasattr(err, "show") and hasattr(err, "exit_code"):   # a usage error
            err.show()
            return err.exit_code
        else:
            raise
    if status == ExitStatus.INTERRUPTED and not interrupt_reported():
        raise KeyboardInterrupt            # typer's silent 130: nothing was said yet
    return int(status) if isinstance(status, int) else int(ExitStatus.OK)


__all__ = ["app", "main", "run_command_line"]
