"""Kubernetes objects -> tables: one module per family, one entry point.

Contract: :func:`parse_list` takes what ``kubectl get KIND -A -o json`` printed (a List, as
stored in the bundle) and returns :class:`KubeTables`: ``frames`` (table name -> DataFrame with
:data:`~diag.parse.k8s.objects.REF_COLUMNS` + the table's columns, documented in the family's
module) and ``errors`` (one :class:`~diag.parse.k8s.objects.ObjectError` per object in a shape
the parser does not know: an unknown kind or version, a field of the wrong type, a required
field missing — with the object's kind/namespace/name and the JSON pointer of the field). An
object with an error contributes no rows at all; the other objects of the List are read. A
document that is not a List or object at all raises :class:`diag.parse.common.ParseError`.

``expect=(group, kind)`` (what was asked for) makes an item of another kind an error and gives
that kind's tables (empty, with their columns) for an empty List. Without it the frames are the
tables of the kinds the List holds.

Families: :mod:`~diag.parse.k8s.core` (Node, Service, ConfigMap cilium-config, Lease),
:mod:`~diag.parse.k8s.cilium_bgp`, :mod:`~diag.parse.k8s.cilium_net`,
:mod:`~diag.parse.k8s.calico`, :mod:`~diag.parse.k8s.metallb`. :data:`TABLES` maps every table
to its full column list.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from diag.k8s import kinds
from diag.parse.common import frame
from diag.parse.k8s import calico, cilium_bgp, cilium_net, core, metallb
from diag.parse.k8s.emit import Emitter
from diag.parse.k8s.objects import REF_COLUMNS, Obj, ObjectError, load_objects

ERROR_COLUMNS = ["kind", "namespace", "name", "item", "pointer", "error"]

_FAMILIES = (core, cilium_bgp, cilium_net, calico, metallb)
TABLES: dict[str, list[str]] = {name: REF_COLUMNS + columns
                                for module in _FAMILIES for name, columns in module.TABLES.items()}
PARSERS: dict[tuple[str, str], tuple[Callable[[Obj, Emitter], None], tuple[str, ...]]] = {
    key: value for module in _FAMILIES for key, value in module.PARSERS.items()}


@dataclass
class KubeTables:
    frames: dict[str, Any] = field(default_factory=dict)
    errors: list[ObjectError] = field(default_factory=list)

    def errors_frame(self):
        return frame([e.row() for e in self.errors], ERROR_COLUMNS)


def tables_for(group: str, kind: str) -> tuple[str, ...]:
    entry = PARSERS.get((group, kind))
    return entry[1] if entry else ()


def parse_list(data: str | bytes, expect: tuple[str, str] | None = None,
               what: str = "kubectl get -o json") -> KubeTables:
    objects, errors = load_objects(data, what)
    emitter = Emitter()
    seen: list[str] = list(tables_for(*expect)) if expect else []
    for obj in objects:
        try:
            tables = _parse_one(obj, emitter, expect)
        except ObjectError as err:
            emitter.discard()
            errors.append(err)
            continue
        emitter.commit()
        seen.extend(t for t in tables if t not in seen)
    frames = {name: frame(emitter.rows.get(name, []), TABLES[name]) for name in seen}
    return KubeTables(frames=frames, errors=errors)


def _parse_one(obj: Obj, emitter: Emitter, expect: tuple[str, str] | None) -> tuple[str, ...]:
    if expect is not None and (obj.group, obj.kind) != expect:
        raise ObjectError(obj, "", f"{obj.api_version} {obj.kind} in a list of "
                                   f"{expect[1]} ({expect[0] or 'core'})")
    known = kinds.find(obj.group, obj.kind)
    entry = PARSERS.get((obj.group, obj.kind))
    if known is None or entry is None:
        raise ObjectError(obj, "", f"no parser for {obj.api_version} {obj.kind}")
    if obj.version not in known.versions:
        raise ObjectError(obj, "/apiVersion",
                          f"unknown version {obj.api_version} of {obj.kind} "
                          f"(known: {', '.join(known.api_version(v) for v in known.versions)})")
    parse, tables = entry
    parse(obj, emitter)
    return tables
