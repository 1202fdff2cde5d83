"""The one rule for "was this ARP request answered?", used by every stage that asks.

Rule (docs/pcap-json.md): in one capture, in capture order, a request from ``asker`` for
``target`` at time ``t`` is *answered* when the first reply *from* ``target`` that follows it
arrives within :data:`REPLY_WINDOW` seconds (``0 <= t_reply - t <= REPLY_WINDOW``); otherwise it
is unanswered. Requests that ask no question are not paired: gratuitous ARP (sender IP = target
IP, or flagged gratuitous by the decoder), probes (sender 0.0.0.0) and rows the decoder could not
read (no sender IP). At most :data:`MAX_PENDING_PER_IP` requests per target wait for a reply; a
request beyond that is decided unanswered at once (memory stays bounded on a flood).

Contract:

- :class:`ArpPairing` is the streaming form: :meth:`~ArpPairing.add` one ARP row at a time, in
  capture order; it returns the requests it decided (:class:`Verdict`), :meth:`~ArpPairing.finish`
  decides the ones still waiting (unanswered). ``diag pcap``'s summary folds its verdicts.
- :func:`annotate(rows) -> (answered, reply_frame)`: the same verdicts for a whole capture's
  ``arp`` rows (dicts or tuples in the decoder's ``ARP_COLUMNS`` order), one value per row:
  ``True``/``False`` for a request that asks, ``None`` for anything else. The facts stage adds
  them to the ``arp`` table as columns ``answered`` and ``reply_frame``; explain and the report
  read those columns and never pair again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from diag.values import or_none

REPLY_WINDOW = 3.0
MAX_PENDING_PER_IP = 10_000


@dataclass(frozen=True)
class Verdict:
    frame: int
    ts: float
    asker: str
    target: str
    answered: bool
    reply_frame: int | None = None


def asks(op: str | None, sender_ip: str | None, target_ip: str | None, gratuitous) -> bool:
    """Whether a row is a request that expects an answer (see the module docstring)."""
    return (op == "request" and sender_ip is not None and not gratuitous
            and sender_ip != "0.0.0.0" and sender_ip != target_ip)


class ArpPairing:
    """Requests waiting for a reply, per target address (streaming; see the module docstring)."""

    def __init__(self, window: float = REPLY_WINDOW,
                 max_pending: int = MAX_PENDING_PER_IP) -> None:
        self.window, self.max_pending = window, max_pending
        self.pending: dict[str, list[tuple[float, int, str]]] = {}

    def add(self, frame: int, ts: float, op: str | None, sender_ip: str | None,
            target_ip: str | None, gratuitous=False) -> list[Verdict]:
        if sender_ip is None or gratuitous:
            return []
        if op == "request":
            if not asks(op, sender_ip, target_ip, gratuitous):
                return []
            waiting = self.pending.setdefault(target_ip, [])
            if len(waiting) < self.max_pending:
                waiting.append((float(ts), int(frame), sender_ip))
                return []
            return [Verdict(int(frame), float(ts), sender_ip, target_ip, False)]
        if op == "reply":
            waiting = self.pending.pop(sender_ip, None)
            if not waiting:
                return []
            ts = float(ts)
            return [Verdict(rframe, rts, asker, sender_ip, 0 <= ts - rts <= self.window,
                            int(frame) if 0 <= ts - rts <= self.window else None)
                    for rts, rframe, asker in waiting]
        return []

    def finish(self) -> list[Verdict]:
        """The requests still waiting at the end of the capture: unanswered."""
        out = [Verdict(frame, ts, asker, target, False)
               for target, waiting in self.pending.items() for ts, frame, asker in waiting]
        self.pending.clear()
        return out


def annotate(rows: Iterable) -> tuple[list, list]:
    """(answered, reply_frame) for each ``arp`` row of one capture, in its order (the rows as
    dicts with ``frame, ts, op, sender_ip, target_ip, gratuitous`` or as the decoder's
    ``ARP_COLUMNS`` tuples are both accepted through :func:`_fields`)."""
    rows = list(rows)
    answered: list = [None] * len(rows)
    reply: list = [None] * len(rows)
    at: dict[int, int] = {}
    pairing = ArpPairing()

    def record(verdicts: list[Verdict]) -> None:
        for v in verdicts:
            i = at.get(v.frame)
            if i is not None:
                answered[i], reply[i] = v.answered, v.reply_frame

    for i, row in enumerate(rows):
        frame, ts, op, sender_ip, target_ip, gratuitous = _fields(row)
        if asks(op, sender_ip, target_ip, gratuitous):
            at[int(frame)] = i
        record(pairing.add(frame, ts, op, sender_ip, target_ip, gratuitous))
    record(pairing.finish())
    return answered, reply


def _fields(row) -> tuple:
    """(frame, ts, op, sender_ip, target_ip, gratuitous) with a table's missing cells as None."""
    if isinstance(row, dict):
        row = (row["frame"], row["ts"], row["op"], row["sender_ip"], row["target_ip"],
               row.get("gratuitous"))
    frame, ts, op, sender_ip, target_ip, gratuitous = row
    return (frame, ts, or_none(op), or_none(sender_ip), or_none(target_ip),
            bool(or_none(gratuitous) or False))


__all__ = ["ArpPairing", "MAX_PENDING_PER_IP", "REPLY_WINDOW", "Verdict", "annotate", "asks"]
