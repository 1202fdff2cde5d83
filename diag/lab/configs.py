"""The router's and the hosts' configuration text, rendered from the plan (pure functions, no
I/O); the knobs of the healthy BGP baseline (:class:`BgpOptions`) and its timers.

Contract: each ``render_*`` function takes the addressing plan, the host, the lab options and the
file paths it must reference, and returns the configuration file's text. The nodes' BGP daemons
are configured from the lab's Kubernetes objects instead (:mod:`diag.lab.kube_reconcile`, through
:mod:`diag.lab.cluster`), with the same timers and knobs. The healthy baseline:

- FRR on the router: ``no bgp ebgp-requires-policy`` (FRR's RFC 8212 default would drop every eBGP
  route without a policy), low timers (keepalive 3 s, hold 9 s, connect retry 1 s) for a fast
  bring-up, TCP-MD5 towards :data:`~diag.lab.plan.MD5_PEER`; its peers one neighbor per node
  address, by interface, or a dynamic neighbour range (the plan's ``peering``).
- the nodes (rendered elsewhere, see above): GoBGP dials out only (``port = -1``, as Cilium's
  embedded GoBGP) with ``allow-own-as = 1`` because the nodes share one AS; BIRD with ``allow
  local as`` for the same reason and ``error wait time 1, 5`` so that a healed session comes back
  in seconds.
- sshd: key-only authentication with the lab's key, its own host key, listening only inside the
  host's namespace.

Faults (:mod:`diag.lab.faults`) re-render the daemons' configuration with other
:class:`BgpOptions` rather than patching text: ``passive_nodes`` (GoBGP ``passive-mode``),
``kernel_table`` (BIRD's kernel protocol table), ``peer_as_override``, ``allow_own_as``,
``md5_override``, ``ebgp_requires_policy``, ``passive_towards``, ``advertise``.
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


PEER_GROUP = "K8S-NODES"       # the dynamic neighbours' peer-group (peering "range")


def render_bgpd(plan: AddressingPlan, router: Host, opts: BgpOptions) -> str:
    """bgpd.conf for the router, its peers as ``plan.peering`` says: a neighbor per node address;
    by interface for a node alone on its (/31) segment; or dynamic neighbours accepted from each
    node subnet into a peer-group, the TCP-MD5 node an explicit member of it (an explicit
    neighbor wins over a listen range; its password must not apply to the whole range)."""
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
    activate = []
    if plan.peering == "range":
        asn = plan.nodes[0].asn
        lines += [f" neighbor {PEER_GROUP} peer-group", f" neighbor {PEER_GROUP} remote-as {asn}",
                  f" neighbor {PEER_GROUP} description cluster nodes",
                  f" neighbor {PEER_GROUP} timers connect {CONNECT_RETRY}"]
        lines += [f" bgp listen range {cidr} peer-group {PEER_GROUP}"
                  for cidr in dict.fromkeys(plan.segment(n.cluster_nic.segment).cidr
                                            for n in plan.nodes)]
        activate.append(PEER_GROUP)
    for node in plan.nodes:
        if plan.peering == "range" and node.name != MD5_PEER:
            continue                   # accepted by the listen range
        if plan.interface_peered(node):
            peer = router.nic(node.cluster_nic.segment).name
            lines.append(f" neighbor {peer} interface remote-as {node.asn}")
        elif plan.peering == "range":
            peer = node.ip
            lines.append(f" neighbor {peer} peer-group {PEER_GROUP}")
        else:
            peer = node.ip
            lines.append(f" neighbor {peer} remote-as {node.asn}")
        lines += [
            f" neighbor {peer} description {node.name}",
            f" neighbor {peer} timers connect {CONNECT_RETRY}",
        ]
        if node.name == MD5_PEER:
            lines.append(f" neighbor {peer} password {_md5_for(opts, router.name)}")
        if node.name in opts.passive_towards:
            lines.append(f" neighbor {peer} passive")
        if plan.peering != "range":
            activate.append(peer)
    lines += [" !", " address-family ipv4 unicast"]
    lines += [f"  neighbor {peer} activate" for peer in activate]
    lines += [" exit-address-family", "exit", "!"]
    return "\n".join(lines) + "\n"


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
