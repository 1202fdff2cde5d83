"""Faults for the namespace lab: every failure of the catalogue, injected for real and healed again.

Python API::

    from diag.lab import Lab
    from diag.lab import faults

    faults.FAULTS                      # name -> Fault (base.py): breaks, injected_by, first_code,
                                       #   cnis, modes, inject/heal/symptom/healthy
    faults.applicable(lab)             # the faults that apply to this lab's cni/mode
    out = faults.apply(lab, "bgp-md5-mismatch")   # heals any other first; returns once the
                                       #   symptom is verified by live probes -> Outcome
    out.evidence                       # the probes' findings, one line each
    faults.heal(lab, "bgp-md5-mismatch")   # idempotent; returns once healthy is verified
    faults.heal(lab)                   # heal whatever is active (no-op if nothing)
    faults.active(lab)                 # ActiveFault (state.py) or None

Errors: an unknown name or a fault that does not apply to the lab's cni/mode is a
:class:`~diag.errors.UsageError` (exit 2); a symptom or healthy state not reached before the fault's
deadline is an :class:`~diag.errors.EnvironmentProblem` (exit 5) naming what was waited for (the
fault stays recorded so that ``heal`` can undo it).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from diag.errors import EnvironmentProblem, UsageError
from diag.lab.faults import arp, bgp, overlay, routing, state, tunnel
from diag.lab.faults.base import Fault, stop_background
from diag.lab.system import CommandFailed, wait_for

if TYPE_CHECKING:
    from diag.lab import Lab

ORDER = ["rib-not-in-fib", "missing-podcidr-route-other-subnet", "egress-leak-default-route",
         "route-wrong-table", "rp-filter-strict", "vxlan-port-mismatch", "overlay-mtu-blackhole",
         "overlay-udp-blocked", "vxlan-vni-mismatch", "overlay-checksum-broken",
         "overlay-drop-after-decap",
         "arp-unanswered", "arp-multiple-responders", "bgp-transport-blocked", "bgp-no-listener",
         "bgp-bad-peer-as", "bgp-hold-timer-expired", "bgp-md5-mismatch",
         "bgp-ebgp-requires-policy", "bgp-as-path-loop", "bgp-no-advertisement"]

_ALL = {f.name: f for f in routing.FAULTS + overlay.FAULTS + tunnel.FAULTS + arp.FAULTS
        + bgp.FAULTS}
FAULTS: dict[str, Fault] = {name: _ALL[name] for name in ORDER}
assert set(FAULTS) == set(_ALL), "every declared fault must be in ORDER"

active = state.read


@dataclass(frozen=True)
class Outcome:
    name: str
    action: str                 # "applied", "already active", "healed"
    evidence: tuple[str, ...]
    seconds: float
    healed_first: str | None = None


def get(name: str) -> Fault:
    try:
        return FAULTS[name]
    except KeyError:
        raise UsageError(f"no fault named {name!r}",
                         hint="list them with: diag lab faults") from None


def applicable(lab: "Lab") -> list[Fault]:
    if lab.plan.peering != "address":
        return []
    return [f for f in FAULTS.values() if f.applies_to(lab.cni, lab.mode)]


def check_applies(lab: "Lab", fault: Fault) -> None:
    if lab.plan.peering != "address":
        # the router-side faults and the probes name the router's neighbors by node address
        raise UsageError(
            f"lab {lab.name!r} peers by {lab.plan.peering} (--peering {lab.plan.peering}); "
            "faults are built for labs whose router has a neighbor per node address",
            hint="start one with the default --peering address")
    if not fault.applies_to(lab.cni, lab.mode):
        raise UsageError(
            f"fault {fault.name} applies to {fault.applies} labs; lab {lab.name!r} is "
            f"{lab.cni} {lab.mode}",
            hint=f"start a lab it applies to, e.g. diag lab up --name NAME --cni "
                 f"{fault.cnis[0]} --mode {fault.modes[0]}")


def apply(lab: "Lab", name: str, *, say: Callable[[str], None] | None = None) -> Outcome:
    """Inject fault ``name`` (healing any other first); return once its symptom is verified."""
    fault = get(name)
    check_applies(lab, fault)
    say = say or (lambda _msg: None)
    started = time.monotonic()
    current = state.read(lab)
    healed_first = None
    if current is not None and current.name == name and current.phase == "active":
        evidence = _wait(lab, fault.symptom, fault.symptom_timeout, f"{name}: symptom")
        return Outcome(name, "already active", tuple(evidence), time.monotonic() - started)
    if current is not None:
        say(f"healing {current.name} first")
        heal(lab, current.name)
        healed_first = current.name
    record = state.ActiveFault(name=name, phase="injecting")
    state.write(lab, record)
    say(f"injecting {name}: {fault.injected_by}")
    try:
        record.data = fault.inject(lab) or {}
    except (CommandFailed, RuntimeError, OSError) as err:
        raise EnvironmentProblem(f"lab {lab.name!r}: injecting {name} failed: {err}",
                                 hint=f"undo what was done with: diag lab heal {name} "
                                      f"--name {lab.name}") from err
    state.write(lab, record)
    say("verifying the symptom with live probes")
    evidence = _wait(lab, fault.symptom, fault.symptom_timeout, f"{name}: symptom")
    record.phase, record.evidence = "active", evidence
    record.seconds = round(time.monotonic() - started, 3)
    state.write(lab, record)
    return Outcome(name, "applied", tuple(evidence), time.monotonic() - started, healed_first)


def heal(lab: "Lab", name: str | None = None, *,
         say: Callable[[str], None] | None = None) -> Outcome:
    """Undo fault ``name`` (default: the active one); return once the healthy state is verified.
    Idempotent: healing a fault that is not present only verifies the healthy state."""
    say = say or (lambda _msg: None)
    started = time.monotonic()
    current = state.read(lab)
    if name is None:
        if current is None:
            return Outcome("", "nothing to heal", (), 0.0)
        name = current.name
    fault = get(name)
    check_applies(lab, fault)
    say(f"healing {name}")
    stop_background(lab)
    fault.heal(lab)
    say("verifying the healthy state with live probes")
    evidence = _wait(lab, fault.healthy, fault.healthy_timeout, f"{name}: healthy state")
    if current is not None and current.name == name:
        state.clear(lab)
    return Outcome(name, "healed", tuple(evidence), time.monotonic() - started)


def _wait(lab: "Lab", probe, timeout: float, what: str) -> list[str]:
    try:
        return list(wait_for(lambda: probe(lab), timeout=timeout, interval=0.2, what=what))
    except TimeoutError as err:
        raise EnvironmentProblem(f"lab {lab.name!r}: {err}",
                                 hint=f"inspect with: diag lab status --name {lab.name}; "
                                      f"undo with: diag lab heal --name {lab.name}") from None
