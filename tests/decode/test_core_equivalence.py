"""The compiled decode core against the pure-Python reference decoder: the same output.

Oracle: the reference (``decoder="python"``, the per-packet decoder of diag/decode/frames.py
and its BGP modules; ``DIAG_DECODER=python`` for the summary, whose ARP fold is then the Python
one). Required: every table equal (columns, dtypes, and each value with its Python type) and the
summary's JSON text equal, on every capture the repository holds (the shipped captures, the lab
captures recorded from real daemons, the fixtures, every crafted capture of tests/craft) at
several chunk sizes, and on hypothesis-generated captures: frames of every shape the decoders
know (mixed, truncated, cooked), BGP streams built from tests/craft/bgpmsg.py (OPEN with
capabilities, UPDATEs of every family and attribute, NOTIFICATIONs, ROUTE-REFRESH, malformed
messages) cut into segments that are lost, repeated, reordered, renumbered, reset, and bytes
flipped anywhere in the frames. The parallel path (``--workers N``) is checked the same way.
"""
from __future__ import annotations

import ipaddress
import json
import math
import random
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from diag.decode import DecodeOptions, core, iter_decode, iter_rows, to_tables
from diag.decode.summary import RESPONDER_FRAMES, CaptureSummary
from tests.craft import bgpmsg as m
from tests.craft import session_bad_files, session_captures
from tests.decode.test_fast_path import KINDS, _cook, _frame

pytestmark = pytest.mark.skipif(core.load() is None, reason="the compiled core is not built")

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted([*ROOT.glob("captures/*.pcap"), *ROOT.glob("captures/lab/*.pcap"),
                   *ROOT.glob("tests/fixtures/**/*.pcap"), *ROOT.glob("tests/fixtures/**/*.pcapng")])
TABLES = ("packets", "bgp_messages", "bgp_routes", "tunnels", "arp", "stream_events", "icmp",
          "fragments", "lldp", "interfaces")


# --- the comparison -------------------------------------------------------------------------------

def _canon(v):
    """A cell as (type, value), lists element by element; every missing value one thing."""
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return ("missing",)
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, tuple(_canon(x) for x in v))
    return (type(v).__name__, v)


def tables(path: Path, decoder: str, chunk: int, options: DecodeOptions,
           vectorize: bool | None = None) -> dict[str, pd.DataFrame]:
    out: dict[str, list] = {}
    for c in iter_decode(path, options, chunk_packets=chunk, vectorize=vectorize,
                         decoder=decoder):
        for name in TABLES:
            out.setdefault(name, []).append(getattr(c, name))
    return {name: frames[-1] if name == "interfaces" or len(frames) == 1 else
            pd.concat(frames, ignore_index=True) for name, frames in out.items()}


def summary(path: Path, decoder: str, chunk: int, options: DecodeOptions) -> str:
    with pytest.MonkeyPatch.context() as mp:
        if decoder == "python":
            mp.setenv("DIAG_DECODER", "python")     # the reference's ARP fold too
        s = CaptureSummary()
        for c in iter_rows(path, options, chunk_packets=chunk, decoder=decoder,
                           tables=decoder == "python"):
            s.add(c)
        return json.dumps(s.result(), default=str)


def assert_same(path: Path, chunk: int = 65536,
                options: DecodeOptions | None = None) -> None:
    options = options or DecodeOptions()
    ref = tables(path, "python", chunk, options, vectorize=False)
    got = tables(path, "compiled", chunk, options)
    assert ref.keys() == got.keys()
    for name in ref:
        a, b = ref[name], got[name]
        pd.testing.assert_frame_equal(b, a, check_dtype=True, obj=f"{path.name}: {name}")
        for col in a.columns:
            ca, cb = [_canon(v) for v in a[col].tolist()], [_canon(v) for v in b[col].tolist()]
            if ca != cb:
                i = next(i for i, (x, y) in enumerate(zip(ca, cb)) if x != y)
                raise AssertionError(f"{path.name}: {name}.{col} row {i}: {cb[i]} != {ca[i]}")
    assert summary(path, "compiled", chunk, options) == \
        summary(path, "python", chunk, options), f"{path.name}: summary differs"


# --- every capture the repository holds -----------------------------------------------------------

@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: str(p.relative_to(ROOT)))
@pytest.mark.parametrize("chunk", [65536, 7])
def test_shipped_and_fixture_captures(path, chunk):
    assert_same(path, chunk)


def test_crafted_captures(tmp_path_factory):
    crafted = session_captures(tmp_path_factory)
    assert len(crafted) > 10
    for c in crafted.values():
        for chunk in (65536, 3):
            assert_same(c.path, chunk, DecodeOptions(bgp_ports=c.bgp_ports))


def test_damaged_files(tmp_path_factory):
    for name, path in session_bad_files(tmp_path_factory).items():
        try:
            ref = summary(path, "python", 65536, DecodeOptions())
        except Exception as err:   # noqa: BLE001 - unusable files: the same error
            with pytest.raises(type(err)):
                summary(path, "compiled", 65536, DecodeOptions())
            continue
        assert_same(path)


def test_the_benchmark_mixes(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import generate

    for mix in ("light", "bgp-heavy"):
        path = tmp_path / f"{mix}.pcap"
        generate.generate(4000, path, seed=11, mix=mix)
        assert_same(path, 500)


@pytest.mark.parametrize("chunk_packets", [1 << 20, 150])
def test_a_chunk_gathers_several_blocks(tmp_path, monkeypatch, chunk_packets):
    """A chunk of the core gathers up to ``CHUNK_BLOCKS`` blocks, never more than
    ``chunk_packets`` frames: fewer chunks than blocks, none past either bound; together they
    are the reference decoder's tables, and the summary is the reference's, whose chunks are
    one block each (routes fold block by block: the prefix sample is the same)."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import generate

    from diag.decode import capture

    path = tmp_path / "mix.pcap"
    generate.generate(3000, path, seed=3, mix="bgp-heavy")
    monkeypatch.setattr(capture, "READ_BLOCK", 24 << 10)     # reads of both decoders
    monkeypatch.setattr(core, "CHUNK_BLOCKS", 3)
    blocks = [len(b) for b in capture.open_blocks(path, chunk_packets, scanner=core.load())[1]]
    chunks = list(iter_decode(path, chunk_packets=chunk_packets, decoder="compiled"))
    frames = [len(c.packets) for c in chunks]
    assert sum(frames) == sum(blocks) == 3000 and len(blocks) >= 30
    assert max(frames) <= chunk_packets
    if chunk_packets > 3000:       # the blocks decide: three in every chunk but the last
        assert len(chunks) == -(-len(blocks) // 3)
    else:                          # the frames decide
        assert len(chunks) < len(blocks) and max(frames) > max(blocks)
    # the chunks' rows, in order, are the reference's (each chunk judges its own dtypes)
    ref = tables(path, "python", chunk_packets, DecodeOptions(), vectorize=False)
    for name, frame in ref.items():
        if name == "interfaces":
            continue
        got = pd.concat([getattr(c, name) for c in chunks], ignore_index=True)
        assert list(got.columns) == list(frame.columns) and len(got) == len(frame), name
        for col in frame.columns:
            assert [_canon(v) for v in got[col].tolist()] == \
                [_canon(v) for v in frame[col].tolist()], f"{name}.{col}"
    assert summary(path, "compiled", chunk_packets, DecodeOptions()) == \
        summary(path, "python", chunk_packets, DecodeOptions())


def test_the_compiled_path_is_really_used(tmp_path):
    """Not everything handed to the reference: on the BGP-heavy mix no frame and no TCP
    direction goes to it, and only OPENs and NOTIFICATIONs among the messages."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import generate

    from diag.decode.capture import open_blocks

    path = tmp_path / "mix.pcap"
    truth = generate.generate(3000, path, seed=5, mix="bgp-heavy")
    dec = core._decoder(core.load(), DecodeOptions(), False, True, {})[0]
    _info, blocks = open_blocks(path, scanner=core.load())
    for block in blocks:
        dec.decode(block.buf, block.first_frame, block.offsets, block.caplens, block.wirelens,
                   block.ts, block.ifaces, block.linktypes, block.flags, [])
    stats = dec.stats()
    messages = truth["bgp"]["messages"]
    assert stats["frames_to_reference"] == 0
    assert stats["streams_to_reference"] == 0
    assert 0 < stats["messages_to_reference"] <= messages["OPEN"] + messages["NOTIFICATION"]


# --- hypothesis: frames of every shape ------------------------------------------------------------

def _write(path: Path, frames: list[bytes], linktype: int = 1) -> None:
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
        for i, data in enumerate(frames):
            fh.write(struct.pack("<IIII", 1_700_000_000 + i // 3, (i * 377) % 1_000_000,
                                 len(data), len(data) + (i % 2)) + data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(picks=st.lists(st.tuples(st.integers(0, 22), st.integers(0, 120)), min_size=1,
                      max_size=30),
       linktype=st.sampled_from([1, 113, 276]), chunk=st.sampled_from([2, 5, 1000]),
       outgoing=st.booleans())
def test_frames_of_every_shape(tmp_path_factory, picks, linktype, chunk, outgoing):
    frames = []
    for i, (kind, cut) in enumerate(picks):
        data = _frame(KINDS[kind % len(KINDS)], i)
        if linktype != 1:
            data = _cook(data, linktype, outgoing)
        if cut and cut < len(data) and cut % 3 == 0:
            data = data[:cut]
        frames.append(data)
    path = tmp_path_factory.mktemp("shapes") / "mix.pcap"
    _write(path, frames, linktype)
    assert_same(path, chunk)


# --- hypothesis: BGP streams, hostile ------------------------------------------------------------

def _messages(draw) -> list[bytes]:
    """BGP messages of every kind the decoders know, some malformed."""
    kinds = draw(st.lists(st.integers(0, 15), min_size=1, max_size=8))
    out = []
    for k in kinds:
        r = draw(st.randoms(use_true_random=False))
        v6 = r.random() < 0.3
        plens = [r.choice((0, 8, 16, 24, 25, 32)) if not v6 else r.choice((0, 48, 64, 127, 128))
                 for _ in range(r.randint(1, 6))]
        pfx = [str(ipaddress.ip_network(
            f"10.{r.randint(0, 3)}.{r.randint(0, 255)}.0/{p}" if not v6 else
            f"fd00:{r.randint(0, 9):x}::/{p}", strict=False)) for p in plens]
        four = r.random() < 0.8
        path = [(m.AS_SEQUENCE, [r.choice((65001, 4_200_000_001 if four else 64512, 23456, 174))
                                 for _ in range(r.randint(0, 3))])]
        attrs = [m.origin(r.randint(0, 2)), m.as_path(path, four_octet=four)]
        if k == 0:
            out.append(m.keepalive())
        elif k == 1:
            caps = [m.cap_multiprotocol(1, 1), m.cap_four_octet_as(4_200_000_001)]
            if r.random() < 0.5:
                caps.append(m.cap_add_path([(1, 1, 3), (2, 1, 3)]))
            if r.random() < 0.3:
                caps.append(m.cap_route_refresh())
            out.append(m.open_message(r.choice((65001, 23456)), r.choice((0, 3, 90, 1)),
                                      "10.0.0.1", caps))
        elif k == 2 and not v6:
            out.append(m.update(attributes=attrs + [m.next_hop("10.0.0.9")],
                                nlri=[m.prefix(p) for p in pfx]))
        elif k in (2, 3):
            fam = 2 if v6 else 1
            out.append(m.update(attributes=attrs + [m.mp_reach(fam, 1, ["fd00::9"] if v6 else
                                                               ["10.0.0.9"], pfx)]))
        elif k == 4:
            extra = [m.med(r.randint(0, 9)), m.local_pref(100), m.atomic_aggregate(),
                     m.communities([(65001, 7), 0xFFFFFF01]),
                     m.large_communities([(65001, 1, 2)]), m.aggregator(65001, "10.0.0.1"),
                     m.extended_communities([bytes([0, 2, 0xFD, 0xE9, 0, 0, 0, 100])]),
                     m.as4_path([(m.AS_SEQUENCE, [4_200_000_001])]),
                     m.attribute(m.OPTIONAL | m.TRANSITIVE, 99, b"xyz")]
            chosen = r.sample(extra, r.randint(0, len(extra)))
            out.append(m.update(withdrawn=[m.prefix(p) for p in pfx] if r.random() < 0.3 else (),
                                attributes=attrs + [m.next_hop("10.0.0.9")] + chosen,
                                nlri=[m.prefix(p) for p in pfx]))
        elif k == 5:
            out.append(m.update(withdrawn=[m.prefix(p) for p in pfx if "." in p]))
        elif k == 6:
            out.append(m.update(attributes=[m.mp_unreach(2 if v6 else 1, 1, pfx)]))
        elif k == 7:
            out.append(m.end_of_rib(r.choice((1, 2)), 1))
        elif k == 8:
            out.append(m.notification(6, r.choice((2, 4, 9)), b"\x05bye!"))
        elif k == 9:
            out.append(m.route_refresh(1, 1, r.choice((0, 1, 2))))
        elif k == 10:
            rd = m.rd_as2(65001, 7)
            out.append(m.update(attributes=attrs + [m.mp_reach_raw(
                1, 128, b"\0" * 8 + bytes([10, 0, 0, 9]),
                m.vpn_prefix("10.9.0.0/24", rd, [16]))]))
        elif k == 11:   # ADD-PATH ids in an UPDATE (as negotiated, or guessed)
            out.append(m.update(attributes=attrs + [m.next_hop("10.0.0.9")],
                                nlri=[m.prefix(p, path_id=r.randint(1, 3)) for p in pfx
                                      if "." in p]))
        elif k == 12:   # lies in the header or the body
            body = m.update(attributes=attrs, nlri=[m.prefix(p) for p in pfx if "." in p])
            if r.random() < 0.5:
                body = body[:16] + struct.pack("!H", len(body) + r.choice((-3, 5))) + body[18:]
            else:
                body = body[:19] + bytes([r.randint(0, 255)]) + body[20:]
            out.append(body)
        elif k == 13:
            out.append(m.keepalive()[:-1] + b"\x07")          # an unknown type
        elif k == 14:
            out.append(bytes(r.randint(0, 255) for _ in range(r.randint(1, 40))))   # garbage
        else:
            out.append(m.update(attributes=[m.origin(0)], nlri=[m.prefix("10.1.0.0/16")]))
    return out


def _ip_tcp(src: str, sport: int, dst: str, dport: int, seq: int, flags: int,
            payload: bytes, v6: bool = False) -> bytes:
    import socket

    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, 0, 5 << 4, flags, 502, 0,
                      0) + payload
    if v6:
        ip = struct.pack("!IHBB", 6 << 28, len(tcp), 6, 64) + socket.inet_pton(
            socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
        return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x86\xdd" + ip + tcp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + tcp


@st.composite
def bgp_streams(draw):
    """Frames of one or two BGP connections, both directions, with what goes wrong on wires
    and in captures: a lost segment, a repeat, two swapped, numbering off by a few, a reset,
    a capture that starts mid-stream, FINs, a new SYN on the same ports."""
    r = draw(st.randoms(use_true_random=False))
    frames = []
    for conn in range(draw(st.integers(1, 2))):
        v6 = r.random() < 0.2
        a, b = ("fd00::1", "fd00::2") if v6 else (f"10.0.{conn}.1", f"10.0.{conn}.2")
        seq = {0: r.getrandbits(32), 1: r.getrandbits(32)}
        ends = {0: (a, 40000 + conn, b, 179), 1: (b, 179, a, 40000 + conn)}
        if r.random() < 0.85:                               # else: mid-stream start
            frames.append(_ip_tcp(*ends[0], seq[0], 0x02, b"", v6))
            frames.append(_ip_tcp(*ends[1], seq[1], 0x12, b"", v6))
            seq[0] += 1
            seq[1] += 1
        for _ in range(draw(st.integers(1, 4))):
            side = r.randint(0, 1)
            data = b"".join(_messages(draw))
            cuts = sorted(r.sample(range(1, len(data)), min(len(data) - 1, r.randint(0, 3))))
            bounds = [0, *cuts, len(data)]
            segs = []
            for i in range(len(bounds) - 1):
                piece = data[bounds[i]:bounds[i + 1]]
                segs.append((seq[side] + bounds[i], piece))
            seq[side] += len(data)
            fate = r.random()
            if fate < 0.1 and len(segs) > 1:
                segs.pop(r.randrange(len(segs)))             # lost
            elif fate < 0.2:
                segs.insert(r.randrange(len(segs) + 1), segs[r.randrange(len(segs))])  # repeat
            elif fate < 0.3 and len(segs) > 1:
                i = r.randrange(len(segs) - 1)
                segs[i], segs[i + 1] = segs[i + 1], segs[i]  # reordered
            elif fate < 0.35:
                s0, p0 = segs[0]
                segs[0] = (s0 + r.choice((-2, -1, 1, 3)), p0)   # numbered a few bytes off
            for s, p in segs:
                frames.append(_ip_tcp(*ends[side], s, 0x18, p, v6))
        end = r.random()
        if end < 0.3:
            frames.append(_ip_tcp(*ends[0], seq[0], 0x11, b"", v6))
            frames.append(_ip_tcp(*ends[1], seq[1], 0x11, b"", v6))
        elif end < 0.4:
            frames.append(_ip_tcp(*ends[r.randint(0, 1)], seq[0], 0x04, b"", v6))
        elif end < 0.5:
            frames.append(_ip_tcp(*ends[0], r.getrandbits(32), 0x02, b"", v6))   # a new SYN
    if r.random() < 0.5:                                      # connections interleave
        frames = [f for pair in zip(frames[::2], frames[1::2]) for f in pair] + (
            [frames[-1]] if len(frames) % 2 else [])
    return frames


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=bgp_streams(), chunk=st.sampled_from([1, 3, 1000]))
def test_bgp_streams(tmp_path_factory, frames, chunk):
    path = tmp_path_factory.mktemp("bgp") / "bgp.pcap"
    _write(path, frames)
    assert_same(path, chunk)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=bgp_streams(), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                            max_size=12))
def test_bytes_flipped_anywhere(tmp_path_factory, frames, flips):
    """Headers and payloads with bytes changed at random: the same rows either way (and no
    crash: the core reads only within each record)."""
    frames = [bytearray(f) for f in frames]
    for at, value in flips:
        f = frames[at % len(frames)]
        f[at % len(f)] = value
    path = tmp_path_factory.mktemp("flip") / "flip.pcap"
    _write(path, [bytes(f) for f in frames])
    assert_same(path, 1000)


# IPv6 groups biased towards the shapes text compression cares for: runs of zeros, 0xffff
_GROUP = st.one_of(st.sampled_from([0, 0, 0, 0, 1, 0xFFFF, 0x10, 0xABC]), st.integers(0, 0xFFFF))
_IPV6 = st.one_of(
    st.lists(_GROUP, min_size=8, max_size=8),
    st.tuples(st.sampled_from([0, 0xFFFF]), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)).map(
        lambda t: [0, 0, 0, 0, 0, *t]))                     # ::a.b.c.d, ::ffff:a.b.c.d shapes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ends=st.lists(st.tuples(_IPV6, _IPV6), min_size=1, max_size=4), hop=_IPV6,
       prefixes=st.lists(st.tuples(_IPV6, st.integers(0, 128)), min_size=1, max_size=12),
       comms=st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=6),
       large=st.lists(st.tuples(*[st.integers(0, 0xFFFFFFFF)] * 3), min_size=1, max_size=3))
def test_texts_of_addresses_prefixes_and_communities(tmp_path_factory, ends, hop, prefixes,
                                                     comms, large):
    """The core writes IPv6 addresses and prefixes, communities and large communities itself,
    as the reference does: a packet's addresses as inet_ntop (tcpdump, tshark) prints them, those
    in BGP messages as ipaddress does (they differ on a dotted IPv4 tail), communities as
    RFC 1997 / RFC 8092 write them."""
    import socket

    from diag.decode.bgp_names import WELL_KNOWN_COMMUNITIES

    def v6(groups) -> str:
        return str(ipaddress.IPv6Address(struct.pack("!8H", *groups)))

    def wire(groups) -> str:
        return socket.inet_ntop(socket.AF_INET6, struct.pack("!8H", *groups))

    nets = [str(ipaddress.ip_network((struct.pack("!8H", *g), plen), strict=False))
            for g, plen in prefixes]
    frames = []
    for i, (a, b) in enumerate(ends):
        upd = m.update(attributes=[m.origin(0), m.as_path([(m.AS_SEQUENCE, [65001])]),
                                   m.communities(comms), m.large_communities(large),
                                   m.mp_reach(2, 1, [v6(hop)], nets)])
        frames.append(_ip_tcp(v6(a), 40000 + i, v6(b), 179, 1000, 0x18,
                              m.open_message(65001, 90, "10.0.0.1",
                                             [m.cap_multiprotocol(2, 1)]) + upd, True))
    path = tmp_path_factory.mktemp("texts") / "texts.pcap"
    _write(path, frames)
    got = tables(path, "compiled", 65536, DecodeOptions())
    assert got["packets"]["src"].tolist() == [wire(a) for a, _ in ends]
    assert got["packets"]["dst"].tolist() == [wire(b) for _, b in ends]
    routes = got["bgp_routes"]
    assert set(routes["next_hop"]) == {v6(hop)}
    assert routes["prefix"].tolist() == [str(ipaddress.ip_network(n)) for n in nets] * len(ends)
    want = [WELL_KNOWN_COMMUNITIES.get(c, f"{c >> 16}:{c & 0xFFFF}") for c in comms]
    assert all(list(c) == want for c in routes["communities"])
    assert all(list(c) == [f"{x}:{y}:{z}" for x, y, z in large]
               for c in routes["large_communities"])
    assert_same(path)



@given(keys=st.lists(st.integers(-2**63, 2**63 - 1) | st.sampled_from([0, -1, 1, 2**63 - 1]),
                    max_size=300))
@settings(max_examples=50, deadline=None)
def test_count_distinct_counts_as_numpy(keys):
    data = np.array(keys, dtype=np.int64)
    assert core.load().count_distinct(data.tobytes()) == len(np.unique(data))


_KEYS = st.lists(st.integers(-2**63, 2**63 - 1) | st.sampled_from([0, -1, 1, 2**63 - 1, -2**63])
                 | st.integers(0x6440000000, 0x6440FFFFFF), max_size=300)


@given(keys=_KEYS, cut=st.integers(0, 300), more=_KEYS)
@settings(max_examples=80, deadline=None)
def test_runs_hold_the_keys_sorted_and_count_with_the_raw(keys, cut, more):
    """A run (summary._Prefixes.compact) gives back its keys ascending as unsigned, the same
    read by the core and by the pure-Python reader, and count_distinct over raw keys and runs
    together counts as numpy does over all of them."""
    from diag.decode.summary import unpack_run

    c = core.load()
    data = np.array(keys, dtype=np.int64)
    run = c.pack_run(data.tobytes())
    want = np.sort(data.view(np.uint64)).view(np.int64)
    assert np.array_equal(np.frombuffer(c.unpack_run(run), dtype=np.int64), want)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core, "_loaded", [None, "not built (test)"])
        assert unpack_run(run) == c.unpack_run(run)
    raw = np.array(more, dtype=np.int64)
    runs = [c.pack_run(data[:cut].tobytes()), c.pack_run(data[cut:].tobytes())]
    assert c.count_distinct(raw.tobytes(), runs) == len(np.unique(np.concatenate([raw, data])))


@pytest.mark.parametrize("run", [b"", b"\x02\x01", b"\x01\x01\x00", b"\x01\x80",
                                 b"\x01" + b"\xff" * 9 + b"\x02", b"\x00\x00"])
def test_a_damaged_run_is_refused(run):
    """Cut short, a count that disagrees, a varint past 64 bits, bytes after the end."""
    from diag.decode.summary import unpack_run

    c = core.load()
    with pytest.raises(ValueError, match="not a run"):
        c.unpack_run(run)
    with pytest.raises(ValueError, match="not a run"):
        c.count_distinct(b"", [run])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core, "_loaded", [None, "not built (test)"])
        with pytest.raises(ValueError, match="not a run"):
            unpack_run(run)


def _compacting(mp) -> None:
    """Every chunk's keys packed into runs at once, and runs merged from a second one on."""
    from diag.decode import summary as summary_module

    mp.setattr(summary_module, "COMPACT_TOTAL", 0)
    mp.setattr(summary_module, "RUNS_MERGED", 1)


@pytest.mark.parametrize("workers", [1, 2])
def test_keys_packed_into_runs_count_the_same(tmp_path, workers, monkeypatch):
    """The summary's prefix keys held as runs give the summary the keys held raw give, in one
    process and with the stores pickled from worker processes; a session reopened on the same
    ports (its keys repeat) too."""
    import sys

    from diag.decode.parallel import summarize

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import generate

    path = tmp_path / "mix.pcap"
    generate.generate(6000, path, seed=5, mix="bgp-heavy")
    reopened = _reopened(tmp_path / "reopened.pcap")

    def both():
        return [json.dumps(summarize(p, DecodeOptions(), workers, chunk_packets=500,
                                     decoder="compiled"), default=str)
                if workers > 1 else summary(p, "compiled", 500, DecodeOptions())
                for p in (path, reopened)]

    want = both()
    _compacting(monkeypatch)
    from diag.decode.summary import _Prefixes

    made = []
    real = _Prefixes.compact
    monkeypatch.setattr(_Prefixes, "compact", lambda self: (made.append(1), real(self))[1])
    assert both() == want
    assert made or workers > 1      # (the workers' calls happen in their own processes)
    assert json.loads(want[1])["bgp"]["sessions"][0]["announced"] == 3


@given(groups=st.lists(st.tuples(st.sampled_from(["a", None, 7, ("t",)]) | st.text(max_size=3),
                                  st.integers(0, 5)), max_size=40))
@settings(max_examples=60, deadline=None)
def test_expand_repeats_as_numpy_and_keeps_reference_counts(groups):
    """The core's expand (the route table's group columns, one row per prefix) gives what
    numpy.repeat gives, and every reference it takes is let go with the rows."""
    import sys

    marker = object()                  # an object only this test holds, counted exactly
    values = np.empty(len(groups) + 1, dtype=object)
    values[:] = [v for v, _ in groups] + [marker]
    counts = np.array([c for _, c in groups] + [3], dtype=np.int64)
    before = sys.getrefcount(marker)
    out = np.empty(int(counts.sum()), dtype=object)
    core.load().expand(values, counts.tobytes(), out)
    assert out.tolist() == np.repeat(values, counts).tolist()
    assert sys.getrefcount(marker) == before + 3
    del out
    assert sys.getrefcount(marker) == before


def test_expand_refuses_counts_that_do_not_fit():
    expand = core.load().expand
    values = np.array(["a", "b"], dtype=object)
    for counts, rows in (([1], 1), ([1, 2], 2), ([1, 2], 4), ([-1, 2], 1)):
        with pytest.raises(ValueError):
            expand(values, np.array(counts, dtype=np.int64).tobytes(),
                   np.empty(rows, dtype=object))
    with pytest.raises(ValueError):
        expand(np.array([1, 2]), np.array([1, 1], dtype=np.int64).tobytes(),
               np.empty(2, dtype=object))
    both = np.array(["a", None, None], dtype=object)      # values and out overlapping
    with pytest.raises(ValueError, match="share memory"):
        expand(both[:2], np.array([1, 1], dtype=np.int64).tobytes(), both[1:])


def test_shared_missing_columns_are_copied_on_write(tmp_path):
    """A chunk's all-missing route columns share one array (memory): writing to one of them
    must not show in another (pandas' copy-on-write, told the blocks share their values)."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import generate

    path = tmp_path / "mix.pcap"
    generate.generate(3000, path, seed=5, mix="bgp-heavy")
    routes = next(t.bgp_routes for t in iter_decode(path, decoder="compiled")
                  if len(t.bgp_routes))
    missing = [c for c in routes.columns if routes[c].isna().all()]
    for dtype in (object, "Int64"):
        same = [c for c in missing if routes[c].dtype == dtype]
        assert len(same) >= 2, (dtype, missing)
        a, b = same[:2]
        routes.loc[0, a] = "x" if dtype is object else 7
        assert routes.loc[0, a] in ("x", 7)
        assert routes[b].isna().all(), f"a write to {a} showed in {b}"
    again = next(t.bgp_routes for t in iter_decode(path, decoder="compiled")
                 if len(t.bgp_routes))
    assert again[missing].isna().all().all()


@pytest.mark.parametrize("decoder", ["compiled", "python"])
def test_each_chunk_has_its_own_interfaces_table(decoder):
    """The interfaces table is made once per capture and copied to each chunk: a change to one
    chunk's table must not show in another's, nor in a later decode of the same capture."""
    path = ROOT / "captures" / "bgp_session.pcap"
    chunks = list(iter_decode(path, chunk_packets=8, decoder=decoder))
    assert len(chunks) >= 3
    first, second = chunks[0].interfaces, chunks[1].interfaces
    assert first.loc[0, "name"] is None          # a pcap names no interface
    first.loc[0, "name"] = "changed"
    assert first.loc[0, "name"] == "changed"
    assert second.loc[0, "name"] is None
    again = next(iter(iter_decode(path, chunk_packets=8, decoder=decoder))).interfaces
    assert again.loc[0, "name"] is None


def test_a_yielded_chunk_lets_the_core_columns_go():
    """iter_decode's Tables keep what the summary folds, not the core's columns they were made
    of (a second copy of every chunk's numbers while the caller holds the Tables)."""
    path = ROOT / "captures" / "bgp_session.pcap"
    summary = CaptureSummary()
    for t in iter_decode(path, chunk_packets=16, decoder="compiled"):
        assert "tables" not in t.rows.core and "fold" in t.rows.core
        with pytest.raises(ValueError, match="made already"):
            to_tables(t.rows)
        summary.add(t)
    whole = CaptureSummary()
    for rows in iter_rows(path, chunk_packets=16, decoder="compiled", tables=False):
        whole.add(rows)
    assert json.dumps(summary.result(), default=str) == json.dumps(whole.result(), default=str)


def test_typed_columns_are_handed_over_not_copied():
    """The core hands a typed column's memory over (no copy): the arrays viewing it stay valid
    after the decoder and the chunk are gone, are writable, and the buffer pickles as bytes."""
    import gc
    import pickle

    path = ROOT / "captures" / "bgp_session.pcap"
    chunks = iter_rows(path, chunk_packets=1 << 20, decoder="compiled")
    chunk = next(chunks)
    kind, n, data, mask = chunk.core["tables"]["packets"]["caplen"]
    assert kind == "i" and n > 100 and type(data).__name__ == "Owned"
    values = np.frombuffer(data, dtype=np.int64)
    expected = to_tables(chunk).packets["caplen"].to_numpy()
    del chunk, data, mask
    chunks.close()
    gc.collect()
    assert values.tolist() == expected.tolist()        # still the core's memory, still right
    assert pickle.loads(pickle.dumps(values.base)) == values.tobytes()
    values[0] = -1                                     # writable, as a bytearray's view was
    assert values[0] == -1


@pytest.mark.parametrize("values, dtype", [
    (["vxlan", None, "geneve"], "object"),     # tunnels.type: text, no Int64 tried
    (["7", None, "9"], "Int64"),               # pandas reads these digits as integers
    ([None, "x7"], "object"),
    (["7.0", None], "object"),                 # pandas reads text with int(): "7.0" fails
    ([" +7 ", "7_0"], "Int64"),                # and these succeed
    ([4, None, 6], "Int64"),
])
def test_text_in_an_integer_named_column_is_judged_as_pandas_would(values, dtype):
    from diag.decode.tables import _series

    out = _series(values, "type")
    assert str(out.dtype) == dtype
    expected = values if dtype == "object" else [None if v is None else int(v) for v in values]
    assert [None if pd.isna(v) else v for v in out] == expected


# --- a session closed, then the same endpoints again -----------------------------------------------

def _reopened(path: Path) -> Path:
    """One BGP connection closed (FIN both ways), then the same endpoints and ports again: the
    core drops a closed session's prefix-key sets (memory), so the second connection's keys may
    repeat the first's in the summary's store."""
    from tests.craft.builders import A, B, Frames, _write, bgp_update, ether_tcp_emit
    from tests.craft.tcpflow import TcpFlow

    frames = Frames()
    emit = ether_tcp_emit(frames)
    for isn, nlri in ((1000, ["10.1.0.0/24", "10.2.0.0/24"]),
                      (900_000, ["10.1.0.0/24", "10.3.0.0/24"])):
        flow = TcpFlow(emit, A, B, 40000, 179, isn_a=isn, isn_b=isn + 5000)
        flow.handshake()
        data, _ = bgp_update(nlri=nlri, segments=[(2, [65001])], next_hop="10.0.0.1",
                             withdrawn=["10.9.0.0/24"])
        flow.queue("ab", data)
        flow.send("ab")
        flow.fin()
    _write(frames, path)
    return path


@pytest.mark.parametrize("chunk", [65536, 4])
def test_a_session_reopened_on_the_same_ports(tmp_path, chunk, monkeypatch):
    path = _reopened(tmp_path / "reopened.pcap")
    assert_same(path, chunk)
    result = json.loads(summary(path, "compiled", chunk, DecodeOptions()))
    (session,) = result["bgp"]["sessions"]
    assert (session["announced"], session["announce_rows"]) == (3, 4)
    assert (session["withdrawn"], session["withdraw_rows"]) == (1, 2)
    # the released sets really were renewed: a store that ignores it counts 10.1.0.0/24 twice
    from diag.decode import summary as summary_module

    monkeypatch.setattr(summary_module._Prefixes, "may_repeat", lambda self: None)
    mutant = json.loads(summary(path, "compiled", chunk, DecodeOptions()))
    assert mutant["bgp"]["sessions"][0]["announced"] == 4


# --- several processes -----------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [2, 3])
def test_the_parallel_path(tmp_path, workers):
    import sys

    from diag.decode.parallel import summarize

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import generate

    path = tmp_path / "mix.pcap"
    generate.generate(6000, path, seed=3, mix="bgp-heavy")
    want = summary(path, "python", 700, DecodeOptions())
    got = json.dumps(summarize(path, DecodeOptions(), workers, chunk_packets=700,
                               decoder="compiled"), default=str)
    assert got == want


# --- which decoder runs --------------------------------------------------------------------------

def test_the_environment_forces_the_reference(monkeypatch):
    from diag.decode import use_compiled

    assert use_compiled() is True
    monkeypatch.setenv("DIAG_DECODER", "python")
    assert use_compiled() is False
    assert "pure-Python" in core.decoder_name()


def test_a_missing_core_falls_back_and_says_so(monkeypatch):
    from diag.decode import use_compiled
    from diag.errors import EnvironmentProblem

    monkeypatch.setattr(core, "_loaded", [None, "not built (test)"])
    assert use_compiled() is False
    assert "not built (test)" in core.decoder_name()
    s = CaptureSummary()
    for c in iter_rows(ROOT / "captures" / "bgp_session.pcap"):
        assert getattr(c, "core", None) is None
        s.add(c)
    assert s.result()["bgp"]["messages"]["OPEN"] > 0
    monkeypatch.setenv("DIAG_DECODER", "compiled")
    with pytest.raises(EnvironmentProblem):
        core.load()


def test_a_core_built_from_older_sources_is_not_used(monkeypatch):
    """A build whose ABI is not the one this Python was written for (sources pulled, not
    rebuilt: a method's arguments changed) is set aside, and ``diag --version`` says why."""
    from diag.decode import use_compiled
    from diag.errors import EnvironmentProblem

    assert core.load().ABI == core.CORE_ABI          # this checkout's build is current
    monkeypatch.setattr(core, "CORE_ABI", core.CORE_ABI + 1)
    monkeypatch.setattr(core, "_loaded", [])
    assert use_compiled() is False
    assert "older sources" in core.decoder_name() and "pip install -e ." in core.decoder_name()
    monkeypatch.setenv("DIAG_DECODER", "compiled")
    with pytest.raises(EnvironmentProblem, match="older sources"):
        core.load()


def test_diag_version_names_the_decoder():
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "diag", "--version"], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=60).stdout
    assert "decoder: compiled C core" in out
    env["DIAG_DECODER"] = "python"
    out = subprocess.run([sys.executable, "-m", "diag", "--version"], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=60).stdout
    assert "decoder: pure-Python reference" in out


# --- hypothesis: the summary's ARP pairing ---------------------------------------------------------

_SEGMENTS = [None, ("vlan", 10), ("vni", 42)]
_PLACES = [(0, "eth0", "in", 0, ()), (1, "vxlan.calico", None, 0, ()),
           (0, "eth0", "in", 1, (("10.1.0.1", "10.1.0.2"),)), (2, "any", "out", 0, ())]


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(
    st.sampled_from(["request", "request", "reply", "7", None]),
    st.sampled_from(["10.0.0.1", "10.0.0.2", "0.0.0.0", "10.0.0.3", None]),
    st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3", None]),
    st.sampled_from(["02:00:00:00:00:01", "02:00:00:00:00:02", "03:00:00:00:00:09"]),
    st.booleans(), st.sampled_from(_SEGMENTS), st.sampled_from(_PLACES),
    st.sampled_from([0.0, 0.001, 0.01, 0.06, 0.5, 2.9, 3.2, 9.0, -0.02])), max_size=80),
    max_pending=st.sampled_from([2, 100_000]), cut=st.integers(0, 80))
@example(rows=[("request", "10.0.0.1", "10.0.0.2", "02:00:00:00:00:01", False, None, _PLACES[0],
                0.0),
               ("request", "10.0.0.1", "10.0.0.2", "02:00:00:00:00:01", False, ("vni", 42),
                _PLACES[2], 0.001),
               ("reply", "10.0.0.2", "10.0.0.1", "02:00:00:00:00:02", False, None, _PLACES[0],
                2.9),
               ("request", "10.0.0.3", "10.0.0.2", "02:00:00:00:00:01", False, None, _PLACES[0],
                0.0),
               ("request", "10.0.0.3", "10.0.0.2", "02:00:00:00:00:01", False, None, _PLACES[1],
                9.0)],
         max_pending=100_000, cut=1)
def test_the_compiled_arp_pairing_is_the_rule(rows, max_pending, cut):
    """diag/decode/_core/arp.c against CaptureSummary._arp with diag/decode/arp.py's
    ArpPairing: copies at other places, segments, the windows, retransmissions, late copies,
    probes, gratuitous rows, max_pending, time going backwards, rows split across chunks."""
    from diag.decode.arp import COPY_WINDOW, REPLY_WINDOW, ArpPairing, Verdict

    feed, ts = [], 100.0
    for frame, (op, sip, tip, mac, grat, segment, place, dt) in enumerate(rows, 1):
        ts += dt
        depth = place[3]
        feed.append((frame, ts, op, mac, sip, "00:00:00:00:00:00", tip,
                     grat and sip is not None and sip == tip, segment, place, place[2], depth))
    py, fast = CaptureSummary(), CaptureSummary()
    py._arp_rule = None
    py.arp_pairing = ArpPairing(max_pending=max_pending)
    fast._arp_rule = core.load().ArpRule(REPLY_WINDOW, COPY_WINDOW, max_pending, Verdict,
                                         RESPONDER_FRAMES)
    for part in (feed[:cut], feed[cut:]):
        py._arp(part)
        fast._arp(part)
    py._arp_finish()
    fast._arp_finish()
    assert dict(py.arp_counts) == dict(fast.arp_counts)
    assert (py.arp_answered, py.arp_copies) == (fast.arp_answered, fast.arp_copies)
    assert py.arp_unanswered == fast.arp_unanswered
    assert list(py.arp_unanswered) == list(fast.arp_unanswered)
    assert dict(py.arp_responders) == dict(fast.arp_responders)
    assert (py.arp_view.replied_to, py.arp_view.unicast) == (fast.arp_view.replied_to,
                                                             fast.arp_view.unicast)


def test_qinq_arp_is_paired_by_both_decoders(tmp_path):
    """ARP under two 802.1Q tags (the decoder's vlan "100.200"): one segment for the rule (it
    raised ValueError in int() before), answered by the reply on the same tag stack, the same
    summary from both decoders."""
    import subprocess
    import sys

    def arp(op: int, sha: bytes, spa: bytes, tpa: bytes) -> bytes:
        body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sha, spa, bytes(6), tpa)
        return (b"\xff" * 6 + sha + b"\x88\xa8" + struct.pack("!H", 100) + b"\x81\x00"
                + struct.pack("!H", 200) + b"\x08\x06" + body)

    asker, target = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    frames = [arp(1, b"\x02\0\0\0\0\x01", asker, target), arp(2, b"\x02\0\0\0\0\x02", target, asker)]
    path = tmp_path / "qinq.pcap"
    _write(path, frames)
    outs = []
    for decoder in ("python", "compiled"):
        proc = subprocess.run([sys.executable, "-m", "diag", "pcap", str(path), "--format", "json"],
                              capture_output=True, text=True, cwd=Path(__file__).parents[2],
                              env={**__import__("os").environ, "DIAG_DECODER": decoder})
        assert proc.returncode == 0, proc.stderr
        outs.append(proc.stdout)
    assert outs[0] == outs[1]
    summary = json.loads(outs[0])["arp"]
    assert (summary["requests"], summary["replies"], summary["answered"]) == (1, 1, 1)


def test_an_unbuilt_tree_decodes_with_the_reference(tmp_path):
    """A clone where the extension was never built (no compiler): ``diag/decode/_core`` holds
    only the C sources, which Python imports as an empty namespace package. diag must say the
    core is not built and decode with the reference, not stop."""
    import os
    import shutil
    import subprocess
    import sys

    shutil.copytree(ROOT / "diag", tmp_path / "diag",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    env.pop("DIAG_DECODER", None)
    run = dict(capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    out = subprocess.run([sys.executable, "-m", "diag", "--version"], **run)
    assert out.returncode == 0 and "pure-Python reference (the compiled core is not built" \
        in out.stdout, out.stdout + out.stderr
    capture = str(ROOT / "captures" / "bgp_session.pcap")
    got = subprocess.run([sys.executable, "-m", "diag", "pcap", capture, "--format", "json"],
                         **run)
    assert got.returncode == 0, got.stderr
    env["PYTHONPATH"] = str(ROOT)
    want = subprocess.run([sys.executable, "-m", "diag", "pcap", capture, "--format", "json"],
                          **run)
    assert json.loads(got.stdout) == json.loads(want.stdout)
