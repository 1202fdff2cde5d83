"""What a BGP NOTIFICATION says about who closed a session and why: an operator or a fault.

Contract: :func:`cease_kind(code, subcode) -> str` is ``"operator"`` for the Cease subcodes an
operator's action sends (RFC 4486: 2 Administrative Shutdown, 3 Peer De-configured,
4 Administrative Reset, 6 Other Configuration Change), ``"protocol"`` for 7 Connection Collision
Resolution (both ends connected at once; one connection is closed by design), ``"fault"`` for
every other NOTIFICATION (Cease 1 Maximum Number of Prefixes Reached, 5 Connection Rejected,
8 Out of Resources, 9 Hard Reset (RFC 8538), 10 BFD Down (RFC 9384), and all non-Cease codes).
:func:`from_text(text) -> (code, subcode) | None` reads the daemons' wording of their last error
(FRR ``Cease/Administrative Shutdown`` or its own reset reason ``Admin. shutdown``, ``User
reset``, ``Reached received prefix count``; BIRD ``Received: Administrative shutdown``, ...) as
the Cease it names or its speaker sends for it. :func:`cease_name(subcode)` names a subcode.
"""
from __future__ import annotations

CEASE = 6
CEASE_NAMES = {1: "Maximum Number of Prefixes Reached", 2: "Administrative Shutdown",
               3: "Peer De-configured", 4: "Administrative Reset", 5: "Connection Rejected",
               6: "Other Configuration Change", 7: "Connection Collision Resolution",
               8: "Out of Resources", 9: "Hard Reset", 10: "BFD Down"}
OPERATOR = (2, 3, 4, 6)
PROTOCOL = (7,)
# how each is fixed when it is a fault (the NOTIFICATION's sender decided it)
CEASE_FIXES = {
    1: "raise or remove the prefix limit the sender of the NOTIFICATION applies to this peer "
       "(FRR: neighbor ADDR maximum-prefix; BIRD: import/receive limit; GoBGP: prefix-limit), "
       "or send it fewer prefixes; the speaker keeps the session down until it is reset (FRR: "
       "clear bgp ADDR; BIRD: birdc enable PROTOCOL)",
    5: "the sender rejects this peer's connections: is the peer configured there (address, "
       "dynamic-neighbor range and its limit)?",
    8: "the sender ran out of resources (memory, peer limit): check it",
    9: "a hard reset (RFC 8538): read the sender's log for the reason",
    10: "BFD declared the path down: check the link and the BFD timers on both ends",
}


def cease_kind(code: int | None, subcode: int | None) -> str:
    if code != CEASE:
        return "fault"
    if subcode in OPERATOR:
        return "operator"
    if subcode in PROTOCOL:
        return "protocol"
    return "fault"


def cease_name(subcode: int | None) -> str:
    return CEASE_NAMES.get(subcode or 0, f"subcode {subcode}")


def from_code(text: str | None) -> tuple[int, int] | None:
    """FRR's ``lastErrorCodeSubcode`` ("0602": code and subcode, two hex digits each)."""
    text = str(text or "")
    if len(text) == 4 and all(c in "0123456789abcdefABCDEF" for c in text):
        return int(text[:2], 16), int(text[2:], 16)
    return None


def from_text(text: str | None) -> tuple[int, int] | None:
    """A daemon's last-error text -> (6, subcode) for a Cease it names, else None."""
    low = str(text or "").lower().replace("-", " ").replace("_", " ")
    for subcode, name in CEASE_NAMES.items():
        if name.lower().replace("-", " ") in low:
            return CEASE, subcode
    # BIRD's wording, and FRR's own reasons for resetting a session (lastResetDueTo, its
    # peer_down_str: the Cease it sends for each)
    for words, subcode in (("prefix limit", 1), ("route limit", 1), ("too many routes", 1),
                           ("reached received prefix count", 1), ("deconfigured", 3),
                           ("configuration change", 6), ("out of memory", 8),
                           ("bfd session down", 10), ("bfd down", 10),
                           ("admin. shutdown", 2), ("user reset", 4), ("neighbor deleted", 3),
                           ("peer-group add member", 6), ("peer-group delete member", 6),
                           ("config change", 6), ("address family activated", 6),
                           ("capability changed", 6), ("router id changed", 6),
                           ("remote as changed", 6), ("local as change", 6),
                           ("cluster id changed", 6), ("confederation", 6)):
        if words in low:
            return CEASE, subcode
    return None


__all__ = ["CEASE", "CEASE_FIXES", "CEASE_NAMES", "OPERATOR", "cease_kind", "cease_name",
           "from_code", "from_text"]
