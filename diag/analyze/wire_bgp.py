"""BGP sessions as the captures saw them: handshakes, OPENs, NOTIFICATIONs, silences.

Contract: :func:`analyze(tables, model) -> (findings, checks)` and
:func:`corroborate(session_findings, wire_findings, tables) -> findings`; pure, no I/O. Reads the
capture tables ``bgp_messages`` and ``stream_events`` (the decoder's TCP control events ``syn``,
``syn-ack``, ``rst``, ``fin`` on BGP ports, detail ``tcp-md5`` when a SYN carries RFC 2385's
option) and ``packets`` (when each capture ends). Without BGP traffic in any capture the check is
"not checked".

Speakers are paired by address (one pair = both directions, every connection between them, as
every capture on the path saw it). A pair whose last connection exchanged OPENs and then kept
talking until the capture ended is up; otherwise the most decisive packet evidence names the
cause:

- NOTIFICATION 2/2 -> ``BGP_BAD_PEER_AS`` (the OPEN it answered says which AS the peer runs);
- NOTIFICATION 2/3 -> ``BGP_ROUTER_ID_COLLISION``;
- NOTIFICATION 4/0, or one side silent for longer than the negotiated hold time while the
  capture went on -> ``BGP_HOLD_TIMER_EXPIRED``;
- any other NOTIFICATION -> ``BGP_SESSION_NOT_ESTABLISHED`` naming it;
- SYNs to 179 answered by RST and none by SYN-ACK -> ``BGP_NO_LISTENER``;
- segments to 179 answered by ICMP errors (a firewall's REJECT: administratively prohibited;
  or host/net unreachable) and never by SYN-ACK -> ``BGP_TRANSPORT_BLOCKED``;
- SYNs unanswered (two or more, no SYN-ACK, no RST): ``BGP_MD5_MISMATCH`` when they carry the
  TCP-MD5 option (a kernel without the key, or with another, drops them silently), else
  ``BGP_TRANSPORT_BLOCKED``.

In a bundle the daemons' live state decides whether a session is down: a pair a daemon reports
Established gets no finding from packets (a Cilium node refusing the router's connects is by
design: Cilium does not listen on 179 and the node's own connect carries the session).
:func:`corroborate` adds the packets (source ``pcap``, frames as evidence) to the daemon-state
finding of the same session and code; a packet finding about a session the daemons do not
describe is kept as is (a bare capture).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from diag.analyze.captures import capture_files, frame_evidence
from diag.analyze.catalog import default_severity
from diag.model import Check, Confidence, Evidence, Finding
from diag.values import or_none

MIN_UNANSWERED_SYNS = 2        # one lost SYN is ordinary; its retransmission unanswered is not
CHECK = "BGP sessions seen in captures get established"


@dataclass
class _Pair:
    a: str
    b: str
    messages: list = field(default_factory=list)     # bgp_messages rows, capture order
    control: list = field(default_factory=list)      # stream_events control rows
    icmp: list = field(default_factory=list)         # ICMP errors quoting a segment to 179
    hosts: set = field(default_factory=set)          # capturing hosts


def _pairs(tables) -> dict[tuple[str, str], _Pair]:
    pairs: dict[tuple[str, str], _Pair] = {}

    def pair(src: str, dst: str) -> _Pair:
        key = (src, dst) if src <= dst else (dst, src)
        if key not in pairs:
            pairs[key] = _Pair(*key)
        return pairs[key]

    events = tables.get("stream_events")
    if events is not None and not events.empty:
        events = events[events["event"].isin(["syn", "syn-ack", "rst", "fin"])]
    for rows, kept in ((tables.get("bgp_messages"), "messages"), (events, "control")):
        if rows is None or rows.empty:
            continue
        for r in rows.itertuples(index=False):
            if not r.tunnel_depth:                  # the outer connection, not one in a tunnel
                p = pair(str(r.src), str(r.dst))
                getattr(p, kept).append(r)
                p.hosts.add(str(r.host))
    icmp = tables.get("icmp")
    if icmp is not None and "orig_proto" in icmp and not icmp.empty:
        quoted = icmp[(icmp["orig_proto"] == 6) & (icmp["orig_dport"] == 179)]
        for r in quoted.itertuples(index=False):
            p = pair(str(r.orig_src), str(r.orig_dst))
            p.icmp.append(r)
            p.hosts.add(str(r.host))
    return pairs


def _capture_ends(tables) -> dict[str, float]:
    packets = tables.get("packets")
    if packets is None or packets.empty:
        return {}
    return {str(h): float(ts) for h, ts in packets.groupby("host")["ts"].max().items()}


def _dedup(rows: list) -> list:
    """Every capture on the path saw the same segment: keep one row per (ts, src, type)."""
    seen, out = set(), []
    for r in sorted(rows, key=lambda r: float(r.ts)):
        key = (round(float(r.ts), 6), r.src, getattr(r, "sport", None),
               getattr(r, "type_name", None), getattr(r, "event", None))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


class _Judge:
    def __init__(self, tables, model) -> None:
        self.files = capture_files(tables)
        self.ends = _capture_ends(tables)
        self.model = model

    def name(self, ip: str) -> str:
        host = self.model.host_of_ip(ip) if self.model is not None else None
        return f"{host} ({ip})" if host else ip

    def ev(self, r, value: str) -> Evidence:
        return frame_evidence(self.files, r, value)

    def finding(self, code: str, p: _Pair, summary: str, evidence: list[Evidence],
                fix: tuple[str, ...], reason: str = "") -> Finding:
        hosts = tuple(sorted({h for ip in (p.a, p.b)
                              for h in [self.model.host_of_ip(ip) if self.model else None] if h}))
        return Finding(code, default_severity(code), summary, Confidence(("pcap",)),
                       tuple(evidence[:6]), fix, severity_reason=reason,
                       hosts=hosts or tuple(sorted(p.hosts)), subject=f"{p.a} {p.b}")

    def judge(self, p: _Pair) -> Finding | None:
        messages = _dedup(p.messages)
        control = _dedup(p.control)
        notes = [m for m in messages if m.type_name == "NOTIFICATION"]
        last_open = max((float(m.ts) for m in messages if m.type_name == "OPEN"), default=None)
        if notes and (last_open is None or float(notes[-1].ts) >= last_open):
            return self._notification(p, notes[-1], messages)
        if messages:
            return self._silence(p, messages)
        return self._handshakes(p, control, _dedup(p.icmp))

    def _notification(self, p: _Pair, note, messages: list) -> Finding:
        # a NOTIFICATION that is only its 19-byte header has no code: missing cells, not 0s
        code, sub = int(or_none(note.notify_code) or 0), int(or_none(note.notify_subcode) or 0)
        sender, receiver = str(note.src), str(note.dst)
        name, subname = or_none(note.notify_name), or_none(note.notify_subname)
        what = f"NOTIFICATION {code}/{sub} {name or ''}" + (f" / {subname}" if subname else "")
        ev = [self.ev(note, f"{self.name(sender)} -> {self.name(receiver)}: {what}")]
        opens = [m for m in messages if m.type_name == "OPEN" and float(m.ts) <= float(note.ts)]
        their_open = next((m for m in reversed(opens) if str(m.src) == receiver), None)
        if their_open is not None:
            ev.append(self.ev(their_open, f"OPEN from {self.name(receiver)}: my AS "
                              f"{their_open.open_my_as}, hold {their_open.open_hold_time}, "
                              f"id {their_open.open_bgp_id}"))
        if (code, sub) == (2, 2):
            asn = or_none(their_open.open_my_as) if their_open is not None else None
            summary = (f"{self.name(sender)} rejects {self.name(receiver)}'s OPEN: Bad Peer AS"
                       + (f" ({self.name(receiver)} runs AS {asn})" if asn is not None else ""))
            fix = (f"# on {self.name(sender)}: neighbor {receiver} remote-as {asn}"
                   if asn is not None else f"# on {self.name(sender)}: set neighbor {receiver}'s "
                   "remote-as to the AS it runs",
                   f"# or on {self.name(receiver)}: run the AS {self.name(sender)} expects")
            return self.finding("BGP_BAD_PEER_AS", p, summary, ev, fix,
                                "the capture shows the NOTIFICATION (2/2)")
        if (code, sub) == (2, 3):
            return self.finding("BGP_ROUTER_ID_COLLISION", p,
                                f"{self.name(sender)} and {self.name(receiver)}: Bad BGP "
                                "Identifier (same router id)", ev,
                                (f"# give {self.name(receiver)} a unique router id "
                                 "(bgp router-id A.B.C.D)",), "NOTIFICATION 2/3 in the capture")
        if (code, sub) == (4, 0):
            last = next((m for m in reversed(messages) if str(m.src) == receiver
                         and float(m.ts) < float(note.ts)), None)
            if last is not None:
                ev.append(self.ev(last, f"last message from {self.name(receiver)}: "
                                  f"{last.type_name}, {float(note.ts) - float(last.ts):.1f} s "
                                  "before the NOTIFICATION"))
            return self.finding("BGP_HOLD_TIMER_EXPIRED", p,
                                f"{self.name(sender)} closed the session with "
                                f"{self.name(receiver)}: Hold Timer Expired", ev,
                                (f"# {self.name(receiver)}: is its BGP daemon alive and not "
                                 "blocked? check that keepalives leave it (tcpdump port 179) "
                                 "and the path drops nothing",), "NOTIFICATION 4/0 in the capture")
        return self.finding("BGP_SESSION_NOT_ESTABLISHED", p,
                            f"{self.name(sender)} closed the session with "
                            f"{self.name(receiver)}: {what}", ev,
                            (f"# read {what} in the daemon's log on {self.name(sender)}",),
                            "the last NOTIFICATION of the capture")

    def _silence(self, p: _Pair, messages: list) -> Finding | None:
        """The session talked; did one side go quiet for longer than the hold time?"""
        opens = [m for m in messages if m.type_name == "OPEN"]
        holds = [int(m.open_hold_time) for m in opens if m.open_hold_time]
        if not holds or min(holds) == 0:
            return None
        hold = min(holds)
        end = max((self.ends.get(h, 0.0) for h in p.hosts), default=0.0)
        for side in (p.a, p.b):
            last = next((m for m in reversed(messages) if str(m.src) == side), None)
            other = next((m for m in reversed(messages) if str(m.src) != side), None)
            if last is None or other is None:
                continue
            quiet = end - float(last.ts)
            if quiet > hold and float(other.ts) > float(last.ts):
                peer = p.b if side == p.a else p.a
                ev = [self.ev(last, f"last message from {self.name(side)}: {last.type_name}"),
                      self.ev(other, f"{self.name(peer)} still sending: {other.type_name}, "
                              f"{float(other.ts) - float(last.ts):.1f} s later")]
                return self.finding(
                    "BGP_HOLD_TIMER_EXPIRED", p,
                    f"{self.name(side)} sent nothing for {quiet:.0f} s (hold time {hold} s) "
                    f"while {self.name(peer)} kept sending", ev,
                    (f"# {self.name(side)}: is its BGP daemon alive and not blocked?",),
                    f"silent {quiet:.0f} s > negotiated hold time {hold} s")
        return None

    def _handshakes(self, p: _Pair, control: list, icmp: list) -> Finding | None:
        syns = [r for r in control if r.event == "syn" and int(r.dport) == 179]
        accepted = [r for r in control if r.event == "syn-ack"]
        if accepted or not (syns or icmp):
            return None
        if icmp:
            first = icmp[-1]
            what = f"ICMP {first.type_name} (code {int(first.code)}) from {self.name(str(first.src))}"
            ev = [self.ev(r, f"{r.type_name} code {int(r.code)} from {self.name(str(r.src))} "
                             f"for TCP {r.orig_src} -> {r.orig_dst}:179") for r in icmp[:3]]
            return self.finding(
                "BGP_TRANSPORT_BLOCKED", p,
                f"connections from {self.name(str(first.orig_src))} to "
                f"{self.name(str(first.orig_dst))}:179 are rejected: {len(icmp)} x {what}", ev,
                (f"# find the REJECT rule or missing route between {self.name(str(first.orig_src))}"
                 f" and {self.name(str(first.orig_dst))}: nft list ruleset / iptables-save | grep "
                 f"179 on {self.name(str(first.src))}; ip route get {first.orig_dst}",),
                "the path answers the SYNs with ICMP errors (administratively prohibited = a "
                "firewall's REJECT)")
        if not syns:
            return None
        resets = [r for r in control if r.event == "rst" and int(r.sport) == 179]
        target = str(syns[-1].dst)
        who = self.name(str(syns[-1].src))
        if resets:
            ev = [self.ev(syns[-1], f"SYN {who} -> {self.name(target)}:179"),
                  self.ev(resets[-1], f"RST from {self.name(target)}:179")]
            return self.finding(
                "BGP_NO_LISTENER", p,
                f"{self.name(target)} refuses BGP connections from {who}: {len(resets)} RST(s) "
                f"to {len(syns)} SYN(s) on port 179", ev,
                (f"# on {self.name(target)}: make its BGP daemon listen on 179, or let it "
                 f"connect actively to {who} (one side must not be passive)",),
                "SYNs to 179 answered by RST: nothing listens there")
        if len(syns) < MIN_UNANSWERED_SYNS:
            return None
        md5 = [r for r in syns if "tcp-md5" in str(r.detail or "")]
        ev = [self.ev(r, f"SYN {self.name(str(r.src))} -> {self.name(str(r.dst))}:179"
                      + (" with TCP-MD5 option" if "tcp-md5" in str(r.detail or "") else ""))
              for r in (syns[:2] + syns[-1:] if len(syns) > 2 else syns)]
        if md5:
            return self.finding(
                "BGP_MD5_MISMATCH", p,
                f"{len(syns)} SYN(s) between {self.name(p.a)} and {self.name(p.b)} on 179 get no "
                f"answer; {len(md5)} carry TCP-MD5: a kernel without that key (or with another) "
                "drops them silently", ev,
                (f"# configure the same TCP-MD5 password on both {self.name(p.a)} and "
                 f"{self.name(p.b)} (FRR: neighbor ADDR password KEY; BIRD: password \"KEY\"; "
                 "Cilium: authSecretRef)",),
                "SYNs with the TCP-MD5 option unanswered (a firewall would look the same: "
                "check nstat TcpExtTCPMD5* on both ends)")
        return self.finding(
            "BGP_TRANSPORT_BLOCKED", p,
            f"{len(syns)} SYN(s) from {who} to {self.name(target)}:179 get neither SYN-ACK nor "
            "RST: something drops them", ev,
            (f"# find the drop between {who} and {self.name(target)}: nft list ruleset / "
             "iptables-save | grep 179 on both, and any firewall on the path",),
            "SYNs unanswered: a closed port would answer RST, a listener SYN-ACK")


def _daemon_states(tables) -> dict[frozenset, str]:
    """{frozenset(local, peer address): state} from the daemons' session tables."""
    peers = tables.get("bgp_peers")
    if peers is None or peers.empty:
        return {}
    out: dict[frozenset, str] = {}
    for r in peers.itertuples(index=False):
        if r.local_address and r.peer:
            out[frozenset((str(r.local_address), str(r.peer)))] = str(r.state)
    return out


def analyze(tables, model) -> tuple[list[Finding], list[Check]]:
    pairs = _pairs(tables)
    if not pairs:
        return [], [Check(CHECK, None, needs="BGP packets in a capture: diag collect --capture 20s")]
    judge = _Judge(tables, model)
    states = _daemon_states(tables)
    findings = []
    for key in sorted(pairs):
        if states.get(frozenset(key)) == "ESTABLISHED":
            continue                    # the daemons say it is up now: packets are history
        found = judge.judge(pairs[key])
        if found is not None:
            findings.append(found)
    detail = f"{len(pairs)} speaker pair(s) in the captures"
    return findings, [Check(CHECK, not any(f.severity == "error" for f in findings), detail)]


def corroborate(session: list[Finding], wire: list[Finding]) -> list[Finding]:
    """Daemon-state findings gain the packets of the same session and code; packet findings about
    sessions no daemon finding covers are added. Returns the session findings to use."""
    out = list(session)
    for w in wire:
        a, b = w.subject.split(" ")
        same = [i for i, f in enumerate(out) if f.code == w.code
                and (a in f.subject.split(" ") or b in f.subject.split(" "))
                and set(f.hosts) & set(w.hosts)]
        if same:
            i = same[0]
            f = out[i]
            out[i] = replace(f, confidence=Confidence(tuple(sorted(set(f.confidence.sources)
                                                                   | {"pcap"}))),
                             evidence=f.evidence + w.evidence[:3])
        elif not any(set(f.hosts) & set(w.hosts) and f.code.startswith("BGP_")
                     and (a in f.subject or b in f.subject) for f in out):
            out.append(w)
    return out


__all__ = ["analyze", "corroborate"]
