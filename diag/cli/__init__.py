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
    app()


__all__ = ["app", "main"]
