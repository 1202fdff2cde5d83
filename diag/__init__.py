"""diag: packet-capture and diagnostics toolkit for Kubernetes and Linux networking.

The data flow: hosts -collect-> bundle -parse/decode-> facts -analyze-> findings -report-> output.
Each stage is a sub-package with one job; stages never import each other.
"""
from __future__ import annotations

import sys as _sys

__version__ = "0.1.0"

if _sys.argv[:1] == ["-m"] and getattr(_sys, "orig_argv", [])[-len(_sys.argv):][:1] == \
        ["diag"]:
    # ``python -m diag``: this is diag's first line of code. Ctrl-C is held from here until
    # :func:`diag.__main__.main` is inside the block that answers it with status 130
    # (importlib would otherwise print a traceback while it looks for diag.__main__).
    # Importing diag in any other way changes nothing.
    import signal as _signal

    _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGINT})

