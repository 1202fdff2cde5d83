"""Secrets out of command output before anything is written: :func:`redact`.

Rules (each hit becomes a :class:`Redaction` for the bundle's redaction report, which names the
rule and the line, never the secret):

``SS_STRAY_BYTES``
    iproute2 6.1's ``ss -i`` prints TCP-MD5 key bytes with ``printf`` while the rest of its output
    sits in its own buffer, so the key lands *before* the rendered text, glued to the header or to
    a socket line (``s3crets3cretState  Recv-Q ...``; tests/fixtures/collect/ss_md5_iproute2_6.1).
    The key is printed escaped (no whitespace, no commas), so for ``ss`` output every line must
    start with the header, a socket state or a tab; anything before that start is removed, and a
    line with no valid start is removed whole. This is a grammar, not a search for known keys.
``SS_MD5_KEY``
    ``md5keys:ADDR/LEN=KEY`` with the key inline (iproute2 after the fix) keeps ``ADDR/LEN=``.
``PASSWORD``
    ``password``/``secret``/``auth_password``-like words followed by a value, in text and JSON text.
``JSON_SECRET``
    in JSON output, string values of keys named like passwords or secrets (GoBGP's
    ``auth_password``, FRR's ``password``, MetalLB BGPPeer's ``password``); the JSON is
    re-serialised only when something changed. Keys ending in ``Ref`` name a Secret rather
    than hold one (Cilium's ``authSecretRef: bgp-auth-secret``) and are kept.
``KNOWN_SECRET``
    literal secrets the caller knows (``--redact-string``), also in ss's escaped form.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

MASK = "[REDACTED]"
_MASK_BYTES = MASK.encode()

_SS_STATES = ("ESTAB", "LISTEN", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT",
              "CLOSE-WAIT", "LAST-ACK", "CLOSING", "CLOSED", "CLOSE", "UNCONN", "NEW-SYN-RECV",
              "BOUND", "UNKNOWN")
# a valid start of an ss line: the header, a socket line (state, two queue numbers) or an info line
_SS_LINE_START = re.compile(
    rb"(?:(?:Netid\s+)?State\s+Recv-Q\s+Send-Q\s"
    rb"|(?:tcp\s+|mptcp\s+)?(?:" + b"|".join(s.encode() for s in _SS_STATES) + rb")\s+\d+\s+\d+\s"
    rb"|\t)")
_SS_INLINE_KEY = re.compile(rb"((?:md5keys:|,)[0-9A-Fa-f:.]+/\d+=)([^,\s]+)")
_PASSWORD_TEXT = re.compile(
    rb"(?i)(\b(?:auth[_-]?password|password|passwd|secret|md5[_-]?key|authentication-key|psk)"
    rb"\b[\"']?\s*[:=]?\s*)(\"[^\"\n]*\"|'[^'\n]*'|[^\s,;]+)")
_SECRET_KEY_NAME = re.compile(r"(?i)(passw(or)?d|secret|md5.?key|auth.?key|psk)")


@dataclass(frozen=True)
class Redaction:
    """One redaction: which rule matched where (1-based line in the original output)."""

    rule: str
    line: int
    detail: str = ""


def redact(command_id: str, data: bytes,
           known_secrets: Iterable[str] = ()) -> tuple[bytes, list[Redaction]]:
    """Return (redacted output, what was redacted). Pure; safe on any bytes."""
    found: list[Redaction] = []
    if command_id.startswith("ss-tanpi"):
        data = _redact_ss(data, found)
    data = _redact_json_or_text(data, found)
    data = _redact_known(data, known_secrets, found)
    return data, found


def _redact_ss(data: bytes, found: list[Redaction]) -> bytes:
    lines = data.split(b"\n")
    out = []
    for number, line in enumerate(lines, 1):
        if line == b"" or line.startswith(b"\t") or line.startswith(b" "):
            cleaned = line
        else:
            match = _SS_LINE_START.search(line)
            if match is None:
                found.append(Redaction("SS_STRAY_BYTES", number, "line with no valid ss start"))
                cleaned = _MASK_BYTES
            elif match.start() > 0:
                found.append(Redaction("SS_STRAY_BYTES", number,
                                       "bytes before the start of an ss line"))
                cleaned = line[match.start():]
            else:
                cleaned = line
        if b"md5keys:" in cleaned:
            cleaned, count = _SS_INLINE_KEY.subn(lambda m: m.group(1) + _MASK_BYTES, cleaned)
            if count:
                found.append(Redaction("SS_MD5_KEY", number, f"{count} inline md5 key(s)"))
        out.append(cleaned)
    return b"\n".join(out)


def _redact_json_or_text(data: bytes, found: list[Redaction]) -> bytes:
    stripped = data.lstrip()
    if stripped[:1] in (b"{", b"["):
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            pass  # truncated or not JSON after all: the text rules below still apply
        else:
            paths: list[str] = []
            cleaned = _walk_json(document, "$", paths)
            if not paths:
                return data
            for path in paths:
                found.append(Redaction("JSON_SECRET", 0, path))
            return json.dumps(cleaned).encode()
    return _redact_text(data, found)


def _walk_json(node: Any, path: str, paths: list[str]) -> Any:
    if isinstance(node, dict):
        result = {}
        for key, value in node.items():
            here = f"{path}.{key}"
            if (isinstance(key, str) and _SECRET_KEY_NAME.search(key)
                    and not key.endswith("Ref") and isinstance(value, str) and value):
                result[key] = MASK
                paths.append(here)
            else:
                result[key] = _walk_json(value, here, paths)
        return result
    if isinstance(node, list):
        return [_walk_json(item, f"{path}[{i}]", paths) for i, item in enumerate(node)]
    return node


def _redact_text(data: bytes, found: list[Redaction]) -> bytes:
    if not _PASSWORD_TEXT.search(data):
        return data
    out = []
    for number, line in enumerate(data.split(b"\n"), 1):
        cleaned, count = _PASSWORD_TEXT.subn(lambda m: m.group(1) + _MASK_BYTES, line)
        if count:
            found.append(Redaction("PASSWORD", number, f"{count} value(s)"))
        out.append(cleaned)
    return b"\n".join(out)


def ss_escaped(secret: bytes) -> bytes:
    """How iproute2's print_escape_buf prints a key (escape set ' ,' plus backslash)."""
    out = bytearray()
    for byte in secret:
        char = chr(byte)
        if 0x20 < byte < 0x7F and char not in " ,\\":
            out.append(byte)
        else:
            out += b"\\%03o" % byte
    return bytes(out)


def _redact_known(data: bytes, secrets: Iterable[str], found: list[Redaction]) -> bytes:
    for secret in secrets:
        if not secret:
            continue
        raw = secret.encode()
        for form in {raw, ss_escaped(raw)}:
            if form in data:
                count = data.count(form)
                data = data.replace(form, _MASK_BYTES)
                found.append(Redaction("KNOWN_SECRET", 0, f"{count} occurrence(s)"))
    return data
