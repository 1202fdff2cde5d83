"""Untrusted bundles through ``diag facts``: hostile archives and directories are refused with one
line and exit 4 (diag.bundle's reader; its own unit tests are in tests/collect/test_bundle.py);
damage that leaves a bundle readable is reported, not hidden."""
from __future__ import annotations

import io
import json
import os
import shutil
import tarfile

import pytest
from typer.testing import CliRunner

from diag.cli import app
from diag.facts import load_facts
from tests.facts.helpers import BUNDLES

CASE = "calico-vxlan-alt"


def _run(*args):
    result = CliRunner().invoke(app, ["facts", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def _extract(tmp_path):
    with tarfile.open(BUNDLES / f"{CASE}.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / CASE


def _hostile_archive(tmp_path, add):
    out = tmp_path / "hostile.tar.gz"
    with tarfile.open(BUNDLES / f"{CASE}.tar.gz") as src, tarfile.open(out, "w:gz") as dst:
        for member in src:
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        add(dst)
    return out


def _file(name, data=b"x"):
    def add(tar):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return add


def _special(name, kind, linkname=""):
    def add(tar):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        tar.addfile(info)
    return add


@pytest.mark.parametrize("add, words", [
    (_file(f"{CASE}/../../etc/evil"), "path traversal"),
    (_file("/etc/evil"), "absolute path"),
    (_special(f"{CASE}/hosts/router/link.out", tarfile.SYMTYPE, "/etc/shadow"), "link member"),
    (_special(f"{CASE}/hosts/router/hard.out", tarfile.LNKTYPE, f"{CASE}/manifest.json"),
     "link member"),
    (_special(f"{CASE}/hosts/router/dev.out", tarfile.CHRTYPE), "device"),
    (_special(f"{CASE}/hosts/router/fifo.out", tarfile.FIFOTYPE), "FIFO"),
    (_file(f"{CASE}/manifest.json", b"{}"), "duplicate member"),
])
def test_hostile_archive_is_refused_with_one_line(tmp_path, add, words):
    code, out, err = _run(_hostile_archive(tmp_path, add))
    assert code == 4 and out == ""
    assert err.startswith("diag: error: bundle refused") and words in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_directory_bundle_with_fifo_or_symlink_is_refused(tmp_path):
    root = _extract(tmp_path)
    os.mkfifo(root / "hosts" / "router" / "pipe.out")
    code, _, err = _run(root)
    assert code == 4 and "special file" in err
    os.unlink(root / "hosts" / "router" / "pipe.out")
    os.symlink("/etc/passwd", root / "hosts" / "router" / "ip-addr.out.bak")
    code, _, err = _run(root)
    assert code == 4 and "symlink" in err


def test_sha256_mismatch_is_reported_and_the_rest_still_read(tmp_path):
    root = _extract(tmp_path)
    target = root / "hosts" / "k8s-w1" / "ip-neigh.out"
    target.write_bytes(target.read_bytes().replace(b"REACHABLE", b"STALE\x00\x00\x00\x00"))
    facts = load_facts(root)
    kinds = {(p["kind"], p["path"]) for p in facts.problems}
    assert ("SHA256_MISMATCH", "hosts/k8s-w1/ip-neigh.out") in kinds
    assert facts.model.hosts["k8s-w1"].pod_cidr.known  # the model is still built
    code, out, _ = _run(root, "--format", "json")
    assert code == 0
    assert {"kind": "SHA256_MISMATCH", "path": "hosts/k8s-w1/ip-neigh.out"}.items() <= \
        json.loads(out)["problems"][0].items()


def test_unrecognised_output_becomes_a_parse_error_row_not_a_guess(tmp_path):
    root = _extract(tmp_path)
    manifest = json.loads((root / "manifest.json").read_text())
    target = root / "hosts" / "k8s-ctr" / "bird-protocols-all.out"
    data = b"BIRD 9.9 ready.\nsomething from the future\n"
    target.write_bytes(data)
    import hashlib
    for command in manifest["hosts"]["k8s-ctr"]["commands"]:
        if command["id"] == "bird-protocols-all":
            command["bytes"], command["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    (root / "manifest.json").write_text(json.dumps(manifest))
    facts = load_facts(root)
    errors = facts.parse_errors
    assert list(zip(errors.host, errors.source)) == [("k8s-ctr", "bird-protocols-all")]
    assert "birdc" in errors.iloc[0].reason
    assert facts.problems == ()
    assert not (facts.tables["bgp_peers"].host == "k8s-ctr").any()


def test_not_a_bundle_nor_a_capture(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    code, _, err = _run(junk)
    assert code == 4 and "diag: error:" in err and "Traceback" not in err
    code, _, err = _run(tmp_path / "missing.tar.gz")
    assert code == 4 and "not found" in err
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    code, _, err = _run(empty)
    assert code == 4 and "no manifest.json" in err


def test_too_many_members_is_refused(tmp_path):
    """A member-count bomb (not covered by tests/collect/test_bundle.py): stopped at the limit."""
    from diag.bundle import open_bundle
    from diag.errors import UnusableInput

    path = tmp_path / "many.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for n in range(300):
            info = tarfile.TarInfo(f"b/hosts/h/{n}.out")
            tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(UnusableInput, match="more than 100 members"):
        open_bundle(path, tmp_path / "out", max_members=100)
    assert len(list((tmp_path / "out").rglob("*.out"))) <= 100
