"""Selectors, evaluated as the API server and the CNIs evaluate them.

Contract:

- :func:`label_selector_matches` — a Kubernetes ``LabelSelector`` (``matchLabels`` and
  ``matchExpressions`` with ``In``, ``NotIn``, ``Exists``, ``DoesNotExist``) against a label
  map. An empty selector (``{}``) selects everything. An absent selector (``None``) means
  different things to different fields — every node for a CiliumBGPClusterConfig
  ``nodeSelector``, nothing for a CiliumBGPPeerConfig family's ``advertisements`` — so the caller
  says which with ``absent``. A malformed selector raises :class:`SelectorError`.
- :func:`calico_selector_matches` — Calico's selector language (``all()``, ``has(k)``,
  ``k == 'v'``, ``k != 'v'``, ``k in {'a', 'b'}``, ``k not in {...}``, ``!``, ``&&``, ``||``,
  parentheses) as used by BGPPeer ``nodeSelector``/``peerSelector`` and IPPool
  ``nodeSelector``. The empty string selects everything, as ``all()`` does.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


class SelectorError(ValueError):
    """A selector the API would have refused (unknown operator, missing values)."""


def label_selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str],
                           *, absent: bool) -> bool:
    if selector is None:
        return absent
    if not isinstance(selector, Mapping):
        raise SelectorError(f"selector is a {type(selector).__name__}, not an object")
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        raise SelectorError("matchLabels is not an object")
    for key, value in match_labels.items():
        if labels.get(key) != str(value):
            return False
    for expression in selector.get("matchExpressions") or []:
        if not _expression_matches(expression, labels):
            return False
    return True


def _expression_matches(expression: Any, labels: Mapping[str, str]) -> bool:
    if not isinstance(expression, Mapping) or "key" not in expression:
        raise SelectorError(f"matchExpressions entry without a key: {expression!r}")
    key, operator = expression["key"], expression.get("operator")
    values = [str(v) for v in expression.get("values") or []]
    if operator == "In":
        if not values:
            raise SelectorError(f"{key} In: values must not be empty")
        return key in labels and labels[key] in values
    if operator == "NotIn":
        if not values:
            raise SelectorError(f"{key} NotIn: values must not be empty")
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise SelectorError(f"unknown selector operator {operator!r} for key {key!r}")


# -- Calico selectors ---------------------------------------------------------------------------

_TOKEN = re.compile(r"""\s*(?:
    (?P<op>&&|\|\||==|!=|!|\(|\)|\{|\}|,)
  | (?P<str>'[^']*'|"[^"]*")
  | (?P<word>[A-Za-z0-9_./-]+(?:\(\))?)
)""", re.VERBOSE)


def _tokens(text: str) -> list[str]:
    out, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise SelectorError(f"calico selector {text!r}: cannot read at {text[position:]!r}")
        out.append(match.group("op") or match.group("str") or match.group("word"))
        position = match.end()
    return out


class _Calico:
    def __init__(self, text: str, labels: Mapping[str, str]) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.position = 0
        self.labels = labels

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise SelectorError(f"calico selector {self.text!r}: expected {expected or 'more'}")
        self.position += 1
        return token

    def parse(self) -> bool:
        value = self.disjunction()
        if self.peek() is not None:
            raise SelectorError(f"calico selector {self.text!r}: unexpected {self.peek()!r}")
        return value

    def disjunction(self) -> bool:
        value = self.conjunction()
        while self.peek() == "||":
            self.take()
            value = self.conjunction() or value
        return value

    def conjunction(self) -> bool:
        value = self.unary()
        while self.peek() == "&&":
            self.take()
            value = self.unary() and value
        return value

    def unary(self) -> bool:
        if self.peek() == "!":
            self.take()
            return not self.unary()
        if self.peek() == "(":
            self.take()
            value = self.disjunction()
            self.take(")")
            return value
        return self.term()

    def term(self) -> bool:
        token = self.take()
        if token == "all()":
            return True
        if token == "global()":
            return True
        if token == "has":
            self.take("(")
            key = self.take()
            self.take(")")
            return key in self.labels
        key = token
        operator = self.take()
        if operator in ("==", "!="):
            value = _unquote(self.take())
            equal = self.labels.get(key) == value
            return equal if operator == "==" else not equal
        if operator == "in" or (operator == "not" and self.take("in")):
            values = self.value_set()
            inside = self.labels.get(key) in values
            return inside if operator == "in" else not inside
        raise SelectorError(f"calico selector {self.text!r}: unknown operator {operator!r}")

    def value_set(self) -> set[str]:
        self.take("{")
        values: set[str] = set()
        while self.peek() != "}":
            values.add(_unquote(self.take()))
            if self.peek() == ",":
                self.take()
        self.take("}")
        return values


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return token[1:-1]
    raise SelectorError(f"calico selector value {token!r} is not quoted")


def calico_selector_matches(expression: str | None, labels: Mapping[str, str]) -> bool:
    if expression is None or not expression.strip():
        return True
    return _Calico(expression, labels).parse()
