"""Issue 20's "done when", on real labs: overlay faults located from both ends.

Each overlay fault of the lab's fault table (diag.lab.faults: the oracle for the expected first
code) is applied with ``diag lab fault`` and collected with the lab's printed ``diag collect``
command and ``--capture`` on every host (the session store's bundle, tests/labstore.py). Then:
explain names the fault's code first; the flow's last sighting on each side is cited by frame and
every cited frame is read back with tshark in the capture it names (addresses, ports; for the
checksum fault, tshark's own checksum validation: good on the sender's underlay, bad on the
receiver's); the flow's ladder is in the explanation and drawn in the HTML report; with one end's
capture only, the code comes with fewer sources or a "not decidable from one end" entry names
the capture that would decide. A healthy overlay lab under pod-to-pod load gives no warning.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diag.analyze import explain
from diag.facts import load_facts
from diag.lab import faults
from diag.model import LEVELS
from tests.analyze.test_lab_fault_table import check_evidence
from tests.analyze.test_overlay_ledger import one_end
from tests.labstore import REPO

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(not shutil.which("tshark"), reason="tshark is the oracle")]

SENDER, RECEIVER = "k8s-ctr", "k8s-w0"         # the faults' roles (diag.lab.faults.tunnel)
FAULTS = ["overlay-udp-blocked", "vxlan-vni-mismatch", "overlay-checksum-broken",
          "overlay-drop-after-decap", "vxlan-port-mismatch", "overlay-mtu-blackhole"]
CELLS = [("calico", "vxlan", f) for f in FAULTS] + [
    ("cilium", "vxlan", f) for f in ("overlay-udp-blocked", "overlay-checksum-broken")]
# which ends' captures each fault's first finding must cite a frame from
BOTH_ENDS = {"overlay-udp-blocked": {SENDER, RECEIVER, "router"},
             "vxlan-vni-mismatch": {SENDER, RECEIVER},
             "overlay-checksum-broken": {SENDER, RECEIVER},
             "overlay-drop-after-decap": {SENDER, RECEIVER},
             "vxlan-port-mismatch": {SENDER, RECEIVER},
             # the big packets never leave k8s-ctr; smaller ones between the same pods
             # reach k8s-w0's pod (its frame): the path works below the tunnel's MTU
             "overlay-mtu-blackhole": {SENDER, RECEIVER}}
# with one end's capture: the code with fewer sources ("code"), the code as sure as with both
# ("all"), "not decidable" (None), or nothing at all ("absent": the flow never reached it)
ONE_END = {"overlay-udp-blocked": {SENDER: None, RECEIVER: "absent"},
           "vxlan-vni-mismatch": {SENDER: "code", RECEIVER: "code"},
           "overlay-checksum-broken": {SENDER: None, RECEIVER: "code"},
           "overlay-drop-after-decap": {SENDER: None, RECEIVER: "code"},
           "vxlan-port-mismatch": {SENDER: "code", RECEIVER: "code"},
           "overlay-mtu-blackhole": {SENDER: "code", RECEIVER: "code"}}   # the link state
#              decides it at either end; each end's capture adds its side's frames as sources


def _explained(lb):
    facts = load_facts(lb.path)
    result = explain(facts)
    listing = "\n".join(f"{f.severity} {f.code}: {f.summary}" for f in result.findings)
    assert result.findings, "no finding"
    first = result.findings[0]
    assert first.code == faults.FAULTS[lb.fault].first_code, listing
    assert first.severity == "error" and first.caused_by is None, listing
    return facts, result, first


def tshark_inner_checksum(path: Path, frame: int) -> str:
    """tshark's verdict on the innermost TCP checksum of ``frame`` (1 good, 0 bad)."""
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-d", "udp.port==8472,vxlan",
                          "-o", "tcp.check_checksum:TRUE", "-Y", f"frame.number == {frame}",
                          "-T", "fields", "-e", "tcp.checksum.status"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return out.strip().split(",")[-1]


@pytest.mark.parametrize("cni,mode,fault", CELLS)
def test_overlay_fault_located_from_both_ends(labs, cni, mode, fault):
    lb = labs.bundle(cni, mode, fault)
    assert "--capture" in lb.collect_argv
    facts, result, first = _explained(lb)
    problems = check_evidence(lb.path, first)
    assert not problems, "\n".join(problems)
    cited = {e.host for e in first.evidence if e.frame is not None}
    assert BOTH_ENDS[fault] <= cited, (fault, cited, first.evidence)
    assert {"pcap-sender", "pcap-receiver"} <= set(first.confidence.sources), first
    ladders = [ladder for ladder in result.flows if ladder.code == first.code]
    assert ladders, result.flows
    ladder = ladders[0]
    assert (ladder.sender, ladder.receiver) == (SENDER, RECEIVER)
    points = {(p.role, p.host): p for p in ladder.points}
    assert points[("underlay-out", SENDER)].packets > 0 or fault == "overlay-mtu-blackhole"
    if fault == "overlay-checksum-broken":
        sender_frame = next(e for e in first.evidence if e.host == SENDER and e.frame
                            and "leaving by" in e.value)
        receiver_frame = next(e for e in first.evidence if e.host == RECEIVER and e.frame
                              and "bad" in e.value)
        assert tshark_inner_checksum(lb.path / sender_frame.file, sender_frame.frame) == "1"
        assert tshark_inner_checksum(lb.path / receiver_frame.file, receiver_frame.frame) == "0"
        assert any(e.file.endswith(".out") and "tx-checksum-ip-generic" in e.value
                   for e in first.evidence), first.evidence          # ethtool -k, collected
        assert points[("pod-in", RECEIVER)].packets > 0
    else:
        assert ladder.lost_after and ladder.delivered == 0, ladder
    if fault == "overlay-udp-blocked":
        assert ladder.lost_after == "path-in router", ladder
        assert points[("path-out", "router")].packets == 0
    if fault == "overlay-drop-after-decap":
        assert ladder.lost_after == "vtep-in"
        assert "not checked" in first.note and "policy" in first.note


@pytest.mark.parametrize("cni,mode,fault", [c for c in CELLS if c[0] == "calico"])
def test_overlay_fault_from_one_end(labs, cni, mode, fault):
    lb = labs.bundle(cni, mode, fault)
    facts, _result, first = _explained(lb)
    for host, want in ONE_END[fault].items():
        lone = explain(one_end(facts, host))
        same = [f for f in lone.findings if f.code == first.code]
        undecided = [c for c in lone.not_checked if f"{SENDER} -> {RECEIVER}" in c.name]
        if want == "all":
            assert same and set(same[0].confidence.sources) == set(first.confidence.sources)
        elif want == "code":
            assert same, (host, [f.code for f in lone.findings])
            assert len(set(same[0].confidence.sources)) < len(set(first.confidence.sources))
            assert LEVELS.index(same[0].confidence.level) <= \
                LEVELS.index(first.confidence.level)
        elif want is None:
            assert not same, (host, same)
            assert undecided and "not decidable from one end" in undecided[0].needs, \
                (host, lone.not_checked)
            assert f"a capture on {RECEIVER}" in undecided[0].needs
        else:                                           # nothing of the flow reached this end
            assert not same and not undecided


@pytest.mark.parametrize("cni,mode,fault", [c for c in CELLS if c[0] == "calico"])
def test_diag_explain_command_shows_both_ends(labs, cni, mode, fault):
    """The command a user runs: the fault's code first, and the flow's points with frames on the
    sender's and the receiver's side (text), the same ladder as a table (Markdown)."""
    lb = labs.bundle(cni, mode, fault)
    code = faults.FAULTS[fault].first_code

    def run(*extra: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "diag", "explain", str(lb.path), *extra],
                              capture_output=True, text=True, cwd=REPO, timeout=180)
        assert proc.returncode == 1, proc.stderr[-2000:]          # an error was found
        return proc.stdout

    text = run()
    first = next(line for line in text.splitlines() if line.startswith("1. "))
    assert first == f"1. [ERROR] {code}", first
    section = text[text.index("Tunnelled flows"):text.index("\nChecked:")]
    after = section[section.index(f"[{code}]"):].splitlines()[1:]
    points = []
    for line in after:                          # the ladder's point lines, indented deeper
        if not line.startswith("    "):
            break
        points.append(line)
    ladder = "\n".join(points)
    # the sender's last sighting by frame; the receiver's too where the flow reached it, else
    # its points say "0 pkt": captured there, and none of the flow arrived
    reached = fault not in ("overlay-udp-blocked", "overlay-mtu-blackhole")
    for host in (SENDER, RECEIVER):
        lines = [ln for ln in ladder.splitlines() if f" {host} " in ln]
        assert lines, (host, text)
        if host == SENDER or reached:
            assert any(" frame" in ln for ln in lines), (host, text)
        else:
            assert all(" 0 pkt" in ln for ln in lines), (host, text)
    if fault != "overlay-checksum-broken":
        assert "<- last seen" in ladder, ladder
    md = run("--format", "md")
    assert md.index(f"`{code}`") < md.index("## Tunnelled flows") < md.index("## Checked")
    assert "| point | host | device | packets | frames |" in md


@pytest.mark.parametrize("cni,mode,fault", [c for c in CELLS if c[0] == "calico"])
def test_report_draws_the_ladder(labs, cni, mode, fault, tmp_path):
    lb = labs.bundle(cni, mode, fault)
    out = tmp_path / "incident.html"
    proc = subprocess.run([sys.executable, "-m", "diag", "report", str(lb.path), "-o", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=180)
    assert proc.returncode in (0, 1), proc.stderr
    html = out.read_text()
    code = faults.FAULTS[fault].first_code
    assert 'id="flows"' in html and 'id="ladder-svg-1"' in html
    assert f'data-code="{code}"' in html and "#finding-1" in html
    start = html.index('id="ladder-svg-1"')
    svg = html[start:html.index("</svg>", start)]
    for host in (SENDER, RECEIVER):
        assert f'data-host="{host}"' in svg
    if fault == "overlay-udp-blocked":
        assert 'class="loss-point" data-after="path-in router"' in svg
    elif fault == "overlay-checksum-broken":
        assert 'class="loss-point"' not in svg           # delivered, with bad checksums
    else:
        assert 'class="loss-point"' in svg, fault


# --- a healthy overlay under load ----------------------------------------------------------------

def _load(lab, seconds: int) -> list[subprocess.Popen]:
    """Pod-to-pod TCP transfers and fast pings in every direction, bounded by ``timeout``; each
    in its own process group (see :func:`_stop`)."""
    procs = []
    pods = {n: info for n, info in lab.hosts.items() if info.pod_ip}
    for node, info in pods.items():
        procs.append(subprocess.Popen(["ip", "netns", "exec", info.pod_netns, "timeout",
                                       str(seconds + 5), "nc", "-lk", "5201"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
    time.sleep(0.3)
    for src, a in pods.items():
        for dst, b in pods.items():
            if src == dst:
                continue
            loop = (f"while :; do dd if=/dev/zero bs=64k count=40 2>/dev/null | "
                    f"nc -N -w1 {b.pod_ip} 5201; done")
            procs.append(subprocess.Popen(["ip", "netns", "exec", a.pod_netns, "timeout",
                                           str(seconds), "sh", "-c", loop],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
            procs.append(subprocess.Popen(["ip", "netns", "exec", a.pod_netns, "timeout",
                                           str(seconds), "ping", "-q", "-i", "0.05", b.pod_ip],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    """Kill each load's whole process group by its leader's PID: killing only ``timeout`` (which
    cannot pass SIGKILL on) would leave its shell loop and pings running after the test."""
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    deadline = time.monotonic() + 10
    left = [p.pid for p in procs]
    while left and time.monotonic() < deadline:
        left = [g for g in left if _group_alive(g)]
        time.sleep(0.1)
    assert not left, f"load processes left running in groups {left}"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("cni,mode", [("calico", "vxlan"), ("cilium", "vxlan")])
def test_healthy_overlay_under_load_no_warning(labs, cni, mode, tmp_path):
    healthy = labs.bundle(cni, mode, None)           # the store heals the lab for this one
    up = labs.running(cni, mode)
    lab = up.lab
    assert faults.active(lab) is None
    procs = _load(lab, 25)
    try:
        time.sleep(1.0)
        out = tmp_path / "loaded"
        argv = [sys.executable, "-m", "diag", *up.collect_argv[1:], "--capture", "3s",
                "-o", str(out)]
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=180)
        assert proc.returncode in (0, 3), proc.stderr[-2000:]
    finally:
        _stop(procs)
    facts = load_facts(out)
    result = explain(facts)
    bad = [f"{f.severity} {f.code}: {f.summary}" for f in result.findings if f.severity != "info"]
    assert not bad, "\n".join(bad)
    check = next(c for c in result.checked if c.name.startswith("tunnelled flows delivered"))
    assert check.passed
    delivered = int(re.search(r"(\d+) flows? delivered", check.detail).group(1))
    assert delivered >= 6, check.detail                # the ledger followed the loaded flows
    assert healthy.path.is_dir()
