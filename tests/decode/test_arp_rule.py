"""The one ARP rule (diag/decode/arp.py) on real kernel captures and a crafted VLAN capture, with
tshark as the reader of what each capture holds.

tests/fixtures/arp-rule/ (tests/decode/make_arp_captures.sh, SOURCE.md there): three VXLAN VTEPs
with head-end replication; VTEP A arpings 198.18.0.2 (answered) and 198.18.0.99 (nobody), three
requests each, one second apart. On A (``tcpdump -i any``) every request shows three times: bare
on vxlan0 and encapsulated once per remote VTEP. What must hold:

- copies are one request: 3 requests per target, not 9 (``diag pcap`` and explain alike);
- answered = a reply from the target to that asker within 3 s;
- what the capture point could see: A sees replies (it asked, and the capture holds inbound
  packets); A with ``-Q out`` cannot (one direction only); C only receives A's flooded requests
  (B's replies are unicast to A): explain says so as a limit on confidence and a warning, not an
  error with full confidence;
- same request = same asker, target and VLAN/VNI: a reply on VLAN 10 does not answer the same
  question asked on VLAN 20, nor another asker's question (crafted with scapy, read by tshark).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diag.analyze import explain
from diag.facts import load_facts

ROOT = Path(__file__).resolve().parents[2]
RULE = ROOT / "tests" / "fixtures" / "arp-rule"
REPLY_WINDOW = 3.0
SEND_SPREAD = 0.01          # copies of one transmission are microseconds apart

pytestmark = pytest.mark.skipif(not shutil.which("tshark"), reason="tshark reads the captures")


def tshark_arp(path: Path, decode_as: str = "udp.port==4789,vxlan") -> list[dict]:
    fields = ["frame.number", "frame.time_epoch", "vlan.id", "vxlan.vni", "ip.dst", "arp.opcode",
              "arp.src.hw_mac", "arp.src.proto_ipv4", "arp.dst.proto_ipv4"]
    argv = ["tshark", "-n", "-r", str(path), "-d", decode_as, "-Y", "arp", "-T", "fields",
            "-E", "separator=|"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    rows = []
    for line in out.splitlines():
        v = dict(zip(fields, line.split("|")))
        rows.append({"frame": int(v["frame.number"]), "ts": float(v["frame.time_epoch"]),
                     "vlan": v["vlan.id"] or None, "vni": v["vxlan.vni"] or None,
                     "op": int(v["arp.opcode"]), "mac": v["arp.src.hw_mac"],
                     "src": v["arp.src.proto_ipv4"], "dst": v["arp.dst.proto_ipv4"]})
    return rows


def transmissions(rows: list[dict]) -> dict[str, list[tuple[float, bool]]]:
    """target -> [(time, answered)] of each distinct request the asker sent, from tshark's rows:
    sightings of one (asker, target, segment) within SEND_SPREAD are one transmission; answered
    when a reply from the target to that asker on that segment follows within 3 s."""
    sends: dict[tuple, list[float]] = {}
    for r in rows:
        if r["op"] != 1 or r["src"] == r["dst"]:
            continue
        times = sends.setdefault((r["src"], r["dst"], r["vlan"] if not r["vni"] else None), [])
        if not times or r["ts"] - times[-1] > SEND_SPREAD:
            times.append(r["ts"])
    out: dict[str, list[tuple[float, bool]]] = {}
    for (asker, target, vlan), times in sends.items():
        for t in times:
            answered = any(r["op"] == 2 and r["src"] == target and r["dst"] == asker
                           and (vlan is None or r["vlan"] in (None, vlan))
                           and 0 <= r["ts"] - t <= REPLY_WINDOW for r in rows)
            out.setdefault(target, []).append((t, answered))
    return out


def pcap_json(path: Path, *extra: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "diag", "pcap", str(path), "--format", "json",
                           *extra], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def unanswered_by_target(summary: dict) -> dict[str, int]:
    return {u["target_ip"]: u["count"] for u in summary["arp"]["unanswered_by_ip"]}


def test_copies_of_one_request_are_one_request():
    path = RULE / "a-any.pcap"
    rows = tshark_arp(path)
    asked = [r for r in rows if r["op"] == 1 and r["src"] == "198.18.0.1"]
    # the capture holds what the script did: arping -c 3 per target, each seen three times
    assert sum(r["dst"] == "198.18.0.2" for r in asked) == 9
    assert sum(r["dst"] == "198.18.0.99" for r in asked) == 9
    assert {r["vni"] for r in asked} == {None, "100"}
    truth = transmissions(rows)
    assert len(truth["198.18.0.2"]) == 3 and all(a for _, a in truth["198.18.0.2"])
    assert len(truth["198.18.0.99"]) == 3 and not any(a for _, a in truth["198.18.0.99"])

    summary = pcap_json(path)["arp"]
    want = {t: sum(not a for _, a in sends) for t, sends in truth.items()}
    assert unanswered_by_target({"arp": summary}) == {t: n for t, n in want.items() if n}
    assert summary["answered"] == sum(a for sends in truth.values() for _, a in sends)
    request_frames = sum(1 for r in rows if r["op"] == 1 and r["src"] != r["dst"])
    assert summary["copies"] == request_frames - sum(len(s) for s in truth.values())
    by_ip = {u["target_ip"]: u for u in summary["unanswered_by_ip"]}
    assert by_ip["198.18.0.99"]["unverified"] == 0    # A asked: replies to A are in its capture
    # B's broadcast question to C (the underlay's own ARP) came in to A: C's reply goes to B
    assert by_ip["192.0.2.3"]["unverified"] == 1
    assert "came in from another host (192.0.2.2)" in by_ip["192.0.2.3"]["unverified_because"]

    facts = load_facts(path)
    found = {f.subject: f for f in explain(facts).findings if f.code == "ARP_UNANSWERED"}
    assert set(found) == {"198.18.0.99"}
    f = found["198.18.0.99"]
    assert f.severity == "error" and "3 ARP requests from 198.18.0.1" in f.summary, f
    assert not f.confidence.limits
    # the evidence names how the request was carried, as tshark reads that frame
    tunnelled = [e for e in f.evidence if " (in VXLAN" in e.value]
    by_frame = {r["frame"]: r for r in rows}
    for e in tunnelled:
        assert by_frame[e.frame]["vni"] == "100" and "VNI 100" in e.value


def test_a_capture_of_one_direction_cannot_see_replies():
    path = RULE / "a-any-out.pcap"
    rows = tshark_arp(path)
    assert not [r for r in rows if r["op"] == 2 and r["dst"] == "198.18.0.1"]
    summary = pcap_json(path)["arp"]
    by_ip = {u["target_ip"]: u for u in summary["unanswered_by_ip"]}
    assert by_ip["198.18.0.2"]["count"] == 3 and by_ip["198.18.0.99"]["count"] == 3
    for u in by_ip.values():
        assert u["unverified"] == u["count"]
        assert "outgoing packets only" in u["unverified_because"]
    found = [f for f in explain(load_facts(path)).findings if f.code == "ARP_UNANSWERED"]
    assert {f.subject for f in found} == {"198.18.0.2", "198.18.0.99"}
    for f in found:
        assert f.severity == "warning" and f.confidence.level == "low", f
        assert any("outgoing packets only" in why for why in f.confidence.limits), f


def test_a_bystander_cannot_see_unicast_replies():
    path = RULE / "c-any.pcap"
    rows = tshark_arp(path)
    # B answered A (in A's capture); C received the flooded requests and none of the replies
    assert any(r["op"] == 2 and r["src"] == "198.18.0.2"
               for r in tshark_arp(RULE / "a-any.pcap"))
    assert not any(r["op"] == 2 and r["src"] == "198.18.0.2" for r in rows)
    summary = pcap_json(path)["arp"]
    by_ip = {u["target_ip"]: u for u in summary["unanswered_by_ip"]}
    assert by_ip["198.18.0.2"]["count"] == 3          # not 6: the bare copy after decapsulation
    assert "came in from another host" in by_ip["198.18.0.2"]["unverified_because"]
    found = {f.subject: f for f in explain(load_facts(path)).findings
             if f.code == "ARP_UNANSWERED"}
    for target in ("198.18.0.2", "198.18.0.99"):
        f = found[target]
        assert f.severity == "warning" and f.confidence.limits, f
        assert "not verified" in f.severity_reason


def _vlan_capture(path: Path) -> None:
    """802.1Q trunk: 10.1.0.1 asks 10.1.0.2 on VLAN 10 and VLAN 20 at the same moments; only
    VLAN 10 has 10.1.0.2 and it answers; 10.1.0.3 asks 10.1.0.2 on VLAN 10 and gets nothing."""
    from scapy.all import ARP, Dot1Q, Ether, wrpcap

    a, b, c = "02:00:00:00:0a:01", "02:00:00:00:0a:02", "02:00:00:00:0a:03"
    frames = []
    t = 1_700_000_000.0
    for i in range(3):
        base = t + i
        for vlan in (10, 20):
            p = Ether(src=a, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=vlan) / ARP(
                op=1, hwsrc=a, psrc="10.1.0.1", pdst="10.1.0.2")
            p.time = base + vlan / 1e6
            frames.append(p)
        p = Ether(src=c, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=10) / ARP(
            op=1, hwsrc=c, psrc="10.1.0.3", pdst="10.1.0.2")
        p.time = base + 0.0005
        frames.append(p)
        p = Ether(src=b, dst=a) / Dot1Q(vlan=10) / ARP(op=2, hwsrc=b, psrc="10.1.0.2", hwdst=a,
                                                        pdst="10.1.0.1")
        p.time = base + 0.001
        frames.append(p)
    wrpcap(str(path), frames)


def test_same_request_means_same_asker_target_and_vlan(tmp_path):
    path = tmp_path / "trunk.pcap"
    _vlan_capture(path)
    rows = tshark_arp(path)
    assert {(r["vlan"], r["op"], r["src"]) for r in rows} == {
        ("10", 1, "10.1.0.1"), ("20", 1, "10.1.0.1"), ("10", 1, "10.1.0.3"), ("10", 2, "10.1.0.2")}
    truth = transmissions(rows)
    assert sorted(a for _, a in truth["10.1.0.2"]) == [False] * 6 + [True] * 3

    summary = pcap_json(path)["arp"]
    assert summary["answered"] == 3 and summary["copies"] == 0
    assert unanswered_by_target({"arp": summary}) == {"10.1.0.2": 6}
    facts = load_facts(path)
    arp = facts.tables["arp"]
    asks = arp[arp.op == "request"]
    vlans = asks.vlan.astype(float)
    verdict = {(int(v), s): set(asks[(vlans == v) & (asks.sender_ip == s)].answered)
               for v, s in ((10, "10.1.0.1"), (20, "10.1.0.1"), (10, "10.1.0.3"))}
    assert verdict == {(10, "10.1.0.1"): {True}, (20, "10.1.0.1"): {False},
                       (10, "10.1.0.3"): {False}}
    found = [f for f in explain(facts).findings if f.code == "ARP_UNANSWERED"]
    assert len(found) == 1 and "6 ARP requests from 10.1.0.1, 10.1.0.3" in found[0].summary
    # replies to 10.1.0.1 pass this trunk (VLAN 10): its VLAN 20 requests are verified, the
    # finding stands on them; 10.1.0.3 got no frame at all here: for it the capture cannot tell
    assert found[0].severity == "error" and not found[0].confidence.limits
    third = asks[asks.sender_ip == "10.1.0.3"]
    assert set(third.sees_replies) == {None} and all("cannot tell" in b for b in third.blind)
    assert set(asks[(vlans == 20)].sees_replies) == {True}


CAPTURES = sorted([*(ROOT / "captures").rglob("*.pcap"), *RULE.glob("*.pcap"),
                   *(ROOT / "tests" / "fixtures" / "pcap").glob("*.pcap"),
                   *(ROOT / "tests" / "fixtures" / "pcap-facts").glob("*.pcap*")])


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pcap_and_explain_answer_alike(path):
    """diag pcap's summary and the facts explain reads hold the same verdicts: per target, the
    same number of unanswered requests (copies counted once) and of unverifiable ones."""
    summary = pcap_json(path)["arp"]
    arp = load_facts(path).tables["arp"]
    facts_view: dict[str, tuple[int, int]] = {}
    if len(arp):
        firsts = arp[(arp.op == "request") & arp.copy_of.isna()]
        for target, group in firsts.groupby("target_ip"):
            una = group[group.answered.map(lambda v: v is False)]
            if len(una):
                facts_view[str(target)] = (len(una), int(una.blind.notna().sum()))
    pcap_view = {u["target_ip"]: (u["count"], u["unverified"])
                 for u in summary["unanswered_by_ip"]}
    assert pcap_view == facts_view
    assert summary["answered"] == (int((arp[(arp.op == "request") & arp.copy_of.isna()]
                                        .answered == True).sum()) if len(arp) else 0)  # noqa: E712
