"""`diag report` on the shared per-fault lab bundles (fixture ``labs``, tests/labstore.py), checked
in headless Chromium: the fault's code first, the topology with the lab's hosts, the timeline with
the peer pairs tshark sees in the bundle's captures (or the "no capture" notice), the highlighted
routing rows equal to the rows the explain JSON's pointers name, no network request, a non-blank
screenshot. A handful of representative faults, then every bundle the store built this session.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.report.checks import check_page, explain_json, tshark_bgp_pairs
from tests.report.conftest import run_cli

pytestmark = [pytest.mark.lab, pytest.mark.tshark]

REPRESENTATIVE = [
    ("cilium", "native", "rib-not-in-fib"),
    ("calico", "native", "route-wrong-table"),
    ("calico", "vxlan", "vxlan-port-mismatch"),
    ("calico", "native", "bgp-bad-peer-as"),
    ("cilium", "native", "arp-unanswered"),
]


CHECKED: set[Path] = set()           # bundles the representative tests already checked


def _captures(bundle: Path) -> list[Path]:
    manifest = json.loads((bundle / "manifest.json").read_text())
    return [bundle / c["path"] for rec in manifest["hosts"].values()
            for c in rec.get("commands", []) if str(c.get("path", "")).endswith(".pcap")
            and c.get("bytes") and (bundle / c["path"]).is_file()]


def _pairs(bundle: Path):
    caps = _captures(bundle)
    return tshark_bgp_pairs(caps) if caps else None


@pytest.mark.parametrize("cni,mode,fault", REPRESENTATIVE, ids=lambda v: str(v))
def test_lab_fault_report_in_browser(labs, browser, tmp_path, cni, mode, fault):
    from diag.lab.faults import FAULTS

    lb = labs.bundle(cni, mode, fault)
    out = tmp_path / "report.html"
    result = run_cli("report", str(lb.path), "-o", str(out))
    assert result.exit_code == 1, result.output          # the fault is an error finding
    doc = explain_json(lb.path)
    check_page(browser, out, first_code=FAULTS[fault].first_code, hosts=sorted(lb.lab.hosts),
               explain_doc=doc, bgp_pairs=_pairs(lb.path), shots=tmp_path / "shot.png")
    CHECKED.add(lb.path)
    if fault == "bgp-bad-peer-as" and _captures(lb.path):
        # every NOTIFICATION in the lane's capture (tshark) is an event of the report's timeline
        js = tmp_path / "r.json"
        run_cli("report", str(lb.path), "-o", str(js), "--fail-on", "never")
        lanes = json.loads(js.read_text())["report"]["timeline"]["lanes"]
        for lane in lanes:
            pcap = lb.path / f"hosts/{lane['capture']}/capture.pcap"
            frames = subprocess.run(
                ["tshark", "-n", "-r", str(pcap), "-Y",
                 f"bgp.type == 3 && ip.addr == {lane['a']} && ip.addr == {lane['b']}",
                 "-T", "fields", "-e", "frame.number"], capture_output=True, text=True,
                check=True).stdout.split()
            got = [e["frame"] for e in lane["events"] if e["kind"] == "NOTIFICATION"]
            assert sorted(got) == sorted(int(f) for f in frames), lane


def test_every_store_bundle_renders(labs, browser, tmp_path):
    """Every other cell the store built this session (the fault cycle builds one per cell, on
    both addressing plans; one plan of a cell is rendered here, the other renders alike): the
    HTML shows the fault's code as the first finding, the lab's hosts in the topology, the
    timeline of the captures, the pointed rows; no request."""
    from diag.lab.faults import FAULTS
    from diag.pipeline import report as build_report
    from diag.report.output import render, write_atomic

    labs.bundle("cilium", "native", None)   # the healthy lab: built already in a full run
    bundles, cells = [], set()
    for (cni, mode, _addressing, fault, extra), lb in list(labs.bundles.items()):
        if lb.path in CHECKED or (cni, mode, fault, extra) in cells:
            continue
        cells.add((cni, mode, fault, extra))
        bundles.append(lb)
    failures, checked, right_first = [], 0, 0
    for lb in bundles:
        out = tmp_path / f"{lb.path.name}.html"
        doc, data = build_report(lb.path)
        write_atomic(out, render("html", doc, data))
        first = doc["findings"][0]["code"] if doc["findings"] else None
        # a control run ("NAME+objects-only": the object edited, the daemons untouched) has no
        # fault's code to expect first
        fault = lb.fault if lb.fault and "+" not in lb.fault else None
        expected = FAULTS[fault].first_code if fault else first
        try:
            # the hosts the bundle collected: a bundle taken through the agent pods
            # (`--via kubectl`) has the nodes and no router
            collected = sorted(json.loads((lb.path / "manifest.json").read_text())["hosts"])
            check_page(browser, out, first_code=expected, hosts=collected,
                       explain_doc=doc, bgp_pairs=_pairs(lb.path))
        except AssertionError as err:
            failures.append(f"{lb.path.name}: {err}")
        checked += 1
        right_first += bool(fault and first == FAULTS[fault].first_code)
    print(f"report sweep: {checked} bundles, {right_first} with the fault's code first")
    assert checked >= 1
    assert not failures, "\n".join(failures)
