"""Ctrl-C that is never lost: the SIGINT handling of ``python -m diag`` and the ``diag`` script.

Contract: :func:`install` (from the main thread, by :func:`diag.__main__.main`) replaces Python's
default SIGINT handler and its unraisable-exception hook. The handler raises KeyboardInterrupt
where the main thread is, as Python's does, except while the main thread imports a module: a C
extension runs Python code as it initialises (numpy.random's Cython modules call
``abc.register``), and an error raised there may be cleared (the Ctrl-C vanished: the command
went on and exited 0) or replaced (``ImportError: PyCapsule_Import could not import module
"pandas"``: an internal error, exit 70) - both seen by tests/test_edges.py's Ctrl-C at any
moment. Such an interrupt is held, and the signal sent again once the import is over. An
interrupt that lands in a finalizer (CPython prints "Exception ignored" and goes on) is sent
again too. :func:`unanswered` says whether a Ctrl-C was pressed that no ``except
KeyboardInterrupt`` has answered yet (:func:`answered`): an error raised meanwhile is taken as its
doing, and a command that ends meanwhile still ends as interrupted.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

_IMPORTLIB = frozenset(("importlib._bootstrap", "importlib._bootstrap_external"))
_AGAIN_EVERY = 0.01       # seconds before an interrupt is sent again, and between looks

_pressed = 0
_answered = 0
_holding = threading.Lock()


def install() -> None:
    """Make this process's Ctrl-C the handler described above (main thread only)."""
    signal.signal(signal.SIGINT, _handler)
    sys.unraisablehook = _again_after_finalizer(sys.unraisablehook)


def unanswered() -> bool:
    """Whether a Ctrl-C was pressed and not yet answered (see :func:`answered`)."""
    return _pressed > _answered


def answered() -> None:
    """Every Ctrl-C pressed so far has been answered (its line said, its status chosen)."""
    global _answered
    _answered = _pressed


def _handler(signum, frame) -> None:
    global _pressed
    _pressed += 1
    if _importing(frame):
        _send_again()
        return
    raise KeyboardInterrupt


def _importing(frame) -> bool:
    """Whether ``frame`` (the main thread's) runs inside an import."""
    while frame is not None:
        if frame.f_globals.get("__name__") in _IMPORTLIB:
            return True
        frame = frame.f_back
    return False


def _send_again() -> None:
    """SIGINT to this process again, from a helper thread, a moment later and once the main
    thread is out of any import. One helper at a time: an interrupt that arrives while one
    waits is the same Ctrl-C, and the helper's signal answers both."""
    if _holding.acquire(blocking=False):
        threading.Thread(target=_sender, daemon=True, name="diag-interrupt").start()


def _sender() -> None:
    main = threading.main_thread().ident
    try:
        time.sleep(_AGAIN_EVERY)
        while _importing(sys._current_frames().get(main)):
            time.sleep(_AGAIN_EVERY)
    finally:
        _holding.release()           # before the signal: its handler may need a helper again
    os.kill(os.getpid(), signal.SIGINT)


def _again_after_finalizer(previous):
    """An unraisable-exception hook: a Ctrl-C that lands while Python runs a finalizer cannot
    propagate from there; it is sent again, to be raised where it can stop the command."""

    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _send_again()            # raised at once, in the finalizer, it would be lost again
            return
        previous(unraisable)

    return hook
