"""Live probes the faults verify themselves with: real pings, the kernel, the daemons, tcpdump.

Contract: every function looks at the running lab once and returns plain values (no waiting;
the engine polls). Nothing here changes the lab, except that probes send real traffic (bounded
pings and arpings) between the lab's own namespaces.
"""
from __future__ import annotations

import json
import math
import os
import re
import select
import subprocess
import time
from typing import TYPE_CHECKING, Callable

from diag.lab.faults.base import in_ns, in_pod

if TYPE_CHECKING:
    from diag.lab import Lab


def nft_counted_packets(nft_json: str) -> int:
    """Packets counted by every rule's counter in ``nft -j list table ...`` output (0 if none)."""
    try:
        items = json.loads(nft_json)["nftables"]
    except (json.JSONDecodeError, KeyError):
        return 0
    return sum(expr["counter"]["packets"] for item in items if "rule" in item
               for expr in item["rule"]["expr"] if "counter" in expr)


def ping(lab: "Lab", src: str, dst_ip: str, **kw) -> bool:
    """True if a bounded ping from ``src``'s pod to ``dst_ip`` gets at least one reply."""
    return ping_rc(lab, src, dst_ip, **kw) == 0


def ping_fails(lab: "Lab", src: str, dst_ip: str, **kw) -> bool:
    """True if the ping ran and got no reply (exit 1) — not an error of the ping itself (2)."""
    return ping_rc(lab, src, dst_ip, **kw) == 1


def pod_ping_fails(lab: "Lab", src: str, dst: str, **kw) -> bool:
    return ping_fails(lab, src, lab.hosts[dst].pod_ip, **kw)


def ping_rc(lab: "Lab", src: str, dst_ip: str, *, size: int | None = None, df: bool = False,
            count: int = 2, deadline: float = 2.0) -> int:
    """Exit code of a bounded ping from ``src``'s pod: 0 replies, 1 none, 2 error."""
    # iputils ping takes whole seconds for -w ("1.5" is an invalid argument, not a failed ping)
    argv = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1",
            "-w", str(max(1, math.ceil(deadline)))]
    if size is not None:
        argv += ["-s", str(size)]
    if df:
        argv += ["-M", "do"]
    return in_pod(lab, src, argv + [dst_ip], timeout=deadline + 5).returncode


def pod_ping(lab: "Lab", src: str, dst: str, **kw) -> bool:
    return ping(lab, src, lab.hosts[dst].pod_ip, **kw)


def route_get(lab: "Lab", host: str, dst: str) -> dict:
    """``ip -j route get dst`` on ``host``; {} when unreachable."""
    proc = in_ns(lab, host, ["ip", "-j", "route", "get", dst])
    try:
        return (json.loads(proc.stdout or "[]") or [{}])[0]
    except json.JSONDecodeError:
        return {}


def routes(lab: "Lab", host: str, *selector: str) -> list[dict]:
    proc = in_ns(lab, host, ["ip", "-j", "route", "show", *selector])
    try:
        return json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        return []


def frr_neighbor(lab: "Lab", ip: str) -> dict:
    """The router's ``show bgp neighbors IP json`` entry ({} if FRR does not answer)."""
    proc = lab.daemons.vtysh(f"show bgp neighbors {ip} json", check=False)
    try:
        return json.loads(proc.stdout or "{}").get(ip, {})
    except json.JSONDecodeError:
        return {}


def frr_summary(lab: "Lab") -> dict:
    proc = lab.daemons.vtysh("show bgp summary json", check=False)
    try:
        return json.loads(proc.stdout or "{}").get("ipv4Unicast", {}).get("peers", {})
    except json.JSONDecodeError:
        return {}


def session_states(lab: "Lab", node: str) -> tuple[str, str]:
    """(router's view of ``node``, ``node``'s view of the router), as the daemons report them."""
    node_ip = lab.hosts[node].cluster_ip
    router_view = node_view = "missing"
    for peer in lab.daemons.bgp_state():
        if peer.host == lab.plan.router.name and peer.peer == node_ip:
            router_view = peer.state
        elif peer.host == node:
            node_view = peer.state
    return router_view, node_view


def all_established(lab: "Lab") -> list[str] | None:
    states = lab.daemons.bgp_state()
    if len(states) == 2 * len(lab.plan.nodes) and all(p.established for p in states):
        return [f"all {len(states)} BGP session ends Established"]
    return None


def node_bgp_prefixes(lab: "Lab", node: str) -> set[str]:
    """Prefixes the node's speaker holds from its peer (GoBGP RIB / BIRD's BGP routes)."""
    if lab.cni == "cilium":
        proc = in_ns(lab, node, ["gobgp", "global", "rib", "-j", "-a", "ipv4"])
        try:
            rib = json.loads(proc.stdout or "{}")
        except json.JSONDecodeError:
            return set()
        return {prefix for prefix, paths in rib.items()
                if any(p.get("neighbor-ip") not in (None, "<nil>", "0.0.0.0") and
                       p.get("source-id") not in (None, "<nil>", "0.0.0.0") for p in paths)}
    return lab.daemons.bird_learned(node)


def nstat(lab: "Lab", host: str, *counters: str) -> dict[str, int]:
    """Absolute kernel counters in ``host``'s namespace (``nstat -asz``; history untouched)."""
    proc = in_ns(lab, host, ["nstat", "-asz", *counters])
    out = {name: 0 for name in counters}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def syn_sent_to_179(lab: "Lab", host: str) -> list[str]:
    proc = in_ns(lab, host, ["ss", "-Htn", "state", "syn-sent", "( dport = :179 )"])
    return [line.split()[-1] for line in proc.stdout.splitlines() if line.strip()]


def half_open_179(lab: "Lab", host: str) -> list[str]:
    """``host``'s TCP sockets on port 179 (either end) in SYN-SENT or SYN-RECV, as ``ss``
    lines: handshakes left half-open (a router keeps those it answered for up to a minute
    after a block is lifted)."""
    proc = in_ns(lab, host, ["ss", "-Htn", "state", "syn-sent", "state", "syn-recv",
                             "( sport = :179 or dport = :179 )"])
    return [line for line in proc.stdout.splitlines() if line.strip()]


def lab_half_open_179(lab: "Lab") -> dict[str, list[str]]:
    """:func:`half_open_179` of the router and every node, for the hosts that have any."""
    hosts = [lab.plan.router.name, *(n.name for n in lab.plan.nodes)]
    return {h: lines for h in hosts if (lines := half_open_179(lab, h))}


def listens_on_179(lab: "Lab", host: str) -> bool:
    proc = in_ns(lab, host, ["ss", "-Htln", "( sport = :179 )"])
    return bool(proc.stdout.strip())


def arping_macs(lab: "Lab", host: str, iface: str, ip: str, *, count: int = 2) -> list[str]:
    """MACs answering ``arping`` (Habets arping) from ``host`` for ``ip``; [] when unanswered."""
    proc = in_ns(lab, host, ["arping", "-r", "-c", str(count), "-w", str(count), "-i", iface,
                             ip], timeout=count + 10)
    return [line.strip().lower() for line in proc.stdout.splitlines() if line.strip()]


def link_mac(lab: "Lab", host: str, iface: str) -> str:
    proc = in_ns(lab, host, ["ip", "-j", "link", "show", "dev", iface])
    try:
        return json.loads(proc.stdout)[0]["address"].lower()
    except (json.JSONDecodeError, IndexError, KeyError):
        return ""


def neigh_state(lab: "Lab", host: str, ip: str) -> list[str]:
    proc = in_ns(lab, host, ["ip", "-j", "neigh", "show", ip])
    try:
        return [s for entry in json.loads(proc.stdout or "[]") for s in entry.get("state", [])]
    except json.JSONDecodeError:
        return []


def tcpdump_count(netns: str, iface: str, bpf: str, action: Callable[[], object], *,
                  timeout: float = 6.0, want: int = 1) -> int:
    """Run tcpdump in ``netns`` on ``iface`` with ``bpf``, perform ``action`` once it listens,
    and return how many packets it saw (stops at ``want`` packets or after ``timeout`` s)."""
    proc = subprocess.Popen(["ip", "netns", "exec", netns, "tcpdump", "-n", "-l", "-p", "-i", iface,
                             "-c", str(want), bpf], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        if not _wait_listening(proc, timeout=5):
            return 0
        action()
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            out, _ = proc.communicate(timeout=5)
        return sum(1 for line in out.splitlines() if line.strip())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_listening(proc: subprocess.Popen, *, timeout: float) -> bool:
    """tcpdump says "listening on ..." on stderr once its socket is bound."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    fd = proc.stderr.fileno()
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                return False
            buf += chunk
            if b"listening on" in buf:
                return True
    return False


def tcpdump_match(netns: str, iface: str, bpf: str, pattern: str, *,
                  timeout: float = 12.0) -> str | None:
    """The first line of ``tcpdump -v`` (decoded, e.g. BGP messages) in ``netns`` matching the
    regex ``pattern`` within ``timeout`` seconds, or None."""
    proc = subprocess.Popen(["ip", "netns", "exec", netns, "tcpdump", "-n", "-l", "-p", "-v",
                             "-i", iface, bpf], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    fd, buf = proc.stdout.fileno(), b""
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace").strip()
                if regex.search(text):
                    return text
        return None
    finally:
        proc.kill()
        proc.wait()
