"""Several processes for one capture's summary: what ``diag pcap FILE --workers N`` runs.

Contract: ``summarize(path, options, workers, chunk_packets, vectorize) -> dict`` returns exactly
what :class:`diag.decode.summary.CaptureSummary` makes of
``iter_rows(path, options, chunk_packets, vectorize)`` — the same dict, key order included —
using ``workers`` processes (``fork``). ``auto_workers(path)`` is the default: the usable cores
for a file of ``AUTO_BYTES`` or more, else 1 (a small capture starts faster in one process).

How, with the compiled core (:func:`_summarize_core`, one pass, nothing spooled): the parent reads
the file and finds its records once, into memory the workers share, and tells each worker where
every block lies (:mod:`diag.decode.sharedread`); worker 0 (:data:`READER`) runs in the parent
itself, between its reads (:class:`_Local`), the others are forked: ``N`` processes for ``N``
workers. Every worker walks every block; worker ``w`` folds the frames of the blocks the parent
deals it as it reads them (:func:`deal_block`: in turn, but by how far the workers lag; each
block's message names its owner) and reassembles the BGP connections it owns in every block
(the core deals each connection, when first seen, to the worker with the least load so far:
its segment bytes, the ARP worker's ARP rows, and the reader's bytes read for all; every worker
sees the same blocks and segments in the same order, so each makes the same choice). In
the others' blocks, a frame that cannot hold a BGP segment, ARP or a frame for the reference is
passed over after a check of its headers; the frames the core hands to the reference there go to a
shadow reference decoder that shares the IP reassembler and passes its BGP segments on. ARP is
paired in capture order by one worker (:func:`arp_worker`), which folds the ARP frames of every
block (the shadow's rows included), sends per block what the rule decided of replies and
responders, and tallies the unanswered requests itself (the parent gets the table at the end:
thousands of verdicts are not pickled block by block); each ARP row counts towards its load when
connections are dealt. The parent applies, block by block, the owner's frame fold, the
ARP worker's decisions and all workers' BGP folds merged
(:func:`diag.decode.summary.merge_bgp_folds`), as soon as every worker has sent the block's
items (so that little is left after the last block); the workers' pipes are widened so that a
worker need not wait for the parent's fold of an earlier block.

How with the reference decoder (also what :mod:`diag.decode.distributed` runs on Dask;
connections are independent: TCP reassembly and the OPEN context are per connection):

1. decode: every worker reads the file's record blocks (record boundaries and pcapng interface
   state come from the sequential read, which is cheap) and decodes the blocks ``i`` with
   ``i % N == w``: the vectorised pass and the per-packet decoder, with BGP TCP segments recorded
   instead of reassembled. It folds the non-BGP rows of each block
   (:func:`diag.decode.summary.fold`) and spools the block's BGP segments into one file, grouped
   by connection bucket (CRC of the connection's two endpoints). IP reassembly crosses blocks:
   every worker also feeds its reassembler the fragments of the other workers' blocks, through
   a shadow decoder whose rows are dropped (the frames that may hold one are found column-wise,
   :func:`diag.decode.batch.fragment_candidates`, then by a header walk), so each owner of a
   block completes the same datagrams as one process, at the same frames; the owner of the last
   block reports the datagrams still incomplete at the end.
2. BGP: the buckets are dealt to the workers by bytes; each reassembles and decodes the
   connections of its buckets block by block, in capture order, exactly as one process would, and
   folds their rows per block. Each stream event carries where it was raised (the frame of the
   segment, or the connection's first frame for the end-of-capture flush), which orders the
   events of several workers as one process raises them.
3. the parent applies the folds in block order as the workers stream them (one pipe message
   per block; the non-BGP folds during phase 1, then each block's BGP folds from every worker,
   merged by :func:`diag.decode.summary.merge_bgp_folds`); the summary's parts touch separate
   state, so this order gives one process's result, and nothing is held for the whole file.

Workers ignore SIGINT; on Ctrl-C, SIGTERM or any error the parent terminates them and removes
the spool directory. A worker's :class:`diag.errors.DiagError` is raised again in the parent.
"""
from __future__ import annotations

import copy
import os
import signal
import sys
import zlib
from collections import deque
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

BUCKETS = 64
BGP_TABLES = ("bgp_messages", "bgp_routes", "stream_events")     # made in phase 2
NON_BGP_TABLES = ("packets", "tunnels", "arp", "icmp", "fragments", "lldp",
                  "interfaces")                                       # made in phase 1
AUTO_BYTES = 32 << 20            # below this, one process: start-up and forking cost more
MAX_AUTO_WORKERS = 8


def arp_worker(workers: int) -> int:
    """The compiled path's worker that pairs the ARP of every block (every worker walks every
    block; pairing in one process spares the parent the rows): the last, which owns no more
    blocks than the others."""
    return workers - 1


def block_owner(i: int, workers: int) -> int:
    """The worker that decodes and folds the frames of block ``i`` (every worker walks it):
    the reference path's rule, and the compiled path's turn (:func:`deal_block`)."""
    return i % workers


READER = 0
"""The compiled path's worker that runs in the parent, between its reads of the file for all:
worker 0. The core charges it for what it reads (``READ_LOAD_DIV`` in dec.h), so connections go
to the others first."""

LAG_TAKE = 3                      # see deal_block


def deal_block(i: int, workers: int, lag: int) -> int:
    """The compiled path's owner of block ``i``, chosen by the parent as it reads (and sent to
    every worker with the block): in turn (:func:`block_owner`), except that the reader's own
    worker takes the block while the forked workers lag ``LAG_TAKE`` blocks or more behind the
    reading (``lag``: blocks read and not yet applied), and passes its turn on when they have
    caught up (``lag`` <= 1). Which worker folds a block's frames changes nothing in the
    summary; this spreads that work by how fast each core is going (on a shared machine, one
    core's speed moves)."""
    owner = block_owner(i, workers)
    if workers == 1:
        return owner
    if lag >= LAG_TAKE:
        return READER
    if lag <= 1 and owner == READER:
        return (READER + 1 + i // workers % (workers - 1)) % workers
    return owner


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))      # respects taskset / cgroup pinning
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def auto_workers(path: str | Path) -> int:
    """The default worker count for ``path``: all usable cores for a large file, else 1."""
    try:
        size = Path(path).stat().st_size
    except OSError:
        return 1                 # the decoder reports the problem
    if size < AUTO_BYTES:
        return 1
    return max(1, min(usable_cores(), MAX_AUTO_WORKERS))


def bucket_of(key: tuple) -> int:
    return zlib.crc32(repr(key).encode()) % BUCKETS


def _bucket(src: str, sport: int, dst: str, dport: int) -> int:
    """The spool bucket of a segment: both directions of a connection share one."""
    return bucket_of(_connection(src, sport, dst, dport))


def _connection(src: str, sport: int, dst: str, dport: int) -> tuple:
    a, b = (src, sport), (dst, dport)
    return (a, b) if a <= b else (b, a)          # as diag.decode.bgpflow.BgpFlows keys them


def summarize(path: str | Path, options=None, workers: int = 2, chunk_packets: int = 65536,
              vectorize: bool | None = None, decoder: str | None = None,
              progress: Callable[[int, int], None] | None = None) -> dict:
    """The summary of ``path`` decoded by ``workers`` processes (see the module docstring);
    ``decoder`` as for :func:`diag.decode.iter_rows` (the compiled core when it is built);
    ``progress(bytes_read, packets)`` after each block's packets are counted."""
    import shutil
    import tempfile

    from diag.decode import SMALL_CAPTURE_BYTES, DecodeOptions, use_compiled
    from diag.decode.capture import open_blocks
    from diag.decode.summary import CaptureSummary, merge_bgp_folds

    options = options or DecodeOptions()
    # an unusable file fails here, in this process, before any worker starts
    open_blocks(path, chunk_packets, arrays=False)[1].close()
    if use_compiled(vectorize, decoder):
        return _summarize_core(path, options, workers, chunk_packets, progress)
    if vectorize is None:
        try:
            vectorize = Path(path).stat().st_size >= SMALL_CAPTURE_BYTES
        except OSError:
            vectorize = False
    if vectorize:
        # imported once here rather than in every forked worker
        import diag.decode.batch  # noqa: F401
        import diag.decode.nlri  # noqa: F401
        import numpy  # noqa: F401
    summary = CaptureSummary()
    spool = Path(tempfile.mkdtemp(prefix="diag-pcap-"))
    previous = _on_sigterm_interrupt()
    try:
        # the parts of the summary are independent (packets/tunnels/ARP/ICMP vs BGP): the
        # non-BGP folds are applied in block order while the workers decode, the BGP folds later
        spools: list = []
        weight: dict[int, int] = {}
        with _Workers([(_decode_part, (path, options, chunk_packets, vectorize, w, workers,
                                      spool)) for w in range(workers)]) as decoders:
            ends: dict[int, dict] = {}
            i = 0
            while True:
                item = decoders.next(block_owner(i, workers))
                if "nblocks" in item:       # block i's owner has no block i: every block is done
                    ends[block_owner(i, workers)] = item
                    for other in range(workers):
                        if other not in ends:
                            ends[other] = decoders.next(other)
                    break
                summary.apply(item["fold"])
                if progress is not None:
                    progress(item["bytes"], summary.total)
                spools.append(item["spool"])
                for bucket, (_off, _len, nbytes) in item["spool"].items():
                    weight[bucket] = weight.get(bucket, 0) + nbytes
                i += 1
        end = ends[0]
        nblocks, last = end["nblocks"], end["last"]
        if nblocks != len(spools) or any("nblocks" not in e for e in ends.values()):
            raise RuntimeError(f"decode workers disagree: {nblocks} blocks, {len(spools)} decoded")
        owners = _deal(weight, workers)
        with _Workers([(_bgp_part, (owned, spools, spool, nblocks, last, False, options))
                       for owned in owners]) as bgp:
            for i in range(nblocks):
                summary.apply({"bgp": merge_bgp_folds([bgp.next(w) for w in range(len(owners))])})
            for w in range(len(owners)):
                summary.prefixes.stores.update(bgp.next(w))
    finally:
        shutil.rmtree(spool, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    summary.set_info(end["info"])
    return summary.result()


def _on_sigterm_interrupt():
    """SIGTERM (``kill PID``) ends the run as Ctrl-C does, so that the workers are stopped and the
    spool removed; returns the previous handler (None when not in the main thread)."""
    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:               # not the main thread: leave signals alone
        return None


def _deal(weight: dict[int, int], workers: int) -> list[set[int]]:
    """Buckets to workers, heaviest first to the least loaded (empty owners dropped)."""
    owners: list[set[int]] = [set() for _ in range(workers)]
    load = [0] * workers
    for bucket in sorted(weight, key=lambda b: (-weight[b], b)):
        w = load.index(min(load))
        owners[w].add(bucket)
        load[w] += weight[bucket]
    return [o for o in owners if o]


class _Recorder:
    """Stands in for :class:`diag.decode.bgpflow.BgpFlows` in a decode worker: keeps every BGP
    segment (in the order the decoder meets them, i.e. frame order), by connection bucket."""

    def __init__(self) -> None:
        self.buckets: dict[int, list] = {}
        self.count = 0
        self.on_message = self.on_route = self.on_event = None   # PacketDecoder.take sets them

    def segment(self, src: str, sport: int, dst: str, dport: int, seq: int, flags: int,
                payload: bytes, frame: int, ts: float, depth: int, options: bytes = b"") -> None:
        bucket = _bucket(src, sport, dst, dport)
        segs = self.buckets.get(bucket)
        if segs is None:
            segs = self.buckets[bucket] = []
        segs.append((self.count, src, sport, dst, dport, seq, flags, payload, frame, ts, depth,
                     options))
        self.count += 1

    def spool(self, spool: Path, block: int) -> dict[int, tuple[int, int, int]]:
        """Write this block's segments; returns bucket -> (offset, length, payload bytes)."""
        import pickle

        index: dict[int, tuple[int, int, int]] = {}
        if not self.buckets:
            return index
        with open(spool / f"{block}.seg", "wb") as fh:
            for bucket, segs in self.buckets.items():
                data = pickle.dumps(segs, protocol=pickle.HIGHEST_PROTOCOL)
                index[bucket] = (fh.tell(), len(data), sum(len(s[7]) + 64 for s in segs))
                fh.write(data)
        self.buckets = {}
        return index


def _decode_part(path, options, chunk_packets: int, vectorize: bool, index: int, count: int,
                 spool: Path, sink: Callable | None = None):
    """Phase 1 in worker ``index`` of ``count``: decode its blocks; yields per block its non-BGP
    fold and spool index, then ``{"nblocks", "last", "info"}``. With ``sink`` (the table export
    of :mod:`diag.decode.distributed`), ``sink(block, tables, NON_BGP_TABLES)`` gets each of its
    blocks' non-BGP tables; block 0's after block 1 is read, as ``iter_rows`` yields it (the
    interfaces a pcapng file declares there are in its tables)."""
    from diag.decode import checked_blocks, decode_block, to_tables
    from diag.decode.capture import open_blocks
    from diag.decode.frames import PacketDecoder
    from diag.decode.rows import RowChunk
    from diag.decode.summary import fold

    info, blocks = open_blocks(path, chunk_packets, arrays=vectorize)
    names: dict[int, str | None] = {}
    decoder = PacketDecoder(options.bgp_ports, options.vxlan_ports, options.geneve_ports, names)
    recorder = decoder.bgp = _Recorder()
    shadow = PacketDecoder(options.bgp_ports, options.vxlan_ports, options.geneve_ports, names,
                           reassembler=decoder.reassembler)
    shadow.bgp = _Recorder()
    nblocks, last = 0, (0, 0.0)
    first = None                          # block 0's rows, held for the sink until block 1
    ahead = enumerate(checked_blocks(path, info, blocks, names))
    item = next(ahead, None)
    while item is not None:
        i, block = item
        item = next(ahead, None)            # one block ahead: is this one the last?
        nblocks = i + 1
        if first is not None:
            sink(0, to_tables(first), NON_BGP_TABLES)
            first = None
        if len(block):
            last = (block.first_frame + len(block) - 1, float(block.ts[-1]))
        if block_owner(i, count) != index:
            _feed_fragments(shadow, block, vectorize)
            continue
        fast = decode_block(decoder, block, vectorize)
        # as iter_rows: a damaged record is reported with the time of the last good one
        decoder.last_frame, decoder.last_ts = last
        if block.damage is not None:
            decoder.damaged(block.damage.frame, block.damage.reason)
        if item is None:
            decoder.finish_fragments()      # end of capture, as iter_rows's finish()
        chunk = RowChunk(decoder.take(), fast, info)
        if sink is not None:
            if i == 0:
                first = chunk
            else:
                sink(i, to_tables(chunk), NON_BGP_TABLES)
        yield {"fold": fold(chunk, None, bgp=False), "spool": recorder.spool(spool, i),
               "bytes": info.bytes_read}
    if first is not None:
        sink(0, to_tables(first), NON_BGP_TABLES)
    yield {"nblocks": nblocks, "last": last, "info": info}


def _feed_fragments(shadow, block, vectorize: bool) -> None:
    """Another worker's block: only its IP fragments, through the shadow decoder (which shares
    the reassembler), in frame order; everything else the shadow makes is dropped."""
    if vectorize and len(block):
        from diag.decode.batch import fragment_candidates

        candidates = fragment_candidates(block, shadow.vxlan_ports | shadow.geneve_ports).tolist()
    else:
        candidates = range(len(block))
    buf, offs, caps, lts = block.buf, block.offsets, block.caplens, block.linktypes
    may_hold, packet = shadow.may_hold_fragment, shadow.packet
    for i in candidates:
        data = buf[int(offs[i]):int(offs[i]) + int(caps[i])]
        if may_hold(int(lts[i]), data):
            packet(block.first_frame + i, float(block.ts[i]), int(block.ifaces[i]), int(lts[i]),
                   data, int(block.wirelens[i]), int(block.flags[i]))
    shadow.take()
    shadow.bgp.buckets = {}



def _owned_segments(spool: Path, block: int, locations: dict | None, owned) -> list:
    """Block ``block``'s spooled BGP segments of the connections this worker owns, in frame
    order (a block's segments are spooled per bucket)."""
    import pickle
    from operator import itemgetter

    segs: list = []
    mine = [loc for bucket, loc in (locations or {}).items() if bucket in owned]
    if mine:
        with open(spool / f"{block}.seg", "rb") as fh:
            for off, length, _nbytes in mine:
                fh.seek(off)
                segs.extend(pickle.loads(fh.read(length)))
        if len(mine) > 1:
            segs.sort(key=itemgetter(0))
    return segs

def _bgp_part(owned: set[int], spools: list, spool: Path, nblocks: int,
              last: tuple[int, float], keep_rows: bool = False, options=None) -> dict:
    """Phase 2: reassemble and decode the connections of the ``owned`` buckets, block by block;
    yields each block's BGP fold (or None; the last block with the end-of-capture flush), then
    the distinct-prefix stores of its sessions. With ``keep_rows`` each block's item is
    ``(fold, rows)``: the rows of ``BGP_TABLES`` as ``(order, row)`` pairs, ``order`` where one
    process would have made the row (see :func:`merge_bgp_rows`)."""
    from diag.decode.bgpflow import BgpFlows
    from diag.decode.rows import RowChunk
    from diag.decode.summary import PrefixFolder, fold

    folder = PrefixFolder()
    messages: list = []
    routes: list = []
    events: list = []
    raised: list = []                  # where each event of ``events`` was raised
    where = [(0, 0)]

    def on_event(row: dict) -> None:
        events.append(row)
        raised.append((*where[0], len(raised)))

    made: list = []                    # keep_rows: where each message and route was made

    def on_message(row) -> None:
        messages.append(row)
        made.append(("m", (*where[0], len(made))))

    def on_route(row) -> None:
        routes.append(row)
        made.append(("r", (*where[0], len(made))))

    flows = BgpFlows(on_message if keep_rows else messages.append,
                     on_route if keep_rows else routes.append, on_event)
    first_seen: dict[tuple, int] = {}
    for i in range(nblocks):
        segs = _owned_segments(spool, i, spools[i], owned)
        segment = flows.segment
        for _n, src, sport, dst, dport, seq, flags, payload, frame, ts, depth, options in segs:
            key = _connection(src, sport, dst, dport)
            if key not in first_seen:
                first_seen[key] = frame
            where[0] = (0, frame)
            segment(src, sport, dst, dport, seq, flags, payload, frame, ts, depth, options)
        if i == nblocks - 1:
            # BgpFlows.flush, one connection at a time, in the order one process would flush them
            for key, conn in flows.connections.items():
                where[0] = (1, first_seen[key])
                flows._flush_connection(conn, *last)
        f = None
        kept = None
        if messages or routes or events:
            rows = {"packets": [], "tunnels": [], "arp": [], "icmp": [], "bgp_messages": messages,
                    "bgp_routes": routes, "stream_events": events}
            f = fold(RowChunk(rows, None, None), folder, other=False)["bgp"]
            f["events"] = [(order, *rest) for order, (_i, *rest) in zip(raised, f["events"])]
            if keep_rows:
                orders = {"m": [], "r": []}
                for kind, order in made:
                    orders[kind].append(order)
                kept = {"bgp_messages": list(zip(orders["m"], messages)),
                        "bgp_routes": list(zip(orders["r"], routes)),
                        "stream_events": list(zip(raised, events))}
            messages, routes, events, raised, made = [], [], [], [], []
            if keep_rows:
                flows.on_message, flows.on_route = on_message, on_route
            else:
                flows.on_message, flows.on_route = messages.append, routes.append
        yield (f, kept) if keep_rows else f
    yield folder.stores


# --- the compiled core: one pass, connections owned ---------------------------------------------

def _summarize_core(path, options, workers: int, chunk_packets: int,
                    progress: Callable[[int, int], None] | None) -> dict:
    """:func:`summarize` by the compiled core, in one pass: the parent reads the file once,
    into memory the workers share (:mod:`diag.decode.sharedread`), tells every forked worker
    where each block lies and runs worker :data:`READER` itself between its reads; every
    worker walks every block; worker ``w`` folds the frames of the blocks dealt to it
    (:func:`deal_block`, named in each block's message) and reassembles the BGP connections it
    owns in every block (the core deals each connection, when first seen, to the worker with
    the least load so far: every worker sees the same segments, so makes the same choice). The
    parent applies block ``i``'s frame fold from its owner and the BGP folds of all workers,
    merged, in block order. Nothing is spooled."""
    from diag.decode import checked_blocks
    from diag.decode.capture import open_blocks
    from diag.decode.core import load
    from diag.decode.gcpolicy import fewer_collections
    from diag.decode.sharedread import Ring
    from diag.decode.summary import CaptureSummary, merge_bgp_folds

    summary = CaptureSummary()
    with ExitStack() as cleanup:
        ring = Ring(max_packets=chunk_packets)
        cleanup.callback(ring.close)
        info, blocks = open_blocks(path, chunk_packets, arrays=False, scanner=load(), ring=ring)
        cleanup.callback(blocks.close)
        others = [w for w in range(workers) if w != READER]      # forked, in this order
        inboxes = _Inboxes(len(others))
        cleanup.callback(inboxes.close)
        previous = _on_sigterm_interrupt()
        if previous is not None:
            cleanup.callback(signal.signal, signal.SIGTERM, previous)
        cleanup.enter_context(fewer_collections())
        children = cleanup.enter_context(_Workers([
            (_core_part, (path, options, w, workers, ring, info, partial(inboxes.messages, k)))
            for k, w in enumerate(others)]))
        inboxes.forked()
        # the reader's own worker gets what a forked one gets: the reading as it is now
        own_info = copy.deepcopy(info)
        local = _Local(lambda messages: _core_part(path, options, READER, workers, ring,
                                                   own_info, lambda: messages, True))
        cleanup.callback(local.close)
        collected = 0

        def next_item(w: int):
            return local.next() if w == READER else children.next(others.index(w))

        def collect() -> None:
            """The oldest block's items from every worker, applied (``ring.wait``)."""
            nonlocal collected
            items = [next_item(w) for w in range(workers)]
            if "nblocks" in items[0]:
                raise RuntimeError(f"decode workers ended before block {collected}")
            owner = items[owners.popleft()]
            summary.apply(owner["fold"])
            summary.arp_decided(items[arp_worker(workers)]["arp"])
            summary.apply({"bgp": merge_bgp_folds([item["bgp"] for item in items])})
            if progress is not None:
                progress(owner["bytes"], summary.total)
            ring.done(collected)
            collected += 1

        ring.wait = collect
        published = 0
        owners: deque = deque()          # of the blocks read and not yet applied
        for i, block in enumerate(checked_blocks(path, info, blocks, {})):
            owners.append(deal_block(i, workers, i - collected))
            message = (*ring.publish(i, block, info), owners[-1])
            inboxes.tell(children, message)
            local.tell(message)
            published = i + 1
            # what the workers have done is applied now, not when a slot is wanted: the serial
            # tail after the last block is then short
            while local.items and children.ready():
                collect()
        inboxes.tell(children, ("end",))
        local.tell(("end",))
        while collected < published:
            collect()
        items = [next_item(w) for w in range(workers)]
        if any(item.get("nblocks") != published for item in items):
            raise RuntimeError(f"decode workers disagree: {published} blocks read, "
                               f"{[item.get('nblocks') for item in items]} decoded")
        for item in items:
            summary.prefixes.stores.update(item["stores"])
        pairer = items[arp_worker(workers)]
        summary.arp_ended(pairer["arp_end"], pairer["arp_tally"])
    summary.set_info(info)
    return summary.result()


class _Local:
    """Worker 0 of the compiled path, run in the parent between its reads (``make(messages)``
    is its generator): it decodes block ``i`` once block ``i + 1``'s message (or the end) is
    here, as a forked worker does; its items wait here until the parent collects them."""

    def __init__(self, make) -> None:
        self.queue: deque = deque()
        self.items: deque = deque()
        self.part = make(self._messages())
        self.needs = 2                      # its first step reads two messages
        self.done = False
        self.error: Exception | None = None

    def _messages(self) -> Iterator[tuple]:
        while True:
            if not self.queue:
                raise RuntimeError("the reader's worker ran ahead of the reading")
            message = self.queue.popleft()
            yield message
            if message[0] == "end":
                return

    def tell(self, message: tuple) -> None:
        self.queue.append(message)
        if message[0] == "end":
            while not self.done:
                self._step()
        elif len(self.queue) >= self.needs and not self.done:
            self._step()

    def _step(self) -> None:
        try:
            item = next(self.part)
        except Exception as err:  # noqa: BLE001 - raised by next(), in block order
            # as a forked worker's error reaches the parent after its items of the blocks
            # before (another worker's error in an earlier block is the one reported)
            self.error, self.done = err, True
            return
        self.needs = 1
        self.done = "nblocks" in item
        self.items.append(item)

    def next(self):
        if not self.items:
            if self.error is not None:
                raise self.error
            raise RuntimeError("the reader's worker has no item ready")
        return self.items.popleft()

    def close(self) -> None:
        self.part.close()


class _Inboxes:
    """The parent's messages to the compiled path's workers: one one-way pipe per worker
    (multiprocessing's, as the workers' own), made before the fork. The messages are small
    (where a block lies), and the ring keeps at most its slot count of blocks unread, so the
    parent's writes never wait on a worker that waits on the parent."""

    def __init__(self, workers: int) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self.pipes = [ctx.Pipe(duplex=False) for _ in range(workers)]     # (recv, send)
        self.outs: list = []

    def forked(self) -> None:
        """In the parent once the workers run: their ends closed here."""
        for recv, send in self.pipes:
            recv.close()
            self.outs.append(send)
        self.pipes = []

    def tell(self, parts: "_Workers", message: tuple) -> None:
        import pickle

        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)     # once for all
        for w, out in enumerate(self.outs):
            try:
                out.send_bytes(data)
            except BrokenPipeError:
                while True:                # the worker is gone: its error (or death) raised
                    parts.next(w)

    def messages(self, w: int) -> Iterator[tuple]:
        """In worker ``w``: the other ends closed (the parent's: its death ends the wait),
        then its messages until the end."""
        import pickle

        for i, (recv, send) in enumerate(self.pipes):
            send.close()
            if i != w:
                recv.close()
        inbox = self.pipes[w][0]
        while True:
            try:
                message = pickle.loads(inbox.recv_bytes())
            except EOFError:
                raise RuntimeError("the parent process went away") from None
            yield message
            if message[0] == "end":
                return

    def close(self) -> None:
        for recv, send in self.pipes:
            recv.close()
            send.close()
        self.pipes = []
        for out in self.outs:
            out.close()
        self.outs = []


def _core_part(path, options, index: int, count: int, ring, info, messages: Callable,
               in_parent: bool = False):
    """Worker ``index`` of ``count`` (see :func:`_summarize_core`): per block ``{"fold": its
    frames' fold or None, "bgp": the BGP fold of its connections or None, "arp", "bytes"}``,
    then ``{"nblocks", "info", "stores", "arp_end", "arp_tally"}``. The blocks are the parent's
    reading (``ring``, where the messages of ``messages()`` say they lie, each with the worker
    that folds the block's frames, last); ``in_parent``: this is the reader's worker, run in the
    parent (its garbage collection is the parent's). The frames of another worker's block
    that the core hands to the reference go to a shadow reference decoder (its rows dropped):
    their BGP segments reach this worker's connections, and its IP reassembler, shared with the
    reference of the worker's own blocks, completes every datagram at the frame one process
    would."""
    from diag.decode.core import (CoreChunk, _decoder, _names_list, arp_rows, bgp_fold,
                                  core_fold, load)
    from diag.decode.gcpolicy import fewer_collections, no_gc
    from diag.decode.rows import RowChunk
    from diag.decode.sharedread import fed_blocks
    from diag.decode.summary import (MAX_PREFIX_SAMPLE, PrefixFolder, arp_rule, arp_rule_end,
                                     tally_unanswered)

    if not in_parent:
        fewer_collections.for_this_process()       # this process only decodes
    core = load()
    names: dict[int, str | None] = {}
    dec, reference, slow = _decoder(core, options, False, True, names)
    pairs_arp = index == arp_worker(count)
    dec.own(index, count, arp_worker(count), READER)
    rule = arp_rule() if pairs_arp else None
    tally: dict[str, dict] = {}               # the unanswered requests, kept here (see below)
    shadow = _shadow(dec, reference, options, names)
    folder = PrefixFolder()
    feedback = {"heads": (False, False)}
    nblocks, last = 0, (0, 0.0)
    owners: deque = deque()                   # of the blocks received, from their messages

    def blocks_messages() -> Iterator[tuple]:
        for message in messages():
            if message[0] == "block":
                owners.append(message[-1])
                message = message[:-1]
            yield message

    ahead = enumerate(fed_blocks(ring, blocks_messages(), info, names, path))
    item = next(ahead, None)
    while item is not None:
        i, block = item
        nblocks = i + 1
        mine = owners.popleft() == index
        shadowed = None                       # the shadow's rows of another worker's block
        if len(block):
            last = (block.first_frame + len(block) - 1, float(block.ts[-1]))
            dec.set_heads(*(len(folder.sample[k]) < MAX_PREFIX_SAMPLE
                            for k in ("announce", "withdraw")))
            with no_gc():
                shadowed = _walk(dec, block, _names_list(names), None if mine else shadow)
        if mine:
            reference.last_frame, reference.last_ts = last
            if block.damage is not None:
                reference.damaged(block.damage.frame, block.damage.reason)
                slow.collect()
        item = next(ahead, None)             # one block ahead: is this one the last?
        if item is None:
            dec.finish(*last)                 # this worker's connections, flushed
            if mine:
                reference.finish_fragments()  # the datagrams still incomplete
                slow.collect()
        with no_gc():
            taken = dec.take()
        fold = arp = None
        if mine:
            fold = core_fold(CoreChunk(slow.take(), info, taken, names, feedback), None,
                             bgp=False)
            rows, fold["arp"] = fold["arp"], []          # paired by the ARP worker
        elif pairs_arp:
            rows = arp_rows(taken["fold"], RowChunk(shadowed or {"arp": [], "tunnels": []},
                                                    None, info))
        if pairs_arp:
            # the unanswered requests (thousands in a capture of unanswered ARP) tallied here:
            # the parent gets the table at the end instead of every request's verdict
            unanswered, responders = rule.add(rows)
            for v in unanswered:
                tally_unanswered(tally, v)
            arp = ((), responders)
        bgp = None
        if taken["fold"]["sessions"] or taken["fold"]["routes"] or taken["stream_events"]:
            bgp = bgp_fold(taken, folder)
            bgp["events"] = [(tuple(order), *rest)
                             for order, (_i, *rest) in zip(taken["raised"], bgp["events"])]
        yield {"fold": fold, "bgp": bgp, "arp": arp, "bytes": info.bytes_read}
    arp_end = None
    if pairs_arp:
        waiting, *rest = arp_rule_end(rule)
        for v in waiting:
            tally_unanswered(tally, v)
        arp_end = ((), *rest)
    yield {"nblocks": nblocks, "info": info, "stores": folder.stores, "arp_end": arp_end,
           "arp_tally": tally if pairs_arp else None}


def _shadow(dec, reference, options, names: dict):
    """The reference decoder of the frames the core hands over in other workers' blocks: its
    BGP segments go to ``dec`` (which keeps those of its connections), its IP reassembler is
    ``reference``'s (a datagram completes at the frame one process completes it)."""
    from diag.decode.core import _CoreFlows
    from diag.decode.frames import PacketDecoder

    shadow = PacketDecoder(options.bgp_ports, options.vxlan_ports, options.geneve_ports, names,
                           reassembler=reference.reassembler)
    shadow.bgp = _CoreFlows(dec)
    return shadow


def _walk(dec, block, names: list, shadow) -> dict | None:
    """One block through the core: decoded and folded (``shadow`` None: this worker's block),
    or walked for the BGP segments of this worker's connections (and, by the ARP worker, its
    ARP frames); then the shadow's rows of the block (the frames the reference decoded)."""
    dec.decode(block.buf, block.first_frame, block.offsets, block.caplens, block.wirelens,
               block.ts, block.ifaces, block.linktypes, block.flags, names,
               None if shadow is None else shadow.packet)
    return None if shadow is None else shadow.take()


def merge_bgp_rows(parts: list) -> dict:
    """One block's BGP rows from workers owning disjoint connections (``keep_rows`` items of
    :func:`_bgp_part`), in the order one process makes them: by where each row was made (the
    frame of the segment being read, the end-of-capture flush after every segment, in the order
    of the connections' first frames), a frame belonging to one connection."""
    out = {}
    for name in BGP_TABLES:
        pairs = [pair for part in parts if part for pair in part[name]]
        pairs.sort(key=lambda pair: pair[0])
        out[name] = [row for _order, row in pairs]
    return out


# --- processes ------------------------------------------------------------------------------

def _child(send, fn: Callable, args: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)       # Ctrl-C is the parent's to handle
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})   # blocked while forking
    from diag.errors import DiagError, EnvironmentProblem

    try:
        try:
            for item in fn(*args):
                send.send(("item", item))
            out = ("done", None)
        except DiagError as err:
            out = ("diag", (type(err), err.message, err.hint))
        except OSError as err:          # the spool directory: disk full, no /tmp, ...
            out = ("diag", (EnvironmentProblem, f"decode worker: {err}",
                            "free space in $TMPDIR, or decode in one process: --workers 1"))
        except BaseException as err:  # noqa: BLE001 - reported by the parent
            out = ("error", f"{type(err).__name__}: {err}")
        send.send(out)
    finally:
        # skip the interpreter's exit: the parent's buffered stdout must not be flushed twice
        os._exit(0)


PIPE_BYTES = 1 << 20


def _widen(conn) -> None:
    """A worker's pipe holds up to ``PIPE_BYTES`` (Linux's default ceiling for unprivileged
    processes): a worker goes on decoding while the parent folds the blocks it sent earlier,
    instead of waiting for the parent to read each one (a few blocks' items fit)."""
    import fcntl

    try:
        fcntl.fcntl(conn.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except OSError:
        pass                     # another system or a lower limit: the default pipe works


class _Workers:
    """Each job ``fn(*args)`` (a generator) in its own forked process; ``next(w)`` is the next
    item job ``w`` yielded. Leaving the ``with`` block (done, an error, Ctrl-C) terminates and
    reaps every worker."""

    def __init__(self, jobs: list[tuple[Callable, tuple]]) -> None:
        self.jobs = jobs
        self.procs: list = []

    def __enter__(self) -> "_Workers":
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        sys.stdout.flush()
        sys.stderr.flush()
        # the workers are forked with SIGTERM's default action: the parent's handler (SIGTERM
        # ends the run as Ctrl-C does) raised KeyboardInterrupt in a worker that __exit__
        # terminated while it was still starting, printing a traceback beside the one-line error.
        # SIGTERM is blocked meanwhile, so one that arrives now reaches the parent's handler
        # once it is back (and a worker's default action once _child unblocks it)
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
        except ValueError:               # not the main thread: nothing was installed here
            previous = None
        try:
            for fn, args in self.jobs:
                recv, send = ctx.Pipe(duplex=False)
                _widen(recv)
                proc = ctx.Process(target=_child, args=(send, fn, args), daemon=True)
                proc.start()
                send.close()
                self.procs.append((proc, recv))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return self

    def ready(self) -> bool:
        """Every worker has an item waiting (or has ended)."""
        return all(recv.poll() for _proc, recv in self.procs)

    def next(self, w: int):
        proc, recv = self.procs[w]
        try:
            status, payload = recv.recv()
        except EOFError:
            proc.join()
            raise RuntimeError(f"decode worker {proc.pid} died (exit status {proc.exitcode})") \
                from None
        if status == "item":
            return payload
        if status == "diag":
            cls, message, hint = payload
            raise cls(message, hint=hint)
        if status == "done":
            raise RuntimeError(f"decode worker {proc.pid} ended early")
        raise RuntimeError(f"decode worker failed: {payload}")

    def __exit__(self, *_exc) -> None:
        for proc, _recv in self.procs:
            if proc.is_alive():
                proc.terminate()
        for proc, recv in self.procs:
            proc.join()
            recv.close()
