"""Records that cross stages: a finding, its evidence, its confidence and severity.

Contract: frozen dataclasses, plain values only (str, int, tuples), ``to_dict()`` gives the JSON
shape documented in docs/explain.md. Nothing here imports from diag, so every stage (analyze,
report, tests) can use these records without pulling another stage in.

- :class:`Evidence`: one fact a finding rests on, pointing into the bundle: ``host``, ``file``
  (bundle path, e.g. ``hosts/k8s-ctr/ip-route-v4.out``), ``pointer`` (a JSON pointer such as
  ``/14`` into a JSON output, ``line 7`` for text, ``frame 12`` for a capture), ``value`` (what is
  there, one line), ``frame`` (capture frame number, 1-based, or None).
- :class:`Confidence`: ``level`` (``low`` / ``medium`` / ``high``) derived from ``sources``, the
  independent kinds of evidence that agree (``ip``, ``frr``, ``gobgp``, ``pcap``...): one source is
  low, two medium, three or more high — so removing a source always lowers or keeps the level.
  ``limits`` say what the evidence could not see (e.g. a capture point that cannot see the
  replies): with any, the level is one step lower (never below low).
- :class:`Finding`: code, severity (with ``severity_reason`` when context changed the catalogue
  default), confidence, summary (one line), evidence, fix (commands), note (by-design remarks),
  ``caused_by`` (code of the root cause when this finding is its consequence).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SEVERITIES = ("info", "warning", "error")
LEVELS = ("low", "medium", "high")


def severity_rank(severity: str) -> int:
    """info 0 < warning 1 < error 2; unknown severities raise ValueError."""
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class Evidence:
    host: str
    file: str
    pointer: str
    value: str
    frame: int | None = None


@dataclass(frozen=True)
class Confidence:
    sources: tuple[str, ...]
    limits: tuple[str, ...] = ()     # what the evidence could not see, one reason each

    @property
    def level(self) -> str:
        count = len(set(self.sources))
        step = 0 if count <= 1 else 1 if count == 2 else 2
        return LEVELS[max(0, step - 1) if self.limits else step]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"level": self.level, "sources": sorted(set(self.sources))}
        if self.limits:
            out["limits"] = list(self.limits)
        return out


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    summary: str
    confidence: Confidence
    evidence: tuple[Evidence, ...] = ()
    fix: tuple[str, ...] = ()
    severity_reason: str = ""
    note: str = ""
    caused_by: str | None = None
    hosts: tuple[str, ...] = ()
    subject: str = ""          # the prefix / address / peer the finding is about (for ranking)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["confidence"] = self.confidence.to_dict()
        out["evidence"] = [asdict(e) for e in self.evidence]
        out["fix"] = list(self.fix)
        out["hosts"] = list(self.hosts)
        return out


@dataclass(frozen=True)
class Check:
    """One check explain ran (``passed``) or could not run (``needs`` says what would supply it)."""

    name: str
    passed: bool | None        # None: not checked
    detail: str = ""
    needs: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["Check", "Confidence", "Evidence", "Finding", "LEVELS", "SEVERITIES", "severity_rank"]
