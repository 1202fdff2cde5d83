"""``ss -tanpi``: one row per TCP socket, with the ``-i`` info line folded in.

iproute2's ``ss`` has no JSON output; this parser reads its text (6.x layout): a header line, then
per socket a line ``STATE RECV-Q SEND-Q LOCAL:PORT PEER:PORT [users:((...))]`` and, with ``-i``,
a tab-indented line of ``key:value`` tokens. iproute2 6.1 prints TCP-MD5 key bytes raw in odd
places (before a socket line, after ``md5keys:``); ``diag collect`` redacts them, and any line
this parser cannot place is reported in ``df.attrs["warnings"]`` (never guessed into a row).

Schema::

    state         str   ESTAB, LISTEN, SYN-SENT, SYN-RECV, TIME-WAIT, CLOSE-WAIT, FIN-WAIT-1, ...
    recv_q, send_q int
    local_addr    str   "192.0.2.1", "::", "*"; an interface scope (BIRD binds ``addr%eth1``)
    local_port    int|None  None for "*"
    local_scope   str|None  the ``%ifname`` part
    peer_addr, peer_port, peer_scope
    process       str|None  first process name in ``users:``; pid int|None
    md5           bool  TCP-MD5 configured on the socket (``md5keys:`` / ``md5`` in the info)
    rto           float|None  ms
    backoff       int|None
    retrans       int|None   unrecovered retransmits now (``retrans:a/b`` -> a)
    retrans_total int|None   b
    lost, unacked int|None
    lastsnd, lastrcv, lastack  int|None  ms since the last segment sent/received/acked
    bytes_sent, bytes_received int|None
    mss, pmtu     int|None
    rtt           float|None ms

Example: ``{"state": "ESTAB", "local_addr": "192.0.2.11", "local_port": 59367,
"peer_addr": "192.0.2.1", "peer_port": 179, "process": "gobgpd", "md5": True, "retrans": 0, ...}``
"""
from __future__ import annotations

import re
from typing import Any

from diag.parse.common import ParseError, as_text, frame, int_or_none

COLUMNS = ["state", "recv_q", "send_q", "local_addr", "local_port", "local_scope", "peer_addr",
           "peer_port", "peer_scope", "process", "pid", "md5", "rto", "backoff", "retrans",
           "retrans_total", "lost", "unacked", "lastsnd", "lastrcv", "lastack", "bytes_sent",
           "bytes_received", "mss", "pmtu", "rtt"]

STATES = ("ESTAB", "LISTEN", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT",
          "CLOSE-WAIT", "LAST-ACK", "CLOSING", "CLOSED", "UNCONN", "UNKNOWN")
_SOCKET = re.compile(r"^(?P<state>[A-Z][A-Z0-9-]*)\s+(?P<recvq>\d+)\s+(?P<sendq>\d+)\s+"
                     r"(?P<local>\S+)\s+(?P<peer>\S+)(?:\s+(?P<process>users:\(.*\)))?\s*$")
_PROCESS = re.compile(r'\("(?P<name>[^"]*)",pid=(?P<pid>\d+)')
_INT_KEYS = {"backoff": "backoff", "lost": "lost", "unacked": "unacked", "lastsnd": "lastsnd",
             "lastrcv": "lastrcv", "lastack": "lastack", "bytes_sent": "bytes_sent",
             "bytes_received": "bytes_received", "mss": "mss", "pmtu": "pmtu"}


def split_endpoint(text: str) -> tuple[str, int | None, str | None]:
    """'192.0.2.1:179' / '[::1]:22' / '*:*' / '192.0.2.1%eth1:179' -> (addr, port, scope)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ParseError(f"ss: endpoint without a port: {text!r}")
    if host.startswith("[") and "]" in host:
        host = host[1:host.index("]")] + host[host.index("]") + 1:]
    scope = None
    if "%" in host:
        host, scope = host.split("%", 1)
    if host.lower().startswith("::ffff:") and "." in host:  # IPv4-mapped: the daemons say IPv4
        host = host[7:]
    return host, (None if port == "*" else int_or_none(port)), scope


def _info(tokens: list[str]) -> dict[str, Any]:
    # ss prints these only when non-zero (iproute2 misc/ss.c): an info line without them means 0
    info: dict[str, Any] = {"md5": False, "retrans": 0, "retrans_total": 0, "backoff": 0,
                            "lost": 0, "unacked": 0}
    for token in tokens:
        key, sep, value = token.partition(":")
        if key in ("md5keys", "md5"):
            info["md5"] = True
        elif key == "rto" and sep:
            info["rto"] = _float(value)
        elif key == "rtt" and sep:
            info["rtt"] = _float(value.split("/")[0])
        elif key == "retrans" and sep:
            now, _, total = value.partition("/")
            info["retrans"], info["retrans_total"] = int_or_none(now), int_or_none(total)
        elif key in _INT_KEYS and sep:
            info[_INT_KEYS[key]] = int_or_none(value)
    return info


def _float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def raw(data: str | bytes) -> tuple[list[dict[str, Any]], list[str]]:
    """(socket records, warnings for lines that could not be placed)."""
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    lines = as_text(data).splitlines()
    if lines and lines[0].split()[:1] == ["Netid"]:
        raise ParseError("ss: a Netid column (several socket families); expected `ss -tanpi`")
    if lines and "State" in lines[0] and "Recv-Q" in lines[0] and \
            lines[0].split()[:1] != ["State"]:
        # iproute2 6.1 writes TCP-MD5 key bytes raw, even before the header: never keep them
        warnings.append("line 1: stray bytes before the header (TCP-MD5 key bytes?)")
        lines[0] = lines[0][lines[0].index("State"):]
    if lines and lines[0].split()[:1] == ["State"]:
        lines = lines[1:]
    elif lines and any(line.strip() for line in lines):
        if not _SOCKET.match(lines[0].rstrip()):
            raise ParseError("ss: no 'State Recv-Q Send-Q ...' header; not `ss -tan` output")
    for number, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        if line[0] in " \t":
            if rows and "info_seen" not in rows[-1]:
                rows[-1].update(_info(line.split()))
                rows[-1]["info_seen"] = True
            else:
                warnings.append(f"line {number}: info line without a socket")
            continue
        match = _SOCKET.match(line.rstrip())
        if not match or match["state"] not in STATES:
            warnings.append(f"line {number}: not a socket line (stray bytes?)")
            continue
        local, lport, lscope = split_endpoint(match["local"])
        peer, pport, pscope = split_endpoint(match["peer"])
        process = _PROCESS.search(match["process"] or "")
        rows.append({"state": match["state"], "recv_q": int(match["recvq"]),
                     "send_q": int(match["sendq"]), "local_addr": local, "local_port": lport,
                     "local_scope": lscope, "peer_addr": peer, "peer_port": pport,
                     "peer_scope": pscope, "process": process["name"] if process else None,
                     "pid": int(process["pid"]) if process else None, "md5": False})
    for row in rows:
        row.pop("info_seen", None)
    if not rows and warnings and len(warnings) == sum(1 for line in lines if line.strip()):
        raise ParseError("ss: no line is a socket line (unknown layout)")
    return rows, warnings


def parse(data: str | bytes):
    rows, warnings = raw(data)
    df = frame(rows, COLUMNS)
    df.attrs["warnings"] = warnings
    return df
