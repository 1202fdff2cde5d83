"""``diag collect`` as one call: options in, bundle and summary out, an exit status back.

Parses durations (``10``, ``10s``, ``2m``) and sizes (``100M``), validates every value that will
reach a remote command line, runs :func:`diag.collect.runner.collect` with the live view, prints
the summary (text or JSON) and returns :class:`diag.errors.ExitStatus` ``OK`` for a complete
bundle, ``INCOMPLETE`` for a partial one.
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from diag.errors import ExitStatus, UsageError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_SIZE = re.compile(r"^(\d+)([KMG]i?B?|B)?$", re.I)


def parse_duration(text: str, option: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise UsageError(f"{option} {text!r}: expected a duration like 30, 30s, 2m")
    value = float(match.group(1))
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


def parse_size(text: str, option: str) -> int:
    match = _SIZE.match(text.strip())
    if not match:
        raise UsageError(f"{option} {text!r}: expected a size like 1048576, 100M, 1G")
    unit = (match.group(2) or "B").upper()[:1]
    return int(match.group(1)) * {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[unit]


def run_collect(*, targets: list[str], inventory: Path | None, out: Path | None, archive: bool,
                ssh_config: Path | None, identity: list[Path], known_hosts: Path | None,
                accept_new_host_keys: bool, probe: list[str], capture: str | None,
                bpf_filter: str, iface: str, max_packets: int, max_bytes: str, fanout: int,
                connect_timeout: str, command_timeout: str | None, deadline: str,
                redact_string: list[str], dry_run: bool, fmt: str) -> ExitStatus:
    from diag.collect import catalogue
    from diag.collect.runner import CollectOptions, collect, plan
    from diag.collect.ssh import SshOptions
    from diag.collect.targets import load_inventory, parse_target

    if fmt not in ("text", "json"):
        raise UsageError(f"--format {fmt!r}: expected text or json")
    hosts = load_inventory(inventory) if inventory else []
    hosts += [parse_target(t) for t in targets]
    if not hosts:
        raise UsageError("no targets", "name hosts as [user@]host[:port], 'local', or --inventory")
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        raise UsageError("a host is named twice")
    for path, option in ((ssh_config, "--ssh-config"), (known_hosts, "--known-hosts"),
                         *((p, "--identity") for p in identity)):
        if path is not None and option != "--known-hosts" and not Path(path).is_file():
            raise UsageError(f"{option} {path}: no such file")
    if fanout < 1:
        raise UsageError("--fanout must be at least 1")
    capture_options = None
    if capture is not None:
        capture_options = catalogue.validate_capture(catalogue.CaptureOptions(
            duration=parse_duration(capture, "--capture"), bpf_filter=bpf_filter, iface=iface,
            max_packets=max_packets, max_bytes=parse_size(max_bytes, "--max-bytes")))
    options = CollectOptions(
        targets=tuple(hosts),
        out=out or Path(time.strftime("diag-bundle-%Y%m%d-%H%M%S")),
        ssh=SshOptions(config=ssh_config, identities=tuple(identity), known_hosts=known_hosts,
                       accept_new=accept_new_host_keys,
                       connect_timeout=parse_duration(connect_timeout, "--connect-timeout")),
        probes=tuple(dict.fromkeys(catalogue.validate_probe(p) for p in probe)),
        capture=capture_options, fanout=fanout,
        command_timeout=parse_duration(command_timeout, "--command-timeout")
        if command_timeout else None,
        deadline=parse_duration(deadline, "--deadline"), archive=archive,
        redact_strings=tuple(redact_string))
    if dry_run:
        rows = plan(options)
        if fmt == "json":
            print(json.dumps({"dry_run": True, "out": str(options.out), "hosts": rows}, indent=1))
        else:
            for row in rows:
                print(f"{row['host']} ({row['transport']}: {row['target']})")
                for command in row["commands"]:
                    sudo = " [sudo -n if not root]" if command["sudo_if_not_root"] else ""
                    print(f"  {command['id']:<28} {' '.join(command['argv'])}"
                          f"  ({command['when']}){sudo}")
        return ExitStatus.OK
    from diag.collect.progress import LiveView, render_summary, summary

    try:
        with LiveView() as view:
            result = collect(options, listener=view.update)
    except KeyboardInterrupt:
        print(f"diag: partial bundle left in {options.out}", file=sys.stderr)
        raise
    data = summary(result)
    if fmt == "json":
        print(json.dumps(data, indent=1))
    else:
        render_summary(data)
    return ExitStatus.OK if result.status == "complete" else ExitStatus.INCOMPLETE
