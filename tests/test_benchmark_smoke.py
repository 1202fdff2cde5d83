"""Smoke run of the issue-3 benchmark at small size: diag's counts equal the generator's truth.

The generator (benchmarks/generate.py) counts what it writes, independently of diag; tshark checks
the same small file as a second, independent oracle (BGP messages by type after its own TCP
reassembly, VXLAN packets with decode-as on 8472, ARP opcodes). The timing runs themselves
(benchmarks/run.py) stay out of CI.
"""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
PACKETS = 3000


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


generate = _load("generate")
run = _load("run")


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("bench") / "mix.pcap"
    truth = generate.generate(PACKETS, path, seed=11)
    return path, truth


def test_mix_has_what_the_benchmark_claims(mix) -> None:
    _, truth = mix
    share = {k: v / PACKETS for k, v in truth["by_category"].items()}
    assert 0.5 < share["vxlan"] < 0.7 and 0.14 < share["bgp"] < 0.26
    assert 0.05 < share["arp"] < 0.15 and 0.05 < share["other"] < 0.15
    bgp = truth["bgp"]
    assert bgp["messages"]["OPEN"] >= 2 and bgp["messages"]["UPDATE"] > 50
    assert bgp["messages"]["KEEPALIVE"] > 0
    assert 0.12 < bgp["split_messages"] / bgp["messages_total"] < 0.3
    assert bgp["multi_message_segments"] > 0
    assert bgp["prefix_rows"]["announce"] > bgp["messages"]["UPDATE"]
    assert bgp["prefix_rows"]["withdraw"] > 0
    assert len(truth["vxlan"]["vnis"]) >= 4
    assert truth["arp"]["unanswered"] > 0 and truth["arp"]["multiple_responders"]


def test_generator_is_deterministic(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.pcap", tmp_path / "b.pcap", tmp_path / "c.pcap"
    generate.generate(400, a, seed=3)
    generate.generate(400, b, seed=3)
    generate.generate(400, c, seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_diag_counts_equal_the_truth(mix) -> None:
    from diag.decode import decode_file
    from diag.decode.summary import CaptureSummary

    path, truth = mix
    tables = decode_file(path)
    assert len(tables.packets) == truth["packets"]
    assert int(tables.packets["malformed"].notna().sum()) == 0
    types = tables.bgp_messages["type_name"].value_counts().to_dict()
    assert types == {k: v for k, v in truth["bgp"]["messages"].items() if v}
    assert int(tables.bgp_messages["malformed"].notna().sum()) == 0
    assert tables.bgp_routes["action"].value_counts().to_dict() == truth["bgp"]["prefix_rows"]
    vx = tables.tunnels[tables.tunnels["type"] == "vxlan"]
    assert {str(k): int(v) for k, v in vx["vni"].value_counts().items()} == truth["vxlan"]["by_vni"]
    ops = tables.arp["op"].value_counts().to_dict()
    assert ops == {"request": truth["arp"]["requests"], "reply": truth["arp"]["replies"]}

    summary = CaptureSummary()
    summary.add(tables)
    found = run.counts_from_summary(summary.result())
    diffs = [(what, got, want) for what, got, want in run.compare(truth, found) if got != want]
    assert diffs == []


def test_several_workers_count_the_truth(mix) -> None:
    """The multi-core path (``diag pcap --workers N``), cut into small blocks so that BGP
    connections and split messages cross the workers: the generator's truth again, and the
    one-process summary exactly."""
    import json

    from diag.decode import DecodeOptions, iter_rows
    from diag.decode.parallel import summarize
    from diag.decode.summary import CaptureSummary

    path, truth = mix
    result = summarize(path, DecodeOptions(), workers=2, chunk_packets=256)
    diffs = [(what, got, want) for what, got, want in
             run.compare(truth, run.counts_from_summary(result)) if got != want]
    assert diffs == []
    one = CaptureSummary()
    for chunk in iter_rows(path, DecodeOptions(), chunk_packets=256):
        one.add(chunk)
    assert json.dumps(result, default=str) == json.dumps(one.result(), default=str)


def test_slice_keeps_the_first_packets(mix, tmp_path: Path) -> None:
    from diag.decode import decode_file

    path, _ = mix
    part = tmp_path / "slice.pcap"
    assert run.write_slice(path, part, 500) == 500
    assert len(decode_file(part).packets) == 500


def test_perfect_split_decodes_every_packet_once(mix, tmp_path: Path) -> None:
    """The yardstick ``run.py --multicore`` sets beside ``--workers N``: the file cut into
    consecutive pieces (every record once, in order: the pieces' timestamps and bytes put
    together are the file's), each decoded by its own pinned process started on cue."""
    from diag.decode import decode_file

    path, _ = mix
    pieces = run.write_pieces(path, tmp_path, 3, PACKETS - 1)
    frames = [decode_file(p).packets for p in pieces]
    assert [len(f) for f in frames] == [1000, 1000, 999]
    whole = decode_file(path).packets
    joined = [ts for f in frames for ts in f["ts"].tolist()]
    assert joined == whole["ts"].tolist()[:PACKETS - 1]
    assert b"".join(p.read_bytes()[24:] for p in pieces) == \
        path.read_bytes()[24:24 + sum(p.stat().st_size - 24 for p in pieces)]
    split = run.perfect_split(pieces[:2])
    assert split["packets"] == 2000
    assert len(split["each"]) == 2 and split["elapsed"] >= max(split["each"]) > 0


@pytest.mark.tshark
def test_tshark_counts_the_same(mix) -> None:
    if not shutil.which("tshark"):
        pytest.fail("tshark is not installed (apt-get install tshark)")
    path, truth = mix
    out = subprocess.run(run.tshark_argv(path), capture_output=True, text=True, check=True,
                         timeout=60).stdout
    counts = run.tshark_counts(out)
    names = {"1": "OPEN", "2": "UPDATE", "3": "NOTIFICATION", "4": "KEEPALIVE"}
    by_name = {names[k]: v for k, v in counts["bgp_types"].items()}
    assert by_name == {k: v for k, v in truth["bgp"]["messages"].items() if v}
    assert counts["vxlan_packets"] == truth["vxlan"]["packets"]
    assert Counter(counts["arp_ops"]) == Counter({"1": truth["arp"]["requests"],
                                                  "2": truth["arp"]["replies"]})


@pytest.mark.parametrize("mix_name", ["light", "bgp-heavy"])
def test_the_counts_only_reader_counts_what_the_generator_wrote(tmp_path, mix_name) -> None:
    """benchmarks/count_reader.py, the yardstick run.py times diag against, is a real reader:
    its packets, BGP messages by type (reassembled), VXLAN packets by VNI and ARP opcodes equal
    the truth."""
    reader = _load("count_reader")
    path = tmp_path / "mix.pcap"
    truth = generate.generate(PACKETS, path, seed=5, mix=mix_name)
    counts = reader.count(str(path))
    assert run.reader_matches(truth, counts) == []
    assert counts["bgp_types"]["2"] > 100
