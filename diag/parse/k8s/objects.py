"""Reading Kubernetes objects as the API returned them: the List, each item, typed fields.

Contract: :func:`load_objects` takes what ``kubectl get ... -o json`` prints (a ``List`` or a
``<Kind>List``, or a single object for a named get) and returns one :class:`Obj` per item, or
raises :class:`diag.parse.common.ParseError` when the document is not such a thing. An item
without ``apiVersion``, ``kind`` or ``metadata.name`` is an :class:`ObjectError` of its own (the
other items are still read).

A :class:`Field` is a value with its JSON pointer inside its object; its getters check the type
the API schema gives the field and raise :class:`ObjectError` (which names the object and the
pointer) when the value has another type. Absent optional fields read as ``None`` (or the
default given). Every table row starts with :data:`REF_COLUMNS`: ``kind``, ``api_version``,
``namespace`` (None for cluster-scoped objects), ``name``, ``item`` (the item's index in the
stored List) and ``pointer`` (RFC 6901, relative to the object: the part the row describes, e.g.
``/spec/bgpInstances/0/peers/1``; ``""`` for the whole object). The stored file holds the object
at ``/items/<item>``.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from diag.k8s import pointers
from diag.k8s.kinds import split_api_version
from diag.parse.common import ParseError, load_json

REF_COLUMNS = ["kind", "api_version", "namespace", "name", "item", "pointer"]


class ObjectError(ParseError):
    """One object (or one field of it) in a shape the parser does not know."""

    def __init__(self, obj: Obj | None, pointer: str, reason: str, item: int | None = None,
                 kind: str | None = None, name: str | None = None) -> None:
        self.kind = obj.kind if obj else kind
        self.namespace = obj.namespace if obj else None
        self.name = obj.name if obj else name
        self.item = obj.item if obj else item
        self.pointer = pointer
        self.reason = reason
        where = "/".join(p for p in (self.kind, self.namespace, self.name) if p) or "object"
        super().__init__(f"{where} at {pointer or '/'}: {reason}")

    def row(self) -> dict[str, Any]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name,
                "item": self.item, "pointer": self.pointer, "error": self.reason}


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean", list: "a list",
               dict: "an object", float: "a number"}


class Field:
    """A value inside an object, with its pointer; typed getters for its children."""

    __slots__ = ("exists", "obj", "pointer", "value")

    def __init__(self, obj: Obj, value: Any, pointer: str, exists: bool = True) -> None:
        self.obj = obj
        self.value = value
        self.pointer = pointer
        self.exists = exists

    @property
    def anchor(self) -> str:
        """The pointer a row about this field carries: the field's own, or the whole object's
        (``""``) when the field is absent (an object without ``spec``), so it always resolves."""
        return self.pointer if self.exists else ""

    def error(self, reason: str, *parts: str | int) -> ObjectError:
        return ObjectError(self.obj, pointers.append(self.pointer, *parts), reason)

    def _raw(self, key: str, expect: tuple[type, ...], required: bool) -> Any:
        if not isinstance(self.value, dict):
            raise self.error("expected an object")
        value = self.value.get(key)
        if value is None:
            if required:
                raise self.error("required field is missing", key)
            return None
        if isinstance(value, bool) and bool not in expect:
            raise self.error(f"expected {_expected(expect)}, got a boolean", key)
        if not isinstance(value, expect):
            raise self.error(f"expected {_expected(expect)}, got {_got(value)}", key)
        return value

    def child(self, key: str, required: bool = False) -> Field | None:
        value = self._raw(key, (dict,), required)
        return None if value is None else Field(self.obj, value, pointers.append(self.pointer, key))

    def items(self, key: str, required: bool = False) -> list[Field]:
        value = self._raw(key, (list,), required) or []
        base = pointers.append(self.pointer, key)
        return [Field(self.obj, entry, pointers.append(base, i)) for i, entry in enumerate(value)]

    def objects(self, key: str, required: bool = False) -> list[Field]:
        """A list whose every entry must be an object."""
        out = self.items(key, required)
        for entry in out:
            if not isinstance(entry.value, dict):
                raise entry.error(f"expected an object, got {_got(entry.value)}")
        return out

    def text(self, key: str, required: bool = False, default: str | None = None) -> str | None:
        value = self._raw(key, (str,), required)
        return default if value is None else value

    def integer(self, key: str, required: bool = False,
                default: int | None = None) -> int | None:
        value = self._raw(key, (int,), required)
        return default if value is None else value

    def flag(self, key: str, required: bool = False,
             default: bool | None = None) -> bool | None:
        value = self._raw(key, (bool,), required)
        return default if value is None else value

    def strings(self, key: str, required: bool = False) -> list[str]:
        value = self._raw(key, (list,), required) or []
        for i, entry in enumerate(value):
            if not isinstance(entry, str):
                raise self.error(f"expected a string, got {_got(entry)}", key, i)
        return list(value)

    def mapping(self, key: str, required: bool = False) -> dict | None:
        """A nested object kept as it is (selectors, status conditions)."""
        return self._raw(key, (dict,), required)

    def string_map(self, key: str) -> dict[str, str]:
        value = self._raw(key, (dict,), False) or {}
        for k, v in value.items():
            if not isinstance(v, str):
                raise self.error(f"expected a string, got {_got(v)}", key, k)
        return dict(value)

    def any(self, key: str) -> Any:
        return self.value.get(key) if isinstance(self.value, dict) else None


def _expected(expect: tuple[type, ...]) -> str:
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in expect)


def _got(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class Obj:
    """One item of the List: its identity and its content as a root :class:`Field`."""

    item: int
    doc: dict
    api_version: str
    kind: str
    namespace: str | None
    name: str

    @property
    def group(self) -> str:
        return split_api_version(self.api_version)[0]

    @property
    def version(self) -> str:
        return split_api_version(self.api_version)[1]

    @property
    def root(self) -> Field:
        return Field(self, self.doc, "")

    @property
    def metadata(self) -> Field:
        return Field(self, self.doc["metadata"], "/metadata")

    @property
    def labels(self) -> dict[str, str]:
        return self.metadata.string_map("labels")

    @property
    def annotations(self) -> dict[str, str]:
        return self.metadata.string_map("annotations")

    def spec(self, required: bool = False) -> Field:
        spec = self.root.child("spec", required=required)
        return spec if spec is not None else Field(self, {}, "/spec", exists=False)

    def ref(self, pointer: str = "") -> dict[str, Any]:
        return {"kind": self.kind, "api_version": self.api_version, "namespace": self.namespace,
                "name": self.name, "item": self.item, "pointer": pointer}


def load_objects(data: str | bytes, what: str = "kubectl get -o json"
                 ) -> tuple[list[Obj], list[ObjectError]]:
    """The items of a List (or the one object of a named get), and the items that are not
    objects at all."""
    document = load_json(data, what, dict)
    if not document:
        raise ParseError(f"{what}: empty document (expected a List)")
    kind = document.get("kind")
    if isinstance(kind, str) and (kind == "List" or kind.endswith("List")) \
            and "items" in document:
        raw_items = document["items"]
        if raw_items is None:
            raw_items = []
        if not isinstance(raw_items, list):
            raise ParseError(f"{what}: items is not a list")
    elif isinstance(kind, str) and "metadata" in document:
        raw_items = [document]
    else:
        raise ParseError(f"{what}: not a Kubernetes List or object (kind {kind!r})")
    objects, errors = [], []
    for index, raw in enumerate(raw_items):
        try:
            objects.append(_object(index, raw))
        except ObjectError as err:
            errors.append(err)
    return objects, errors


def _object(index: int, raw: Any) -> Obj:
    here = pointers.join("items", index)
    if not isinstance(raw, dict):
        raise ObjectError(None, "", f"item {here} is {_got(raw)}, not an object", item=index)
    kind, api_version, metadata = raw.get("kind"), raw.get("apiVersion"), raw.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(kind, str) or not isinstance(api_version, str):
        raise ObjectError(None, "", f"item {here} has no kind/apiVersion", item=index,
                          name=name if isinstance(name, str) else None)
    if not isinstance(metadata, dict) or not isinstance(name, str) or not name:
        raise ObjectError(None, "/metadata/name", "object without metadata.name", item=index,
                          kind=kind)
    namespace = metadata.get("namespace")
    return Obj(item=index, doc=raw, api_version=api_version, kind=kind,
               namespace=namespace if isinstance(namespace, str) and namespace else None,
               name=name)


def iter_fields(field: Field | None) -> Iterator[Field]:
    """Convenience: nothing for an absent field, the field itself otherwise."""
    if field is not None:
        yield field
