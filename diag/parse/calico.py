"""``calicoctl node status``: Calico's rendering of BIRD's protocol table, one row per peer.

Layout: ``Calico process is running.``, then per family ``IPv4 BGP status`` and a ``+---+``
bordered table ``PEER ADDRESS | PEER TYPE | STATE | SINCE | INFO`` (or ``No IPv4 peers found.``).
``STATE`` is BIRD's protocol state (up/start); ``INFO`` is the FSM state plus the last error
(``Active        Socket: Connection closed``). No lab daemon prints this: the fixtures are upstream
samples (tests/fixtures/calico-node-status/PROVENANCE.md).

``parse`` -> :data:`diag.parse.bgp_schema.PEER_COLUMNS` plus ``peer_type`` (node-to-node mesh,
global, node specific) and ``family`` (IPv4/IPv6); daemon ``CALICO``. When the output says the
Calico process is not running, the table is empty and ``df.attrs["warnings"]`` says so.

Example: ``{"daemon": "CALICO", "peer": "10.3.67.92", "peer_type": "node-to-node mesh",
"state": "ACTIVE", "state_raw": "start Passive", "last_error": None, "family": "IPv4"}``
"""
from __future__ import annotations

import re

from diag.parse.bgp_schema import PEER_COLUMNS, peer_row
from diag.parse.common import ParseError, as_text, frame
from diag.parse.states import normalise_state

_FAMILY = re.compile(r"^(IPv4|IPv6) BGP status")


def parse(data: str | bytes):
    text = as_text(data)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    warnings: list[str] = []
    if lines and "process is not running" in lines[0]:
        warnings.append(lines[0])
    elif lines and not any(_FAMILY.match(line) for line in lines):
        raise ParseError("calicoctl node status: no 'IPv4 BGP status' section (unknown layout)")
    rows = []
    family = None
    header: list[str] | None = None
    for line in lines:
        match = _FAMILY.match(line)
        if match:
            family, header = match.group(1), None
            continue
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if header is None:
            header = [cell.upper() for cell in cells]
            if header[:3] != ["PEER ADDRESS", "PEER TYPE", "STATE"]:
                raise ParseError(f"calicoctl node status: unknown columns {header}")
            continue
        row_cells = dict(zip(header, cells))
        info = row_cells.get("INFO", "")
        fsm, _, error = info.partition(" ")
        row = peer_row(daemon="CALICO", peer=row_cells["PEER ADDRESS"],
                       state=normalise_state(fsm),
                       state_raw=f"{row_cells.get('STATE', '')} {info}".strip(),
                       last_error=error.strip() or None)
        row["peer_type"] = row_cells.get("PEER TYPE")
        row["family"] = family
        rows.append(row)
    df = frame(rows, PEER_COLUMNS + ["peer_type", "family"])
    df.attrs["warnings"] = warnings
    return df
