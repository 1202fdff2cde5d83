"""What a capture shows, in one dict: the schema of ``diag pcap --format json`` (docs/pcap-json.md).

Contract: ``s = CaptureSummary(); s.add(chunk) for every chunk; s.result() -> dict``. It streams:
each chunk — a :class:`diag.decode.rows.RowChunk` from :func:`diag.decode.iter_rows`, or the
:class:`diag.decode.Tables` of :func:`diag.decode.iter_decode`, which carry theirs — is folded
from the decoder's row buffers (never from DataFrames, so ``diag pcap`` needs no pandas, and a
small capture no numpy) into counters and per-session / per-VNI / per-IP state whose size depends
on the number of sessions, tunnels and addresses, not packets. Distinct prefixes are kept as
64-bit keys (:func:`diag.decode.nlri.text_key`; a set, spilled into a sorted numpy array as it
grows), made column-wise from the packed NLRI without making their texts.

``add(chunk)`` is ``apply(fold(chunk, prefixes))``: :func:`fold` reduces one chunk to small,
picklable data (counters, sorted group counts, ARP rows, BGP special messages; prefix keys go
into a :class:`PrefixFolder`), ``apply`` adds it in capture order. :mod:`diag.decode.parallel`
computes the folds in worker processes (BGP ones per connection owner, merged per chunk by
:func:`merge_bgp_folds`) and applies them here, so both paths share every line of this logic.

ARP pairing is the one rule of :mod:`diag.decode.arp` (one request = one asker, target and
VLAN/VNI, its copies elsewhere in the capture included; answered when a reply from the target to
that asker follows within 3 s; gratuitous ARP and probes are not paired), and so is what the
capture could see of the replies (its :class:`~diag.decode.arp.Vantage`, fed from the packets).
Several MACs answering for one IP (replies or gratuitous announcements) are listed as multiple
responders.
"""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from operator import itemgetter
from typing import Any

from diag.decode.arp import ArpPairing, Sighting, Vantage, segment_and_place
from diag.decode.bgpflow import MESSAGE_ROW, ROUTE_ROW, TCP_CONTROL_EVENTS
from diag.decode.frames import FRAGMENT_COLUMNS, ICMP_COLUMNS, PACKET_COLUMNS
from diag.decode.gcpolicy import fewer_collections
from diag.decode.lldp import LLDP_COLUMNS
from diag.decode.rows import RowChunk
from diag.values import is_missing

SCHEMA = "diag.pcap/1"
MAX_LISTED = 50
MAX_PREFIX_SAMPLE = 1000
RESPONDER_FRAMES = 5          # frames kept per ARP responder (sender IP, sender MAC)
BGP_TYPES = ("OPEN", "UPDATE", "NOTIFICATION", "KEEPALIVE", "ROUTE-REFRESH")


def _num(v: Any) -> Any:
    """numpy scalars and floats -> plain JSON values (NaN -> None, whole floats -> int)."""
    if v is None or type(v) is int or type(v) is str:     # the compiled core's folds: as they are
        return v
    if is_missing(v):
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return int(v)
    return v


def _nulls_last(key: tuple) -> tuple:
    """Sort key for group keys that may hold None (None sorts last, as pandas' groupby does)."""
    return tuple((v is None, 0 if v is None else v) for v in key)


_first = itemgetter(0)


def sorted_nulls_last(items, key=None) -> list:
    """``sorted(items, key=lambda x: _nulls_last(key(x)))``, cheaply: keys compared as they
    are give the same order unless a None meets a value at the same place, which raises
    TypeError (None has no order) and takes the slow way (most chunks have no None)."""
    items = list(items)
    try:
        return sorted(items, key=key)
    except TypeError:
        if key is None:
            return sorted(items, key=_nulls_last)
        return sorted(items, key=lambda x: _nulls_last(key(x)))


# hashes held in Python sets across all sessions (~70 bytes each) before they are all spilled
# into numpy arrays (8 bytes each): a capture with many short sessions (each reconnect is a new
# session) must not keep a set per session; a small capture never reaches it and needs no numpy
SPILL_TOTAL = 65536
# the compiled core's keys (8 bytes each) held raw across all stores before each store packs
# its own into a run (sorted, delta-coded: ~2-3.5 bytes a key; core.pack_run); a store keeps at
# most RUNS_MERGED runs, merged into one when it has more (longer runs pack tighter)
COMPACT_TOTAL = 65536
RUNS_MERGED = 16


class _Prefixes:
    """Distinct prefixes as 64-bit keys (:func:`diag.decode.nlri.text_key`: equal keys for equal
    texts): a set of ints, plus int64 arrays from the vectorised path, all merged into one sorted
    numpy array (8 bytes a prefix instead of a Python object) when the summary's pending keys
    together grow large."""

    def __init__(self) -> None:
        self.recent: set[int] = set()
        self.arrays: list = []          # int64 numpy arrays not merged yet
        self.pending = 0                # keys in ``arrays``
        self.spilled = None             # sorted unique numpy int64 array, or None
        # int64 keys packed by the compiled core (diag/decode/core.py), which sends each key of
        # a store once: distinct, merged only when asked; raw (8 bytes a key) until the folder
        # has many, then as runs (:meth:`compact`)
        self.packed: list[bytes] = []
        self.runs: list[bytes] = []
        self.npacked = 0                # keys in packed and runs
        self.repeats = False            # packed keys may repeat (see may_repeat)

    def update(self, keys) -> None:
        """Add keys: a list of ints, or an int64 numpy array."""
        if isinstance(keys, list):
            self.recent.update(keys)
        elif len(keys):
            self.arrays.append(keys)
            self.pending += len(keys)

    def add_packed(self, packed: bytes) -> None:
        """Add keys none of which this store holds yet (native-endian int64, packed), unless
        :meth:`may_repeat` was called."""
        if packed:
            self.packed.append(bytes(packed))
            self.npacked += len(packed) // 8

    def compact(self) -> None:
        """The raw keys as one more run (the compiled core's, which made them, packs it)."""
        if not self.packed:
            return
        from diag.decode.core import load

        core = load()
        self.runs.append(core.pack_run(b"".join(self.packed)))
        self.packed = []
        if len(self.runs) > RUNS_MERGED:
            self.runs = [core.pack_run(self.raw_keys())]

    def raw_keys(self) -> bytes:
        """The packed keys (raw and runs) as native-endian int64."""
        return b"".join([*self.packed, *map(unpack_run, self.runs)])

    def may_repeat(self) -> None:
        """The core's packed keys are no longer all distinct: it dropped this session's key
        set when the session closed, and the same endpoints sent routes again."""
        self.repeats = True

    def held(self) -> int:
        return len(self.recent) + self.pending

    def _unpack(self) -> None:
        if not self.packed and not self.runs:
            return
        joined = self.raw_keys()
        if self.spilled is None and not self.arrays and self.npacked + len(self.recent) \
                < SPILL_TOTAL:
            from array import array          # a small capture: a set, no numpy

            keys = array("q")
            keys.frombytes(joined)
            self.recent.update(keys)
        else:
            import numpy as np

            self.arrays.append(np.frombuffer(joined, dtype=np.int64))
            self.pending += self.npacked
        self.packed, self.runs, self.npacked = [], [], 0

    def _spill(self) -> None:
        import numpy as np

        parts = self.arrays
        if self.recent:
            parts = parts + [np.fromiter(self.recent, dtype=np.int64, count=len(self.recent))]
        if self.spilled is not None:
            parts = parts + [self.spilled]
        self.spilled = np.unique(np.concatenate(parts)) if parts else self.spilled
        self.recent, self.arrays, self.pending = set(), [], 0

    def hashes(self):
        """All keys: a set (never spilled) or a sorted numpy array."""
        self._unpack()
        if self.spilled is None and not self.arrays:
            return self.recent
        if self.recent or self.arrays:
            self._spill()
        return self.spilled

    def only_packed(self) -> bool:
        """Fed by the compiled core alone: its keys are distinct already."""
        return (not self.recent and not self.arrays and self.spilled is None
                and not self.repeats)

    def __len__(self) -> int:
        if self.only_packed():
            return self.npacked
        return len(self.hashes())


def unpack_run(run: bytes) -> bytes:
    """A run's keys (:meth:`_Prefixes.compact`: a LEB128 count, then each key's difference from
    the one before, ascending as unsigned) as native-endian int64: by the compiled core, or
    read here where it is not built (stores a worker that had it pickled)."""
    from diag.decode.core import load

    core = load()
    if core is not None:
        return core.unpack_run(run)
    from array import array

    values, value, shift = [], 0, 0
    for byte in run:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            values.append(value)
            value, shift = 0, 0
    if shift or not values or len(values) != values[0] + 1 or max(values) >> 64:
        raise ValueError("not a run of packed keys")
    keys, key = array("Q"), 0
    for delta in values[1:]:
        key = (key + delta) & 0xFFFFFFFFFFFFFFFF
        keys.append(key)
    return keys.tobytes()


def _distinct(groups: list[_Prefixes]) -> int:
    if len(groups) == 1:
        return len(groups[0])
    if all(g.only_packed() for g in groups):
        from diag.decode.core import load

        core = load()
        if core is not None:                  # a set of 64-bit keys, in C
            return core.count_distinct(b"".join(p for g in groups for p in g.packed),
                                       [r for g in groups for r in g.runs])
        joined = b"".join(g.raw_keys() for g in groups)
        if len(joined) // 8 <= SPILL_TOTAL:
            from array import array

            keys = array("q")
            keys.frombytes(joined)
            return len(set(keys))
        import numpy as np

        return len(np.unique(np.frombuffer(joined, dtype=np.int64)))
    parts = [g.hashes() for g in groups]
    if all(isinstance(p, set) for p in parts) and sum(map(len, parts)) <= SPILL_TOTAL:
        return len(set().union(*parts))
    import numpy as np

    return len(np.unique(np.concatenate(
        [np.fromiter(p, dtype=np.int64, count=len(p)) if isinstance(p, set) else p
         for p in parts])))


_MSG = {name: i for i, name in enumerate(MESSAGE_ROW)}
_ROUTE_SESSION, _ROUTE_ACTION = ROUTE_ROW.index("session"), ROUTE_ROW.index("action")
_ROUTE_AFI, _ROUTE_SAFI, _ROUTE_RD = (ROUTE_ROW.index("afi"), ROUTE_ROW.index("safi"),
                                      ROUTE_ROW.index("rd"))
_SPECIAL = ("src", "sport", "frame", "ts", "eor", "open_my_as", "open_bgp_id", "open_hold_time",
            "open_capabilities", "notify_code", "notify_subcode", "notify_name", "notify_subname",
            "notify_text")


class _Session:
    def __init__(self, name: str) -> None:
        self.name = name
        self.messages: Counter = Counter()
        self.opens: dict[str, dict] = {}
        self.announce_rows = 0
        self.withdraw_rows = 0
        self.eor: set[str] = set()
        self.notifications: list[dict] = []
        self.events: Counter = Counter()
        self.tcp: Counter = Counter()
        self.syn_from: str | None = None      # who sent the first SYN (the connecting side)
        self.tcp_first_ts: float | None = None
        self.tcp_last_ts: float | None = None
        self.family_rows: Counter = Counter()     # (family, "announce"/"withdraw") -> route rows
        self.malformed = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None


class PrefixFolder:
    """The costly half of folding BGP routes: prefix texts hashed into per-session stores.

    Kept apart from :class:`CaptureSummary` so that a worker process that owns some BGP
    connections (:mod:`diag.decode.parallel`) can hold the stores of its sessions; ``sample``
    replays the summary's prefix sample locally, so that keys stop being passed on once the
    sample is full (the summary's sample holds at least what this one holds at any point).
    """

    def __init__(self) -> None:
        # (session, family) -> announced, withdrawn
        self.stores: dict[tuple[str, str], tuple[_Prefixes, _Prefixes]] = {}
        self.sample = {"announce": set(), "withdraw": set()}

    def store(self, session: str, family: str) -> tuple[_Prefixes, _Prefixes]:
        s = self.stores.get((session, family))
        if s is None:
            s = self.stores[(session, family)] = (_Prefixes(), _Prefixes())
        return s

    def compact_if_large(self) -> None:
        """Every store's raw keys packed into runs, once the stores hold many
        (``COMPACT_TOTAL``)."""
        stores = [p for pair in self.stores.values() for p in pair if p.packed]
        if sum(len(b) for p in stores for b in p.packed) > 8 * COMPACT_TOTAL:
            for p in stores:
                p.compact()

    def spill_if_large(self) -> None:
        stores = [p for pair in self.stores.values() for p in pair]
        if sum(p.held() for p in stores) > SPILL_TOTAL:
            for p in stores:
                if p.held():
                    p._spill()


# --- folding a chunk: pure functions of one RowChunk, whose results are small and picklable ---
# CaptureSummary.add(chunk) == CaptureSummary.apply(fold(chunk, folder)); the parallel decoder
# computes the same folds in worker processes and applies them in chunk order.

def fold(chunk: RowChunk, folder: PrefixFolder, bgp: bool = True, other: bool = True) -> dict:
    """What one chunk adds to the summary, as plain data (see :meth:`CaptureSummary.apply`)."""
    if getattr(chunk, "core", None) is not None:       # decoded by the compiled core
        from diag.decode.core import core_fold

        return core_fold(chunk, folder, bgp, other)
    out: dict = {}
    if other:
        out["packets"] = _fold_packets(chunk)
        out["tunnels"] = _fold_tunnels(chunk)
        out["arp"] = _fold_arp(chunk)
        out["icmp"] = _fold_icmp(chunk)
        out["fragments"] = _fold_fragments(chunk)
        out["lldp"] = _fold_lldp(chunk)
    if bgp:
        out["bgp"] = _fold_bgp(chunk, folder)
    return out


_ARP_FIELDS = ("frame", "ts", "op", "sender_mac", "sender_ip", "target_mac", "target_ip",
               "gratuitous", "vlan", "tunnel_depth", "capture_iface", "iface_name", "direction")


def _fold_arp(chunk: RowChunk) -> list[tuple]:
    """The chunk's ARP rows for the one rule: (frame, ts, op, sender_mac, sender_ip, target_mac,
    target_ip, gratuitous, segment, place, direction, depth); an encapsulated row's segment and
    place come from its frame's tunnel rows (in the same chunk: one frame's rows never split)."""
    rows = chunk.ordered("arp", _ARP_FIELDS)
    if not rows:
        return []
    wanted = {r[0] for r in rows if r[9]}
    layers: dict[int, list[tuple]] = {}
    if wanted:
        for frame, depth, vni, src, dst in zip(*chunk.columns(
                "tunnels", ("frame", "depth", "vni", "outer_src", "outer_dst"))):
            if frame in wanted:
                layers.setdefault(frame, []).append((depth, vni, src, dst))
    return [arp_rule_row(row, layers.get(row[0], ())) for row in rows]


def arp_rule_row(row: tuple, layers) -> tuple:
    """One ARP row (``_ARP_FIELDS``) as the rule takes it, ``layers`` its frame's tunnel rows
    as (depth, vni, outer_src, outer_dst) (the compiled core makes the same rows)."""
    frame, ts, op, smac, sip, tmac, tip, grat, vlan, depth, ciface, name, direction = row
    segment, place = segment_and_place(vlan, depth, ciface, name, direction, layers)
    return (frame, ts, op, smac, sip, tmac, tip, grat, segment, place, direction,
            int(depth or 0))


def _fold_packets(chunk: RowChunk) -> tuple | None:
    ts, app, l3, direction, name, ifindex, ciface, pkttype, eth_dst = chunk.columns(
        "packets", ("ts", "app", "l3", "direction", "iface_name", "ifindex", "capture_iface",
                    "pkttype", "eth_dst"))
    if not ts:
        return None
    # None is not counted (pandas' value_counts drops it); an empty app is "other"
    by_app = Counter((k or "other") for k in app if k is not None)
    by_l3 = Counter(str(k) for k in l3 if k is not None)
    by_direction = Counter(str(k) for k in direction if k is not None)
    # which interface a packet was seen on, and whether it arrived or left: what shows a packet
    # *left by eth0* in a `tcpdump -i any` (SLL2) or pcapng capture
    by_interface = Counter((_interface_label(n, x, c), str(d))
                           for d, n, x, c in zip(direction, name, ifindex, ciface) if d is not None)
    # the vectorised path only takes frames that decode cleanly: problems are per-packet rows
    at, frame_at = PACKET_COLUMNS.index("malformed"), PACKET_COLUMNS.index("frame")
    bad = [r for r in chunk.rows["packets"] if r[at] is not None]
    examples = [{"frame": int(r[frame_at]), "reason": r[at]} for r in bad[:MAX_LISTED]]
    # what the capture point sees, for the ARP rule's Vantage: other hosts' unicast
    # (promiscuous), and the unicast MACs frames were addressed to
    otherhost = "otherhost" in set(pkttype)
    dst_macs = {m for m in set(eth_dst) if m}
    return (len(ts), _num(min(ts)), _num(max(ts)), by_app, by_l3, by_direction, by_interface,
            len(bad), examples, otherhost, dst_macs)


def _fold_tunnels(chunk: RowChunk) -> tuple | None:
    kinds, vnis, srcs, dsts, dports, l3s, bad = chunk.columns(
        "tunnels", ("type", "vni", "outer_src", "outer_dst", "outer_dport", "inner_l3",
                    "malformed"))
    if not kinds:
        return None
    return tunnel_fold(Counter(zip(kinds, vnis, srcs, dsts, dports, l3s)),
                       sum(1 for b in bad if b is not None))


def _most_packets(ends: Counter) -> list[tuple]:
    """The MAX_LISTED tunnel endpoints ((src, dst, dport), packets) with the most packets;
    ties by src, dst and port (None last)."""
    def order(item):
        (src, dst, port), n = item
        return (-n, src is None, src or "", dst is None, dst or "", port is None, port or 0)

    return heapq.nsmallest(MAX_LISTED, ends.items(), key=order)


def tunnel_fold(groups: Counter, nbad: int) -> tuple:
    """The tunnels' fold from the counts per (type, VNI, outer src, outer dst, outer port,
    inner l3) and the number of malformed layers."""
    types: Counter = Counter()
    ends: Counter = Counter()
    inner: Counter = Counter()
    for (kind, vni, src, dst, dport, l3), n in groups.items():
        types[(kind, vni)] += n
        ends[(kind, vni, src, dst, dport)] += n
        inner[(kind, vni, l3)] += n
    # folded in sorted key order, as the tables' groupby did (ties in most_common keep it)
    return (nbad,
            sorted_nulls_last(types.items(), key=_first),
            sorted_nulls_last(ends.items(), key=_first),
            sorted_nulls_last(inner.items(), key=_first))


def _fold_icmp(chunk: RowChunk) -> list[tuple]:
    cols = ICMP_COLUMNS
    at = [cols.index(n) for n in ("l3", "type_name", "code", "mtu", "orig_dst", "orig_proto",
                                  "orig_dport")]
    return [tuple(row[i] for i in at) for row in chunk.rows.get("icmp", ())]


_FRAGMENT_AT = [FRAGMENT_COLUMNS.index(n) for n in (
    "tunnel_depth", "l3", "src", "dst", "ip_proto", "status", "fragments", "size",
    "largest_fragment", "app")]
_LLDP_AT = [LLDP_COLUMNS.index(n) for n in (
    "frame", "ts", "iface_name", "ifindex", "capture_iface", "chassis_id", "chassis_id_type",
    "port_id", "port_id_type", "port_description", "system_name", "ttl",
    "management_addresses", "capabilities", "port_vlan", "max_frame_size", "malformed")]


def _fold_fragments(chunk: RowChunk) -> list[tuple]:
    return [tuple(row[i] for i in _FRAGMENT_AT) for row in chunk.rows.get("fragments", ())]


def _fold_lldp(chunk: RowChunk) -> list[tuple]:
    return [tuple(row[i] for i in _LLDP_AT) for row in chunk.rows.get("lldp", ())]


def _fold_bgp(chunk: RowChunk, folder: PrefixFolder) -> dict:
    rows = chunk.rows
    out = {"messages": _fold_messages(rows["bgp_messages"]) if rows["bgp_messages"] else None,
           "routes": _fold_routes(chunk, folder) if rows["bgp_routes"] else [],
           "events": fold_events(rows["stream_events"])}
    if rows["bgp_routes"]:
        folder.spill_if_large()
    return out


def fold_events(events: list[dict]) -> list[tuple]:
    """(order, session, event, detail, sender, ts) per stream event: order is the row's place
    here; the parallel decoder replaces it with where the event was raised, to merge workers."""
    return [(i, row["session"], row["event"], row["detail"],
             _endpoint(row["src"], row["sport"]), row["ts"]) for i, row in enumerate(events)]


def _fold_messages(msgs: list[tuple]) -> tuple:
    """Counts for every message; OPENs, NOTIFICATIONs and End-of-RIBs are kept one by one."""
    i_session, i_ts, i_bad, i_type = (_MSG["session"], _MSG["ts"], _MSG["malformed"],
                                      _MSG["type_name"])
    i_eor = _MSG.get("eor")
    spans: dict[str, list] = {}
    bad: Counter = Counter()
    named: Counter = Counter()
    special = []
    wanted = [c for c in _SPECIAL if c in _MSG]
    for m in msgs:
        session, ts = m[i_session], m[i_ts]
        span = spans.get(session)
        if span is None:
            spans[session] = [ts, ts]
        elif ts is not None:
            if ts < span[0]:
                span[0] = ts
            if ts > span[1]:
                span[1] = ts
        if m[i_bad] is not None:
            bad[session] += 1
        name = m[i_type]
        if name is not None:
            named[(session, name)] += 1
            if name == "OPEN" or name == "NOTIFICATION" or (
                    i_eor is not None and m[i_eor] is not None):
                special.append((session, name, {c: m[_MSG[c]] for c in wanted}))
    return spans, bad, named, special


def route_text(rd: str | None, prefix: str | None) -> str:
    """How the summary names a route: the prefix; ``RD:prefix`` for VPN and EVPN routes (as
    GoBGP prints them); ``(raw)`` for an NLRI of a family diag does not split."""
    if prefix is None:
        return "(raw)"
    return f"{rd}:{prefix}" if rd is not None else prefix


def _fold_routes(chunk: RowChunk, folder: PrefixFolder) -> list[tuple]:
    """Per (session, family, action), sorted: (session, family, action, rows, sample texts or
    None); the routes' keys go into the folder's stores (no text is made beyond the sample)."""
    from diag.decode.nlri import PackedPrefixes, pack_keys, text_key

    by_key: dict[tuple, list] = defaultdict(list)    # (session, family, action) -> (rd, groups)
    packs = []
    for row, prefixes in chunk.rows["bgp_routes"]:
        family = f"{row[_ROUTE_AFI]}/{row[_ROUTE_SAFI]}"
        by_key[(row[_ROUTE_SESSION], family, row[_ROUTE_ACTION])].append(
            (row[_ROUTE_RD], prefixes))
        if isinstance(prefixes, PackedPrefixes) and len(prefixes):
            packs.append(prefixes)
    made: dict[int, object] = {}
    # many prefixes: keys column-wise with numpy; a few: one by one, without numpy
    if sum(len(p) for p in packs) > 2000:
        from diag.decode.nlri import keys as packed_keys

        flat = packed_keys(packs)
        at = 0
        for p in packs:
            made[id(p)] = flat[at:at + len(p)]
            at += len(p)
    out = []
    for (session, family, action), lists in sorted_nulls_last(by_key.items(), key=_first):
        keys = []
        for rd, prefixes in lists:
            found = made.get(id(prefixes))
            if found is None:
                found = (pack_keys(prefixes) if isinstance(prefixes, PackedPrefixes)
                         else [text_key(route_text(rd, t)) for _pid, t in prefixes])
            keys.append(found)

        def head(lists=lists) -> list[str]:
            texts = []
            for rd, prefixes in lists:
                texts.extend(route_text(rd, t) for _pid, t in prefixes)
                if len(texts) >= MAX_PREFIX_SAMPLE:
                    break
            return texts[:MAX_PREFIX_SAMPLE]

        out.append(fold_route_key(folder, session, family, action,
                                  sum(len(p) for _rd, p in lists), keys, head))
    return out


def fold_route_key(folder: PrefixFolder, session: str, family: str, action: str, rows: int,
                   keys: list, head) -> tuple:
    """One (session, family, action) of a chunk's routes: its keys (lists of ints or int64
    arrays) into the folder's store, the first texts (``head()``, at most MAX_PREFIX_SAMPLE)
    into the sample while it takes more; returns the fold's entry."""
    kind = "announce" if action == "announce" else "withdraw"
    store = folder.store(session, family)[0 if kind == "announce" else 1]
    for found in keys:
        if isinstance(found, (bytes, bytearray)):
            store.add_packed(found)                  # from the compiled core: distinct
        else:
            store.update(found)
    sample = folder.sample[kind]
    texts = None
    if len(sample) < MAX_PREFIX_SAMPLE:
        texts = head()
        sample.update(texts)
    return (session, family, action, rows, texts)


def merge_bgp_folds(folds: list[dict]) -> dict:
    """The BGP folds of one chunk from workers owning disjoint sets of connections, as one fold
    (what one process folding all of the chunk's BGP rows makes). Event orders must be comparable
    across the folds (see :mod:`diag.decode.parallel`)."""
    folds = [f for f in folds if f is not None]
    spans: dict = {}
    bad: Counter = Counter()
    named: Counter = Counter()
    special: list = []
    any_messages = False
    routes: list = []
    events: list = []
    for f in folds:
        if f["messages"] is not None:
            any_messages = True
            s, b, n, sp = f["messages"]
            spans.update(s)
            bad.update(b)
            named.update(n)
            special.extend(sp)
        routes.extend(f["routes"])
        events.extend(f["events"])
    routes = sorted_nulls_last(routes, key=itemgetter(0, 1, 2))
    events.sort(key=lambda e: e[0])
    return {"messages": (spans, bad, named, special) if any_messages else None,
            "routes": routes, "events": events}


class CaptureSummary:
    def __init__(self) -> None:
        self.file: str | None = None
        self.format: str | None = None
        self.interfaces: list[dict] = []
        self.total = 0
        self.malformed_packets = 0
        self.malformed_examples: list[dict] = []
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.by_app: Counter = Counter()
        self.by_l3: Counter = Counter()
        self.by_direction: Counter = Counter()
        self.by_interface: Counter = Counter()     # (interface, direction) -> packets
        self.sessions: dict[str, _Session] = {}
        self.prefixes = PrefixFolder()
        self.bgp_types: Counter = Counter()
        self.announced_sample: set[str] = set()
        self.withdrawn_sample: set[str] = set()
        self.bgp_malformed = 0
        self.tunnel_types: dict[str, Counter] = defaultdict(Counter)   # type -> vni -> packets
        self.tunnel_endpoints: dict[tuple, Counter] = defaultdict(Counter)
        self.tunnel_inner: dict[tuple, Counter] = defaultdict(Counter)
        self.tunnel_malformed = 0
        self.arp_counts: Counter = Counter()
        self.arp_pairing = ArpPairing()
        self.arp_view = Vantage()
        self.arp_unanswered: dict[str, dict] = {}
        self.arp_answered = 0
        self.arp_copies = 0
        # the per-row work of _arp in C when the compiled core is in use (_core/arp.c; the rule
        # stays diag/decode/arp.py: tests run both and require the same summary)
        self._arp_rule = arp_rule()
        self._arp_end: tuple | None = None     # arp_ended: the rule was fed in another process
        self.arp_responders: dict[str, dict[str, list]] = defaultdict(dict)
        self.icmp_types: Counter = Counter()          # (l3, type_name, code) -> errors
        self.icmp_quoted: Counter = Counter()         # (type_name, orig dst, proto, dport) -> errors
        self.icmp_mtus: set[int] = set()
        self.fragment_flows: dict[tuple, dict] = {}   # (depth, l3, src, dst, proto) -> counts
        self.lldp_neighbours: dict[tuple, dict] = {}  # (interface, chassis, port) -> latest
        self.lldp_malformed = 0

    # --- folding chunks --------------------------------------------------------------------
    def add(self, chunk) -> None:
        """Fold one :class:`diag.decode.RowChunk` (or the :class:`diag.decode.Tables` built from
        one, as :func:`diag.decode.iter_decode` yields them)."""
        if not isinstance(chunk, RowChunk):
            if getattr(chunk, "rows", None) is None:
                raise TypeError("CaptureSummary.add takes the chunks of iter_rows/iter_decode")
            chunk = chunk.rows
        self.set_info(chunk.info)
        with fewer_collections():
            self.apply(fold(chunk, self.prefixes))

    def set_info(self, info) -> None:
        if info is not None:
            self.file, self.format = info.path, info.format
            self.interfaces = [
                {"capture_iface": i.capture_iface, "linktype": i.linktype,
                 "linktype_name": i.linktype_name, "name": i.name, "description": i.description,
                 "snaplen": i.snaplen} for i in info.interfaces]

    def apply(self, folded: dict) -> None:
        """Add one chunk's :func:`fold` (in capture order: ARP pairing and first-seen orders
        depend on it)."""
        if "packets" in folded:
            self._packets(folded["packets"])
        if "bgp" in folded:
            self._bgp(folded["bgp"])
        if "tunnels" in folded:
            self._tunnels(folded["tunnels"])
            self._arp(folded["arp"])
            self._icmp(folded["icmp"])
            self._fragments(folded.get("fragments", ()))
            self._lldp(folded.get("lldp", ()))

    def _fragments(self, rows) -> None:
        for depth, l3, src, dst, proto, status, count, size, largest, app in rows:
            flow = self.fragment_flows.get((depth, l3, src, dst, proto))
            if flow is None:
                flow = self.fragment_flows[(depth, l3, src, dst, proto)] = {
                    "l3": l3, "src": src, "dst": dst, "proto": proto, "tunnel_depth": depth,
                    "datagrams": 0, "fragments": 0, "largest_fragment": 0,
                    "largest_payload": 0, "by_status": Counter(), "carried": Counter()}
            flow["datagrams"] += 1
            flow["fragments"] += count
            flow["largest_fragment"] = max(flow["largest_fragment"], largest)
            flow["by_status"][status] += 1
            if status == "reassembled":
                flow["largest_payload"] = max(flow["largest_payload"], size)
                flow["carried"][app or "other"] += 1

    def _lldp(self, rows) -> None:
        for (frame, ts, name, ifindex, ciface, chassis, chassis_type, port, port_type, port_desc,
             system, ttl, mgmt, caps, pvid, max_frame, malformed) in rows:
            if malformed is not None:
                self.lldp_malformed += 1
            if chassis is None and port is None:
                continue
            interface = _interface_label(name, ifindex, ciface)
            key = (interface, chassis, port)
            n = self.lldp_neighbours.get(key)
            if n is None:
                n = self.lldp_neighbours[key] = {
                    "interface": interface, "chassis_id": chassis,
                    "chassis_id_type": chassis_type, "port_id": port, "port_id_type": port_type,
                    "frames": 0, "first_frame": int(frame)}
            # the latest LLDPDU says what the neighbour says now (a TTL of 0: it is leaving,
            # and such a shutdown LLDPDU carries nothing else: what was said before stays)
            n["ttl"], n["last_ts"] = _num(ttl), _num(ts)
            for name, value in (("port_description", port_desc), ("system_name", system),
                                ("management_addresses", mgmt), ("capabilities", caps),
                                ("port_vlan", _num(pvid)), ("max_frame_size", _num(max_frame))):
                if value is not None or name not in n:
                    n[name] = list(value) if isinstance(value, list) else value
            n["frames"] += 1

    def _icmp(self, rows: list[tuple]) -> None:
        for l3, type_name, code, mtu, orig_dst, orig_proto, orig_dport in rows:
            self.icmp_types[(l3, type_name, code)] += 1
            self.icmp_quoted[(type_name, orig_dst, orig_proto, orig_dport)] += 1
            if mtu is not None:
                self.icmp_mtus.add(mtu)

    def _packets(self, folded: tuple | None) -> None:
        if folded is None:
            return
        (n, first, last, by_app, by_l3, by_direction, by_interface, nbad, examples, otherhost,
         dst_macs) = folded
        self.arp_view.packets(by_direction, otherhost, dst_macs)
        self.total += n
        self.first_ts = first if self.first_ts is None else min(self.first_ts, first)
        self.last_ts = last if self.last_ts is None else max(self.last_ts, last)
        self.by_app.update(by_app)
        self.by_l3.update(by_l3)
        self.by_direction.update(by_direction)
        self.by_interface.update(by_interface)
        self.malformed_packets += nbad
        self.malformed_examples.extend(examples[:max(0, MAX_LISTED - len(self.malformed_examples))])

    def _session(self, name: str) -> _Session:
        s = self.sessions.get(name)
        if s is None:
            s = self.sessions[name] = _Session(name)
        return s

    def _bgp(self, folded: dict) -> None:
        if folded["messages"] is not None:
            self._bgp_messages(*folded["messages"])
        for session, family, action, rows, head in folded["routes"]:
            s = self._session(session)
            if action == "announce":
                s.announce_rows += rows
                s.family_rows[(family, "announce")] += rows
                sample = self.announced_sample
            else:
                s.withdraw_rows += rows
                s.family_rows[(family, "withdraw")] += rows
                sample = self.withdrawn_sample
            if len(sample) < MAX_PREFIX_SAMPLE and head:
                sample.update(head)
        for _order, name, event, detail, sender, ts in folded["events"]:
            session = self._session(name)
            if event in TCP_CONTROL_EVENTS:
                session.tcp[event] += 1
                if detail:
                    session.tcp[detail] += 1
                if event == "syn" and session.syn_from is None:
                    session.syn_from = sender
                ts = _num(ts)
                if ts is not None:
                    session.tcp_first_ts = ts if session.tcp_first_ts is None else min(
                        session.tcp_first_ts, ts)
                    session.tcp_last_ts = ts if session.tcp_last_ts is None else max(
                        session.tcp_last_ts, ts)
            else:
                session.events[event] += 1

    def _bgp_messages(self, spans: dict, bad: Counter, named: Counter, special: list) -> None:
        for session in sorted(spans):
            lo, hi = spans[session]
            s = self._session(session)
            lo, hi = _num(lo), _num(hi)
            s.first_ts = lo if s.first_ts is None else min(s.first_ts, lo)
            s.last_ts = hi if s.last_ts is None else max(s.last_ts, hi)
        self.bgp_malformed += sum(bad.values())
        for session in sorted(bad):
            self._session(session).malformed += bad[session]
        for (session, name) in sorted(named):
            n = named[(session, name)]
            self._session(session).messages[name] += n
            self.bgp_types[name] += n
        for session, name, row in special:
            s = self._session(session)
            sender = _endpoint(row["src"], row["sport"])
            if name == "OPEN":
                s.opens[sender] = {
                    "as": _num(row.get("open_my_as")), "bgp_id": _num(row.get("open_bgp_id")),
                    "hold_time": _num(row.get("open_hold_time")),
                    "capabilities": list(row.get("open_capabilities") or []),
                }
            elif name == "NOTIFICATION":
                s.notifications.append({
                    "frame": int(row["frame"]), "ts": _num(row.get("ts")), "from": sender,
                    "code": _num(row.get("notify_code")), "subcode": _num(row.get("notify_subcode")),
                    "name": _num(row.get("notify_name")), "subname": _num(row.get("notify_subname")),
                    "text": _num(row.get("notify_text")),
                })
            elif name == "UPDATE" and _num(row.get("eor")):
                s.eor.add(f"{row['eor']} from {sender}")

    def _tunnels(self, folded: tuple | None) -> None:
        if folded is None:
            return
        nbad, types, ends, inner = folded
        self.tunnel_malformed += nbad
        for (kind, vni), n in types:
            # a tunnel header too short to hold a VNI has none: counted, not listed
            self.tunnel_types[kind][_num(vni)] += n
        for (kind, vni, src, dst, dport), n in ends:
            self.tunnel_endpoints[(kind, _num(vni))][(src, dst, _num(dport))] += n
        for (kind, vni, l3), n in inner:
            self.tunnel_inner[(kind, _num(vni))][_num(l3) or "none"] += n

    def _arp(self, rows: list[tuple]) -> None:
        if self._arp_rule is not None:
            self.arp_decided(self._arp_rule.add(rows))
            return
        for frame, ts, op, smac, sip, tmac, tip, grat, segment, place, direction, depth in rows:
            if sip is None:
                self.arp_counts["undecoded"] += 1
                continue
            if grat:
                self.arp_counts["gratuitous"] += 1
                self._responder(sip, smac, int(frame))
                if op == "reply":
                    self.arp_counts["replies"] += 1
                else:
                    self.arp_counts["requests"] += 1
                continue
            if op == "request":
                self.arp_counts["requests"] += 1
                if sip == "0.0.0.0":
                    self.arp_counts["probes"] += 1
            elif op == "reply":
                self.arp_counts["replies"] += 1
                self._responder(sip, smac, int(frame))
                self.arp_view.reply(tip, tmac, direction)
            else:
                self.arp_counts["other"] += 1
            self._verdicts(self.arp_pairing.add(Sighting(
                int(frame), float(ts), op, sip, tip, bool(grat), smac, segment, place, direction,
                depth)))

    def arp_decided(self, outcome: tuple) -> None:
        """What the compiled ARP rule (:func:`arp_rule`) made of one chunk's rows, in capture
        order: ``rule.add(rows)`` here or in a worker that pairs every chunk's ARP
        (:mod:`diag.decode.parallel`, which tallies the unanswered ones there and hands the
        table to :meth:`arp_ended`); it returns only the rows whose calls change something
        (see diag/decode/_core/arp.c)."""
        unanswered, responders = outcome
        for sip, smac, frame, tip, tmac, direction, is_reply in responders:
            if frame is not None:
                self._responder(sip, smac, int(frame))
            if is_reply:
                self.arp_view.reply(tip, tmac, direction)
        for v in unanswered:
            self._unanswered(v)

    def arp_ended(self, end: tuple, tallied: dict[str, dict] | None = None) -> None:
        """The end of the capture for a compiled ARP rule fed elsewhere, as
        :func:`arp_rule_end` took it; this summary's own rule was fed nothing. ``tallied``:
        the unanswered requests of the whole capture, tallied where the rule ran
        (:func:`tally_unanswered`, in capture order, the ones still waiting at the end last),
        so that neither ``end`` nor the outcomes given to :meth:`arp_decided` held any."""
        self._arp_end = end
        if tallied is not None:
            self.arp_unanswered = tallied

    def _arp_finish(self) -> None:
        """The requests still waiting at the end of the capture."""
        rule = self._arp_rule
        if rule is None:
            self._verdicts(self.arp_pairing.finish())
            return
        waiting, counts, answered, copies = self._arp_end or arp_rule_end(rule)
        self._arp_end = ((), counts, answered, copies)     # result() again: the same result
        for v in waiting:
            self._unanswered(v)
        self.arp_counts = Counter(counts)
        self.arp_answered, self.arp_copies = answered, copies

    def _verdicts(self, verdicts: list) -> None:
        for v in verdicts:
            if v.copy_of is not None:
                self.arp_copies += 1
            elif v.answered:
                self.arp_answered += 1
            else:
                self._unanswered(v)

    def _responder(self, ip: str, mac: str, frame: int) -> None:
        frames = self.arp_responders[ip].setdefault(mac, [])
        if len(frames) < RESPONDER_FRAMES:
            frames.append(frame)

    def _unanswered(self, v) -> None:
        tally_unanswered(self.arp_unanswered, v)

    def _arp_result(self, u: dict) -> dict:
        """An ``unanswered_by_ip`` entry: how many of its requests this capture could not see
        replies for, and why (the first reason)."""
        unverified, why = 0, None
        for v, count in u["askers"].values():
            reason = self.arp_view.blind(v)
            if reason:
                unverified += count
                why = why or reason
        return {k: val for k, val in u.items() if k != "askers"} | {
            "unverified": unverified, "unverified_because": why}

    # --- the result ------------------------------------------------------------------------
    def result(self) -> dict:
        self._arp_finish()
        stores = self.prefixes.stores
        by_session: dict[str, dict[str, tuple[_Prefixes, _Prefixes]]] = defaultdict(dict)
        by_family: dict[str, list[tuple[_Prefixes, _Prefixes]]] = defaultdict(list)
        for (session, family), pair in stores.items():
            by_session[session][family] = pair
            by_family[family].append(pair)
        rows: Counter = Counter()
        for s in self.sessions.values():
            rows.update(s.family_rows)
        families = {}
        for family in sorted(set(by_family) | {f for f, _kind in rows}):
            pairs = by_family.get(family, [])
            families[family] = {
                "announced": _distinct([a for a, _w in pairs]),
                "withdrawn": _distinct([w for _a, w in pairs]),
                "announce_rows": rows[(family, "announce")],
                "withdraw_rows": rows[(family, "withdraw")]}
        # a route of one family is not the same route as one of another (an IPv4 unicast prefix
        # and the same prefix labeled): distinct counts add up over families
        announced = sum(f["announced"] for f in families.values())
        withdrawn = sum(f["withdrawn"] for f in families.values())
        sessions = [self._session_result(s, by_session.get(s.name, {}))
                    for s in sorted(self.sessions.values(),
                                    key=lambda s: (s.first_ts or s.tcp_first_ts or 0, s.name))]
        notifications = sorted((dict(n, session=s["session"]) for s in sessions for n in s["notifications"]),
                               key=lambda n: n["frame"])
        events: Counter = Counter()
        for s in self.sessions.values():
            events.update(s.events)
        multiple = [
            {"ip": ip, "macs": sorted(macs), "frames": sorted(f for fr in macs.values() for f in fr)}
            for ip, macs in sorted(self.arp_responders.items()) if len(macs) > 1
        ]
        unanswered = sorted((self._arp_result(u) for u in self.arp_unanswered.values()),
                            key=lambda u: (-u["count"], u["target_ip"]))
        return {
            "schema": SCHEMA,
            "file": self.file,
            "format": self.format,
            "interfaces": self.interfaces,
            "packets": {
                "total": self.total, "malformed": self.malformed_packets,
                "malformed_examples": self.malformed_examples,
                "first_ts": self.first_ts, "last_ts": self.last_ts,
                "by_app": dict(sorted(self.by_app.items())),
                "by_l3": dict(sorted(self.by_l3.items())),
                "by_direction": dict(sorted(self.by_direction.items())),
                "by_interface": [{"interface": i, "direction": d, "packets": n}
                                 for (i, d), n in sorted(self.by_interface.items())],
            },
            "bgp": {
                "messages": {name: self.bgp_types.get(name, 0) for name in BGP_TYPES}
                | {k: v for k, v in self.bgp_types.items() if k not in BGP_TYPES},
                "malformed": self.bgp_malformed,
                "prefixes": {
                    "announced": announced, "withdrawn": withdrawn,
                    "announced_list": sorted(self.announced_sample)[:MAX_PREFIX_SAMPLE],
                    "withdrawn_list": sorted(self.withdrawn_sample)[:MAX_PREFIX_SAMPLE],
                    "by_family": families,
                },
                "notifications": notifications,
                "stream_events": dict(events),
                "sessions": sessions,
                "connection_attempts": _attempts(sessions),
            },
            "tunnels": {
                kind: {"packets": sum(vnis.values()),
                       "vnis": sorted(v for v in vnis if v is not None)}
                for kind, vnis in sorted(self.tunnel_types.items())
            } | {"malformed": self.tunnel_malformed, "by_vni": self._tunnel_rows()},
            "arp": {
                "requests": self.arp_counts.get("requests", 0),
                "replies": self.arp_counts.get("replies", 0),
                "gratuitous": self.arp_counts.get("gratuitous", 0),
                "probes": self.arp_counts.get("probes", 0),
                "copies": self.arp_copies,
                "answered": self.arp_answered,
                "unanswered": sum(u["count"] for u in unanswered),
                "unverified": sum(u["unverified"] for u in unanswered),
                "unanswered_by_ip": unanswered[:MAX_LISTED],
                "multiple_responders": multiple[:MAX_LISTED],
            },
            "fragments": self._fragment_result(),
            "lldp": {"neighbours": sorted(self.lldp_neighbours.values(),
                                          key=lambda n: (n["interface"], n["first_frame"])),
                     "malformed": self.lldp_malformed},
            "icmp_errors": {
                "count": sum(self.icmp_types.values()),
                "by_type": [{"l3": l3, "type": name, "code": code, "count": n}
                            for (l3, name, code), n in self.icmp_types.most_common(MAX_LISTED)],
                "mtus": sorted(self.icmp_mtus),
                "about": [{"type": name, "dst": dst, "proto": proto, "dport": dport, "count": n}
                          for (name, dst, proto, dport), n in
                          self.icmp_quoted.most_common(MAX_LISTED)],
            },
        }

    def _fragment_result(self) -> dict:
        flows = sorted(self.fragment_flows.values(),
                       key=lambda f: (-f["datagrams"], f["l3"], f["src"], f["dst"],
                                      f["proto"] if f["proto"] is not None else -1,
                                      f["tunnel_depth"]))
        status: Counter = Counter()
        for f in flows:
            status.update(f["by_status"])
        return {
            "datagrams": sum(f["datagrams"] for f in flows),
            "fragments": sum(f["fragments"] for f in flows),
            "by_status": dict(sorted(status.items())),
            "by_flow": [dict(f, by_status=dict(sorted(f["by_status"].items())),
                             carried=dict(sorted(f["carried"].items())))
                        for f in flows[:MAX_LISTED]],
        }

    def _tunnel_rows(self) -> list[dict]:
        """Per (type, VNI): the endpoints with the most packets, ties in address order (not
        in the order first seen: that would depend on how the capture was cut in chunks)."""
        rows = []
        for (kind, vni), ends in sorted(self.tunnel_endpoints.items(),
                                        key=lambda kv: (kv[0][0], kv[0][1] if kv[0][1] is not None else -1)):
            rows.append({
                "type": kind, "vni": vni, "packets": sum(ends.values()),
                "endpoints": [{"src": s, "dst": d, "dport": p, "packets": n}
                              for (s, d, p), n in _most_packets(ends)],
                "inner": dict(self.tunnel_inner[(kind, vni)]),
            })
        return rows

    @staticmethod
    def _session_result(s: _Session, families: dict[str, tuple[_Prefixes, _Prefixes]]) -> dict:
        ends = s.name.split("-")
        by_family = {
            family: {"announced": len(families[family][0]) if family in families else 0,
                     "withdrawn": len(families[family][1]) if family in families else 0,
                     "announce_rows": s.family_rows[(family, "announce")],
                     "withdraw_rows": s.family_rows[(family, "withdraw")]}
            for family in sorted(set(families) | {f for f, _kind in s.family_rows})}
        return {
            "session": s.name,
            "endpoints": ends,
            "speakers": s.opens,
            "messages": {k: s.messages[k] for k in sorted(
                s.messages, key=lambda k: (BGP_TYPES.index(k) if k in BGP_TYPES else 99, k))},
            "announced": sum(f["announced"] for f in by_family.values()),
            "withdrawn": sum(f["withdrawn"] for f in by_family.values()),
            "announce_rows": s.announce_rows, "withdraw_rows": s.withdraw_rows,
            "families": by_family,
            "end_of_rib": sorted(s.eor),
            "notifications": s.notifications,
            "stream_events": dict(s.events),
            "tcp": {k: s.tcp[k] for k in sorted(s.tcp)},
            "connection": _connection(s),
            "connecting_side": s.syn_from,
            "malformed": s.malformed,
            "first_ts": s.first_ts if s.first_ts is not None else s.tcp_first_ts,
            "last_ts": s.last_ts if s.last_ts is not None else s.tcp_last_ts,
        }


def arp_rule():
    """The compiled core's ArpRule when the core is in use, else None."""
    from diag.decode.core import load

    core = load()
    if core is None:
        return None
    from diag.decode.arp import COPY_WINDOW, MAX_PENDING, REPLY_WINDOW, Verdict

    return core.ArpRule(REPLY_WINDOW, COPY_WINDOW, MAX_PENDING, Verdict, RESPONDER_FRAMES)


def tally_unanswered(table: dict[str, dict], v) -> None:
    """The unanswered request ``v`` (a :class:`diag.decode.arp.Verdict`) added to ``table``
    (target IP -> what the summary's ``unanswered_by_ip`` entry is made of); fed in capture
    order, the table is the same wherever it is kept."""
    ip, ts, frame = v.target, v.ts, v.frame
    u = table.get(ip)
    if u is None:
        u = table[ip] = {"target_ip": ip, "count": 0, "first_ts": ts, "last_ts": ts,
                         "first_frame": frame, "requesters": [], "askers": {}}
    u["count"] += 1
    u["first_ts"], u["last_ts"] = min(u["first_ts"], ts), max(u["last_ts"], ts)
    u["first_frame"] = min(u["first_frame"], frame)
    if v.asker not in u["requesters"] and len(u["requesters"]) < 10:
        u["requesters"].append(v.asker)
    # what the capture could see is judged at the end (replies to an asker may come later):
    # one verdict per asker and way it was seen stands for the others, with their count
    seen = u["askers"].setdefault((v.asker, v.seen, v.segment), [v, 0])
    if len(u["askers"]) <= 64 or seen[1]:
        seen[1] += 1
    else:
        del u["askers"][(v.asker, v.seen, v.segment)]


def arp_rule_end(rule) -> tuple:
    """An :func:`arp_rule` at the end of the capture: (the requests still waiting, its counts,
    answered, copies), what :meth:`CaptureSummary.arp_ended` takes."""
    waiting = rule.finish()
    return waiting, dict(rule.counts), rule.answered, rule.copies


def _connection(s: _Session) -> str:
    """What the capture shows of a connection: ``refused`` (SYN answered by RST, no SYN-ACK),
    ``unanswered`` (SYN only), ``no-bgp`` (a handshake but no BGP message), ``bgp``."""
    if s.messages or s.malformed:
        return "bgp"
    if s.tcp["syn"] and not s.tcp["syn-ack"]:
        return "refused" if s.tcp["rst"] else "unanswered"
    return "no-bgp"


def _attempts(sessions: list[dict]) -> list[dict]:
    """Refused and unanswered connections grouped by who connected to whom: each attempt comes
    from a new port, so they are many sessions, one story."""
    groups: dict[tuple, dict] = {}
    for s in sessions:
        if s["connection"] not in ("refused", "unanswered") or not s["connecting_side"]:
            continue
        client = s["connecting_side"]
        server = next((e for e in s["endpoints"] if e != client), client)
        key = (s["connection"], client.rpartition(":")[0].strip("[]"), server)
        g = groups.get(key)
        if g is None:
            g = groups[key] = {"outcome": s["connection"], "from": key[1], "to": server,
                               "attempts": 0, "first_ts": s["first_ts"], "last_ts": s["last_ts"]}
        g["attempts"] += 1
        if s["first_ts"] is not None:
            g["first_ts"] = s["first_ts"] if g["first_ts"] is None else min(g["first_ts"],
                                                                          s["first_ts"])
        if s["last_ts"] is not None:
            g["last_ts"] = s["last_ts"] if g["last_ts"] is None else max(g["last_ts"],
                                                                       s["last_ts"])
    return sorted(groups.values(), key=lambda g: (g["first_ts"] or 0, g["from"], g["to"]))


def _endpoint(ip: str, port: Any) -> str:
    port = int(port)
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _interface_label(name: Any, ifindex: Any, capture_iface: Any) -> str:
    """The capture's name for an interface, else the host's ifindex (SLL2), else pcapng's id."""
    if name is not None:
        return str(name)
    if ifindex is not None:
        return f"ifindex {int(ifindex)}"
    return f"capture interface {int(capture_iface)}"
