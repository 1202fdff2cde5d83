"""The evidence lake: the facts of many bundles as Parquet, one directory, queried with DuckDB.

The only code that knows the lake's layout and schema (as :mod:`diag.bundle` knows a bundle's)::

    LAKE/
      lake.json                              the dataset manifest (below), rewritten atomically
      <table>/bundle=<id>/part-0.parquet     one file per table and bundle
      .lock                                  held while a bundle is appended

``<id>`` is the bundle's id: the sha256 of its ``manifest.json`` (:func:`diag.bundle.bundle_id`;
a bare capture's: the sha256 of the file). Every table has the columns of :data:`SCHEMA` in that
order with those types, plus ``bundle`` first and ``host`` (NULL for rows about the cluster).
``lake.json``::

    {"format": "diag-lake", "schema_version": 1,
     "tables": {"routes": [["bundle", "string"], ["host", "string"], ...], ...},
     "bundles": {"<id>": {"source": "incident-42.tar.gz", "kind": "bundle", "status": "complete",
                          "started": "...", "hosts": 4, "exported": "2026-12-06T08:00:00Z",
                          "schema_version": 1, "rows": {"routes": 57, ...},
                          "coerced": {"routes.metric": 1}}}}

Contract:

- :func:`append(directory, bundle, tables, record) -> bool`: write one bundle's tables (pandas
  DataFrames, or pyarrow Tables a program made in the schema, by name); False, writing nothing,
  when the bundle is already in the lake (appending is idempotent by bundle id). Each file is written under a temporary name and renamed; the
  manifest names the bundle last, so readers (:func:`files`) never see half a bundle. A value
  that does not fit its column's type (text in an integer column) becomes NULL and is counted in
  the bundle's ``coerced``; a column the schema does not know is kept as text.
- :func:`contains(directory, bundle)`, :func:`manifest(directory)`, :func:`files(directory,
  table)`: what is there.
- :class:`LakeBundle(directory, bundle)`: one bundle read for an analysis (columns, the rows of
  some hosts as facts tables, SQL).
- :func:`connect(directory)`: a DuckDB connection (in memory, no server) with a view per table
  under its own name (``routes``, ``bgp_peers``, ...) and ``bundles``; :func:`query(directory,
  sql)` runs one statement and returns a pyarrow Table. DuckDB is an optional extra
  (``pip install 'diag[lake]'``): without it :class:`diag.errors.EnvironmentProblem` (exit 5).

``SCHEMA_VERSION`` changes when a column is removed, renamed or changes type or meaning; the
manifest keeps each bundle's version, and the views read bundles of several versions by column
name (a column a bundle lacks is NULL).
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from diag.errors import EnvironmentProblem, UnusableInput, UsageError

FORMAT = "diag-lake"
SCHEMA_VERSION = 1
LAKE_MANIFEST = "lake.json"
PART = "part-0.parquet"
LAKE_HINT = "pip install 'diag[lake]' (DuckDB), or install the README's test extras"
TYPES = ("string", "int64", "float64", "bool", "json")

# table -> columns in order, each ``name`` (text) or ``name:type``; ``json`` is JSON text (lists
# and records: route nexthops, AS paths, flags). docs/facts.md ("The evidence lake") lists them.
_LAYOUT = {
    "interfaces": "source phase ifindex:int64 ifname kind mtu:int64 operstate up:bool "
                  "lower_up:bool mac master link link_netnsid:int64 vxlan_id:int64 "
                  "vxlan_port:int64 vxlan_local vxlan_remote vxlan_dev vxlan_learning:bool "
                  "vxlan_external:bool",
    "addresses": "source phase ifindex:int64 ifname family address prefixlen:int64 network scope "
                 "secondary:bool peer",
    "routes": "source phase table family type dst gateway dev nexthops:json ecmp:bool protocol "
              "metric:int64 scope prefsrc flags:json nhid:int64",
    "rules": "source phase priority:int64 family src dst iif oif fwmark table action not_:bool "
             "suppress_prefixlen suppress_ifgroup goto tos protocol ipproto sport dport uidrange "
             "realms l3mdev:bool",
    "neighbors": "source phase dst dev lladdr state states:json router:bool resolved:bool",
    "fdb": "source phase mac ifname dst vni port master state flags:json",
    "sockets": "source phase state recv_q:int64 send_q:int64 local_addr local_port:int64 "
               "local_scope peer_addr peer_port:int64 peer_scope process pid:int64 md5:bool "
               "rto:float64 backoff:int64 retrans:int64 retrans_total:int64 lost:int64 "
               "unacked:int64 lastsnd:int64 lastrcv:int64 lastack:int64 bytes_sent:int64 "
               "bytes_received:int64 mss:int64 pmtu:int64 rtt:float64",
    "sysctls": "source phase key value family iface name",
    "counters": "source phase name value:int64 group",
    "bgp_peers": "source phase daemon peer peer_as:int64 local_as:int64 local_address name "
                 "peer_hostname state state_raw uptime_s:float64 last_error last_error_code "
                 "last_error_age_s:float64 received:int64 accepted:int64 advertised:int64 "
                 "hold_time:float64 keepalive:float64 peer_router_id notifications_received:int64 "
                 "interface vrf peer_group dynamic:bool node peer_type family",
    "bgp_paths": "source phase daemon rib peer protocol prefix nexthop as_path:json as_path_str "
                 "origin best:bool valid:bool stale:bool local:bool local_pref:int64 med vrf node",
    "daemon_routes": "source phase prefix protocol selected:bool installed:bool distance:int64 "
                     "metric:int64 table:int64 nexthops:json nexthop interface",
    "route_gets": "source phase probe type dst gateway dev prefsrc table flags:json error",
    "commands": "id outcome exit_code:int64 daemon phase path bytes:int64 truncated:bool started "
                "duration_s:float64 stderr",
    "hosts": "reachability hostname kernel os iproute2 daemons:json clock_offset_s:float64 error "
             "clock_uncertainty_s:float64",
    "offloads": "source phase ifname feature state fixed:bool requested parent",
    "packets": "frame:int64 ts:float64 caplen:int64 wirelen:int64 linktype:int64 "
               "capture_iface:int64 iface_name ifindex:int64 direction pkttype eth_src eth_dst "
               "vlan l3 src dst ttl:int64 ip_proto:int64 fragment:bool sport:int64 dport:int64 "
               "app tunnel_depth:int64 malformed iface",
    "bgp_messages": "frame:int64 first_frame:int64 ts:float64 src sport:int64 dst dport:int64 "
                    "session tunnel_depth:int64 type:int64 type_name length:int64 malformed "
                    "open_version:int64 open_my_as:int64 open_hold_time:int64 open_bgp_id "
                    "open_capabilities:json open_fqdn open_software_version notify_code:int64 "
                    "notify_subcode:int64 notify_name notify_subname notify_text notify_cause "
                    "notify_data refresh_afi refresh_safi refresh_subtype:int64 "
                    "refresh_subtype_name n_withdrawn:int64 n_announced:int64 eor ctx_note "
                    "next_hop next_hop_link_local origin as_path:json as_path_str as4_path:json "
                    "as4_path_str med:int64 local_pref:int64 atomic_aggregate:bool aggregator "
                    "as4_aggregator communities:json large_communities:json ext_communities:json "
                    "originator_id cluster_list:json unknown_attributes:json iface "
                    "effective_as_path:json effective_as_path_str as_path_note prefix_sid:json "
                    "link_state:json pmsi_tunnel:json",
    "wire_routes": "frame:int64 ts:float64 src sport:int64 dst dport:int64 session action afi "
                   "safi prefix nlri_raw path_id:int64 next_hop next_hop_link_local origin "
                   "as_path:json as_path_str as4_path:json as4_path_str med:int64 local_pref:int64 "
                   "atomic_aggregate:bool aggregator as4_aggregator communities:json "
                   "large_communities:json ext_communities:json originator_id cluster_list:json "
                   "unknown_attributes:json iface rd labels:json evpn_type:int64 esi "
                   "ethernet_tag:int64 mac evpn_ip gateway_ip vnis:json effective_as_path:json "
                   "effective_as_path_str as_path_note prefix_sid:json link_state:json "
                   "pmsi_tunnel:json",
    "wire_tunnels": "frame:int64 ts:float64 depth:int64 type vni:int64 outer_src outer_dst "
                    "outer_sport:int64 outer_dport:int64 inner_eth_src inner_eth_dst inner_l3 "
                    "inner_src inner_dst inner_proto:int64 inner_sport:int64 inner_dport:int64 "
                    "flags:int64 geneve_options:json malformed iface",
    "arp": "frame:int64 ts:float64 capture_iface:int64 iface_name direction tunnel_depth:int64 op "
           "sender_mac sender_ip target_mac target_ip gratuitous:bool vlan malformed iface "
           "answered:bool reply_frame:int64 copy_of:int64 sees_replies:bool blind",
    "stream_events": "frame:int64 ts:float64 src sport:int64 dst dport:int64 session "
                     "tunnel_depth:int64 event detail iface",
    "icmp": "frame:int64 ts:float64 capture_iface:int64 iface_name direction tunnel_depth:int64 "
            "l3 src dst type:int64 code:int64 type_name mtu:int64 orig_src orig_dst "
            "orig_proto:int64 orig_sport:int64 orig_dport:int64 malformed iface",
    "fragments": "frame:int64 ts:float64 first_frame:int64 capture_iface:int64 iface_name "
                 "tunnel_depth:int64 l3 src dst ip_id:int64 ip_proto:int64 fragments:int64 "
                 "size:int64 largest_fragment:int64 status sport:int64 dport:int64 app iface",
    "lldp": "frame:int64 ts:float64 capture_iface:int64 iface_name ifindex:int64 "
            "tunnel_depth:int64 src_mac vlan:int64 chassis_id chassis_id_type port_id port_id_type "
            "ttl:int64 port_description system_name system_description capabilities:json "
            "management_addresses:json port_vlan:int64 max_frame_size:int64 malformed iface",
    "checksums": "frame:int64 proto ok:bool",
    "sightings": "frame:int64 iface direction ts:float64 depth:int64 tunnel vni:int64 outer_src "
                 "outer_dst outer_sport:int64 outer_dport:int64 outer_len:int64 "
                 "outer_fragment:bool outer_ip_id:int64 l3 src dst proto:int64 ip_id:int64 "
                 "length:int64 df:bool sport:int64 dport:int64 tcp_seq:int64 tcp_ack:int64 "
                 "tcp_flags:int64 icmp_type:int64 icmp_id:int64 icmp_seq:int64 checksum "
                 "outer_fragments:int64 outer_status outer_size:int64",
    "tunnels": "device kind vni:int64 port:int64 local underlay_dev mtu:int64 remotes:json how",
    # the cluster model (diag.facts.model), one row per host, and one row for the cluster
    "model_hosts": "role role_how role_source node_ip node_ip_how node_ip_source cluster_iface "
                   "cluster_iface_how cluster_iface_source default_iface default_iface_how "
                   "default_iface_source pod_cidr pod_cidr_how pod_cidr_source asn:int64 asn_how "
                   "asn_source peering_ips:json forwarding:bool daemons:json collected:bool",
    "model_cluster": "pod_range pod_range_how pod_range_source lb_ips:json lb_ips_how "
                     "lb_ips_source notes:json",
    "parse_errors": "source parser path reason table",
    "problems": "kind path detail",
    "kube_resources": "id group resource kind version installed:bool outcome status_reason "
                      "status_message objects:int64 path",
}

SCHEMA: dict[str, tuple[tuple[str, str], ...]] = {
    table: (("bundle", "string"), ("host", "string")) + tuple(
        tuple(spec.split(":")) if ":" in spec else (spec, "string") for spec in text.split())
    for table, text in _LAYOUT.items()}
BUNDLES_COLUMNS = (("bundle", "string"), ("source", "string"), ("kind", "string"),
                   ("status", "string"), ("started", "string"), ("hosts", "int64"),
                   ("exported", "string"), ("schema_version", "int64"))


# --- writing ----------------------------------------------------------------------------------

def contains(directory: Path, bundle: str) -> bool:
    """The bundle is in the lake (its manifest entry; the files are renamed in before it)."""
    return bundle in manifest(directory, missing_ok=True).get("bundles", {})


def manifest(directory: Path, missing_ok: bool = False) -> dict[str, Any]:
    """The dataset manifest (``lake.json``); a directory without one is not a lake."""
    path = Path(directory) / LAKE_MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise UsageError(f"{directory} is not an evidence lake (no {LAKE_MANIFEST})",
                         "export bundles into it first: diag facts BUNDLE --export DIR") from None
    except (OSError, ValueError, RecursionError) as err:
        raise UnusableInput(f"unreadable lake manifest {path}: "
                            f"{err if not isinstance(err, RecursionError) else 'nested too deep'}"
                            ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UnusableInput(f"{path} is not a diag lake manifest")
    broken = _manifest_violation(data)
    if broken is not None:
        raise UnusableInput(f"lake manifest {path}: {broken}",
                            "export the bundles into a new lake") from None
    return data


_BUNDLE_ID = re.compile(r"[0-9A-Za-z_-]{1,128}")   # a sha256: names a directory, goes into SQL
_TABLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_COLUMN_TYPES = ("string", "json", "int64", "float64", "bool")
_RECORD_TYPES = {"source": str, "kind": str, "status": str, "started": str, "exported": str,
                 "hosts": int, "schema_version": int, "rows": dict, "coerced": dict,
                 "extra_columns": dict}


def _manifest_violation(data: dict[str, Any]) -> str | None:
    """What in a lake manifest is not of the shape :func:`append` writes (None: nothing). A
    damaged or hand-edited ``lake.json`` is refused whole, naming the field: bundle ids become
    directories and table names SQL views, so neither is taken on trust."""
    def kind(value: Any) -> str:
        return type(value).__name__

    if not isinstance(data.get("schema_version", 0), int):
        return f"field 'schema_version' is a {kind(data['schema_version'])}, not an integer"
    bundles = data.get("bundles", {})
    if not isinstance(bundles, dict):
        return f"field 'bundles' is a {kind(bundles)}, not an object"
    for ident, record in bundles.items():
        if not _BUNDLE_ID.fullmatch(ident):
            return f"bundle id {ident[:80]!r} is not a bundle id"
        if not isinstance(record, dict):
            return f"field 'bundles.{ident[:16]}' is a {kind(record)}, not an object"
        for key, expected in _RECORD_TYPES.items():
            value = record.get(key)
            if value is not None and (not isinstance(value, expected)
                                      or (expected is int and isinstance(value, bool))):
                return (f"field 'bundles.{ident[:16]}.{key}' is a {kind(value)}, not "
                        f"{'an integer' if expected is int else 'a ' + expected.__name__}")
        for key in ("rows", "coerced"):
            if any(not isinstance(n, int) for n in (record.get(key) or {}).values()):
                return f"field 'bundles.{ident[:16]}.{key}' holds a value that is not a count"
        for name, columns in (record.get("extra_columns") or {}).items():
            if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
                return f"field 'bundles.{ident[:16]}.extra_columns.{name[:40]}' is not a list " \
                       "of names"
    tables = data.get("tables", {})
    if not isinstance(tables, dict):
        return f"field 'tables' is a {kind(tables)}, not an object"
    for name, columns in tables.items():
        if not _TABLE_NAME.fullmatch(name):
            return f"table name {name[:80]!r} is not a table name"
        if not isinstance(columns, list) or not all(
                isinstance(c, list) and len(c) == 2 and all(isinstance(x, str) for x in c)
                and _COLUMN_NAME.fullmatch(c[0]) and c[1] in _COLUMN_TYPES for c in columns):
            return f"field 'tables.{name}' is not a list of [column, type] pairs"
    return None


def append(directory: Path, bundle: str, tables: dict[str, Any], record: dict[str, Any]) -> bool:
    """Write one bundle's tables into the lake (see the module docstring)."""
    import fcntl

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and \
            not (directory / LAKE_MANIFEST).exists():
        raise UsageError(f"{directory} exists and is not an evidence lake",
                         "choose a new directory or an existing lake for --export")
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # one appender at a time
        current = manifest(directory, missing_ok=True) or {
            "format": FORMAT, "schema_version": SCHEMA_VERSION, "bundles": {}}
        if bundle in current.get("bundles", {}):
            return False
        rows: dict[str, int] = {}
        coerced: dict[str, int] = {}
        extra: dict[str, list[str]] = {}
        known = {name: [list(c) for c in columns]
                 for name, columns in current.get("tables", {}).items()}
        for name in sorted(set(SCHEMA) | set(tables)):
            table, bad, unknown = arrow_table(name, tables.get(name), bundle)
            rows[name] = table.num_rows
            coerced.update({f"{name}.{c}": n for c, n in bad.items()})
            if name not in SCHEMA:
                # a table the schema does not declare (e.g. a Kubernetes kind's): its columns
                # as text, recorded so that a lake without its rows still has its view
                seen = known.setdefault(name, [["bundle", "string"], ["host", "string"]])
                seen += [[c, "string"] for c in table.column_names
                         if c not in {s for s, _ in seen}]
            elif unknown:
                extra[name] = unknown
            _write(directory / name / f"bundle={bundle}" / PART, table)
        entry = dict(record, exported=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     schema_version=SCHEMA_VERSION, rows=rows)
        if coerced:
            entry["coerced"] = coerced
        if extra:
            entry["extra_columns"] = extra
        current.setdefault("bundles", {})[bundle] = entry
        current["schema_version"] = SCHEMA_VERSION
        current["tables"] = {**known,
                             **{name: [list(c) for c in SCHEMA[name]] for name in SCHEMA}}
        _atomic_text(directory / LAKE_MANIFEST, json.dumps(current, indent=1, sort_keys=True))
        return True


def _write(path: Path, table) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # row groups of 128 Ki rows: a reader asking for a few hosts skips the others by their
    # statistics (rows are written host by host)
    pq.write_table(table, tmp, row_group_size=1 << 17)
    os.replace(tmp, path)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def arrow_table(name: str, df, bundle: str):
    """``(pyarrow.Table, coerced {column: count}, unknown columns)`` of one facts table in the
    lake's schema: ``bundle`` added, declared columns cast (missing ones NULL), unknown ones kept
    as text after them."""
    import numpy as np
    import pyarrow as pa

    declared = SCHEMA.get(name, (("bundle", "string"), ("host", "string")))
    if isinstance(df, pa.Table):
        return _conformed(df, declared, bundle)
    n = 0 if df is None else len(df)
    present = set() if df is None else set(df.columns)
    unknown = [] if df is None else [c for c in df.columns
                                     if c not in {c for c, _ in declared}]
    arrays, fields, coerced = [], [], {}
    for column, kind in list(declared) + [(c, "string") for c in unknown]:
        if column == "bundle":
            values = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)),
                                                    pa.array([bundle]))
        elif column in present:
            values, bad = _column(df[column], kind)
            if bad:
                coerced[column] = bad
        else:
            values = pa.nulls(n, _arrow_type(kind))
        if kind in ("string", "json") and not pa.types.is_dictionary(values.type):
            values = values.dictionary_encode() if n else \
                pa.array([], pa.dictionary(pa.int32(), pa.string()))
        arrays.append(values)
        fields.append(pa.field(column, values.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields)), coerced, unknown


def _conformed(table, declared, bundle: str):
    """A pyarrow Table (written by a program, e.g. a benchmark) in the declared schema: the
    declared columns cast (text dictionary-encoded), missing ones NULL, ``bundle`` added."""
    import numpy as np
    import pyarrow as pa

    n = table.num_rows
    arrays, fields = [], []
    for column, kind in declared:
        if column == "bundle":
            values = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)),
                                                    pa.array([bundle]))
        elif column in table.column_names:
            values = table.column(column).combine_chunks()
            if kind in ("string", "json"):
                if not pa.types.is_dictionary(values.type):
                    values = values.cast(pa.string()).dictionary_encode()
            else:
                values = values.cast(_arrow_type(kind))
        else:
            values = pa.nulls(n, _arrow_type(kind))
            if kind in ("string", "json"):
                values = values.dictionary_encode()
        arrays.append(values)
        fields.append(pa.field(column, values.type))
    unknown = [c for c in table.column_names if c not in {c for c, _ in declared}]
    if unknown:
        raise ValueError(f"columns the lake's schema does not have: {unknown}")
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields)), {}, []


def _arrow_type(kind: str):
    import pyarrow as pa

    return {"string": pa.string(), "json": pa.string(), "int64": pa.int64(),
            "float64": pa.float64(), "bool": pa.bool_()}[kind]


def _column(series, kind: str):
    """(pyarrow array, values that did not fit) of one column in the declared type. Text is
    dictionary-encoded from its distinct values (a routes column of millions of cells holds a
    few thousand texts); JSON is written once per distinct object (parsers share lists)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if kind in ("int64", "float64", "bool"):
        target = _arrow_type(kind)
        try:
            return pa.array(series, type=target, from_pandas=True), 0
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            pass
        out, bad = [], 0
        for value in series.tolist():
            fitted = _fit(value, kind)
            if fitted is _BAD:
                bad += 1
                fitted = None
            out.append(fitted)
        return pa.array(out, type=target), bad
    values = series.to_numpy(dtype=object)
    try:                                  # hashable cells: one pass in C, then the distinct ones
        codes, distinct = pd.factorize(values, use_na_sentinel=True, size_hint=1 << 12)
        distinct = distinct.tolist()
    except TypeError:                     # lists: one text per distinct object
        codes, distinct = _codes_by_identity(values)
    uniques: list[str] = []
    where: dict[str, int] = {}
    remap = np.empty(len(distinct) + 1, dtype=np.int32)
    for k, value in enumerate(distinct):
        text = _text(value, kind)
        if text is None:
            remap[k] = -1
            continue
        code = where.get(text)
        if code is None:
            code = where[text] = len(uniques)
            uniques.append(text)
        remap[k] = code
    remap[-1] = -1                        # the NA code
    codes = remap[codes]
    mask = codes < 0
    indices = pa.array(codes, type=pa.int32(), mask=mask if mask.any() else None)
    return pa.DictionaryArray.from_arrays(indices, pa.array(uniques, pa.string())), 0


def _codes_by_identity(values):
    """(codes, distinct objects) keyed by object identity (the parsers share one list between
    the rows that spell it alike); None is the NA code -1."""
    import numpy as np

    codes = np.empty(len(values), dtype=np.int64)
    seen: dict[int, int] = {}
    distinct: list = []
    for i, value in enumerate(values.tolist()):
        if value is None:
            codes[i] = -1
            continue
        code = seen.get(id(value))
        if code is None:
            code = seen[id(value)] = len(distinct)
            distinct.append(value)        # kept alive: its id stays its own
        codes[i] = code
    return codes, distinct


_BAD = object()


def _text(value, kind: str) -> str | None:
    from diag.values import or_none

    value = or_none(value)
    if value is None:
        return None
    if kind == "json" or isinstance(value, (list, tuple, dict)):
        return json.dumps(_plain(value), default=str, separators=(",", ":"))
    return value if isinstance(value, str) else str(value)


def _plain(value):
    """Tuples as lists, numpy scalars as numbers: what ``json`` writes."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def _fit(value, kind: str):
    from diag.values import or_none

    value = or_none(value)
    if value is None:
        return None
    try:
        if kind == "bool":
            if isinstance(value, str):
                return {"true": True, "false": False}.get(value.lower(), _BAD)
            return bool(value)
        if kind == "int64":
            if isinstance(value, float) and not value.is_integer():
                return _BAD
            return int(value)
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return _BAD


# --- reading ----------------------------------------------------------------------------------

def bundles(directory: Path) -> dict[str, dict[str, Any]]:
    return manifest(directory).get("bundles", {})


def files(directory: Path, table: str, only: list[str] | None = None) -> list[str]:
    """The Parquet files of ``table`` for the bundles the manifest names (or ``only`` those)."""
    directory = Path(directory)
    named = bundles(directory)
    chosen = named if only is None else [b for b in only if b in named]
    return [str(directory / table / f"bundle={b}" / PART) for b in sorted(chosen)]


def tables(directory: Path) -> list[str]:
    """The tables the lake's bundles were written with (the schema's, plus extra columns' ones)."""
    data = manifest(directory)
    return sorted(set(data.get("tables", {})) | set(SCHEMA))


def connect(directory: Path, only: list[str] | None = None,
            needed: set[str] | None = None):
    """A DuckDB connection with a view per table (see the module docstring); ``needed``: only
    those tables' views (a view binds every file it reads: 28 tables x 1,000 bundles took
    seconds per statement)."""
    duckdb = _duckdb()
    directory = Path(directory)
    data = manifest(directory)
    con = duckdb.connect()
    versions = {b.get("schema_version") for b in data.get("bundles", {}).values()}
    extra = any(b.get("extra_columns") for b in data.get("bundles", {}).values())
    by_name = "true" if len(versions) > 1 or extra else "false"
    for table in tables(directory):
        if needed is not None and table not in needed:
            continue
        paths = files(directory, table, only)
        paths = [p for p in paths if Path(p).exists()]
        if paths:
            listed = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
            con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM read_parquet([{listed}], '
                        f"union_by_name={by_name}, hive_partitioning=false)")
        else:
            columns = SCHEMA.get(table) or [tuple(c) for c in data.get("tables", {}).get(table, ())]
            con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM ({_empty_select(columns)})')
    rows = [(b, e.get("source"), e.get("kind"), e.get("status"), e.get("started"),
             e.get("hosts"), e.get("exported"), e.get("schema_version"))
            for b, e in sorted(data.get("bundles", {}).items()) if only is None or b in only]
    import pyarrow as pa

    index = pa.table({c: pa.array([r[i] for r in rows], _arrow_type(t))
                      for i, (c, t) in enumerate(BUNDLES_COLUMNS)})
    con.register("_bundles", index)
    con.execute("CREATE VIEW bundles AS SELECT * FROM _bundles")
    return con


def _empty_select(columns) -> str:
    sql_type = {"string": "VARCHAR", "json": "VARCHAR", "int64": "BIGINT", "float64": "DOUBLE",
                "bool": "BOOLEAN"}
    columns = columns or (("bundle", "string"), ("host", "string"))
    return "SELECT " + ", ".join(f'NULL::{sql_type[t]} AS "{c}"' for c, t in columns) \
        + " WHERE false"


def query(directory: Path, sql: str):
    """Run one SQL statement over the lake's views; a pyarrow Table. A statement DuckDB refuses
    is a :class:`diag.errors.UsageError` with its message."""
    import re

    duckdb = _duckdb()
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql))
    con = connect(directory, needed={t for t in tables(directory) if t in words})
    try:
        relation = con.sql(sql)
        if relation is None:              # a statement without rows (SET, CREATE ...)
            import pyarrow as pa

            return pa.table({})
        return arrow_of(relation)
    except duckdb.Error as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"query: {first}",
                         f"tables: {', '.join(tables(directory))}, bundles") from None
    finally:
        con.close()


def arrow_of(result):
    """A DuckDB relation as a pyarrow Table (the method's name changed in DuckDB 1.4)."""
    fetch = getattr(result, "to_arrow_table", None) or result.arrow
    return fetch()


class LakeBundle:
    """One bundle of a lake, read for an analysis: whole columns as pyarrow (``columns``),
    the rows of some hosts as the facts tables have them (``frame``), SQL over its tables
    (``sql``). What :func:`diag.pipeline.explain_lake` hands the analyzers: they read through
    it and never open a file."""

    def __init__(self, directory: Path, bundle: str) -> None:
        self.directory, self.bundle = Path(directory), bundle
        self._con = None

    def path(self, table: str) -> str:
        (path,) = files(self.directory, table, [self.bundle]) or [""]
        return path

    def columns(self, table: str, names: list[str]):
        """The named columns of every row of ``table`` (text dictionary-encoded)."""
        import pyarrow.parquet as pq

        path = self.path(table)
        if not path or not Path(path).exists():
            import pyarrow as pa

            return pa.table({n: pa.array([], _arrow_type(dict(SCHEMA[table]).get(n, "string")))
                             for n in names})
        return pq.read_table(path, columns=names)

    def frame(self, table: str, hosts=None):
        """The rows of ``hosts`` (None: all) as the facts table: pandas, JSON columns as lists,
        integers nullable, without ``bundle``."""
        import pandas as pd
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        path = self.path(table)
        declared = [c for c, _ in SCHEMA.get(table, ()) if c != "bundle"]
        if not path or not Path(path).exists():
            return pd.DataFrame({c: pd.Series([], dtype=object) for c in declared})
        if hosts is not None and not hosts:
            data = pq.read_schema(path).empty_table()
        elif hosts is not None:         # the row groups of other hosts are skipped (statistics)
            data = pq.read_table(path, filters=[("host", "in", sorted(hosts))])
            data = data.filter(pc.is_in(data.column("host").cast(pa.string()),
                                        value_set=pa.array(sorted(hosts), pa.string())))
        else:
            data = pq.read_table(path)
        data = data.drop_columns(["bundle"])
        kinds = dict(SCHEMA.get(table, ()))
        columns = {}
        for name in data.column_names:
            column = data.column(name).combine_chunks()
            if pa.types.is_dictionary(column.type):
                # one str object per distinct text, shared by its rows (as the parsers make
                # them): millions of cells, a few thousand texts
                import numpy as np

                values = column.dictionary.to_pylist()
                if kinds.get(name) == "json":
                    values = [None if v is None else json.loads(v) for v in values]
                lookup = np.empty(len(values) + 1, dtype=object)
                lookup[:len(values)] = values
                codes = pc.fill_null(column.indices, 0).to_numpy(
                    zero_copy_only=False).astype(np.int64, copy=False)
                if column.null_count:
                    codes = np.where(column.is_null().to_numpy(zero_copy_only=False), -1, codes)
                columns[name] = pd.Series(lookup[codes], dtype=object, copy=False)
            else:
                columns[name] = column.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        return pd.DataFrame(columns, columns=data.column_names)

    def sql(self, text: str):
        """One statement over this bundle's tables (views as :func:`connect` makes them)."""
        if self._con is None:
            self._con = connect(self.directory, only=[self.bundle])
        return arrow_of(self._con.sql(text))

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def _duckdb():
    try:
        import duckdb
    except ImportError:
        raise EnvironmentProblem("querying the evidence lake needs DuckDB",
                                 hint=LAKE_HINT) from None
    return duckdb


__all__ = [
    "FORMAT",
    "LAKE_MANIFEST",
    "SCHEMA",
    "SCHEMA_VERSION",
    "LakeBundle",
    "append",
    "arrow_of",
    "arrow_table",
    "bundles",
    "connect",
    "contains",
    "files",
    "manifest",
    "query",
    "tables",
]
