"""Ranking: root causes before their consequences, then by severity and confidence.

Contract: :func:`rank(findings) -> list[Finding]`. A finding whose ``caused_by`` names a code that
is also reported (as a warning or error, on a shared host) is a consequence: it goes after every root cause. Among roots (and among
consequences) the order is severity (error, warning, info), then the code's place in
:data:`CAUSE_ORDER` (the more specific cause first: a route in the wrong table explains a daemon
path missing from the kernel, which explains a leak), then confidence, then summary for a stable
order.
"""
from __future__ import annotations

from diag.model import LEVELS, Finding, severity_rank

CAUSE_ORDER = ("BGP_MD5_MISMATCH", "BGP_BAD_PEER_AS", "BGP_TRANSPORT_BLOCKED",
               "BGP_HOLD_TIMER_EXPIRED", "BGP_NO_LISTENER", "BGP_EBGP_REQUIRES_POLICY",
               "BGP_AS_PATH_LOOP",
               "BGP_NO_ADVERTISEMENT", "BGP_SESSION_NOT_ESTABLISHED",
               "VXLAN_PORT_MISMATCH", "VXLAN_VNI_MISMATCH", "OVERLAY_UDP_BLOCKED",
               "OVERLAY_MTU_BLACKHOLE", "OVERLAY_CHECKSUM_OFFLOAD", "OVERLAY_DROP_AFTER_DECAP",
               "ROUTE_WRONG_TABLE_OR_BLACKHOLE", "ROUTE_RIB_NOT_IN_FIB",
               "ROUTE_NOT_INSTALLED_ADMIN_DISTANCE", "ROUTE_MISSING_PODCIDR_OFF_LINK",
               "ASYMMETRIC_RP_FILTER", "EGRESS_LEAK_DEFAULT_ROUTE",
               "ARP_MULTIPLE_RESPONDERS", "ARP_UNANSWERED")


def _specificity(code: str) -> int:
    return CAUSE_ORDER.index(code) if code in CAUSE_ORDER else len(CAUSE_ORDER)


def rank(findings: list[Finding]) -> list[Finding]:
    # a cause counts when it is reported as a problem (not an info note) on a shared host
    causes = [(f.code, set(f.hosts)) for f in findings if f.severity != "info"]

    def is_consequence(f: Finding) -> bool:
        return f.caused_by is not None and f.caused_by != f.code and any(
            code == f.caused_by and (not hosts or not f.hosts or hosts & set(f.hosts))
            for code, hosts in causes)

    def key(f: Finding):
        return (is_consequence(f), -severity_rank(f.severity), _specificity(f.code),
                -LEVELS.index(f.confidence.level), f.summary)

    return sorted(findings, key=key)
