"""Analyze: facts (tables + cluster model) -> ranked findings with evidence.

Public API::

    from diag.analyze import explain
    result = explain(facts)            # Explanation(findings (ranked), checked, not_checked)
    result.findings[0].code            # codes: diag.analyze.catalog.CATALOG (docs/findings.md)

    from diag.analyze.trace import trace
    print(trace(facts.tables, facts.model, "172.20.0.10", "172.20.2.10").text())

The kernel's state is read once into a FIB (``fib.py``), asked like the kernel would
(``lookup.py``) and walked over many hosts (``trace.py``). Each topic is one module of small pure
functions (``routing.py``, ``bgp.py`` (daemon state),
``wire_bgp.py`` (the same sessions in captures), ``arp.py``, ``offload.py`` (checksums),
``wire_overlay.py`` (overlay faults in bare captures), ``overlay.py``, ``rpfilter.py``); ``rank.py`` orders the
findings; nothing here reads files or imports another stage: everything comes through the
``facts`` object handed in, and evidence names bundle files only through ``facts.outputs``
(:class:`diag.bundle.OutputIndex`).
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
    from diag.analyze.fib import build_fib

    from diag.analyze import arp, bgp, offload, overlay, rpfilter, wire_bgp, wire_overlay

    fib = build_fib(facts.tables, outputs=facts.outputs)
    findings, checks = routing.analyze(facts.tables, facts.model, fib)
    session_findings, session_checks = bgp.analyze(facts.tables, facts.model, fib)
    wire_findings, wire_checks = wire_bgp.analyze(facts.tables, facts.model)
    session_findings = wire_bgp.corroborate(session_findings, wire_findings)
    session_checks = list(session_checks) + wire_checks
    findings = _link_to_sessions(findings, session_findings) + session_findings
    checks = list(checks) + list(session_checks)
    arp_findings, arp_checks = arp.analyze(facts.tables, facts.model, facts.outputs)
    findings += arp_findings
    checks += arp_checks
    checks += offload.analyze(facts.tables, facts.model)[1]
    overlay_findings, overlay_checks = overlay.analyze(facts.tables, facts.model, fib)
    wire_findings, wire_checks = wire_overlay.analyze(facts.tables, facts.model)
    overlay_findings, overlay_checks = overlay_findings + wire_findings, overlay_checks + wire_checks
    rp_findings, rp_checks = rpfilter.analyze(facts.tables, facts.model, fib)
    findings = _link_to_rp_filter(findings, rp_findings) + overlay_findings + rp_findings
    checks += overlay_checks + rp_checks + unread_outputs(facts.parse_errors)
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


def _link_to_rp_filter(findings: list[Finding], rp: list[Finding]) -> list[Finding]:
    """The route back that makes the path asymmetric often goes out the default-route NIC: the
    routing finding about that host and prefix is then the rp_filter drop's other face."""
    from dataclasses import replace

    out = []
    for f in findings:
        cause = next((r for r in rp if f.caused_by is None and f.severity != "info"
                      and set(f.hosts) & set(r.hosts)
                      and any(p.strip() in r.subject for p in f.subject.split(","))), None)
        if cause is not None:
            f = replace(f, caused_by=cause.code, severity_reason=(
                f.severity_reason + "; " if f.severity_reason else "")
                + f"the asymmetric route back of {cause.code}")
        out.append(f)
    return out


def unread_outputs(parse_errors) -> list[Check]:
    """One "not checked" entry per output the facts could not read (``parse_errors``): what
    explain saw of that host lacks it, and the user should know before trusting a silence."""
    checks = []
    for row in parse_errors.itertuples(index=False):
        host = row.host or "the bundle"
        if row.source == "manifest":    # a host record, or one command's: nothing of it read
            checks.append(Check(f"{host}: its manifest record (not read: {row.reason})", None,
                                needs=f"a record of the documented shape at {row.path} "
                                      "(docs/bundle-format.md)"))
            continue
        if row.parser == "decode":      # a capture: read, but not all of it decodes
            checks.append(Check(f"capture of {host}: {row.reason}", None,
                                needs=f"a capture whose records decode ({row.path})"))
            continue
        checks.append(Check(f"{row.source} of {host} (not read: {row.reason})", None,
                            needs=f"an output the {row.parser} reader understands "
                                  f"({row.path})"))
    return checks
