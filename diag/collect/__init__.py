"""The collect stage: hosts -> evidence bundle.

``targets`` (who), ``catalogue`` (what, declared), ``transport``/``ssh`` (how to reach a host),
``detect`` (which routing daemons run there), ``redact`` (secrets out before anything is
written), ``capture`` (pcap streams cut at record boundaries), ``runner`` (bounded fan-out,
timeouts, deadline, writing the bundle through :mod:`diag.bundle`), ``progress`` (rich live view
and the summary), ``cli`` (the thin ``diag collect`` command). Nothing here imports another stage.
"""
from __future__ import annotations
