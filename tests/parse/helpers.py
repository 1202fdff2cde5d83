from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BUNDLES = FIXTURES / "bundles"
CASES = sorted(p.name[:-len(".truth.json")] for p in BUNDLES.glob("*.truth.json"))


def fixture(spec: str, case: str) -> bytes:
    return (FIXTURES / spec / case).read_bytes()


def truth(case: str) -> dict:
    return json.loads((BUNDLES / f"{case}.truth.json").read_text())
