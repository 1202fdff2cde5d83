"""Analyze: facts (tables + cluster model) -> ranked findings with evidence.

Public API::

    from diag.analyze import explain
    result = explain(facts)            # Explanation(findings (ranked), checked, not_checked)
    result.findings[0].code            # codes: diag.analyze.catalog.CATALOG (docs/findings.md)

    from diag.analyze.trace import build_fib, trace
    print(trace(facts.tables, facts.model, "172.20.0.10", "172.20.2.10").text())

Each topic is one module of small pure functions (``routing.py``, ``bgp.py``, ``arp.py``); ``rank.py`` orders the
findings; nothing here reads files or imports another stage except through the ``facts`` object
handed in.
"""
from __future__ import annotations

from dataclasses import dataclass

from diag.model import Check, Finding


@dataclass(frozen=True)
class Explanation:
    findings: tuple[Finding, ...]
    checked: tuple[Check, ...]
    not_checked: tuple[Check, ...]


def explain(facts) -> Explanation:
    from diag.analyze import routing
    from diag.analyze.rank import rank
    from diag.analyze.trace import build_fib

    from diag.analyze import arp, bgp

    fib = build_fib(facts.tables)
    findings, checks = routing.analyze(facts.tables, facts.model, fib)
    session_findings, session_checks = bgp.analyze(facts.tables, facts.model, fib)
    findings = _link_to_sessions(findings, session_findings) + session_findings
    checks = list(checks) + list(session_checks)
    arp_findings, arp_checks = arp.analyze(facts.tables, facts.model)
    findings += arp_findings
    checks += arp_checks
    for name, needs in _NOT_YET:
        checks.append(Check(name, None, needs=needs))
    return Explanation(tuple(rank(findings)),
                       tuple(c for c in checks if c.passed is not None),
                       tuple(c for c in checks if c.passed is None))


def _link_to_sessions(routing: list[Finding], sessions: list[Finding]) -> list[Finding]:
    """Routing symptoms without a cause of their own are consequences of a broken BGP session or
    exchange (an error): routes that should have been learned are missing."""
    from dataclasses import replace

    broken = [f for f in sessions if f.severity == "error"]
    if not broken:
        return routing
    out = []
    for f in routing:
        if f.caused_by is None and f.severity != "info":
            cause = broken[0]
            f = replace(f, caused_by=cause.code,
                        severity_reason=(f.severity_reason + "; " if f.severity_reason else "")
                        + f"consequence of {cause.code}: {cause.summary}")
        out.append(f)
    return out


# checks this version does not run yet, with what would supply them
_NOT_YET = (
    ("overlay ports, VNIs and MTU (VXLAN_*, OVERLAY_*)",
     "analyzer not implemented yet in this version"),
    ("reverse-path filter (ASYMMETRIC_RP_FILTER)", "analyzer not implemented yet in this version"),
)
