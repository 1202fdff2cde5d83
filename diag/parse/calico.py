"""``calicoctl node status``: Calico's rendering of BIRD's protocol table, one row per peer.

Layout: ``Calico process is running.``, then per family ``IPv4 BGP status`` and a ``+---+``
bordered table ``PEER ADDRESS | PEER TYPE | STATE | SINCE | INFO`` (or ``No IPv4 peers found.``).
``STATE`` is BIRD's protocol state (up/start); ``INFO`` is the FSM state plus the last error
(``Active        Socket: Connection closed``). No lab daemon prints this: the fixtures are upstream
samples (tests/fixtures/calico-node-status/PROVENANCE.md).

``parse`` -> :data:`diag.parse.bgp_schema.PEER_COLUMNS` plus ``peer_type`` (node-to-node mesh,
global, node specific) and ``family`` (IPv4/IPv6); daemon ``CALICO``. When the output says the
Calico process is not running, the table is empty and ``df.attrs["warnings"]`` says so. A long
INFO wrapped onto a further row (empty PEER ADDRESS) is joined to its peer's. A family whose
section is an error line (``Error querying BIRD: unable to connect to BIRDv4 socket: ...``) is a
:class:`ParseError` when no family gave rows, else a warning beside the other family's rows
(both become ``parse_errors`` rows in the facts).

Example: ``{"daemon": "CALICO", "peer": "10.3.67.92", "peer_type": "node-to-node mesh",
"state": "ACTIVE", "state_raw": "start Passive", "last_error": None, "family": "IPv4"}``
"""
from __future__ import annotations

import re

from diag.parse.bgp_schema import PEER_COLUMNS, peer_row
from diag.parse.common import ParseError, as_text, frame
from diag.parse.states import normalise_state

_FAMILY = re.compile(r"^(IPv4|IPv6) BGP status")
_NO_PEERS = re.compile(r"^No IPv[46] peers found\.?$")


def _sections(lines: list[str]) -> list[tuple[str, list[str]]]:
    """(family, its lines) for every ``IPv4 BGP status`` / ``IPv6 BGP status`` section."""
    sections: list[tuple[str, list[str]]] = []
    for line in lines:
        match = _FAMILY.match(line)
        if match:
            sections.append((match.group(1), []))
        elif sections:
            sections[-1][1].append(line)
    return sections


def _table(family: str, lines: list[str]) -> list[dict[str, str]]:
    """The bordered table's rows as {column: cell}; a row with an empty PEER ADDRESS is the
    wrapped rest of the row above (calicoctl wraps a long INFO onto further rows): its cells
    are appended to that row's, never read as a peer of its own."""
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    for line in lines:
        if line.startswith("+"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if header is None:
            header = [cell.upper() for cell in cells]
            if header[:3] != ["PEER ADDRESS", "PEER TYPE", "STATE"]:
                raise ParseError(f"calicoctl node status: unknown columns {header}")
            continue
        if len(cells) != len(header):
            raise ParseError(f"calicoctl node status: {family} row with {len(cells)} cells "
                             f"under {len(header)} columns: {line[:60]!r}")
        row = dict(zip(header, cells))
        if not row["PEER ADDRESS"]:
            if not rows:
                raise ParseError(f"calicoctl node status: {family} continuation row before "
                                 "any peer")
            for column, cell in row.items():
                if cell:
                    rows[-1][column] = f"{rows[-1][column]} {cell}".strip()
            continue
        rows.append(row)
    return rows


def parse(data: str | bytes):
    text = as_text(data)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    warnings: list[str] = []
    if lines and "process is not running" in lines[0]:
        warnings.append(lines[0])
    elif lines and not any(_FAMILY.match(line) for line in lines):
        raise ParseError("calicoctl node status: no 'IPv4 BGP status' section (unknown layout)")
    rows = []
    errors: list[str] = []
    for family, section in _sections(lines):
        if len(section) == 1 and _NO_PEERS.match(section[0]):
            continue
        if section and not section[0].startswith(("+", "|")):
            # "Error querying BIRD: unable to connect to BIRDv4 socket: ..." — this family's
            # sessions could not be read at all: not "no peers"
            errors.append(f"{family}: {' '.join(section)}")
            continue
        for cells in _table(family, section):
            info = cells.get("INFO", "")
            fsm, _, error = info.partition(" ")
            row = peer_row(daemon="CALICO", peer=cells["PEER ADDRESS"],
                           state=normalise_state(fsm),
                           state_raw=f"{cells.get('STATE', '')} {info}".strip(),
                           last_error=error.strip() or None)
            row["peer_type"] = cells.get("PEER TYPE")
            row["family"] = family
            rows.append(row)
    if errors and not rows:
        raise ParseError("calicoctl node status: " + "; ".join(errors))
    df = frame(rows, PEER_COLUMNS + ["peer_type", "family"])
    df.attrs["warnings"] = warnings + [f"calicoctl node status: {e}" for e in errors]
    return df
