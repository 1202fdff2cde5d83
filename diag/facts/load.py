"""Load facts from a bundle or a capture (see the package docstring).

Contract: :func:`load_facts(path, inventory=None, decode_options=None) -> Facts`. A path that is a
directory or ``.tar.gz``/``.tgz`` archive is read as a bundle through
:func:`diag.bundle.open_bundle`
(untrusted input: links, traversal, devices, bombs refused; sha256s verified, mismatches kept in
``problems``); anything else is decoded as one capture (host ``capture``). ``inventory`` maps host
names to declared model fields (role, pod_cidr, cluster_iface, lb_ips) and is merged over the
manifest's ``declared``. Unreadable input raises :class:`diag.errors.UnusableInput`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diag.bundle import OutputIndex, is_bundle
from diag.facts.model import ClusterModel

CAPTURE_HOST = "capture"


@dataclass(frozen=True)
class Facts:
    source: str
    kind: str                               # bundle | capture
    tables: dict[str, Any]                  # name -> DataFrame
    model: ClusterModel
    parse_errors: Any                       # DataFrame: host, source, parser, path, reason
    problems: tuple[dict[str, str], ...] = ()   # bundle damage: sha256 mismatch, missing files
    bundle: dict[str, Any] = field(default_factory=dict)  # status, hosts, reachability
    outputs: OutputIndex = field(default_factory=OutputIndex)   # (host, command id) -> file

    def table(self, name: str):
        from diag.errors import UsageError

        if name not in self.tables:
            raise UsageError(f"no table {name!r}",
                             f"tables: {', '.join(sorted(self.tables))}")
        return self.tables[name]


def load_facts(path: str | Path, inventory: dict[str, dict[str, Any]] | None = None,
               decode_options=None, extract_to: Path | None = None) -> Facts:
    from diag.bundle import checked_input

    path = checked_input(Path(path))     # FIFOs and devices refused before anything opens them
    return _load(path, inventory, decode_options, extract_to)


def _load(path: Path, inventory, decode_options, extract_to) -> Facts:
    if is_bundle(path):
        if path.is_dir() or extract_to is not None:
            return _from_bundle(path, inventory or {}, decode_options, extract_to)
        import tempfile

        # everything is read into memory, so the extracted archive does not outlive the load
        with tempfile.TemporaryDirectory(prefix="diag-facts-") as tmp:
            return _from_bundle(path, inventory or {}, decode_options, Path(tmp) / "x")
    return _from_capture(path, inventory or {}, decode_options)


def _from_bundle(path: Path, inventory, decode_options, extract_to) -> Facts:
    import pandas as pd

    from diag.bundle import open_bundle
    from diag.facts.infer import infer_model
    from diag.facts.kube import kube_tables
    from diag.facts.kube_sessions import status_peers
    from diag.facts.merge import merge_peers, resolve_bird_peers
    from diag.facts.packets import capture_tables
    from diag.facts.tables import build_tables, epoch, error_frame

    bundle = open_bundle(path, extract_to)
    tables, errors = build_tables(bundle)
    tables["bgp_peers"] = merge_peers(tables["bgp_peers"])
    tables["bgp_paths"] = resolve_bird_peers(tables["bgp_paths"], tables["bgp_peers"])
    _release_memory()
    wire, wire_errors = capture_tables(bundle.captures(), tables["interfaces"], decode_options,
                                       tables["addresses"])
    tables.update(wire)
    kube, kube_errors = kube_tables(bundle)
    tables.update(kube)
    if wire_errors or kube_errors:
        errors = pd.concat([errors, error_frame(wire_errors + kube_errors)], ignore_index=True)
    hosts_meta = bundle.manifest.get("hosts", {})
    # unreached hosts stay in the model: other hosts' views (a router's BGP table, FDBs) still
    # say what they are
    hosts = [h for h, rec in hosts_meta.items() if isinstance(rec, dict)]
    declared = {h: dict((rec or {}).get("declared") or {}) for h, rec in hosts_meta.items()
                if isinstance(rec, dict)}
    for host, fields in inventory.items():
        declared.setdefault(host, {}).update(fields)
    model = infer_model(tables, hosts, declared)
    tables["bgp_peers"] = status_peers(tables, model)
    tables["tunnels"] = _tunnel_table(model)
    summary = {"status": bundle.manifest.get("status"),
               "partial_reasons": list(bundle.manifest.get("partial_reasons") or []),
               "started": bundle.manifest.get("started"),
               "started_epoch": epoch(bundle.manifest.get("started")),
               "hosts": {h: {"reachability": (rec or {}).get("reachability"),
                             "error": (rec or {}).get("error")}
                         for h, rec in hosts_meta.items() if isinstance(rec, dict)},
               "kube": None if bundle.kube is None else {
                   key: bundle.kube.get(key) for key in ("context", "server_version",
                                                         "discovery_complete")}}
    problems = tuple({"kind": p.kind, "path": p.path, "detail": p.detail}
                     for p in bundle.problems)
    return Facts(str(path), "bundle", tables, model, errors, problems, summary, bundle.outputs())


def _release_memory() -> None:
    """Between reading the outputs and decoding the captures: what the outputs' parsing left
    (pyarrow's pool, cycles the paused GC has not collected) is handed back before the captures
    need memory of their own (damaged outputs at the reading limits leave a lot).

    Only the young generations are collected: under the paused GC every pipeline entry holds
    (diag.pipeline.paused_gc), all the parsing made is still in the youngest generation; a full
    collection would also walk every object the process held before this load, for no garbage
    of ours (0.2-0.5 s in a process that holds many, e.g. one explaining bundle after bundle).
    Where the GC runs, it collects older cycles on its own schedule."""
    import gc

    import pyarrow as pa

    gc.collect(1)
    pa.default_memory_pool().release_unused()


def _from_capture(path: Path, inventory, decode_options) -> Facts:
    import pandas as pd

    from diag.facts.infer import infer_model
    from diag.facts.kube import empty_tables
    from diag.facts.packets import capture_tables
    from diag.facts.tables import TABLES, error_frame, table_columns

    wire, wire_errors = capture_tables([(CAPTURE_HOST, path)], None, decode_options)
    fatal = [e for e in wire_errors if e.get("fatal")]
    if fatal:  # a bare file that is not a capture: one clear line
        from diag.errors import UnusableInput
        raise UnusableInput(fatal[0]["reason"])
    columns = table_columns()
    tables: dict[str, Any] = {name: pd.DataFrame({c: pd.Series(dtype="object") for c in
                                                  ["host", "source", "phase"] + columns[name]})
                              for name in TABLES}
    tables.update(empty_tables())
    tables.update(wire)
    model = infer_model(tables, [CAPTURE_HOST], inventory)
    tables["tunnels"] = _tunnel_table(model)
    return Facts(str(path), "capture", tables, model, error_frame(wire_errors), (),
                 {"status": "capture", "hosts": {CAPTURE_HOST: {"reachability": "OK"}}})


def _tunnel_table(model: ClusterModel):
    from dataclasses import asdict

    import pandas as pd

    columns = ["host", "device", "kind", "vni", "port", "local", "underlay_dev", "mtu", "remotes",
               "how"]
    return pd.DataFrame([asdict(t) for t in model.tunnels], columns=columns)
