"""Facts: a bundle (directory or archive) or a bare capture -> normalised tables + cluster model.

Public API::

    from diag.facts import load_facts
    facts = load_facts("incident-42.tar.gz")          # or a bundle directory, or a .pcap/.pcapng
    facts.tables["routes"]                            # pandas DataFrames, see docs/facts.md
    facts.model.hosts["k8s-w1"].pod_cidr               # Inferred(value, how, source, agrees, ...)
    facts.parse_errors, facts.problems                # what could not be read, bundle damage

This package is the pipeline step between reading (``diag.bundle``, ``diag.parse``,
``diag.decode``) and analysis: it puts them in order, adds ``host`` to every row, and infers the
model (:mod:`diag.facts.infer`). Heavy imports happen inside functions.
"""
from __future__ import annotations

from diag.facts.load import Facts, load_facts

__all__ = ["Facts", "load_facts"]
