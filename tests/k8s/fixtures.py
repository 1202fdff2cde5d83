"""The Kubernetes object fixtures as `kubectl get -o json` would print them: YAML files (one or
several documents, a printed List, or a YAML sequence of objects) wrapped into one List."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "k8s"


def objects(*names: str) -> list[dict]:
    out: list[dict] = []
    for name in names:
        for document in yaml.safe_load_all((ROOT / name).read_text()):
            if document is None:
                continue
            if isinstance(document, list):
                out.extend(document)
            elif "items" in document:
                out.extend(document["items"])
            else:
                out.append(document)
    return copy.deepcopy(out)


def as_list(items: list[dict]) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
                       "items": items}).encode()


def listed(*names: str) -> bytes:
    return as_list(objects(*names))
