"""Analyze: facts (tables + cluster model) -> ranked findings with evidence.

Public API::

    from diag.analyze import explain
    result = explain(facts)            # Explanation(findings (ranked), checked, not_checked)
                                       # (not_checked: also the checks a parse error kept from
                                       #  a host, with the error as the reason)
    result.findings[0].code            # codes: diag.analyze.catalog.CATALOG (docs/findings.md)
    result.flows                       # FlowLadder: the tunnelled flows behind overlay findings

    from diag.analyze.trace import trace
    print(trace(facts.tables, facts.model, "172.20.0.10", "172.20.2.10").text())

The kernel's state is read once into a FIB (``fib.py``), asked like the kernel would
(``lookup.py``) and walked over many hosts (``trace.py``). Each topic is one module of small pure
functions (``routing.py``, ``bgp.py`` (daemon state),
``wire_bgp.py`` (the same sessions in captures), ``arp.py``, ``offload.py`` (checksums),
``wire_overlay.py`` (overlay faults in bare captures), ``overlay.py`` (link state),
``ledger.py`` + ``overlay_path.py`` (tunnelled flows followed across the captures of both ends),
``rpfilter.py``; the Kubernetes objects against that state: ``intent.py`` and ``intent_*.py``);
``rank.py`` orders the
findings; nothing here reads files or imports another stage: everything comes through the
``facts`` object handed in, and evidence names bundle files only through ``facts.outputs``
(:class:`diag.bundle.OutputIndex`).
"""
from __future__ import annotations

from dataclasses import dataclass

from diag.model import Check, Finding, FlowLadder


@dataclass(frozen=True)
class Explanation:
    findings: tuple[Finding, ...]
    checked: tuple[Check, ...]
    not_checked: tuple[Check, ...]
    flows: tuple[FlowLadder, ...] = ()     # the tunnelled flows behind the overlay findings


def explain(facts) -> Explanation:
    from diag.analyze import routing
    from diag.analyze.rank import rank
    from diag.analyze.fib import build_fib

    from diag.analyze import (arp, bgp, offload, overlay, overlay_path, rpfilter, wire_bgp,
                              wire_overlay)

    fib = build_fib(facts.tables, outputs=facts.outputs)
    reads: list[tuple[Check, str]] = []        # (check, the analyzer whose tables it read)

    def read_by(name: str, made) -> list[Check]:
        made = list(made)
        reads.extend((c, name) for c in made)
        return made

    findings, checks = routing.analyze(facts.tables, facts.model, fib)
    read_by("routing", checks)
    session_findings, session_checks = bgp.analyze(facts.tables, facts.model, fib)
    read_by("bgp", session_checks)
    wire_findings, wire_checks = wire_bgp.analyze(facts.tables, facts.model)
    read_by("wire_bgp", wire_checks)
    session_findings = wire_bgp.corroborate(session_findings, wire_findings)
    session_checks = list(session_checks) + wire_checks
    findings = _link_to_sessions(findings, session_findings, facts.model) + session_findings
    checks = list(checks) + list(session_checks)
    arp_findings, arp_checks = arp.analyze(facts.tables, facts.model, facts.outputs)
    findings += arp_findings
    checks += read_by("arp", arp_checks)
    checks += read_by("offload", offload.analyze(facts.tables, facts.model)[1])
    overlay_findings, overlay_checks = overlay.analyze(facts.tables, facts.model, fib)
    read_by("overlay", overlay_checks)
    overlay_findings, path_checks, ladders = overlay_path.analyze(facts.tables, facts.model, fib,
                                                                  overlay_findings)
    read_by("overlay_path", path_checks)
    overlay_checks = overlay_checks + path_checks
    wire_findings, wire_checks = wire_overlay.analyze(facts.tables, facts.model)
    read_by("wire_overlay", wire_checks)
    overlay_findings, overlay_checks = overlay_findings + wire_findings, overlay_checks + wire_checks
    rp_findings, rp_checks = rpfilter.analyze(facts.tables, facts.model, fib)
    read_by("rpfilter", rp_checks)
    findings = _link_to_overlay(findings, overlay_findings)
    findings = _link_to_rp_filter(findings, rp_findings) + overlay_findings + rp_findings
    checks += overlay_checks + rp_checks
    # the Kubernetes objects against that state (diag/analyze/intent.py)
    from diag.analyze import intent

    findings, intent_checks = intent.analyze(facts, findings)
    checks += intent_checks
    errors = getattr(facts, "parse_errors", None)
    checks, unreadable, covered = _unreadable(checks, reads, errors)
    checks += unread_outputs(errors, covered)
    ranked = tuple(rank(findings))
    codes = [f.code for f in ranked]
    flows = tuple(sorted(ladders, key=lambda ladder: codes.index(ladder.code)
                         if ladder.code in codes else len(codes)))
    return Explanation(ranked,
                       tuple(c for c in checks if c.passed is not None),
                       tuple(c for c in checks if c.passed is None) + unreadable, flows)


def explain_lake(source, model, timings: dict | None = None) -> Explanation:
    """The routing analyzers over one bundle of the evidence lake (:mod:`diag.analyze.fleet`:
    the same findings as :func:`explain`'s routing part, at fleet scale); the other topics need
    the bundle and are listed as not checked."""
    from diag.analyze import fleet
    from diag.analyze.rank import rank

    findings, checks = fleet.analyze(source, model, timings)
    skipped = Check("BGP sessions, ARP, overlays, rp_filter, checksums", None,
                    needs="the bundle itself: explain from the lake runs the routing analyzers")
    return Explanation(tuple(rank(findings)),
                       tuple(c for c in checks if c.passed is not None),
                       tuple(c for c in checks if c.passed is None) + (skipped,))


# The facts tables each analyzer's checks read (a parse error in one of them on a host means
# those checks could not look at that host). ``captures``: the decoded capture tables.
READS = {
    "routing": ("routes", "rules", "route_gets", "bgp_paths", "addresses", "interfaces"),
    "bgp": ("bgp_peers", "bgp_paths", "sockets", "counters"),
    "wire_bgp": ("captures",),
    "arp": ("captures", "neighbors"),
    "offload": ("captures",),
    "overlay": ("interfaces", "fdb", "neighbors", "routes"),
    "overlay_path": ("captures", "interfaces", "addresses", "offloads", "sysctls", "counters"),
    "wire_overlay": ("captures",),
    "rpfilter": ("sysctls", "routes", "rules", "counters"),
}


def _unreadable(checks: list[Check], reads: list[tuple[Check, str]], errors
                ) -> tuple[list[Check], tuple[Check, ...], set[tuple[str, str]]]:
    """Each parse error (a host's output that could not be read) makes the checks that read its
    table "not checked" on that host, with the error as the reason; a check that ran on the
    other hosts says so in its detail. Also: the (host, source) of the errors so named."""
    from dataclasses import replace

    if errors is None or not len(errors) or "table" not in errors:
        return checks, (), set()
    by_table: dict[str, list[tuple[str, str, str]]] = {}
    for host, source, error, table in zip(errors["host"], errors["source"], errors["reason"],
                                          errors["table"]):
        by_table.setdefault(str(table), []).append((str(host), str(source), str(error)))
    missing: list[Check] = []
    seen: set[tuple[str, str, str]] = set()
    amended: dict[int, Check] = {}
    for check, analyzer in reads:
        hit = [e for table in READS.get(analyzer, ()) for e in by_table.get(table, ())]
        for host, source, error in hit:
            if (check.name, host, source) in seen:
                continue
            seen.add((check.name, host, source))
            missing.append(Check(f"{check.name} on {host}", None,
                                 needs=f"{host}'s `{source}` output, which could not be read: "
                                 f"{error}"))
        if hit and check.passed is not None:
            hosts = sorted({h for h, _s, _e in hit})
            amended[id(check)] = replace(check, detail=(check.detail + "; " if check.detail
                                                        else "") + "not checked on "
                                         + ", ".join(hosts) + " (an output could not be read)")
    return ([amended.get(id(c), c) for c in checks], tuple(missing),
            {(host, source) for _name, host, source in seen})


def _link_to_sessions(routing: list[Finding], sessions: list[Finding], model=None
                      ) -> list[Finding]:
    """Routing symptoms without a cause of their own are consequences of a broken BGP session or
    exchange (an error) that touches them: a session of the same host, or of the node whose pod
    CIDR the symptom is about — routes that should have been learned are missing. An AS path
    loop explains only the prefixes it dropped; a loop that is by design (info) explains
    nothing, so the missing route stays the finding."""
    from dataclasses import replace

    broken = [f for f in sessions if f.severity == "error" and f.caused_by is None]
    if not broken:
        return routing
    owners = {}
    if model is not None:
        owners = {str(h.pod_cidr.value): name for name, h in model.hosts.items()
                  if h.pod_cidr.value}

    def touches(f: Finding, cause: Finding) -> bool:
        prefixes = {p.strip() for p in f.subject.split(",") if p.strip()}
        if cause.code == "BGP_AS_PATH_LOOP":
            dropped = {p.strip() for p in cause.subject.split(",")}
            return bool(set(f.hosts) & set(cause.hosts)) and bool(prefixes & dropped)
        return bool(set(f.hosts) & set(cause.hosts)) or any(
            owners.get(p) in cause.hosts for p in prefixes)

    out = []
    for f in routing:
        cause = next((c for c in broken if touches(f, c)), None) \
            if f.caused_by is None and f.severity != "info" else None
        if cause is not None:
            f = replace(f, caused_by=cause.code,
                        severity_reason=(f.severity_reason + "; " if f.severity_reason else "")
                        + f"consequence of {cause.code}: {cause.summary}")
        out.append(f)
    return out


OVERLAY_CAUSES = ("VXLAN_PORT_MISMATCH", "VXLAN_VNI_MISMATCH", "OVERLAY_UDP_BLOCKED",
                  "OVERLAY_MTU_BLACKHOLE")


def _link_to_overlay(findings: list[Finding], overlay: list[Finding]) -> list[Finding]:
    """ARP requests carried in a tunnel that a broken overlay drops (both VTEPs of its evidence
    named by the overlay finding) go unanswered because of it."""
    from dataclasses import replace

    causes = [o for o in overlay if o.code in OVERLAY_CAUSES and o.severity != "info"]
    out = []
    for f in findings:
        if f.code == "ARP_UNANSWERED" and f.caused_by is None and f.severity != "info":
            ends = {tuple(e.value.rsplit(" (in ", 1)[1].rstrip(")").split()[-3::2])
                    for e in f.evidence if " (in " in e.value}
            cause = next((o for o in causes for a, b in ends
                          if a in o.subject.split() and b in o.subject.split()), None)
            if cause is not None:
                f = replace(f, caused_by=cause.code, severity_reason=(
                    f.severity_reason + "; " if f.severity_reason else "")
                    + f"the tunnel carrying the requests is broken: {cause.code}")
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


def unread_outputs(parse_errors, covered=frozenset()) -> list[Check]:
    """One "not checked" entry per output the facts could not read (``parse_errors``) that no
    check already names (``covered``: (host, source) of :func:`_unreadable`'s entries): a
    host's manifest record, a capture read only in part, an output no check that ran reads.
    What explain saw of that host lacks it, and the user should know before trusting a
    silence."""
    if parse_errors is None or not len(parse_errors):
        return []
    checks = []
    for row in parse_errors.itertuples(index=False):
        if (str(row.host), str(row.source)) in covered:
            continue
        host = row.host or "the bundle"
        if row.source == "manifest":    # a host record, or one command's: nothing of it read
            checks.append(Check(f"{host}: its manifest record (not read: {row.reason})", None,
                                needs=f"a record of the documented shape at {row.path} "
                                      "(docs/bundle-format.md)"))
            continue
        if row.parser == "decode":      # a capture: read, but not all of it decodes
            # a bare capture's rows name the capture itself as the host ("capture")
            what = "the capture" if host == "capture" else f"capture of {host}"
            checks.append(Check(f"{what}: {row.reason}", None,
                                needs=f"a capture whose records decode ({row.path})"))
            continue
        checks.append(Check(f"{row.source} of {host} (not read: {row.reason})", None,
                            needs=f"an output the {row.parser} reader understands "
                                  f"({row.path})"))
    return checks
