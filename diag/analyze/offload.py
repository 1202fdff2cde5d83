"""Checksum errors in captures: offload artefact (by design) or real corruption.

Contract: :func:`analyze(tables, model) -> (findings, checks)`; pure, no I/O. Reads ``checksums``
(a bounded sample of verified TCP/UDP checksums per capture) joined with ``packets`` (direction,
SLL packet type, addresses). A host capturing the packets it sends sees their checksums before
the NIC or veth fills them in (TX checksum offload): ``tcpdump -vv`` prints them "incorrect",
and that is by design. A packet is "sent by the capturing host" when the capture says so
(SLL/SLL2 packet type ``outgoing``, pcapng direction ``out``) or its source address is one of the
capturing host's own (the cluster model). Bad checksums on packets that arrived from another host
are named too, with what explains them: virtual links (veth, namespaces and containers on one
machine) never fill checksums in, so they are expected there; arriving by a physical NIC they
point at corruption on the path or a sender's VXLAN device offloading the inner checksum (the
fix the Kubernetes/Flannel reports settled on: ``ethtool -K DEV tx off`` on that device). The
catalogue has no code for either (packets alone cannot tell a veth from a NIC): the result is
a passed check whose detail carries the explanation, so nobody chases "incorrect" checksums.
"""
from __future__ import annotations

from diag.model import Check, Finding

CHECK = "transport checksums (offload on the capturing host explains bad ones)"


def _own_addresses(model, host: str) -> set[str]:
    if model is None or host not in getattr(model, "hosts", {}):
        return set()
    info = model.hosts[host]
    node_ip = getattr(getattr(info, "node_ip", None), "value", None)
    own = {str(a) for a in (node_ip, *getattr(info, "peering_ips", ())) if a}
    return own


def analyze(tables, model) -> tuple[list[Finding], list[Check]]:
    sums = tables.get("checksums")
    if sums is None or sums.empty:
        return [], [Check(CHECK, None, needs="TCP/UDP packets in a capture: diag collect "
                          "--capture 20s")]
    packets = tables.get("packets")
    bad = sums[~sums["ok"].astype(bool)]
    if bad.empty:
        return [], [Check(CHECK, True, f"{len(sums)} checksums verified, all correct")]
    cols = ["host", "frame", "src", "direction", "pkttype"]
    joined = bad.merge(packets[[c for c in cols if c in packets.columns]],
                       on=["host", "frame"], how="left")
    sent, received, unknown = [], [], []
    for r in joined.itertuples(index=False):
        own = _own_addresses(model, r.host)
        if str(getattr(r, "pkttype", "")) == "outgoing" or str(
                getattr(r, "direction", "")) == "out" or str(r.src) in own:
            sent.append(r)
        elif own or str(getattr(r, "direction", "")) == "in" or str(
                getattr(r, "pkttype", "")) in ("host", "broadcast", "multicast"):
            received.append(r)
        else:
            unknown.append(r)               # a bare capture: who captured it is not known
    parts = [f"{len(bad)} of {len(sums)} TCP/UDP checksums verified are 'incorrect'"]
    if sent:
        parts.append(f"{len(sent)} on packets the capturing host sent itself: TX checksum "
                     "offload fills them in after the capture point (by design, not corruption)")
    if unknown:
        parts.append(f"{len(unknown)} from {_sources(unknown)}: by design if the capture was "
                     "taken on that sender (offload), which a bare capture cannot tell")
    if received:
        parts.append(f"{len(received)} arrived from other hosts ({_sources(received)}, e.g. "
                     f"{received[0].host} frame {int(received[0].frame)}): expected where they "
                     "crossed only virtual links (veth: containers on one machine never fill "
                     "checksums in); by a physical NIC suspect corruption on the path or the "
                     "sender's vxlan device offloading the inner checksum (`ethtool -K DEV tx "
                     "off` there)")
    return [], [Check(CHECK, True, "; ".join(parts))]


def _sources(rows: list) -> str:
    sources = sorted({str(r.src) for r in rows})
    return ", ".join(sources[:5]) + (f" and {len(sources) - 5} more" if len(sources) > 5 else "")


__all__ = ["analyze"]
