"""Citing captures: which bundle file holds each host's capture, and a frame as evidence.

Contract: :func:`capture_files(tables)` -> ``{host: bundle path of its capture}`` (from the
``commands`` table; a bare capture has none and is cited as ``capture``);
:func:`frame_evidence(files, row, value)` -> an :class:`~diag.model.Evidence` pointing at
``frame N`` of the capture of ``row.host``. Shared by the analyzers that judge from packets.
"""
from __future__ import annotations

from diag.model import Evidence

BARE_CAPTURE = "capture"


def capture_files(tables) -> dict[str, str]:
    cmds = tables.get("commands")
    if cmds is None or cmds.empty:
        return {}
    rows = cmds[cmds["path"].astype(str).str.endswith((".pcap", ".pcapng"))]
    return {str(r.host): str(r.path) for r in rows.itertuples(index=False)}


def frame_evidence(files: dict[str, str], row, value: str) -> Evidence:
    host = str(row.host)
    return Evidence(host, files.get(host, BARE_CAPTURE), f"frame {int(row.frame)}", value,
                    int(row.frame))


__all__ = ["BARE_CAPTURE", "capture_files", "frame_evidence"]
