"""Issue 18 on the lab: every configuration fault through ``diag lab fault NAME`` -> the lab's
``diag collect --kube --via kubectl ...`` line (every node through its agent pod, no SSH; a
capture from a ``kubectl debug node`` pod where the evidence is on the wire) -> ``diag
explain``: the fault's code first, citing the object (its stored List and pointer, which
resolve to the edited value) and the state from the real daemons (the nodes' RIBs, routes,
links, captured ARP and BGP), with the fix as an object change. Its control run — the same
edit with ``--objects-only``, the daemons left alone — must give a different result and never
the fault's code as an error. The healthy labs, collected the same way, give no warning.

Marker ``lab`` (root); the session store (tests/labstore.py) makes one bundle per cell.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from diag.analyze import explain
from diag.facts import load_facts
from diag.k8s import pointers
from diag.lab import faults
from diag.pipeline import report
from diag.report.markdown import render_markdown
from tests.analyze.test_lab_fault_table import check_evidence
from tests.labstore import VIA_KUBECTL

pytestmark = pytest.mark.lab

CAPTURE = {"peer-asn-typo": "12s"}            # GoBGP reconnects every 5-10 s: catch an OPEN
ON_THE_WIRE = ("peer-asn-typo", "l2-policy-wrong-interface", "l2-lease-failover-stale",
               "tunnel-port-config-mismatch")
LABS = {"cilium": ("native", "vxlan"), "calico": ("native",)}
CONFIG = [f for f in faults.FAULTS.values() if f.level == "config"]


def _cells() -> list[tuple[str, str, str]]:
    """Each configuration fault once, on the first lab of LABS it applies to."""
    out = []
    for f in CONFIG:
        where = [(cni, mode) for cni, modes in LABS.items() for mode in modes
                 if f.applies_to(cni, mode)]
        out.append((*where[0], f.name))
    return out


CELLS = _cells()
HEALTHY = [("cilium", "native"), ("cilium", "vxlan"), ("calico", "native")]


def STORE_EXTRA(fault: str | None) -> tuple[str, ...]:
    """How this module's bundles are collected (tests/conftest.py asks, for the prefetch)."""
    name = (fault or "").partition("+")[0]
    wire = ("--capture", CAPTURE.get(name, "3s"), "--debug-image", "nicolaka/netshoot") \
        if name in ON_THE_WIRE else ()
    return (*VIA_KUBECTL, *wire)


def _bundle(labs, cni, mode, fault):
    return labs.bundle(cni, mode, fault, extra=STORE_EXTRA(fault))


def _listing(result) -> str:
    return "\n".join(f"{f.severity} {f.code} <- {f.caused_by}: {f.summary}"
                     for f in result.findings)


def _objects_cited(path, finding) -> list[str]:
    """What does not resolve among the objects a finding cites: the pointer inside the stored
    List reaches an item of the named kind and name."""
    problems = []
    for ev in finding.evidence:
        if not ev.file.startswith("kube/"):
            continue
        data = json.loads((path / ev.file).read_text())
        try:
            pointers.resolve(data, ev.pointer)
            item = data["items"][int(pointers.split(ev.pointer)[1])]
        except (KeyError, IndexError, ValueError) as err:
            problems.append(f"{ev.file} {ev.pointer}: {err}")
            continue
        ref = " ".join(ev.value.split()[:2])      # "Kind/name ..." or "Kind namespace/name"
        if item["metadata"]["name"] not in ref or item["kind"] not in ref:
            problems.append(f"{ev.file} {ev.pointer}: {ref} is not {item['kind']}/"
                            f"{item['metadata']['name']}")
    return problems


@pytest.mark.skipif(not shutil.which("tshark"), reason="tshark is the frame oracle")
@pytest.mark.parametrize("cni,mode,fault", CELLS)
def test_configuration_fault_named_first_with_its_object(labs, cni, mode, fault):
    lb = _bundle(labs, cni, mode, fault)
    assert "--via" in lb.collect_argv, lb.collect_argv
    assert f"expected first finding: {faults.FAULTS[fault].first_code}" in lb.apply_stdout
    result = explain(load_facts(lb.path))
    listing = _listing(result)
    first = result.findings[0]
    assert first.code == faults.FAULTS[fault].first_code, listing
    assert first.severity == "error" and first.caused_by is None, listing
    intent = [e for e in first.evidence if e.role == "intent"]
    state = [e for e in first.evidence if e.role == "state" and not e.file.startswith("kube/")]
    # LB-IPAM's state is the status it writes on the Service (the operator's word)
    status = [e for e in first.evidence if e.role == "state" and e.file.startswith("kube/")]
    assert intent and (state or (fault == "lb-pool-exhausted" and status)), first.evidence
    assert not _objects_cited(lb.path, first)
    if state:
        problems = check_evidence(lb.path, replace(first, evidence=tuple(state)))
        assert not problems, "\n".join(problems)
    if fault == "tunnel-port-config-mismatch":
        # each device's port as the kernel gave it while the bundle was collected
        cited = {e.host: int(e.value.split("dstport ")[1].split()[0]) for e in state
                 if "dstport " in e.value}
        assert cited and all(lb.vxlan_ports[h] == port for h, port in cited.items()), \
            (cited, lb.vxlan_ports)
        assert len(set(cited.values())) == 2, cited
    assert any(line.startswith("kubectl ") for line in first.fix), first.fix
    # `diag report` draws the object beside the state for it
    doc, data = report(lb.path)
    assert doc["findings"][0]["code"] == first.code
    text = render_markdown(doc, data)
    section = text.split("the object (intent)", 1)[1][:4000]
    assert intent[0].pointer in section and "the state that shows the effect" in text, section


@pytest.mark.parametrize("cni,mode,fault", [(c, m, f"{f}+objects-only") for c, m, f in CELLS])
def test_control_run_objects_edited_daemons_untouched(labs, cni, mode, fault):
    name = fault.partition("+")[0]
    lb = _bundle(labs, cni, mode, fault)
    assert "objects only" in lb.apply_stdout, lb.apply_stdout
    result = explain(load_facts(lb.path))
    listing = _listing(result)
    code = faults.FAULTS[name].first_code
    assert not [f for f in result.findings if f.code == code and f.severity == "error"], listing
    assert result.findings and result.findings[0].code != code or \
        result.findings[0].severity != "error", listing
    # what it says instead: the objects and the daemons disagree (or, for a Service no
    # LB-IPAM answered, a warning that says so)
    assert any(f.code in ("INTENT_NOT_APPLIED", "LB_IP_PENDING") and f.severity == "warning"
               for f in result.findings), listing


# ``fault`` None names the healthy bundle, so the store prefetches it like the others (the same
# bundle tests/lab/test_lab_pods.py reads on the native labs)
@pytest.mark.parametrize("cni,mode,fault", [(c, m, None) for c, m in HEALTHY],
                         ids=[f"{c}-{m}" for c, m in HEALTHY])
def test_healthy_lab_through_the_pods_gives_no_warning(labs, cni, mode, fault):
    lb = labs.bundle(cni, mode, fault, extra=STORE_EXTRA(fault))
    result = explain(load_facts(lb.path))
    bad = [f"{f.severity} {f.code}: {f.summary}" for f in result.findings
           if f.severity != "info"]
    assert not bad, "\n".join(bad)
    passed = {c.name for c in result.checked if c.passed}
    assert any(name.startswith(("Cilium BGP", "every Calico node")) for name in passed), passed
