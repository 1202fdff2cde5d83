"""End to end on real labs: the overlay and rp_filter faults of the lab's fault table
(diag.lab.faults: the oracle for the expected first code) put their code first in `diag explain`,
on the session store's bundles (collected with the command the lab prints and a short capture),
with evidence that resolves to the cited element; removing the kernel counters
(an independent source) lowers the confidence."""
from __future__ import annotations

import dataclasses
import json

import pytest

from diag.analyze import explain
from diag.facts import load_facts
from tests.analyze.pointers import resolve_pointer

pytestmark = pytest.mark.lab


def _check_evidence(bundle, finding) -> None:
    assert finding.evidence
    for ev in finding.evidence:
        path = bundle / ev.file
        assert path.is_file(), ev
        if ev.pointer.startswith("/"):
            node = resolve_pointer(json.loads(path.read_text()), ev.pointer)
            first = ev.value.split()[0].rstrip(":")
            assert first in json.dumps(node), (ev, json.dumps(node)[:300])
        elif ev.pointer.startswith("line starting "):
            start = ev.pointer.removeprefix("line starting ")
            lines = [ln for ln in path.read_text().splitlines() if ln.startswith(start)]
            assert lines, ev
            assert ev.value.split()[-1] in lines[0], (ev, lines[0])


def _first(lb):
    from diag.lab import faults

    facts = load_facts(lb.path)
    result = explain(facts)
    listing = "\n".join(f"{f.severity} {f.code} <- {f.caused_by}: {f.summary}"
                        for f in result.findings)
    assert result.findings, "no finding"
    first = result.findings[0]
    assert first.code == faults.FAULTS[lb.fault].first_code, listing
    assert first.severity == "error", listing
    assert first.fix, first
    _check_evidence(lb.path, first)
    return facts, result, first


# every table a capture gives (the overlay ledger follows flows through sightings and fragments)
CAPTURE_TABLES = ("packets", "sightings", "fragments", "icmp", "wire_tunnels")


def _without_counters(facts, *more: str):
    tables = dict(facts.tables)
    for name in ("counters", *more):
        if name in tables:
            tables[name] = tables[name].iloc[0:0]
    return dataclasses.replace(facts, tables=tables)


def test_vxlan_port_mismatch(labs):
    lb = labs.bundle("calico", "vxlan", "vxlan-port-mismatch")
    facts, result, first = _first(lb)
    from diag.lab import plan as P
    from diag.lab.faults.base import roles
    from diag.lab.faults.overlay import IANA_VXLAN_PORT

    r = roles(lb.lab)
    # the kernel (ip -d -j link, read live by the store while collecting) is the oracle for who
    # is odd and on which port
    assert lb.vxlan_ports[r.remote.name] == IANA_VXLAN_PORT
    assert {p for n, p in lb.vxlan_ports.items() if n != r.remote.name} == {P.VXLAN_PORT}
    assert first.hosts == (r.remote.name,), first
    assert str(IANA_VXLAN_PORT) in first.summary and str(P.VXLAN_PORT) in first.summary
    assert any(f"dstport {P.VXLAN_PORT}" in cmd for cmd in first.fix), first.fix
    assert "OTV" in first.note
    # UdpNoPorts on the odd VTEP: the VXLAN packets reached a port nobody listens on
    assert "nstat" in first.confidence.to_dict()["sources"], first.confidence
    lowered = explain(_without_counters(facts)).findings[0]
    assert lowered.code == first.code
    assert len(lowered.confidence.sources) < len(set(first.confidence.sources))


def test_overlay_mtu_blackhole(labs):
    lb = labs.bundle("calico", "vxlan", "overlay-mtu-blackhole")
    facts, result, first = _first(lb)
    from diag.lab import plan as P
    from diag.lab.faults.base import roles

    r = roles(lb.lab)
    assert first.hosts == (r.node.name,), first
    assert "1500" in first.summary and str(P.VXLAN_MTU) in first.summary, first.summary
    assert any(f"mtu {P.VXLAN_MTU}" in cmd for cmd in first.fix), first.fix
    # IpFragFails: the host already refused DF packets too big for the tunnel
    assert "nstat" in first.confidence.to_dict()["sources"], first.confidence
    lowered = [f for f in explain(_without_counters(facts)).findings
               if f.code == first.code][0]
    assert len(set(lowered.confidence.sources)) < len(set(first.confidence.sources))
    # without the counters and the capture only the configuration is left: a warning
    config_only = [f for f in explain(_without_counters(facts, *CAPTURE_TABLES)).findings
                   if f.code == first.code][0]
    assert set(config_only.confidence.sources) == {"ip-link"}, config_only.confidence
    assert config_only.severity == "warning", config_only


def test_rp_filter_strict(labs):
    lb = labs.bundle("calico", "native", "rp-filter-strict")
    facts, result, first = _first(lb)
    from diag.lab.faults.base import roles

    r = roles(lb.lab)
    assert first.hosts == (r.remote.name,), first
    cluster, mgmt = r.remote.cluster_nic.name, r.remote.nic("mgmt").name
    assert f"arrive on {cluster}" in first.summary and f"leaves by {mgmt}" in first.summary, \
        first.summary
    assert any("rp_filter=2" in cmd for cmd in first.fix), first.fix
    assert "nstat" in first.confidence.to_dict()["sources"], first.confidence
    assert first.confidence.level == "high"
    lowered = [f for f in explain(_without_counters(facts)).findings
               if f.code == first.code][0]
    assert lowered.confidence.level == "medium"
    # the route back out the management NIC is the rp_filter drop's other face, not a root cause
    for f in result.findings[1:]:
        if f.severity != "info" and r.remote.name in f.hosts:
            assert f.caused_by, f
