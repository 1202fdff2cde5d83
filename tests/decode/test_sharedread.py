"""The parent's one read shared with the workers (``diag pcap --workers N``, compiled core).

Oracle: the one-process summary (JSON text, key order included), as in test_parallel.py, on files
that make the shared ring do all it does: many reads, so that every slot is written again many
times (the read block made small); records longer than a slot (the worker reads those buffers from
the file; a file cut short meanwhile is a clear error); a pcapng file declaring thousands of
interfaces, some after packets (lists too long for a message go through a file, removed at the
end). The ring itself, driven by hand: no slot is handed out again before every worker is past the
blocks in it. A file that grows while read: the workers decode what the parent read. A worker whose
parent is killed does not stay behind.
"""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diag.decode import capture, use_compiled
from diag.decode.capture import Block, CaptureInfo
from diag.decode.sharedread import Ring
from tests.decode.test_parallel import _children, _gone, _load_generator, _one_process, _workers

ROOT = Path(__file__).resolve().parents[2]
needs_core = pytest.mark.skipif(not use_compiled(), reason="the compiled core is not built")


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sharedread") / "mix.pcap"
    _load_generator().generate(6000, path, seed=11)
    return path


def _records(path: Path) -> list[tuple]:
    info, records = capture.open_capture(path)
    return [r for r in records if not isinstance(r, capture.Damage)]


@needs_core
@pytest.mark.parametrize("workers,chunk", [(2, 50), (3, 4096)])
def test_every_slot_written_again_many_times(mix, monkeypatch, workers, chunk):
    monkeypatch.setattr(capture, "READ_BLOCK", 16 << 10)     # ~120 reads of this file
    reads = []
    take = Ring.take
    monkeypatch.setattr(Ring, "take", lambda self, size: reads.append(size) or take(self, size))
    assert _workers(mix, workers, chunk) == _one_process(mix, chunk)
    assert len(reads) > 100


def _with_long_records(mix: Path, out: Path) -> Path:
    """1,500 of ``mix``'s records, every 300th followed by 100 kB (of padding)."""
    records = _records(mix)[:1500]
    with open(out, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 1 << 20, 1))
        for n, (_frame, ts, _iface, _lt, data, wirelen, _flags) in enumerate(records):
            if n % 300 == 150:
                data = data + bytes(100_000)
            sec = int(ts)
            fh.write(struct.pack("<IIII", sec, int(round((ts - sec) * 1e6)), len(data),
                                 max(wirelen, len(data))))
            fh.write(data)
    return out


@needs_core
def test_records_longer_than_a_slot_are_read_from_the_file(mix, tmp_path, monkeypatch):
    """Buffers the ring cannot hold stay private in the parent; the workers read them."""
    big = _with_long_records(mix, tmp_path / "big.pcap")
    monkeypatch.setattr(capture, "READ_BLOCK", 32 << 10)     # a slot holds 96 kB
    private = []
    note = Ring.note
    monkeypatch.setattr(Ring, "note", lambda self, slot, start: private.append(slot is None)
                        or note(self, slot, start))
    assert _workers(big, 2, 64) == _one_process(big, 64)
    assert sum(private) >= 5 and not all(private)


@needs_core
def test_a_file_cut_short_before_a_worker_reads_it_is_a_clear_error(mix, tmp_path,
                                                                     monkeypatch):
    """A buffer the workers read from the file is gone (the file truncated after the parent
    read it): the run ends with UnusableInput saying so, not a worker's traceback."""
    from diag.errors import UnusableInput

    big = _with_long_records(mix, tmp_path / "big.pcap")
    monkeypatch.setattr(capture, "READ_BLOCK", 32 << 10)
    publish = Ring.publish

    def truncate_after_a_private_buffer(self, index, block, info):
        message = publish(self, index, block, info)
        if self.last[0] is None:
            os.truncate(big, self.last[1])
        return message

    monkeypatch.setattr(Ring, "publish", truncate_after_a_private_buffer)
    with pytest.raises(UnusableInput, match="shrank while it was read"):
        _workers(big, 2, 64)


def _pcapng_with_many_interfaces(src: Path, out: Path, first: int, later: int) -> None:
    """``src``'s packets as pcapng: ``first`` interfaces declared up front, ``later`` more
    after a third of the packets; each packet on one of those declared so far, most with a
    direction (epb_flags)."""
    def block(btype: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        n = len(body) + 12
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

    def idb(i: int) -> bytes:
        name = f"veth{i:05d}".encode()
        opt = struct.pack("<HH", 2, len(name)) + name + bytes(-len(name) % 4)
        return block(1, struct.pack("<HHI", 1, 0, 0) + opt + struct.pack("<HH", 0, 0))

    records = _records(src)
    with open(out, "wb") as fh:
        fh.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        declared = 0
        for i in range(first):
            fh.write(idb(i))
        declared = first
        for n, (_frame, ts, _iface, _lt, data, wirelen, _flags) in enumerate(records):
            if n == len(records) // 3:
                for i in range(first, first + later):
                    fh.write(idb(i))
                declared += later
            micros = int(round(ts * 1e6))
            # epb_flags with a direction on most packets: the summary then names interfaces
            opts = (struct.pack("<HHI", 2, 4, 1 + n % 2) + struct.pack("<HH", 0, 0)
                    if n % 3 else b"")
            fh.write(block(6, struct.pack("<IIIII", (n * 7919) % declared, micros >> 32,
                                          micros & 0xFFFFFFFF, len(data), wirelen)
                           + data + bytes(-len(data) % 4) + opts))


@needs_core
def test_pcapng_with_thousands_of_interfaces(mix, tmp_path, monkeypatch):
    path = tmp_path / "many.pcapng"
    _pcapng_with_many_interfaces(mix, path, 1200, 1800)
    spilled = []
    mkdtemp = __import__("tempfile").mkdtemp
    monkeypatch.setattr("tempfile.mkdtemp", lambda **kw: spilled.append(mkdtemp(**kw))
                        or spilled[-1])
    monkeypatch.setattr(capture, "READ_BLOCK", 64 << 10)
    want = _one_process(path, 500)
    interfaces = json.loads(want)["interfaces"]
    assert [i["name"] for i in interfaces] == [f"veth{i:05d}" for i in range(3000)]
    assert _workers(path, 2, 500) == want
    assert spilled, "no interface list was long enough to go through a file"
    assert not any(os.path.exists(d) for d in spilled)


def _fake_block(n: int) -> Block:
    cols = [memoryview(bytes(8 * n)).cast("d" if k == 3 else "q") for k in range(7)]
    return Block(1, b"", *cols)


def test_no_slot_is_handed_out_before_its_blocks_are_done():
    """Driven by hand: the reader takes slots in turn, each read holding two blocks; a slot
    (and a block's column area) comes back only once ``done`` covers every block in it, and the
    ring waits no longer than that."""
    ring = Ring(slots=3, max_packets=4)
    info = CaptureInfo("x", "pcap", "little", "us")
    ring.wait = lambda: ring.done(ring.finished)     # the parent's collecting: the oldest block
    blocks_in: dict[int, list[int]] = {}
    taken, published = [], 0
    try:
        for _read in range(7):
            prior = ring.finished
            slot, view = ring.take(1000)
            assert view is not None and len(view) == ring.data_bytes
            taken.append(slot)
            before = blocks_in.pop(slot, [])
            assert all(b < ring.finished for b in before)           # free when handed out
            assert ring.finished == max(prior, max(before, default=-1) + 1)
            ring.note(slot, 0)
            for _ in range(2):
                need = max(ring.finished, published - ring.slots + 1)
                ring.publish(published, _fake_block(4), info)
                assert ring.finished == need     # its column area's last block done, no more
                blocks_in.setdefault(slot, []).append(published)
                published += 1
        assert taken == [0, 1, 2, 0, 1, 2, 0]
        assert 0 < ring.finished < published
        assert ring.take(ring.data_bytes + 1) == (None, None)
    finally:
        ring.wait = None
        ring.close()


def test_a_ring_without_a_way_to_wait_refuses_to_overwrite():
    ring = Ring(slots=2, max_packets=2)
    info = CaptureInfo("x", "pcap", "little", "us")
    try:
        for i in range(2):
            slot, _view = ring.take(10)
            ring.note(slot, 0)
            ring.publish(i, _fake_block(1), info)
        with pytest.raises(RuntimeError, match="still in use"):
            ring.take(10)
    finally:
        ring.close()


PARENT = """
import os, sys, time
from diag.decode import DecodeOptions
from diag.decode import parallel
from diag.decode.sharedread import Ring
publish = Ring.publish
def stalled(self, index, block, info):
    if index == 3:
        print("stalled", flush=True)
        time.sleep(120)
    return publish(self, index, block, info)
Ring.publish = stalled
parallel.summarize(sys.argv[1], DecodeOptions(), 3, chunk_packets=50)   # two forked
"""


@needs_core
def test_workers_of_a_killed_parent_do_not_stay(mix):
    """SIGKILL to the parent (nothing of it runs again) while its workers wait for the next
    block: the workers see their inbox end and exit."""
    proc = subprocess.Popen([sys.executable, "-c", PARENT, str(mix)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    kids: set[int] = set()
    try:
        assert proc.stdout.readline().strip() == "stalled"
        kids = _children(proc.pid)
        assert len(kids) == 2, kids
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(_gone(k) for k in kids):
            time.sleep(0.05)
        assert all(_gone(k) for k in kids), [k for k in kids if not _gone(k)]
    finally:
        for k in kids:
            if not _gone(k):
                os.kill(k, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@needs_core
def test_a_file_growing_while_read_is_read_alike_by_every_worker(mix, tmp_path, monkeypatch):
    """Records appended once the parent has read to the end (a capture still being written):
    the workers decode exactly what the parent read, never what came after (when every worker
    read the file itself, one that had not reached the end yet would read more than the others).
    The summary is the one-process summary of the file as the parent read it."""
    from diag.decode import parallel

    data = mix.read_bytes()
    pos = 24
    while pos < 200_000:                     # a record boundary past 200 kB
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    growing, before = tmp_path / "growing.pcap", tmp_path / "before.pcap"
    growing.write_bytes(data[:pos])
    before.write_bytes(data[:pos])
    monkeypatch.setattr(capture, "READ_BLOCK", 64 << 10)
    tell = parallel._Inboxes.tell

    def append_at_the_end(self, parts, message):
        if message[0] == "end":              # the writer goes on, the workers still decoding
            with open(growing, "ab") as fh:
                fh.write(data[pos:])
        tell(self, parts, message)

    monkeypatch.setattr(parallel._Inboxes, "tell", append_at_the_end)
    got = _workers(growing, 2, 97)
    assert growing.stat().st_size == len(data)
    assert got == _one_process(before, 97).replace(str(before), str(growing))
    assert 0 < json.loads(got)["packets"]["total"] < 6000


@needs_core
def test_records_of_no_bytes_fill_a_block(tmp_path, monkeypatch):
    """The most records a read can hold (16-byte headers, nothing captured) fit a slot's
    columns; the summary is one process's."""
    path = tmp_path / "empty-records.pcap"
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for n in range(20_000):
            fh.write(struct.pack("<IIII", 1_700_000_000 + n // 1000, n % 1000, 0, 60))
    monkeypatch.setattr(capture, "READ_BLOCK", 16 << 10)
    got = _workers(path, 2, 65536)
    assert got == _one_process(path, 65536)
    assert json.loads(got)["packets"]["total"] == 20_000
