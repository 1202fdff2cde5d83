"""BGP sessions as the captures saw them: handshakes, OPENs, NOTIFICATIONs, silences.

Contract: :func:`analyze(tables, model) -> (findings, checks)` and
:func:`corroborate(session_findings, wire_findings, tables) -> findings`; pure, no I/O. Reads the
capture tables ``bgp_messages`` and ``stream_events`` (the decoder's TCP control events ``syn``,
``syn-ack``, ``rst``, ``fin`` on BGP ports, detail ``tcp-md5`` when a SYN carries RFC 2385's
option) and ``packets`` (when each capture ends). Without BGP traffic in any capture the check is
"not checked".

Speakers are paired by address (one pair = both directions, every connection between them, as
every capture on the path saw it). A pair that re-established a session after its last
NOTIFICATION (OPENs from both ends, then a KEEPALIVE or UPDATE from both), or that never saw one,
is up; otherwise the most decisive packet evidence names the
cause:

- NOTIFICATION 2/2 -> ``BGP_BAD_PEER_AS`` (the OPEN it answered says which AS the peer runs);
- NOTIFICATION 2/3 -> ``BGP_ROUTER_ID_COLLISION``;
- NOTIFICATION 4/0, or one side silent for longer than the negotiated hold time while the
  capture went on -> ``BGP_HOLD_TIMER_EXPIRED``; when the connections tried after it never
  complete their handshake (SYNs unanswered, or retransmitted although answered: the answer is
  dropped) the expiry is a consequence: ``BGP_TRANSPORT_BLOCKED`` is the root cause and the
  hold-timer finding names it (``caused_by``);
- any other NOTIFICATION -> ``BGP_SESSION_NOT_ESTABLISHED`` naming it: a Cease says whether an
  operator's action (:mod:`diag.analyze.notifications`) or a fault closed the session, which
  is still down at the end of the capture;
- SYNs to 179 answered by RST and none by SYN-ACK -> ``BGP_NO_LISTENER``;
- segments to 179 answered by ICMP errors (a firewall's REJECT: administratively prohibited;
  or host/net unreachable) and never by SYN-ACK -> ``BGP_TRANSPORT_BLOCKED``;
- SYNs unanswered (two or more, no SYN-ACK, no RST): ``BGP_MD5_MISMATCH`` when they carry the
  TCP-MD5 option (a kernel without the key, or with another, drops them silently), else
  ``BGP_TRANSPORT_BLOCKED``.

A NOTIFICATION (other than an OPEN error) after which the pair exchanged OPENs and talked again
is a reset that healed: ``BGP_SESSION_RESET``, ``info`` when every such NOTIFICATION is a Cease
of an operator's action (2 administrative shutdown, 3 peer de-configured, 4 administrative
reset, 6 other configuration change) or a connection collision (7), saying which; ``warning``
when a fault closed it (maximum prefixes, out of resources, BFD down, hold timer, ...). These
are history and are kept even when the daemons report the session Established.

In a bundle the daemons' live state decides whether a session is down: a pair a daemon reports
Established gets no other finding from packets — unless the capture, which runs after the
daemons were asked, saw the session closed later (the NOTIFICATION's time, on the collector's
clock through the host's measured offset, is after the daemons' answer) and not come back: the
capture is then the end of the evidence (a Cilium node refusing the router's connects is by
design: Cilium does not listen on 179 and the node's own connect carries the session).
:func:`corroborate` adds the packets (source ``pcap``, frames as evidence) to the daemon-state
finding of the same session and code; a packet finding about a session the daemons do not
describe is kept as is (a bare capture).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from diag.analyze.captures import capture_files, frame_evidence
from diag.analyze.catalog import default_severity
from diag.analyze.notifications import CEASE_FIXES, cease_kind
from diag.words import counted
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
    closed_at: float | None = None     # the NOTIFICATION that left it down, when one did


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
                fix: tuple[str, ...], reason: str = "", severity: str | None = None,
                caused_by: str | None = None, note: str = "") -> Finding:
        hosts = tuple(sorted({h for ip in (p.a, p.b)
                              for h in [self.model.host_of_ip(ip) if self.model else None] if h}))
        return Finding(code, severity or default_severity(code), summary, Confidence(("pcap",)),
                       tuple(evidence[:6]), fix, severity_reason=reason, note=note,
                       caused_by=caused_by, hosts=hosts or tuple(sorted(p.hosts)),
                       subject=f"{p.a} {p.b}")

    def judge(self, p: _Pair) -> list[Finding]:
        messages = _dedup(p.messages)
        control = _dedup(p.control)
        notes = [m for m in messages if m.type_name == "NOTIFICATION"]
        out = [f for f in [self._resets(p, notes, messages)] if f is not None]
        # down at the end: no session was re-established after the last NOTIFICATION (an OPEN
        # from one end that the other refuses is not a session)
        if notes and _reopened(messages, float(notes[-1].ts)) is None:
            p.closed_at = float(notes[-1].ts)
            return self._notification(p, notes[-1], messages, control) + out
        if messages:
            return [f for f in [self._silence(p, messages)] if f is not None] + out
        return [f for f in [self._handshakes(p, control, _dedup(p.icmp))] if f is not None]

    def _resets(self, p: _Pair, notes: list, messages: list) -> Finding | None:
        """NOTIFICATIONs that ended a session which then came back (a later OPEN from both
        ends, and talk after them): operator actions are info, faults a warning."""
        healed = []
        for note in notes:
            if _code(note.notify_code) == 2:
                continue                 # an OPEN refused: an attempt, not a reset
            back = _reopened(messages, float(note.ts))
            if back is not None:
                healed.append((note, back))
        if not healed:
            return None
        kinds = [cease_kind(_code(n.notify_code), _code(n.notify_subcode))
                 for n, _ in healed]
        faults = [(n, b) for (n, b), k in zip(healed, kinds) if k == "fault"]
        shown = faults[-1] if faults else healed[-1]
        note, back = shown
        what = _what(note)
        who = self.name(str(note.src))
        label = {"operator": "an operator's action", "protocol": "by design (both ends "
                 "connected at once)", "fault": "a fault"}[
            cease_kind(_code(note.notify_code), _code(note.notify_subcode))]
        ev = [self.ev(n, f"{self.name(str(n.src))} -> {self.name(str(n.dst))}: {_what(n)}")
              for n, _ in healed[-3:]]
        ev.append(self.ev(back, f"session back: {back.type_name} from {self.name(str(back.src))}"
                          f", {float(back.ts) - float(note.ts):.1f} s after the NOTIFICATION"))
        more = f" ({len(healed)} resets in the capture)" if len(healed) > 1 else ""
        summary = (f"{who} reset the session with {self.name(str(note.dst))}: {what} "
                   f"({label}); it was re-established {float(back.ts) - float(note.ts):.1f} s "
                   f"later{more}")
        if faults:
            sub = _code(note.notify_subcode) if _code(note.notify_code) == 6 else None
            fix = (f"# {who}: " + (CEASE_FIXES.get(sub) if sub in CEASE_FIXES else
                                   f"read {what} in its log"),)
            return self.finding("BGP_SESSION_RESET", p, summary, ev, fix,
                                "a fault closed the session; it came back but can close it again")
        return self.finding("BGP_SESSION_RESET", p, summary, ev, (),
                            "an operator's action closed the session and it came back",
                            severity="info")

    def _notification(self, p: _Pair, note, messages: list, control: list) -> list[Finding]:
        code, sub = _code(note.notify_code), _code(note.notify_subcode)
        sender, receiver = str(note.src), str(note.dst)
        what = _what(note)
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
            return [self.finding("BGP_BAD_PEER_AS", p, summary, ev, fix,
                                 "the capture shows the NOTIFICATION (2/2)")]
        if (code, sub) == (2, 3):
            return [self.finding("BGP_ROUTER_ID_COLLISION", p,
                                 f"{self.name(sender)} and {self.name(receiver)}: Bad BGP "
                                 "Identifier (same router id)", ev,
                                 (f"# give {self.name(receiver)} a unique router id "
                                  "(bgp router-id A.B.C.D)",), "NOTIFICATION 2/3 in the capture")]
        if (code, sub) == (4, 0):
            last = next((m for m in reversed(messages) if str(m.src) == receiver
                         and float(m.ts) < float(note.ts)), None)
            if last is not None:
                ev.append(self.ev(last, f"last message from {self.name(receiver)}: "
                                  f"{last.type_name}, {float(note.ts) - float(last.ts):.1f} s "
                                  "before the NOTIFICATION"))
            blocked = self._blocked_after(p, control, float(note.ts))
            hold = self.finding("BGP_HOLD_TIMER_EXPIRED", p,
                                f"{self.name(sender)} closed the session with "
                                f"{self.name(receiver)}: Hold Timer Expired", ev,
                                (f"# {self.name(receiver)}: is its BGP daemon alive and not "
                                 "blocked? check that keepalives leave it (tcpdump port 179) "
                                 "and the path drops nothing",), "NOTIFICATION 4/0 in the capture"
                                + ("; consequence of BGP_TRANSPORT_BLOCKED: the connections "
                                   "tried after it never complete" if blocked else ""),
                                caused_by="BGP_TRANSPORT_BLOCKED" if blocked else None)
            return [blocked, hold] if blocked else [hold]
        kind = cease_kind(code, sub)
        if code == 6:
            label = {"operator": "an operator's action", "protocol": "a connection collision",
                     "fault": "a fault"}[kind]
            fix = (f"# {self.name(sender)}: " + (
                f"the session was closed by hand "
                f"(Cease/{or_none(note.notify_subname) or sub}) and stays down; if that was "
                f"not meant to last, undo it (FRR: no neighbor {receiver} shutdown; BIRD: "
                "birdc enable PROTOCOL; GoBGP: gobgp neighbor ADDR enable)"
                if kind == "operator" else CEASE_FIXES.get(sub, f"read {what} in its log")),)
            return [self.finding("BGP_SESSION_NOT_ESTABLISHED", p,
                                 f"{self.name(sender)} closed the session with "
                                 f"{self.name(receiver)}: {what} ({label}); still down at the "
                                 "end of the capture", ev, fix,
                                 f"a Cease ({label}) closed the session and no new one was "
                                 "established before the capture ended")]
        return [self.finding("BGP_SESSION_NOT_ESTABLISHED", p,
                             f"{self.name(sender)} closed the session with "
                             f"{self.name(receiver)}: {what}", ev,
                             (f"# read {what} in the daemon's log on {self.name(sender)}",),
                             "the last NOTIFICATION of the capture")]

    def _blocked_after(self, p: _Pair, control: list, since: float) -> Finding | None:
        """BGP_TRANSPORT_BLOCKED when the connections tried after ``since`` never complete."""
        stuck = _stuck(control, since)
        if not stuck:
            return None
        ev = [self.ev(r, f"SYN {self.name(str(r.src))} -> {self.name(str(r.dst))}:{int(r.dport)}"
                      + (f" (again: {n} SYNs on this connection)" if n > 1 else ""))
              for r, n in stuck[:3]]
        first = stuck[0][0]
        return self.finding(
            "BGP_TRANSPORT_BLOCKED", p,
            f"after the hold timer expired, {counted(sum(n for _, n in stuck), 'SYN')} between "
            f"{self.name(p.a)} and {self.name(p.b)} on 179 never complete a handshake: TCP "
            "between them is dropped (the keepalives were the first to be lost)", ev,
            (f"# find the drop between {self.name(str(first.src))} and "
             f"{self.name(str(first.dst))}: nft list ruleset / iptables-save | grep 179 on "
             "both, and any firewall on the path",),
            "SYNs after the NOTIFICATION unanswered, or retransmitted although answered")

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
        if accepted and not icmp:
            # answered, yet the same connection's SYN comes again and never gets further: the
            # SYN-ACKs are dropped on the way back
            again = [(r, n) for r, n in _stuck(control, float("-inf")) if n > 1]
            if len(again) >= 1 and sum(n for _, n in again) >= MIN_UNANSWERED_SYNS:
                r = again[0][0]
                return self.finding(
                    "BGP_TRANSPORT_BLOCKED", p,
                    f"{self.name(str(r.src))}'s SYNs to {self.name(str(r.dst))}:179 are answered "
                    f"but sent again ({counted(sum(n for _, n in again), 'SYN')} on "
                    f"{counted(len(again), 'connection')} that never complete): the answers "
                    "are dropped on the way back",
                    [self.ev(x, f"SYN {self.name(str(x.src))} -> {self.name(str(x.dst))}:179 "
                             f"({n} on this connection)") for x, n in again[:3]],
                    (f"# find the drop between {self.name(p.a)} and {self.name(p.b)}: nft list "
                     "ruleset / iptables-save | grep 179 on both, and any firewall on the path",),
                    "SYNs retransmitted after a SYN-ACK: the handshake's answer never arrives")
            return None
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
                f"{self.name(target)} refuses BGP connections from {who}: "
                f"{counted(len(resets), 'RST')} to {counted(len(syns), 'SYN')} on port 179", ev,
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
                f"{counted(len(syns), 'SYN')} between {self.name(p.a)} and {self.name(p.b)} on 179 get no "
                f"answer; {len(md5)} carry TCP-MD5: a kernel without that key (or with another) "
                "drops them silently", ev,
                (f"# configure the same TCP-MD5 password on both {self.name(p.a)} and "
                 f"{self.name(p.b)} (FRR: neighbor ADDR password KEY; BIRD: password \"KEY\"; "
                 "Cilium: authSecretRef)",),
                "SYNs with the TCP-MD5 option unanswered (a firewall would look the same: "
                "check nstat TcpExtTCPMD5* on both ends)")
        return self.finding(
            "BGP_TRANSPORT_BLOCKED", p,
            f"{counted(len(syns), 'SYN')} from {who} to {self.name(target)}:179 get neither SYN-ACK nor "
            "RST: something drops them", ev,
            (f"# find the drop between {who} and {self.name(target)}: nft list ruleset / "
             "iptables-save | grep 179 on both, and any firewall on the path",),
            "SYNs unanswered: a closed port would answer RST, a listener SYN-ACK")


def _code(value) -> int:
    """A NOTIFICATION's code or subcode; 0 when the cell is missing (a NOTIFICATION that is
    only its 19-byte header has none: a missing cell, NaN or None, never a crash)."""
    value = or_none(value)
    return int(value) if value is not None else 0


def _what(note) -> str:
    code, sub = _code(note.notify_code), _code(note.notify_subcode)
    name, subname = or_none(note.notify_name), or_none(note.notify_subname)
    return f"NOTIFICATION {code}/{sub} {name or ''}" + (f" / {subname}" if subname else "")


def _reopened(messages: list, since: float):
    """The message that shows the pair re-established a session after ``since`` (OPENs from
    both ends, then a KEEPALIVE or UPDATE from both: the second of those), or None."""
    opened: set[str] = set()
    talked: set[str] = set()
    for m in messages:
        if float(m.ts) <= since:
            continue
        if m.type_name == "OPEN":
            opened.add(str(m.src))
        elif m.type_name == "NOTIFICATION":
            opened.clear()
            talked.clear()
        elif len(opened) >= 2 and m.type_name in ("KEEPALIVE", "UPDATE"):
            talked.add(str(m.src))
            if len(talked) >= 2:
                return m
    return None


def _stuck(control: list, since: float) -> list[tuple]:
    """Connections to 179 begun after ``since`` whose handshake never completes: (first SYN row,
    SYNs on that connection) for those with no answer at all, or answered and yet sent again;
    a connection answered by RST is refused, not stuck."""
    by_conn: dict[str, list] = {}
    for r in control:
        if float(r.ts) > since:
            by_conn.setdefault(str(r.session), []).append(r)
    out = []
    for rows in by_conn.values():
        syns = [r for r in rows if r.event == "syn" and int(r.dport) == 179]
        if not syns or any(r.event == "rst" for r in rows):
            continue
        answered = any(r.event == "syn-ack" for r in rows)
        if not answered or len(syns) > 1:
            out.append((syns[0], len(syns)))
    unanswered = sum(n for _, n in out)
    return out if unanswered >= MIN_UNANSWERED_SYNS else []


def _epoch(stamp) -> float | None:
    """The manifest's UTC ``2026-11-21T06:40:49.422670Z`` as epoch seconds."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _asked(tables) -> dict[tuple[str, str], float]:
    """(host, command id) -> when its answer was complete, on the collector's clock."""
    cmds = tables.get("commands")
    if cmds is None or cmds.empty or "started" not in cmds:
        return {}
    out = {}
    for r in cmds.itertuples(index=False):
        start = _epoch(r.started)
        if start is not None:
            out[(str(r.host), str(r.id))] = start + float(r.duration_s or 0)
    return out


def _clock_offsets(tables) -> dict[str, float]:
    """host -> its clock minus the collector's (manifest), 0 when not measured."""
    hosts = tables.get("hosts")
    if hosts is None or hosts.empty or "clock_offset_s" not in hosts:
        return {}
    return {str(h): float(o) for h, o in zip(hosts["host"], hosts["clock_offset_s"])
            if o is not None and o == o}


def _daemon_states(tables) -> dict[frozenset, tuple[str, float | None]]:
    """{frozenset(local, peer address): (state, when the daemons were asked)} from the daemons'
    session tables (the latest answer of either end)."""
    peers = tables.get("bgp_peers")
    if peers is None or peers.empty:
        return {}
    asked = _asked(tables)
    out: dict[frozenset, tuple[str, float | None]] = {}
    for r in peers.itertuples(index=False):
        if r.local_address and r.peer:
            key = frozenset((str(r.local_address), str(r.peer)))
            when = max((asked.get((str(r.host), part), 0.0)
                        for part in str(r.source).split("+")), default=0.0) or None
            old = out.get(key)
            out[key] = (str(r.state) if old is None or old[0] == "ESTABLISHED" else old[0],
                        max(x for x in (when, old[1] if old else None, 0.0) if x is not None)
                        or None)
    return out


def analyze(tables, model) -> tuple[list[Finding], list[Check]]:
    pairs = _pairs(tables)
    if not pairs:
        return [], [Check(CHECK, None, needs="BGP packets in a capture: diag collect --capture 20s")]
    judge = _Judge(tables, model)
    states = _daemon_states(tables)
    offsets = _clock_offsets(tables)
    findings = []
    for key in sorted(pairs):
        p = pairs[key]
        found = judge.judge(p)
        state, asked = states.get(frozenset(key), (None, None))
        if state == "ESTABLISHED":
            # the daemons said it was up: packets before that are history (a reset that healed
            # is exactly that history); a session the capture saw close *after* the daemons
            # answered, and not come back, is down at the end of the evidence
            closed = p.closed_at
            if closed is not None and asked is not None:
                closed -= min((offsets.get(h, 0.0) for h in p.hosts), default=0.0)
            later = closed is not None and asked is not None and closed > asked
            found = [f for f in found if f.code == "BGP_SESSION_RESET" or later]
        findings.extend(found)
    detail = f"{counted(len(pairs), 'speaker pair')} in the captures"
    return findings, [Check(CHECK, not any(f.severity == "error" for f in findings), detail)]


def corroborate(session: list[Finding], wire: list[Finding]) -> list[Finding]:
    """Daemon-state findings gain the packets of the same session and code; packet findings about
    sessions no daemon finding covers are added. Returns the session findings to use."""
    out = list(session)
    for w in wire:
        a, b = w.subject.split(" ")
        if w.code == "BGP_SESSION_RESET":        # only packets tell of a healed reset
            out.append(w)
            continue
        same = [i for i, f in enumerate(out) if f.code == w.code
                and (a in f.subject.split(" ") or b in f.subject.split(" "))
                and set(f.hosts) & set(w.hosts)]
        if same:
            i = same[0]
            f = out[i]
            out[i] = replace(f, confidence=Confidence(tuple(sorted(set(f.confidence.sources)
                                                                   | {"pcap"})),
                                                      f.confidence.limits),
                             evidence=f.evidence + w.evidence[:3])
        elif not any(set(f.hosts) & set(w.hosts) and f.code.startswith("BGP_")
                     and (a in f.subject or b in f.subject) for f in out):
            out.append(w)
    return out


__all__ = ["analyze", "corroborate"]
