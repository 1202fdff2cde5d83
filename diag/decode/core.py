"""The compiled decode core (``diag.decode._core``, C) behind the same API as the reference.

Contract: :func:`iter_core` yields :class:`CoreChunk` s — what :func:`diag.decode.iter_rows`
yields when the core is in use — whose tables (:func:`core_tables`) and summary fold
(:func:`core_fold`, what :func:`diag.decode.summary.fold` calls for them) equal the reference
decoder's, value for value (tests/decode/test_core_equivalence.py runs both on every capture).

How: the core walks the records (pcap records, pcapng Enhanced Packet Blocks) and decodes the
common frames, TCP reassembly and BGP messages itself; everything else goes to the reference
one frame, one message or one TCP direction at a time (``diag/decode/_core/*.c`` say what
exactly), through the hooks made here:

* a frame it does not decode -> :class:`diag.decode.frames.PacketDecoder` (``packet``), whose
  BGP segments come back to the core (:class:`_CoreFlows`), so there is one reassembly;
  its rows are kept here ("slow" rows) and merged: tables in frame order, folds added;
* a BGP message it does not decode -> :func:`diag.decode.bgp.decode_message`;
* a TCP direction in a state it does not handle -> :meth:`BgpStream.resumed`.

Which decoder runs: the core when it was built (``pip install -e .`` compiles it) and
``DIAG_DECODER`` is not ``python``; ``DIAG_DECODER=compiled`` makes a missing core an error.
:func:`decoder_name` says which (``diag --version``).
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Iterator

from diag.decode.gcpolicy import fewer_collections, no_gc
from diag.decode.rows import RowChunk

ENV = "DIAG_DECODER"
CORE_ABI = 2                # the built module's ABI (dec.h) that this Python was written for
_loaded: list = []          # [module or None, reason]


def load():
    """The compiled core module, or None when it is not built or ``DIAG_DECODER=python``."""
    choice = os.environ.get(ENV, "").strip().lower()
    if choice == "python":
        return None
    if not _loaded:
        try:
            from diag.decode import _core
            if not hasattr(_core, "Decoder"):
                # the C sources' directory imported as a namespace package: nothing was built
                raise ImportError("no extension module in diag/decode/_core")
            if getattr(_core, "ABI", None) == CORE_ABI:
                _loaded[:] = [_core, ""]
            else:            # built from older sources (a pull without a rebuild): methods differ
                _loaded[:] = [None, "built from older sources (rebuild it: python3 -m pip "
                                    "install -e .)"]
        except ImportError as err:
            _loaded[:] = [None, f"not built ({err})"]
    if _loaded[0] is None and choice == "compiled":
        from diag.errors import EnvironmentProblem

        raise EnvironmentProblem(f"{ENV}=compiled but the compiled decoder is {_loaded[1]}",
                                 hint="build it: python3 -m pip install -e . (needs gcc and the "
                                      "Python headers), or unset " + ENV)
    return _loaded[0]


def decoder_name() -> str:
    """Which decoder runs, for ``diag --version``."""
    if os.environ.get(ENV, "").strip().lower() == "python":
        return f"pure-Python reference ({ENV}=python)"
    try:
        core = load()
    except Exception as err:  # noqa: BLE001 - the version line must print
        return f"none: {err}"
    if core is None:
        return f"pure-Python reference (the compiled core is {_loaded[1]})"
    checked = ", bounds-asserting build" if getattr(core, "CHECKED", 0) else ""
    return f"compiled C core{checked} (pure-Python reference as fallback)"


class _CoreFlows:
    """Stands in for :class:`diag.decode.bgpflow.BgpFlows` inside the reference decoder: the
    segments of the frames it decodes go to the core's one reassembly."""

    def __init__(self, core) -> None:
        self.core = core
        self.on_message = self.on_route = self.on_event = None   # PacketDecoder.take sets them

    def segment(self, src: str, sport: int, dst: str, dport: int, seq: int, flags: int,
                payload: bytes, frame: int, ts: float, depth: int, options: bytes = b"") -> None:
        self.core.segment(src, sport, dst, dport, seq, flags, bytes(payload), frame, ts, depth,
                          bytes(options))

    def flush(self, frame: int, ts: float) -> None:
        """The core flushes its flows itself (``Decoder.finish``)."""


class _Slow:
    """The rows of the frames the reference decoded, per table, for one chunk."""

    NAMES = ("packets", "tunnels", "arp", "icmp", "fragments", "lldp")

    def __init__(self, reference) -> None:
        self.reference = reference
        self.rows: dict[str, list] = {name: [] for name in self.NAMES}
        self.count = 0

    def packet(self, frame, ts, iface, linktype, data, wirelen, flags) -> dict:
        self.reference.packet(frame, ts, iface, linktype, data, wirelen, flags)
        return self.collect()

    def collect(self) -> dict:
        rows = self.reference.take()
        for name in self.NAMES:
            if rows[name]:
                self.rows[name].extend(rows[name])
        self.count += 1
        return rows

    def take(self) -> dict[str, list]:
        out, self.rows = self.rows, {name: [] for name in self.NAMES}
        return out


def _object_array(n: int):
    import numpy as np

    return np.empty(n, dtype=object)


def hooks(reference_packet, columns: dict) -> dict:
    """What the core calls back (see diag/decode/_core/module.c)."""
    from diag.decode import bgp, bgp_names, bgpflow, tcpstream
    from diag.decode.bgp_attrs import ipv6_str
    from diag.decode.nlri import PackedPrefixes, text_key
    from diag.decode.summary import route_text

    def route_key(text: str) -> int:
        return text_key(text)

    return {
        "fallback": reference_packet, "decode_message": bgp.decode_message,
        "negotiate": bgp.negotiate, "stream": tcpstream.BgpStream.resumed,
        "gap_text": bgpflow._gap_text, "resync_text": bgpflow._resync_text,
        "route_key": route_key, "default_ctx": bgp.negotiate(None, None),
        "object_array": _object_array,
        "Message": tcpstream.Message, "Gap": tcpstream.Gap,
        "FramingError": tcpstream.FramingError, "Resync": tcpstream.Resync,
        "PackedPrefixes": PackedPrefixes, "ipv6_str": ipv6_str,
        "well_known": dict(bgp_names.WELL_KNOWN_COMMUNITIES), "columns": columns,
        "route_text": route_text,
    }


def _columns() -> dict:
    from diag.decode.bgpflow import MESSAGE_ROW, ROUTE_ROW
    from diag.decode.frames import ARP_COLUMNS, PACKET_COLUMNS, TUNNEL_COLUMNS

    return {"packets": PACKET_COLUMNS, "tunnels": TUNNEL_COLUMNS, "arp": ARP_COLUMNS,
            "bgp_messages": MESSAGE_ROW, "bgp_routes": ROUTE_ROW}


class CoreChunk(RowChunk):
    """A chunk decoded by the core: ``rows`` holds the reference's rows of the frames it
    decoded (and the stream events), ``core`` what the core made (``Decoder.take()``)."""

    def __init__(self, rows: dict, info, core: dict, names: dict, feedback: dict) -> None:
        super().__init__(rows, None, info)
        self.core = core
        self.names = names
        self.feedback = feedback

    def columns(self, table: str, names: tuple[str, ...]) -> list[list]:
        raise TypeError("a compiled-core chunk: use to_tables() or CaptureSummary.add()")

    def tables_made(self) -> None:
        """The core's table columns are let go (the summary needs only the fold): the
        DataFrames made of them hold their own copies, and a chunk held beside its Tables kept
        both (~2.5 MB a chunk)."""
        if self.core.pop("tables", None) is not None:
            self.core["tables_made"] = True

    ordered = columns


def _decoder(core, options, tables: bool, fold: bool, names: dict, reassembler=None):
    from diag.decode.frames import PacketDecoder

    reference = PacketDecoder(options.bgp_ports, options.vxlan_ports, options.geneve_ports, names,
                              reassembler=reassembler)
    slow = _Slow(reference)
    dec = core.Decoder(options.bgp_ports, options.vxlan_ports, options.geneve_ports,
                       hooks(slow.packet, _columns()), tables, fold)
    reference.bgp = _CoreFlows(dec)
    return dec, reference, slow


def _names_list(names: dict) -> list:
    if not names:
        return []
    out = [None] * (max(names) + 1)
    for i, name in names.items():
        if i >= 0:
            out[i] = name
    return out


CHUNK_BLOCKS = 2          # blocks (reads of capture.READ_BLOCK) gathered into one chunk


def iter_core(path: str | Path, options, chunk_packets: int = 65536,
              tables: bool = True) -> Iterator[CoreChunk]:
    """:func:`diag.decode.iter_rows` by the compiled core (``tables=False``: no table columns,
    only what the summary folds).

    A chunk gathers up to ``CHUNK_BLOCKS`` blocks (each one read of the capture, or
    ``chunk_packets`` records of it), never more than ``chunk_packets`` frames. Each chunk
    costs a fixed part (taking the core's columns, a DataFrame of each table, the summary's
    fold of it) that one-block chunks of BGP-heavy traffic paid ~20 % for; its tables' memory
    grows with its bytes (~4 MB of table per MiB of such traffic), so the gathering stops at
    two. The routes fold block by block (as the reference's one-block chunks fold them: the
    summary's prefix sample is the same whatever the chunking, workers included).
    """
    from diag.decode import checked_blocks
    from diag.decode.capture import open_blocks

    core = load()
    if core is None:
        raise RuntimeError("the compiled decoder is not available")
    info, blocks = open_blocks(path, chunk_packets, arrays=False, scanner=core)
    names: dict[int, str | None] = {}
    dec, reference, slow = _decoder(core, options, tables, True, names)
    feedback = {"heads": (True, True)}
    ahead = checked_blocks(path, info, blocks, names)
    block = next(ahead, None)
    held_frames = held_blocks = 0          # in the chunk being gathered
    while block is not None:
        chunk = None
        with fewer_collections():          # not across the yield: that is the caller's time
            if len(block):
                dec.set_heads(*feedback["heads"])
                with no_gc():
                    dec.decode(block.buf, block.first_frame, block.offsets, block.caplens,
                               block.wirelens, block.ts, block.ifaces, block.linktypes,
                               block.flags, _names_list(names))
                reference.last_frame = block.first_frame + len(block) - 1
                reference.last_ts = float(block.ts[-1])
                held_frames += len(block)
            held_blocks += 1
            if block.damage is not None:
                reference.damaged(block.damage.frame, block.damage.reason)
                dec.append_rows("packets", reference.packets[-1:])
                slow.collect()
            block = next(ahead, None)
            if block is not None and (held_blocks >= CHUNK_BLOCKS
                                      or held_frames + len(block) > chunk_packets):
                with no_gc():
                    taken = dec.take()
                chunk = CoreChunk(slow.take(), info, taken, names, feedback)
                held_frames = held_blocks = 0
        if chunk is not None:
            yield chunk
    with fewer_collections():
        dec.finish(reference.last_frame, reference.last_ts)
        reference.finish_fragments()
        slow.collect()
        with no_gc():
            taken = dec.take()
        chunk = CoreChunk(slow.take(), info, taken, names, feedback)
    yield chunk


# --- tables -----------------------------------------------------------------------------------

def _column(col: tuple, name: str, integer_columns: frozenset):
    """A core column as the array the reference's rows give (``tables._array`` of the list)."""
    import numpy as np

    kind, n, data, mask = col
    if kind == "o":
        return data
    dtype = {"i": np.int64, "f": np.float64, "b": np.bool_}[kind]
    values = np.frombuffer(data, dtype=dtype) if n else np.empty(0, dtype=dtype)
    if mask is None:
        return values
    missing = np.frombuffer(mask, dtype=np.bool_)
    if kind == "i" and name in integer_columns:
        return ("masked", values, missing)
    out = values.astype(object)
    out[missing] = None
    return out


def _array_of(value, name: str):
    """The column array the reference's ``tables._series`` gives (numpy or IntegerArray)."""
    import pandas as pd

    from diag.decode.tables import INTEGER_COLUMNS, _series as reference_series

    if isinstance(value, tuple):      # views of the core's bytearrays, each one column's own
        _, values, missing = value
        return pd.arrays.IntegerArray(values, missing)
    if value.dtype.kind != "O" or name not in INTEGER_COLUMNS:
        return value      # what _series keeps (object arrays wrapped, not converted)
    out = reference_series(value, name)
    return out.to_numpy() if isinstance(out, pd.Series) else out


_INDEXES: dict = {}


def _new_frame(arrays: list, columns: tuple[str, ...], n: int):
    """A DataFrame of these column arrays, as ``pd.DataFrame(dict, copy=False)`` makes it
    (object columns stay object), built straight from its blocks: pandas' per-column checks
    cost more than decoding when a chunk has a few thousand rows and 59 columns. Falls back to
    the public constructor where pandas' internals differ."""
    import pandas as pd

    try:
        from pandas._libs.internals import BlockValuesRefs
        from pandas.core.internals.managers import create_block_manager_from_column_arrays

        names = _INDEXES.get(columns)
        if names is None:
            names = _INDEXES[columns] = pd.DataFrame(columns=list(columns)).columns
        # one array given for several columns (a chunk's all-missing route columns) is shared
        # the way pandas shares a view: its blocks hold one reference tracker, so a write to one
        # column copies it first (copy-on-write) and never shows in the others
        refs: list = [None] * len(arrays)
        first: dict[int, int] = {}
        for i, a in enumerate(arrays):
            j = first.setdefault(id(a), i)
            if j != i:
                if refs[j] is None:
                    refs[j] = BlockValuesRefs()
                refs[i] = refs[j]
        mgr = create_block_manager_from_column_arrays(
            arrays, [names, pd.RangeIndex(n)], consolidate=False, refs=refs)
        return pd.DataFrame._from_mgr(mgr, axes=mgr.axes)
    except (ImportError, AttributeError, TypeError):
        data = {c: (pd.Series(a, dtype=object, copy=True) if getattr(a, "dtype", None) == object
                    else a.copy()) for c, a in zip(columns, arrays)}
        return pd.DataFrame(data, columns=list(columns), copy=False)


def _empty(columns: tuple[str, ...]):
    """What ``tables.records_frame([], columns)`` makes: object columns, no rows."""
    import numpy as np

    return _new_frame([np.empty(0, dtype=object) for _ in columns], columns, 0)


def _frame(cols: dict, columns: tuple[str, ...], slow: list | None = None):
    """One table from the core's columns."""
    from diag.decode.tables import INTEGER_COLUMNS

    n = cols[columns[0]][1]
    if not n:
        return _empty(columns)                     # no rows: as the reference makes it
    return _new_frame([_array_of(_column(cols[c], c, INTEGER_COLUMNS), c) for c in columns],
                      columns, n)


def _routes(t: dict, columns: tuple[str, ...]):
    import numpy as np
    import pandas as pd

    from diag.decode.tables import INTEGER_COLUMNS, missing_int64

    if not t["route_counts"][1]:
        return _empty(columns)
    counts = np.frombuffer(t["route_counts"][2], dtype=np.int64)
    total = int(counts.sum())
    group = t["bgp_routes"]
    out = []
    missing_column: dict[bool, object] = {}      # one all-missing array per kind, shared
    for name in columns:
        if name == "prefix":
            out.append(_array_of(t["route_prefix"][2], name))
            continue
        if name == "path_id":
            kind, n, data, mask = t["route_path_id"]
            if kind == "o":       # a reference path id that is not an int: let pandas judge
                out.append(_array_of(data, name))
                continue
            values = np.frombuffer(data, dtype=np.int64) if n else np.empty(0, dtype=np.int64)
            missing = (np.frombuffer(mask, dtype=np.bool_) if mask is not None
                       else np.zeros(n, dtype=np.bool_))
            out.append(pd.arrays.IntegerArray(values, missing))
            continue
        kind, n, data, mask = group[name]
        if (kind == "o" and mask == 0) or (kind != "o" and mask is not None and
                                            n and bytes(mask).count(0) == 0):
            # a column no route of the chunk has (many: family and attribute columns; one
            # array for all of them, shared copy-on-write by _new_frame)
            integer = name in INTEGER_COLUMNS
            if integer not in missing_column:   # what tables._series makes of Nones
                missing_column[integer] = (missing_int64(total) if integer
                                           else np.empty(total, dtype=object))
            out.append(missing_column[integer])
            continue
        value = _column(group[name], name, INTEGER_COLUMNS)
        if isinstance(value, tuple):
            _, values, missing = value
            out.append(pd.arrays.IntegerArray(np.repeat(values, counts),
                                              np.repeat(missing, counts)))
        elif value.dtype.kind == "O" and name in INTEGER_COLUMNS and \
                isinstance(judged := _by_group(value, counts, name), pd.arrays.IntegerArray):
            out.append(judged)
        elif value.dtype.kind == "O":      # numpy.repeat, a reference count per group
            rows = np.empty(total, dtype=object)
            load().expand(value, t["route_counts"][2], rows)
            out.append(_array_of(rows, name))
        else:
            out.append(_array_of(np.repeat(value, counts), name))
    return _new_frame(out, columns, total)


def _by_group(value, counts, name: str):
    """An integer-named route column the core holds as objects (MED; any column a fallback row
    turned into objects), judged as the reference judges the rows (``tables._series``: Int64,
    or objects) but on one value per group that has rows, then repeated: the judgement is
    value by value, so the same; the rows' IntegerArray, or None when the values are not all
    integers."""
    import numpy as np
    import pandas as pd

    having = counts > 0
    judged = _array_of(value[having], name)
    if not isinstance(judged, pd.arrays.IntegerArray):
        return None
    return judged.take(np.repeat(np.arange(len(judged)), counts[having]))


def _records(records: list, columns: tuple[str, ...]):
    """What ``tables.records_frame`` makes of a few rows (the core's stream events and the
    reference's ICMP, fragment and LLDP rows): the same columns, built as _new_frame builds
    (the public constructor cost ~1 ms a chunk for a handful of rows)."""
    import pandas as pd

    from diag.decode.tables import _series as reference_series

    if not records:
        return _empty(columns)
    arrays = []
    for name, values in zip(columns, zip(*records)):
        out = reference_series(values, name)
        arrays.append(out.to_numpy() if isinstance(out, pd.Series) else out)
    return _new_frame(arrays, columns, len(records))


def core_tables(chunk: CoreChunk):
    """The :class:`diag.decode.Tables` of a core chunk (what the reference would build)."""
    from diag.decode import Tables, interfaces_frame
    from diag.decode.bgpflow import MESSAGE_ROW, ROUTE_ROW
    from diag.decode.frames import (ARP_COLUMNS, FRAGMENT_COLUMNS, ICMP_COLUMNS, PACKET_COLUMNS,
                                    STREAM_EVENT_COLUMNS, TUNNEL_COLUMNS)
    from diag.decode.lldp import LLDP_COLUMNS

    t = chunk.core.get("tables")
    if t is None and chunk.core.get("tables_made"):
        raise ValueError("this chunk's tables were made already (iter_decode keeps only what "
                         "the summary folds): call to_tables on the chunks of iter_rows")
    if t is None:
        raise ValueError("this chunk was decoded for the summary only (tables=False)")
    rows, info = chunk.rows, chunk.info
    events = chunk.core["stream_events"]
    return Tables(
        packets=_frame(t["packets"], PACKET_COLUMNS),
        bgp_messages=_frame(t["bgp_messages"], MESSAGE_ROW),
        bgp_routes=_routes(t, ROUTE_ROW),
        tunnels=_frame(t["tunnels"], TUNNEL_COLUMNS),
        arp=_frame(t["arp"], ARP_COLUMNS),
        stream_events=_records([tuple(r.get(c) for c in STREAM_EVENT_COLUMNS)
                                for r in events], STREAM_EVENT_COLUMNS),
        icmp=_records(rows["icmp"], ICMP_COLUMNS),
        fragments=_records(rows["fragments"], FRAGMENT_COLUMNS),
        lldp=_records(rows["lldp"], LLDP_COLUMNS),
        interfaces=interfaces_frame(info),
        info=info,
        rows=chunk,
    )


# --- the summary's fold -----------------------------------------------------------------------

def core_fold(chunk: CoreChunk, folder, bgp: bool = True, other: bool = True) -> dict:
    """:func:`diag.decode.summary.fold` of a core chunk: the core's folds and the reference's
    fold of the frames it decoded, added."""
    from diag.decode import summary as s

    folded = chunk.core["fold"]
    slow = RowChunk({**chunk.rows, "bgp_messages": [], "bgp_routes": [], "stream_events": []},
                    None, chunk.info)
    out: dict = {}
    if other:
        out["packets"] = _packets(folded["packets"], s._fold_packets(slow), chunk.names)
        out["tunnels"] = _tunnels(folded["tunnels"], slow)
        out["arp"] = arp_rows(folded, slow)
        out["icmp"] = s._fold_icmp(slow)
        out["fragments"] = s._fold_fragments(slow)
        out["lldp"] = s._fold_lldp(slow)
    if bgp:
        out["bgp"] = bgp_fold(chunk.core, folder)
        if folder is not None:
            chunk.feedback["heads"] = tuple(len(folder.sample[k]) < s.MAX_PREFIX_SAMPLE
                                            for k in ("announce", "withdraw"))
    return out


def arp_rows(folded: dict, slow: RowChunk) -> list[tuple]:
    """One chunk's ARP rows as the rule takes them (:func:`diag.decode.summary._fold_arp`), in
    frame order: the core's (``folded``, its fold) and those of the frames the reference decoded
    (``slow``)."""
    from diag.decode import summary as s

    arp = s._fold_arp(slow)
    fast = folded["arp"]
    if folded["arp_raw"]:        # encapsulated or QinQ ARP: its segment made in Python
        rule_row = s.arp_rule_row
        fast = [row if len(row) == 12 else rule_row(row[:13], row[13]) for row in fast]
    return sorted(fast + arp, key=lambda r: r[0]) if arp else fast


def _packets(fast: tuple, slow: tuple | None, names: dict) -> tuple | None:
    from diag.decode.summary import _interface_label, _num

    total, lo, hi, combos, otherhost, dst_macs = fast
    if not total:
        return slow
    by_app: Counter = Counter()
    by_l3: Counter = Counter()
    by_direction: Counter = Counter()
    by_interface: Counter = Counter()
    for app, l3, direction, iface, ifindex, n in combos:
        by_app[app or "other"] += n
        by_l3[str(l3)] += n
        if direction is not None:
            by_direction[direction] += n
            by_interface[(_interface_label(names.get(iface), ifindex, iface), direction)] += n
    if slow is None:
        return (total, _num(lo), _num(hi), by_app, by_l3, by_direction, by_interface, 0, [],
                otherhost, dst_macs)
    n2, lo2, hi2, app2, l3_2, dir2, if2, nbad, examples, otherhost2, dst_macs2 = slow
    return (total + n2, min(_num(lo), lo2), max(_num(hi), hi2), by_app + app2, by_l3 + l3_2,
            by_direction + dir2, by_interface + if2, nbad, examples, otherhost or otherhost2,
            dst_macs | dst_macs2)


def _tunnels(fast: list, slow: RowChunk) -> tuple | None:
    from diag.decode.summary import tunnel_fold

    kinds, vnis, srcs, dsts, dports, l3s, bad = slow.columns(
        "tunnels", ("type", "vni", "outer_src", "outer_dst", "outer_dport", "inner_l3",
                    "malformed"))
    if not fast and not kinds:
        return None
    groups: Counter = Counter(zip(kinds, vnis, srcs, dsts, dports, l3s))
    for kind, vni, src, dst, dport, l3, n in fast:
        groups[(kind, vni, src, dst, dport, l3)] += n
    return tunnel_fold(groups, sum(1 for b in bad if b is not None))


def bgp_fold(core: dict, folder) -> dict:
    """The BGP part of the fold from the core's folds (``_fold_bgp`` for a core chunk)."""
    from diag.decode.summary import fold_events, fold_route_key, sorted_nulls_last

    folded = core["fold"]
    sessions = folded["sessions"]
    messages = None
    if sessions:
        spans, bad, named = {}, Counter(), Counter()
        for session, (lo, hi, nbad, counts) in sessions.items():
            spans[session] = [lo, hi]
            if nbad:
                bad[session] = nbad
            for name, n in counts.items():
                named[(session, name)] = n
        messages = (spans, bad, named, folded["special"])
    routes = []
    for groups in folded["routes"]:        # block by block, as the reference's chunks fold
        for key in sorted_nulls_last(groups):
            session, family, action = key
            rows, keys, head, renewed = groups[key]
            if renewed:   # the core dropped the session's key set when it closed: may repeat
                folder.store(session, family)[0 if action == "announce" else 1].may_repeat()
            routes.append(fold_route_key(folder, session, family, action, rows, [keys],
                                         (lambda head=head: head or [])))
    if folded["routes"]:
        folder.spill_if_large()
        folder.compact_if_large()
    return {"messages": messages, "routes": routes, "events": fold_events(core["stream_events"])}
