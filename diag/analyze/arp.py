"""ARP analyzers over the captures: requests nobody answers, and addresses several MACs answer for.

Contract: :func:`analyze(tables, model) -> (findings, checks)`; pure, no I/O. Needs the ``arp``
table (decoded captures); without it both checks are "not checked" (the collect option that
supplies it: ``diag collect --capture 20s``).

- ``ARP_MULTIPLE_RESPONDERS``: replies for one sender IP come from two or more MACs in one
  capture. The MACs are mapped to hosts and NICs through the collected ``ip link``; the fix keeps
  one announcer.
- ``ARP_UNANSWERED``: requests for an IP that the one ARP rule (:mod:`diag.decode.arp`, applied by
  the facts stage as the ``arp`` table's ``answered``/``copy_of``/``sees_replies``/``blind`` columns) calls
  unanswered, at least :data:`UNANSWERED_MIN` distinct requests (copies of one request — other
  interfaces, encapsulated on the underlay — count once, tunnelled or not). ``error`` when no
  reply from the IP to the asker follows the last of them; ``info`` when replies come later in
  the capture (the IP was answered again before the capture ended), saying so. When the capture
  point could not see replies to the asker (the rule's ``sees_replies`` False: only the
  encapsulated side, a request that came in from another host, one direction only) the finding
  is a ``warning``; when it cannot tell (``sees_replies`` None) the severity stays; either way
  the confidence carries the rule's ``blind`` reason as a limit (one level lower). Several captures of one segment
  make one finding per address; the capture that could see the replies decides. Neighbour
  entries INCOMPLETE/FAILED for the IP on the asking host support it (source ``neigh``).
"""
from __future__ import annotations

from diag.analyze.catalog import default_severity
from diag.words import counted
from diag.bundle import OutputIndex
from diag.model import Check, Confidence, Evidence, Finding

UNANSWERED_MIN = 3        # fewer unanswered requests are ordinary resolution races


def _mac_owners(tables) -> dict[str, tuple[str, str]]:
    links = tables.get("interfaces")
    if links is None or links.empty:
        return {}
    return {str(r.mac).lower(): (r.host, r.ifname) for r in links.itertuples(index=False)
            if r.mac}


def analyze(tables, model, outputs: OutputIndex | None = None
            ) -> tuple[list[Finding], list[Check]]:
    arp = tables.get("arp")
    if arp is None or arp.empty:
        needs = "ARP packets in a capture: diag collect --capture 20s"
        return [], [Check("ARP answered by exactly one MAC", None, needs=needs)]
    findings: list[Finding] = []
    outputs = outputs if outputs is not None else OutputIndex()
    owners = _mac_owners(tables)
    carried = _encapsulation(tables)
    for host, rows in arp.groupby("host", sort=True):
        bundled = outputs.capture(str(host)) is not None     # a bundle's capture, not a bare file
        file = outputs.capture(str(host)) or "capture"
        replies = rows[rows["op"] == "reply"]
        for ip, group in replies.groupby("sender_ip", sort=True):
            macs = sorted({str(m).lower() for m in group["sender_mac"]})
            if len(macs) < 2:
                continue
            ev = [Evidence(str(host), file, f"frame {int(r.frame)}",
                           f"reply {ip} is-at {r.sender_mac}", int(r.frame))
                  for r in group.drop_duplicates("sender_mac").itertuples(index=False)]
            named = [f"{m} ({owners[m][0]} {owners[m][1]})" if m in owners else m for m in macs]
            fix = [f"# keep one announcer for {ip}; on the others remove it, e.g.:"]
            fix += [f"{owners[m][0]}: ip addr del {ip}/32 dev {owners[m][1]}"
                    for m in macs[1:] if m in owners]
            findings.append(Finding(
                "ARP_MULTIPLE_RESPONDERS", default_severity("ARP_MULTIPLE_RESPONDERS"),
                f"{ip}: {len(macs)} MACs answer ARP for it ({', '.join(named)})",
                Confidence(("pcap", "ip-link") if any(m in owners for m in macs) else ("pcap",)),
                tuple(ev), tuple(fix), hosts=tuple(sorted({owners[m][0] for m in macs
                                                           if m in owners})), subject=str(ip)))
        requests = rows[rows["op"] == "request"]
        if "copy_of" in requests:       # a copy of a request is that request, not a new one
            requests = requests[requests["copy_of"].isna()]
        for ip, group in requests.groupby("target_ip", sort=True):
            if bool(group["gratuitous"].fillna(False).any()) and len(group) == \
                    int(group["gratuitous"].fillna(False).sum()):
                continue
            # the one ARP rule decided each request (diag.decode.arp, the ``answered`` column)
            unanswered = group[group["answered"].map(lambda v: v is False)]
            if len(unanswered) < UNANSWERED_MIN:
                continue
            askers = set(unanswered["sender_ip"].astype(str))
            answer = _answered_later(group, unanswered, replies)
            blind, unseen = _blind(unanswered)
            ev = [Evidence(str(host), file, f"frame {int(r.frame)}",
                           f"who-has {ip} tell {r.sender_ip}"
                           + carried.get((str(host), int(r.frame)), ""), int(r.frame))
                  for r in unanswered.head(2).itertuples(index=False)]
            sources = ["pcap"]
            neigh = tables.get("neighbors")
            if neigh is not None and not neigh.empty:
                bad = neigh[(neigh["dst"] == ip) & neigh["state"].isin(["INCOMPLETE", "FAILED"])]
                for label, r in zip(bad.index[:1], bad.head(1).itertuples(index=False)):
                    sources.append("neigh")
                    # JSON pointer: the entry's place in that host's `ip -j neigh` list
                    same = neigh[(neigh["host"] == r.host) & (neigh["source"] == r.source)]
                    ev.append(Evidence(r.host, outputs.path(r.host, str(r.source)),
                                       f"/{list(same.index).index(label)}",
                                       f"{ip} dev {r.dev} {r.state}"))
            healed = answer is not None
            if healed:
                ev.append(Evidence(str(host), file, f"frame {int(answer.frame)}",
                                   f"first reply {ip} is-at {answer.sender_mac}",
                                   int(answer.frame)))
            severity, reason = default_severity("ARP_UNANSWERED"), ""
            if healed:
                severity, reason = "info", "replies started before the capture ended"
            elif unseen:
                severity, reason = "warning", (
                    f"not verified: {host}'s capture may not see replies to the asker (the "
                    "confidence's limit says why)" if bundled else "not verified: the capture "
                    "may not see replies to the asker (the confidence's limit says why)")
            findings.append(Finding(
                "ARP_UNANSWERED", severity,
                f"{ip}: {counted(len(unanswered), 'ARP request')} from {', '.join(sorted(askers))} got "
                "no reply" + (" before it was answered later in the capture" if healed else ""),
                Confidence(tuple(sources), ((f"{host}: {blind}" if bundled else blind),)
                           if blind else ()), tuple(ev),
                (f"# find who should hold {ip}: ip -br addr | grep -w {ip} on the candidate "
                 "hosts; check the LoadBalancer announcer (L2 announcement lease) and that it "
                 "answers on this segment",),
                severity_reason=reason, hosts=(str(host),), subject=str(ip)))
    findings = _merge_by_address(findings, bare=not any(
        outputs.capture(str(h)) for h in arp["host"].unique()))
    checks = [Check("ARP answered by exactly one MAC", not any(
        f.code == "ARP_MULTIPLE_RESPONDERS" for f in findings)),
        Check("ARP requests answered", not any(
            f.code == "ARP_UNANSWERED" and f.severity == "error" for f in findings))]
    return findings, checks


def _segment(rows):
    """Which L2 question a request asks on: its VLAN, or "tunnel" when it was encapsulated."""
    depth = rows["tunnel_depth"].fillna(0) if "tunnel_depth" in rows else 0
    vlan = rows["vlan"].astype(object).where(rows["vlan"].notna(), None) \
        if "vlan" in rows else None
    return [("tunnel" if d else v) for d, v in zip(
        depth if not isinstance(depth, int) else [0] * len(rows),
        vlan if vlan is not None else [None] * len(rows))]


def _answered_later(group, unanswered, replies):
    """The reply that answered the target again after the unanswered requests — for every asker
    (and VLAN) that went unanswered, a later request of the same asker that the rule calls
    answered — or None (the first such reply row, for the evidence)."""
    segments = dict(zip(group.index, _segment(group)))
    first = None
    for key in {(a, segments[i]) for i, a in zip(unanswered.index, unanswered["sender_ip"])}:
        mine = [i for i in group.index if (group.at[i, "sender_ip"], segments[i]) == key]
        last = max(unanswered.loc[[i for i in unanswered.index if i in mine], "ts"])
        later = group.loc[mine]
        later = later[(later["ts"] > last) & later["answered"].map(lambda v: v is True)]
        if later.empty:
            return None
        frame = later.iloc[0]["reply_frame"]
        hit = replies[replies["frame"] == frame]
        if not hit.empty and (first is None or int(hit.iloc[0]["frame"]) < int(first.frame)):
            first = next(hit.itertuples(index=False))
    return first


def _blind(unanswered) -> tuple[str | None, bool]:
    """(why this capture might not see the replies, whether it could not see any of them) from
    the rule's ``blind``/``sees_replies`` columns; (None, False) when at least one request was
    seen from a point that would see its reply."""
    if "blind" not in unanswered or "sees_replies" not in unanswered:
        return None, False
    sees = [v for v in unanswered["sees_replies"]]
    if any(v is True for v in sees):
        return None, False
    reasons = [r for r in unanswered["blind"] if isinstance(r, str) and r]
    return (reasons[0] if reasons else None), all(v is False for v in sees)


def _encapsulation(tables) -> dict[tuple[str, int], str]:
    """(host, frame) -> how an encapsulated ARP frame was carried (" in VXLAN VNI 100
    198.51.100.11 -> 198.51.100.12"): the outermost tunnel's endpoints, the innermost VNI."""
    tunnels = tables.get("wire_tunnels")
    if tunnels is None or tunnels.empty:
        return {}
    out: dict[tuple[str, int], str] = {}
    for (host, frame), rows in tunnels.sort_values("depth").groupby(["host", "frame"]):
        outer, inner = rows.iloc[0], rows.iloc[-1]
        vni = "" if inner["vni"] != inner["vni"] or inner["vni"] is None \
            else f" VNI {int(inner['vni'])}"
        out[(str(host), int(frame))] = (f" (in {str(inner['type']).upper()}{vni} "
                                        f"{outer['outer_src']} -> {outer['outer_dst']})")
    return out


def _merge_by_address(findings: list[Finding], bare: bool = False) -> list[Finding]:
    """Every host capturing on the segment sees the same broadcast requests: one finding per
    (code, address), its evidence and hosts from every capture. The captures that could see the
    replies decide (their worst severity, no limit); only when none could does the finding keep
    the limits of all."""
    from dataclasses import replace

    from diag.model import severity_rank

    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.code, f.subject), []).append(f)
    out = []
    for group in groups.values():
        seeing = [f for f in group if not f.confidence.limits] or group
        worst = max(seeing, key=lambda f: severity_rank(f.severity))
        limits = () if len(seeing) < len(group) or not worst.confidence.limits else tuple(
            dict.fromkeys(x for f in group for x in f.confidence.limits))
        sources = tuple(sorted({s for f in group for s in f.confidence.sources}))
        evidence = tuple(dict.fromkeys(e for f in [worst] + group for e in f.evidence))
        captured = list(dict.fromkeys(e.host for e in evidence if e.frame))
        where = "" if bare else (f" (capture of {captured[0]})" if len(captured) == 1 else
                                 f" (captures of {', '.join(captured)})")
        out.append(replace(
            worst, hosts=tuple(dict.fromkeys(h for f in [worst] + group for h in f.hosts)),
            evidence=evidence, confidence=Confidence(sources, limits),
            summary=worst.summary + where))
    return out
