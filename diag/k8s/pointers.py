"""RFC 6901 JSON pointers: how a table row or a finding names the place in a stored object.

Contract: :func:`join` builds a pointer from path parts (``join("spec", "peers", 0)`` ->
``/spec/peers/0``), escaping ``~`` and ``/`` in keys (``projectcalico.org/IPv4Address`` ->
``projectcalico.org~1IPv4Address``); :func:`append` extends one; :func:`resolve` follows one
into a JSON document and raises :class:`KeyError` naming the first part that is not there. A
pointer relative to one object is also the ``path`` of a ``kubectl patch --type json`` operation.
"""
from __future__ import annotations

from typing import Any


def escape(part: str | int) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def join(*parts: str | int) -> str:
    return "".join("/" + escape(part) for part in parts)


def append(pointer: str, *parts: str | int) -> str:
    return pointer + join(*parts)


def split(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"not a JSON pointer: {pointer!r}")
    return [unescape(part) for part in pointer[1:].split("/")]


def resolve(document: Any, pointer: str) -> Any:
    node = document
    for part in split(pointer):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise KeyError(f"{pointer}: no item {part}")
            node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node:
                raise KeyError(f"{pointer}: no key {part!r}")
            node = node[part]
        else:
            raise KeyError(f"{pointer}: {part!r} below a {type(node).__name__}")
    return node
