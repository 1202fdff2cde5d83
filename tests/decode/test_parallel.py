"""``diag pcap --workers N``: several processes must give exactly the one-process summary.

Oracle: the one-process decode (``CaptureSummary`` over ``iter_rows``), compared as JSON text
(key order included) — itself checked against tshark and scapy elsewhere — on the benchmark
generator's mix (BGP messages split over segments, several per segment) cut into small blocks so
that split messages straddle blocks decoded by different workers, as pcap and as pcapng (editcap),
damaged at the end, on every real capture in the repository, and on the crafted captures of BGP
families, IP fragments (reassembly crosses blocks of different workers), LLDP and ARP of every
kind (paired by one worker across the others' blocks). Mutants of the worker split must fail. Ctrl-C must leave no worker behind.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diag.decode import DecodeOptions, iter_decode, iter_rows, use_compiled
from diag.decode import parallel
from diag.decode.summary import CaptureSummary

ROOT = Path(__file__).resolve().parents[2]
REAL = (sorted((ROOT / "tests" / "fixtures" / "pcap").glob("*.pcap"))
        + sorted((ROOT / "tests" / "fixtures" / "pcap-facts").glob("*.pcap*"))
        + sorted((ROOT / "tests" / "fixtures" / "arp-rule").glob("*.pcap"))
        + sorted((ROOT / "captures").rglob("*.pcap*")))


def _load_generator():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_generate_parallel",
                                                  ROOT / "benchmarks" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("parallel") / "mix.pcap"
    _load_generator().generate(2500, path, seed=5)
    return path


def _one_process(path: Path, chunk: int, vectorize: bool | None = None) -> str:
    s = CaptureSummary()
    for c in iter_rows(path, DecodeOptions(), chunk_packets=chunk, vectorize=vectorize):
        s.add(c)
    return json.dumps(s.result(), default=str)


def _workers(path: Path, n: int, chunk: int, vectorize: bool | None = None) -> str:
    return json.dumps(parallel.summarize(path, DecodeOptions(), n, chunk_packets=chunk,
                                         vectorize=vectorize), default=str)


# vectorize None: the compiled core when it is built (the one-pass path); True/False: the
# reference decoder, vectorised or not (the two-phase path)
DECODERS = [None, True, False]


@pytest.mark.parametrize("workers,chunk", [(2, 97), (3, 41), (2, 4096)])
@pytest.mark.parametrize("vectorize", DECODERS)
def test_generated_mix_same_summary(mix, workers, chunk, vectorize):
    want = _one_process(mix, chunk, vectorize)
    assert _workers(mix, workers, chunk, vectorize) == want
    result = json.loads(want)
    assert result["bgp"]["messages"]["UPDATE"] > 50 and result["arp"]["answered"] > 0


def test_split_messages_cross_worker_boundaries(mix):
    """The test above is only worth something if messages straddle blocks of different workers."""
    chunk, workers = 41, 3
    tables = list(iter_decode(mix, chunk_packets=chunk))
    msgs = [(int(f), int(ff)) for t in tables
            for f, ff in zip(t.bgp_messages["frame"], t.bgp_messages["first_frame"])]
    straddling = [(f, ff) for f, ff in msgs
                  if ((f - 1) // chunk) % workers != ((ff - 1) // chunk) % workers]
    assert len(straddling) > 10


def test_pcapng_and_damaged_file(mix, tmp_path):
    if not shutil.which("editcap"):
        pytest.skip("editcap (tshark) not installed")
    ng = tmp_path / "mix.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(mix), str(ng)], check=True, timeout=60)
    assert ng.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    cut = tmp_path / "cut.pcap"
    data = mix.read_bytes()
    cut.write_bytes(data[:len(data) - 700])          # a record cut short at the end
    for vectorize in (True, None):
        assert _workers(ng, 2, 53, vectorize) == _one_process(ng, 53, vectorize)
        want = _one_process(cut, 97, vectorize)
        assert json.loads(want)["packets"]["malformed"] == 1
        assert _workers(cut, 2, 97, vectorize) == want


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_captures_same_summary(path):
    for chunk in (3, 64):
        assert _workers(path, 2, chunk) == _one_process(path, chunk)


@pytest.fixture(scope="module")
def crafted(tmp_path_factory) -> dict:
    from tests.craft.families import build_all

    return build_all(tmp_path_factory.mktemp("parallel-crafted"))


@pytest.mark.parametrize("name", ["fragments", "bgp_families", "bgp_syn_data", "lldp"])
@pytest.mark.parametrize("vectorize", DECODERS)
def test_crafted_captures_same_summary(crafted, name, vectorize):
    """Blocks of 1-3 frames dealt to 2-3 workers: a datagram's fragments fall in blocks of
    different workers, so each must have followed the others' fragments."""
    path = crafted[name].path
    for workers, chunk in ((2, 1), (3, 2), (2, 3)):
        assert _workers(path, workers, chunk, vectorize) == _one_process(path, chunk, vectorize)


def test_fragment_candidates_miss_no_fragment(crafted, mix):
    """The column-wise prefilter may keep frames that hold no fragment, never drop one the
    per-packet decoder would feed to reassembly (its header walk says which)."""
    from diag.decode.batch import fragment_candidates
    from diag.decode.capture import open_blocks
    from diag.decode.frames import PacketDecoder

    decoder = PacketDecoder()
    tunnel = decoder.vxlan_ports | decoder.geneve_ports
    held = 0
    for path in (crafted["fragments"].path, mix):
        _info, blocks = open_blocks(path, 64)
        for block in blocks:
            kept = set(fragment_candidates(block, tunnel).tolist())
            for i, rec in enumerate(block.records()):
                if decoder.may_hold_fragment(rec[3], rec[4]):
                    held += 1
                    assert i in kept, (path.name, rec[0])
            assert len(kept) < len(block) or len(block) < 8 or path != mix
    assert held >= 13


def test_mutant_without_the_shadow_reassembly_fails(crafted, monkeypatch):
    path = crafted["fragments"].path
    want = json.loads(_one_process(path, 1, True))
    assert want["fragments"]["by_status"]["reassembled"] == 4
    monkeypatch.setattr(parallel, "_feed_fragments", lambda *args: None)
    assert json.loads(_workers(path, 2, 1, True))["fragments"] != want["fragments"]


def test_mutant_splitting_a_connection_fails(mix, monkeypatch):
    """Sharding by one endpoint (the two directions of a connection to different workers) must
    be caught: one process sees both OPENs and one session."""
    monkeypatch.setattr(parallel, "_bucket",
                        lambda src, sport, dst, dport: parallel.bucket_of((src, sport)))
    assert _workers(mix, 2, 97, False) != _one_process(mix, 97, False)


needs_core = pytest.mark.skipif(not use_compiled(), reason="the compiled core is not built")


@needs_core
def test_mutant_core_workers_skipping_others_blocks_fails(mix, monkeypatch):
    """A worker of the one-pass path that does not walk the other workers' blocks loses the
    segments of its connections there (split messages, later UPDATEs)."""
    walk = parallel._walk
    monkeypatch.setattr(parallel, "_walk", lambda dec, block, names, shadow:
                        None if shadow is not None else walk(dec, block, names, shadow))
    assert _workers(mix, 2, 97) != _one_process(mix, 97)


@needs_core
def test_mutant_core_workers_owning_every_connection_fails(mix, monkeypatch):
    """Every worker reassembling every connection counts each message once per worker."""
    _wrap_core_decoders(monkeypatch, _OwnsAll)
    got = json.loads(_workers(mix, 2, 97))
    want = json.loads(_one_process(mix, 97))
    assert got["bgp"]["messages"]["UPDATE"] == 2 * want["bgp"]["messages"]["UPDATE"]


@needs_core
def test_the_reader_is_charged_alike_in_every_worker(tmp_path):
    """Worker 0 runs in the parent and reads the file for all: the core charges it the blocks'
    record bytes / READ_LOAD_DIV before their segments, in every worker's ledger alike, so
    it is dealt fewer connections; the ledgers' sums differ from uncharged ones by exactly that."""
    from diag.decode import core
    from diag.decode.capture import open_blocks

    path = tmp_path / "mix.pcap"
    _load_generator().generate(3000, path, seed=5, mix="bgp-heavy")

    def run(index: int, reader: int) -> dict:
        dec = core._decoder(core.load(), DecodeOptions(), False, True, {})[0]
        dec.own(index, 2, 1, reader)
        charge = 0
        _info, blocks = open_blocks(path, 500, scanner=core.load())
        for block in blocks:
            charge += ((block.offsets[-1] + block.caplens[-1] - block.offsets[0])
                       // core.load().READ_LOAD_DIV)
            dec.decode(block.buf, block.first_frame, block.offsets, block.caplens,
                       block.wirelens, block.ts, block.ifaces, block.linktypes, block.flags, [])
        return {**dec.stats(), "charge": charge}

    reader, other, uncharged = run(0, 0), run(1, 0), run(0, -1)
    assert reader["loads"] == other["loads"]                     # one ledger everywhere
    assert sum(reader["loads"]) == sum(uncharged["loads"]) + reader["charge"] > 0
    assert reader["connections"] < other["connections"]
    assert run(1, -1)["connections"] < other["connections"]


@needs_core
def test_mutant_workers_disagreeing_on_the_reader_fails(mix, monkeypatch):
    """If only the parent's worker charged itself for the reading, the workers' ledgers would
    part and a connection would have two owners or none."""
    class ReaderOnlyInParent(_OwnsAll):
        def own(self, index: int, count: int, arp_worker: int = -1, reader: int = -1) -> None:
            self._dec.own(index, count, arp_worker, reader if index == reader else -1)

    _wrap_core_decoders(monkeypatch, ReaderOnlyInParent)
    assert _workers(mix, 2, 97) != _one_process(mix, 97)


@needs_core
@pytest.mark.parametrize("failing", [(1, 2), (3, 2)])
def test_workers_errors_come_in_block_order(mix, monkeypatch, failing):
    """Worker 0 runs in the parent and meets its bad block (2) while the forked worker is still
    slow to report an earlier one (1): the error reported is the earliest block's, as one
    process reports it (and as forked workers' errors always came); and the parent's own when
    its block is the earlier (2 before 3)."""
    from diag.errors import UnusableInput

    walk = parallel._walk
    parent = os.getpid()

    def failing_walk(dec, block, names, shadow):
        i = (block.first_frame - 1) // 97
        if shadow is None and i in failing:              # in the block's owner
            if os.getpid() != parent:
                time.sleep(0.5)                          # the forked worker is slow to fail
            raise UnusableInput(f"block {i} is bad")
        return walk(dec, block, names, shadow)

    monkeypatch.setattr(parallel, "_walk", failing_walk)
    with pytest.raises(UnusableInput, match=f"block {min(failing)} is bad"):
        parallel.summarize(mix, DecodeOptions(), 2, chunk_packets=97)


@needs_core
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_blocks_dealt_any_way_same_summary(crafted, mix, arp_kinds, monkeypatch, seed):
    """The parent deals each block's frames by how far the workers lag (``deal_block``): a
    timing, not a rule. Blocks dealt at random (runs of one owner, a worker with none) give
    one process's summary: on the mix, fragments spread one per block, BGP families and ARP
    of every kind."""
    import random

    rng = random.Random(seed)
    dealt: list[int] = []

    def at_random(i: int, workers: int, lag: int) -> int:
        dealt.append(rng.randrange(workers))
        return dealt[-1]

    monkeypatch.setattr(parallel, "deal_block", at_random)
    cases = [(mix, 2, 97), (mix, 3, 41), (crafted["fragments"].path, 2, 1),
             (crafted["fragments"].path, 3, 2), (crafted["bgp_families"].path, 2, 2),
             (arp_kinds, 2, 1), (arp_kinds, 3, 1)]
    for path, workers, chunk in cases:
        assert _workers(path, workers, chunk) == _one_process(path, chunk), (path, workers)
    assert len(set(dealt)) == 3 and any(a == b for a, b in zip(dealt, dealt[1:]))


@needs_core
def test_deal_block_follows_the_lag():
    """In turn while the workers keep up with the reading; the reader's worker takes the block
    when they lag LAG_TAKE blocks, and passes its turn on when they have caught up."""
    deal, take = parallel.deal_block, parallel.LAG_TAKE
    assert [deal(i, 2, 2) for i in range(4)] == [0, 1, 0, 1]
    assert [deal(i, 2, take) for i in range(4)] == [0, 0, 0, 0]
    assert [deal(i, 2, 1) for i in range(4)] == [1, 1, 1, 1]
    assert [deal(i, 3, 1) for i in range(6)] == [1, 1, 2, 2, 1, 2]     # passed on in turn
    assert [deal(i, 1, lag) for i, lag in enumerate((0, 1, 5))] == [0, 0, 0]


def _wrap_core_decoders(monkeypatch, wrapper) -> None:
    """Every core decoder the workers make, wrapped in ``wrapper`` (a mutant)."""
    from diag.decode import core

    decoder = core._decoder

    def wrapped(*args, **kwargs):
        dec, reference, slow = decoder(*args, **kwargs)
        return wrapper(dec), reference, slow

    monkeypatch.setattr(core, "_decoder", wrapped)


class _OwnsAll:
    """A core decoder whose ``own`` is ignored (a mutant)."""

    def __init__(self, dec) -> None:
        self._dec = dec

    def own(self, index: int, count: int, arp_worker: int = -1, reader: int = -1) -> None:
        pass

    def __getattr__(self, name: str):
        return getattr(self._dec, name)


@needs_core
def test_mutant_core_workers_without_the_shadow_fails(crafted, monkeypatch):
    """Without the shadow reference decoder in other workers' blocks, the fragments of a
    datagram spread over blocks of different workers are never put together."""
    path = crafted["fragments"].path
    want = json.loads(_one_process(path, 1))
    assert want["fragments"]["by_status"]["reassembled"] == 4

    class Blind:
        def packet(self, *args) -> None:
            pass

        def take(self) -> None:
            pass

    monkeypatch.setattr(parallel, "_shadow", lambda *args: Blind())
    assert json.loads(_workers(path, 2, 1))["fragments"] != want["fragments"]


def _arp_of_every_kind(path: Path) -> Path:
    """ARP requests and their replies in frames of their own (blocks of one frame fall to
    different workers), of every kind the decoders take apart differently: plain, QinQ and in
    VXLAN (the compiled core's), a hardware address of 8 bytes, addresses cut short and VXLAN
    in IP fragments (the reference's), unanswered and gratuitous ones."""
    from scapy.layers.inet import IP, UDP, fragment
    from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
    from scapy.layers.vxlan import VXLAN
    from scapy.utils import wrpcap

    a, b, c = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
    bc, zero = "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"

    def arp(op: int, smac: str, sip: str, tmac: str, tip: str):
        return ARP(op=op, hwsrc=smac, psrc=sip, hwdst=tmac, pdst=tip)

    frames = []
    for i in range(3):
        ip_a, ip_b = f"10.1.{i}.1", f"10.1.{i}.2"
        frames += [Ether(src=a, dst=bc) / arp(1, a, ip_a, zero, ip_b),
                   Ether(src=b, dst=a) / arp(2, b, ip_b, a, ip_a)]
        qinq = Dot1AD(vlan=100) / Dot1Q(vlan=200 + i)
        frames += [Ether(src=a, dst=bc) / qinq / arp(1, a, ip_a, zero, f"10.2.{i}.2"),
                   Ether(src=b, dst=a) / qinq.copy() / arp(2, b, f"10.2.{i}.2", a, ip_a)]
        outer = (Ether(src="02:00:00:00:01:01", dst="02:00:00:00:01:02")
                 / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=40000 + i, dport=8472)
                 / VXLAN(vni=42 + i))
        frames += [outer / Ether(src=a, dst=bc) / arp(1, a, f"10.3.{i}.1", zero, f"10.3.{i}.2"),
                   outer.copy() / Ether(src=b, dst=a) / arp(2, b, f"10.3.{i}.2", a,
                                                            f"10.3.{i}.1")]
        cut = bytes(Ether(src=a, dst=bc) / arp(1, a, f"10.7.{i}.1", zero, f"10.7.{i}.2"))[:34]
        frames += [Ether(cut),
                   Ether(src=a, dst=bc) / ARP(op=1, hwlen=8, hwsrc=b"\x02" * 8,
                                              psrc=f"10.8.{i}.1", hwdst=b"\x00" * 8,
                                              pdst=f"10.8.{i}.2")]
        # in VXLAN in an IPv4 datagram sent as fragments (the reference reassembles it; the
        # fragments fall in different workers' blocks)
        for op, sip, tip in ((1, f"10.9.{i}.1", f"10.9.{i}.2"), (2, f"10.9.{i}.2", f"10.9.{i}.1")):
            inner = Ether(src=a, dst=bc) / arp(op, a, sip, zero if op == 1 else b, tip)
            datagram = (IP(src="192.0.2.1", dst="192.0.2.2", id=100 + 2 * i + op)
                        / UDP(sport=40100, dport=8472) / VXLAN(vni=7) / inner)
            frames += [Ether(src="02:00:00:00:01:01", dst="02:00:00:00:01:02") / part
                       for part in fragment(datagram, fragsize=24)]
        frames += [Ether(src=c, dst=bc) / arp(1, c, f"10.5.{i}.1", zero, f"10.5.{i}.9"),
                   Ether(src=c, dst=bc) / arp(1, c, f"10.6.{i}.1", zero, f"10.6.{i}.1")]
    for n, frame in enumerate(frames):
        frame.time = 1700000000 + n / 100
    wrpcap(str(path), frames)
    return path


@pytest.fixture(scope="module")
def arp_kinds(tmp_path_factory) -> Path:
    return _arp_of_every_kind(tmp_path_factory.mktemp("parallel-arp") / "arp-kinds.pcap")


def test_arp_of_every_kind_is_as_tshark_reads_it(arp_kinds):
    """The crafted capture is what it says: tshark's ARP frames, senders and targets are the
    decoder's (the cut frames are tshark's malformed ones; the 8-byte one it reads further; a
    fragmented datagram's ARP is at its last fragment for both)."""
    from tests.oracle import tshark

    if not tshark.available():
        pytest.skip("tshark not installed")
    out = subprocess.run(["tshark", "-n", "-r", str(arp_kinds), "-d", "udp.port==8472,vxlan",
                          "-Y", "arp", "-T", "fields",
                          "-e", "frame.number", "-e", "arp.src.proto_ipv4",
                          "-e", "arp.dst.proto_ipv4", "-e", "_ws.malformed"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    theirs = [line.split("\t") for line in out.splitlines()]
    ours = {}
    for tables in iter_decode(arp_kinds, decoder="python"):
        for frame, sip, tip in tables.arp[["frame", "sender_ip", "target_ip"]].itertuples(
                index=False):
            ours[int(frame)] = (sip, tip)
    assert len(theirs) == 36
    assert {int(f) for f, _s, _t, bad in theirs if not bad} == set(ours)
    for f, sip, tip, _bad in theirs:
        if ours.get(int(f), (None,))[0] is not None:
            assert ours[int(f)] == (sip, tip)
    assert sum(1 for sip, _tip in ours.values() if sip is None) == 3       # the 8-byte ones


def test_arp_of_every_kind_paired_across_workers(arp_kinds):
    """The ARP worker pairs requests and replies that fall in other workers' blocks, of every
    kind, the reference's included."""
    for workers, chunk in ((2, 1), (3, 1), (2, 2), (3, 4)):
        assert _workers(arp_kinds, workers, chunk) == _one_process(arp_kinds, chunk)
    arp = json.loads(_one_process(arp_kinds, 1))["arp"]
    assert (arp["requests"], arp["replies"], arp["answered"], arp["unanswered"]) == (18, 12, 12, 3)


def test_unanswered_arp_across_workers_is_what_tshark_shows(mix):
    """The ARP worker's tally of unanswered requests (handed to the parent at the end) against
    tshark: in the generated mix a target that never replies leaves every request to it
    unanswered, and every other request is answered; the requests are spread over many
    blocks of both workers."""
    from tests.oracle import tshark

    if not tshark.available():
        pytest.skip("tshark not installed")
    out = subprocess.run(["tshark", "-n", "-r", str(mix), "-Y", "arp", "-T", "fields",
                          "-e", "arp.opcode", "-e", "arp.dst.proto_ipv4",
                          "-e", "arp.src.proto_ipv4"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    asked, replied = {}, set()
    for opcode, target, sender in (line.split("\t") for line in out.splitlines()):
        if opcode == "1":
            asked[target] = asked.get(target, 0) + 1
        else:
            replied.add(sender)
    silent = {target: n for target, n in asked.items() if target not in replied}
    assert silent                                    # the mix has such targets
    arp = json.loads(_workers(mix, 2, 50))["arp"]
    assert {u["target_ip"]: u["count"] for u in arp["unanswered_by_ip"]} == silent
    assert arp["unanswered"] == sum(silent.values())
    assert arp["answered"] == sum(asked.values()) - sum(silent.values())


@needs_core
def test_mutant_arp_worker_blind_to_other_blocks_fails(arp_kinds, monkeypatch):
    """The ARP worker must fold the ARP frames of the other workers' blocks."""
    _wrap_core_decoders(monkeypatch, _OwnsWithoutArp)
    assert _workers(arp_kinds, 2, 1) != _one_process(arp_kinds, 1)


@needs_core
def test_mutant_arp_worker_without_the_shadows_rows_fails(arp_kinds, monkeypatch):
    """The ARP frames the reference decodes in other workers' blocks reach the ARP worker
    through its shadow decoder's rows."""
    walk = parallel._walk

    def dropping(dec, block, names, shadow):
        rows = walk(dec, block, names, shadow)
        return None if shadow is not None else rows

    monkeypatch.setattr(parallel, "_walk", dropping)
    assert _workers(arp_kinds, 2, 1) != _one_process(arp_kinds, 1)


class _OwnsWithoutArp(_OwnsAll):
    """A core decoder told its connections but not which worker pairs ARP (a mutant)."""

    def own(self, index: int, count: int, arp_worker: int = -1, reader: int = -1) -> None:
        self._dec.own(index, count, -1, reader)


MAIN = "from diag.cli import main\nimport sys\nsys.argv = ['diag', *sys.argv[1:]]\nmain()\n"


def _cli(*args: str, code: str = "") -> subprocess.CompletedProcess:
    prog = code + MAIN
    return subprocess.run([sys.executable, "-c", prog, *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def test_cli_workers_output_identical(mix):
    for fmt in ("json", "text"):
        one = _cli("pcap", str(mix), "--format", fmt, "--workers", "1")
        two = _cli("pcap", str(mix), "--format", fmt, "--workers", "2")
        assert one.returncode == two.returncode == 0, two.stderr
        assert one.stdout == two.stdout and two.stderr == ""


def test_cli_bad_input_one_line(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all, just text" * 100)
    done = _cli("pcap", str(bad), "--workers", "2")
    assert done.returncode != 0
    assert done.stderr.startswith("diag: error:") and "Traceback" not in done.stderr
    done = _cli("pcap", str(bad), "--workers", "0")
    assert done.returncode != 0 and "--workers" in done.stderr
    if shutil.which("editcap"):
        # found only while reading blocks, i.e. inside the workers: raised again in the parent
        wifi = tmp_path / "wifi.pcapng"
        subprocess.run(["editcap", "-T", "ieee-802-11",
                        str(ROOT / "tests" / "fixtures" / "pcap-facts" / "two-ifaces.pcapng"),
                        str(wifi)], check=True, timeout=60)
        one = _cli("pcap", str(wifi), "--workers", "1")
        two = _cli("pcap", str(wifi), "--workers", "2")
        assert two.returncode == one.returncode != 0
        assert two.stderr == one.stderr and "supported link type" in two.stderr
        assert len(two.stderr.strip().splitlines()) == 1


def test_auto_workers_small_file_is_one_process(mix):
    assert parallel.auto_workers(mix) == 1
    assert parallel.auto_workers(mix.parent / "missing.pcap") == 1


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupt_leaves_no_worker(mix, tmp_path, how):
    """SIGINT to the process group (what a terminal's Ctrl-C does), or SIGTERM to the parent
    (``kill PID``), while workers run: exit 130, one line, every worker gone, no spool left.
    The workers are slowed down so that they are caught running."""
    # both decode workers (the reference's and the compiled core's) are slowed
    slow = ("import time\nimport diag.decode.parallel as p\n_real = p._decode_part\n"
            "p._decode_part = lambda *a: (time.sleep(30), _real(*a))[1]\n"
            "_core = p._core_part\n"
            "p._core_part = lambda *a: (time.sleep(30), _core(*a))[1]\n")
    # three workers: two forked processes in either path (the compiled path runs one in the parent)
    prog = slow + MAIN
    proc = subprocess.Popen([sys.executable, "-c", prog, "pcap", str(mix), "--workers", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=ROOT,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        deadline = time.monotonic() + 30
        kids: set[int] = set()
        while time.monotonic() < deadline and len(kids) < 2:
            kids = _children(proc.pid)
            time.sleep(0.05)
        assert len(kids) >= 2, "workers never started"
        if not use_compiled():        # the reference's two phases spool; the core's one does not
            assert list(tmp_path.glob("diag-pcap-*")), "no spool directory while running"
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["diag: error: interrupted"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(_gone(k) for k in kids):
        time.sleep(0.05)
    assert all(_gone(k) for k in kids)
    assert not list(tmp_path.glob("diag-pcap-*"))


def _report_sigterm_disposition():
    yield signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    yield signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, set())


def test_workers_start_with_default_sigterm_not_the_parents_interrupt():
    # diag pcap --workers N turns SIGTERM into KeyboardInterrupt in the parent; a worker that
    # inherited that handler and was terminated while still starting printed a traceback
    # beside the one-line error (seen as a flaky test_cli_bad_input_one_line)
    previous = parallel._on_sigterm_interrupt()
    try:
        with parallel._Workers([(_report_sigterm_disposition, ())]) as workers:
            default, blocked = workers.next(0), workers.next(0)
        assert default, "the worker inherited the parent's SIGTERM handler"
        assert not blocked, "SIGTERM left blocked in the worker: terminate() would not end it"
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL      # parent's is back
        assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def test_the_result_asked_twice_is_the_same(arp_kinds):
    """``CaptureSummary.result()`` may be asked again: the requests still waiting at the end
    are counted once, whether the summary's own rule paired them or a worker's did
    (``arp_ended``)."""
    s = CaptureSummary()
    for c in iter_rows(arp_kinds, DecodeOptions(), chunk_packets=4):
        s.add(c)
    first = json.dumps(s.result(), default=str)
    assert json.loads(first)["arp"]["unanswered"] == 3
    assert json.dumps(s.result(), default=str) == first
    if use_compiled():
        from diag.decode.core import core_fold
        from diag.decode.summary import arp_rule, arp_rule_end

        rule = arp_rule()
        for c in iter_rows(arp_kinds, DecodeOptions(), chunk_packets=4):
            rule.add(core_fold(c, None, bgp=False)["arp"])
        elsewhere = CaptureSummary()
        elsewhere.arp_ended(arp_rule_end(rule))
        once = elsewhere.result()["arp"]
        assert once["unanswered"] == 3 and elsewhere.result()["arp"] == once

        # the unanswered requests tallied where the rule ran (as the ARP worker does), the
        # ones still waiting at the end last: the same ARP section as one process's
        from diag.decode.summary import tally_unanswered

        rule, tally = arp_rule(), {}
        for c in iter_rows(arp_kinds, DecodeOptions(), chunk_packets=4):
            unanswered, _responders = rule.add(core_fold(c, None, bgp=False)["arp"])
            for v in unanswered:
                tally_unanswered(tally, v)
        waiting, *rest = arp_rule_end(rule)
        for v in waiting:
            tally_unanswered(tally, v)
        tallied = CaptureSummary()
        tallied.arp_ended(((), *rest), tally)
        mine = tallied.result()["arp"]
        assert mine["unanswered_by_ip"] == json.loads(first)["arp"]["unanswered_by_ip"]
        assert mine == tallied.result()["arp"] and mine["unanswered"] == 3
