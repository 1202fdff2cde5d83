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
- :class:`FlowLadder` (of :class:`FlowPoint`): one tunnelled flow followed across the captures
  of several hosts — pod A -> VTEP A -> underlay A -> [hosts between] -> underlay B -> VTEP B
  -> pod B — with the packets seen at each point, the loss point and the finding it backs: what
  the report draws as a ladder (the overlay ledger, docs/explain.md).
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


@dataclass(frozen=True)
class FlowPoint:
    """One place a flow's packets can be seen: ``role`` is ``pod-out``, ``vtep-out``,
    ``underlay-out``, ``path-in``, ``path-out``, ``underlay-in``, ``vtep-in`` or ``pod-in``."""

    role: str
    host: str
    iface: str | None
    captured: bool             # the host's capture covers this point (False: nothing to see)
    packets: int               # the flow's packets seen here
    first_frame: int | None = None
    last_frame: int | None = None
    file: str = ""             # the capture the frames are in
    detail: str = ""           # e.g. "vni 2 udp 8472", "checksum bad 4/4"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FlowLadder:
    flow: str                  # "172.20.0.10 -> 172.20.2.10 tcp 45712 -> 8080"
    sender: str                # host of the source pod
    receiver: str              # host of the destination pod
    points: tuple[FlowPoint, ...]
    sent: int                  # packets at the first captured point
    delivered: int             # packets seen at the receiver's pod side
    lost_after: str | None     # the role of the last point the lost packets reached
    verdict: str               # one line: where the packets die, or "delivered"
    code: str | None = None    # the finding this flow backs
    one_ended: bool = False    # only one end was captured

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["points"] = [p.to_dict() for p in self.points]
        return out


__all__ = ["Check", "Confidence", "Evidence", "Finding", "FlowLadder", "FlowPoint", "LEVELS",
           "SEVERITIES", "severity_rank"]
