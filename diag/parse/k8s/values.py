"""Value forms the Kubernetes objects use: Go durations, AS numbers, address forms.

Contract: pure functions, each returning None for an absent value and raising ValueError
(with the text) for a value in an unknown form; the object parsers turn that ValueError into an
:class:`~diag.parse.k8s.objects.ObjectError` at the field's pointer.
"""
from __future__ import annotations

import ipaddress
import re

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text: str | None) -> float | None:
    """``9m0s`` -> 540.0, ``120s`` -> 120.0, ``0s`` -> 0.0 (Go's time.Duration text)."""
    if text is None:
        return None
    text = text.strip()
    if text in ("0", ""):
        return 0.0
    position, total = 0, 0.0
    for match in _GO_DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        raise ValueError(f"not a duration: {text!r}")
    return total


def as_number(value: int | str | None) -> int | None:
    """An AS number as Calico and MetalLB accept it: an integer, its text, or asdot ``1.10``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not an AS number: {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\d+", value.strip()):
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\d+\.\d+", value.strip()):
        high, low = (int(part) for part in value.strip().split("."))
        if high > 65535 or low > 65535:
            raise ValueError(f"not an AS number: {value!r}")
        number = high * 65536 + low
    else:
        raise ValueError(f"not an AS number: {value!r}")
    if not 0 <= number <= 4294967295:
        raise ValueError(f"AS number out of range: {value!r}")
    return number


def address_and_port(text: str | None) -> tuple[str | None, int | None]:
    """Calico's ``peerIP``: ``10.0.0.1``, ``10.0.0.1:1179``, ``[fd00::1]:1179`` or ``fd00::1``."""
    if text is None:
        return None, None
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else None
        ipaddress.ip_address(host)
        return host, port
    if text.count(":") == 1:
        host, port = text.split(":")
        ipaddress.ip_address(host)
        return host, int(port)
    ipaddress.ip_address(text)
    return text, None


def address_of_cidr(text: str | None) -> str | None:
    """The address part of ``10.0.0.1/32`` (CiliumBGPPeeringPolicy's peerAddress)."""
    if text is None:
        return None
    return str(ipaddress.ip_interface(text.strip()).ip)
