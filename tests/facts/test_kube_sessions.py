"""Sessions from CiliumBGPNodeConfig status (no exec): rows for nodes without cilium-dbg
output, the agent's own output winning, and "not reported" never read as "down"."""
from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from diag.facts.kube_sessions import SOURCE, status_peers
from diag.facts.model import Inferred
from diag.facts.tables import table_columns
from diag.parse.k8s import parse_list
from tests.k8s.fixtures import as_list, objects

PATH = "kube/cilium.io/ciliumbgpnodeconfigs.json"


def _tables(items, peers=None):
    read = parse_list(as_list(items))
    columns = ["host", "source", "phase"] + table_columns()["bgp_peers"]
    return {"cilium_bgp_node_peer_status": read.frames["cilium_bgp_node_peer_status"],
            "bgp_peers": pd.DataFrame(peers or [], columns=columns),
            "kube_resources": pd.DataFrame([{"id": SOURCE, "path": PATH}])}


def _model(**hosts):
    return SimpleNamespace(hosts={h: SimpleNamespace(name=h, kube_node=Inferred(n, "test"))
                                  for h, n in hosts.items()})


def test_status_peers_become_sessions_of_the_matched_host():
    items = objects("upstream/cilium-v2-nodeconfig-status.yaml")
    tables = _tables(items)
    peers = status_peers(tables, _model(cp="bgp-cplane-dev-service-control-plane"))
    rows = peers[peers["source"] == SOURCE]
    assert len(rows) == 2
    first = rows.iloc[0]
    assert (first["host"], first["peer"], first["peer_as"], first["local_as"], first["state"],
            first["advertised"], first["hold_time"]) == \
        ("cp", "fd00:10::1", 65000, 65001, "ESTABLISHED", 2, 90)
    assert first["evidence_path"] == PATH
    assert first["evidence_pointer"].startswith("/items/0/status/bgpInstances/0/peers/0")
    assert rows.iloc[1]["host"] == "bgp-cplane-dev-service-worker"    # no host: the Node


def test_the_agents_own_output_wins_and_no_status_is_no_row():
    items = objects("upstream/cilium-v2-nodeconfig-status.yaml")
    own = {"host": "cp", "source": "cilium-bgp-peers", "phase": "main", "daemon": "CILIUM",
           "peer": "fd00:10::1", "state": "ACTIVE"}
    peers = status_peers(_tables(items, [own]), _model(cp="bgp-cplane-dev-service-control-plane"))
    assert list(peers[peers["host"] == "cp"]["source"]) == ["cilium-bgp-peers"]
    unreported = [dict(items[0])]
    unreported[0].pop("status")
    assert status_peers(_tables(unreported), _model()).empty     # not reported, not down
