"""The one catalogue of finding codes: code -> default severity, title, what proves it.

Contract: :data:`CATALOG` holds every code of the public contract (docs/findings.md is rendered
from it by :func:`render_markdown` — regenerate it with ``python -m diag.analyze.catalog >
docs/findings.md`` — and a test keeps the two identical). Codes are stable: add new
ones, never rename. ``status`` says whether an analyzer exists (``implemented``) or the code is
reserved until diag collects the evidence for it (``reserved``). Analyzers take the default
severity from here (:func:`default_severity`) and say why when context changes it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CodeInfo:
    code: str
    topic: str
    severity: str          # default: error | warning | info
    title: str             # what it means, one line
    proof: str             # the decisive evidence
    status: str = "reserved"


_R, _B, _O, _L = ("Routing and forwarding", "BGP sessions", "Overlay", "L2 / ARP / LoadBalancer IPs")

_ENTRIES = (
    CodeInfo("ROUTE_RIB_NOT_IN_FIB", _R, "error",
             "a daemon has a best path for a prefix but the kernel has no route on that host that "
             "sends the traffic the same way",
             "daemon best path (gobgp/frr/bird/cilium) vs `ip route show table all` walked through "
             "`ip rule`; `ip route get` unreachable or via the default route. Info on Cilium when a "
             "covering route sends the traffic the same way (GoBGP does not program the FIB)",
             "implemented"),
    CodeInfo("ROUTE_NOT_INSTALLED_ADMIN_DISTANCE", _R, "error",
             "FRR has the BGP route but zebra did not select or install it (another protocol "
             "wins)", "frr `show ip route json` selected/installed flags"),
    CodeInfo("ROUTE_MISSING_PODCIDR_OFF_LINK", _R, "error",
             "a node lacks routes to the pod CIDRs of nodes in another subnet while it has those "
             "of on-link nodes (autoDirectNodeRoutes only works on one L2)",
             "ip routes vs other nodes' pod CIDRs and node IPs off-link; no daemon holds them",
             "implemented"),
    CodeInfo("EGRESS_LEAK_DEFAULT_ROUTE", _R, "error",
             "traffic for a pod or LoadBalancer prefix leaves by the default-route NIC instead of "
             "the cluster NIC",
             "FIB walk / `ip route get` -> default route via the default-route NIC; pcap packets "
             "on that NIC. Ranked after its cause when a more specific one is found",
             "implemented"),
    CodeInfo("ROUTE_WRONG_TABLE_OR_BLACKHOLE", _R, "error",
             "the prefix exists only in a table no `ip rule` looks up, or as "
             "blackhole/unreachable/prohibit", "ip route table all + ip rule", "implemented"),
    CodeInfo("ASYMMETRIC_RP_FILTER", _R, "error",
             "replies return on another NIC and strict rp_filter drops them",
             "sysctl rp_filter=1 + reverse-path lookup; nstat IPReversePathFilter", "implemented"),
    CodeInfo("ECMP_NOT_FORMED", _R, "warning",
             "several equal paths exist but only one is used",
             "daemon multipath flags vs kernel route without nexthops[]"),
    CodeInfo("BGP_SESSION_NOT_ESTABLISHED", _B, "error",
             "a configured peer is not Established (generic: a more specific code is used when the "
             "cause is known)", "frr/gobgp/bird/cilium session state; the last NOTIFICATION "
             "(a Cease says whether an operator's action or a fault closed it: down at the end "
             "of the evidence either way)", "implemented"),
    CodeInfo("BGP_TRANSPORT_BLOCKED", _B, "error",
             "SYNs to port 179 get no answer (firewall, ACL or route)",
             "ss SYN-SENT/SYN-RECV on :179; pcap SYN without SYN-ACK, or SYNs retransmitted "
             "although answered. A hold-timer expiry on the same session while the handshakes "
             "stay half-open is its consequence (ranked after it)", "implemented"),
    CodeInfo("BGP_NO_LISTENER", _B, "error",
             "the peer refuses: nobody listens on 179 (both sides passive; Cilium does not listen "
             "by default)", "pcap RST to SYN; ss no LISTEN :179", "implemented"),
    CodeInfo("BGP_BAD_PEER_AS", _B, "error", "AS mismatch between the two ends of a session",
             "NOTIFICATION 2/2 (pcap or daemon last error); OPEN my-AS vs configured remote-as", "implemented"),
    CodeInfo("BGP_HOLD_TIMER_EXPIRED", _B, "error", "keepalives stopped arriving",
             "NOTIFICATION 4/0; pcap gap longer than the negotiated hold time. The consequence "
             "of BGP_TRANSPORT_BLOCKED when the reconnects stay half-open (SYN-SENT, unanswered "
             "SYNs)", "implemented"),
    CodeInfo("BGP_SESSION_RESET", _B, "warning",
             "a NOTIFICATION closed an established session and the session came back (a flap); "
             "info when an operator's action closed it (Cease 2 administrative shutdown, "
             "3 peer de-configured, 4 administrative reset, 6 other configuration change) or a "
             "connection collision (Cease 7); a warning when a fault did (Cease 1 maximum "
             "prefixes, 5 connection rejected, 8 out of resources, 10 BFD down, hold timer, ...)",
             "pcap NOTIFICATION followed by OPENs from both ends and keepalives. A session still "
             "down after a Cease is BGP_SESSION_NOT_ESTABLISHED (error), naming the Cease and "
             "whether an operator or a fault sent it", "implemented"),
    CodeInfo("BGP_MD5_MISMATCH", _B, "error", "TCP-MD5 key missing or different on one side",
             "ss `md5keys` on one side only; SYNs with the MD5 option unanswered; nstat "
             "TCPMD5NotFound/Unexpected/Failure", "implemented"),
    CodeInfo("BGP_EBGP_MULTIHOP_TTL", _B, "error",
             "eBGP peer not directly connected while the TTL is 1",
             "peer off-link; frr \"Waiting for NHT\"; BGP packets with TTL 1"),
    CodeInfo("BGP_ROUTER_ID_COLLISION", _B, "error", "both ends use the same router id",
             "NOTIFICATION 2/3"),
    CodeInfo("BGP_EBGP_REQUIRES_POLICY", _B, "error",
             "FRR drops eBGP routes without a policy (RFC 8212 default)",
             "frr peerState `Policy`, pfxRcd/pfxSnt `(Policy)`", "implemented"),
    CodeInfo("BGP_AS_PATH_LOOP", _B, "error",
             "routes rejected because the path contains the local AS (nodes sharing one AS); info "
             "when a covering route delivers the traffic anyway",
             "received > accepted; adj-in paths contain the local AS", "implemented"),
    CodeInfo("BGP_NO_ADVERTISEMENT", _B, "error",
             "a node advertises nothing, or not the expected pod CIDR / LoadBalancer IP",
             "advertised count 0; prefix missing from the advertised RIB", "implemented"),
    CodeInfo("BGP_NEXTHOP_UNREACHABLE", _B, "error",
             "the advertised next hop cannot be reached by the receiver",
             "path invalid/inaccessible; next hop off-link"),
    CodeInfo("BGP_GR_STALE_ROUTES", _B, "warning",
             "graceful restart keeps stale routes of a dead peer", "stale flags; restart timer"),
    CodeInfo("BGP_RR_MISCONFIG", _B, "error", "routes on the reflector but not on its clients",
             "cluster-id / cluster list; client config"),
    CodeInfo("BIRD_FILTER_REJECT", _B, "error", "a BIRD import/export filter rejects the routes",
             "`birdc show protocols all`: rejected/filtered counters"),
    CodeInfo("VXLAN_PORT_MISMATCH", _O, "error", "VTEPs use different UDP ports (8472 vs 4789)",
             "`ip -d -j link` vxlan port differs; pcap one-way UDP + ICMP port unreachable", "implemented"),
    CodeInfo("OVERLAY_UDP_BLOCKED", _O, "error",
             "encapsulated UDP leaves one node and never reaches the other (or reaches its "
             "underlay and is dropped before its tunnel device), while other traffic between "
             "the two nodes passes",
             "the flow ledger over captures on both ends: the flow's packets leave the sender's "
             "underlay (and cross the hosts between as far as they were captured) and never "
             "arrive on the receiver's; other packets from the sender do; or they arrive with "
             "the receiver's VNI and port and are never decapsulated", "implemented"),
    CodeInfo("OVERLAY_MTU_BLACKHOLE", _O, "error", "full-size packets do not fit the tunnel",
             "tunnel MTU vs underlay MTU; ICMP frag-needed or large-packet retransmits; the "
             "flow ledger: large packets seen on the pod side never enter the tunnel; "
             "tunnelled packets fragmented on the underlay (outer fragments)", "implemented"),
    CodeInfo("VXLAN_VNI_MISMATCH", _O, "error", "VTEPs use different VNIs",
             "`ip -d -j link` vxlan id of VTEPs whose FDB names each other; the flow ledger: "
             "packets arrive on the receiver's underlay with a VNI none of its devices has and "
             "are never decapsulated", "implemented"),
    CodeInfo("OVERLAY_CHECKSUM_OFFLOAD", _O, "error",
             "inner TCP/UDP checksums arrive wrong through the tunnel (the receiver's kernel "
             "drops the packets) while ICMP passes: checksum offload computing them wrong, or "
             "corruption between the nodes",
             "the flow ledger: inner checksums bad on the receiver's side, correct (or left to "
             "offload) on the sender's for the same packets; ICMP between the same pods "
             "answered; `ethtool -k` of the tunnel devices and NICs; nstat TcpInCsumErrors",
             "implemented"),
    CodeInfo("OVERLAY_DROP_AFTER_DECAP", _O, "error",
             "tunnelled packets are decapsulated on the receiver and never reach the pod",
             "the flow ledger: seen on the receiver's tunnel device, never on the pod's device; "
             "the route to the pod, rp_filter and neighbour checked; network policy and "
             "firewall rules named when not collected", "implemented"),
    CodeInfo("ARP_UNANSWERED", _L, "error",
             "ARP requests for an IP get no reply (no announcer, lease holder not answering, wrong "
             "interface)", "pcap requests without replies; neigh INCOMPLETE/FAILED", "implemented"),
    CodeInfo("ARP_MULTIPLE_RESPONDERS", _L, "error", "several MACs answer for one IP",
             "pcap replies with different MACs; the IP on several hosts", "implemented"),
    CodeInfo("ARP_STALE_AFTER_FAILOVER", _L, "warning",
             "the router keeps the old MAC after the announcer moved",
             "neigh MAC differs from the current holder; no gratuitous ARP seen"),
    CodeInfo("LB_IP_PENDING", _L, "error",
             "a LoadBalancer service has no external IP (no pool or pool exhausted)",
             "service status; pool state (needs Kubernetes API data, not collected yet)"),
)

CATALOG: dict[str, CodeInfo] = {e.code: e for e in _ENTRIES}
TOPICS = (_R, _B, _O, _L)


def info(code: str) -> CodeInfo:
    """The catalogue entry; KeyError for a code that is not in the contract (a bug)."""
    return CATALOG[code]


def default_severity(code: str) -> str:
    return CATALOG[code].severity


def render_markdown() -> str:
    """docs/findings.md, generated from this module (a test keeps the file identical)."""
    lines = ["# Finding codes", "",
             "Generated from `diag/analyze/catalog.py` (the one catalogue; a test keeps this page "
             "identical). Codes are a public contract: stable, added but never renamed. Severity: "
             "`error` traffic is broken, `warning` degraded or at risk, `info` by design / worth "
             "knowing. The default below is adjusted by context and the finding then says why "
             "(`severity_reason`). `reserved` codes keep their name until diag collects the "
             "evidence for them.", ""]
    for topic in TOPICS:
        lines += [f"## {topic}", ""]
        for e in _ENTRIES:
            if e.topic != topic:
                continue
            lines += [f"### `{e.code}`", "",
                      f"- default severity: `{e.severity}` ({e.status})",
                      f"- means: {e.title}",
                      f"- proved by: {e.proof}", ""]
    return "\n".join(lines)


if __name__ == "__main__":      # python -m diag.analyze.catalog > docs/findings.md
    print(render_markdown(), end="")
