"""Cilium's L2 announcements: for each announced LoadBalancer IP, who should answer ARP for it
(the Lease holder, the policy's nodes and interfaces) against who does (the captures).

Contract: :func:`analyze(objects, state) -> (verdicts, checks)` (:mod:`diag.analyze.intent`).
For every CiliumL2AnnouncementPolicy and every Service it selects (``serviceSelector`` against
the Service's labels plus ``io.kubernetes.service.name``/``.namespace``; ``loadBalancerIPs``
for the ingress IPs, ``externalIPs`` for the external ones): the Lease
``cilium-l2announce-<namespace>-<name>`` names the holder; the holder answers on the NICs whose
names match one of the policy's ``interfaces`` regular expressions (searched, as Go's
``regexp.MatchString``; none given: every NIC). The IP's segment is the holder's NIC whose
subnet holds the IP (``ip addr``). Verdicts:

- ``L2_ANNOUNCE_INTERFACE_MISMATCH``: that NIC matches none of the patterns and the captures
  show ARP requests for the IP unanswered;
- ``ARP_STALE_AFTER_FAILOVER``: replies for the IP from a MAC that is not the holder's while
  the holder answers too (two responders: error), or a neighbour entry keeping another node's
  MAC while the holder answers (warning);
- ``INTENT_NOT_APPLIED``: the holder does not answer but another node does (the announcement
  has not moved with the Lease), or the patterns exclude the NIC while the holder still answers
  on it;
- ``CILIUM_FEATURE_DISABLED``: policies exist, ``enable-l2-announcements`` is off and the IP
  goes unanswered;
- ``LB_IP_NOT_ANNOUNCED``: an ingress IP that no policy and no BGP Service advertisement covers,
  unanswered.

Without ARP for the IP in a capture the check is not checked (``diag collect --capture``).
"""
from __future__ import annotations

import json
import re
from typing import Any

from diag.analyze.intent import (
    Objects,
    State,
    Verdict,
    address,
    finding,
    net,
    not_checkable,
    ref_of,
    show,
)
from diag.analyze.intent_lbipam import service_labels
from diag.k8s.selectors import SelectorError, label_selector_matches
from diag.model import Check
from diag.words import counted

POLICY = ("cilium.io", "CiliumL2AnnouncementPolicy")
LEASE = ("coordination.k8s.io", "Lease")
SERVICE = ("", "Service")
NODE = ("", "Node")
LEASE_NAME = "cilium-l2announce-{namespace}-{name}"
UNANSWERED_MIN = 2


def _selects(selector, labels, absent=True) -> bool:
    try:
        return label_selector_matches(selector, labels, absent=absent)
    except SelectorError:
        return False


def _matches(patterns: list[str], nic: str) -> bool:
    if not patterns:
        return True
    for pattern in patterns:
        try:
            if re.search(pattern, nic):
                return True
        except re.error:
            continue
    return False


class Arp:
    """The captures' ARP about one IP."""

    def __init__(self, state: State, ip: str) -> None:
        rows = state.arp()
        self.requests = [r for r in rows if r.get("op") == "request" and r.get("target_ip") == ip
                         and not r.get("gratuitous")]
        self.unanswered = [r for r in self.requests if r.get("answered") is False]
        self.replies = [r for r in rows if r.get("op") == "reply" and r.get("sender_ip") == ip]
        self.macs = sorted({str(r["sender_mac"]).lower() for r in self.replies})

    @property
    def seen(self) -> bool:
        return bool(self.requests or self.replies)


def analyze(objects: Objects, state: State) -> tuple[list[Verdict], list[Check]]:
    name = "L2 announcements answer ARP where the Lease and policy say (Cilium)"
    if not objects.read(*POLICY):
        return ([], [not_checkable(name, objects, POLICY)]) if objects.refused(*POLICY) else \
            ([], [])
    policies = objects.rows("cilium_l2_policies")
    if not policies:
        return [], [Check(name, True, "no CiliumL2AnnouncementPolicy")]
    missing = not_checkable(name, objects, SERVICE, LEASE, NODE)
    if missing:
        return [], [missing]
    verdicts: list[Verdict] = []
    unknown: list[str] = []
    checked = 0
    config = objects.config()
    for policy in policies:
        for service in objects.rows("k8s_services"):
            if service["type"] != "LoadBalancer" or not _selects(
                    policy["service_selector"], service_labels(service)):
                continue
            ips = list(service["ingress_ips"] or []) if policy["load_balancer_ips"] else []
            ips += list(service["external_ips"] or []) if policy["external_ips"] else []
            for ip in ips:
                v = _one(objects, state, policy, service, str(ip), config)
                checked += 1
                if isinstance(v, Verdict):
                    verdicts.append(v)
                elif v:
                    unknown.append(v)
    verdicts += _not_covered(objects, state, policies)
    problems = [v for v in verdicts if v.finding.severity != "info"]
    if problems:
        return verdicts, [Check(name, False, "; ".join(v.finding.code for v in problems))]
    if unknown:
        return verdicts, [Check(name, None, needs="; ".join(dict.fromkeys(unknown)))]
    return verdicts, [Check(name, True, f"{counted(checked, 'announced IP')}: answered by "
                                        "the Lease holder on the announced segment")]


def _lease(objects: Objects, service: dict[str, Any]) -> dict[str, Any] | None:
    wanted = LEASE_NAME.format(namespace=service.get("namespace") or "default",
                               name=service["name"])
    return next((r for r in objects.rows("k8s_leases") if r["name"] == wanted), None)


def _one(objects: Objects, state: State, policy: dict, service: dict, ip: str,
         config: dict[str, dict]):
    arp = Arp(state, ip)
    lease = _lease(objects, service)
    holder = lease["holder"] if lease else None
    host = state.host(str(holder)) if holder else None
    holder_macs = {str(r["mac"]).lower() for r in state.links(host) if r.get("mac")} \
        if host else set()
    evidence_lease = [objects.evidence(lease, f"holderIdentity {holder}", "holderIdentity",
                                       role="state")] if lease else []
    flag = config.get("enable-l2-announcements")
    if config and (flag is None or str(flag["value"]).lower() != "true") and arp.unanswered \
            and not arp.replies:
        any_row = flag or next(iter(config.values()))
        fix = objects.patch(any_row, [{"op": "add" if flag is None else "replace",
                                       "path": "/data/enable-l2-announcements",
                                       "value": "true"}])
        return Verdict(finding(
            "CILIUM_FEATURE_DISABLED",
            f"{ip} ({ref_of(service)}): cilium-config turns L2 announcements off while "
            f"{ref_of(policy)} selects the Service; nobody answers ARP for it",
            ["objects", "pcap"],
            [objects.evidence(any_row, f"enable-l2-announcements: "
                              f"{flag['value'] if flag else '(absent: off)'}",
                              at=flag["pointer"] if flag else "/data"),
             objects.evidence(policy, f"serviceSelector {json.dumps(policy['service_selector'])}",
                              "serviceSelector")]
            + [state.frame_evidence(r, f"who-has {ip} tell {r['sender_ip']} (no reply)")
               for r in arp.unanswered[:2]],
            [fix, "kubectl -n kube-system rollout restart ds/cilium   # agents read it at start"],
            subject=ip),
            absorbs=(("ARP_UNANSWERED", ip),))
    if not arp.seen:
        return f"{ip}: no ARP for it in the captures (diag collect --capture 20s while it is asked)"
    if holder is None or host is None:
        return (f"{ip}: {'no Lease holder' if holder is None else f'the Lease holder {holder} is no collected host'}"
                " to compare the answers with")
    others = [m for m in arp.macs if m not in holder_macs]
    if others:
        return _stale(objects, state, policy, service, ip, lease, host, holder_macs, others,
                      arp, evidence_lease)
    stale_neigh = _stale_neighbour(state, ip, holder_macs) if arp.replies else []
    if stale_neigh:
        ev = evidence_lease + [state.frame_evidence(arp.replies[0], f"reply {ip} is-at "
                                                  f"{arp.replies[0]['sender_mac']} ({host})")]
        ev += [e for _, e in stale_neigh]
        return Verdict(finding(
            "ARP_STALE_AFTER_FAILOVER",
            f"{ip}: the Lease holder {holder} answers ARP for it, but "
            + ", ".join(f"{r['host']} still resolves it to {r['lladdr']}" for r, _ in stale_neigh)
            + " (another node's MAC): its traffic goes to the old announcer",
            ["objects", "pcap", "neigh"], ev,
            [f"{r['host']}: ip neigh del {ip} dev {r['dev']}   # re-resolve now"
             for r, _ in stale_neigh] + [f"# make {holder} announce itself: arping -U -c 2 -I "
                                         f"<its NIC on {ip}'s subnet> {ip} on {holder}"],
            hosts=[r["host"] for r, _ in stale_neigh] + [host], subject=ip))
    # the interfaces: the holder's NIC on the IP's segment against the policy's patterns
    nic_row = _nic_on_subnet(state, host, ip)
    patterns = list(policy["interfaces"] or [])
    if nic_row is None:
        return f"{ip}: the Lease holder {holder}'s addresses were not collected"
    nic = str(nic_row["ifname"])
    if _matches(patterns, nic):
        return None             # an unanswered IP here is a state fault: ARP_UNANSWERED says it
    matched = [str(r["ifname"]) for r in state.links(host) if _matches(patterns, str(r["ifname"]))]
    ev = [objects.evidence(policy, f"interfaces {json.dumps(patterns)}", "interfaces")]
    ev += evidence_lease
    ev.append(state.address_evidence(nic_row, f"{host} {nic} {nic_row['address']}/"
                                              f"{nic_row['prefixlen']} holds {ip}'s subnet"))
    link = next((r for r in state.links(host) if r["ifname"] == nic), None)
    if link:
        ev.append(state.link_evidence(link, f"{host} {nic} (matches none of "
                                            f"{', '.join(patterns)})"))
    fix = [objects.patch(policy, [{"op": "replace", "path": "interfaces",
                                   "value": [f"^{re.escape(nic)}$"]}])]
    if arp.replies and any(str(r["sender_mac"]).lower() in holder_macs for r in arp.replies):
        return Verdict(finding(
            "INTENT_NOT_APPLIED",
            f"{ip}: {ref_of(policy)}'s interfaces {show(patterns)} do not match {holder}'s {nic} "
            f"(the NIC on {ip}'s subnet), but {holder} still answers ARP for it there: the agent "
            "has not applied the change; when it does, nobody answers on that segment",
            ["objects", "pcap", "ip-link"], ev + [state.frame_evidence(
                arp.replies[0], f"reply {ip} is-at {arp.replies[0]['sender_mac']}")], fix,
            hosts=[host], subject=ip))
    if len(arp.unanswered) < UNANSWERED_MIN:
        return f"{ip}: too few ARP requests for it in the captures to call it unanswered"
    askers = sorted({str(r["sender_ip"]) for r in arp.unanswered})
    ev += [state.frame_evidence(r, f"who-has {ip} tell {r['sender_ip']} (no reply)")
           for r in arp.unanswered[:2]]
    return Verdict(finding(
        "L2_ANNOUNCE_INTERFACE_MISMATCH",
        f"{ip} ({ref_of(service)}): {ref_of(policy)} announces on interfaces matching "
        f"{', '.join(patterns)} ({', '.join(matched) or 'none'} on the Lease holder {holder}), "
        f"not on {nic}, the NIC on {ip}'s subnet: "
        f"{counted(len(arp.unanswered), 'ARP request')} from {', '.join(askers)} got no reply",
        ["objects", "pcap", "ip-link", "ip-addr"], ev, fix, hosts=[host], subject=ip),
        absorbs=(("ARP_UNANSWERED", ip),))


def _stale(objects, state, policy, service, ip, lease, host, holder_macs, others, arp,
           evidence_lease) -> Verdict:
    holder = lease["holder"]
    owners = {m: state.mac_owner(m) for m in others}
    named = [f"{m} ({owners[m][0]} {owners[m][1]})" if owners[m] else m for m in others]
    replies = [r for r in arp.replies if str(r["sender_mac"]).lower() in others]
    ev = evidence_lease + [state.frame_evidence(r, f"reply {ip} is-at {r['sender_mac']}")
                           for r in replies[:2]]
    for mac in others:
        if owners[mac]:
            link = next(r for r in state.links(owners[mac][0]) if r["ifname"] == owners[mac][1])
            ev.append(state.link_evidence(link, f"{owners[mac][0]} {owners[mac][1]} "
                                                f"link/ether {mac}"))
    stale_hosts = [owners[m][0] for m in others if owners[m]]
    # the intent: the policy that announces the Service (on the holder alone)
    ev.insert(0, objects.evidence(policy, f"serviceSelector {show(policy['service_selector'])}"
                                          f" announces {ref_of(service)} from one node, the "
                                          "Lease holder", "serviceSelector"))
    # the agent on the old announcer is what still answers: restart it (its pod), and, if an
    # address was left on the NIC, remove it on that node
    fix = [line for m in others for h in ([owners[m][0]] if owners[m] else [])
           for line in ((f"kubectl -n kube-system delete pod -l k8s-app=cilium "
                         f"--field-selector spec.nodeName={h}"),
                        (f"{h}: ip addr del {ip}/32 dev {owners[m][1]}   # if the address "
                         "is there"))]
    holder_answers = any(str(r["sender_mac"]).lower() in holder_macs for r in arp.replies)
    if holder_answers:
        own = next(r for r in arp.replies if str(r["sender_mac"]).lower() in holder_macs)
        ev.append(state.frame_evidence(own, f"reply {ip} is-at {own['sender_mac']} ({holder}, "
                                          "the Lease holder)"))
        return Verdict(finding(
            "ARP_STALE_AFTER_FAILOVER",
            f"{ip}: its L2 announcement moved to {holder} (the Lease holder, which answers), "
            f"but {', '.join(named)} still answers ARP for it: two MACs for one IP, the "
            "segment's caches flip between them",
            ["objects", "pcap", "ip-link"], ev, fix, severity="error",
            reason="the old announcer answers next to the Lease holder (two responders)",
            hosts=[host] + stale_hosts, subject=ip),
            absorbs=(("ARP_MULTIPLE_RESPONDERS", ip),), effects=(("ARP_UNANSWERED", ip),))
    return Verdict(finding(
        "INTENT_NOT_APPLIED",
        f"{ip}: the Lease {lease['namespace']}/{lease['name']} names {holder}, but "
        f"{', '.join(named)} answers ARP for it and {holder} does not: the announcement has "
        "not moved with the Lease (the agents have not acted on it)",
        ["objects", "pcap", "ip-link"], ev,
        [(f"# check the cilium agent on {holder} (kubectl -n kube-system logs ds/cilium) "
          "and the Lease's renewTime; when it announces, stop the old announcer")] + fix,
        hosts=[host] + stale_hosts, subject=ip),
        absorbs=(("ARP_MULTIPLE_RESPONDERS", ip),))


def _stale_neighbour(state: State, ip: str, holder_macs: set[str]):
    out = []
    for r in state.rows("neighbors"):
        if r.get("dst") == ip and r.get("lladdr") and str(r["lladdr"]).lower() not in holder_macs \
                and r.get("state") not in ("FAILED", "INCOMPLETE"):
            same = [x for x in state.rows("neighbors") if x["host"] == r["host"]
                    and x["source"] == r["source"]]
            from diag.model import Evidence

            out.append((r, Evidence(r["host"], state.file(r["host"], r["source"]),
                                    f"/{next(i for i, x in enumerate(same) if x is r)}",
                                    f"{ip} lladdr {r['lladdr']} {r.get('state')}")))
    return out


def _nic_on_subnet(state: State, host: str, ip: str) -> dict[str, Any] | None:
    target = address(ip)
    for r in state.addresses(host):
        network = net(f"{r['address']}/{r['prefixlen']}") if r.get("prefixlen") is not None \
            else None
        if network is not None and target is not None and network.prefixlen < 32 and \
                target in network:
            return r
    return None


def _not_covered(objects: Objects, state: State, policies: list[dict]) -> list[Verdict]:
    """Ingress IPs no L2 policy and no BGP Service advertisement covers, and unanswered."""
    out = []
    adverts = objects.rows("cilium_bgp_advertisements")
    for service in objects.rows("k8s_services"):
        if service["type"] != "LoadBalancer" or not service["ingress_ips"]:
            continue
        labels = service_labels(service)
        if any(_selects(p["service_selector"], labels) and p["load_balancer_ips"]
               for p in policies):
            continue
        if any(a["type"] == "Service" and "LoadBalancerIP" in (a["service_addresses"] or [])
               and _selects(a["selector"], labels, absent=False) for a in adverts):
            continue
        for ip in service["ingress_ips"]:
            arp = Arp(state, str(ip))
            if len(arp.unanswered) < UNANSWERED_MIN or arp.replies:
                continue
            held = [r for r in state.paths() if str(r["prefix"]) == f"{ip}/32"]
            if held:
                continue
            ev = [objects.evidence(service, f"ingress {ip}", "status", "loadBalancer",
                                   "ingress", list(service["ingress_ips"]).index(ip),
                                   role="state", at="")]
            ev += [objects.evidence(p, f"serviceSelector {json.dumps(p['service_selector'])}",
                                    "serviceSelector") for p in policies[:2]]
            ev += [state.frame_evidence(r, f"who-has {ip} tell {r['sender_ip']} (no reply)")
                   for r in arp.unanswered[:2]]
            # the object change: label the Service as the first policy selects (the policy
            # itself may announce other Services: widening it is the person's call)
            wanted = next(((p["service_selector"] or {}).get("matchLabels") for p in policies
                           if (p["service_selector"] or {}).get("matchLabels")), None)
            label = [f"kubectl label service {service['name']} -n "
                     f"{service.get('namespace') or 'default'} "
                     + " ".join(f"{k}={v}" for k, v in wanted.items())] if wanted else []
            out.append(Verdict(finding(
                "LB_IP_NOT_ANNOUNCED",
                f"{ip} ({ref_of(service)}): no CiliumL2AnnouncementPolicy and no BGP Service "
                f"advertisement selects the Service, so nobody announces it; "
                f"{counted(len(arp.unanswered), 'ARP request')} got no reply",
                ["objects", "pcap"], ev,
                label + [(f"# or select {ref_of(service)} (labels "
                          f"{json.dumps(service['labels'] or {})}) in an L2 announcement "
                          "policy's serviceSelector or a BGP Service advertisement")],
                subject=str(ip)),
                absorbs=(("ARP_UNANSWERED", str(ip)),)))
    return out
