"""The lab's run directory and its state file: what exists, so that ``down`` can remove it.

Contract: ``RUN_ROOT/<name>/state.json`` (RUN_ROOT = ``$DIAG_LAB_RUN_DIR`` or ``/run/diag-lab``)
records the lab's options, every namespace *before* it is created and every process right after it
is started (PID + start time, so a recycled PID is never killed). Writes are atomic (temp file +
rename), so a SIGKILL at any moment leaves a readable state that ``down`` can clean up from.
``RUN_ROOT/timings.json`` keeps the last measured teardown per lab name.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")


def run_root() -> Path:
    return Path(os.environ.get("DIAG_LAB_RUN_DIR", "/run/diag-lab"))


def run_dir(name: str) -> Path:
    return run_root() / name


@dataclass
class ProcessRecord:
    key: str            # unique within the lab: "router/bgpd", "k8s-w1/sshd", "fault/ping-1"
    host: str           # "" for a process in the root namespace (the lab's API endpoint)
    pid: int
    starttime: int
    argv: list[str]
    log: str


@dataclass
class LabState:
    name: str
    cni: str
    mode: str
    addressing: str
    bird: str = ""                          # calico: "1.6" (Calico's BIRD) or "2"
    peering: str = "address"                # how the router peers (diag.lab.plan.PEERINGS)
    cilium_api: str = ""                    # cilium: the BGP CRDs' version, "v2" or "v2alpha1"
    phase: str = "creating"                 # creating -> starting -> ready (or failed)
    created: float = field(default_factory=time.time)
    namespaces: list[str] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    error: str = ""

    @property
    def path(self) -> Path:
        return run_dir(self.name) / "state.json"

    def save(self) -> None:
        _atomic_write(self.path, json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, name: str) -> "LabState | None":
        try:
            raw = json.loads((run_dir(name) / "state.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        raw["processes"] = [ProcessRecord(**p) for p in raw.get("processes", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})

    def process(self, key: str) -> ProcessRecord | None:
        return next((p for p in self.processes if p.key == key), None)


def record_teardown(name: str, seconds: float) -> None:
    path = run_root() / "timings.json"
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        data = {}
    data[name] = {"teardown_s": round(seconds, 3), "at": time.time()}
    _atomic_write(path, json.dumps(data, indent=1))


def _atomic_write(path: Path, text: str) -> None:
    # a temp name per process: labs are written by several processes (CLI, tests, faults)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def last_teardown(name: str) -> float | None:
    try:
        return json.loads((run_root() / "timings.json").read_text())[name]["teardown_s"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return None


def lab_names() -> list[str]:
    """Names of labs with a run directory."""
    root = run_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and NAME_RE.match(p.name))
