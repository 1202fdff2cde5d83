"""End to end on real labs: the path tracer against the kernel's `ip route get`, and, beyond
test_lab_fault_table.py's checks of every cell, what the routing and BGP faults' findings must
say (the leak as a consequence, the alt plan's names, the CLI's exit codes and JSON), on the
session store's bundles (one per lab and fault, collected with the command the lab prints)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from diag.analyze import explain
from diag.analyze.fib import build_fib
from diag.analyze.lookup import lookup
from diag.analyze.trace import trace
from diag.report.explain import trace_text
from diag.facts import load_facts
from tests.analyze.pointers import resolve_pointer

pytestmark = pytest.mark.lab

ROUTING_FAULTS = ["rib-not-in-fib", "missing-podcidr-route-other-subnet",
                  "egress-leak-default-route", "route-wrong-table"]


def _agrees(lk, kernel: dict) -> tuple[bool, str]:
    if "error" in kernel:
        # the kernel refuses: no route, unreachable, prohibit
        return lk.type in ("none", "unreachable", "prohibit", "blackhole"), kernel["error"]
    ktype = kernel.get("type", "unicast")
    if ktype in ("local", "broadcast"):
        return lk.type == ktype, f"{ktype} dev {kernel.get('dev')}"
    if ktype != "unicast":
        return lk.type == ktype, ktype
    ok = lk.type == "unicast" and lk.dev == kernel.get("dev") and (
        kernel.get("gateway") in lk.gateways if kernel.get("gateway") else lk.gateway is None)
    return ok, f"via {kernel.get('gateway')} dev {kernel.get('dev')}"


def _check_against_kernel(lb) -> int:
    facts = load_facts(lb.path)
    fib = build_fib(facts.tables)
    compared, wrong = 0, []
    for (host, addr), kernel in lb.kernel.items():
        lk = lookup(fib, host, addr)
        ok, said = _agrees(lk, kernel)
        compared += 1
        if not ok:
            wrong.append(f"{host} {addr}: kernel {said}; trace {lk.type} via {lk.gateways} "
                         f"dev {lk.dev} ({lk.reason})")
    assert not wrong, "\n".join(wrong)
    return compared


@pytest.mark.parametrize("cni,mode,fault", [
    ("cilium", "native", None), ("calico", "vxlan", None),
    ("cilium", "native", "egress-leak-default-route"), ("calico", "native", "route-wrong-table"),
])
def test_trace_agrees_with_ip_route_get(labs, cni, mode, fault):
    lb = labs.bundle(cni, mode, fault)
    assert _check_against_kernel(lb) >= 40


def test_trace_pod_to_pod_multi_hop(labs):
    lb = labs.bundle("cilium", "native", None)
    facts = load_facts(lb.path)
    hosts = lb.lab.hosts
    nodes = [h for h in hosts.values() if h.pod_ip]
    for src in nodes:
        for dst in nodes:
            if src is dst:
                continue
            t = trace(facts.tables, facts.model, src.pod_ip, dst.pod_ip)
            assert t.outcome == "delivered", trace_text(t)
            assert t.hops[-1].host == dst.name, trace_text(t)
            # every hop leaves by the cluster NIC, never the management one
            assert all(h.lookup.dev != hosts[h.host].mgmt_iface for h in t.hops
                       if hosts[h.host].mgmt_iface), trace_text(t)


def test_trace_follows_vxlan_fdb(labs):
    lb = labs.bundle("calico", "vxlan", None)
    facts = load_facts(lb.path)
    nodes = [h for h in lb.lab.hosts.values() if h.pod_ip]
    t = trace(facts.tables, facts.model, nodes[0].pod_ip, nodes[-1].pod_ip)
    assert t.outcome == "delivered" and t.hops[-1].host == nodes[-1].name, trace_text(t)
    assert t.hops[0].tunnel and nodes[-1].cluster_ip in t.hops[0].tunnel, trace_text(t)


def test_trace_shows_the_leak(labs):
    lb = labs.bundle("cilium", "native", "egress-leak-default-route")
    facts = load_facts(lb.path)
    from diag.lab.faults.base import roles

    r = roles(lb.lab)
    t = trace(facts.tables, facts.model, r.node.pod_ip, r.remote.pod_ip)
    assert t.outcome == "left", trace_text(t)
    assert t.hops[0].host == r.node.name
    assert t.hops[0].lookup.dev == lb.lab.hosts[r.node.name].mgmt_iface, trace_text(t)


def _check_evidence(bundle: Path, finding) -> None:
    assert finding.evidence
    for ev in finding.evidence:
        path = bundle / ev.file
        assert path.is_file(), ev
        if ev.pointer.startswith("/"):
            node = resolve_pointer(json.loads(path.read_text()), ev.pointer)
            # the pointed-at element is what the evidence line says (its prefix or address)
            text = json.dumps(node)
            tokens = [t.rstrip(":") for t in ev.value.split()]
            key = next(t for t in tokens if "." in t or t.isdigit())
            key = key.replace("0.0.0.0/0", "default").split("/")[0]
            assert key in text, (ev, text[:300])


# calico's route-wrong-table differs (BIRD exports to the table) and its egress leak serves the
# CLI test; the other routing faults act the same on both CNIs and run on cilium only (CI budget)
@pytest.mark.parametrize("cni,fault", [("cilium", f) for f in ROUTING_FAULTS]
                         + [("calico", "route-wrong-table"),
                            ("calico", "egress-leak-default-route")])
def test_routing_fault_first_code(labs, cni, fault):
    from diag.lab import faults

    lb = labs.bundle(cni, "native", fault)
    result = explain(load_facts(lb.path))
    assert result.findings, "no finding"
    first = result.findings[0]
    expected = faults.FAULTS[fault].first_code
    listing = "\n".join(f"{f.severity} {f.code}: {f.summary}" for f in result.findings)
    assert first.code == expected, listing
    assert first.severity == "error", listing
    assert first.fix, first
    _check_evidence(lb.path, first)
    leaks = [f for f in result.findings if f.code == "EGRESS_LEAK_DEFAULT_ROUTE"]
    assert leaks, listing                      # every routing fault leaks k8s-ctr's pod traffic
    if expected != "EGRESS_LEAK_DEFAULT_ROUTE":
        assert all(f.caused_by for f in leaks), listing


def test_alt_addressing(labs):
    from diag.lab import faults

    lb = labs.bundle("cilium", "native", "egress-leak-default-route", addressing="alt")
    facts = load_facts(lb.path)
    result = explain(facts)
    first = result.findings[0]
    assert first.code == faults.FAULTS["egress-leak-default-route"].first_code
    from diag.lab.faults.base import roles

    r = roles(lb.lab)
    node = lb.lab.hosts[r.node.name]
    assert r.remote.pod_cidr in first.summary and node.mgmt_iface in first.summary
    assert any(f"dev {node.cluster_iface}" in cmd for cmd in first.fix), first.fix
    _check_evidence(lb.path, first)
    assert _check_against_kernel(lb) >= 40


def test_cli_exit_codes_and_json(labs):
    healthy = labs.bundle("calico", "native", None)
    broken = labs.bundle("calico", "native", "egress-leak-default-route")
    cwd = Path(__file__).resolve().parents[2]

    def run(*args):
        return subprocess.run([sys.executable, "-m", "diag", "explain", *map(str, args)],
                              capture_output=True, text=True, cwd=cwd, timeout=60)

    assert run(healthy.path).returncode == 0
    proc = run(broken.path, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema_version"] == 1 and doc["bundle"]["hosts"]
    assert doc["findings"][0]["code"] == "EGRESS_LEAK_DEFAULT_ROUTE"
    assert doc["findings"][0]["confidence"]["level"] in ("low", "medium", "high")
    assert run(broken.path, "--fail-on", "bogus").returncode == 2
    md = run(broken.path, "--format", "md")
    assert md.returncode == 1 and "EGRESS_LEAK_DEFAULT_ROUTE" in md.stdout


BGP_FAULTS = ["bgp-transport-blocked", "bgp-bad-peer-as", "bgp-hold-timer-expired",
              "bgp-md5-mismatch", "bgp-ebgp-requires-policy", "bgp-as-path-loop",
              "bgp-no-advertisement"]


@pytest.mark.parametrize("fault", BGP_FAULTS)
def test_bgp_fault_first_code(labs, fault):
    """calico native: every BGP fault of the table puts its code first; the routes the broken
    session no longer brings are listed as its consequences. (The store collects a hung
    speaker's bundle with a short command timeout: its CLI would block `birdc` for the whole
    default timeout.)"""
    from diag.lab import faults

    lb = labs.bundle("calico", "native", fault)
    result = explain(load_facts(lb.path))
    listing = "\n".join(f"{f.severity} {f.code} <- {f.caused_by}: {f.summary}"
                        for f in result.findings)
    assert result.findings, "no finding"
    first = result.findings[0]
    assert first.code == faults.FAULTS[fault].first_code, listing
    assert first.severity == "error", listing
    for f in result.findings:
        if f.code in ("EGRESS_LEAK_DEFAULT_ROUTE", "ROUTE_MISSING_PODCIDR_OFF_LINK"):
            assert f.caused_by and f.caused_by.startswith("BGP_"), listing
    for ev in first.evidence:
        assert (lb.path / ev.file).is_file() or ev.pointer == "manifest", ev
