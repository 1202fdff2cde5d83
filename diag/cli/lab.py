"""``diag lab``: up, status, exec, faults, fault, heal, down, kube apply — argv to one call of
:mod:`diag.lab`, no logic here.

Imports of the lab package happen inside the commands so ``diag --help`` stays fast.
"""
from __future__ import annotations

import sys
from typing import Annotated, List

import typer

from diag.cli.app import app as root
from diag.cli.app import run as _run

app = typer.Typer(help="The namespace lab: a cross-subnet cluster with real FRR, GoBGP/BIRD and "
                       "sshd in network namespaces (root only).",
                  no_args_is_help=True, add_completion=False, rich_markup_mode=None)

NAME_HELP = "Lab name; prefixes its namespaces (<name>-router, <name>-k8s-w1, ...)."
LabName = Annotated[str, typer.Option("--name", help=NAME_HELP)]


@app.command("up")
def up_command(
    cni: str = typer.Option("cilium", "--cni", help="cilium (GoBGP, static pod-range route) or calico (BIRD installs routes)."),
    mode: str = typer.Option("native", "--mode", help="native or vxlan (Linux vxlan on UDP 8472, MTU 1450)."),
    addressing: str = typer.Option("default", "--addressing", help="default or alt (other subnets, pod range, NIC names, AS numbers)."),
    bird: str = typer.Option("1.6", "--bird", help="calico: 1.6 (Calico's BIRD, from /opt/diag-bird1) or 2."),
    peering: str = typer.Option("address", "--peering", help="How the router peers: address (a neighbor per node), interface (the node behind the router by interface, on a /31) or range (dynamic neighbours: bgp listen range + peer-group)."),
    cilium_api: str = typer.Option("v2", "--cilium-api", help="cilium: the BGP CRDs' version, v2 (Cilium 1.18) or v2alpha1 (1.16-1.17)."),
    kube_deny: List[str] = typer.Option([], "--kube-deny", metavar="RESOURCE", help="An API resource the lab's Kubernetes endpoint answers with 403 (e.g. ciliumnodes.cilium.io); repeatable; later: edit RUN/kube/denied."),
    name: LabName = "diag",
) -> None:
    """Build the lab; return when every BGP session is Established and pods can reach each other."""
    def call() -> int:
        from diag.lab import Lab
        from diag.lab.status import ready_lines, status

        lab = Lab.up(name, cni=cni, mode=mode, addressing=addressing, bird=bird,
                     peering=peering, cilium_api=cilium_api, kube_denied=tuple(kube_deny),
                     progress=lambda msg: print(f"diag lab: {msg}", file=sys.stderr))
        st = status(lab)
        t = lab.state.timings
        print(f"lab {name} is up: {cni}, {mode}, addressing {addressing}; "
              f"{sum(p['established'] for p in st['bgp'] if 'error' not in p)} BGP session ends "
              f"Established; bring-up {t['bringup_s']:.1f} s")
        print(f"run dir: {lab.run_dir}")
        print("\n".join(ready_lines(st)))
        return 0

    _run(call)


@app.command("status")
def status_command(
    name: LabName = "diag",
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Namespaces, daemons, BGP state per peer, SSH endpoints, timings, the collect command."""
    def call() -> int:
        import json

        from diag.lab import Lab
        from diag.lab.environment import check
        from diag.lab.status import render_text, status

        check()
        st = status(Lab.load(name))
        print(json.dumps(st, indent=1) if as_json else render_text(st))
        return 0

    _run(call)


@app.command("exec")
def exec_command(
    node: str = typer.Argument(..., metavar="NODE", help="router, k8s-ctr, k8s-w1 or k8s-w0."),
    command: List[str] = typer.Argument(..., metavar="CMD", help="The command (after --)."),
    name: LabName = "diag",
    pod: bool = typer.Option(False, "--pod", help="Run in the node's pod namespace instead."),
) -> None:
    """Run a command on a lab host (its namespace, hostname, daemon sockets): exec NODE -- CMD."""
    def call() -> int:
        import subprocess

        from diag.errors import UsageError
        from diag.lab import Lab
        from diag.lab.environment import check

        check()
        argv = command[1:] if command and command[0] == "--" else list(command)
        if not argv:
            raise UsageError("no command given", hint="diag lab exec NODE -- CMD [ARGS...]")
        lab = Lab.load(name)
        prefix = lab.enter_argv(node)            # also rejects unknown hosts, naming the known
        if pod:
            if not lab.hosts[node].pod_netns:
                raise UsageError(f"{node} has no pod (the router is not a node)")
            prefix = ["ip", "netns", "exec", lab.hosts[node].pod_netns]
        try:
            return subprocess.run(prefix + argv).returncode
        except FileNotFoundError as err:
            raise UsageError(f"cannot run {argv[0]}: {err}") from None

    _run(call)


@app.command("faults")
def faults_command(
    name: str = typer.Option("diag", "--name", help=NAME_HELP + " Marks what applies to it."),
) -> None:
    """The fault table: name, what it breaks, expected first finding code, where it applies."""
    def call() -> int:
        from diag.lab.faults.render import fault_table

        print(fault_table(name))
        return 0

    _run(call)


@app.command("fault")
def fault_command(
    fault: str = typer.Argument(..., metavar="NAME", help="A fault from `diag lab faults`."),
    name: LabName = "diag",
) -> None:
    """Apply one fault (healing any other first); return once live probes show its symptom."""
    def call() -> int:
        from diag.lab import Lab, faults
        from diag.lab.environment import check
        from diag.lab.faults.render import outcome_lines

        check()
        lab = Lab.load(name)
        out = faults.apply(lab, fault, say=lambda m: print(f"diag lab: {m}", file=sys.stderr))
        print("\n".join(outcome_lines(lab, out)))
        return 0

    _run(call)


@app.command("heal")
def heal_command(
    fault: str = typer.Argument(None, metavar="[NAME]", help="The fault to heal (default: the active one)."),
    name: LabName = "diag",
) -> None:
    """Undo a fault (idempotent); return once live probes show the healthy state again."""
    def call() -> int:
        from diag.lab import Lab, faults
        from diag.lab.environment import check
        from diag.lab.faults.render import outcome_lines

        check()
        lab = Lab.load(name)
        out = faults.heal(lab, fault, say=lambda m: print(f"diag lab: {m}", file=sys.stderr))
        print("\n".join(outcome_lines(lab, out)))
        return 0

    _run(call)


@app.command("down")
def down_command(
    name: LabName = "diag",
    all_labs: bool = typer.Option(False, "--all", help="Remove every lab on this host."),
) -> None:
    """Stop every daemon by PID, delete every namespace and the run directory."""
    def call() -> int:
        from diag.lab import existing_labs, lab_exists, teardown
        from diag.lab.environment import check
        from diag.lab.lab import validate

        validate(name)
        check()
        names = existing_labs() if all_labs else [name]
        if all_labs and not names:
            print("no labs to remove")
        if not all_labs and not lab_exists(name):
            print(f"no lab {name!r}: nothing to remove")
            return 0
        for lab_name in names:
            seconds = teardown(lab_name)
            print(f"lab {lab_name} removed in {seconds:.2f} s")
        return 0

    _run(call)


kube = typer.Typer(help="The lab's Kubernetes objects (a lab part: a small API endpoint serves "
                        "the files in RUN/kube/objects to kubectl).",
                   no_args_is_help=True, add_completion=False, rich_markup_mode=None)


@kube.command("apply")
def kube_apply_command(
    name: LabName = "diag",
) -> None:
    """Bring the daemons in line with the objects after you edited RUN/kube/objects/*.json, as
    Cilium's operator and agent (GoBGP peers, advertised prefixes, L2 announcements) or
    calico-node (BIRD reconfigured) would; prints what changed."""
    def call() -> int:
        from diag.lab import Lab
        from diag.lab.environment import check

        check()
        notes = Lab.load(name).cluster.apply()
        print("\n".join(notes) if notes else "nothing to change: the daemons run the objects")
        return 0

    _run(call)


app.add_typer(kube, name="kube")
root.add_typer(app, name="lab")
