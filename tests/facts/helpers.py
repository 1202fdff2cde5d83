from __future__ import annotations

import functools
import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BUNDLES = FIXTURES / "bundles"
CASES = sorted(p.name[:-len(".truth.json")] for p in BUNDLES.glob("*.truth.json"))


def truth(case: str) -> dict:
    return json.loads((BUNDLES / f"{case}.truth.json").read_text())


def complete_but_probes(f) -> bool:
    """The bundle is complete, or partial only because a probed address has no route (the
    router has no default route: ``ip route get`` fails there, as the kernel says)."""
    if f.bundle["status"] == "complete":
        return True
    commands = f.tables["commands"]
    failed = commands[commands.outcome != "OK"]
    return not failed.empty and all(i.startswith("ip-route-get-") for i in failed.id)


@functools.lru_cache(maxsize=None)
def facts(case: str):
    from diag.facts import load_facts

    return load_facts(BUNDLES / f"{case}.tar.gz")
