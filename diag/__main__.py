"""``python -m diag`` and the ``diag`` console script: :func:`main`, diag's first line of code
(Ctrl-C is held from the first line of ``python -m diag``, see diag/__init__.py)."""
from __future__ import annotations


def main() -> None:
    """The console script and ``python -m diag``: diag's first line of code.

    Ctrl-C from here on exits 130 with one line, never a traceback: while the command line's
    modules are imported, while options are parsed (click would say "Aborted!" and exit 1), and
    while a command runs (:func:`diag.cli.app.run`). Once the exit status is known, further
    Ctrl-Cs are ignored so that the interpreter's shutdown prints nothing either.
    """
    import signal
    import sys

    sys.unraisablehook = _interrupt_again(sys.unraisablehook)
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
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
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


def _interrupt_again(previous):
    """An unraisable-exception hook: a Ctrl-C that lands while Python runs a finalizer cannot
    propagate from there (CPython prints "Exception ignored" and goes on as if nothing was
    pressed); it is sent again, to be raised where it can stop the command."""
    import os
    import signal
    import threading

    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            # from another thread, a moment later: raised here, it would be lost the same way
            threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGINT)).start()
            return
        previous(unraisable)

    return hook


def _say(line: str) -> None:
    import sys

    try:
        print(line, file=sys.stderr)
    except OSError:         # stderr closed or a broken pipe itself: the status still says it
        pass


if __name__ == "__main__":
    main()
