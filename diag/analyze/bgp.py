"""BGP session analyzers: which sessions are down and why, from daemon state, ss and nstat.

Contract: :func:`analyze(tables, model, fib) -> (findings, checks)`; pure, no I/O. A session is
the pair (host, peer address) of ``bgp_peers``; both ends' rows (the peer's host is found through
the model's addresses) are one finding. For a session that is not Established the cause is, in
order of how decisive the evidence is:

- an end its daemon reports administratively shut down now (FRR's ``Idle (Admin)``), unless a
  fault's Cease closed it: ``BGP_SESSION_NOT_ESTABLISHED`` naming the shutdown (the operator's
  Cease when there is one) and the command that undoes it; half-open handshakes on 179 (left
  from earlier trouble, or the other end still trying) go into its note, not the cause;
- ``BGP_MD5_MISMATCH``: nstat TCPMD5Failure/NotFound/Unexpected > 0 on either end;
- ``BGP_BAD_PEER_AS``: the configured remote AS differs from the AS the other end runs (live
  config of both daemons), or a NOTIFICATION 2/2 is the last error;
- ``BGP_HOLD_TIMER_EXPIRED``: last error NOTIFICATION 4/0 (hold timer) on either end — unless
  the handshakes between the two ends stay half-open (below) and no speaker is hung: then the
  transport is blocked and the expiry is its consequence (``BGP_TRANSPORT_BLOCKED`` first, the
  hold-timer finding naming it in ``caused_by``);
- ``BGP_TRANSPORT_BLOCKED``: SYN-SENT / SYN-RECV sockets on :179 between the two ends (a closed
  port answers RST at once, so a lingering half-open handshake means drops);
- ``BGP_SESSION_NOT_ESTABLISHED`` naming a Cease when no handshake is half-open and the last
  error of either end is a Cease sent for a fault (maximum prefixes, out of resources, BFD
  down, ...: :mod:`diag.analyze.notifications`) — a speaker that shut a session for a prefix
  limit may stop listening: the Cease, not the missing listener, is the cause;
- ``BGP_NO_LISTENER``: no half-open handshake, and nothing listens on TCP 179 on the other end
  (nstat TcpOutRsts there supports it);
- ``BGP_SESSION_NOT_ESTABLISHED`` naming a Cease of an operator's action (administrative
  shutdown, reset, peer de-configured, other configuration change) when nothing more specific
  explains why the session did not come back, with the command that undoes it — down now, so
  an error either way; else the generic ``BGP_SESSION_NOT_ESTABLISHED``.

A daemon's ``last_error`` can be stale (FRR keeps the reason of an earlier reset while
Established): it only decides when the session is down now, and the finding says which evidence
decided. For Established sessions: ``BGP_EBGP_REQUIRES_POLICY`` (FRR peerState ``Policy``),
``BGP_AS_PATH_LOOP`` (prefixes the other end holds as best paths, carrying this end's AS and
not its own, are absent from this end's RIB although the other end sent prefixes (a sender that
sent 0 withheld them: export policy, not a loop); accepted < sent supports it; ``info`` when a
covering kernel route still delivers the pod traffic), ``BGP_NO_ADVERTISEMENT`` (every
receiver accepted 0 prefixes from a node). A loop is by design (``info``) also when the
receiving speaker does not install learned routes in the kernel (Cilium's GoBGP): accepting the
paths would not give the kernel a route, so the loop is not what a missing route comes from.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from diag.analyze.catalog import default_severity
from diag.words import counted
from diag.analyze.fib import Fib
from diag.analyze.lookup import lookup
from diag.analyze.notifications import CEASE_FIXES, cease_kind, cease_name, from_code, from_text
from diag.bundle import command_record
from diag.model import Check, Confidence, Evidence, Finding
from diag.values import or_none

MD5_COUNTERS = ("TcpExtTCPMD5Failure", "TcpExtTCPMD5NotFound", "TcpExtTCPMD5Unexpected")
# speakers that never program the kernel with learned paths (Cilium's BGP control plane)
NOT_INSTALLING = ("GOBGP", "CILIUM")


@dataclass(frozen=True)
class Session:
    host: str
    peer: str
    row: object                 # the bgp_peers row of this end
    index: int                  # its position in the table (for evidence)
    other: str | None           # the collected host at the peer address
    other_row: object | None    # the other end's row for this session



class _Ctx:
    def __init__(self, tables, model, fib: Fib) -> None:
        self.tables, self.model, self.fib = tables, model, fib
        self.commands = tables.get("commands")

    def file(self, host: str, source: str) -> str:
        return self.fib.outputs.path(host, str(source).split("+")[0])

    def peer_ev(self, s_host: str, row) -> Evidence:
        src = str(row.source).split("+")[0]
        if src.startswith("kube:"):      # a CiliumBGPNodeConfig's status (no exec needed)
            return Evidence(s_host, str(getattr(row, "evidence_path", None) or src),
                            str(getattr(row, "evidence_pointer", None) or ""),
                            f"{row.daemon} peer {row.peer} AS {or_none(row.peer_as)} state "
                            f"{row.state_raw} (CiliumBGPNodeConfig status)")
        if src.startswith("gobgp"):
            pointer = "/" + str(_pointer_list_index(self.tables["bgp_peers"], s_host, row))
        elif src.startswith("frr"):
            pointer = f"/{row.peer}"
        else:
            pointer = f"line starting {row.name}" if or_none(row.name) else f"peer {row.peer}"
        err = or_none(row.last_error)
        value = (f"{row.daemon} peer {row.peer} AS {or_none(row.peer_as)} state {row.state_raw}"
                 + (f", last error {err!r}" if err else ""))
        return Evidence(s_host, self.file(s_host, src), pointer, value)

    def owner(self, address: str) -> str | None:
        owner = self.fib.owners.get(address)
        return owner[0] if owner else self.model.host_of_ip(address)


def _pointer_list_index(df, host, row) -> int:
    rows = df[(df["host"] == host) & (df["source"] == row.source)]
    return list(rows["peer"]).index(row.peer) if row.peer in list(rows["peer"]) else 0


def _sessions(ctx: _Ctx) -> list[Session]:
    df = ctx.tables["bgp_peers"]
    if df.empty:
        return []
    rows = list(df.itertuples(index=False))
    by_end = {(r.host, str(r.peer)): r for r in rows}
    out = []
    for i, r in enumerate(rows):
        other = ctx.owner(str(r.peer))
        other_row = None
        if other:
            local = or_none(r.local_address)
            for (h, p), row in by_end.items():
                if h == other and (p == local or ctx.owner(p) == r.host):
                    other_row = row
                    break
        out.append(Session(r.host, str(r.peer), r, i, other, other_row))
    return out


def _counter(ctx: _Ctx, host: str, name: str) -> tuple[int, Evidence | None]:
    df = ctx.tables.get("counters")
    if df is None or df.empty:
        return 0, None
    rows = df[(df["host"] == host) & (df["name"] == name)]
    if "phase" in rows:
        rows = rows.sort_values("phase", key=lambda s: s != "main")
    for idx, row in zip(rows.index, rows.itertuples(index=False)):
        value = int(row.value or 0)
        if value > 0:
            return value, Evidence(host, ctx.file(host, row.source), f"line starting {name}",
                                   f"{name} {value}")
    return 0, None


def _sockets(ctx: _Ctx, host: str):
    df = ctx.tables.get("sockets")
    if df is None or df.empty:
        return df
    return df[df["host"] == host]


def _listener(ctx: _Ctx, host: str, address: str | None) -> tuple[bool | None, Evidence | None]:
    """Does ``host`` listen on 179 (on ``address`` or a wildcard)? None when ss was not
    collected."""
    socks = _sockets(ctx, host)
    if socks is None or socks.empty:
        return None, None
    listen = socks[(socks["state"] == "LISTEN") & (socks["local_port"] == 179)]
    for row in listen.itertuples(index=False):
        if str(row.local_addr) in ("0.0.0.0", "::", "*", str(address)):
            return True, Evidence(host, ctx.file(host, row.source), "line with LISTEN :179",
                                  f"LISTEN {row.local_addr}:179 {row.process or ''}")
    return False, Evidence(host, ctx.file(host, "ss-tanpi"), "no line with LISTEN :179",
                           f"{host}: nothing listens on TCP 179")


def _handshakes(ctx: _Ctx, s: Session) -> list[Evidence]:
    """Half-open connections on :179 between the two ends, on either side."""
    out = []
    ends = [(s.host, s.peer)]
    local = or_none(s.row.local_address)
    if s.other and local:
        ends.append((s.other, local))
    for host, remote in ends:
        socks = _sockets(ctx, host)
        if socks is None or socks.empty:
            continue
        half = socks[socks["state"].isin(["SYN-SENT", "SYN-RECV"])
                     & (socks["peer_addr"] == remote)
                     & ((socks["peer_port"] == 179) | (socks["local_port"] == 179))]
        for row in half.itertuples(index=False):
            retrans = or_none(row.retrans_total) or or_none(row.retrans) or 0
            out.append(Evidence(host, ctx.file(host, row.source),
                                f"line with {row.state} {row.local_addr}:{row.local_port} "
                                f"{row.peer_addr}:{row.peer_port}",
                                f"{row.state} {row.local_addr}:{row.local_port} -> "
                                f"{row.peer_addr}:{row.peer_port} retrans {retrans}"))
    return out


def _failed_commands(ctx: _Ctx, host: str | None, daemon_prefixes: tuple[str, ...]):
    if host is None or ctx.commands is None or ctx.commands.empty:
        return []
    rows = ctx.commands[(ctx.commands["host"] == host)
                        & ctx.commands["id"].astype(str).str.startswith(daemon_prefixes)
                        & (ctx.commands["outcome"].astype(str).str.upper() != "OK")]
    # the manifest's record of the command (its outcome), by its place in the host's list
    order = list(ctx.commands[ctx.commands["host"] == host]["id"])
    return [Evidence(host, *command_record(host, order.index(r.id)),
                     f"{r.id}: {r.outcome} (exit {r.exit_code}) {str(r.stderr or '')[:80]}")
            for r in rows.itertuples(index=False)]


def _configured_as_mismatch(ctx: _Ctx, s: Session):
    """The AS this end expects vs the AS the other end runs (its own sessions' local AS)."""
    expected = or_none(s.row.peer_as)
    actual = None
    if s.other_row is not None:
        actual = or_none(s.other_row.local_as)
    elif s.other and s.other in ctx.model.hosts:
        actual = ctx.model.hosts[s.other].asn.value
    if expected is None or actual is None or int(expected) == int(actual):
        return None
    return int(expected), int(actual)


def _finding(code: str, summary: str, sources, evidence, fix=(), severity=None, reason="",
             note="", hosts=(), subject="") -> Finding:
    return Finding(code, severity or default_severity(code), summary,
                   Confidence(tuple(sorted(set(s for s in sources if s)))),
                   tuple(dict.fromkeys(e for e in evidence if e is not None)), tuple(fix),
                   severity_reason=reason, note=note, hosts=tuple(h for h in hosts if h),
                   subject=subject)


def _md5_fix(host: str, row, peer: str) -> list[str]:
    if str(row.daemon) == "FRR":
        return [f"{host}: vtysh -c 'conf t' -c 'router bgp {or_none(row.local_as)}' "
                f"-c 'neighbor {peer} password SECRET'"]
    if str(row.daemon) == "BIRD":
        return [f"{host}: in bird.conf, protocol bgp {or_none(row.name) or ''} {{ password \"SECRET\"; }}, "
                "then birdc configure"]
    if str(row.daemon) == "GOBGP":
        return [f"{host}: gobgpd config [neighbors.config] auth-password = \"SECRET\" for "
                f"{peer}, then restart gobgpd"]
    return [f"# {host}: set the password of the session to {peer} ({row.daemon})"]


def _cease(r, o) -> tuple[int, str, str, object] | None:
    """(subcode, kind, name, the row that reports it) of a Cease that is the last error of
    either end, or None."""
    for x in (r, o):
        if x is None:
            continue
        found = from_code(or_none(x.last_error_code)) or from_text(or_none(x.last_error))
        if found and found[0] == 6:
            return found[1], cease_kind(*found), cease_name(found[1]), x
    return None


def _admin_down(r, o):
    """The row of an end its daemon reports administratively shut down now (FRR's
    ``Idle (Admin)``), or None."""
    return next((x for x in (r, o) if x is not None
                 and "(admin)" in str(or_none(x.state_raw) or "").lower()), None)


def _undo_shutdown(row, host: str) -> str:
    """How to bring a session an operator closed back, on the daemon of ``row``."""
    daemon, peer = str(row.daemon), str(row.peer)
    if daemon == "FRR":
        return (f"{host}: vtysh -c 'conf t' -c 'router bgp {or_none(row.local_as) or 'AS'}' -c "
                f"'no neighbor {peer} shutdown'   # or: vtysh -c 'clear bgp {peer}'")
    if daemon == "BIRD":
        return f"{host}: birdc enable {or_none(row.name) or 'PROTOCOL'}"
    if daemon == "GOBGP":
        return f"{host}: gobgp neighbor {peer} enable"
    return f"# {host}: enable the session to {peer} again ({daemon})"


def _md5_sockets(ctx: _Ctx, s: Session) -> tuple[list[Evidence], bool]:
    """Sockets on :179 of either end holding a TCP-MD5 key that can be this session's, and
    whether both ends' sockets were read. A connection's key belongs to its peer; a listening
    socket's keys (ss does not say for whom once redacted) count only when no keyed
    connection of that host to another peer accounts for them."""
    ends = [(h, addr) for h, addr in ((s.host, s.peer),
                                      (s.other, or_none(s.row.local_address))) if h]
    out, complete = [], True
    for h, other_end in ends:
        sk = _sockets(ctx, h)
        if sk is None or sk.empty:
            complete = False
            continue
        keyed = sk[(sk["md5"] == True) & ((sk["local_port"] == 179)  # noqa: E712
                                          | (sk["peer_port"] == 179))]
        if keyed.empty:
            continue
        listening = keyed[keyed["state"] == "LISTEN"]
        connected = keyed[keyed["state"] != "LISTEN"]
        ours = connected[connected["peer_addr"].astype(str) == str(other_end)]
        others = connected[connected["peer_addr"].astype(str) != str(other_end)]
        relevant = len(ours) + (len(listening) if others.empty else 0)
        if relevant:
            out.append(Evidence(h, ctx.file(h, "ss-tanpi"), "line with md5keys",
                                f"{h}: {counted(relevant, 'socket')} on :179 with a TCP-MD5 "
                                "key"))
    return out, complete


def _down(ctx: _Ctx, s: Session) -> list[Finding]:
    r, o = s.row, s.other_row
    name = f"{s.host} <-> {s.other or s.peer}"
    who = f"session {s.host} ({or_none(r.local_address) or '?'}) -> {s.peer}"
    ev = [ctx.peer_ev(s.host, r)] + ([ctx.peer_ev(s.other, o)] if o is not None else [])
    daemons = {str(r.daemon).lower()} | ({str(o.daemon).lower()} if o is not None else set())
    hosts = (s.host, s.other)
    codes = {str(or_none(x.last_error_code) or "") for x in (r, o) if x is not None}

    cease = _cease(r, o)
    last = f" (last error {or_none(r.last_error)!r})" if or_none(r.last_error) else ""
    shut = _admin_down(r, o)
    if shut is not None and (cease is None or cease[1] == "operator"):
        # shut by configuration: down whatever else the evidence says; half-open handshakes
        # (left from earlier trouble, or a peer still trying) are told, not the cause
        where = s.host if shut is r else (s.other or s.peer)
        if cease is not None:
            found = _ceased(cease, r, s, who, last, daemons, ev, hosts)
        else:
            found = _finding(
                "BGP_SESSION_NOT_ESTABLISHED",
                f"{who}: {r.state_raw}; administratively shut down on {where}{last}",
                daemons, ev, ["# the session was shut down by configuration; if that was not "
                              "meant to last, undo it:", _undo_shutdown(shut, where)],
                reason="the daemon reports the session administratively down now",
                hosts=hosts, subject=f"{s.host} {s.peer}")
        half = _handshakes(ctx, s)
        if half:
            found = replace(found, evidence=found.evidence + tuple(half), note=(
                f"{counted(len(half), 'TCP handshake')} on port 179 half-open as well: if the "
                "session does not come back once enabled, look for drops of TCP 179"))
        return [found]

    md5 = [(h, *_counter(ctx, h, c)) for h in (s.host, s.other) if h for c in MD5_COUNTERS]
    md5 = [(h, v, e) for h, v, e in md5 if v > 0]
    if md5:
        socks, complete = _md5_sockets(ctx, s)
        if complete and not socks:
            # the counters count since boot: with no TCP-MD5 key on either end that can belong
            # to this session now, they are an earlier incident's, not this session's cause
            md5 = []
    if md5:
        return [_finding(
            "BGP_MD5_MISMATCH",
            f"{name}: not Established; TCP-MD5 segments are rejected "
            f"({', '.join(f'{h} {e.value}' for h, _, e in md5)}): the keys differ or one side "
            "has none",
            ["nstat", *daemons, "ss" if socks else None], ev + [e for *_, e in md5] + socks,
            [f"# set the same TCP-MD5 password on both ends of {s.host} <-> {s.other or s.peer}",
             *_md5_fix(s.host, r, s.peer), *(_md5_fix(s.other, o, str(o.peer))
                                            if o is not None and s.other else ())],
            hosts=hosts, subject=f"{s.host} {s.peer}")]

    mismatch = _configured_as_mismatch(ctx, s)
    expecting, expected_of = s.host, s.other or s.peer
    if mismatch is None and o is not None and s.other:
        back = Session(s.other, str(o.peer), o, 0, s.host, r)
        mismatch = _configured_as_mismatch(ctx, back)
        expecting, expected_of = s.other, s.host
    if mismatch or "0202" in codes:
        detail = (f"{expecting} expects AS {mismatch[0]} but {expected_of} runs AS "
                  f"{mismatch[1]}" if mismatch else "NOTIFICATION 2/2 Bad Peer AS")
        fix = ([f"# {expecting}: set the remote AS of its session to {expected_of} to "
                f"{mismatch[1]} (or change {expected_of}'s local AS)"] if mismatch else [])
        return [_finding(
            "BGP_BAD_PEER_AS", f"{name}: not Established; {detail}",
            [*daemons, "config" if mismatch else None, "notification" if "0202" in codes else
             None], ev, fix, reason="decided by the daemons' configured and running AS numbers"
            if mismatch else "decided by the last error (NOTIFICATION 2/2) of a down session",
            hosts=hosts, subject=f"{s.host} {s.peer}")]

    listens, lev = (None, None)
    if s.other:
        listens, lev = _listener(ctx, s.other, s.peer)
    half = _handshakes(ctx, s)

    def blocked(note: str = "") -> Finding:
        # a closed port answers a SYN with RST at once: a handshake that stays half-open means
        # the SYN or its answer is dropped on the way
        return _finding(
            "BGP_TRANSPORT_BLOCKED",
            f"{name}: not Established; TCP handshakes on port 179 stay half-open "
            f"({counted(len(half), 'socket')} in SYN-SENT/SYN-RECV): SYNs or their answers are "
            "dropped" + note,
            ["ss", *daemons, "ss-listener" if listens else None], ev + half + [lev],
            [f"# on {s.host} and {s.other or s.peer}: allow TCP 179 between "
             f"{or_none(r.local_address) or s.host} and {s.peer} (nft list ruleset; iptables-save)"],
            hosts=hosts, subject=f"{s.host} {s.peer}")

    if "0400" in codes or any("hold timer" in str(or_none(x.last_error) or "").lower()
                              for x in (r, o) if x is not None):
        stuck = next((h for h in (s.other, s.host) if h and _failed_commands(
            ctx, h, ("gobgp", "bird", "frr"))), None)
        hold = _finding(
            "BGP_HOLD_TIMER_EXPIRED",
            f"{name}: not Established; the hold timer expired (NOTIFICATION 4/0)"
            + (f"; {stuck}'s BGP speaker does not answer its CLI" if stuck else ""),
            [*daemons, "manifest" if stuck else None], ev + _failed_commands(
                ctx, stuck, ("gobgp", "bird", "frr")) if stuck else ev,
            [f"# {stuck}: the BGP speaker is hung or stopped; check it (ps -o stat,pid,cmd) "
             "and restart or continue it"] if stuck else [],
            reason="decided by the last error of a session that is down now",
            hosts=hosts, subject=f"{s.host} {s.peer}")
        if half and not stuck:
            # the reconnects stay half-open: TCP between the two ends is dropped, and the
            # keepalives were its first victims
            return [blocked("; the hold timer expired first (NOTIFICATION 4/0): the "
                            "keepalives were dropped too"),
                    replace(hold, caused_by="BGP_TRANSPORT_BLOCKED", severity_reason=(
                        "consequence of BGP_TRANSPORT_BLOCKED: the keepalives are dropped with "
                        "the rest of TCP 179 between the two ends (the reconnects stay "
                        "half-open)"))]
        return [hold]

    if half:
        return [blocked()]
    # a fault's Cease tells why the session closed and stays closed (a speaker that hit a prefix
    # limit also stops listening): it comes before guessing from missing listeners. After an
    # operator's Cease (a restart, a reset) the session should come back: when nobody listens,
    # that is the more specific cause, and the Cease only the last thing that happened
    if cease is not None and cease[1] == "fault":
        return [_ceased(cease, r, s, who, last, daemons, ev, hosts)]
    if listens is False and s.other:
        mine, mev = _listener(ctx, s.host, or_none(r.local_address))
        both = mine is False
        rsts, rev = _counter(ctx, s.other, "TcpOutRsts")
        half = [rev] if rsts else []
        return [_finding(
            "BGP_NO_LISTENER",
            f"{name}: not Established; nothing listens on TCP 179 on {s.other}"
            + (f" nor on {s.host}: both ends wait for the other to connect" if both else ""),
            ["ss", *daemons, "nstat" if half else None], ev + [lev, mev if both else None]
            + half,
            [f"# let one end dial out or listen: e.g. {s.other}'s speaker active "
             f"(not passive) towards {or_none(r.local_address) or s.host}, or listening on 179"],
            hosts=hosts, subject=f"{s.host} {s.peer}")]
    if cease is not None:
        return [_ceased(cease, r, s, who, last, daemons, ev, hosts)]
    return [_finding("BGP_SESSION_NOT_ESTABLISHED", f"{who}: {r.state_raw}{last}",
                     daemons, ev, hosts=hosts, subject=f"{s.host} {s.peer}")]


def _ceased(cease, r, s: Session, who: str, last: str, daemons, ev, hosts) -> Finding:
    """A down session whose last error is a Cease: who closed it (an operator or a fault) and
    how to undo it; down now, so an error either way."""
    sub, kind, cname, said = cease
    label = {"operator": "an operator's action", "protocol": "a connection collision",
             "fault": "a fault"}[kind]
    where = s.host if said is r else (s.other or s.peer)
    fix = ([f"# the session was closed by hand (Cease/{cname}) and stays down; if that was not "
            "meant to last, undo it:", _undo_shutdown(said, where)] if kind == "operator" else
           [f"# {where}: {CEASE_FIXES[sub]}"] if sub in CEASE_FIXES else [])
    return _finding(
        "BGP_SESSION_NOT_ESTABLISHED",
        f"{who}: {r.state_raw}; closed by a Cease/{cname} ({label}) and still down{last}",
        daemons, ev, fix,
        reason=f"the last error is a Cease ({label}); the session is down now, so it is not "
        "only history", hosts=hosts, subject=f"{s.host} {s.peer}")


def _covered(ctx: _Ctx, host: str) -> bool:
    """Every other node's pod CIDR leaves this host by its cluster NIC or an overlay device."""
    hm = ctx.model.hosts.get(host)
    if hm is None:
        return False
    for other in ctx.model.nodes():
        cidr = other.pod_cidr.value
        if other.name == host or not cidr:
            continue
        lk = lookup(ctx.fib, host, str(ipaddress.ip_network(cidr).network_address + 1))
        if lk.type != "unicast" or (lk.dev == hm.default_iface.value
                                    and (host, lk.dev) not in ctx.fib.vxlan
                                    and hm.default_iface.value != hm.cluster_iface.value):
            return False
    return True


def _policy_blocked(ctx: _Ctx, s: Session) -> bool:
    """FRR's RFC 8212 state: peerState ``Policy``, or — when the parser did not keep it — an eBGP
    session that sends and accepts nothing while the other end advertises prefixes."""
    r, o = s.row, s.other_row
    if str(r.daemon) != "FRR" or r.state != "ESTABLISHED":
        return False
    if "policy" in str(r.state_raw).lower():
        return True
    ebgp = or_none(r.peer_as) is not None and or_none(r.local_as) is not None and \
        int(r.peer_as) != int(r.local_as)
    silent = int(or_none(r.accepted) or 0) == 0 and int(or_none(r.advertised) or 0) == 0
    # GoBGP omits zero counts and leaves originated routes out of "advertised": its own
    # originated paths say that it offers something
    paths = ctx.tables["bgp_paths"]
    originates = s.other is not None and not paths.empty and bool(
        ((paths["host"] == s.other) & (paths["local"] == True)).any())  # noqa: E712
    offered = o is not None and (int(or_none(o.advertised) or 0) > 0 or originates)
    return ebgp and silent and offered


def _established(ctx: _Ctx, sessions: list[Session]) -> list[Finding]:
    out: list[Finding] = []
    paths = ctx.tables["bgp_paths"]
    for s in sessions:
        r, o = s.row, s.other_row
        if r.state != "ESTABLISHED":
            continue
        if _policy_blocked(ctx, s):
            out.append(_finding(
                "BGP_EBGP_REQUIRES_POLICY",
                f"{s.host}: eBGP session to {s.peer} ({s.other or '?'}) is Established but FRR "
                "has no policy for it (RFC 8212 ebgp-requires-policy): it accepted "
                f"{or_none(r.accepted) or 0} and sent {or_none(r.advertised) or 0} prefixes while "
                f"{s.other or s.peer} offers its routes",
                ["frr", "counts" if (or_none(r.accepted) or 0) == 0 else None],
                [ctx.peer_ev(s.host, r)],
                [f"vtysh -c 'conf t' -c 'router bgp {or_none(r.local_as)}' -c 'no bgp "
                 "ebgp-requires-policy'", "# or add route-maps in and out for the neighbor"],
                hosts=tuple(h for h in (s.host, s.other) if h), subject=f"{s.host} {s.peer}"))
            continue
        # AS path loop: prefixes the other end holds as best paths, carrying this end's AS and
        # not this end's own, are missing from this end's RIB
        # BIRD 1.x does not print its local AS; on an Established session the other end's
        # view of this end's AS (from this end's OPEN) is the same number
        local_as = or_none(r.local_as) or (or_none(o.peer_as) if o is not None else None)
        if o is None or not local_as or paths.empty:
            continue
        own_cidr = ctx.model.hosts[s.host].pod_cidr.value if s.host in ctx.model.hosts else None
        mine = set(paths[(paths["host"] == s.host) & (paths["rib"] == "loc")]["prefix"])
        sender = paths[(paths["host"] == s.other) & (paths["rib"] == "loc")
                       & (paths["best"] == True)]  # noqa: E712
        expected = {str(p.prefix) for p in sender.itertuples(index=False)
                    if int(local_as) in [int(a) for a in (p.as_path or ())]
                    and str(p.prefix) != own_cidr
                    and str(p.nexthop) != str(or_none(r.local_address))}
        missing = sorted(expected - {str(x) for x in mine})
        sent, accepted = or_none(o.advertised), or_none(r.accepted)
        # a sender that says it sent nothing withheld them (export policy): not a loop
        withheld = sent is not None and int(sent) == 0
        if missing and not withheld:
            covered = _covered(ctx, s.host)
            # Cilium's GoBGP never installs learned paths: accepting them would give the kernel
            # no route, so the loop cannot be why a route is missing (by design, like covered)
            uninstalled = str(r.daemon).upper() in NOT_INSTALLING
            counts = sent is not None and accepted is not None and int(sent) > int(accepted)
            out.append(_finding(
                "BGP_AS_PATH_LOOP",
                f"{s.host}: {', '.join(missing)} from {s.other or s.peer} are missing from its "
                f"{r.daemon} RIB; their AS path contains {s.host}'s own AS {local_as} (nodes "
                "share one AS) and they are dropped as loops"
                + (f" (accepted {accepted} of {sent})" if counts else ""),
                [str(r.daemon).lower(), str(o.daemon).lower(), "as-path",
                 "counts" if counts else None],
                [ctx.peer_ev(s.host, r), ctx.peer_ev(s.other, o)],
                [f"# {s.host} ({r.daemon}): accept the own AS once: GoBGP "
                 "as-path-options allow-own-as = 1; BIRD: allow local as; FRR: neighbor X "
                 "allowas-in 1", "# or give each node its own AS"],
                severity="info" if covered or uninstalled else None,
                reason="a covering kernel route still delivers the pod traffic" if covered
                else f"by design: {r.daemon} does not install learned routes in the kernel, so "
                "accepting these paths would not route the traffic; a missing kernel route is "
                "its own finding" if uninstalled
                else "the dropped prefixes have no other route: pod traffic breaks",
                hosts=(s.host,), subject=", ".join(missing)))
    # no advertisement: a node whose pod CIDR no other speaker holds from it
    for node in ctx.model.nodes():
        mine = [s for s in sessions if s.host == node.name and s.row.state == "ESTABLISHED"]
        if not mine:
            continue
        from_it = [s for s in sessions if s.other == node.name and s.row.state == "ESTABLISHED"]
        policy = any(_policy_blocked(ctx, s) for s in from_it)
        received = [or_none(s.row.accepted) for s in from_it]
        if policy or not from_it:
            continue
        # GoBGP omits zero counts and does not count originated routes as advertised: only the
        # receivers' accepted counts decide
        if all(x is not None and int(x) == 0 for x in received):
            ev = [ctx.peer_ev(s.host, s.row) for s in mine + from_it]
            out.append(_finding(
                "BGP_NO_ADVERTISEMENT",
                f"{node.name}: sessions Established but it advertises nothing"
                + (f" (its pod CIDR {node.pod_cidr.value})" if node.pod_cidr.value else "")
                + f"; {', '.join(s.host for s in from_it)} received 0 prefixes from it",
                [*(str(s.row.daemon).lower() for s in mine + from_it), "counts"], ev,
                [f"# {node.name}: originate its pod CIDR {node.pod_cidr.value or ''} again "
                 "(GoBGP: gobgp global rib add PREFIX; BIRD: enable the static protocol)"],
                hosts=(node.name,), subject=str(node.pod_cidr.value or node.name)))
    return out


def analyze(tables, model, fib: Fib) -> tuple[list[Finding], list[Check]]:
    ctx = _Ctx(tables, model, fib)
    sessions = _sessions(ctx)
    if not sessions:
        return [], [Check("BGP sessions", None, needs="a BGP daemon's state (FRR, GoBGP, BIRD, "
                                                       "cilium-dbg, calicoctl) in the bundle")]
    findings: list[Finding] = []
    seen: set[frozenset] = set()
    for s in sessions:
        if s.row.state == "ESTABLISHED":
            continue
        key = frozenset({(s.host, s.peer), (s.other or s.peer, str(or_none(s.row.local_address)))})
        pair = frozenset({s.host, s.other or s.peer})
        if key in seen or pair in seen:
            continue
        seen.update({key, pair})
        findings.extend(_down(ctx, s))
    findings += _established(ctx, sessions)
    checks = [Check("BGP sessions Established", not any(
        f.code.startswith("BGP_") and f.code not in ("BGP_AS_PATH_LOOP", "BGP_NO_ADVERTISEMENT",
                                                      "BGP_EBGP_REQUIRES_POLICY")
        for f in findings)),
        Check("BGP routes exchanged (policy, AS path loop, advertisements)", not any(
            f.code in ("BGP_AS_PATH_LOOP", "BGP_NO_ADVERTISEMENT", "BGP_EBGP_REQUIRES_POLICY")
            and f.severity != "info" for f in findings))]
    return findings, checks
