"""One reassembly rule: a sighting's outer datagram is judged by the decoder's ``fragments`` table.

The sightings pass (diag.decode.sightings) reads a fragmented tunnel datagram's identity from its
first fragment and never reassembles; the facts join each such row to the decoder's row of the
same datagram (diag.decode.fragments). One crafted capture holds tunnelled datagrams in
fragments: in order, last fragment first, one whose second fragment never came, two interleaved
ones between the same VTEPs, and one not fragmented. tshark (IP reassembly on) is the oracle for
which datagrams were reassembled and from how many fragments (two passes, so that a first
fragment names the frame its datagram was reassembled in).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from diag.facts.packets import capture_tables
from tests.craft.pcapfile import LINKTYPE_ETHERNET, Record, write_pcap


def _vxlan(ident: int, inner_id: int, size: int = 1300):
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN

    inner = (Ether(src="02:dd:00:00:00:01", dst="02:dd:00:00:00:02")
             / IP(src="10.1.0.5", dst="10.2.0.6", id=inner_id, flags="DF")
             / TCP(sport=41000, dport=8080, seq=inner_id, flags="PA") / (b"z" * size))
    return IP(bytes(IP(src="192.0.2.1", dst="192.0.2.2", id=ident) / UDP(sport=33333, dport=8472)
                    / VXLAN(vni=2, flags=0x08) / inner))


def crafted(tmp_path: Path) -> tuple[Path, dict[int, tuple[int, int | None, str | None]]]:
    """The capture and, per first-fragment frame, (inner ip id, fragments, status)."""
    from scapy.layers.inet import fragment
    from scapy.layers.l2 import Ether

    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x0800)
    in_order = fragment(_vxlan(700, 1), fragsize=800)
    reversed_ = fragment(_vxlan(701, 2), fragsize=800)
    lost = fragment(_vxlan(702, 3), fragsize=800)
    a, b = fragment(_vxlan(703, 4), fragsize=600), fragment(_vxlan(704, 5), fragsize=600)
    assert len(in_order) == 2 and len(a) == 3 and len(b) == 3
    frames = [in_order[0], in_order[1],                      # 1, 2
              reversed_[1], reversed_[0],                    # 3, 4 (first piece at 4)
              lost[0],                                       # 5 (its second never comes)
              a[0], b[0], a[1], b[1], b[2], a[2],            # 6..11 interleaved
              _vxlan(705, 6, size=200)]                      # 12 whole
    records = [Record(1_700_000_000_000_000_000 + n * 1_000_000, bytes(e / f))
               for n, f in enumerate(frames, start=1)]
    truth = {1: (1, 2, "reassembled"), 4: (2, 2, "reassembled"), 5: (3, 1, "incomplete"),
             6: (4, 3, "reassembled"), 7: (5, 3, "reassembled"), 12: (6, 1, None)}
    return write_pcap(tmp_path / "frags.pcap", records, LINKTYPE_ETHERNET), truth


def _sightings(path: Path):
    tables, errors = capture_tables([("h", path)], None)
    assert not errors
    return tables["sightings"].set_index("frame"), tables["fragments"]


def test_first_fragments_carry_the_decoders_verdict(tmp_path):
    path, truth = crafted(tmp_path)
    s, fragments = _sightings(path)
    assert sorted(int(f) for f in s.index) == sorted(truth)   # later pieces have no row
    for frame, (inner_id, count, status) in truth.items():
        row = s.loc[frame]
        assert row["ip_id"] == inner_id and row["depth"] == 1, (frame, row)
        assert row["outer_fragments"] == count, (frame, row["outer_fragments"])
        got = row["outer_status"]
        assert (got if isinstance(got, str) else None) == status, (frame, got)
    # the same verdicts as the decoder's own rows: one rule, not two
    decided = fragments[fragments["tunnel_depth"] == 0]
    assert sorted(decided["status"]) == sorted(st for _i, _n, st in truth.values() if st)
    # a fragmented datagram's outer length is its largest fragment (what the underlay carried)
    assert s.loc[1, "outer_len"] == int(decided[decided["ip_id"] == 700]["largest_fragment"]
                                        .iloc[0]) < 1000


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is the oracle")
def test_reassembly_agrees_with_tshark(tmp_path):
    path, truth = crafted(tmp_path)
    s, _fragments = _sightings(path)
    out = subprocess.run(
        ["tshark", "-n", "-2", "-r", str(path), "-o", "ip.defragment:TRUE", "-d",
         "udp.port==8472,vxlan", "-T", "fields", "-E", "separator=|", "-E", "occurrence=f",
         "-e", "frame.number", "-e", "ip.reassembled_in", "-e", "ip.fragment.count"],
        capture_output=True, text=True, check=True, timeout=60).stdout
    shark = {int(n): (r, c) for n, r, c in (line.split("|") for line in out.splitlines())}
    for frame in truth:
        reassembled_in, count = shark[frame]
        # the frame that completed a datagram shows it reassembled itself (a fragment count)
        at = int(reassembled_in) if reassembled_in else frame if count else None
        status = s.loc[frame, "outer_status"]
        if status == "reassembled":
            assert at is not None, frame
            assert int(shark[at][1]) == s.loc[frame, "outer_fragments"]
        else:
            assert at is None, (frame, reassembled_in, count)
