"""The active fault, recorded in the lab's run directory (``RUN/fault.json``).

Contract: :func:`write` records a fault *before* it is injected (phase ``injecting``), so a crash
half-way leaves a record that ``heal`` and ``status`` see; the phase becomes ``active`` once the
symptom is verified and the file is removed once the healed state is verified. ``down`` removes the
run directory and with it this file; fault background processes are ordinary tracked processes
(keys ``fault/...``) that ``down`` stops by PID. Imports nothing heavy (``status`` reads it).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diag.lab import Lab

FILE = "fault.json"


@dataclass
class ActiveFault:
    name: str
    phase: str                         # injecting -> active (-> removed when healed)
    started: float = field(default_factory=time.time)
    data: dict = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)
    seconds: float | None = None


def read(lab: "Lab") -> ActiveFault | None:
    try:
        raw = json.loads((lab.run_dir / FILE).read_text())
        return ActiveFault(**raw)
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def write(lab: "Lab", fault: ActiveFault) -> None:
    path = lab.run_dir / FILE
    tmp = path.with_name(f".{FILE}.{os.getpid()}.tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(json.dumps(asdict(fault), indent=1))
    os.replace(tmp, path)


def clear(lab: "Lab") -> None:
    (lab.run_dir / FILE).unlink(missing_ok=True)
