"""Fast tests (no lab): the catalogue is the contract, the tracer matches the kernel's recorded
`ip route get` answers in the fixture bundles, confidence drops with a source, ranking puts causes
first."""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from diag.analyze import explain
from diag.analyze.catalog import CATALOG, render_markdown
from diag.analyze.rank import rank
from diag.analyze.fib import build_fib
from diag.analyze.lookup import lookup
from diag.analyze.trace import trace
from diag.facts import load_facts
from diag.model import Confidence, Finding

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = sorted((ROOT / "tests/fixtures/bundles").glob("*.tar.gz"))


def test_docs_findings_is_the_catalogue():
    doc = (ROOT / "docs/findings.md").read_text()
    assert doc == render_markdown(), "regenerate: python -m diag.analyze.catalog > docs/findings.md"
    assert set(re.findall(r"^### `([A-Z0-9_]+)`", doc, re.M)) == set(CATALOG)


def test_catalogue_covers_the_lab_fault_table():
    from diag.lab import faults

    named = {f.first_code for f in faults.FAULTS.values()}
    assert named <= set(CATALOG), named - set(CATALOG)
    for entry in CATALOG.values():
        assert entry.severity in ("info", "warning", "error")
        assert entry.title and entry.proof


@pytest.fixture(scope="module", params=[b.name for b in BUNDLES])
def facts(request):
    return load_facts(ROOT / "tests/fixtures/bundles" / request.param)


def test_lookup_matches_recorded_route_get(facts):
    fib = build_fib(facts.tables)
    rows = list(facts.tables["route_gets"].itertuples())
    assert rows
    for r in rows:
        lk = lookup(fib, r.host, r.probe)
        if r.error:
            assert lk.type == "none", (r, lk)
        else:
            assert (lk.type, lk.dev) == (r.type, r.dev), (r, lk)
            assert (r.gateway in lk.gateways) if r.gateway else lk.gateway is None


def test_healthy_fixtures_have_no_error_but_the_arp_probe(facts):
    """The fixture labs are healthy, but while capturing the router pinged a free address of a
    node subnet (truth.json `lb_probe`, a LoadBalancer IP nobody announces): exactly that one
    ARP_UNANSWERED, nothing else above info."""
    import json

    truth = json.loads(Path(facts.source.replace(".tar.gz", ".truth.json")).read_text())
    bad = [f for f in explain(facts).findings if f.severity != "info"]
    assert [(f.code, f.subject) for f in bad] == [("ARP_UNANSWERED", truth["lb_probe"])]


def _without_pod_range_route(facts, host: str):
    routes = facts.tables["routes"]
    pod_range = facts.model.pod_range.value
    keep = ~((routes["host"] == host) & (routes["dst"] == pod_range))
    tables = dict(facts.tables, routes=routes[keep].reset_index(drop=True))
    return replace(facts, tables=tables)


def test_removing_a_source_lowers_confidence():
    base = load_facts(ROOT / "tests/fixtures/bundles/cilium-native-default.tar.gz")
    node = base.model.nodes()[0].name
    broken = _without_pod_range_route(base, node)
    # a recorded `ip route get` agreeing with the leak: the kernel's own word, one more source
    gets = broken.tables["route_gets"].copy()
    mine = gets["host"] == node
    default_dev = base.model.hosts[node].default_iface.value
    gets.loc[mine, "dev"] = default_dev
    with_get = replace(broken, tables=dict(broken.tables, route_gets=gets))

    def rib(f):
        return next(x for x in explain(f).findings
                    if x.code == "ROUTE_RIB_NOT_IN_FIB" and x.severity == "error")

    full = rib(with_get)
    assert set(full.confidence.sources) >= {"ip", "gobgp", "route-get"}
    assert full.confidence.level == "high"
    less = rib(broken)
    assert "route-get" not in less.confidence.sources
    assert less.confidence.level == "medium"


def test_rib_not_in_fib_info_vs_error():
    base = load_facts(ROOT / "tests/fixtures/bundles/cilium-native-default.tar.gz")
    node = base.model.nodes()[0].name
    healthy = [f for f in explain(base).findings
               if node in f.hosts and f.code == "ROUTE_RIB_NOT_IN_FIB"]
    assert [f.severity for f in healthy] == ["info"]
    assert "covers" in healthy[0].summary and healthy[0].note
    broken = explain(_without_pod_range_route(base, node)).findings
    assert broken[0].code == "ROUTE_RIB_NOT_IN_FIB" and broken[0].severity == "error"
    leak = next(f for f in broken if f.code == "EGRESS_LEAK_DEFAULT_ROUTE")
    assert leak.caused_by == "ROUTE_RIB_NOT_IN_FIB"
    assert broken.index(leak) > 0


def test_rank_puts_causes_first():
    c = Confidence(("ip",))
    leak = Finding("EGRESS_LEAK_DEFAULT_ROUTE", "error", "leak", Confidence(("ip", "pcap", "x")),
                   caused_by="ROUTE_RIB_NOT_IN_FIB")
    rib = Finding("ROUTE_RIB_NOT_IN_FIB", "error", "rib", c)
    note = Finding("ROUTE_RIB_NOT_IN_FIB", "info", "note", c)
    assert [f.summary for f in rank([note, leak, rib])] == ["rib", "note", "leak"]
    # a consequence whose cause is not reported is a root itself
    assert rank([leak, note])[0] is leak


def test_trace_unknown_source_is_an_error():
    facts = load_facts(ROOT / "tests/fixtures/bundles/calico-native-default.tar.gz")
    with pytest.raises(LookupError):
        trace(facts.tables, facts.model, "198.51.100.1", "198.51.100.2")


def test_cli_bad_input(tmp_path):
    import subprocess
    import sys

    def run(*args):
        return subprocess.run([sys.executable, "-m", "diag", "explain", *map(str, args)],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)

    missing = run(tmp_path / "nope")
    assert missing.returncode == 4 and missing.stderr.startswith("diag: error:")
    bundle = ROOT / "tests/fixtures/bundles/cilium-native-default.tar.gz"
    assert run(bundle, "--format", "xml").returncode == 2
    assert run(bundle, "--trace", "1.2.3.4").returncode == 2
    ok = run(bundle, "--trace", "k8s-ctr", "--trace", "198.51.100.9")
    assert ok.returncode == 0 and "left at k8s-ctr" in ok.stdout
    assert "Traceback" not in missing.stderr + ok.stderr


def _scapy_arp(path: Path):
    """The oracle: scapy's reading of the ARP packets (op 1 request, 2 reply) and their times."""
    from scapy.all import ARP, rdpcap

    return [(int(p[ARP].op), p[ARP].psrc, p[ARP].hwsrc.lower(), p[ARP].pdst, float(p.time))
            for p in rdpcap(str(path)) if ARP in p]


def test_arp_multiple_responders_on_real_capture():
    path = ROOT / "captures/lab/arp-multiple-responders.pcap"
    packets = _scapy_arp(path)
    truth: dict[str, set[str]] = {}
    for op, psrc, hwsrc, _, _ in packets:
        if op == 2:
            truth.setdefault(psrc, set()).add(hwsrc)
    multi = {ip for ip, macs in truth.items() if len(macs) > 1}
    assert multi                                   # the capture does show the fault
    result = explain(load_facts(path))
    found = [f for f in result.findings if f.code == "ARP_MULTIPLE_RESPONDERS"]
    assert {f.subject for f in found} == multi
    assert result.findings[0].code == "ARP_MULTIPLE_RESPONDERS"
    for f in found:
        assert {e.value.split()[-1] for e in f.evidence} == truth[f.subject]
        assert all(e.frame for e in f.evidence)


def test_arp_unanswered_then_answered_is_info():
    path = ROOT / "captures/lab/arp-unanswered-then-answered.pcap"
    packets = _scapy_arp(path)
    target = packets[0][3]
    first_reply = next(i for i, p in enumerate(packets) if p[0] == 2 and p[1] == target)
    # the one ARP rule: a request is answered by a reply from its target within 3 s
    reply_ts = packets[first_reply][4]
    unanswered = sum(1 for p in packets[:first_reply]
                     if p[0] == 1 and p[3] == target and reply_ts - p[4] > 3.0)
    assert 0 < unanswered < sum(1 for p in packets[:first_reply] if p[0] == 1 and p[3] == target)
    found = [f for f in explain(load_facts(path)).findings if f.code == "ARP_UNANSWERED"]
    assert len(found) == 1 and found[0].subject == target
    assert found[0].severity == "info" and f"{unanswered} ARP request" in found[0].summary
    # cut the capture before the first reply: now nothing answers, an error
    from scapy.all import rdpcap, wrpcap
    import tempfile

    frames = rdpcap(str(path))
    with tempfile.TemporaryDirectory() as tmp:
        cut = Path(tmp) / "cut.pcap"
        wrpcap(str(cut), frames[:first_reply])
        found = [f for f in explain(load_facts(cut)).findings if f.code == "ARP_UNANSWERED"]
    assert found and found[0].severity == "error"


def test_an_end_shut_down_by_configuration_is_named_without_a_cease():
    """Only the router's ``show bgp summary json`` read (FRR 8.4, the real output after
    ``neighbor 192.168.10.100 shutdown``: ``Idle (Admin)``, no reset reason, no Cease) and
    k8s-ctr's speaker not read at all (its rows left out of the calico-native-default lab
    bundle): the session is down because it is shut down, and the fix says how to undo it."""
    import dataclasses

    import pandas as pd

    from diag.parse import frr

    facts = load_facts(ROOT / "tests/fixtures/bundles" / "calico-native-default.tar.gz")
    peers = facts.tables["bgp_peers"]
    summary = frr.parse_summary((ROOT / "tests/fixtures/frr-bgp-summary" /
                                 "frr84-lab-admin-shutdown.out").read_bytes())
    summary = summary.assign(host="router", source="frr-bgp-summary", phase="main")
    kept = peers[~peers.host.isin(["router", "k8s-ctr"])]
    tables = dict(facts.tables, bgp_peers=pd.concat([summary, kept], ignore_index=True)
                  [peers.columns])
    result = explain(dataclasses.replace(facts, tables=tables))
    shut = [f for f in result.findings if "192.168.10.100" in f.subject]
    assert [f.code for f in shut] == ["BGP_SESSION_NOT_ESTABLISHED"], shut
    assert "Idle (Admin)" in shut[0].summary and "administratively shut down on router" in \
        shut[0].summary, shut[0]
    assert any("no neighbor 192.168.10.100 shutdown" in line for line in shut[0].fix), shut[0]
