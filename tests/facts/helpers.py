from __future__ import annotations

import functools
import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BUNDLES = FIXTURES / "bundles"
CASES = sorted(p.name[:-len(".truth.json")] for p in BUNDLES.glob("*.truth.json"))


def truth(case: str) -> dict:
    return json.loads((BUNDLES / f"{case}.truth.json").read_text())


@functools.lru_cache(maxsize=None)
def facts(case: str):
    from diag.facts import load_facts

    return load_facts(BUNDLES / f"{case}.tar.gz")
