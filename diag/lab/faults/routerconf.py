"""Live changes to the router's FRR through vtysh (``conf t``; nothing is written to disk).

Contract: each function sets one knob to the given value and is idempotent; a later restart of
bgpd (from its healthy config file) undoes all of them, which is the healthy state anyway.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from diag.lab import Lab

DENY_ALL = "DIAG-FAULT-DENY-ALL"


def _router_bgp(lab: "Lab", *commands: str) -> None:
    lab.daemons.vtysh("conf t", f"router bgp {lab.plan.router.asn}", *commands, check=False)


def export_to(lab: "Lab", node_ips: Iterable[str], *, allowed: bool) -> None:
    """Filter (or stop filtering) everything the router sends to these neighbors."""
    ips = list(node_ips)
    if not allowed:
        lab.daemons.vtysh("conf t", f"route-map {DENY_ALL} deny 10", check=False)
    verb = "" if not allowed else "no "
    _router_bgp(lab, "address-family ipv4 unicast",
                *[f"{verb}neighbor {ip} route-map {DENY_ALL} out" for ip in ips])
    for ip in ips:
        lab.daemons.vtysh(f"clear bgp ipv4 unicast {ip} soft out", check=False)


def ebgp_requires_policy(lab: "Lab", on: bool) -> None:
    _router_bgp(lab, ("" if on else "no ") + "bgp ebgp-requires-policy")
    lab.daemons.vtysh("clear bgp * soft", check=False)


def md5_password(lab: "Lab", node_ip: str, password: str) -> None:
    """Set the TCP-MD5 password towards ``node_ip`` — only if it differs: FRR resets the session
    on every change, and an idempotent heal must not break a healthy session."""
    if f"neighbor {node_ip} password {password}\n" in running_config(lab):
        return
    _router_bgp(lab, f"neighbor {node_ip} password {password}")


def running_config(lab: "Lab") -> str:
    return lab.daemons.vtysh("show running-config", check=False).stdout
