"""Bundle -> named pandas tables: every parsable command output of every host, concatenated.

Contract: :func:`build_tables` takes a verified :class:`diag.bundle.Bundle` and returns
``(tables, parse_errors)``. Every table in :data:`TABLES` is present (empty with its columns when
no host supplied it). Each row carries ``host`` (the manifest's host name) and ``source`` (the
command id it came from); neighbour and counter rows also carry ``phase`` (``main`` or
``after-capture``). A command that failed, timed out or is missing contributes no rows; its
outcome is in the ``commands`` table.

Every output is read and parsed in isolation (:func:`_guarded`): an output a parser does not
recognise, any exception a parser raises on it, an output too large to read, and rows that break
their table's types (:mod:`diag.facts.schema`) become one row of ``parse_errors`` —
``host, source`` (the command id), ``parser``, ``path``, ``reason``, ``table`` (the facts table
the output feeds, so that explain can say which checks could not use it) — and that output
contributes no rows; every other output is read as if it were alone. ``ss`` lines that could not
be placed (``warnings``) are rows there too.
"""
from __future__ import annotations

import calendar
import time
from typing import Any

from diag.errors import DiagError
from diag.facts import schema
from diag.parse import ParseContext, parser_for, phase_of
from diag.parse.common import ParseError, Rows, frames_by_kind

# table -> columns the parsers produce (host/source/phase are added in front)
def table_columns() -> dict[str, list[str]]:
    from diag.parse import bgp_schema, bridge_fdb, ethtool, frr, ip_addr, ip_link, ip_neigh
    from diag.parse import ip_route, ip_route_get, ip_rule, nstat, ss, sysctl

    return {
        "interfaces": ip_link.COLUMNS, "addresses": ip_addr.COLUMNS, "routes": ip_route.COLUMNS,
        "rules": ip_rule.COLUMNS, "neighbors": ip_neigh.COLUMNS, "fdb": bridge_fdb.COLUMNS,
        "sockets": ss.COLUMNS, "sysctls": sysctl.COLUMNS, "counters": nstat.COLUMNS,
        "bgp_peers": bgp_schema.PEER_COLUMNS + ["node", "peer_type", "family"],
        "bgp_paths": bgp_schema.PATH_COLUMNS + ["node"],
        "daemon_routes": frr.ROUTE_COLUMNS, "route_gets": ip_route_get.COLUMNS,
        "offloads": ethtool.COLUMNS,
    }


TABLES = ("interfaces", "addresses", "routes", "rules", "neighbors", "fdb", "sockets", "sysctls",
          "counters", "bgp_peers", "bgp_paths", "daemon_routes", "route_gets", "offloads")
HOST_COLUMNS = ["host", "reachability", "hostname", "kernel", "os", "iproute2", "daemons",
                "clock_offset_s", "clock_uncertainty_s", "error"]
LEAD = ["host", "source", "phase"]
COMMAND_COLUMNS = ["host", "id", "outcome", "exit_code", "daemon", "phase", "path", "bytes",
                   "truncated", "started", "duration_s", "stderr"]
# ``table``: the facts table the output feeds (``captures`` for a capture that could not be read;
# empty for a manifest record and for a capture read but partly malformed)
ERROR_COLUMNS = ["host", "source", "parser", "path", "reason", "table"]
IDENTITY_BYTES = 64 * 1024


def error_row(host: str | None, source: str, parser: str, path: Any, reason: str,
              table: str | None = None) -> dict[str, Any]:
    """One ``parse_errors`` row: which output of which host, read by what, why not, and the
    facts table it would have fed."""
    return {"host": host, "source": source, "parser": parser, "path": path, "reason": reason,
            "table": table}


def error_frame(rows: list[dict[str, Any]]):
    """``parse_errors`` as a DataFrame (rows from older code that say ``error`` for ``reason``
    are read as such)."""
    import pandas as pd

    return pd.DataFrame([dict(row, reason=row.get("reason", row.get("error"))) for row in rows],
                        columns=ERROR_COLUMNS)


# what a row says when a parser raised something other than its own refusal: the output is of a
# shape the parser did not expect (a string where an object was, ...); the exception follows
UNEXPECTED_SHAPE = "not a shape the parser knows"


def failure_reason(err: BaseException) -> str:
    """One line for a parse error: its message; anything else a parser raised, named."""
    if isinstance(err, ParseError):
        return err.message
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{UNEXPECTED_SHAPE} ({type(err).__name__}" + (f": {text[:200]})" if text else ")")


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
    parts: dict[str, list] = {name: [] for name in TABLES}
    errors: list[dict[str, Any]] = []
    commands: list[dict[str, Any]] = []
    listed = list(bundle.commands())
    for problem in bundle.problems:     # what the manifest could not say about a host
        if problem.kind in ("BAD_HOST_RECORD", "BAD_COMMAND_RECORD"):
            errors.append(error_row(problem.host, "manifest", "manifest", problem.path,
                                    f"{problem.kind}: {problem.detail}"))
    with _Ahead(bundle, listed) as ahead:
        for index, (host, command) in enumerate(listed):
            _one_output(bundle, host, command, ahead.get(index), parts, errors, commands)
    return _assembled(bundle, parts, errors, commands)


def _one_output(bundle, host: str, command: dict[str, Any], ahead, parts: dict[str, list],
                errors: list, commands: list) -> None:
    """One command of the manifest: its ``commands`` row, and its output's rows, frame or
    column-wise part in ``parts`` (or its error in ``errors``). ``ahead``: the output already
    read (and read column-wise) by :class:`_Ahead`, else None."""
    import pandas as pd

    spec = str(command.get("id", ""))
    commands.append({key: command.get(key) for key in COMMAND_COLUMNS if key != "host"}
                    | {"host": host})
    parser = parser_for(spec)
    if parser is not None and parser.table == "route_gets" and \
            command.get("outcome") == "FAILED":
        from diag.parse import ip_route_get  # the kernel refused: that is the answer
        parts["route_gets"].append((pd.DataFrame([ip_route_get.failed(
            ip_route_get.probe_of(spec), command.get("stderr", ""))]), host, spec))
        return
    if parser is None or command.get("outcome") != "OK" or not command.get("path"):
        return
    context = _context(spec, command)
    data, found = ahead.result() if ahead is not None else _read(bundle, command, parser,
                                                                   context)

    def refuse(reason: str) -> None:
        errors.append(error_row(host, spec, parser.source, command["path"], reason,
                                parser.table))

    if isinstance(data, OSError):
        refuse(f"unreadable: {data.strerror}")
        return
    part, failure = _guarded(parser, data, found, context)
    if failure is not None:
        refuse(failure)
        return
    for warning in getattr(part, "attrs", {}).get("warnings", []):
        refuse(warning)
    broken = schema.violation(parser.table, part)
    if broken is not None:
        refuse(f"not the documented types: {broken}")
        return
    if len(part.rows) if isinstance(part, Rows) else len(part):
        parts[parser.table].append((part, host, spec))


def _guarded(parser, data, found, context):
    """(part, None): this output's rows (a column-wise part, Rows or a DataFrame), or (None,
    reason) when the parser refused it or failed on it in any way: one output never stops the
    others (every exception but an interrupt becomes the reason)."""
    try:
        if isinstance(found, BaseException):
            raise found
        if found is not None:           # read column-wise, one frame per table later
            return found, None
        if parser.records is not None:  # rows now, one frame per table later
            return parser.records(data, context), None
        return parser.parse(data, context), None
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:            # noqa: BLE001 - see the docstring
        return None, failure_reason(err)


def _context(spec: str, command: dict[str, Any]) -> ParseContext:
    return ParseContext(spec=spec, now=epoch(command.get("started")))


def _read(bundle, command: dict[str, Any], parser, context: ParseContext):
    """(data, part): the output (or the OSError reading it) and, for a column-wise parser,
    its :class:`diag.parse.columnar.Part` (or None: not in the regular shape; or the
    ParseError). The data is dropped once the part is made (it is most of a large bundle)."""
    try:
        data = bundle.read(command["path"])
    except OSError as err:
        return err, None
    if parser.part is None:
        return data, None
    try:
        found = parser.part(data, context)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:            # noqa: BLE001 - reported as this output's parse error
        return data, err
    return (None, found) if found is not None else (data, None)


class _Ahead:
    """The column-wise outputs (routes, GoBGP RIBs: most of a large bundle) read and parsed
    ahead in two threads while the manifest is walked in order: pyarrow's kernels and file
    reads release the GIL, so on a machine with two cores the largest step of loading runs
    on both. Results are taken in manifest order, so tables and errors are the same as one
    by one. ``get(index)``: the future of that command, or None (read it in order). At most
    ``AHEAD`` outputs, and ``AHEAD_BYTES`` of them, are read ahead of the one being used, and a
    larger output only when it is the one being used (alone): each holds its text, and parsing
    costs several times that, so memory stays bounded however many hosts the bundle has and
    however large its outputs."""

    WORKERS = 2
    AHEAD = 4
    AHEAD_BYTES = 8 << 20

    def __init__(self, bundle, listed: list) -> None:
        import os

        self.bundle, self.listed, self.futures, self.pool = bundle, listed, {}, None
        self.workers = min(self.WORKERS, os.cpu_count() or 1)
        self.pending: list = []
        self.sizes: dict[int, int] = {}
        self.large_done = False
        self.position = -1

    def __enter__(self) -> "_Ahead":
        jobs = []
        for index, (_host, command) in enumerate(self.listed):
            spec = str(command.get("id", ""))
            parser = parser_for(spec)
            if parser is not None and parser.part is not None and \
                    command.get("outcome") == "OK" and command.get("path"):
                jobs.append((index, command, parser, _context(spec, command)))
        if self.workers > 1 and len(jobs) > 1:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(max_workers=self.workers,
                                           thread_name_prefix="diag-parse")
            self.pending = jobs[::-1]
            self._fill()
        return self

    def _fill(self) -> None:
        while self.pending and len(self.futures) < self.AHEAD:
            size = self._size(self.pending[-1][1])
            if self.futures and self.held + size > self.AHEAD_BYTES:
                return
            if size > self.AHEAD_BYTES and self.pending[-1][0] != self.position:
                return          # a large output is read when it is next, alone
            index, command, parser, context = self.pending.pop()
            self.sizes[index] = size
            self.futures[index] = self.pool.submit(_read, self.bundle, command, parser, context)

    @property
    def held(self) -> int:
        return sum(self.sizes[index] for index in self.futures)

    def _size(self, command: dict[str, Any]) -> int:
        try:
            return self.bundle.path(command["path"]).stat().st_size
        except (OSError, DiagError):
            return 0

    def get(self, index: int):
        self.position = index
        if self.large_done:
            _release_arrow_memory()     # the last large output is done with
        future = self.futures.pop(index, None)
        self.large_done = self.sizes.pop(index, 0) > self.AHEAD_BYTES // 8
        if future is None and self.pending and self.pending[-1][0] == index:
            self._fill()            # not yet submitted (a slot was busy): now it is
            future = self.futures.pop(index, None)
            self.large_done = self.sizes.pop(index, 0) > self.AHEAD_BYTES // 8
        if self.pool is not None:
            self._fill()
        return future

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            for future in self.futures.values():
                future.cancel()
            self.pool.shutdown(wait=True)


def _release_arrow_memory() -> None:
    """pyarrow's allocator keeps what the column-wise readers freed for reuse; after a large
    output, hand it back, or a bundle of large damaged outputs holds the peak of each."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _assembled(bundle, parts: dict[str, list], errors: list, commands: list):
    import pandas as pd

    columns = table_columns()
    tables: dict[str, Any] = {}
    for name in TABLES:
        wanted = LEAD + columns[name]
        if parts[name]:
            df = _with_hosts(parts[name])
            tables[name] = _in_columns(df, wanted + [c for c in df.columns if c not in wanted])
        else:
            tables[name] = pd.DataFrame({c: pd.Series(dtype="object") for c in wanted})
    tables["commands"] = pd.DataFrame(commands, columns=COMMAND_COLUMNS)
    tables["hosts"] = _hosts(bundle)
    return tables, error_frame(errors)


def _in_columns(df, columns: list[str]):
    """``df.reindex(columns=columns)``; when ``df`` only lacks columns at the end (the paths'
    ``node``, filled later) they are added to it — all NaN, float64, as reindex makes them —
    instead: reindex takes a copy of every column (hundreds of MB at 500 x 5,000)."""
    present = list(df.columns)
    if present == columns:
        return df
    missing = columns[len(present):]
    if columns[:len(present)] != present or set(missing) & set(present) or \
            len(set(missing)) != len(missing):
        return df.reindex(columns=columns)
    import numpy as np

    for column in missing:
        df[column] = np.nan
    return df


def _with_hosts(parts: list[tuple[Any, str, str]]):
    """The outputs' frames one under the other, led by host, source and phase. The lead columns
    are made once for the whole table (one copy per output was a copy of every row)."""
    import numpy as np
    import pandas as pd

    frames, order = _frames(_combined([part for part, _, _ in parts]))
    df = pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else \
        frames[0].reset_index(drop=True)
    if order is not None:
        df = df.take(order).reset_index(drop=True)
    lengths = [len(part.rows) if isinstance(part, Rows) else len(part) for part, _, _ in parts]

    def lead(values: list[str]):
        import pyarrow as pa

        position = {v: k for k, v in enumerate(dict.fromkeys(values))}
        names = list(position)
        codes = np.repeat(np.array([position[v] for v in values], dtype=np.int64), lengths)
        return pd.array(pa.array(names, pa.large_string()).take(pa.array(codes)), dtype="str")

    df.insert(0, "phase", lead([phase_of(spec) for _, _, spec in parts]))
    df.insert(0, "source", lead([spec for _, _, spec in parts]))
    df.insert(0, "host", lead([host for _, host, _ in parts]))
    return df


def _combined(parts: list) -> list:
    """Runs of consecutive column-wise parts (:class:`diag.parse.columnar.Part`, the routes
    and GoBGP RIBs of every host) of one kind and signature as one DataFrame each: their
    concatenation exactly, made without a frame per output."""
    from diag.parse.columnar import Part

    out: list = []
    run: list = []
    for part in parts + [None]:
        if run and not (isinstance(part, Part) and part.combine is run[0].combine
                        and part.signature == run[0].signature):
            out.append(run[0].combine(run))
            run = []
        if isinstance(part, Part):
            run.append(part)
        elif part is not None:
            out.append(part)
    return out


def _frames(parts: list) -> tuple[list, Any]:
    """The outputs (DataFrames, or :class:`Rows` of the small outputs) as frames to concatenate,
    and the row order that puts the result back in the outputs' order (None: already is).
    The rows of outputs that give the same dtypes become one frame (a frame per small output
    was ~0.6 ms each, thousands of them in a large bundle); their concatenation is the same
    table, dtypes included."""
    import numpy as np

    if not any(isinstance(part, Rows) for part in parts):
        return parts, None
    lengths = [len(part.rows) if isinstance(part, Rows) else len(part) for part in parts]
    frames: list = []
    blocks: list[list[int]] = []  # each frame's parts, in the frame's row order
    rows_positions = [k for k, part in enumerate(parts) if isinstance(part, Rows)]
    for positions, group in frames_by_kind([parts[k] for k in rows_positions]):
        frames.append(group)
        blocks.append([rows_positions[p] for p in positions])
    for k, part in enumerate(parts):
        if not isinstance(part, Rows):
            frames.append(part)
            blocks.append([k])
    placed = [k for block in blocks for k in block]
    if placed == list(range(len(parts))):
        return frames, None
    starts = np.zeros(len(parts), dtype=np.int64)
    offset = 0
    for k in placed:
        starts[k] = offset
        offset += lengths[k]
    order = np.concatenate([np.arange(starts[k], starts[k] + lengths[k]) for k in
                            range(len(parts))])
    return frames, order


def _first_line(bundle, command: dict[str, Any]) -> str | None:
    if command.get("outcome") != "OK" or not command.get("path"):
        return None
    try:
        text = _head(bundle, command)
    except OSError:
        return None
    return next((line.strip() for line in text.splitlines() if line.strip()), None)


def _head(bundle, command: dict[str, Any]) -> str:
    """The start of an identity output (hostname, uname, os-release: a few lines): a damaged
    one may be megabytes of anything, and only its first lines are ever wanted."""
    return bundle.read(command["path"])[:IDENTITY_BYTES].decode("utf-8", "replace")


def _os_name(bundle, command: dict[str, Any]) -> str | None:
    try:
        text = _head(bundle, command)
    except (OSError, KeyError, TypeError):
        return None
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return None


def _hosts(bundle):
    """One row per manifest host: identity and versions (as printed), reachability, clock."""
    import pandas as pd

    rows = []
    for host, record in bundle.manifest.get("hosts", {}).items():
        if not isinstance(record, dict):
            continue
        by_id = {c.get("id"): c for c in record.get("commands", []) if isinstance(c, dict)}
        uname = _first_line(bundle, by_id.get("uname", {}))
        iproute = _first_line(bundle, by_id.get("ip-version", {}))
        rows.append({
            "host": host, "reachability": record.get("reachability"),
            "hostname": _first_line(bundle, by_id.get("hostname", {})),
            "kernel": uname.split()[2] if uname and len(uname.split()) > 2 else None,
            "os": _os_name(bundle, by_id["os-release"]) if by_id.get("os-release", {}).get(
                "outcome") == "OK" else None,
            "iproute2": iproute.split("iproute2-")[1].split(",")[0].split()[0]
            if iproute and "iproute2-" in iproute else None,
            "daemons": sorted((record.get("daemons") or {}).keys()),
            "clock_offset_s": record.get("clock_offset_s"),
            "clock_uncertainty_s": record.get("clock_uncertainty_s"),
            "error": record.get("error")})
    return pd.DataFrame(rows, columns=HOST_COLUMNS)
