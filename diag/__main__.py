"""``python -m diag`` and the ``diag`` console script: :func:`main`, diag's first line of code
(Ctrl-C is held from the first line of ``python -m diag``, see diag/__init__.py)."""
from __future__ import annotations


def main() -> None:
    """The console script and ``python -m diag``: diag's first line of code.

    Ctrl-C from here on exits 130 with one line, never a traceback: while the command line's
    modules are imported, while options are parsed (click would say "Aborted!" and exit 1), and
    while a command runs (:func:`diag.cli.app.run`); one that a library swallowed still ends the
    command as interrupted (:mod:`diag.interrupts`). Once the exit status is known, further
    Ctrl-Cs are ignored so that the interpreter's shutdown prints nothing either.
    """
    import signal
    import sys

    from diag import interrupts

    interrupts.install()
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # held by python -m diag
        from diag.cli import run_command_line as command_line

        try:
            status = command_line()
        except Exception as err:
            from diag.errors import raised_by_interrupt

            if raised_by_interrupt(err):     # one wrapped by the interpreter (see there)
                raise KeyboardInterrupt from None
            raise
        if interrupts.unanswered():          # a library swallowed it: the command ended anyway
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        interrupts.answered()
        _say("diag: error: interrupted")
        status = 130
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if status == 130:
        # Interrupted: everything in the stack has unwound (temporary directories removed, a
        # bundle being written closed as partial). CPython 3.11 remembers an interrupt that once
        # passed through code run by C (an extension's import) and, at a normal exit, kills
        # itself with SIGINT instead of exiting 130; leaving without finalisation avoids that.
        import os

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)
    sys.exit(status)


def _say(line: str) -> None:
    import sys

    try:
        print(line, file=sys.stderr)
    except OSError:         # stderr closed or a broken pipe itself: the status still says it
        pass


if __name__ == "__main__":
    main()
