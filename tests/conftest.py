"""Shared pytest setup: a bounded hypothesis profile for CI, fixture paths, the session lab store."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.labstore import Labs

FIXTURES = Path(__file__).parent / "fixtures"

settings.register_profile(
    "ci", max_examples=200, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def labs(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    started = time.monotonic()
    store = Labs(tmp_path_factory.mktemp("explain-bundles"))
    yield store
    store.down()
    total = time.monotonic() - started
    lines = [f"{what}: {secs:.1f}s" for what, secs in store.timings]
    sys.stderr.write("\nexplain lab timings: " + "; ".join(lines) + f"; total {total:.1f}s\n")
