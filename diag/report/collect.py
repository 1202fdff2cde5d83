"""``diag collect`` output: the plan of a dry run and the summary of a finished collection.

Contract: :func:`render_plan(out, hosts, fmt, kube)` prints what ``--dry-run`` would run where
(the rows of :func:`diag.collect.runner.plan`, and the kubectl commands of
:func:`diag.collect.kube.plan_kube`); :func:`render_summary(data, fmt)` prints the summary dict
of :func:`diag.collect.progress.summary` as a table (text) or JSON, with a line per failed
kind of the kube part. Nothing is computed here.
"""
from __future__ import annotations

import json
from typing import Any

from diag.report.safe import visible


def render_plan(out: str, hosts: list[dict[str, Any]], fmt: str,
                kube: list[dict[str, Any]] | None = None) -> None:
    if fmt == "json":
        print(json.dumps({"dry_run": True, "out": out, "hosts": hosts, "kube": kube}, indent=1))
        return
    for row in hosts:
        print(visible(f"{row['host']} ({row['transport']}: {row['target']})"))
        for command in row["commands"]:
            sudo = " [sudo -n if not root]" if command["sudo_if_not_root"] else ""
            print(f"  {command['id']:<28} {' '.join(command['argv'])}"
                  f"  ({command['when']}){sudo}")
    if kube is not None:
        print("kube (kubectl, on this machine; every get only if discovery lists the kind)")
        for command in kube:
            print(f"  {command['id']:<36} {' '.join(command['argv'])}  ({command['when']})")


def render_summary(data: dict[str, Any], fmt: str = "text") -> None:
    if fmt == "json":
        print(json.dumps(data, indent=1))
        return
    from rich.table import Table

    from diag.report.safe import for_rich
    from diag.report.terminal import console as terminal

    data = for_rich(data)       # host names, remote errors: text, never markup or control
    console = terminal(highlight=False)
    table = Table(title="diag collect", show_lines=False)
    for column in ("host", "reach", "commands", "failed", "daemons", "capture", "clock"):
        table.add_column(column)
    for host in data["hosts"]:
        failed = ", ".join(f"{f['id']}:{f['outcome']}" for f in host["failed"][:4])
        if len(host["failed"]) > 4:
            failed += f" (+{len(host['failed']) - 4})"
        reach = host["reachability"] or "?"
        capture = host["capture"]
        offset = host["clock_offset_s"]
        table.add_row(host["name"], reach,
                      f"{host['commands_ok']}/{host['commands_total']}", failed or "-",
                      ",".join(host["daemons"]) or "-",
                      "-" if capture is None else f"{capture['bytes']} B/{capture['packets']} pkt",
                      "-" if offset is None else f"{offset:+.3f}s")
    if data["hosts"]:
        console.print(table)
    kube = data.get("kube")
    if kube is not None:
        context = f" context {kube['context']}" if kube["context"] else ""
        server = f" server {kube['server_version']}" if kube["server_version"] else ""
        console.print(f"kube:{context}{server}  kinds read: {kube['kinds_ok']} "
                      f"({kube['objects']} objects), not installed: {kube['not_installed']}, "
                      f"failed: {len(kube['failed'])}")
        for failed in kube["failed"]:
            reason = f" {failed['status_reason']}" if failed.get("status_reason") else ""
            message = f": {failed['status_message']}" if failed.get("status_message") else ""
            console.print(f"  {failed['id']}: {failed['outcome']}{reason}{message}")
    reasons = f" ({', '.join(data['partial_reasons'])})" if data["partial_reasons"] else ""
    console.print(f"bundle: {data['bundle']}  status: {data['status']}{reasons}  "
                  f"redactions: {data['redactions']}")
    if data["archive"]:
        console.print(f"archive: {data['archive']}")
    for host in data["hosts"]:
        if host["error"]:
            console.print(f"  {host['name']}: {host['reachability']}: {host['error']}")


