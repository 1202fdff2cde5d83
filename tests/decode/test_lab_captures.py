"""diag's decoder against tshark on the real lab captures committed in captures/lab/.

Recorded by captures/record_lab.py with tcpdump inside lab namespaces (FRR, GoBGP, BIRD, Linux
VXLAN, kernel ARP; see captures/README.md). Compared frame by frame with the oracle helpers of
tests/oracle (tshark JSON/fields, pyshark): link/IP facts of every frame, BGP messages and routes,
VXLAN layers, ARP facts. Guards check that each capture holds what it is committed for.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest

from tests.oracle import diag_view, tshark

pytestmark = [pytest.mark.tshark,
              pytest.mark.skipif(not tshark.available(), reason="tshark not installed")]

LAB = Path(__file__).resolve().parents[2] / "captures" / "lab"
VXLAN = ("udp.port==8472,vxlan",)
CAPTURES = sorted(p.name for p in LAB.glob("*.pcap"))
BGP = [name for name in CAPTURES if name.startswith("bgp-")]


@lru_cache(maxsize=None)
def decoded(path: Path):
    from diag.decode import DecodeOptions, decode_file
    return decode_file(path, DecodeOptions())


def assert_frames_equal(got: dict, want: dict, what: str) -> None:
    for frame in sorted(set(got) | set(want)):
        assert got.get(frame) == want.get(frame), (
            f"{what}: frame {frame} differs\n diag:   {got.get(frame)}\n oracle: {want.get(frame)}")


def test_the_captures_are_there():
    assert {"bgp-frr-gobgp-open-update.pcap", "bgp-frr-bird-md5-bad-peer-as.pcap",
            "bgp-gobgp-bad-peer-as.pcap", "bgp-frr-hold-timer-expired.pcap",
            "vxlan-8472-and-port-mismatch.pcap", "arp-unanswered-then-answered.pcap",
            "arp-multiple-responders.pcap", "leak-eth0-any-sll2.pcap"} <= set(CAPTURES)


@pytest.mark.parametrize("name", CAPTURES)
def test_packets_match_tshark(name):
    path = LAB / name
    ours, oracle = diag_view.packet_facts(decoded(path)), tshark.packet_facts(path)
    assert oracle
    assert sorted(ours) == sorted(oracle), f"{name}: frame numbers differ"
    for frame, want in oracle.items():
        got = ours[frame]
        assert abs(got["ts"] * 1e9 - want["ts_ns"]) < 1_000, (name, frame, "ts")
        for key, value in want.items():
            if key != "ts_ns":
                assert got.get(key) == value, f"{name} frame {frame} {key}: {got.get(key)!r} vs {value!r}"


@pytest.mark.parametrize("name", BGP)
def test_bgp_matches_tshark(name):
    path = LAB / name
    oracle = tshark.bgp_frames(path, (), True)
    assert oracle, "tshark saw no BGP: the comparison would prove nothing"
    assert_frames_equal(diag_view.bgp_frames(decoded(path)), oracle, f"{name} BGP")


# what each BGP capture is committed for: (message type, NOTIFICATION code/subcode) seen by tshark
EXPECTED_NOTIFICATIONS = {
    "bgp-gobgp-bad-peer-as.pcap": (2, 2),
    "bgp-frr-bird-md5-bad-peer-as.pcap": (2, 2),
    "bgp-frr-hold-timer-expired.pcap": (4, 0),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_NOTIFICATIONS))
def test_notifications_decoded_like_tshark(name):
    path = LAB / name
    minors = ["open", "update", "expired", "state", "cease", "capability", "unknown"]
    args = tshark._args(path, (), tshark.BASE_PREFS) + [
        "-Y", "bgp.type == 3", "-T", "fields", "-e", "frame.number", "-e", "bgp.notify.major_error"]
    for minor in minors:                     # Wireshark names the subcode field per error code
        args += ["-e", f"bgp.notify.minor_error_{minor}"]
    want = {}
    for line in tshark._run(args + ["-E", "occurrence=f"]).splitlines():
        frame, major, *subcodes = line.split("\t")
        want[int(frame)] = (int(major), int(next((v for v in subcodes if v), "0"), 0))
    assert EXPECTED_NOTIFICATIONS[name] in want.values(), want
    msgs = decoded(path).bgp_messages
    notes = msgs[msgs["type"] == 3]
    got = {int(r["frame"]): (int(r["notify_code"]), int(r["notify_subcode"]))
           for _, r in notes.iterrows()}
    assert got == want


def test_open_capabilities_from_three_daemons():
    """OPENs of FRR, GoBGP and BIRD, with their capability codes, as tshark reads them."""
    seen = {}
    for name in ("bgp-frr-gobgp-open-update.pcap", "bgp-frr-bird-md5-bad-peer-as.pcap"):
        path = LAB / name
        out = tshark._run(tshark._args(path, (), tshark.BASE_PREFS) + [
            "-Y", "bgp.type == 1", "-T", "fields", "-e", "frame.number", "-e", "ip.src",
            "-e", "bgp.cap.type", "-E", "occurrence=a", "-E", "aggregator=|"])
        msgs = decoded(path).bgp_messages
        for line in out.splitlines():
            frame, src, caps = line.split("\t")
            row = msgs[(msgs["frame"] == int(frame)) & (msgs["type"] == 1)]
            assert len(row) == 1
            assert len(row.iloc[0]["open_capabilities"]) == len(caps.split("|"))
            seen[(name, src)] = sorted(int(c) for c in caps.split("|"))
    assert len(seen) >= 4                     # router and node OPEN in both captures
    assert all(65 in caps for caps in seen.values())       # 4-octet AS everywhere


def test_vxlan_and_arp_match_pyshark():
    path = LAB / "vxlan-8472-and-port-mismatch.pcap"
    tunnels, arps = tshark.tunnels_and_arp(path, VXLAN)
    assert {layer.outer_dport for layers in tunnels.values() for layer in layers} == {8472}
    t = decoded(path)
    assert_frames_equal(diag_view.tunnel_frames(t), tunnels, "vxlan tunnels")
    for name in ("arp-unanswered-then-answered.pcap", "arp-multiple-responders.pcap"):
        path = LAB / name
        tunnels, arps = tshark.tunnels_and_arp(path)
        assert arps
        assert_frames_equal(diag_view.arp_frames(decoded(path)), arps, f"{name} ARP")


def test_leak_capture_is_sll2_and_shows_eth0():
    path = LAB / "leak-eth0-any-sll2.pcap"
    import struct

    linktype = struct.unpack("<I", path.read_bytes()[20:24])[0]
    assert linktype == 276                                  # LINKTYPE_LINUX_SLL2
    out = tshark._run(tshark._args(path, (), tshark.BASE_PREFS) + [
        "-T", "fields", "-e", "sll.ifindex", "-e", "sll.pkttype", "-e", "ip.src"])
    rows = [tuple(line.split("\t")) for line in out.splitlines()]
    # healthy: in from the pod veth, out the cluster NIC (and replies back); leaked: out eth0
    # — at least three interfaces, and requests from the pod leaving by two different ones
    assert len({r[0] for r in rows}) >= 3, rows
    outgoing = {r[0] for r in rows if r[1] == "4" and r[2] == "172.20.0.10"}   # 4 = outgoing
    assert len(outgoing) >= 2, rows
    t = decoded(path)
    assert len(t.packets) == len(rows)


def _tshark_tcp_control(path: Path) -> dict[int, set[str]]:
    """frame -> {"syn", "syn-ack", "rst", "fin", "tcp-md5"} for TCP on port 179, read by tshark."""
    import subprocess

    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-Y", "tcp.port==179 && tcp.flags & 0x07",
         "-T", "fields", "-e", "frame.number", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack",
         "-e", "tcp.flags.reset", "-e", "tcp.flags.fin", "-e", "tcp.option_kind"],
        capture_output=True, text=True, check=True, timeout=60).stdout
    frames: dict[int, set[str]] = {}
    for line in out.splitlines():
        frame, syn, ack, rst, fin, kinds = (line.split("\t") + [""] * 6)[:6]
        got = frames.setdefault(int(frame), set())
        if syn in ("1", "True"):
            got.add("syn-ack" if ack in ("1", "True") else "syn")
            if "19" in kinds.split(","):
                got.add("tcp-md5")
        if rst in ("1", "True"):
            got.add("rst")
        if fin in ("1", "True"):
            got.add("fin")
    return frames


@pytest.mark.parametrize("name", BGP)
def test_tcp_control_events_match_tshark(name):
    """SYN / SYN-ACK (with TCP-MD5) / RST / FIN on port 179: what the BGP analyzers read from a
    capture to tell a blocked port from a refused one from a key mismatch."""
    t = decoded(LAB / name)
    ev = t.stream_events
    ours: dict[int, set[str]] = {}
    for row in ev[ev["event"].isin(["syn", "syn-ack", "rst", "fin"])].itertuples(index=False):
        ours.setdefault(int(row.frame), set()).add(row.event)
        if row.detail:
            ours[int(row.frame)].update(str(row.detail).split(","))
    want = _tshark_tcp_control(LAB / name)
    assert want, f"{name}: no TCP control segment on 179 in the capture"
    assert_frames_equal(ours, want, f"{name} TCP control")


@pytest.mark.parametrize("name", BGP)
def test_refused_connections_grouped_as_tshark_sees_them(name):
    """A SYN answered by RST with no SYN-ACK, per TCP stream as tshark numbers them, is one
    refused attempt: the summary groups them by who connected to whom instead of listing one
    empty session per source port, and the text report says so in one line."""
    import json
    import os
    import subprocess
    import sys

    out = subprocess.run(
        ["tshark", "-n", "-r", str(LAB / name), "-Y", "tcp.port==179 && tcp.flags & 0x06",
         "-T", "fields", "-e", "tcp.stream", "-e", "ip.src", "-e", "ip.dst", "-e", "tcp.dstport",
         "-e", "tcp.flags.syn", "-e", "tcp.flags.ack", "-e", "tcp.flags.reset"],
        capture_output=True, text=True, check=True, timeout=60).stdout
    streams: dict[str, dict] = {}
    for line in out.splitlines():
        stream, src, dst, dport, syn, ack, rst = line.split("\t")
        s = streams.setdefault(stream, {"syn": None, "synack": False, "rst": False})
        if syn in ("1", "True") and ack not in ("1", "True"):
            s["syn"] = s["syn"] or (src, f"{dst}:{dport}")
        s["synack"] |= syn in ("1", "True") and ack in ("1", "True")
        s["rst"] |= rst in ("1", "True")
    want: dict[tuple, int] = {}
    for s in streams.values():
        if s["syn"] and s["rst"] and not s["synack"]:
            want[s["syn"]] = want.get(s["syn"], 0) + 1
    if name == "bgp-frr-gobgp-open-update.pcap":      # committed for its refused SYNs
        assert sum(want.values()) >= 5, want
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root), COLUMNS="200")
    summary = json.loads(subprocess.run(
        [sys.executable, "-m", "diag", "pcap", str(LAB / name), "--format", "json"],
        capture_output=True, text=True, timeout=120, cwd=root, env=env).stdout)
    got = {(a["from"], a["to"]): a["attempts"] for a in summary["bgp"]["connection_attempts"]
           if a["outcome"] == "refused"}
    assert got == want
    refused = [s for s in summary["bgp"]["sessions"] if s["connection"] == "refused"]
    assert len(refused) == sum(want.values())
    text = subprocess.run([sys.executable, "-m", "diag", "pcap", str(LAB / name)],
                          capture_output=True, text=True, timeout=120, cwd=root, env=env).stdout
    for (client, server), n in want.items():
        times = "once" if n == 1 else f"{n} times"
        assert f"connection {client} > {server} refused (SYN answered by RST), {times}" in text
    for s in refused:
        assert f"session {s['session']}" not in text
