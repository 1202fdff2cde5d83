"""Bundle -> named pandas tables: every parsable command output of every host, concatenated.

Contract: :func:`build_tables` takes a verified :class:`diag.bundle.Bundle` and returns
``(tables, parse_errors)``. Every table in :data:`TABLES` is present (empty with its columns when
no host supplied it). Each row carries ``host`` (the manifest's host name) and ``source`` (the
command id it came from); neighbour and counter rows also carry ``phase`` (``main`` or
``after-capture``). A command that failed, timed out or is missing contributes no rows; its
outcome is in the ``commands`` table. An output a parser does not recognise becomes a row of
``parse_errors`` (host, source, path, error) instead of a guess, and so do ``ss`` lines that could
not be placed (``warnings``).
"""
from __future__ import annotations

import calendar
import time
from typing import Any

from diag.parse import ParseContext, parser_for, phase_of
from diag.parse.common import ParseError

# table -> columns the parsers produce (host/source/phase are added in front)
def table_columns() -> dict[str, list[str]]:
    from diag.parse import bgp_schema, bridge_fdb, frr, ip_addr, ip_link, ip_neigh, ip_route
    from diag.parse import ip_rule, nstat, ss, sysctl

    return {
        "interfaces": ip_link.COLUMNS, "addresses": ip_addr.COLUMNS, "routes": ip_route.COLUMNS,
        "rules": ip_rule.COLUMNS, "neighbors": ip_neigh.COLUMNS, "fdb": bridge_fdb.COLUMNS,
        "sockets": ss.COLUMNS, "sysctls": sysctl.COLUMNS, "counters": nstat.COLUMNS,
        "bgp_peers": bgp_schema.PEER_COLUMNS + ["node", "peer_type", "family"],
        "bgp_paths": bgp_schema.PATH_COLUMNS + ["node"],
        "daemon_routes": frr.ROUTE_COLUMNS,
    }


TABLES = ("interfaces", "addresses", "routes", "rules", "neighbors", "fdb", "sockets", "sysctls",
          "counters", "bgp_peers", "bgp_paths", "daemon_routes")
LEAD = ["host", "source", "phase"]
COMMAND_COLUMNS = ["host", "id", "outcome", "exit_code", "daemon", "phase", "path", "bytes",
                   "truncated", "started", "duration_s", "stderr"]
ERROR_COLUMNS = ["host", "source", "path", "error"]


def epoch(stamp: Any) -> float | None:
    """The manifest's UTC ``2026-11-21T06:40:49.422670Z`` as epoch seconds."""
    if not isinstance(stamp, str) or not stamp.endswith("Z"):
        return None
    main, _, frac = stamp[:-1].partition(".")
    try:
        seconds = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    return seconds + (float(f"0.{frac}") if frac.isdigit() else 0.0)


def build_tables(bundle) -> tuple[dict[str, Any], Any]:
    import pandas as pd

    parts: dict[str, list] = {name: [] for name in TABLES}
    errors: list[dict[str, Any]] = []
    commands: list[dict[str, Any]] = []
    for host, command in bundle.commands():
        spec = str(command.get("id", ""))
        commands.append({key: command.get(key) for key in COMMAND_COLUMNS if key != "host"}
                        | {"host": host})
        parser = parser_for(spec)
        if parser is None or command.get("outcome") != "OK" or not command.get("path"):
            continue
        try:
            data = bundle.read(command["path"])
        except OSError as err:
            errors.append({"host": host, "source": spec, "path": command["path"],
                           "error": f"unreadable: {err.strerror}"})
            continue
        context = ParseContext(spec=spec, now=epoch(command.get("started")))
        try:
            df = parser.parse(data, context)
        except ParseError as err:
            errors.append({"host": host, "source": spec, "path": command["path"],
                           "error": err.message})
            continue
        for warning in df.attrs.get("warnings", []):
            errors.append({"host": host, "source": spec, "path": command["path"],
                           "error": warning})
        if df.empty:
            continue
        df = df.copy()
        df.insert(0, "phase", phase_of(spec))
        df.insert(0, "source", spec)
        df.insert(0, "host", host)
        parts[parser.table].append(df)
    columns = table_columns()
    tables: dict[str, Any] = {}
    for name in TABLES:
        wanted = LEAD + columns[name]
        if parts[name]:
            df = pd.concat(parts[name], ignore_index=True, sort=False)
            tables[name] = df.reindex(columns=wanted + [c for c in df.columns if c not in wanted])
        else:
            tables[name] = pd.DataFrame({c: pd.Series(dtype="object") for c in wanted})
    tables["commands"] = pd.DataFrame(commands, columns=COMMAND_COLUMNS)
    return tables, pd.DataFrame(errors, columns=ERROR_COLUMNS)
