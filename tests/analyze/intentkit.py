"""Bundles for the intent tests: the real state of a lab bundle (tests/fixtures/intent, collected
through the agent pods with a fault applied, or healthy) with the Kubernetes objects a test
chooses — the seeds', upstream documentation examples, the lab's own — written the way
``diag collect --kube`` writes them (one List per kind, a manifest record per kind), through
the same BundleWriter.

- :func:`lab_objects(case)`: the objects the lab's API served for that bundle, by kind.
- :func:`bundle(out, objects, state=case)`: a bundle whose hosts are the case's (every output
  and capture copied) and whose kube part holds ``objects``; every kind the case's collection
  recorded but ``objects`` lacks keeps its record's outcome (a kind the lab does not install
  stays NOT_INSTALLED), and a kind ``objects`` holds is read (``OK``). Without ``state``: the
  objects alone, and the kinds they do not hold are not in the manifest at all (an object set
  from files, not a cluster).
- :func:`explain_of(path)`: load and explain.
"""
from __future__ import annotations

import copy
import json
import tarfile
from pathlib import Path

from diag.bundle import BundleWriter, open_bundle
from diag.k8s import kinds as K
from tests.k8s.bundles import copy_hosts
from tests.k8s.fixtures import objects as fixture_objects

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / "tests" / "fixtures" / "intent"


def state_path(case: str) -> Path:
    return STATE / f"{case}.tar.gz"


def lab_objects(case: str) -> list[dict]:
    """Every object of the case's kube part (the lab's objects as its API served them)."""
    out: list[dict] = []
    with tarfile.open(state_path(case)) as tar:
        for member in tar.getmembers():
            if "/kube/" in member.name and member.name.endswith(".json"):
                data = json.load(tar.extractfile(member))
                out += data.get("items") or []
    return out


def seeds(*names: str) -> list[dict]:
    return fixture_objects(*(f"seeds/{n}" for n in names))


def upstream(*names: str) -> list[dict]:
    return fixture_objects(*(f"upstream/{n}" for n in names))


def without(objects: list[dict], *kinds: str) -> list[dict]:
    return [o for o in objects if o["kind"] not in kinds]


def named(objects: list[dict], kind: str, name: str | None = None) -> dict:
    return next(o for o in objects if o["kind"] == kind
                and (name is None or o["metadata"]["name"] == name))


def _kind_of(obj: dict) -> K.Kind | None:
    group = obj["apiVersion"].rpartition("/")[0]
    return K.find(group, obj["kind"])


def bundle(out: Path, objects: list[dict], state: str | None = None) -> Path:
    writer = BundleWriter(out, run={"intent-test": True, "state": state})
    records: dict[tuple[str, str], dict] = {}
    reasons: list[str] = []
    if state is not None:
        scratch = out.parent / f"{out.name}.src"
        reasons = copy_hosts(state_path(state), writer, scratch)
        source = open_bundle(state_path(state), scratch.with_name(scratch.name + "2"))
        for record in (source.kube or {}).get("resources", []):
            records[(record.get("group") or "", record["kind"])] = record
    by_kind: dict[tuple[str, str], list[dict]] = {}
    for obj in copy.deepcopy(objects):
        kind = _kind_of(obj)
        if kind is None:
            continue                     # Pods, Deployments: diag does not collect them
        by_kind.setdefault((kind.group, kind.kind), []).append(obj)
    for key, items in by_kind.items():
        kind = K.find(*key)
        record = {"id": f"kube:{kind.group or 'core'}/{kind.plural}", "group": kind.group,
                  "resource": kind.plural, "kind": kind.kind,
                  "version": items[0]["apiVersion"].rpartition("/")[2],
                  "namespaced": kind.namespaced, "installed": True, "outcome": "OK",
                  "objects": len(items)}
        writer.add_kube_output(record, json.dumps(
            {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
             "items": items}).encode())
    for key, record in records.items():
        if key in by_kind:
            continue
        fields = {k: v for k, v in record.items() if k not in ("path", "bytes", "sha256")}
        if record.get("outcome") == "OK":
            fields["outcome"] = "OK"
            writer.add_kube_output(fields, json.dumps(
                {"apiVersion": "v1", "kind": "List", "items": []}).encode())
        else:
            writer.add_kube_record(fields)
    writer.finish(reasons)
    return out


def explain_of(path: Path):
    from diag.analyze import explain
    from diag.facts import load_facts

    facts = load_facts(path)
    return facts, explain(facts)


def listing(result) -> str:
    return "\n".join(f"{f.severity} {f.code} <- {f.caused_by}: {f.summary}"
                     for f in result.findings)
