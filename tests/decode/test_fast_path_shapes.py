"""The two decoders agree on every field, direction included, on the capture shapes of hostile
evidence (issue: hostile evidence, item 3): pcapng packets with any ``epb_flags`` direction bits
(0-3) over Ethernet, SLL (any 16-bit packet type) and SLL2 (any 8-bit one), BGP messages that are
only their 19-byte header, far-future and zero timestamps, zero-length and truncated records.
The vectorised pass must give exactly the per-packet reference decoder's rows
(tests/decode/test_fast_path.py is the same check on plain pcap files)."""
from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from tests.decode.test_fast_path import KINDS, _assert_same, _frame

HEADER_ONLY = [b"\xff" * 16 + struct.pack("!HB", 19, kind) for kind in (1, 2, 3, 4, 5)]


def _bgp_header_only(i: int, kind: int) -> bytes:
    base = _frame("bgp", i)
    return base[:-19] + HEADER_ONLY[kind]


def _cooked(data: bytes, linktype: int, pkttype: int) -> bytes:
    proto, payload, src = data[12:14], data[14:], data[6:12]
    if linktype == 113:
        return struct.pack("!HHH", pkttype, 1, 6) + src + b"\0\0" + proto + payload
    return proto + b"\0\0" + struct.pack("!IHBB", 3, 1, pkttype & 0xFF, 6) + src + b"\0\0" + payload


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * ((-len(value)) % 4)


def _block(kind: int, body: bytes) -> bytes:
    return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def _pcapng(records: list[tuple[int, bytes, int]], linktype: int, tsresol: int) -> bytes:
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = _block(1, struct.pack("<HHI", linktype, 0, 262144) + _option(9, bytes([tsresol]))
                 + _option(0, b""))
    out = [shb, idb]
    for ts, data, flags in records:
        body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
        body += data + b"\0" * ((-len(data)) % 4)
        if flags is not None:
            body += _option(2, struct.pack("<I", flags)) + _option(0, b"")
        out.append(_block(6, body))
    return b"".join(out)


@given(picks=st.lists(st.tuples(st.sampled_from(KINDS + ["bgp-header"]), st.integers(0, 120),
                                st.sampled_from([None, 0, 1, 2, 3]), st.integers(0, 0xFFFF)),
                      min_size=1, max_size=30),
       linktype=st.sampled_from([1, 113, 276]), chunk=st.sampled_from([3, 1000]),
       stamps=st.sampled_from(["normal", "far-future", "zero"]))
def test_fast_path_equals_reference_on_hostile_shapes(tmp_path_factory, picks, linktype, chunk,
                                                      stamps):
    records = []
    for i, (kind, cut, flags, pkttype) in enumerate(picks):
        data = _bgp_header_only(i, cut % 5) if kind == "bgp-header" else _frame(kind, i)
        if linktype != 1:
            data = _cooked(data, linktype, pkttype)
        if cut % 7 == 0:
            data = data[:cut % 23]              # zero-length and very short records
        elif cut % 3 == 0 and cut < len(data):
            data = data[:cut]
        ts = {"normal": 1_700_000_000_000_000 + i, "far-future": (1 << 64) - 1 - i,
              "zero": 0}[stamps]
        records.append((ts, data, flags))
    path = tmp_path_factory.mktemp("shapes") / "mix.pcapng"
    # tsresol 6 (microseconds): the far-future stamps are ~5.8e14 s, beyond any calendar
    path.write_bytes(_pcapng(records, linktype, 6))
    _assert_same(path, chunk)
