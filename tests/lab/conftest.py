"""Lab fixtures: the session's labs, one per (cni, mode, addressing), owned by the session lab store
(tests/labstore.py, fixture ``labs``), which brings each up through the CLI (``python -m diag lab
up``, so the printed commands are tested too) and keeps what `up` printed, how long it took and
the root namespace snapshot taken before it (:class:`tests.labstore.UpLab`).

The e2e module's last test per lab tears it down with ``diag lab down``; the store tears down at the
end of the session whatever is left. Helpers and the case table live in labtools.py.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from labtools import CASES  # noqa: E402


@pytest.fixture(scope="session", params=list(CASES), ids=lambda c: "-".join(c))
def running_lab(request, labs):
    return labs.running(*request.param)
