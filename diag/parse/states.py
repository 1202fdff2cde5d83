"""One closed BGP session-state vocabulary across FRR, GoBGP, BIRD, Cilium and Calico.

RFC 4271 section 8 names six FSM states; every daemon spells them its own way. ``normalise_state``
maps a daemon's spelling to one of :data:`STATES`; anything it does not know becomes ``UNKNOWN``
(never a guess). The spellings per source (see docs/facts.md):

======== ============================ ============================= ============================
state    FRR JSON ``state``           GoBGP ``session_state``       BIRD ``BGP state`` / Info;
                                                                    Cilium/Calico columns
======== ============================ ============================= ============================
IDLE     Idle, Idle (Admin|PfxCt)     1, "idle", "SESSION_STATE_IDLE" Idle / idle
CONNECT  Connect                      2                             Connect / connect
ACTIVE   Active                       3                             Active, Passive / active
OPENSENT OpenSent                     4                             OpenSent / opensent
OPENCONF OpenConfirm                  5                             OpenConfirm / openconfirm
ESTABL.  Established                  6, "established"              Established / established
======== ============================ ============================= ============================

BIRD's protocol ``State`` column (``up``/``start``/``down``/``flush``) is not an FSM state; the
FSM state is in its ``Info`` column. Calico's ``calicoctl node status`` prints BIRD's columns.
"""
from __future__ import annotations

import re

IDLE = "IDLE"
CONNECT = "CONNECT"
ACTIVE = "ACTIVE"
OPENSENT = "OPENSENT"
OPENCONFIRM = "OPENCONFIRM"
ESTABLISHED = "ESTABLISHED"
UNKNOWN = "UNKNOWN"

STATES: tuple[str, ...] = (IDLE, CONNECT, ACTIVE, OPENSENT, OPENCONFIRM, ESTABLISHED, UNKNOWN)

_BY_NAME = {
    "idle": IDLE, "connect": CONNECT, "active": ACTIVE, "passive": ACTIVE,
    "opensent": OPENSENT, "openconfirm": OPENCONFIRM, "established": ESTABLISHED,
    "establ": ESTABLISHED,  # GoBGP's short CLI column
}
_GOBGP_NUMBERS = {1: IDLE, 2: CONNECT, 3: ACTIVE, 4: OPENSENT, 5: OPENCONFIRM, 6: ESTABLISHED}


def normalise_state(value: object) -> str:
    """The canonical state for a daemon's spelling (str or GoBGP's enum number); else UNKNOWN."""
    if isinstance(value, bool) or value is None:
        return UNKNOWN
    if isinstance(value, int):
        return _GOBGP_NUMBERS.get(value, UNKNOWN)
    text = str(value).strip().lower()
    if text.isdigit():
        return _GOBGP_NUMBERS.get(int(text), UNKNOWN)
    text = text.removeprefix("session_state_").removeprefix("bgp_fsm_")
    # "Idle (Admin)", "Idle (PfxCt)": the parenthesised reason is kept by callers as state_raw
    word = re.split(r"[\s(]", text, maxsplit=1)[0]
    return _BY_NAME.get(word, UNKNOWN)
