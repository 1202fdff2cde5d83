"""FRR's summary and neighbours rows of one session fold into one row, also for an interface
(unnumbered) peer whose address the summary does not print, and per VRF. Real FRR 8.4 outputs
(tests/fixtures/frr-bgp-*/frr84-lab-*, run in namespaces: PROVENANCE.md)."""
from __future__ import annotations

import pandas as pd

from diag.facts.merge import merge_peers
from diag.parse import frr
from tests.parse.helpers import fixture


def _peers(case: str):
    parts = []
    for spec, parse in (("frr-bgp-neighbors", frr.parse_neighbors),
                        ("frr-bgp-summary", frr.parse_summary)):
        df = parse(fixture(spec, f"{case}.out"))
        df.insert(0, "host", "tor1")
        df.insert(1, "source", spec)
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


def test_one_row_per_session_interface_peers_included():
    merged = merge_peers(_peers("frr84-lab-unnumbered-dynamic"))
    assert len(merged) == 4
    unnumbered = merged[merged.interface == "hpa1"].iloc[0]
    assert unnumbered.peer.startswith("fe80::")                 # from the neighbours row
    assert unnumbered.source == "frr-bgp-neighbors+frr-bgp-summary"
    assert (unnumbered.peer_group, unnumbered.accepted, unnumbered.uptime_s) == ("FABRIC", 2,
                                                                                 70.0)


def test_the_same_address_in_two_vrfs_is_two_sessions():
    peers = _peers("frr84-lab-vrf-all")
    merged = merge_peers(peers)
    assert len(merged) == 5 and set(merged.vrf) == {"default", "red"}
    twin = peers[peers.vrf == "red"].copy()
    twin["vrf"] = "blue"
    assert len(merge_peers(pd.concat([peers, twin], ignore_index=True))) == 6
