"""The lab's cilium-dbg lays its tables out as Cilium does: its tab writer and peers table, fed the
values of Cilium's own golden files, print those files byte for byte (no lab needed)."""
from __future__ import annotations

import re

import pytest

from diag.lab.cilium_dbg import go_duration, peers_table, tabwrite
from tests.parse.helpers import fixture


@pytest.mark.parametrize("spec,name", [
    ("cilium-bgp-peers", "upstream-shell-bgpv1-multi-peer.out"),
    ("cilium-bgp-peers", "upstream-shell-bgpv1-multi-instance.out"),
    ("cilium-bgp-routes-advertised", "upstream-shell-bgpv1-multi-peer.out"),
    ("cilium-bgp-routes", "upstream-agent-available-learned.out"),
])
def test_tab_writer_reproduces_ciliums_tables(spec, name):
    text = fixture(spec, name).decode()
    rows = []
    for line in text.splitlines():
        # cells are separated by the writer's padding (at least three blanks); the Attrs cell
        # holds single blanks
        rows.append(re.split(r" {2,}", line.rstrip()))
    assert tabwrite(rows) == text


def test_peers_table_of_the_api_peers_is_ciliums_shell_table():
    items = [{"local-asn": 65001, "peer-asn": asn, "peer-address": address, "peer-port": 1790,
              "session-state": "established", "uptime-nanoseconds": 0,
              "families": [{"afi": "ipv4", "safi": "unicast", "received": 0,
                            "advertised": 2}]}
             for asn, address in ((65010, "10.99.0.101"), (65011, "10.99.0.102"))]
    assert peers_table(items, uptime=False) == \
        fixture("cilium-bgp-peers", "upstream-shell-bgpv1-multi-peer.out").decode()


@pytest.mark.parametrize("seconds,text", [(0, "0s"), (59, "59s"), (2006, "33m26s"),
                                          (266892, "74h8m12s")])
def test_go_durations(seconds, text):
    assert go_duration(seconds) == text
