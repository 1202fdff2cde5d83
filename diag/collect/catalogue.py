"""The declared command catalogue: one :class:`CommandSpec` per command, each with a stable id.

The id names the output file (``hosts/<host>/<id>.out``) and is what parsers key on; it never
changes meaning. Adding a command is one line here plus a parser. Commands are argv lists (never
shell strings); transports quote every element. All run with ``LC_ALL=C``.

``base_commands`` runs on every host; ``daemon_commands`` only where :mod:`diag.collect.detect`
found the daemon (with the socket/config arguments detection learned); ``probe_commands`` for each
``--probe ADDR``; ``ethtool_commands`` one ``ethtool -k DEV`` per device the host's ``ip -j -d
link`` lists (checksum offload settings: tunnel devices first, then NICs, then veths, at most
:data:`MAX_ETHTOOL_DEVICES`); ``capture_argv`` builds the bounded tcpdump command.

A daemon living in another mount namespace than the host's (a container) is reached with
``nsenter --target PID --mount --`` in front of its CLI (:func:`nsenter_prefix`; ``reached`` then
says ``nsenter``), the PID being the one detection saw on its listening socket; a root
filesystem other than the host's (:func:`root_command`) is how the collector tells. Cilium's BGP state comes in the form the agent
has (:data:`CILIUM_FORMS`, newest first, detected once per node by the first peers command
that works): ``cilium-dbg shell -- bgp/peers -f detailed`` (the ``pkg/bgp`` shell commands),
``cilium-dbg shell -- bgp/peers`` (the ``pkg/bgpv1`` shell commands), ``cilium-dbg bgp peers
-o json``, ``cilium-dbg bgp peers``; the routes commands are that form's. Calico's BIRD inside
a container is read with ``birdcl`` (what calico-node ships), on its ``bird.ctl`` and, when
present, ``bird6.ctl``.
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from diag.errors import UsageError

MIB = 1024 * 1024
DEFAULT_TIMEOUT = 20.0
DEFAULT_CAP = 16 * MIB


@dataclass(frozen=True)
class CommandSpec:
    """One declared command. ``root``: needs privileges (``sudo -n`` when not root)."""

    id: str
    argv: tuple[str, ...]
    timeout: float = DEFAULT_TIMEOUT
    cap: int = DEFAULT_CAP
    root: bool = False
    daemon: str | None = None       # FRR | GOBGP | BIRD | CILIUM | CALICO, None for base commands
    phase: str = "main"             # main | after-capture
    reached: str | None = None      # nsenter for a containerised daemon; None: the transport's


def _c(id: str, *argv: str, timeout: float = DEFAULT_TIMEOUT, cap: int = DEFAULT_CAP,
       root: bool = False, daemon: str | None = None) -> CommandSpec:
    return CommandSpec(id=id, argv=tuple(argv), timeout=timeout, cap=cap, root=root, daemon=daemon)


# Order matters only for reading the progress: cheap identity first.
BASE_COMMANDS: tuple[CommandSpec, ...] = (
    _c("hostname", "hostname"),
    _c("uname", "uname", "-a"),
    _c("os-release", "cat", "/etc/os-release"),
    _c("ip-version", "ip", "-V"),
    _c("ss-version", "ss", "-V"),
    _c("ip-addr", "ip", "-j", "-d", "addr"),
    _c("ip-link", "ip", "-j", "-d", "link"),
    _c("ip-route-v4", "ip", "-j", "-4", "route", "show", "table", "all"),
    _c("ip-route-v6", "ip", "-j", "-6", "route", "show", "table", "all"),
    _c("ip-rule-v4", "ip", "-j", "-4", "rule"),
    _c("ip-rule-v6", "ip", "-j", "-6", "rule"),
    _c("ip-neigh", "ip", "-j", "neigh"),
    _c("bridge-fdb", "bridge", "-j", "fdb"),
    _c("ss-tanpi", "ss", "-tanpi", root=True),
    # listening sockets with their processes: daemon detection (diag.collect.detect) reads it
    _c("ss-listeners", "ss", "-H", "-l", "-n", "-p", "-A", "tcp,unix_stream", root=True),
    _c("nstat", "nstat", "-asz"),  # -s: do not touch nstat's history file
    # forwarding and rp_filter for every interface, as `key = value` lines (sysctl's own format)
    _c("sysctl-net", "sysctl", "-a", "-r",
       r"^net\.ipv[46]\.conf\..*\.(forwarding|rp_filter)$|^net\.ipv4\.ip_forward$"),
)

# Commands re-run after a capture so that the capture is bracketed by neighbour/counter states.
AFTER_CAPTURE: tuple[str, ...] = ("ip-neigh", "nstat")


def base_commands() -> list[CommandSpec]:
    return list(BASE_COMMANDS)


def after_capture_commands() -> list[CommandSpec]:
    by_id = {spec.id: spec for spec in BASE_COMMANDS}
    return [CommandSpec(id=f"{cid}.after-capture", argv=by_id[cid].argv,
                        timeout=by_id[cid].timeout, cap=by_id[cid].cap, root=by_id[cid].root,
                        phase="after-capture") for cid in AFTER_CAPTURE]


def validate_probe(addr: str) -> str:
    """``--probe`` must be an IP address: it ends up on a remote command line."""
    try:
        return str(ipaddress.ip_address(addr.strip()))
    except ValueError:
        raise UsageError(f"--probe {addr!r} is not an IP address") from None


def probe_commands(addresses: list[str]) -> list[CommandSpec]:
    return [_c(f"ip-route-get-{addr.replace(':', '_')}", "ip", "-j", "route", "get", addr)
            for addr in addresses]


def nsenter_prefix(pid: str | int) -> tuple[str, ...]:
    """``nsenter`` into the mount namespace of process ``pid`` (its network namespace is the
    host's: only the files, i.e. the CLI and its socket path, are the container's)."""
    if not str(pid).isdigit():
        raise ValueError(f"not a PID: {pid!r}")
    return ("nsenter", "--target", str(pid), "--mount", "--")


def root_command(pids: list[str]) -> CommandSpec:
    """Each daemon process's root directory next to our own (``/proc/self``: the command's,
    i.e. the host's), as ``PATH DEV:INODE`` lines. A container has its own root filesystem in
    its own mount namespace; a daemon merely in a private mount namespace (systemd's
    ``PrivateTmp``, ``ip netns exec``) keeps the host's root, and its CLI runs from the host."""
    paths = [f"/proc/{pid}/root" for pid in pids if str(pid).isdigit()]
    return _c("daemon-root", "stat", "-L", "-c", "%n %d:%i", "/proc/self/root", *paths,
              root=True)


def parse_roots(output: bytes) -> tuple[str | None, dict[str, str]]:
    """(our root's ``dev:inode``, {pid: its root's}) from :func:`root_command`'s output."""
    own, by_pid = None, {}
    for line in output.decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) != 2 or ":" not in parts[1]:
            continue
        path, identity = parts
        pid = path.split("/")[2] if path.count("/") == 3 else ""
        if pid == "self":
            own = identity
        elif pid.isdigit():
            by_pid[pid] = identity
    return own, by_pid


@dataclass(frozen=True)
class CiliumForm:
    """One generation of Cilium's BGP CLI: the peers command (tried to detect it) and the
    routes commands of the same generation."""

    name: str
    peers: tuple[str, ...]
    routes: tuple[str, ...]
    advertised: tuple[str, ...]


_SHELL = ("cilium-dbg", "shell", "--")
CILIUM_FORMS: tuple[CiliumForm, ...] = (
    CiliumForm("shell-detailed", (*_SHELL, "bgp/peers", "-f", "detailed"),
               (*_SHELL, "bgp/routes", "loc", "ipv4", "unicast"),
               (*_SHELL, "bgp/routes", "out", "ipv4", "unicast")),
    CiliumForm("shell", (*_SHELL, "bgp/peers"),
               (*_SHELL, "bgp/routes", "available", "ipv4", "unicast"),
               (*_SHELL, "bgp/routes", "advertised", "ipv4", "unicast")),
    CiliumForm("bgp-json", ("cilium-dbg", "bgp", "peers", "-o", "json"),
               ("cilium-dbg", "bgp", "routes", "available", "ipv4", "unicast"),
               ("cilium-dbg", "bgp", "routes", "advertised", "ipv4", "unicast")),
    CiliumForm("bgp", ("cilium-dbg", "bgp", "peers"),
               ("cilium-dbg", "bgp", "routes", "available", "ipv4", "unicast"),
               ("cilium-dbg", "bgp", "routes", "advertised", "ipv4", "unicast")),
)


def cilium_commands(form: CiliumForm, prefix: tuple[str, ...] = (),
                    reached: str | None = None) -> list[CommandSpec]:
    """The routes and status commands of a detected form (its peers command already ran)."""
    root = bool(prefix)
    return [CommandSpec("cilium-bgp-routes", (*prefix, *form.routes), root=root,
                        daemon="CILIUM", reached=reached, timeout=60),
            CommandSpec("cilium-bgp-routes-advertised", (*prefix, *form.advertised), root=root,
                        daemon="CILIUM", reached=reached, timeout=60),
            CommandSpec("cilium-status", (*prefix, "cilium-dbg", "status"), root=root,
                        daemon="CILIUM", reached=reached)]


def cilium_peers_command(form: CiliumForm, prefix: tuple[str, ...] = (),
                         reached: str | None = None) -> CommandSpec:
    return CommandSpec("cilium-bgp-peers", (*prefix, *form.peers), root=bool(prefix),
                       daemon="CILIUM", reached=reached)


def daemon_commands(daemon: str, options: dict[str, str],
                    prefix: tuple[str, ...] = ()) -> list[CommandSpec]:
    """Commands for one detected daemon; ``options`` carries sockets/paths found by detection
    (and ``client``: ``birdcl`` for a containerised BIRD); ``prefix`` is :func:`nsenter_prefix`
    for a daemon in another mount namespace. CILIUM's are :func:`cilium_commands` (after form
    detection); here its first form stands for the plan."""
    reached = "nsenter" if prefix else None
    if daemon == "CILIUM":
        return [cilium_peers_command(CILIUM_FORMS[0], prefix, reached),
                *cilium_commands(CILIUM_FORMS[0], prefix, reached)]
    if daemon == "BIRD":
        client = options.get("client") or "birdc"
        specs = []
        for socket, tag in ((options.get("socket"), "bird"), (options.get("socket6"), "bird6")):
            if tag == "bird6" and not socket:
                continue
            birdc = [*prefix, client] + (["-s", socket] if socket else [])
            specs += [
                CommandSpec(f"{tag}-protocols-all", (*birdc, "show", "protocols", "all"),
                            root=True, daemon="BIRD", reached=reached),
                CommandSpec(f"{tag}-route-all", (*birdc, "show", "route", "all"), root=True,
                            daemon="BIRD", timeout=60, reached=reached),
                CommandSpec(f"{tag}-status", (*birdc, "show", "status"), root=True,
                            daemon="BIRD", reached=reached)]
        return specs
    return [CommandSpec(s.id, (*prefix, *s.argv), s.timeout, s.cap, s.root or bool(prefix),
                        s.daemon, s.phase, reached) for s in _daemon_commands(daemon, options)]


def _daemon_commands(daemon: str, options: dict[str, str]) -> list[CommandSpec]:
    if daemon == "FRR":
        vtysh = ["vtysh"] + (["--vty_socket", options["vty_socket"]]
                             if options.get("vty_socket") else [])
        return [_c(id, *vtysh, "-c", show, root=True, daemon="FRR") for id, show in (
            ("frr-bgp-summary", "show bgp summary json"),
            ("frr-bgp-ipv4-unicast", "show bgp ipv4 unicast json"),
            ("frr-bgp-neighbors", "show bgp neighbors json"),
            ("frr-ip-route", "show ip route json"),
            ("frr-version", "show version"),
        )]
    if daemon == "GOBGP":
        gobgp = ["gobgp"] + (["--port", options["port"]] if options.get("port") else [])
        return [_c("gobgp-version", "gobgp", "--version", daemon="GOBGP"),
                _c("gobgp-neighbor", *gobgp, "neighbor", "-j", daemon="GOBGP"),
                _c("gobgp-global-rib", *gobgp, "global", "rib", "-j", daemon="GOBGP")]
    if daemon == "CALICO":
        return [_c("calico-node-status", "calicoctl", "node", "status", root=True,
                   daemon="CALICO")]
    raise ValueError(f"unknown daemon {daemon}")


def gobgp_adj_in_commands(neighbor_json: bytes, options: dict[str, str]) -> list[CommandSpec]:
    """``gobgp neighbor ADDR adj-in -j`` for every neighbour listed by ``gobgp neighbor -j``."""
    try:
        neighbors = json.loads(neighbor_json)
    except ValueError:
        return []
    gobgp = ["gobgp"] + (["--port", options["port"]] if options.get("port") else [])
    specs = []
    for entry in neighbors if isinstance(neighbors, list) else []:
        address = (entry.get("state") or {}).get("neighbor_address") or \
            (entry.get("conf") or {}).get("neighbor_address")
        try:
            address = str(ipaddress.ip_address(address))
        except (ValueError, TypeError):
            continue  # only addresses go onto a remote command line
        specs.append(_c(f"gobgp-adj-in-{address.replace(':', '_')}", *gobgp, "neighbor",
                        address, "adj-in", "-j", daemon="GOBGP"))
    return specs


MAX_ETHTOOL_DEVICES = 32
ETHTOOL_PREFIX = "ethtool-k-"
_TUNNEL_KINDS = ("vxlan", "geneve", "ipip", "gre", "gretap", "wireguard")


def ethtool_commands(ip_link_json: bytes) -> list[CommandSpec]:
    """``ethtool -k DEV`` for the devices of ``ip -j -d link`` (loopback left out): the tunnel
    devices, then devices of other kinds (NICs, bonds, VLANs), then veths, in ``ip link``
    order, at most :data:`MAX_ETHTOOL_DEVICES` (a node with hundreds of pod veths)."""
    try:
        links = json.loads(ip_link_json)
    except ValueError:
        return []
    ranked = []
    for position, link in enumerate(links if isinstance(links, list) else []):
        if not isinstance(link, dict):
            continue
        name = link.get("ifname")
        if not isinstance(name, str) or not name or name == "lo" or \
                not set(name) <= _IFACE_CHARS or name.startswith("-"):
            continue                    # only plain device names go onto a command line
        kind = ((link.get("linkinfo") or {}).get("info_kind")
                if isinstance(link.get("linkinfo"), dict) else None)
        rank = 0 if kind in _TUNNEL_KINDS else 2 if kind == "veth" else 1
        ranked.append((rank, position, name))
    return [_c(f"{ETHTOOL_PREFIX}{name}", "ethtool", "-k", name)
            for _rank, _position, name in sorted(ranked)[:MAX_ETHTOOL_DEVICES]]


@dataclass(frozen=True)
class CaptureOptions:
    duration: float
    bpf_filter: str = ""
    iface: str = "any"
    max_packets: int = 100_000
    max_bytes: int = 200 * MIB
    snaplen: int = 262144


def capture_argv(options: CaptureOptions) -> tuple[str, ...]:
    """tcpdump bounded on the remote side by time (``timeout -s INT``) and packet count.

    ``-U -w -`` streams packet-buffered pcap on stdout (no TTY); bytes are bounded by the reader.
    The filter is one argv element; :func:`validate_capture` refuses a leading ``-`` so that it
    can never be read as a tcpdump option, and an interface name that is not a plain name.
    """
    argv = ["timeout", "--preserve-status", "-s", "INT", "-k", "5", f"{options.duration:g}",
            "tcpdump", "-n", "-U", "-w", "-", "-i", options.iface, "-s", str(options.snaplen),
            "-c", str(options.max_packets)]
    if options.bpf_filter:
        argv.append(options.bpf_filter)
    return tuple(argv)


_IFACE_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:@-")


def validate_capture(options: CaptureOptions) -> CaptureOptions:
    if options.duration <= 0:
        raise UsageError("--capture needs a positive duration")
    if options.bpf_filter.lstrip().startswith("-"):
        raise UsageError("--filter must be a BPF expression, not an option")
    if not options.iface or options.iface.startswith("-") or not set(options.iface) <= _IFACE_CHARS:
        raise UsageError(f"--iface {options.iface!r} is not an interface name")
    if options.max_packets <= 0 or options.max_bytes <= 24:
        raise UsageError("--max-packets and --max-bytes must be positive")
    return options
