"""BGP session state as the lab's daemons report it (FRR JSON, GoBGP JSON, BIRD CLI).

Contract: each ``*_peers`` function takes a callable that runs argv inside a host's namespace
(``run(argv) -> CompletedProcess``) and returns :class:`PeerState` records, one per configured
peer, with the daemon's own state word normalised to the RFC 4271 names (``Established``,
``Idle``, ``Connect``, ``Active``, ``OpenSent``, ``OpenConfirm``). A daemon that does not answer
yields no records (the caller decides whether that is an error).
"""
from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from typing import Callable, Sequence

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]

_GOBGP_STATES = {0: "Unknown", 1: "Idle", 2: "Connect", 3: "Active", 4: "OpenSent",
                 5: "OpenConfirm", 6: "Established"}
_NAMES = {s.lower(): s for s in _GOBGP_STATES.values()}


@dataclass(frozen=True)
class PeerState:
    host: str             # the host whose daemon reports it
    daemon: str           # frr, gobgp, bird
    peer: str             # the peer's address
    state: str            # Established, Active, ...
    prefixes_received: int | None = None

    @property
    def established(self) -> bool:
        return self.state == "Established"


def frr_peers(host: str, run: Runner, vty_dir: str) -> list[PeerState]:
    proc = run(["vtysh", "--vty_socket", vty_dir, "-c", "show bgp summary json"])
    try:
        peers = json.loads(proc.stdout).get("ipv4Unicast", {}).get("peers", {})
    except (json.JSONDecodeError, AttributeError):
        return []
    return [PeerState(host, "frr", addr, _norm(info.get("state", "")), info.get("pfxRcd"))
            for addr, info in sorted(peers.items())]


def gobgp_peers(host: str, run: Runner) -> list[PeerState]:
    proc = run(["gobgp", "neighbor", "-j"])
    try:
        neighbors = json.loads(proc.stdout) or []
    except json.JSONDecodeError:
        return []
    if not isinstance(neighbors, list):    # an error object (e.g. a SIGSTOPped gobgpd's timeout)
        return []
    out = []
    for nb in neighbors:
        state = nb.get("state", {})
        received = sum(a.get("state", {}).get("accepted", 0) for a in nb.get("afi_safis", []))
        raw = state.get("session_state", 0)
        word = _GOBGP_STATES.get(raw, str(raw)) if isinstance(raw, int) else _norm(str(raw))
        out.append(PeerState(host, "gobgp", nb.get("conf", {}).get("neighbor_address", "?"),
                             word, received))
    return out


_BIRD_LINE = re.compile(r"^(\S+)\s+BGP\s+\S+\s+(\S+)\s+\S+\s*(.*)$")
_BIRD_NEIGHBOR = re.compile(r"Neighbor address:\s+(\S+)")
_BIRD_ROUTES = re.compile(r"Routes:\s+(\d+) imported")


def bird_peers(host: str, run: Runner, socket: str) -> list[PeerState]:
    proc = run(["birdc", "-s", socket, "show", "protocols", "all"])
    out = []
    for block in re.split(r"\n(?=\S)", proc.stdout):
        match = _BIRD_LINE.match(block.strip().splitlines()[0]) if block.strip() else None
        if not match:
            continue
        info = match.group(3).split()
        state = _norm(info[0]) if info else ("Idle" if match.group(2) != "up" else "Unknown")
        neighbor = _BIRD_NEIGHBOR.search(block)
        routes = _BIRD_ROUTES.search(block)
        out.append(PeerState(host, "bird", neighbor.group(1) if neighbor else match.group(1),
                             state, int(routes.group(1)) if routes else None))
    return out


def _norm(word: str) -> str:
    return _NAMES.get(word.lower(), word)
