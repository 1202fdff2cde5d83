"""The declared command catalogue: one :class:`CommandSpec` per command, each with a stable id.

The id names the output file (``hosts/<host>/<id>.out``) and is what parsers key on; it never
changes meaning. Adding a command is one line here plus a parser. Commands are argv lists (never
shell strings); transports quote every element. All run with ``LC_ALL=C``.

``base_commands`` runs on every host; ``daemon_commands`` only where :mod:`diag.collect.detect`
found the daemon (with the socket/config arguments detection learned); ``probe_commands`` for each
``--probe ADDR``; ``ethtool_commands`` one ``ethtool -k DEV`` per device the host's ``ip -j -d
link`` lists (checksum offload settings: tunnel devices first, then NICs, then veths, at most
:data:`MAX_ETHTOOL_DEVICES`); ``capture_argv`` builds the bounded tcpdump command.
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


def daemon_commands(daemon: str, options: dict[str, str]) -> list[CommandSpec]:
    """Commands for one detected daemon; ``options`` carries sockets/paths found by detection."""
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
    if daemon == "BIRD":
        birdc = ["birdc"] + (["-s", options["socket"]] if options.get("socket") else [])
        return [_c("bird-protocols-all", *birdc, "show", "protocols", "all", root=True,
                   daemon="BIRD"),
                _c("bird-route-all", *birdc, "show", "route", "all", root=True, daemon="BIRD",
                   timeout=60),
                _c("bird-status", *birdc, "show", "status", root=True, daemon="BIRD")]
    if daemon == "CILIUM":
        return [_c("cilium-bgp-peers", "cilium-dbg", "bgp", "peers", root=True, daemon="CILIUM"),
                _c("cilium-bgp-routes", "cilium-dbg", "bgp", "routes", root=True,
                   daemon="CILIUM")]
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
