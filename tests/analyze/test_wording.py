"""What explain and pcap print reads as written by a person: no "capture capture frame", no
"captures of capture", no "1 hosts", no "request(s)" — on the shipped capture, a lab bundle whose
ARP finding several captures saw, and a one-packet capture (tshark reads the same one packet)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PCAP = ROOT / "captures" / "bgp_session.pcap"
BUNDLE = ROOT / "tests/fixtures/bundles/calico-native-default.tar.gz"
DOUBLED = re.compile(r"\b(\w+) \1\b")


def diag(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "diag", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout


def _no_nits(text: str) -> None:
    assert "(s)" not in text
    assert not re.search(r"\b1 (hosts|packets|requests|messages|rows|commands|SYNs)\b", text)
    assert "captures of capture" not in text and "capture of capture" not in text
    doubled = [m.group(0) for m in DOUBLED.finditer(text)
               if not m.group(1).isdigit() and m.group(1) not in ("-", "that")]
    assert not doubled, doubled


def test_explain_on_a_bare_capture():
    text = diag("explain", str(PCAP))
    assert text.startswith(f"diag explain {PCAP} (capture, 1 host)")
    assert "\n     - capture frame " in text           # host and file are both "capture": once
    _no_nits(text)
    _no_nits(diag("explain", str(PCAP), "--format", "md"))


def test_explain_on_a_bundle_names_the_captures():
    text = diag("explain", str(BUNDLE))
    assert "(bundle, 4 hosts)" in text
    # the router pinged a free address while every host captured: one finding, its captures
    found = re.search(r"ARP requests? from [\d.]+ got no reply \((captures?) of ([^)]*)\)", text)
    assert found, text
    hosts = found.group(2).split(", ")
    assert found.group(1) == ("captures" if len(hosts) > 1 else "capture")
    assert "capture" not in hosts and set(hosts) <= {"router", "k8s-ctr", "k8s-w1", "k8s-w0"}
    _no_nits(text)


def test_pcap_summary_of_one_packet(tmp_path):
    from scapy.all import ARP, Ether, wrpcap

    path = tmp_path / "one.pcap"
    wrpcap(str(path), [Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff")
                       / ARP(op=1, hwsrc="02:00:00:00:00:01", psrc="192.0.2.1",
                             pdst="192.0.2.2")])
    seen = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "arp.opcode"],
                          capture_output=True, text=True, check=True, timeout=60).stdout.split()
    assert seen == ["1"]
    text = diag("pcap", str(path))
    assert ": 1 packet over" in text and "ARP: 1 request, 0 replies" in text, text
    _no_nits(text)


def test_no_counted_nouns_with_parentheses_in_the_sources():
    """Analyzers and renderers say "1 SYN" / "3 SYNs" (diag/analyze/words.py), never "SYN(s)":
    no string literal of diag/analyze or diag/report holds "word(s)"."""
    import io
    import tokenize

    offenders = []
    for folder in ("analyze", "report"):
        for path in (ROOT / "diag" / folder).glob("*.py"):
            tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
            for tok in tokens:
                if tok.type == tokenize.STRING and re.search(r"[A-Za-z]\(s\)", tok.string) \
                        and not tok.string.lstrip("rbfuRBFU").startswith(('"""', "'''")):
                    offenders.append(f"{path.name}:{tok.start[0]}: {tok.string[:60]}")
    assert not offenders, "\n".join(offenders)
