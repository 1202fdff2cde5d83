"""Fixtures for collect tests: real sshd hosts in network namespaces (see sshd_netns)."""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import sshd_netns  # noqa: E402


@pytest.fixture
def harness(tmp_path):
    reason = sshd_netns.available()
    if reason:
        pytest.skip(f"real sshd in namespaces: {reason}")
    h = sshd_netns.Harness(tmp_path / "sshd", f"dgc{os.getpid() % 10000}{uuid.uuid4().hex[:4]}")
    try:
        yield h
    finally:
        h.cleanup()
