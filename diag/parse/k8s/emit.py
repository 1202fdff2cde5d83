"""The rows one object gives, staged until the object is read whole.

Contract: a parser function ``parse(obj, out)`` calls ``out.add(table, obj, pointer, **values)``
for each row; :class:`Emitter` keeps the rows of the current object apart and adds them to the
tables only when the object was read without an :class:`~diag.parse.k8s.objects.ObjectError`,
so a half-read object never leaves half its rows behind.
"""
from __future__ import annotations

from typing import Any

from diag.parse.k8s.objects import Obj


class Emitter:
    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self._staged: list[tuple[str, dict[str, Any]]] = []

    def add(self, table: str, obj: Obj, pointer: str, **values: Any) -> None:
        row = obj.ref(pointer)
        row.update(values)
        self._staged.append((table, row))

    def commit(self) -> None:
        for table, row in self._staged:
            self.rows.setdefault(table, []).append(row)
        self._staged.clear()

    def discard(self) -> None:
        self._staged.clear()
