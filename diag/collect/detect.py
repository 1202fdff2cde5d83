"""Which routing daemons run on a host, found from its listening sockets (not installed binaries).

Input: ``ss -H -l -n -p -A tcp,unix_stream`` run in the host's network namespace (the catalogue id
``ss-listeners``). Socket listings are per network namespace, so on a host with several
namespaces (or a namespace lab sharing one filesystem and PID space) only the daemons serving
*this* host are found, and their control sockets come with them::

    u_str LISTEN 0 4096 /run/frr/r1/bgpd.vty 81234 * 0 users:(("bgpd",pid=42,fd=9))
    tcp   LISTEN 0 4096 127.0.0.1:50051 0.0.0.0:* users:(("gobgpd",pid=77,fd=7))

:func:`detect` returns ``{daemon: options}``: FRR (``vty_socket``: the directory of ``bgpd.vty``),
GOBGP (``port`` of its gRPC API when not 50051), BIRD (``socket``; ``socket6`` for a ``bird6``
process's, as in Calico's calico-node), CILIUM (``cilium-agent``), CALICO (``calico-node``).
Every daemon also gets ``pid``: the process seen first on its sockets (``bgpd`` for FRR), which
tells the collector whether it lives in another mount namespace (a container) and where to
``nsenter``. Options are validated paths/ports/PIDs before they reach a command line.
"""
from __future__ import annotations

import posixpath
import re

_USERS = re.compile(r'\("([^"]+)",pid=(\d+),fd=\d+\)')
# the process whose PID stands for the daemon (FRR: bgpd, whose CLI vtysh talks to)
_PROCESS = {"FRR": ("bgpd",), "GOBGP": ("gobgpd",), "BIRD": ("bird", "bird6"),
            "CILIUM": ("cilium-agent",), "CALICO": ("calico-node",)}
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./@+-]+$")


def detect(listeners: str) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    gobgp_ports: set[str] = set()
    for line in listeners.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        users = _USERS.findall(line)
        names = {name for name, _pid in users}
        netid, local = fields[0], fields[4]
        if "bgpd" in names or "zebra" in names:
            options = found.setdefault("FRR", {})
            if netid == "u_str" and local.endswith("/bgpd.vty") and _SAFE_PATH.match(local):
                options["vty_socket"] = posixpath.dirname(local)
        if "gobgpd" in names:
            found.setdefault("GOBGP", {})
            port = local.rsplit(":", 1)[-1]
            if netid == "tcp" and port.isdigit():
                gobgp_ports.add(port)
        if "bird" in names or "bird6" in names:
            options = found.setdefault("BIRD", {})
            if netid == "u_str" and _SAFE_PATH.match(local) and local.endswith(".ctl"):
                six = "bird6" in names and "bird" not in names
                options.setdefault("socket6" if six else "socket", local)
        if "cilium-agent" in names:
            found.setdefault("CILIUM", {})
        if "calico-node" in names:
            found.setdefault("CALICO", {})
        for daemon, processes in _PROCESS.items():
            if daemon in found and "pid" not in found[daemon]:
                pid = next((pid for name, pid in users if name in processes), None)
                if pid is not None:
                    found[daemon]["pid"] = pid
    ports = gobgp_ports - {"179"}
    if "GOBGP" in found and "50051" not in ports and len(ports) == 1:
        found["GOBGP"]["port"] = ports.pop()  # the gRPC API moved off its default port
    return found
