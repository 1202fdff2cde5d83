"""Damaged and hostile bundles degrade per file (issue: hostile evidence): one bad output is one
``parse_errors`` row (host, source, parser, path, reason) and the rest of the bundle is analysed;
the manifest is validated up front (a bad field refuses the bundle naming it, a bad host record
makes that host UNUSABLE); JSON is read with a depth limit; files past their reading limit are
never loaded, also inside archives."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
from pandas.testing import assert_frame_equal
from typer.testing import CliRunner

from diag.bundle import MAX_JSON_DEPTH, MAX_OUTPUT_BYTES, open_bundle
from diag.cli import app
from diag.facts import load_facts
from diag.parse import parser_for
from tests.facts.helpers import BUNDLES

CASE = "calico-vxlan-alt"
HOST = "k8s-w1"


def _extract(tmp_path):
    with tarfile.open(BUNDLES / f"{CASE}.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / CASE


def _manifest(root):
    return json.loads((root / "manifest.json").read_text())


def _rewrite(root, host, command_id, data: bytes, manifest=None):
    """Replace one output and record its new size and hash (no sha256 problem in the way)."""
    manifest = manifest or _manifest(root)
    for command in manifest["hosts"][host]["commands"]:
        if command["id"] == command_id:
            (root / command["path"]).write_bytes(data)
            command["bytes"], command["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    (root / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def _parsed_ids(root, host):
    return [c["id"] for c in _manifest(root)["hosts"][host]["commands"]
            if c.get("outcome") == "OK" and c.get("path") and parser_for(c["id"]) is not None
            and parser_for(c["id"]).table != "route_gets"]


def _rows_of_others(facts, host):
    return {name: df[df["host"] != host].reset_index(drop=True)
            for name, df in facts.tables.items() if "host" in df.columns and name != "commands"}


DEEP = b"[" * 5000 + b"]" * 5000
PAYLOADS = {
    "deep array": DEEP,
    "deep object": b'{"a":' * 3000 + b"1" + b"}" * 3000,
    "just deeper than the limit": b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
    "wrong types": json.dumps([{
        "ifname": 5, "ifindex": "x", "mtu": "big", "flags": 7, "dst": 5, "lladdr": [],
        "state": 3, "priority": "x", "table": [], "addr_info": "s", "linkinfo": "v",
        "local": {"a": 1}, "prefixlen": "24", "mac": 9, "nexthops": "no"}]).encode(),
    "object where a list is": b'{"peers": [1, 2], "routes": {"x": 5}, "ipv4Unicast": "x"}',
    "bytes": bytes(range(256)) * 40,
}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = _extract(tmp_path_factory.mktemp("clean"))
    return load_facts(root)


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_every_output_of_one_host_damaged_leaves_the_others_analysed(tmp_path, clean, payload):
    root = _extract(tmp_path)
    manifest = None
    ids = _parsed_ids(root, HOST)
    for command_id in ids:
        manifest = _rewrite(root, HOST, command_id, PAYLOADS[payload], manifest)
    facts = load_facts(root)
    errors = facts.parse_errors
    assert list(errors.columns) == ["host", "source", "parser", "path", "reason", "table"]
    assert set(errors.host) <= {HOST}
    # every damaged output is either refused by name (with its parser and a reason) or gives
    # rows of the documented types; none is silently half-read
    refused = dict(zip(errors.source, errors.reason))
    for command_id in ids:
        if command_id in refused:
            row = errors[errors.source == command_id].iloc[0]
            assert row.parser == parser_for(command_id).source and row.reason
            assert row.path.endswith(f"{command_id}.out")
    if payload != "object where a list is":     # some parsers read an object as "no rows"
        assert set(refused) == set(ids) - {"ss-tanpi"} or set(refused) == set(ids)
    # the other hosts are read exactly as in the undamaged bundle
    ours, theirs = _rows_of_others(facts, HOST), _rows_of_others(clean, HOST)
    for name in theirs:
        if name != "tunnels":       # the model's, which the damaged host's absence changes
            assert_frame_equal(ours[name], theirs[name], check_dtype=False, obj=name)
    # explain runs, and says what it could not check because of the damage
    from diag.analyze import explain
    # (as the checks that needed the output, "... on HOST" naming it, or as the output itself)
    not_checked = " ".join(f"{c.name} {c.needs}" for c in explain(facts).not_checked)
    for command_id in refused:
        assert f"{command_id} of {HOST}" in not_checked or \
            f"{HOST}'s `{command_id}` output" in not_checked, command_id


def test_deep_json_is_refused_with_its_depth(tmp_path):
    root = _extract(tmp_path)
    _rewrite(root, HOST, "ip-link", DEEP)
    _rewrite(root, HOST, "ip-addr", b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    errors = load_facts(root).parse_errors
    reasons = dict(zip(errors.source, errors.reason))
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in reasons["ip-link"]
    assert "ip-addr" not in reasons     # at the limit: read (and gives no rows)


def _cli(*args):
    result = CliRunner().invoke(app, [*map(str, args)])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("field, value, words", [
    ("hosts", [], "'hosts' is an array"),
    ("status", 3, "field 'status' is a number, not a string"),
    ("partial_reasons", 5, "field 'partial_reasons' is a number, not an array"),
    ("partial_reasons", [1], "'partial_reasons' holds something else than strings"),
    ("run", "x", "field 'run' is a string, not an object"),
    ("schema_version", True, "unknown bundle schema version True"),
    ("kube", {"resources": 4}, "field 'kube.resources' is a number, not an array"),
])
def test_a_bad_manifest_field_refuses_the_bundle_naming_it(tmp_path, field, value, words):
    root = _extract(tmp_path)
    manifest = _manifest(root)
    manifest[field] = value
    (root / "manifest.json").write_text(json.dumps(manifest))
    for command in ("facts", "explain"):
        code, out, err = _cli(command, root)
        assert code == 4 and out == "" and words in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_deep_manifest_is_refused(tmp_path):
    root = _extract(tmp_path)
    text = (root / "manifest.json").read_text()
    (root / "manifest.json").write_text(text[:-1].rstrip().rstrip("}") +
                                        ', "deep": ' + "[" * 3000 + "]" * 3000 + "}")
    code, _, err = _cli("facts", root)
    assert code == 4 and "nested deeper than" in err


@pytest.mark.parametrize("record, words", [
    ("a string", "the record is a string"),
    ({"commands": "ip-link"}, "'commands' is a string, not an array"),
    ({"commands": [], "daemons": ["FRR"]}, "'daemons' is an array"),
    ({"commands": [], "declared": {"lb_ips": "10.0.0.1"}}, "'lb_ips' is a string"),
    ({"commands": [], "clock_offset_s": "soon"}, "'clock_offset_s' is a string"),
])
def test_a_bad_host_record_makes_that_host_unusable_and_the_rest_is_analysed(
        tmp_path, clean, record, words):
    root = _extract(tmp_path)
    manifest = _manifest(root)
    manifest["hosts"][HOST] = record
    (root / "manifest.json").write_text(json.dumps(manifest))
    facts = load_facts(root)
    assert facts.bundle["hosts"][HOST]["reachability"] == "UNUSABLE"
    assert words in facts.bundle["hosts"][HOST]["error"]
    row = facts.parse_errors.iloc[0]
    assert (row.host, row.source, row.parser) == (HOST, "manifest", "manifest")
    assert row.path == f"manifest.json#/hosts/{HOST}" and words in row.reason
    assert not (facts.tables["routes"].host == HOST).any()
    ours, theirs = _rows_of_others(facts, HOST), _rows_of_others(clean, HOST)
    assert_frame_equal(ours["routes"], theirs["routes"], check_dtype=False)
    code, out, _ = _cli("explain", root)
    assert code in (0, 1) and f"{HOST}: its manifest record (not read" in out


@pytest.mark.parametrize("patch, words", [
    (7, "the record is a number"),
    ({"id": "ip-link", "path": None, "bytes": "12"}, "'bytes' is a string"),
    ({"id": 5}, "'id' is a number"),
    ({"path": "hosts/x.out"}, "it has no 'id'"),
    ({"id": "ip-link", "outcome": "OK", "path": 3}, "'path' is a number"),
])
def test_a_bad_command_record_is_dropped_alone(tmp_path, patch, words):
    root = _extract(tmp_path)
    manifest = _manifest(root)
    commands = manifest["hosts"][HOST]["commands"]
    index = next(k for k, c in enumerate(commands) if c["id"] == "ip-link")
    commands[index] = patch
    (root / "manifest.json").write_text(json.dumps(manifest))
    facts = load_facts(root)
    row = facts.parse_errors.iloc[0]
    assert row.path == f"manifest.json#/hosts/{HOST}/commands/{index}" and words in row.reason
    assert (facts.tables["routes"].host == HOST).any()      # the host's other outputs are read
    assert facts.bundle["hosts"][HOST]["reachability"] == "OK"


def test_an_output_past_its_reading_limit_is_not_read(tmp_path):
    root = _extract(tmp_path)
    _rewrite(root, HOST, "ip-neigh", b" " * (MAX_OUTPUT_BYTES + 1))
    facts = load_facts(root)
    assert {"kind": "TOO_LARGE", "path": f"hosts/{HOST}/ip-neigh.out"}.items() <= \
        next(p for p in facts.problems if p["kind"] == "TOO_LARGE").items()
    reason = facts.parse_errors.set_index("source").loc["ip-neigh", "reason"]
    assert "reading limit" in reason
    assert (facts.tables["routes"].host == HOST).any()


def _archive_with(tmp_path, name, size, count=1):
    """The case's archive with ``count`` extra members of ``size`` zero bytes (tiny compressed),
    added to the manifest as outputs of HOST."""
    out = tmp_path / "big.tar.gz"
    with tarfile.open(BUNDLES / f"{CASE}.tar.gz") as src, tarfile.open(out, "w:gz") as dst:
        for member in src:
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name.endswith("manifest.json"):
                manifest = json.loads(data)
                for k in range(count):
                    manifest["hosts"][HOST]["commands"].append(
                        {"id": f"ip-neigh.after-capture{k}", "outcome": "OK", "bytes": size,
                         "path": f"hosts/{HOST}/{name}{k}.out", "sha256": "0" * 64})
                data = json.dumps(manifest).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
        for k in range(count):
            info = tarfile.TarInfo(f"{CASE}/hosts/{HOST}/{name}{k}.out")
            info.size = size
            dst.addfile(info, _Zeros(size))
    return out


class _Zeros(io.RawIOBase):
    def __init__(self, size):
        self.left = size

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        buffer[:n] = b"\0" * n
        self.left -= n
        return n


def test_an_archive_member_past_its_limit_is_skipped_not_extracted(tmp_path):
    archive = _archive_with(tmp_path, "huge", MAX_OUTPUT_BYTES + 4096)
    bundle = open_bundle(archive, tmp_path / "x")
    assert not (bundle.root / "hosts" / HOST / "huge0.out").exists()
    kinds = {(p.kind, p.path) for p in bundle.problems}
    assert ("TOO_LARGE", f"hosts/{HOST}/huge0.out") in kinds
    assert not any(kind == "UNLISTED_FILE" for kind, _ in kinds)


def test_an_archive_of_large_members_is_refused_from_their_headers(tmp_path):
    archive = _archive_with(tmp_path, "huge", MAX_OUTPUT_BYTES + 4096, count=3)
    from diag.errors import UnusableInput
    with pytest.raises(UnusableInput, match="expands beyond"):
        open_bundle(archive, tmp_path / "x", max_total_bytes=2 * MAX_OUTPUT_BYTES)


def _fixture_outputs():
    """Every real output of the parser fixtures (tests/fixtures/<spec>/*.out|json), by spec."""
    from tests.facts.helpers import FIXTURES

    for directory in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        parser = parser_for(directory.name)
        if parser is None:
            continue
        for path in sorted(directory.glob("*")):
            if path.suffix in (".out", ".json") and not path.name.endswith(".expected.json"):
                yield pytest.param(directory.name, path, id=f"{directory.name}/{path.name}")


@pytest.mark.parametrize("spec, path", list(_fixture_outputs()))
def test_real_outputs_of_every_version_fit_the_schema(spec, path):
    """The type check never refuses what real daemons print (every fixture, every version)."""
    from diag.facts.schema import violation
    from diag.facts.tables import _guarded
    from diag.parse import ParseContext

    parser = parser_for(spec)
    data = path.read_bytes()
    context = ParseContext(spec=spec)
    found = parser.part(data, context) if parser.part is not None else None
    part, failure = _guarded(parser, data, found, context)
    if failure is not None:     # refused on purpose (a format it does not know), never a crash
        from diag.facts.tables import UNEXPECTED_SHAPE
        assert not failure.startswith(UNEXPECTED_SHAPE), failure
        return
    assert violation(parser.table, part) is None
