"""The bundle: atomic writer, archive, and the safe reader's refusals."""
from __future__ import annotations

import gzip
import io
import json
import os
import tarfile

import pytest

from diag.bundle import BundleWriter, open_bundle
from diag.errors import UnusableInput


def _bundle(tmp_path, name="b"):
    writer = BundleWriter(tmp_path / name, run={"targets": ["h1"]})
    writer.set_host("h1", reachability="OK")
    writer.add_output("h1", {"id": "ip-addr", "outcome": "OK"}, b"[]\n")
    stream = writer.open_stream("h1", "capture", ".pcap")
    stream.write(b"abc")
    writer.add_stream("h1", {"id": "capture", "outcome": "OK"}, stream)
    return writer


def test_manifest_is_valid_and_in_progress_until_finished(tmp_path):
    writer = _bundle(tmp_path)
    # throttled: the manifest on disk may lag the files, but it is valid and says in_progress
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["status"] == "in_progress"
    lagging = open_bundle(tmp_path / "b")
    assert {p.kind for p in lagging.problems} <= {"UNLISTED_FILE"}
    writer.flush()
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert [c["id"] for c in manifest["hosts"]["h1"]["commands"]] == ["ip-addr", "capture"]
    bundle = open_bundle(tmp_path / "b")
    assert bundle.partial and bundle.problems == ()
    assert writer.finish([]) == "complete"
    assert not open_bundle(tmp_path / "b").partial
    assert not [p for p in (tmp_path / "b").rglob(".*")]  # no temporaries left


def test_partial_reasons(tmp_path):
    writer = _bundle(tmp_path)
    assert writer.finish(["HOST_UNREACHED", "HOST_UNREACHED"]) == "partial"
    assert open_bundle(tmp_path / "b").manifest["partial_reasons"] == ["HOST_UNREACHED"]


def test_refuses_non_empty_output_directory(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("")
    with pytest.raises(Exception, match="not empty"):
        BundleWriter(tmp_path / "b", run={})


def test_archive_round_trip_and_sha256_check(tmp_path):
    writer = _bundle(tmp_path)
    writer.finish([])
    archive = writer.archive()
    bundle = open_bundle(archive, tmp_path / "x")
    assert bundle.problems == () and bundle.read("hosts/h1/ip-addr.out") == b"[]\n"
    (tmp_path / "b" / "hosts" / "h1" / "ip-addr.out").write_bytes(b"[1]\n")
    (tmp_path / "b" / "extra").write_text("x")
    kinds = sorted(p.kind for p in open_bundle(tmp_path / "b").problems)
    assert kinds == ["SHA256_MISMATCH", "SIZE_MISMATCH", "UNLISTED_FILE"]


def test_many_files_checked_in_manifest_order(tmp_path):
    """Large bundles are hashed several files at a time; the problems still come in the
    manifest's order, each with the file's real digest (hashlib as the oracle)."""
    import hashlib

    writer = BundleWriter(tmp_path / "b", run={"targets": ["h1", "h2"]})
    for host in ("h2", "h1"):
        writer.set_host(host, reachability="OK")
        for n in range(12):
            writer.add_output(host, {"id": f"out-{n:02d}", "outcome": "OK"}, b"x" * (n + 1))
    writer.finish([])
    tampered = ["hosts/h2/out-07.out", "hosts/h1/out-03.out", "hosts/h2/out-01.out"]
    for relative in tampered:
        path = tmp_path / "b" / relative
        path.write_bytes(path.read_bytes().upper())          # same size, other content
    problems = open_bundle(tmp_path / "b").problems
    assert [(p.kind, p.path) for p in problems] == [
        ("SHA256_MISMATCH", "hosts/h2/out-01.out"), ("SHA256_MISMATCH", "hosts/h2/out-07.out"),
        ("SHA256_MISMATCH", "hosts/h1/out-03.out")]
    for problem in problems:
        want = hashlib.sha256((tmp_path / "b" / problem.path).read_bytes()).hexdigest()
        assert problem.detail == want


def _tar(tmp_path, add):
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        add(tar)
    return path


def _member(tar, name, data=b"x", **fields):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


@pytest.mark.parametrize("add,message", [
    (lambda t: _member(t, "b/../../etc/x"), "path traversal"),
    (lambda t: _member(t, "/etc/x"), "absolute path"),
    (lambda t: _member(t, "b/link", b"", type=tarfile.SYMTYPE, linkname="/etc/passwd"), "link"),
    (lambda t: _member(t, "b/hard", b"", type=tarfile.LNKTYPE, linkname="b/x"), "link"),
    (lambda t: _member(t, "b/dev", b"", type=tarfile.CHRTYPE, devmajor=1, devminor=3), "device"),
    (lambda t: _member(t, "b/fifo", b"", type=tarfile.FIFOTYPE), "FIFO"),
])
def test_hostile_archives_are_refused(tmp_path, add, message):
    with pytest.raises(UnusableInput, match=message):
        open_bundle(_tar(tmp_path, add), tmp_path / "out")
    assert not (tmp_path.parent / "etc").exists()


def test_decompression_bomb_is_stopped_while_streaming(tmp_path):
    path = tmp_path / "bomb.tar.gz"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("b/zeros")
        info.size = 64 * 1024 * 1024
        tar.addfile(info, io.BytesIO(b"\0" * info.size))
    path.write_bytes(gzip.compress(raw.getvalue(), 9))
    assert path.stat().st_size < 200_000
    with pytest.raises(UnusableInput, match="decompression bomb"):
        open_bundle(path, tmp_path / "out", max_total_bytes=8 * 1024 * 1024)


def test_directory_with_symlink_or_hard_link_is_refused(tmp_path):
    _bundle(tmp_path).finish([])
    root = tmp_path / "b"
    os.symlink("/etc/passwd", root / "hosts" / "h1" / "evil")
    with pytest.raises(UnusableInput, match="symlink"):
        open_bundle(root)
    (root / "hosts" / "h1" / "evil").unlink()
    os.link(root / "hosts" / "h1" / "ip-addr.out", tmp_path / "outside")
    with pytest.raises(UnusableInput, match="hard link"):
        open_bundle(root)


def test_manifest_path_traversal_is_refused(tmp_path):
    writer = _bundle(tmp_path)
    writer.manifest["hosts"]["h1"]["commands"][0]["path"] = "../../etc/passwd"
    writer.flush()
    with pytest.raises(UnusableInput, match="path traversal"):
        open_bundle(tmp_path / "b")


def test_host_names_that_sanitise_alike_get_separate_directories(tmp_path):
    writer = BundleWriter(tmp_path / "b", run={})
    first = writer.add_output("a:22", {"id": "x"}, b"1")
    second = writer.add_output("a_22", {"id": "x"}, b"2")
    assert first["path"] != second["path"]
    writer.finish([])
    bundle = open_bundle(tmp_path / "b")
    assert bundle.read(first["path"]) == b"1" and bundle.read(second["path"]) == b"2"


def test_not_a_bundle(tmp_path):
    (tmp_path / "junk.tar.gz").write_bytes(b"not gzip at all")
    with pytest.raises(UnusableInput):
        open_bundle(tmp_path / "junk.tar.gz", tmp_path / "o")
    (tmp_path / "d").mkdir()
    with pytest.raises(UnusableInput, match="no manifest"):
        open_bundle(tmp_path / "d")


def test_kube_part_is_listed_verified_and_makes_schema_2(tmp_path):
    writer = _bundle(tmp_path)
    assert writer.manifest["schema_version"] == 1          # no kube part: schema 1, as before
    writer.set_kube(kubectl="/usr/bin/kubectl", context=None)
    record = writer.add_kube_output({"id": "kube:cilium.io/ciliumnodes", "group": "cilium.io",
                                     "resource": "ciliumnodes", "outcome": "OK"},
                                    b'{"kind": "List", "items": []}\n')
    writer.add_kube_output({"id": "kube-version", "outcome": "OK"}, b"{}\n")
    writer.add_kube_record({"id": "kube:metallb.io/bgppeers", "group": "metallb.io",
                            "resource": "bgppeers", "outcome": "NOT_INSTALLED"})
    writer.finish([])
    assert record["path"] == "kube/cilium.io/ciliumnodes.json"
    bundle = open_bundle(tmp_path / "b")
    assert bundle.manifest["schema_version"] == 2 and bundle.problems == ()
    assert [r["outcome"] for r in bundle.kube_resources()] == ["OK", "NOT_INSTALLED"]
    assert [c["path"] for c in bundle.kube["commands"]] == ["kube/kube-version.out"]
    (tmp_path / "b" / record["path"]).write_bytes(b'{"kind": "List", "items": [1]}\n')
    assert {p.kind for p in open_bundle(tmp_path / "b").problems} == {"SHA256_MISMATCH",
                                                                       "SIZE_MISMATCH"}


def test_schema_1_bundles_have_no_kube_part_and_unknown_schemas_are_refused(tmp_path):
    writer = _bundle(tmp_path)
    writer.finish([])
    bundle = open_bundle(tmp_path / "b")
    assert bundle.kube is None and list(bundle.kube_resources()) == []
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    for schema, kube, message in ((3, None, "unknown bundle schema version 3"),
                                  (2, ["not", "an", "object"], "field .kube. is an array, not an object")):
        manifest["schema_version"] = schema
        if kube is not None:
            manifest["kube"] = kube
        (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(UnusableInput, match=message):
            open_bundle(tmp_path / "b")
