"""Fuzzing as a habit (issue: hostile evidence, item 6): hypothesis throws damaged outputs at every
parser, damaged manifests at the bundle reader, whole damaged bundles at facts + explain + the
renderers, and captures of every block type cut anywhere at both decoders and ``diag pcap``'s
summary. Nothing but an expected error (:class:`diag.errors.DiagError`) may come out; the two
decoders must agree. The CI profile (tests/conftest.py) bounds the examples; benchmarks/fuzz.py
runs the same generators for the long run. Each distinct crash it found is a regression test in
tests/fuzz/test_regressions.py."""
from __future__ import annotations

import io
import json
import shutil
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diag.errors import DiagError
from diag.parse import PARSERS, ParseContext, parser_for
from tests.fuzz import strategies as fz

SPECS = sorted(PARSERS) + ["gobgp-adj-in-192.0.2.1", "ip-route-get-10.0.0.1",
                           "ip-neigh.after-capture"]
BUNDLE = fz.FIXTURES / "bundles" / "calico-vxlan-alt.tar.gz"


def parse_one(spec: str, data: bytes):
    """An output through what the facts do with it: the column-wise reader, the parser, the
    type check. Returns (part or None, failure or None); never raises."""
    from diag.facts.schema import violation
    from diag.facts.tables import _guarded, _read

    parser = parser_for(spec)
    context = ParseContext(spec=spec)

    class Bundle:                   # what _read needs: the output's bytes
        @staticmethod
        def read(_path):
            return data

    text, found = _read(Bundle, {"path": "x"}, parser, context)
    part, failure = _guarded(parser, text, found, context)
    if part is not None:
        broken = violation(parser.table, part)
        if broken is not None:
            return None, broken
    return part, failure


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=st.sampled_from(SPECS), data=st.data())
def test_every_parser_takes_any_output(spec, data):
    parse_one(spec, data.draw(fz.command_output(spec)))


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=fz.kube_list(), expect=st.sampled_from([None, ("cilium.io", "CiliumNode"),
                                                    ("", "Node"),
                                                    ("crd.projectcalico.org", "IPAMBlock")]))
def test_any_kube_list_is_read_or_refused(data, expect):
    """The Kubernetes parser answers any file with rows and per-object errors or one
    ParseError: nothing else (the facts guard it anyway; this keeps the parser honest)."""
    from diag.parse.common import ParseError
    from diag.parse.k8s import parse_list

    try:
        read = parse_list(data, expect=expect)
    except ParseError:
        return
    for problem in read.errors:
        assert str(problem)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-bundle")
    with tarfile.open(BUNDLE) as tar:
        tar.extractall(root, filter="data")
    return root / BUNDLE.name.removesuffix(".tar.gz")


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_any_manifest_is_validated_or_refused(extracted, data):
    from diag.bundle import validated_manifest

    base = json.loads((extracted / "manifest.json").read_text())
    doc = data.draw(fz.manifest(base))
    try:
        clean, _problems = validated_manifest(doc)
    except DiagError:
        return
    for record in clean["hosts"].values():     # what every reader then relies on
        assert isinstance(record, dict) and isinstance(record["commands"], list)
        for command in record["commands"]:
            assert isinstance(command, dict) and isinstance(command["id"], str)


def _analyse(root):
    """facts, explain and every renderer on a bundle directory; DiagError is an answer."""
    from diag.analyze import explain
    from diag.facts import load_facts
    from diag.report.explain import explain_document, render
    from diag.report.facts import facts_json

    try:
        facts = load_facts(root)
    except DiagError:
        return
    result = explain(facts)
    for fmt in ("text", "md", "json"):
        render(result, facts, fmt)
    json.dumps(facts_json(facts), default=str)
    explain_document(result, facts)


@settings(max_examples=12, suppress_health_check=[HealthCheck.too_slow,
                                                  HealthCheck.data_too_large,
                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_damaged_bundle_is_analysed(extracted, tmp_path, data):
    root = tmp_path / "b"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(extracted, root)
    manifest = json.loads((root / "manifest.json").read_text())
    commands = [(host, c) for host, rec in manifest["hosts"].items() for c in rec["commands"]
                if c.get("path") and parser_for(c["id"]) is not None]
    for host, command in data.draw(st.lists(st.sampled_from(commands), min_size=1, max_size=4)):
        output = data.draw(fz.command_output(command["id"]))
        (root / command["path"]).write_bytes(output)
    if data.draw(st.booleans()):
        manifest = data.draw(fz.manifest(manifest))
    (root / "manifest.json").write_text(json.dumps(manifest))
    _analyse(root)


def _decode_everything(path, vectorize):
    from rich.console import Console

    from diag.decode import iter_rows
    from diag.decode.summary import CaptureSummary
    from diag.report.pcap_text import render

    summary = CaptureSummary()
    try:
        for chunk in iter_rows(path, chunk_packets=5, vectorize=vectorize):
            summary.add(chunk)
    except DiagError:
        return None
    result = summary.result()
    render(result, Console(file=io.StringIO(), width=120))
    return result


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(data=fz.capture())
def test_any_capture_is_decoded_and_both_decoders_agree(tmp_path, data):
    path = tmp_path / "fuzz.pcap"
    path.write_bytes(data)
    slow = _decode_everything(path, False)
    fast = _decode_everything(path, True)
    assert (slow is None) == (fast is None)
    if slow is not None:
        assert json.dumps(slow, sort_keys=True, default=str) == \
            json.dumps(fast, sort_keys=True, default=str)


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow,
                                                  HealthCheck.data_too_large,
                                                  HealthCheck.function_scoped_fixture])
@given(data=fz.capture())
def test_any_capture_through_facts_and_explain(tmp_path, data):
    path = tmp_path / "fuzz.pcapng"
    path.write_bytes(data)
    _analyse(path)
