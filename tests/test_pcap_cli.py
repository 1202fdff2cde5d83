"""`diag pcap` as a user runs it: text, JSON, --export, --frame, --deep, usage errors.

Runs the installed CLI in a subprocess (exact exit codes, nothing but one error line on stderr)
on the example capture shipped in captures/ — the README's main command.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from diag.decode import decode_file

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "captures" / "bgp_session.pcap"
VXLAN = ROOT / "tests" / "fixtures" / "pcap" / "vxlan_port_mismatch.pcap"


def diag(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diag", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("hint:")]
    assert len(lines) == 1 and lines[0].startswith("diag: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_readme_main_command_summarises_the_example():
    proc = diag("pcap", str(EXAMPLE))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "579 packets" in out
    # the sessions, the speakers' AS numbers and the NOTIFICATIONs by name
    assert "198.51.100.1:179-198.51.100.12:38677" in out
    assert "AS 65000" in out and "AS 65002" in out
    assert "Cease / Other Configuration Change" in out
    assert "OPEN Message Error / Bad Peer AS" in out
    assert "vxlan" in out and "100" in out
    assert "ARP requests without a reply" in out


def test_json_summary_agrees_with_the_tables():
    proc = diag("pcap", str(EXAMPLE), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    tables = decode_file(EXAMPLE)
    assert summary["schema"] == "diag.pcap/1"
    assert summary["packets"]["total"] == len(tables.packets)
    by_type = tables.bgp_messages["type_name"].value_counts().to_dict()
    assert {k: v for k, v in summary["bgp"]["messages"].items() if v} == by_type
    routes = tables.bgp_routes
    assert summary["bgp"]["prefixes"]["announced"] == routes[routes.action == "announce"]["prefix"].nunique()
    assert summary["bgp"]["prefixes"]["withdrawn"] == routes[routes.action != "announce"]["prefix"].nunique()
    assert summary["tunnels"]["vxlan"]["vnis"] == sorted(tables.tunnels["vni"].dropna().unique().tolist())
    arp = tables.arp
    assert summary["arp"]["requests"] == int((arp.op == "request").sum())
    assert summary["arp"]["replies"] == int((arp.op == "reply").sum())


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_writes_every_table_readable_by_pandas(tmp_path, fmt):
    out = tmp_path / "tables"
    proc = diag("pcap", str(EXAMPLE), "--export", str(out), "--export-format", fmt)
    assert proc.returncode == 0, proc.stderr
    tables = decode_file(EXAMPLE)
    for name in ("packets", "bgp_messages", "bgp_routes", "tunnels", "arp"):
        parts = sorted((out / name).glob(f"*.{fmt}"))
        assert parts, name
        read = pd.concat([pd.read_parquet(p) if fmt == "parquet" else pd.read_csv(p) for p in parts],
                         ignore_index=True)
        expected = getattr(tables, name)
        assert len(read) == len(expected), name
        assert read["frame"].tolist() == expected["frame"].tolist(), name
    routes = pd.concat(pd.read_parquet(p) if fmt == "parquet" else pd.read_csv(p)
                       for p in sorted((out / "bgp_routes").glob(f"*.{fmt}")))
    assert sorted(routes["prefix"]) == sorted(tables.bgp_routes["prefix"])
    # a second export into the same place is refused: nothing is overwritten
    again = diag("pcap", str(EXAMPLE), "--export", str(out))
    assert again.returncode == 2
    one_error_line(again)


def test_frame_shows_what_diag_decoded_there():
    tables = decode_file(EXAMPLE)
    notification = tables.bgp_messages[tables.bgp_messages.type_name == "NOTIFICATION"].iloc[0]
    frame = int(notification["frame"])
    proc = diag("pcap", str(EXAMPLE), "--frame", str(frame), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["packets"][0]["frame"] == frame
    assert any(m["type_name"] == "NOTIFICATION" and m["notify_name"] == notification["notify_name"]
               for m in shown["bgp_messages"])
    text = diag("pcap", str(EXAMPLE), "--frame", str(frame))
    assert text.returncode == 0 and "NOTIFICATION" in text.stdout


@pytest.mark.tshark
@pytest.mark.skipif(not shutil.which("tshark"), reason="tshark (Debian package) not installed")
def test_deep_uses_wiresharks_dissectors_with_decode_as_for_8472():
    tunnels = decode_file(VXLAN).tunnels
    frame = int(tunnels[tunnels.outer_dport == 8472].iloc[0]["frame"])
    proc = diag("pcap", str(VXLAN), "--frame", str(frame), "--deep")
    assert proc.returncode == 0, proc.stderr
    assert "VXLAN" in proc.stdout.upper() and "100" in proc.stdout   # VNI 100 on 8472, via decode-as
    bgp_frame = int(decode_file(EXAMPLE).bgp_messages.iloc[0]["frame"])
    proc = diag("pcap", str(EXAMPLE), "--frame", str(bgp_frame), "--deep")
    assert proc.returncode == 0 and "BGP" in proc.stdout


@pytest.mark.parametrize("args", [
    ["--frame", "0"],
    ["--frame", "99999"],
    ["--deep"],
    ["--bgp-port", "70000"],
    ["--format", "yaml"],
    ["--export-format", "xlsx", "--export", "/nonexistent/x"],
])
def test_usage_errors_are_one_line_and_exit_2(args):
    proc = diag("pcap", str(EXAMPLE), *args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    one_error_line(proc)


def test_missing_file_is_unusable_input():
    proc = diag("pcap", "/nonexistent/capture.pcap")
    assert proc.returncode == 4
    assert "no such file" in one_error_line(proc)


@pytest.mark.tshark
@pytest.mark.skipif(not shutil.which("tshark"), reason="tshark (Debian package) not installed")
def test_by_interface_matches_tshark_on_a_tcpdump_any_capture():
    """`tcpdump -i any` (SLL2) from the lab: which ifindex each packet was seen on, in or out."""
    from collections import Counter

    capture = ROOT / "captures" / "lab" / "leak-eth0-any-sll2.pcap"
    fields = subprocess.run(["tshark", "-r", str(capture), "-T", "fields", "-e", "sll.ifindex",
                             "-e", "sll.pkttype"], capture_output=True, text=True, check=True)
    expected = Counter()
    for line in fields.stdout.splitlines():
        ifindex, pkttype = line.split("\t")
        expected[(f"ifindex {int(ifindex)}", "out" if int(pkttype) == 4 else "in")] += 1
    proc = diag("pcap", str(capture), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    got = {(i["interface"], i["direction"]): i["packets"]
           for i in json.loads(proc.stdout)["packets"]["by_interface"]}
    assert got == dict(expected) and sum(got.values()) == 20
    assert any(d == "out" for (_i, d) in got)       # packets that *left* an interface are there
