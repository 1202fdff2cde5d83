"""``diag collect [TARGET...] [--kube]``: argv -> a :class:`~diag.collect.request.CollectRequest`
-> :func:`diag.pipeline.collect` -> the summary (:mod:`diag.report.collect`).

Exit status: ``OK`` for a complete bundle, ``INCOMPLETE`` (3) for a partial one (a host not
reached, a command failed, an RBAC refusal of ``--kube``, a node with no agent pod for
``--via kubectl``), ``ENVIRONMENT`` (5) when ``--kube`` finds no kubectl.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from diag.cli.app import app, run
from diag.errors import ExitStatus, UsageError

FORMATS = ("text", "json")


@app.command("collect")
def collect_command(
    targets: List[str] = typer.Argument(None, help="[user@]host[:port], SSH config names, or 'local'."),
    inventory: Optional[Path] = typer.Option(None, "--inventory", "-i", help="Inventory file (TOML or JSON)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Bundle directory (new or empty)."),
    archive: bool = typer.Option(False, "--archive", help="Also write BUNDLE.tar.gz."),
    ssh_config: Optional[Path] = typer.Option(None, "--ssh-config", help="OpenSSH config (default ~/.ssh/config)."),
    identity: List[Path] = typer.Option([], "--identity", help="Private key file (repeatable)."),
    known_hosts: Optional[Path] = typer.Option(None, "--known-hosts", help="known_hosts file (default: from the SSH config, else ~/.ssh/known_hosts)."),
    accept_new_host_keys: bool = typer.Option(False, "--accept-new-host-keys", help="Record keys of hosts never seen before (like OpenSSH accept-new); changed keys are still refused."),
    probe: List[str] = typer.Option([], "--probe", help="Address for `ip route get` (repeatable)."),
    capture: Optional[str] = typer.Option(None, "--capture", help="Capture on every host at once for DURATION (e.g. 10s)."),
    bpf_filter: str = typer.Option("", "--filter", help="BPF filter for --capture."),
    iface: str = typer.Option("any", "--iface", help="Interface for --capture."),
    max_packets: int = typer.Option(100000, "--max-packets", help="Packet bound per host capture."),
    max_bytes: str = typer.Option("200M", "--max-bytes", help="Byte bound per host capture."),
    fanout: int = typer.Option(16, "--fanout", help="Hosts collected at the same time."),
    connect_timeout: str = typer.Option("10s", "--connect-timeout", help="SSH connection timeout."),
    command_timeout: Optional[str] = typer.Option(None, "--command-timeout", help="Override every command's timeout."),
    deadline: str = typer.Option("15m", "--deadline", help="Global deadline for the whole run."),
    redact_string: List[str] = typer.Option([], "--redact-string", help="A secret you know; removed wherever it appears (repeatable)."),
    kube: bool = typer.Option(False, "--kube", help="Also read the cluster's objects with your kubectl (alone or with hosts)."),
    kubectl: str = typer.Option("kubectl", "--kubectl", help="The kubectl binary for --kube (name on PATH or path)."),
    kubeconfig: Optional[Path] = typer.Option(None, "--kubeconfig", help="kubeconfig for --kube (default: as kubectl, KUBECONFIG or ~/.kube/config)."),
    context: Optional[str] = typer.Option(None, "--context", help="kubeconfig context for --kube (default: the current one)."),
    via: Optional[str] = typer.Option(None, "--via", help="With --kube: 'kubectl' makes every Node a host, reached through its CNI agent pod (kubectl exec; no SSH)."),
    debug_image: Optional[str] = typer.Option(None, "--debug-image", help="With --via kubectl: capture from a `kubectl debug node` pod of this image when the agent image has no tcpdump."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would run where; contact nothing."),
    fmt: str = typer.Option("text", "--format", help="Summary: text or json."),
) -> None:
    """Collect an evidence bundle from many hosts over SSH (and/or locally), and with --kube the
    cluster's objects through kubectl."""
    from diag import pipeline

    request = pipeline.collect_request(
        targets=tuple(targets or ()), inventory=inventory, out=out, archive=archive,
        ssh_config=ssh_config, identity=tuple(identity), known_hosts=known_hosts,
        accept_new_host_keys=accept_new_host_keys, probe=tuple(probe), capture=capture,
        bpf_filter=bpf_filter, iface=iface, max_packets=max_packets, max_bytes=max_bytes,
        fanout=fanout, connect_timeout=connect_timeout, command_timeout=command_timeout,
        deadline=deadline, redact_string=tuple(redact_string), kube=kube, kubectl=kubectl,
        kubeconfig=kubeconfig, context=context, via=via, debug_image=debug_image)
    run(lambda: _collect(request, dry_run, fmt))


def _collect(request, dry_run: bool, fmt: str) -> ExitStatus:
    from diag import pipeline
    from diag.report.collect import render_plan, render_summary

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: expected text or json")
    options = pipeline.collect_options(request)
    if dry_run:
        render_plan(**pipeline.collect_plan(options), fmt=fmt)
        return ExitStatus.OK
    view = pipeline.collect_view()
    try:
        with view:
            result = pipeline.collect(options, listener=view.update)
    except KeyboardInterrupt:
        print(f"diag: partial bundle left in {options.out}", file=sys.stderr)
        raise
    render_summary(pipeline.collect_summary(result), fmt)
    return ExitStatus.OK if result.status == "complete" else ExitStatus.INCOMPLETE
