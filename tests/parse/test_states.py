"""The closed BGP state vocabulary, fed with each daemon's own spellings."""
from __future__ import annotations

import pytest

from diag.parse.states import STATES, normalise_state


@pytest.mark.parametrize("raw, expected", [
    ("Established", "ESTABLISHED"), ("Idle (Admin)", "IDLE"), ("Idle (PfxCt)", "IDLE"),
    ("Active", "ACTIVE"), ("Connect", "CONNECT"), ("OpenSent", "OPENSENT"),
    ("OpenConfirm", "OPENCONFIRM"),                               # FRR
    (1, "IDLE"), (3, "ACTIVE"), (6, "ESTABLISHED"), ("6", "ESTABLISHED"),
    ("SESSION_STATE_ESTABLISHED", "ESTABLISHED"), ("Establ", "ESTABLISHED"),  # GoBGP
    ("Passive", "ACTIVE"),                                        # BIRD via Calico
    ("established", "ESTABLISHED"), ("active", "ACTIVE"), ("opensent", "OPENSENT"),  # Cilium
])
def test_known_spellings(raw, expected):
    assert normalise_state(raw) == expected


@pytest.mark.parametrize("raw", ["up", "start", "", None, 0, 7, True, "Clearing", "flush"])
def test_unknown_is_unknown_never_a_guess(raw):
    assert normalise_state(raw) == "UNKNOWN"


def test_vocabulary_is_closed():
    assert STATES == ("IDLE", "CONNECT", "ACTIVE", "OPENSENT", "OPENCONFIRM", "ESTABLISHED",
                      "UNKNOWN")
