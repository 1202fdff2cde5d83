"""The user's inventory: hosts with what they are declared to be (``--inventory``).

Contract: :func:`load_inventory(path) -> {host: {field: value}}` reads ``[[hosts]]`` tables
(TOML) or the same shape in JSON, keeping the fields the model takes as declared (``role``,
``pod_cidr``, ``cluster_iface``, ``lb_ips``); declared values win over inference. Unreadable or
misshapen files raise :class:`diag.errors.UnusableInput` with one line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


def load_inventory(path: Path) -> dict[str, dict[str, Any]]:
    """``[[hosts]]`` with name + declared fields (TOML), or the same shape in JSON."""
    from diag.bundle import checked_input, declared_problem, load_json
    from diag.errors import UnusableInput

    checked_input(path, directories=False, what="inventory")
    try:
        text = path.read_bytes()
    except OSError as err:
        raise UnusableInput(f"cannot read inventory {path}: {err.strerror}") from None
    try:
        if path.suffix == ".json":
            doc = load_json(text)
        else:
            import tomllib
            doc = tomllib.loads(text.decode())
    except RecursionError:
        raise UnusableInput(f"inventory {path} is nested too deep") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise UnusableInput(f"inventory {path} is not valid TOML/JSON: {err}") from None
    hosts = doc.get("hosts") if isinstance(doc, dict) else None
    if not isinstance(hosts, list):
        raise UnusableInput(f"inventory {path} has no [[hosts]] list")
    out: dict[str, dict[str, Any]] = {}
    for entry in hosts:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            fields = {k: entry[k] for k in ("role", "pod_cidr", "cluster_iface", "lb_ips")
                      if k in entry}
            problem = declared_problem(fields)
            if problem is not None:
                raise UnusableInput(f"inventory {path}: host {entry['name']!r}: {problem}")
            out[entry["name"]] = fields
    return out
