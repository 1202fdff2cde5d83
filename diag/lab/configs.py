"""Daemon and SSH configuration text for the lab, rendered from the plan (pure functions, no I/O).

Contract: each ``render_*`` function takes the addressing plan, the host, the lab options and the
file paths it must reference, and returns the configuration file's text. The healthy baseline is
encoded here:

- FRR on the router: ``no bgp ebgp-requires-policy`` (FRR's RFC 8212 default would drop every eBGP
  route without a policy), low timers (keepalive 3 s, hold 9 s, connect retry 1 s) for a fast
  bring-up, TCP-MD5 towards :data:`~diag.lab.plan.MD5_PEER`.
- GoBGP on cilium nodes: dials out only (``port = -1``: no listener on 179, as Cilium's embedded
  GoBGP), ``allow-own-as = 1`` because the nodes share one AS and would drop each other's routes as
  AS-path loops otherwise. GoBGP never programs the kernel; the static pod-range route does.
- BIRD on calico nodes: ``allow local as`` for the same reason, kernel export of BGP routes only,
  the node's pod CIDR originated from a static blackhole route (as Calico does for its blocks),
  ``error wait time 1, 5`` so that a healed session comes back in seconds, not minutes.
- sshd: key-only authentication with the lab's key, its own host key, listening only inside the
  host's namespace.

Faults (issue 5, :mod:`diag.lab.faults`) re-render these with other arguments rather than patching
text: ``passive_nodes`` (GoBGP ``passive-mode``), ``kernel_table`` (BIRD's kernel protocol table),
``peer_as_override``, ``allow_own_as`` and the others on :class:`BgpOptions`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from diag.lab.plan import MD5_PEER, AddressingPlan, Host

KEEPALIVE = 3
HOLD = 9
CONNECT_RETRY = 1


@dataclass(frozen=True)
class BgpOptions:
    """Knobs of the healthy BGP baseline that faults turn (defaults = healthy)."""

    md5_password: str
    ebgp_requires_policy: bool = False          # FRR: the RFC 8212 default when True
    allow_own_as: bool = True                   # GoBGP allow-own-as / BIRD allow local as
    passive_towards: frozenset[str] = field(default_factory=frozenset)  # FRR passive neighbors
    peer_as_override: dict[str, int] = field(default_factory=dict)      # node -> wrong peer AS
    md5_override: dict[str, str] = field(default_factory=dict)          # host -> other password
    advertise: bool = True                       # nodes originate their pod CIDR
    passive_nodes: frozenset[str] = field(default_factory=frozenset)  # GoBGP passive-mode
    kernel_table: int | None = None              # BIRD: export BGP routes to this table


def _md5_for(opts: BgpOptions, host: str) -> str:
    return opts.md5_override.get(host, opts.md5_password)


def render_zebra(plan: AddressingPlan, router: Host) -> str:
    return f"hostname {router.name}\n!\n"


def render_bgpd(plan: AddressingPlan, router: Host, opts: BgpOptions) -> str:
    lines = [
        "frr defaults traditional",
        f"hostname {router.name}",
        "!",
        f"router bgp {router.asn}",
        f" bgp router-id {router.nics[0].ip}",
        " bgp ebgp-requires-policy" if opts.ebgp_requires_policy else " no bgp ebgp-requires-policy",
        " no bgp network import-check",
        f" timers bgp {KEEPALIVE} {HOLD}",
    ]
    for node in plan.nodes:
        lines += [
            f" neighbor {node.ip} remote-as {node.asn}",
            f" neighbor {node.ip} description {node.name}",
            f" neighbor {node.ip} timers connect {CONNECT_RETRY}",
        ]
        if node.name == MD5_PEER:
            lines.append(f" neighbor {node.ip} password {_md5_for(opts, router.name)}")
        if node.name in opts.passive_towards:
            lines.append(f" neighbor {node.ip} passive")
    lines += [" !", " address-family ipv4 unicast"]
    lines += [f"  neighbor {node.ip} activate" for node in plan.nodes]
    lines += [" exit-address-family", "exit", "!"]
    return "\n".join(lines) + "\n"


def render_gobgpd(plan: AddressingPlan, node: Host, opts: BgpOptions) -> str:
    router_nic = plan.router_nic_for(node)
    peer_as = opts.peer_as_override.get(node.name, plan.router.asn)
    lines = [
        "# GoBGP as embedded by Cilium's BGP control plane: dials out, never listens.",
        "[global.config]",
        f"  as = {node.asn}",
        f'  router-id = "{node.ip}"',
        "  port = -1",
        "",
        "[[neighbors]]",
        "  [neighbors.config]",
        f'    neighbor-address = "{router_nic.ip}"',
        f"    peer-as = {peer_as}",
        f'    description = "{plan.router.name}"',
    ]
    if node.name == MD5_PEER:
        lines.append(f'    auth-password = "{_md5_for(opts, node.name)}"')
    lines += [
        "  [neighbors.timers.config]",
        f"    connect-retry = {CONNECT_RETRY}",
        f"    hold-time = {HOLD}",
        f"    keepalive-interval = {KEEPALIVE}",
        "  [neighbors.transport.config]",
        f'    local-address = "{node.ip}"',
    ]
    if node.name in opts.passive_nodes:
        lines.append("    passive-mode = true")
    if opts.allow_own_as:
        lines += ["  [neighbors.as-path-options.config]", "    allow-own-as = 1"]
    lines += [
        "  [[neighbors.afi-safis]]",
        "    [neighbors.afi-safis.config]",
        '      afi-safi-name = "ipv4-unicast"',
    ]
    return "\n".join(lines) + "\n"


def bird_protocol_name(peer_ip: str) -> str:
    """Calico's name for a global BGP peer: ``Global_<ip with underscores>``."""
    return "Global_" + peer_ip.replace(".", "_")


def render_bird(plan: AddressingPlan, node: Host, opts: BgpOptions, log_path: Path) -> str:
    router_nic = plan.router_nic_for(node)
    peer_as = opts.peer_as_override.get(node.name, plan.router.asn)
    static = (f"protocol static pod_cidr {{ ipv4; route {node.pod_cidr} blackhole; }}"
              if opts.advertise else "# pod CIDR not originated")
    bgp = [
        f"protocol bgp {bird_protocol_name(router_nic.ip)} {{",
        f'  description "{plan.router.name}";',
        f"  local {node.ip} as {node.asn};",
        f"  neighbor {router_nic.ip} as {peer_as};",
    ]
    if opts.allow_own_as:
        bgp.append("  allow local as;")
    if node.name == MD5_PEER:
        bgp.append(f'  password "{_md5_for(opts, node.name)}";')
    bgp += [
        f"  hold time {HOLD}; keepalive time {KEEPALIVE};",
        f"  connect retry time {CONNECT_RETRY}; connect delay time 1; error wait time 1, 5;",
        "  ipv4 { import all; export where source = RTS_STATIC; };",
        "}",
    ]
    return "\n".join([
        f"router id {node.ip};",
        f'log "{log_path}" {{ info, remote, warning, error, auth, fatal, bug }};',
        "protocol device { scan time 10; }",
        "# Calico's BIRD installs what it learns; kernel gets BGP routes only.",
        "protocol kernel {"
        + (f" kernel table {opts.kernel_table};" if opts.kernel_table is not None else "")
        + " ipv4 { import none; export where source = RTS_BGP; }; }",
        static,
        *bgp,
    ]) + "\n"


def render_sshd(host: Host, *, host_key: Path, pid_file: Path, authorized_keys: Path,
                use_pam: bool) -> str:
    listen = ["127.0.0.1"] + [nic.ip for nic in host.nics if nic.segment != "mgmt"]
    return "\n".join([
        f"# diag lab sshd for {host.name}: key-only, inside the host's namespace",
        "Port 22",
        "AddressFamily inet",
        *[f"ListenAddress {addr}" for addr in listen],
        f"HostKey {host_key}",
        f"PidFile {pid_file}",
        f"AuthorizedKeysFile {authorized_keys}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        f"UsePAM {'yes' if use_pam else 'no'}",
        "AllowUsers root",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        # bash sources ~/.bashrc for a command run by sshd only when it is the top-level shell
        # (SHLVL < 2 after its own increment). The lab's hosts share the machine's root account,
        # whose ~/.bashrc belongs to the machine's user (pyenv init: ~0.16 s per command here),
        # not to the simulated node; starting at level 1 keeps every collected command as fast
        # as on a plain node.
        "SetEnv SHLVL=1",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
    ]) + "\n"


def render_ssh_config(lab_name: str, hosts: dict[str, str], *, identity: Path,
                      known_hosts: Path) -> str:
    """ssh_config for the lab: ``hosts`` maps host name -> namespace."""
    out = [f"# diag lab {lab_name}: generated by `diag lab up`; use with ssh -F THIS_FILE",
           "# Hosts are reached through their namespace; nothing is added to the root namespace."]
    for name, netns in hosts.items():
        out += [
            "",
            f"Host {name}",
            "  User root",
            f"  IdentityFile {identity}",
            "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {known_hosts}",
            "  GlobalKnownHostsFile /dev/null",
            "  StrictHostKeyChecking yes",
            "  PasswordAuthentication no",
            "  KbdInteractiveAuthentication no",
            "  ConnectTimeout 5",
            f"  ProxyCommand ip netns exec {netns} nc 127.0.0.1 22",
        ]
    return "\n".join(out) + "\n"


def render_known_hosts(host_keys: dict[str, str]) -> str:
    """known_hosts lines: host name -> public key line (``ssh-ed25519 AAAA... comment``)."""
    return "".join(f"{name} {' '.join(key.split()[:2])}\n" for name, key in host_keys.items())
