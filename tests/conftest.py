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


_LAB_REPORT: list[str] = []
_LAB_PLAN: list = []            # PlanItems of the collected tests, in run order
_STORE: list = []               # the session's store, once a test asked for it


@pytest.fixture(scope="session")
def labs(tmp_path_factory):
    """The session's lab store (tests/labstore.py): every lab of the session, one bundle per
    (lab, fault), prefetched in the background along the collected tests' plan; labs are torn
    down at the end of the session."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    started = time.monotonic()
    store = Labs(tmp_path_factory.mktemp("lab-bundles"), _LAB_PLAN)
    _STORE.append(store)
    yield store
    _STORE.clear()
    store.down()
    _LAB_REPORT.append(store.report(time.monotonic() - started))


def pytest_runtest_logstart(nodeid, location):
    for store in _STORE:
        store.advance()


def pytest_runtest_logfinish(nodeid, location):
    for store in _STORE:
        store.test_finished(nodeid)
        store.advance()


def pytest_terminal_summary(terminalreporter):
    for text in _LAB_REPORT:           # per-lab / per-cell timings of the lab store
        sys.stderr.write(text)
        sys.stderr.flush()


def _store_rank(item) -> tuple:
    """Lab tests in an order that applies each (lab, fault) cell once per session: the fault
    cycles first (round robin over the labs in the fault table's order, so that the store can
    prepare the next lab's cell while a test checks and heals this one; each cell's shared bundle
    is collected while its fault is active), then every other test of the store (explain,
    report: the bundles are ready; those naming their bundle first), then the e2e tests, whose
    last test per lab tears the lab down. Tests that do not use the store keep their place,
    before these."""
    from tests.labstore import LAB_NAMES

    names = getattr(item, "fixturenames", ())
    if "labs" not in names and "running_lab" not in names:
        return (0,)
    params = getattr(getattr(item, "callspec", None), "params", {})
    if item.nodeid.startswith("tests/lab/test_faults.py::test_fault_cycle"):
        from diag.lab.faults import ORDER

        case = tuple(params.get("running_lab", ()))
        lab_index = list(LAB_NAMES).index(case) if case in LAB_NAMES else len(LAB_NAMES)
        name = params.get("name")
        return (1, ORDER.index(name) if name in ORDER else len(ORDER), lab_index)
    if item.nodeid.startswith("tests/lab/test_lab_e2e.py"):
        return (3,)
    # tests that name the bundle they read first: the store prepares those bundles (the alt
    # labs') while the fault cycles run; a test that names no lab may use any, and holds back
    # every prefetch behind it
    return (2, 0 if {"cni", "mode", "fault"} <= set(params) else 1)


def _plan_item(item):
    """What a test needs from the store (tests/labstore.py PlanItem), read from its parameters:
    ``running_lab`` (a lab it acts on), ``cni``/``mode``/``addressing``/``fault`` (a bundle it
    reads); a store test without them may use any lab."""
    from tests.labstore import ANY_LAB, PlanItem

    names = getattr(item, "fixturenames", ())
    if "labs" not in names and "running_lab" not in names:
        return None
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "running_lab" in params:
        lab = tuple(params["running_lab"])
        cell = None
        if item.nodeid.startswith("tests/lab/test_faults.py::test_fault_cycle"):
            from diag.lab import faults

            fault = faults.FAULTS.get(params.get("name"))
            if fault is None or not fault.applies_to(lab[0], lab[1]):
                return PlanItem(item.nodeid, None, None, False)     # refused: lab untouched
            cell = (*lab, fault.name)
        return PlanItem(item.nodeid, lab, cell, True)
    if "cni" in params and "mode" in params:
        lab = (params["cni"], params["mode"], params.get("addressing", "default"))
        cell = (*lab, params["fault"]) if "fault" in params else None
        # a module collecting otherwise (through the agent pods) says how: STORE_EXTRA(fault)
        extra = getattr(getattr(item, "module", None), "STORE_EXTRA", None)
        if cell is not None and extra is not None:
            cell = (*cell, tuple(extra(params["fault"])))
        return PlanItem(item.nodeid, lab, cell, cell is None)
    return PlanItem(item.nodeid, ANY_LAB, None, True)


@pytest.hookimpl(trylast=True)          # after pytest's own grouping by session fixture params
def pytest_collection_modifyitems(config, items):
    items[:] = sorted(items, key=_store_rank)          # stable: keeps the order within a rank
    _LAB_PLAN[:] = [p for p in map(_plan_item, items) if p is not None]
