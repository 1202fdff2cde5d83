"""An OPEN's hold time against RFC 4271 section 4.2 ("MUST be either zero or at least three
seconds"), the wire value read back by scapy's BGP layer: 1 and 2 are marked, 0 and 3 are not."""
from __future__ import annotations

import pytest
from scapy.contrib import bgp as B

from diag.decode.bgp import Direction, decode_message
from tests.decode.test_bgp_messages import open_message


@pytest.mark.parametrize("hold, refused", [(0, False), (1, True), (2, True), (3, False),
                                           (9, False), (65535, False)])
def test_hold_time_one_or_two_is_malformed(hold, refused):
    msg = open_message(65001, [B.BGPCapFourBytesASN(asn=65001)], hold=hold)
    assert B.BGPHeader(msg)[B.BGPOpen].hold_time == hold
    row = decode_message(msg, Direction()).row
    assert row["open_hold_time"] == hold
    if refused:
        assert row["malformed"] and f"hold time {hold}" in row["malformed"]
    else:
        assert row["malformed"] is None
