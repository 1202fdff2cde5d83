"""The one rule for "was this ARP request answered?", used by every stage that asks.

Rule (docs/pcap-json.md, "ARP"), in one capture, in capture order:

- A row *asks* when it is a request with a sender IP that is not a probe (sender 0.0.0.0) nor
  gratuitous (sender IP = target IP, or flagged gratuitous by the decoder). Other rows are not
  paired.
- **One request** is identified by its asker (sender IP), its target and its *segment*: the VNI
  of the innermost tunnel when it was captured encapsulated (VXLAN, GENEVE), else its 802.1Q
  VLAN, else unknown (an untagged capture point, e.g. the overlay device or a VLAN
  sub-interface, is on the same segment as any). The same request is often captured several
  times: on the pod's veth, on the overlay device, encapsulated on the underlay (once per remote
  VTEP with head-end replication), on every interface of ``tcpdump -i any``. A row with the same
  asker and target, a compatible segment, seen at another *place* (capture interface,
  direction, tunnel depth and endpoints) within :data:`COPY_WINDOW` of the request's latest
  sighting is a **copy** of it, not a new request. A row at a place where the request was
  already seen is a new request (a retransmission: the kernel repeats after 1 s, arping after
  its interval).
- **Answered**: a reply from the target to that asker (reply sender IP = target, reply target
  IP = asker, compatible segment) follows the request's first sighting within
  :data:`REPLY_WINDOW` seconds (``0 <= t_reply - t <= REPLY_WINDOW``). That reply answers every
  request of that asker for that target still waiting (the retransmissions before it); requests
  of other askers for the same target stay waiting for their own reply. A request with no such
  reply is unanswered (decided when the window has passed, or at the end of the capture).
- **What the capture could see** (:class:`Vantage`): an unanswered request is only as good as
  the capture point's view of the replies. :meth:`Vantage.blind` says why replies to the asker
  might not be in the capture (None: they would be): the request was seen only encapsulated (a
  reply made locally — proxy ARP, ARP suppression — or carried on another path is not there),
  the request came in from another host (its unicast replies do not pass this capture point),
  the capture holds one direction only (these three: it could not see them); or, in a capture
  that records no directions, no frame addressed to the asker is in it (it cannot tell). A reply
  to that asker that this host did not send, seen anywhere in the capture, proves that replies
  to it reach this point; so does the asker or the target being the capturing host.

Memory stays bounded on a flood: requests are decided once :data:`REPLY_WINDOW` has passed
(capture time), and at most :data:`MAX_PENDING` wait at once (beyond that a new request is
decided unanswered at once).

Contract:

- :class:`ArpPairing` is the streaming form: :meth:`~ArpPairing.add` one row at a time (a
  :class:`Sighting`), in capture order; it returns the :class:`Verdict` of every row it decided
  (the request's first row, ``copy_of`` None, and each of its copies, ``copy_of`` = the first
  row's frame), :meth:`~ArpPairing.finish` decides the ones still waiting. ``diag pcap``'s
  summary folds these verdicts and asks a :class:`Vantage` fed from the same chunks.
- :func:`annotate(rows, tunnels, packets, local) -> Annotation`: the same verdicts for a whole
  capture's ``arp`` rows (dicts with the decoder's ``ARP_COLUMNS``), one value per row, as the
  facts stage adds them to the ``arp`` table: ``answered`` (True/False for a row that asks, None
  otherwise), ``reply_frame``, ``copy_of`` (the frame of the request's first sighting, None for
  the first), ``sees_replies`` (True: a reply to the asker would be in this capture; False: it
  could not be; None: the capture cannot tell) and ``blind`` (why not, None when it would). Explain and the report read those columns and never pair again.
- :func:`segment_and_place` makes a row's segment and place from the ARP row and its frame's
  ``tunnels`` rows; both callers use it.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

from diag.values import or_none

REPLY_WINDOW = 3.0
# copies of one request (other interfaces, encapsulated, replicated to several VTEPs) are
# microseconds apart; a host asks again after its retransmission interval (the kernel 1 s,
# arping 0.25 s in the lab's faults): well above this
COPY_WINDOW = 0.05
MAX_PENDING = 100_000
MAX_MACS = 65_536           # unicast destination MACs a Vantage remembers


class Sighting(NamedTuple):
    """One ``arp`` row as the rule reads it (a tuple: one is made per ARP frame)."""

    frame: int
    ts: float
    op: str | None
    sender_ip: str | None
    target_ip: str | None
    gratuitous: bool = False
    sender_mac: str | None = None
    segment: tuple | None = None       # ("vni", n) | ("vlan", n) | None (unknown: matches any)
    place: tuple = ()                  # where in the capture the row was seen
    direction: str | None = None       # "in" | "out" | None (the capture does not record it)
    depth: int = 0                     # tunnel depth


class Verdict(NamedTuple):
    frame: int
    ts: float
    asker: str
    target: str
    answered: bool
    reply_frame: int | None = None
    asker_mac: str | None = None
    segment: tuple | None = None
    copy_of: int | None = None         # a copy: the frame of the request's first sighting
    seen: frozenset = frozenset()      # (direction, depth) of every sighting of the request


@dataclass(slots=True)
class _Request:
    frame: int
    ts: float
    last: float
    asker: str
    target: str
    asker_mac: str | None
    segment: tuple | None
    places: set = field(default_factory=set)
    seen: set = field(default_factory=set)
    copies: list = field(default_factory=list)
    decided: bool = False
    answered: bool = False
    reply: int | None = None

    def verdict(self, frame: int, ts: float, copy_of: int | None) -> Verdict:
        return Verdict(frame, ts, self.asker, self.target, self.answered, self.reply,
                       self.asker_mac, self.segment, copy_of, frozenset(self.seen))

    def decide(self, answered: bool, reply: int | None) -> list[Verdict]:
        self.decided, self.answered, self.reply = True, answered, reply
        return [self.verdict(self.frame, self.ts, None)] + [
            self.verdict(f, t, self.frame) for f, t in self.copies]


def asks(op: str | None, sender_ip: str | None, target_ip: str | None, gratuitous) -> bool:
    """Whether a row is a request that expects an answer (see the module docstring)."""
    return (op == "request" and sender_ip is not None and not gratuitous
            and sender_ip != "0.0.0.0" and sender_ip != target_ip)


def compatible(a: tuple | None, b: tuple | None) -> bool:
    """Two segments can be the same L2 domain: equal, or either unknown."""
    return a is None or b is None or a == b


class ArpPairing:
    """Requests waiting for a reply, per (asker, target) (streaming; see the module docstring)."""

    def __init__(self, window: float = REPLY_WINDOW, copy_window: float = COPY_WINDOW,
                 max_pending: int = MAX_PENDING) -> None:
        self.window, self.copy_window, self.max_pending = window, copy_window, max_pending
        self.open: dict[tuple[str, str], list[_Request]] = {}   # (asker, target) -> requests
        self.order: deque[_Request] = deque()                   # by first sighting
        self.waiting = 0
        self.now = float("-inf")

    def add(self, row: Sighting) -> list[Verdict]:
        if row.sender_ip is None or row.gratuitous:
            return []
        ts = float(row.ts)
        self.now = max(self.now, ts)
        out = self._expire()
        if row.op == "request" and asks(row.op, row.sender_ip, row.target_ip, row.gratuitous):
            out += self._request(row, ts)
        elif row.op == "reply" and row.target_ip is not None:
            out += self._reply(row, ts)
        return out

    def _request(self, row: Sighting, ts: float) -> list[Verdict]:
        key = (row.sender_ip, row.target_ip)
        requests = self.open.setdefault(key, [])
        for r in reversed(requests):
            if ts - r.last > self.copy_window:
                break
            if compatible(r.segment, row.segment) and row.place not in r.places:
                r.places.add(row.place)
                r.seen.add((row.direction, row.depth))
                r.last = max(r.last, ts)
                if r.segment is None:
                    r.segment = row.segment
                if r.decided:          # a late copy of a request already decided
                    return [r.verdict(int(row.frame), ts, r.frame)]
                r.copies.append((int(row.frame), ts))
                return []
        r = _Request(int(row.frame), ts, ts, row.sender_ip, row.target_ip, row.sender_mac,
                     row.segment, {row.place}, {(row.direction, row.depth)})
        if self.waiting >= self.max_pending:
            return r.decide(False, None)
        requests.append(r)
        self.order.append(r)
        self.waiting += 1
        return []

    def _decide(self, r: _Request, answered: bool, reply: int | None) -> list[Verdict]:
        self.waiting -= 1
        return r.decide(answered, reply)

    def _reply(self, row: Sighting, ts: float) -> list[Verdict]:
        requests = self.open.get((row.target_ip, row.sender_ip))
        if not requests:
            return []
        out = []
        for r in requests:
            if r.decided or not compatible(r.segment, row.segment):
                continue
            if 0 <= ts - r.ts <= self.window:
                out += self._decide(r, True, int(row.frame))
            elif ts - r.ts > self.window:
                out += self._decide(r, False, None)
        return out

    def _expire(self) -> list[Verdict]:
        """Decide the requests whose window has passed (capture time), and forget decided
        requests too old to receive copies."""
        out: list[Verdict] = []
        limit = self.now - self.window - self.copy_window
        while self.order and self.order[0].ts < limit:
            r = self.order.popleft()
            if not r.decided:
                out += self._decide(r, False, None)
            key = (r.asker, r.target)
            kept = [x for x in self.open.get(key, ()) if x is not r]
            if kept:
                self.open[key] = kept
            else:
                self.open.pop(key, None)
        return out

    def finish(self) -> list[Verdict]:
        """The requests still waiting at the end of the capture: unanswered."""
        out: list[Verdict] = []
        for r in self.order:
            if not r.decided:
                out += self._decide(r, False, None)
        self.order.clear()
        self.open.clear()
        return out


class Vantage:
    """What one capture point can see of the replies to an asker (see the module docstring).

    Fed as the capture streams: :meth:`packets` (direction counts, whether the capture saw
    other hosts' unicast, the unicast destination MACs of unencapsulated frames) and
    :meth:`reply` (each ARP reply: who it was for, and whether this host sent it). ``local`` holds the capturing host's own
    addresses and MACs when they are known (a bundle's ``ip addr``/``ip link``)."""

    def __init__(self, local: Iterable[str] = ()) -> None:
        self.directions: Counter = Counter()
        self.fed = False                  # packets were counted (directions mean something)
        self.otherhost = False
        self.unicast: set[str] = set()
        self.full = False
        self.replied_to: set[str] = set()
        self.local = {str(x).lower() for x in local}

    def packets(self, directions: Counter | dict, otherhost: bool = False,
                dst_macs: Iterable[str] = ()) -> None:
        self.fed = True
        self.directions.update(directions)
        self.otherhost = self.otherhost or otherhost
        if self.full:
            return
        for mac in dst_macs:
            if mac and _unicast(mac):
                self.unicast.add(mac.lower())
        if len(self.unicast) > MAX_MACS:       # too many to judge by: give every asker the
            self.full, self.unicast = True, set()   # benefit of the doubt

    def reply(self, asker_ip: str | None, asker_mac: str | None = None,
              direction: str | None = None) -> None:
        """An ARP reply to ``asker_ip`` in the capture. One this host sent (``out``) shows
        nothing about replies from others reaching it."""
        if direction == "out":
            return
        if asker_ip:
            self.replied_to.add(asker_ip)
        if asker_mac and not self.full and _unicast(asker_mac):
            self.unicast.add(asker_mac.lower())

    def sees(self, v: Verdict) -> tuple[bool | None, str | None]:
        """Whether a reply to ``v``'s asker would be in this capture: ``(True, None)``; ``(False,
        why)`` when it could not be; ``(None, why)`` when the capture cannot tell."""
        mac = (v.asker_mac or "").lower()
        if v.asker in self.replied_to or v.asker in self.local or v.target in self.local \
                or (mac and mac in self.local):
            return True, None
        bare = {direction for direction, depth in v.seen if not depth}
        if not bare:
            where = f" (VNI {v.segment[1]})" if v.segment and v.segment[0] == "vni" else ""
            return False, (f"the request was seen only encapsulated{where}: a reply made "
                           "locally (proxy ARP, ARP suppression) or carried on another path is "
                           "not in this capture")
        if "out" in bare:
            if self.fed and not self.directions.get("in"):
                return False, "the capture holds outgoing packets only: a reply could not be in it"
            return True, None
        if "in" in bare and None not in bare:
            if self.otherhost:
                return True, None
            return False, (f"the request came in from another host ({v.asker}): its unicast "
                           "replies do not pass this capture point")
        if self.full or (mac and mac in self.unicast):
            return True, None
        return None, (f"cannot tell whether replies to {v.asker} reach this capture point: no "
                      "frame addressed to it" + (f" ({mac})" if mac else "")
                      + " is in the capture, and it does not record directions")

    def blind(self, v: Verdict) -> str | None:
        """Why this capture might not hold a reply to ``v``'s asker; None when it would."""
        return self.sees(v)[1]


def _unicast(mac: str) -> bool:
    try:
        return not int(mac[:2], 16) & 1
    except ValueError:
        return False


def _vlan_segment(vlan: Any) -> tuple | None:
    """("vlan", id) for one 802.1Q tag; a stack of tags (QinQ, the decoder's "outer.inner"
    text) is one segment as a whole: ("vlan", "100.200")."""
    vlan = or_none(vlan)
    if vlan is None:
        return None
    try:
        return ("vlan", int(vlan))
    except ValueError:
        return ("vlan", str(vlan))


def segment_and_place(vlan: Any, depth: Any, capture_iface: Any = None, iface: Any = None,
                      direction: Any = None, layers: Iterable[tuple] = ()) -> tuple:
    """(segment, place) of one ARP row; ``layers`` are its frame's tunnel rows as
    ``(depth, vni, outer_src, outer_dst)``."""
    if not depth:                      # the common case, kept cheap: one per ARP frame
        return (_vlan_segment(vlan),
                (or_none(capture_iface), or_none(iface), or_none(direction), 0, ()))
    depth = int(or_none(depth) or 0)
    if depth:
        rows = sorted((int(d), or_none(vni), or_none(src), or_none(dst))
                      for d, vni, src, dst in layers if or_none(d) is not None)
        inner = [r for r in rows if r[0] == depth] or rows[-1:]
        vni = inner[0][1] if inner else None
        segment = ("vni", int(vni)) if vni is not None else None
        ends = tuple((r[2], r[3]) for r in rows)
    else:
        segment = _vlan_segment(vlan)
        ends = ()
    place = (or_none(capture_iface), or_none(iface), or_none(direction), depth, ends)
    return segment, place


@dataclass(frozen=True)
class Annotation:
    answered: list
    reply_frame: list
    copy_of: list
    sees_replies: list
    blind: list


def annotate(rows: Iterable[dict], tunnels: Iterable[dict] = (),
             packets: Vantage | None = None, local: Iterable[str] = ()) -> Annotation:
    """The rule's columns for each ``arp`` row of one capture (rows as dicts with the decoder's
    ``ARP_COLUMNS``, in capture order). ``tunnels``: the capture's tunnel rows (``frame``,
    ``depth``, ``vni``, ``outer_src``, ``outer_dst``), for the segments of encapsulated ARP.
    ``packets``: a :class:`Vantage` already fed with the capture's packets (None: a fresh one,
    which knows only the ARP rows); ``local`` the capturing host's addresses and MACs."""
    rows = list(rows)
    layers: dict[int, list[tuple]] = {}
    wanted = {int(r["frame"]) for r in rows if or_none(r.get("tunnel_depth"))}
    for t in tunnels:
        frame = int(t["frame"])
        if frame in wanted:
            layers.setdefault(frame, []).append((t["depth"], t["vni"], t["outer_src"],
                                                 t["outer_dst"]))
    n = len(rows)
    out = Annotation([None] * n, [None] * n, [None] * n, [None] * n, [None] * n)
    at: dict[int, int] = {}
    verdicts: list[Verdict] = []
    pairing = ArpPairing()
    view = packets if packets is not None else Vantage()
    view.local |= {str(x).lower() for x in local}
    for i, row in enumerate(rows):
        s = sighting(row, layers.get(int(row["frame"]), ()))
        if asks(s.op, s.sender_ip, s.target_ip, s.gratuitous):
            at[s.frame] = i
        if s.op == "reply" and not s.gratuitous:
            view.reply(s.target_ip, or_none(row.get("target_mac")), s.direction)
        verdicts += pairing.add(s)
    verdicts += pairing.finish()
    for v in verdicts:
        i = at.get(v.frame)
        if i is None:
            continue
        out.answered[i], out.reply_frame[i], out.copy_of[i] = v.answered, v.reply_frame, v.copy_of
        if v.answered:
            out.sees_replies[i] = True
        else:
            out.sees_replies[i], out.blind[i] = view.sees(v)
    return out


def sighting(row: dict, layers: Iterable[tuple] = ()) -> Sighting:
    """A :class:`Sighting` from an ``arp`` row (a dict; a table's missing cells are None)."""
    segment, place = segment_and_place(row.get("vlan"), row.get("tunnel_depth"),
                                       row.get("capture_iface"), row.get("iface_name"),
                                       row.get("direction"), layers)
    return Sighting(int(row["frame"]), float(row["ts"]), or_none(row.get("op")),
                    or_none(row.get("sender_ip")), or_none(row.get("target_ip")),
                    bool(or_none(row.get("gratuitous")) or False),
                    or_none(row.get("sender_mac")), segment, place,
                    or_none(row.get("direction")), int(or_none(row.get("tunnel_depth")) or 0))


__all__ = ["Annotation", "ArpPairing", "COPY_WINDOW", "MAX_PENDING", "REPLY_WINDOW", "Sighting",
           "Vantage", "Verdict", "annotate", "asks", "compatible", "segment_and_place",
           "sighting"]
