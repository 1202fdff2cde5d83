"""Bundles with a kube part, made the way `diag collect --kube` makes them: the objects served
by the lab's API endpoint (diag.lab.kubeapi) and read with the real kubectl; optionally beside
the hosts of a lab bundle (tests/fixtures/bundles), whose outputs are written again through the
same BundleWriter, so the result is one bundle as a run with SSH targets and --kube gives."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from diag.bundle import BundleWriter, open_bundle
from diag.collect.kube import KubeOptions, KubeRun, collect_kube
from diag.lab.kubeapi import ApiOptions, KubeApiServer

KUBECTL = shutil.which("kubectl")
LAB_BUNDLES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"


def kubectl_env(directory: Path) -> dict[str, str]:
    """kubectl's environment: its discovery cache under a HOME of the test's own."""
    home = Path(directory) / "home"
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": os.environ["PATH"], "HOME": str(home)}


def write_objects(directory: Path, groups: dict[str, list[dict]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, items in groups.items():
        (directory / f"{name}.json").write_text(json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": items}))
    return directory


def copy_hosts(archive: Path, writer: BundleWriter, scratch: Path) -> list[str]:
    """Every host record and output of a bundle written again into ``writer``; returns its
    partial reasons."""
    source = open_bundle(archive, scratch)
    for host, record in source.manifest["hosts"].items():
        writer.set_host(host, **{k: v for k, v in record.items() if k != "commands"})
        for command in record.get("commands", []):
            fields = {k: v for k, v in command.items() if k not in ("path", "bytes", "sha256")}
            if command.get("path"):
                writer.add_output(host, fields, source.read(command["path"]),
                                  suffix=Path(command["path"]).suffix)
            else:
                writer.add_command(host, fields)
    return list(source.manifest.get("partial_reasons") or [])


def kube_bundle(out: Path, groups: dict[str, list[dict]], *, hosts_from: str | None = None,
                **api: object) -> tuple[Path, KubeRun]:
    """A bundle at ``out`` with the kube part read from ``groups`` (file stem -> objects)
    and, with ``hosts_from`` (a case of tests/fixtures/bundles), that lab bundle's hosts."""
    work = out.parent / f"{out.name}.work"
    objects = write_objects(work / "objects", groups)
    with KubeApiServer(ApiOptions(objects_dir=objects, **api)) as server:
        kubeconfig = server.kubeconfig(work / "kubeconfig")
        writer = BundleWriter(out, run={"kube": True, "hosts_from": hosts_from})
        reasons = copy_hosts(LAB_BUNDLES / f"{hosts_from}.tar.gz", writer,
                             work / "extract") if hosts_from else []
        result = collect_kube(KubeOptions(kubeconfig=kubeconfig, env=kubectl_env(work),
                                          timeout=10), writer)
        writer.finish(reasons + result.reasons)
    return out, result
