"""Each distinct crash found while fuzzing hostile evidence, pinned by its smallest input.

Where else a crash is pinned (with more context):

| crash (before the fix)                                             | pinned in |
|--------------------------------------------------------------------|-----------|
| RecursionError: JSON nested thousands deep, in an output or the manifest | tests/facts/test_bad_input.py (deep_*) |
| TypeError/AttributeError/ValueError: wrong types in ip-link, ip-addr, ip-neigh, ip-rule, bridge-fdb, ip-route-get, routes | tests/facts/test_bad_input.py (every output damaged) |
| TypeError int(None) in the FIB (rule priority), the capture iface map (ifindex); ValueError '5/32' | tests/facts/test_bad_input.py, below |
| AttributeError/TypeError: a host record that is a string, commands not a list | tests/facts/test_bad_input.py (bad host record) |
| TypeError: boolean value of NA (header-only NOTIFICATION) in explain and report | tests/test_capture_shapes.py, below |
| struct.error: short pcapng IDB / obsolete PB / SPB at the end of a file | tests/test_capture_shapes.py, below |
| ValueError in the FIB lookup: a BIRD route via ``1-.31.2.1`` (found by benchmarks/fuzz.py) | below |
| TypeError sorting the model's links: an ip-link record with no name; boolean value of NA: a nullable ifindex in the capture iface map (benchmarks/fuzz.py, after the Kubernetes merge) | below |
| the decoders disagree: SLL/SLL2 direction with epb_flags 3, SLL packet type > 255 | tests/decode/test_fast_path_shapes.py, below |
| OverflowError/ValueError: far-future timestamps in the text output and the report | tests/test_capture_shapes.py |
| rich MarkupError: ``[/]`` in an interface name or a shutdown message | tests/test_capture_shapes.py |
| exit 1 with no line on a closed pipe (rich); a silent 130 or "Aborted!" on Ctrl-C (typer, click) | tests/test_edges.py |
"""
from __future__ import annotations

import json
import struct

from diag.decode import iter_decode
from tests.fuzz.test_fuzz import parse_one


def test_rule_priority_that_is_not_a_number_is_refused_not_crashed():
    part, failure = parse_one("ip-rule-v4", b'[{"priority": "x", "src": "all", "table": "main"}]')
    assert part is None and "priority is missing" in failure


def test_route_destination_that_is_not_a_prefix_is_refused():
    part, failure = parse_one("ip-route-v4", json.dumps([{"dst": "5", "dev": "eth0"}]).encode())
    assert part is None and "not a prefix" in failure


def test_bird_route_via_something_that_is_not_an_address_is_refused():
    """benchmarks/fuzz.py's first find: a mutated BIRD table reached the FIB's lookup."""
    from tests.fuzz.strategies import FIXTURES

    real = min((FIXTURES / "bird-route-all").glob("*.out")).read_text()
    assert "via " in real
    head, _, tail = real.partition("via ")
    part, failure = parse_one("bird-route-all", (head + "via 1-." + tail.split(".", 1)[1]).encode())
    assert part is None and "nexthop is '1-." in failure and "not an address" in failure


def test_link_with_a_string_index_is_refused():
    part, failure = parse_one("ip-link", b'[{"ifindex": null, "ifname": 5, "flags": 7}]')
    assert part is None and failure


def test_link_without_a_name_is_refused():
    """benchmarks/fuzz.py: a link record mutated into ``{"prefsrc": [179, false]}`` gave an
    interface with no name, which the model's tunnel inference could not sort."""
    part, failure = parse_one("ip-link", b'[{"ifindex": 1, "ifname": "lo"}, {"prefsrc": [179]}]')
    assert part is None and "ifname" in failure


def test_capture_iface_map_takes_a_nullable_missing_ifindex():
    import pandas as pd

    from diag.facts.packets import _iface_map

    links = pd.DataFrame({"host": ["a", "a", "b"],
                          "ifindex": pd.array([1, None, 3], dtype="Int64"),
                          "ifname": ["lo", "x", "eth0"]})
    assert _iface_map(links, "a") == {1: "lo"}


def _pcapng(linktype: int, frame: bytes, flags: int) -> bytes:
    def block(kind, body):
        body += b"\0" * ((-len(body)) % 4)
        return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    return (block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
            + block(1, struct.pack("<HHI", linktype, 0, 65535))
            + block(6, struct.pack("<IIIII", 0, 0, 1, len(frame), len(frame)) + frame
                    + b"\0" * ((-len(frame)) % 4) + struct.pack("<HHI", 2, 4, flags)
                    + struct.pack("<HH", 0, 0)))


def _directions(path):
    out = []
    for vectorize in (False, True):
        tables = list(iter_decode(path, vectorize=vectorize))
        out.append([(r.direction, r.pkttype) for t in tables
                    for r in t.packets.itertuples(index=False)])
    return out


def test_sll2_outgoing_with_undefined_epb_flags_is_out_in_both_decoders(tmp_path):
    payload = bytes.fromhex("4500001c000100004011f97d0a0000010a000002") + b"\0" * 8
    sll2 = b"\x08\x00\0\0" + struct.pack("!IHBB", 3, 1, 4, 6) + b"\x02" * 6 + b"\0\0" + payload
    path = tmp_path / "sll2.pcapng"
    path.write_bytes(_pcapng(276, sll2, 3))
    slow, fast = _directions(path)
    assert slow == fast == [("out", "outgoing")]


def test_sll_packet_type_above_255_is_named_alike(tmp_path):
    payload = bytes.fromhex("4500001c000100004011f97d0a0000010a000002") + b"\0" * 8
    sll = struct.pack("!HHH", 300, 1, 6) + b"\x02" * 6 + b"\0\0" + b"\x08\x00" + payload
    path = tmp_path / "sll.pcapng"
    path.write_bytes(_pcapng(113, sll, 0))
    slow, fast = _directions(path)
    assert slow == fast == [("in", "300")]


def test_short_interface_block_at_the_end_is_damage(tmp_path):
    from diag.decode.capture import open_capture

    head = _pcapng(1, b"\0" * 14, 0)
    path = tmp_path / "short.pcapng"
    path.write_bytes(head + struct.pack("<III", 1, 12, 12))
    _info, records = open_capture(path)
    items = list(records)
    assert items[-1].reason == "interface description block too short"
