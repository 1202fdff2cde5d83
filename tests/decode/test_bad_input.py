"""Bad input never gives a traceback: an unusable file is one clear error line and exit code 4
(diag/errors.py), a damaged record or packet becomes a ``malformed`` row with a reason while the
rest of the capture is still decoded. Property-based tests mutate valid crafted captures.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from diag.errors import ExitStatus, UnusableInput
from tests.craft import session_bad_files, session_captures
from tests.oracle import diag_view

REPO = Path(__file__).resolve().parents[2]
UNUSABLE = ["empty", "garbage", "text", "short_header", "unknown_linktype"]
# damaged at the end: (file, complete records before the damage)
DAMAGED_TAIL = {"truncated_record": 2, "truncated_record_header": 1, "pcapng_truncated_block": 2}


@pytest.fixture(scope="session")
def crafted(tmp_path_factory):
    return session_captures(tmp_path_factory)


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory):
    return session_bad_files(tmp_path_factory)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="120")
    return subprocess.run([sys.executable, "-m", "diag", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env=env)


def assert_one_error_line(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("diag: error:"), stderr
    # one error line; the CLI may add one 'hint:' line under it
    assert sum(ln.startswith("diag: error:") for ln in lines) == 1, stderr
    assert all(ln.startswith("hint:") for ln in lines[1:]) and len(lines) <= 2, stderr


@lru_cache(maxsize=None)
def decoded(path: Path, bgp_ports: tuple[int, ...] = (179,)):
    from diag.decode import DecodeOptions, decode_file
    return decode_file(path, DecodeOptions(bgp_ports=bgp_ports))


# --- unusable files -------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("name", UNUSABLE)
def test_unusable_file_is_one_line_and_exit_4(bad_files, name, fmt):
    proc = run_cli("pcap", str(bad_files[name]), "--format", fmt)
    assert proc.returncode == ExitStatus.UNUSABLE_INPUT, (proc.returncode, proc.stderr)
    assert_one_error_line(proc.stderr)
    assert str(bad_files[name]) in proc.stderr.splitlines()[0] or name == "empty"
    assert "Traceback" not in proc.stdout


def test_missing_file_is_one_line(tmp_path):
    proc = run_cli("pcap", str(tmp_path / "nope.pcap"))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("name", UNUSABLE)
def test_unusable_file_raises_unusable_input(bad_files, name):
    from diag.decode import decode_file
    with pytest.raises(UnusableInput):
        decode_file(bad_files[name])


# --- damaged last record: keep what came before ---------------------------------------------------

@pytest.mark.parametrize("name", sorted(DAMAGED_TAIL))
def test_damaged_last_record_keeps_complete_ones(bad_files, name):
    packets = decoded(bad_files[name]).packets
    good = packets[packets["malformed"].isna()]
    bad = packets[packets["malformed"].notna()]
    assert len(good) == DAMAGED_TAIL[name]
    assert (good["l3"] == "ipv4").all() and (good["src"] == "10.16.0.1").all()
    assert len(bad) == 1 and str(bad.iloc[0]["malformed"]).strip(), packets
    assert int(bad.iloc[0]["frame"]) == DAMAGED_TAIL[name] + 1


@pytest.mark.parametrize("name", sorted(DAMAGED_TAIL))
def test_damaged_last_record_cli_json(bad_files, name):
    proc = run_cli("pcap", str(bad_files[name]), "--format", "json")
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.returncode == ExitStatus.OK, proc.stderr
    json.loads(proc.stdout)


# --- bad BGP messages and bad packets among good ones ---------------------------------------------

def test_bad_bgp_messages_are_malformed_rows_and_good_ones_decode(crafted):
    c = crafted["bad_bgp"]
    t = decoded(c.path)
    ours = diag_view.bgp_frames(t)
    for frame, want in c.bgp.items():
        assert ours.get(frame) == want, (frame, ours.get(frame), want)
    msgs, events = t.bgp_messages, t.stream_events
    for frame in c.packets:   # the frames carrying a bad message
        reasons = [str(r) for r in msgs[(msgs["frame"] == frame) & msgs["malformed"].notna()]["malformed"]]
        reasons += [f"{e} {d}" for e, d in events[events["frame"] == frame][["event", "detail"]].values]
        assert any(r.strip() for r in reasons), f"frame {frame}: no malformed row or stream event"
        # a malformed UPDATE announces nothing (RFC 7606: treat-as-withdraw or drop)
        routes = t.bgp_routes[t.bgp_routes["frame"] == frame]
        assert not (routes["action"] == "announce").any(), routes.to_dict("records")


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("name", ["bad_bgp", "bad_packets"])
def test_bad_packets_cli_does_not_crash(crafted, name, fmt):
    c = crafted[name]
    proc = run_cli("pcap", str(c.path), "--format", fmt)
    assert proc.returncode == ExitStatus.OK, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    if fmt == "json":
        summary = json.loads(proc.stdout)
        assert summary["packets"]["total"] == c.frames
        if name == "bad_packets":
            assert summary["packets"]["malformed"] == sum("bad" in k for k in c.packets.values())


def test_bad_packets_are_malformed_rows_and_good_ones_decode(crafted):
    c = crafted["bad_packets"]
    t = decoded(c.path)
    packets, tunnels = t.packets, t.tunnels
    assert sorted(packets["frame"]) == list(range(1, c.frames + 1))
    for frame, kind in c.packets.items():
        row = packets[packets["frame"] == frame].iloc[0]
        if "good" in kind:
            assert row["malformed"] is None or diag_view.missing(row["malformed"]), row
            assert row["l3"] == "ipv4" and int(row["ip_proto"]) == 1
            continue
        reasons = [row["malformed"]] + list(tunnels[tunnels["frame"] == frame]["malformed"])
        assert any(not diag_view.missing(r) and str(r).strip() for r in reasons), (frame, kind, reasons)
    deep = tunnels[tunnels["frame"] == 5]
    assert 1 <= len(deep) <= 20
    assert list(deep["vni"][:3]) == [1019, 1018, 1017]   # outermost first


# --- property-based: mutate valid captures ----------------------------------------------------------

BASES = ["bgp_session", "tunnels", "two_ifaces", "sll2", "bgp_as2", "l3_variants"]


def _decode_bytes(data: bytes, suffix: str) -> None:
    from diag.decode import DecodeOptions, decode_file
    with tempfile.NamedTemporaryFile(suffix=suffix) as fh:
        fh.write(data)
        fh.flush()
        try:
            t = decode_file(fh.name, DecodeOptions(bgp_ports=(179, 1790)))
        except UnusableInput:
            return
        for _, table in t.items():
            len(table)


@pytest.fixture(scope="session")
def base_paths(crafted) -> dict[str, Path]:
    return {name: crafted[name].path for name in BASES}


@given(base=st.sampled_from(BASES), flips=st.lists(
    st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=12),
    cut=st.one_of(st.none(), st.floats(0, 1)))
def test_mutated_capture_never_raises(base_paths, base, flips, cut):
    path = base_paths[base]
    data = bytearray(path.read_bytes())
    for where, value in flips:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[:int(cut * len(data))]
    _decode_bytes(bytes(data), path.suffix)


@given(body=st.binary(max_size=200), length=st.one_of(st.none(), st.integers(0, 0xFFFF)),
       msg_type=st.integers(0, 255), segments=st.integers(1, 3))
def test_random_bgp_message_never_raises(tmp_path_factory, body, length, msg_type, segments):
    """Arbitrary BGP bodies and lengths behind a valid marker, split over TCP segments."""
    from tests.craft import bgpmsg
    from tests.craft.builders import A, B, Frames, ether_tcp_emit
    from tests.craft.pcapfile import LINKTYPE_ETHERNET, pcap_bytes
    from tests.craft.tcpflow import TcpFlow
    frames = Frames()
    flow = TcpFlow(ether_tcp_emit(frames), A, B, 40100, 179)
    flow.handshake()
    flow.queue("ab", bgpmsg.open_message(4_200_000_001, 90, "10.0.0.1", [
        bgpmsg.cap_four_octet_as(4_200_000_001), bgpmsg.cap_add_path([(1, 1, 3)])]))
    flow.queue("ab", bgpmsg.message(msg_type, body, length=length))
    flow.queue("ab", bgpmsg.keepalive())
    total = len(flow.dirs["ab"].stream)
    step = max(1, total // segments)
    flow.send("ab", [step] * (segments - 1))
    _decode_bytes(pcap_bytes(frames.records, LINKTYPE_ETHERNET), ".pcap")


@given(base=st.sampled_from(BASES), flips=st.lists(
    st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_capture_summary_never_raises(base_paths, base, flips):
    """The whole `diag pcap --format json` path in-process: decode, summary, JSON rendering."""
    import contextlib
    import io

    from diag.errors import DiagError
    from diag.pipeline import Ports, pcap_summary
    path = base_paths[base]
    data = bytearray(path.read_bytes())
    for where, value in flips:
        data[int(where * len(data))] = value
    with tempfile.NamedTemporaryFile(suffix=path.suffix) as fh:
        fh.write(bytes(data))
        fh.flush()
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                json.dump(pcap_summary(Path(fh.name), Ports(bgp=(1790,)), workers=1), out,
                          default=str)
        except DiagError as err:
            assert err.exit_status == ExitStatus.UNUSABLE_INPUT, err.message
            return
        json.loads(out.getvalue())
