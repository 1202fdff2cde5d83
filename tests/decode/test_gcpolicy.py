"""diag/decode/gcpolicy.py: the collector runs less often during a decode, never less than the
user asked, and its thresholds come back afterwards."""
from __future__ import annotations

import gc

import pytest

from diag.decode.gcpolicy import fewer_collections, no_gc


@pytest.fixture
def thresholds():
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_raised_inside_restored_after_nesting_included(thresholds):
    gc.set_threshold(700, 10, 10)
    with fewer_collections():
        assert gc.get_threshold() == (fewer_collections.THRESHOLD, 10, 10)
        with fewer_collections():
            assert gc.get_threshold()[0] == fewer_collections.THRESHOLD
        assert gc.get_threshold()[0] == fewer_collections.THRESHOLD
    assert gc.get_threshold() == (700, 10, 10)


def test_restored_after_an_error(thresholds):
    gc.set_threshold(500, 10, 10)
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("boom")
    assert gc.get_threshold() == (500, 10, 10)


def test_never_lowers_a_higher_threshold_nor_turns_collection_on(thresholds):
    gc.set_threshold(500_000, 10, 10)
    with fewer_collections():
        assert gc.get_threshold()[0] == 500_000
    gc.set_threshold(0)                       # automatic collection off: stays off
    with fewer_collections():
        assert gc.get_threshold()[0] == 0
    fewer_collections.for_this_process()
    assert gc.get_threshold()[0] == 0


def test_cycles_made_inside_are_still_collected(thresholds):
    """By the collector itself, not by a gc.collect() call (which collects whatever the policy
    does): once THRESHOLD containers more are alive, a cycle made inside is gone."""
    import weakref

    gc.set_threshold(700, 10, 10)

    class Node:
        pass

    with fewer_collections():
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        assert gone() is not None                 # not yet: the threshold is raised
        kept = [[] for _ in range(fewer_collections.THRESHOLD + 1000)]
        assert gone() is None, "no collection ran after THRESHOLD allocations"
        del kept


def test_no_gc_pauses_and_resumes():
    was = gc.isenabled()
    gc.enable()
    try:
        with no_gc():
            assert not gc.isenabled()
        assert gc.isenabled()
    finally:
        if not was:
            gc.disable()
