"""MetalLB's objects against the state: which pools its advertisements announce, and its BGP
peers' AS.

Contract: :func:`analyze(objects, state) -> (verdicts, checks)` (:mod:`diag.analyze.intent`).
An L2Advertisement or BGPAdvertisement announces the IPAddressPools it names
(``ipAddressPools``) or whose labels one of its ``ipAddressPoolSelectors`` matches; with
neither, every pool. Verdicts:

- ``LB_IP_NOT_ANNOUNCED``: a LoadBalancer Service's IP in a pool no advertisement announces,
  while the captures show ARP requests for it unanswered and no BGP speaker holds a route to it;
- ``BGP_BAD_PEER_AS``: a BGPPeer's ``peerASN`` differs from the AS the peer runs (its own
  daemon, its OPEN in a capture) and the sessions to it are down; ``INTENT_NOT_APPLIED`` when
  they are Established (the speakers still run the old configuration).
"""
from __future__ import annotations

import ipaddress
import json
from typing import Any

from diag.analyze.intent import Objects, State, Verdict, finding, not_checkable, ref_of
from diag.analyze.intent_l2 import Arp
from diag.k8s.selectors import SelectorError, label_selector_matches
from diag.model import Check
from diag.words import counted

POOL = ("metallb.io", "IPAddressPool")


def _selects(selector, labels) -> bool:
    try:
        return label_selector_matches(selector, labels, absent=False)
    except SelectorError:
        return False


def _contains(pool: dict[str, Any], ip: str) -> bool:
    target = ipaddress.ip_address(ip)
    for entry in pool["addresses"] or []:
        try:
            if "-" in entry:
                start, stop = (ipaddress.ip_address(x.strip()) for x in entry.split("-", 1))
                if start <= target <= stop:
                    return True
            elif target in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def announced_pools(objects: Objects, table: str) -> dict[str, list[dict]]:
    """pool name -> the advertisements of ``table`` that announce it."""
    pools = objects.rows("metallb_ip_pools")
    out: dict[str, list[dict]] = {p["name"]: [] for p in pools}
    for advert in objects.rows(table):
        names = list(advert["ip_address_pools"] or [])
        selectors = list(advert["ip_address_pool_selectors"] or [])
        for p in pools:
            if (not names and not selectors) or p["name"] in names or any(
                    _selects(s, p.get("labels") or {}) for s in selectors):
                out[p["name"]].append(advert)
    return out


def analyze(objects: Objects, state: State) -> tuple[list[Verdict], list[Check]]:
    if not objects.read(*POOL):
        if objects.refused(*POOL):
            return [], [not_checkable("MetalLB announces the pools its Services use", objects,
                                      POOL)]
        return [], []
    verdicts: list[Verdict] = []
    checks: list[Check] = []
    v, c = _coverage(objects, state)
    verdicts += v
    checks += c
    v, c = _peer_as(objects, state)
    verdicts += v
    checks += c
    return verdicts, checks


def _coverage(objects: Objects, state: State) -> tuple[list[Verdict], list[Check]]:
    name = "MetalLB announces the pools its Services use"
    pools = objects.rows("metallb_ip_pools")
    l2 = announced_pools(objects, "metallb_l2_advertisements")
    bgp = announced_pools(objects, "metallb_bgp_advertisements")
    verdicts, unknown = [], []
    for service in objects.rows("k8s_services"):
        if service["type"] != "LoadBalancer":
            continue
        for ip in service["ingress_ips"] or []:
            pool = next((p for p in pools if _contains(p, str(ip))), None)
            if pool is None or l2.get(pool["name"]) or bgp.get(pool["name"]):
                continue
            arp = Arp(state, str(ip))
            held = [r for r in state.paths() if str(r["prefix"]) == f"{ip}/32"]
            if held or arp.replies:
                continue
            if len(arp.unanswered) < 2:
                unknown.append(f"{ip}: pool {pool['name']} is announced by no advertisement; "
                               "no ARP for it in the captures to show the effect")
                continue
            adverts = objects.rows("metallb_l2_advertisements") + \
                objects.rows("metallb_bgp_advertisements")
            ev = [objects.evidence(service, f"ingress {ip}", "status", "loadBalancer", "ingress",
                                   list(service["ingress_ips"]).index(ip), role="state", at=""),
                  objects.evidence(pool, f"addresses {json.dumps(pool['addresses'])} labels "
                                   f"{json.dumps(pool.get('labels') or {})}", "addresses")]
            ev += [objects.evidence(a, f"ipAddressPools {json.dumps(a['ip_address_pools'])} "
                                    f"ipAddressPoolSelectors "
                                    f"{json.dumps(a['ip_address_pool_selectors'])}")
                   for a in adverts[:3]]
            ev += [state.frame_evidence(r, f"who-has {ip} tell {r['sender_ip']} (no reply)")
                   for r in arp.unanswered[:2]]
            fix = [objects.patch(a, [{"op": "add", "path": "ipAddressPools/-",
                                      "value": pool["name"]}]) for a in adverts[:1]] or \
                [f"# add an L2Advertisement (or BGPAdvertisement) naming {pool['name']}"]
            verdicts.append(Verdict(finding(
                "LB_IP_NOT_ANNOUNCED",
                f"{ip} ({ref_of(service)}): its IPAddressPool {pool['name']} is announced by no "
                f"L2Advertisement or BGPAdvertisement (their pools and selectors name others); "
                f"{counted(len(arp.unanswered), 'ARP request')} for it got no reply",
                ["objects", "pcap"], ev, fix, subject=str(ip)),
                absorbs=(("ARP_UNANSWERED", str(ip)),)))
    if verdicts:
        return verdicts, [Check(name, False, "; ".join(v.finding.subject for v in verdicts))]
    if unknown:
        return [], [Check(name, None, needs="; ".join(unknown))]
    return [], [Check(name, True, f"{counted(len(pools), 'pool')}")]


def _peer_as(objects: Objects, state: State) -> tuple[list[Verdict], list[Check]]:
    name = "MetalLB BGPPeers' peerASN is the AS the peer runs"
    verdicts, checked = [], 0
    for p in objects.rows("metallb_bgp_peers"):
        if not p["peer_address"] or not p["peer_asn"]:
            continue
        real, proof = state.real_as(str(p["peer_address"]))
        if real is None:
            continue
        checked += 1
        if real == int(p["peer_asn"]):
            continue
        sessions = [r for r in state.rows("bgp_peers") if r["peer"] == p["peer_address"]
                    and r["host"] in state.host_of_node.values()]
        if not sessions:
            continue
        ev = [objects.evidence(p, f"peerAddress {p['peer_address']} peerASN {p['peer_asn']}",
                               "peerASN")] + proof
        fix = [objects.patch(p, [{"op": "replace", "path": "peerASN", "value": real}])]
        hosts = sorted({r["host"] for r in sessions})
        up = [r for r in sessions if r.get("state") == "ESTABLISHED"]
        code = "INTENT_NOT_APPLIED" if up else "BGP_BAD_PEER_AS"
        summary = (f"{ref_of(p)} says {p['peer_address']} is AS {p['peer_asn']}, but it runs AS "
                   f"{real}" + (": the speakers still peer with the old configuration" if up
                                else f"; the sessions from {', '.join(hosts)} are down"))
        tokens = hosts + [str(p["peer_address"])]
        verdicts.append(Verdict(finding(code, summary, ["objects", "config", "bgp"],
                                        ev + [state.session_evidence(sessions[0])], fix,
                                        hosts=hosts, subject=" ".join(tokens)),
                                absorbs=() if up else tuple(
                                    (c, t) for t in tokens for c in
                                    ("BGP_BAD_PEER_AS", "BGP_SESSION_NOT_ESTABLISHED"))))
    if verdicts:
        return verdicts, [Check(name, False, "; ".join(v.finding.code for v in verdicts))]
    return ([], [Check(name, True, f"{counted(checked, 'peer')} checked")]) if checked else \
        ([], [])
