"""A parse error is never a silent gap: `diag explain` lists the checks that needed that output
as "not checked" on that host, with the parser's reason, and a check that ran on the other hosts
says it did not run on that one.

The bundle is a real lab bundle (tests/fixtures/bundles, calico native) to which k8s-ctr's
`calicoctl node status` is added as Calico prints it when calicoctl cannot reach BIRD's socket —
the real output of tests/fixtures/calico-node-status/upstream-error-querying-bird.refused (a
public note on projectcalico/calicoctl issue #1594, see PROVENANCE.md there) — with the manifest's
size and sha256 made to match, as the collector writes them.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from diag.analyze import explain
from diag.facts import load_facts

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "tests/fixtures/bundles/calico-native-default.tar.gz"
REFUSED = ROOT / "tests/fixtures/calico-node-status/upstream-error-querying-bird.refused"


def _with_unreadable_output(tmp: Path) -> Path:
    with tarfile.open(BUNDLE) as tar:
        tar.extractall(tmp, filter="data")
    root = tmp / "calico-native-default"
    manifest = json.loads((root / "manifest.json").read_text())
    data = REFUSED.read_bytes()
    path = "hosts/k8s-ctr/calico-node-status.out"
    (root / path).write_bytes(data)
    commands = manifest["hosts"]["k8s-ctr"]["commands"]
    template = next(c for c in commands if c["id"] == "bird-protocols-all")
    commands.append(dict(template, id="calico-node-status", path=path,
                         argv=["calicoctl", "node", "status"], bytes=len(data),
                         sha256=hashlib.sha256(data).hexdigest()))
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_checks_that_needed_an_unreadable_output_are_not_checked(tmp_path):
    root = _with_unreadable_output(tmp_path)
    facts = load_facts(root)
    assert not facts.problems
    errors = facts.parse_errors
    assert list(zip(errors.host, errors.source, errors.table)) == [
        ("k8s-ctr", "calico-node-status", "bgp_peers")]
    assert "Error querying BIRD" in errors.iloc[0].reason
    result = explain(facts)
    missing = {c.name: c.needs for c in result.not_checked}
    # the BGP checks read bgp_peers: not checked on k8s-ctr, the parser's words as the reason
    for name in ("BGP sessions Established on k8s-ctr",
                 "BGP routes exchanged (policy, AS path loop, advertisements) on k8s-ctr"):
        assert name in missing, sorted(missing)
        assert "calico-node-status" in missing[name] and "Error querying BIRD" in missing[name]
    # checks that do not read it are untouched
    assert not [n for n in missing if n.startswith("pod CIDRs leave by the cluster NIC")]
    ran = {c.name: c for c in result.checked}
    assert "not checked on k8s-ctr" in ran["BGP sessions Established"].detail
    assert "not checked on" not in ran["pod CIDRs leave by the cluster NIC"].detail
    # the same bundle without the unreadable output: nothing is "not checked" on a host
    clean = explain(load_facts(BUNDLE))
    assert not [c for c in clean.not_checked if c.name.endswith(" on k8s-ctr")]

    proc = subprocess.run([sys.executable, "-m", "diag", "explain", str(root)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    text = proc.stdout.split("Not checked:", 1)[1]
    assert "BGP sessions Established on k8s-ctr" in text
    assert "k8s-ctr's `calico-node-status` output, which could not be read" in text
