"""Who to collect from: command-line targets and inventory files turned into :class:`Target`.

Command line: ``[user@]host[:port]`` (IPv6 as ``[addr]:port``); ``host`` may be any name the SSH
config knows (``Host`` aliases), and ``local`` means the machine diag runs on (local transport).

Inventory: TOML (``.toml``) or JSON (anything else)::

    [defaults]             # optional, applies to every host
    user = "root"
    [[hosts]]
    name = "k8s-w1"        # how the host is named in the bundle (required, unique)
    address = "10.0.0.5"   # what SSH connects to; defaults to name (so SSH config aliases work)
    user = "root"          # optional; else the SSH config's User, else the local user
    port = 22              # optional; else the SSH config's Port
    transport = "ssh"      # or "local"
    role = "node"          # declared model fields, recorded in the manifest as "declared":
    labels = { rack = "a" }
    pod_cidr = "10.244.1.0/24"
    cluster_iface = "eth1"
    lb_ips = ["192.0.2.10"]

Malformed input raises :class:`diag.errors.UsageError` with one line naming the problem.
"""
from __future__ import annotations

import ipaddress
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diag.errors import UsageError

_HOSTNAME = re.compile(r"^[A-Za-z0-9_.%:-]+$")
_USER = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*$")
ROLES = ("node", "router", "other")
DECLARED_FIELDS = ("role", "labels", "pod_cidr", "cluster_iface", "lb_ips")


@dataclass(frozen=True)
class Target:
    """One host to collect from. ``name`` keys it in the bundle; ``address`` is what SSH dials."""

    name: str
    address: str
    user: str | None = None
    port: int | None = None
    transport: str = "ssh"
    declared: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return "local" if self.transport == "local" else f"{user}{host}{port}"


def parse_target(text: str) -> Target:
    """``[user@]host[:port]`` or ``local`` -> Target."""
    text = text.strip()
    if text == "local":
        return Target(name="local", address="localhost", transport="local")
    user = None
    if "@" in text:
        user, text = text.rsplit("@", 1)
        _check_user(user, text)
    port: int | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise UsageError(f"bad target {text!r}: expected [ipv6]:port")
        if rest:
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port(port_text, text)
    else:
        host = text  # a bare IPv6 address has several colons and no port
    if not host or not _HOSTNAME.match(host) or host.startswith("-"):
        raise UsageError(f"bad target host {host!r}")
    return Target(name=host if port is None else f"{host}:{port}", address=host, user=user,
                  port=port)


def _check_user(user: str, where: str) -> None:
    if not _USER.match(user):
        raise UsageError(f"bad user {user!r} for {where!r}")


def _port(text: str, where: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise UsageError(f"bad port {text!r} in target {where!r}") from None
    if not 0 < port < 65536:
        raise UsageError(f"port out of range in target {where!r}")
    return port


def load_inventory(path: Path) -> list[Target]:
    """Read a TOML or JSON inventory (see module docstring)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read inventory {path}: {err.strerror}") from None
    try:
        if Path(path).suffix == ".toml":
            data = tomllib.loads(raw.decode())
        else:
            data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise UsageError(f"inventory {path} is not valid {Path(path).suffix or 'JSON'}: "
                         f"{str(err).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("hosts"), list):
        raise UsageError(f"inventory {path} needs a 'hosts' list")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise UsageError(f"inventory {path}: 'defaults' must be a table")
    targets = [_inventory_host({**defaults, **host} if isinstance(host, dict) else host, path, i)
               for i, host in enumerate(data["hosts"])]
    names = [t.name for t in targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"inventory {path}: duplicate host names {', '.join(duplicates)}")
    return targets


def _inventory_host(entry: Any, path: Path, index: int) -> Target:
    where = f"inventory {path} host #{index + 1}"
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise UsageError(f"{where}: each host needs a 'name'")
    known = {"name", "address", "user", "port", "transport", *DECLARED_FIELDS}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise UsageError(f"{where}: unknown field(s) {', '.join(unknown)}")
    name = entry["name"]
    address = entry.get("address", name)
    transport = entry.get("transport", "ssh")
    if transport not in ("ssh", "local"):
        raise UsageError(f"{where}: transport must be ssh or local")
    if not isinstance(address, str) or not _HOSTNAME.match(address) or address.startswith("-"):
        raise UsageError(f"{where}: bad address {address!r}")
    user = entry.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise UsageError(f"{where}: user must be a string")
        _check_user(user, where)
    port = entry.get("port")
    if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
        raise UsageError(f"{where}: bad port {port!r}")
    declared = {key: entry[key] for key in DECLARED_FIELDS if key in entry}
    _check_declared(declared, where)
    return Target(name=name, address=address, user=user, port=port, transport=transport,
                  declared=declared)


def _check_declared(declared: dict[str, Any], where: str) -> None:
    role = declared.get("role")
    if role is not None and role not in ROLES:
        raise UsageError(f"{where}: role must be one of {', '.join(ROLES)}")
    labels = declared.get("labels")
    if labels is not None and not (isinstance(labels, dict)
                                   and all(isinstance(v, str) for v in labels.values())):
        raise UsageError(f"{where}: labels must be a table of strings")
    if "pod_cidr" in declared:
        cidrs = declared["pod_cidr"]
        for cidr in cidrs if isinstance(cidrs, list) else [cidrs]:
            try:
                ipaddress.ip_network(cidr)
            except (ValueError, TypeError):
                raise UsageError(f"{where}: bad pod_cidr {cidr!r}") from None
    if "cluster_iface" in declared and not isinstance(declared["cluster_iface"], str):
        raise UsageError(f"{where}: cluster_iface must be a string")
    for ip in declared.get("lb_ips", []) or []:
        try:
            ipaddress.ip_address(ip)
        except (ValueError, TypeError):
            raise UsageError(f"{where}: bad lb_ips entry {ip!r}") from None
