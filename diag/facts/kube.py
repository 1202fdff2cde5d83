"""The bundle's Kubernetes part -> tables: every kind's stored List through its parser.

Contract: :func:`kube_tables(bundle) -> (tables, errors)`. ``tables`` holds every table of
:data:`diag.parse.k8s.TABLES` (``k8s_nodes``, ``cilium_nodes``, ``calico_block_affinities``,
...), always, empty with its columns when no object gave rows (a bundle without a kube part, a
kind not installed, refused or unreadable), plus ``kube_resources``: one row per kind diag looked
for, with what became of it (:data:`RESOURCE_COLUMNS`: installed, outcome ``OK`` /
``NOT_INSTALLED`` / ``FAILED`` / ``TIMEOUT`` / ``UNKNOWN`` / ..., the API's ``status_reason``
and ``status_message`` for a refusal, the number of objects, the file). Only records with
outcome ``OK`` and a file are read, each through
:func:`diag.parse.k8s.parse_list` with ``expect=(group, kind)``; their frames are concatenated
per table in the manifest's order. ``errors`` are ``parse_errors`` rows (``host`` None,
``source`` the record's id such as ``kube:cilium.io/ciliumnodes``, ``parser`` ``k8s``, ``path``
its file, ``reason`` naming the object and the JSON pointer of the field), one per object the parser did not
understand and one per unreadable file. Secrets are never in a bundle, so never read here.
"""
from __future__ import annotations

from typing import Any

RESOURCE_COLUMNS = ["id", "group", "resource", "kind", "version", "installed", "outcome",
                    "status_reason", "status_message", "objects", "path"]


def empty_tables() -> dict[str, Any]:
    """Every Kubernetes table, empty with its columns (a capture, a schema 1 bundle)."""
    from diag.parse.common import frame
    from diag.parse.k8s import TABLES

    tables = {name: frame([], columns) for name, columns in TABLES.items()}
    tables["kube_resources"] = frame([], RESOURCE_COLUMNS)
    return tables


def kube_tables(bundle) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    import pandas as pd

    from diag.parse.common import ParseError, frame
    from diag.parse.k8s import TABLES, parse_list

    parts: dict[str, list] = {name: [] for name in TABLES}
    errors: list[dict[str, Any]] = []
    resources: list[dict[str, Any]] = []
    for record in bundle.kube_resources():
        resources.append({key: record.get(key) for key in RESOURCE_COLUMNS})
        path = record.get("path")
        if record.get("outcome") != "OK" or not path:
            continue
        source = str(record.get("id") or path)
        try:
            data = bundle.read(path)
        except OSError as err:
            errors.append(_error(source, path, f"unreadable: {err.strerror}"))
            continue
        try:
            read = parse_list(data, expect=(str(record.get("group") or ""),
                                            str(record.get("kind") or "")),
                              what=f"kubectl get {record.get('resource')} -o json")
        except ParseError as err:
            errors.append(_error(source, path, err.message))
            continue
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as err:        # noqa: BLE001 - one kind's file never stops the rest
            from diag.facts.tables import failure_reason
            errors.append(_error(source, path, failure_reason(err)))
            continue
        for name, df in read.frames.items():
            if len(df):
                parts[name].append(df)
        for problem in read.errors:
            errors.append(_error(source, path, str(problem)))
    tables: dict[str, Any] = {}
    for name, columns in TABLES.items():
        if parts[name]:
            df = pd.concat(parts[name], ignore_index=True, sort=False) if len(parts[name]) > 1 \
                else parts[name][0].reset_index(drop=True)
            tables[name] = df
        else:
            tables[name] = frame([], columns)
    tables["kube_resources"] = frame(resources, RESOURCE_COLUMNS)
    return tables, errors


def _error(source: str, path: str, reason: str) -> dict[str, Any]:
    from diag.facts.tables import error_row

    return error_row(None, source, "k8s", path, reason)
