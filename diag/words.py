"""Counted nouns for what diag writes: "1 SYN", "3 SYNs", "1 ARP request" — never "1 hosts" or
"request(s)". A floor: findings (analyze) and renderers (report) say counts the same way.

Contract: :func:`counted(n, noun, plural=None) -> str`; the plural is ``noun + "s"`` unless given.
"""
from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


__all__ = ["counted"]
