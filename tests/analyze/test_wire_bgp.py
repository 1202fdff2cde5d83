"""BGP sessions judged from captures alone (`diag explain CAPTURE`), checked against tshark.

Real daemons: the lab captures committed in captures/lab/ (FRR/GoBGP hold timer and bad peer AS,
healthy OPEN/UPDATE exchanges). Crafted with scapy (timed handshakes are hard to catch live):
SYNs nobody answers, with and without the TCP-MD5 option; SYNs refused with RST; a speaker
going silent past the hold time; a healthy session. Every frame a finding cites is read back with
tshark, the independent oracle, and must be what the finding says it is.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.analyze.wiretools import ROOT, explain, needs_tshark, tshark_fields
from tests.craft import bgpmsg as m
from tests.craft.pcapfile import LINKTYPE_ETHERNET, Record, write_pcap

LAB = ROOT / "captures" / "lab"
tshark_missing = needs_tshark

A = ("10.9.0.1", "02:00:00:00:09:01")
B = ("10.9.0.2", "02:00:00:00:09:02")


def bgp_errors(doc: dict) -> list[dict]:
    return [f for f in doc["findings"] if f["code"].startswith("BGP_") and f["severity"] == "error"]


class Wire:
    """Frames of one conversation between A and B, 1 s apart unless told."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.t = 1_800_000_000 * 10**9
        self.seq = {A: 1000, B: 5000}

    def tcp(self, src, dst, sport, dport, flags, payload=b"", options=(), gap=1.0) -> int:
        from scapy.layers.inet import IP, TCP
        from scapy.layers.l2 import Ether

        self.t += int(gap * 1e9)
        seg = TCP(sport=sport, dport=dport, flags=flags, seq=self.seq[src],
                  ack=self.seq[dst] if "A" in flags else 0, options=list(options))
        pkt = Ether(src=src[1], dst=dst[1]) / IP(src=src[0], dst=dst[0], ttl=1) / seg / payload
        self.seq[src] += len(payload) + (1 if "S" in flags or "F" in flags else 0)
        self.records.append(Record(self.t, bytes(pkt)))
        return len(self.records)

    def icmp_reject(self, src, dst, sport: int) -> int:
        from scapy.layers.inet import ICMP, IP, IPerror, TCPerror
        from scapy.layers.l2 import Ether

        self.t += 1_000_000
        pkt = (Ether(src=src[1], dst=dst[1]) / IP(src=src[0], dst=dst[0])
               / ICMP(type=3, code=13) / IPerror(src=dst[0], dst=src[0])
               / TCPerror(sport=sport, dport=179, flags="S"))
        self.records.append(Record(self.t, bytes(pkt)))
        return len(self.records)

    def write(self, path: Path) -> Path:
        write_pcap(path, self.records, LINKTYPE_ETHERNET)
        return path


def established(w: Wire, hold: int = 9) -> None:
    w.tcp(A, B, 40001, 179, "S")
    w.tcp(B, A, 179, 40001, "SA")
    w.tcp(A, B, 40001, 179, "A")
    w.tcp(A, B, 40001, 179, "PA", m.open_message(65001, hold, A[0], [m.cap_four_octet_as(65001)]))
    w.tcp(B, A, 179, 40001, "PA", m.open_message(65000, hold, B[0], [m.cap_four_octet_as(65000)]))
    w.tcp(A, B, 40001, 179, "PA", m.keepalive())
    w.tcp(B, A, 179, 40001, "PA", m.keepalive())


MD5_OPTION = (19, b"\x11" * 16)


@pytest.fixture(scope="module")
def crafted(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wire-bgp")
    files = {}
    w = Wire()
    for _ in range(4):
        w.tcp(A, B, 40010, 179, "S", gap=2.0)
    files["blocked"] = w.write(out / "blocked.pcap")
    w = Wire()
    for _ in range(4):
        w.tcp(A, B, 40011, 179, "S", options=[MD5_OPTION], gap=2.0)
    files["md5"] = w.write(out / "md5.pcap")
    w = Wire()
    for port in (40012, 40013, 40014):
        w.tcp(A, B, port, 179, "S")
        w.tcp(B, A, 179, port, "RA", gap=0.001)
    files["refused"] = w.write(out / "refused.pcap")
    w = Wire()
    established(w)
    for _ in range(12):                          # A keeps sending, B went quiet: 24 s > 9 s
        w.tcp(A, B, 40001, 179, "PA", m.keepalive(), gap=2.0)
    files["silent"] = w.write(out / "silent.pcap")
    w = Wire()
    established(w)
    for _ in range(6):
        w.tcp(A, B, 40001, 179, "PA", m.keepalive(), gap=1.5)
        w.tcp(B, A, 179, 40001, "PA", m.keepalive(), gap=0.2)
    w.tcp(A, B, 40050, 179, "S")                  # a stray refused connect beside a live session
    w.tcp(B, A, 179, 40050, "RA", gap=0.001)
    w.tcp(A, B, 40001, 179, "PA", m.keepalive())
    w.tcp(B, A, 179, 40001, "PA", m.keepalive(), gap=0.2)
    files["healthy"] = w.write(out / "healthy.pcap")
    w = Wire()
    for _ in range(3):                            # a firewall's REJECT: ICMP admin prohibited
        w.tcp(A, B, 40060, 179, "S", gap=1.0)
        w.icmp_reject(B, A, 40060)
    files["rejected"] = w.write(out / "rejected.pcap")
    return files


@tshark_missing
@pytest.mark.parametrize("case,code", [("blocked", "BGP_TRANSPORT_BLOCKED"),
                                       ("md5", "BGP_MD5_MISMATCH"),
                                       ("refused", "BGP_NO_LISTENER")])
def test_handshake_failures(crafted, case, code):
    path = crafted[case]
    doc = explain(path)
    first = doc["findings"][0]
    assert first["code"] == code, [f["code"] for f in doc["findings"]]
    assert first["severity"] == "error" and first["confidence"]["sources"] == ["pcap"]
    assert first["fix"]
    for ev in first["evidence"]:
        syn, ack, rst, kinds, dport, sport = tshark_fields(
            path, ev["frame"], "tcp.flags.syn", "tcp.flags.ack", "tcp.flags.reset",
            "tcp.option_kind", "tcp.dstport", "tcp.srcport")
        if ev["value"].startswith("SYN"):
            assert syn in ("1", "True") and ack in ("0", "False") and dport == "179", ev
            assert ("19" in kinds.split(",")) == ("TCP-MD5" in ev["value"]), (ev, kinds)
        else:
            assert rst in ("1", "True") and sport == "179", ev
    assert doc["checked"][-1]["passed"] is False or any(
        c["check"].startswith("BGP sessions seen") and c["passed"] is False for c in doc["checked"])


@tshark_missing
def test_icmp_reject_is_transport_blocked(crafted):
    path = crafted["rejected"]
    doc = explain(path)
    first = doc["findings"][0]
    assert first["code"] == "BGP_TRANSPORT_BLOCKED", doc["findings"]
    assert "rejected" in first["summary"]
    for ev in first["evidence"]:
        icmp_type, code, dport = tshark_fields(path, ev["frame"], "icmp.type", "icmp.code",
                                               "tcp.dstport")
        assert (icmp_type, code, dport) == ("3", "13", "179"), ev


@tshark_missing
def test_silence_past_hold_time(crafted):
    path = crafted["silent"]
    doc = explain(path)
    first = doc["findings"][0]
    assert first["code"] == "BGP_HOLD_TIMER_EXPIRED", doc["findings"]
    assert "hold time 9 s" in first["summary"] and "10.9.0.2" in first["summary"]
    silent_frame = first["evidence"][0]["frame"]
    src, bgp_type = tshark_fields(path, silent_frame, "ip.src", "bgp.type")
    assert src == B[0] and bgp_type == "4"          # B's last KEEPALIVE
    hold = tshark_fields(path, 5, "bgp.open.holdtime")[0]
    assert hold == "9"


def test_healthy_session_with_a_stray_refusal(crafted):
    doc = explain(crafted["healthy"])
    assert not bgp_errors(doc), doc["findings"]
    assert any(c["check"].startswith("BGP sessions seen") and c["passed"] for c in doc["checked"])


@tshark_missing
def test_real_hold_timer_capture():
    path = LAB / "bgp-frr-hold-timer-expired.pcap"
    doc = explain(path)
    first = doc["findings"][0]
    assert first["code"] == "BGP_HOLD_TIMER_EXPIRED", doc["findings"]
    major, = tshark_fields(path, first["evidence"][0]["frame"], "bgp.notify.major_error")
    assert major == "4"


@tshark_missing
def test_real_bad_peer_as_capture():
    path = LAB / "bgp-gobgp-bad-peer-as.pcap"
    doc = explain(path)
    first = doc["findings"][0]
    assert first["code"] == "BGP_BAD_PEER_AS", doc["findings"]
    note, open_ = first["evidence"][:2]
    major, minor = tshark_fields(path, note["frame"], "bgp.notify.major_error",
                                 "bgp.notify.minor_error_open")
    assert (major, minor) == ("2", "2")
    myas = tshark_fields(path, open_["frame"], "bgp.open.myas")[0]
    assert f"runs AS {myas}" in first["summary"]
    assert any(f"remote-as {myas}" in line for line in first["fix"])
    # the RSTs GoBGP sends to FRR's connects in the same capture do not outvote the NOTIFICATION
    assert not any(f["code"] == "BGP_NO_LISTENER" for f in doc["findings"])


def test_real_healthy_exchange_has_no_bgp_error():
    doc = explain(LAB / "bgp-frr-gobgp-open-update.pcap")
    assert not bgp_errors(doc), doc["findings"]


def test_corroboration_adds_pcap_and_raises_confidence():
    from diag.analyze.wire_bgp import corroborate
    from diag.model import Confidence, Evidence, Finding

    daemon = Finding("BGP_BAD_PEER_AS", "error", "router: 10.9.0.2 rejects", Confidence(("frr",)),
                     (Evidence("router", "hosts/router/frr.out", "/peers/10.9.0.2", "x"),),
                     hosts=("router", "k8s-ctr"), subject="router 10.9.0.2")
    wire = Finding("BGP_BAD_PEER_AS", "error", "pcap", Confidence(("pcap",)),
                   (Evidence("router", "hosts/router/capture.pcap", "frame 3", "n", 3),),
                   hosts=("k8s-ctr", "router"), subject="10.9.0.1 10.9.0.2")
    merged, = corroborate([daemon], [wire])
    assert merged.confidence.level == "medium" and "pcap" in merged.confidence.sources
    assert merged.evidence[-1].frame == 3
    other = Finding("BGP_NO_LISTENER", "error", "pcap", Confidence(("pcap",)), (),
                    hosts=("k8s-w9",), subject="10.9.9.1 10.9.9.2")
    assert len(corroborate([daemon], [other])) == 2          # a session no daemon describes
