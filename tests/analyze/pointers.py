"""JSON pointers (RFC 6901) read without diag: the independent reader the lab tests use to check
that every evidence pointer of a finding names a real value in the bundle's file."""
from __future__ import annotations


def resolve_pointer(document, pointer: str):
    """The value ``pointer`` names in ``document`` (KeyError/IndexError when it names none)."""
    node = document
    for token in pointer.lstrip("/").split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node
