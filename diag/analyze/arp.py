"""ARP analyzers over the captures: requests nobody answers, and addresses several MACs answer for.

Contract: :func:`analyze(tables, model) -> (findings, checks)`; pure, no I/O. Needs the ``arp``
table (decoded captures); without it both checks are "not checked" (the collect option that
supplies it: ``diag collect --capture 20s``).

- ``ARP_MULTIPLE_RESPONDERS``: replies for one sender IP come from two or more MACs in one
  capture. The MACs are mapped to hosts and NICs through the collected ``ip link``; the fix keeps
  one announcer.
- ``ARP_UNANSWERED``: requests for an IP that the one ARP rule (:mod:`diag.decode.arp`, applied by
  the facts stage as the ``arp`` table's ``answered`` column) calls unanswered, at least
  :data:`UNANSWERED_MIN` of them. ``error`` when no reply from the IP follows the last of them;
  ``info`` when replies come later in the capture (the IP was answered again before the capture
  ended), saying so. Neighbour entries
  INCOMPLETE/FAILED for the IP on the asking host support it (source ``neigh``).
"""
from __future__ import annotations

from diag.analyze.catalog import default_severity
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
    arp = arp[arp["tunnel_depth"].fillna(0) == 0] if "tunnel_depth" in arp else arp
    for host, rows in arp.groupby("host", sort=True):
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
        for ip, group in requests.groupby("target_ip", sort=True):
            if bool(group["gratuitous"].fillna(False).any()) and len(group) == \
                    int(group["gratuitous"].fillna(False).sum()):
                continue
            # the one ARP rule decided each request (diag.decode.arp, the ``answered`` column)
            unanswered = group[group["answered"].map(lambda v: v is False)]
            if len(unanswered) < UNANSWERED_MIN:
                continue
            answers = replies[(replies["sender_ip"] == ip)
                              & (replies["ts"] > unanswered["ts"].max())]
            asker = str(group.iloc[0]["sender_ip"])
            ev = [Evidence(str(host), file, f"frame {int(r.frame)}",
                           f"who-has {ip} tell {r.sender_ip}", int(r.frame))
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
            healed = not answers.empty
            if healed:
                ev.append(Evidence(str(host), file, f"frame {int(answers.iloc[0]['frame'])}",
                                   f"first reply {ip} is-at {answers.iloc[0]['sender_mac']}",
                                   int(answers.iloc[0]["frame"])))
            findings.append(Finding(
                "ARP_UNANSWERED", "info" if healed else default_severity("ARP_UNANSWERED"),
                f"{ip}: {len(unanswered)} ARP request(s) from {asker} got no reply"
                + (" before it was answered later in the capture" if healed else ""),
                Confidence(tuple(sources)), tuple(ev),
                (f"# find who should hold {ip}: ip -br addr | grep -w {ip} on the candidate "
                 "hosts; check the LoadBalancer announcer (L2 announcement lease) and that it "
                 "answers on this segment",),
                severity_reason="replies started before the capture ended" if healed else "",
                hosts=(str(host),), subject=str(ip)))
    findings = _merge_by_address(findings)
    checks = [Check("ARP answered by exactly one MAC", not any(
        f.code == "ARP_MULTIPLE_RESPONDERS" for f in findings)),
        Check("ARP requests answered", not any(
            f.code == "ARP_UNANSWERED" and f.severity == "error" for f in findings))]
    return findings, checks


def _merge_by_address(findings: list[Finding]) -> list[Finding]:
    """Every host capturing on the segment sees the same broadcast requests: one finding per
    (code, address), its evidence and hosts from every capture, the worst severity."""
    from dataclasses import replace

    from diag.model import severity_rank

    merged: dict[tuple[str, str], Finding] = {}
    for f in findings:
        key = (f.code, f.subject)
        if key not in merged:
            merged[key] = f
            continue
        old = merged[key]
        worst = old if severity_rank(old.severity) >= severity_rank(f.severity) else f
        merged[key] = replace(
            worst, hosts=tuple(dict.fromkeys(old.hosts + f.hosts)),
            evidence=tuple(dict.fromkeys(old.evidence + f.evidence)),
            confidence=Confidence(tuple(sorted(set(old.confidence.sources)
                                               | set(f.confidence.sources)))))
    out = []
    for f in merged.values():
        captured = list(dict.fromkeys(e.host for e in f.evidence if e.frame))
        out.append(replace(f, summary=f"{f.summary} (captures of {', '.join(captured)})"))
    return out
