"""BGP sessions as Cilium's agents report them in Kubernetes: CiliumBGPNodeConfig ``status``.

Contract: :func:`status_peers(tables, model) -> DataFrame` gives ``bgp_peers`` rows (daemon
``CILIUM``, ``source`` the kube record's id ``kube:cilium.io/ciliumbgpnodeconfigs``) from the
``cilium_bgp_node_peer_status`` table, for every node whose host has no Cilium peer rows from a
command (``cilium-dbg``, read through the agent pod, nsenter or SSH wins: it is the daemon's own
word, the status is the agent's copy). ``host`` is the collected host that is this Node (the
model's match), else the Node's name. A NodeConfig without ``status``, or a peer the spec lists
but the status does not, gives no row: "not reported" is never "down". Each row carries
``evidence_path`` and ``evidence_pointer`` (the stored List's file and ``/items/<i>`` + the
peer's pointer), which the session analyzers cite. No exec is needed for these rows: they come
with ``--kube`` alone.
"""
from __future__ import annotations

from typing import Any

SOURCE = "kube:cilium.io/ciliumbgpnodeconfigs"


def status_peers(tables: dict[str, Any], model) -> Any:
    import pandas as pd

    from diag.parse.bgp_schema import peer_row
    from diag.values import or_none

    status = tables.get("cilium_bgp_node_peer_status")
    peers = tables["bgp_peers"]
    if status is None or status.empty:
        return peers
    resources = tables.get("kube_resources")
    path = None
    if resources is not None and not resources.empty:
        rows = resources[resources["id"] == SOURCE]
        path = or_none(rows["path"].iloc[0]) if len(rows) else None
    host_of_node = {h.kube_node.value: h.name for h in model.hosts.values()
                    if h.kube_node.known}
    has_cilium = set(peers.loc[peers["daemon"] == "CILIUM", "host"]) if len(peers) else set()
    out: list[dict[str, Any]] = []
    for r in status.itertuples(index=False):
        node = str(r.node)
        host = host_of_node.get(node, node)
        if host in has_cilium or not or_none(r.peer_address):
            continue
        row = peer_row(daemon="CILIUM", peer=str(r.peer_address), name=or_none(r.peer),
                       peer_as=or_none(r.peer_asn), local_as=or_none(r.local_asn),
                       state=or_none(r.state), state_raw=or_none(r.peering_state),
                       received=or_none(r.received), advertised=or_none(r.advertised),
                       hold_time=or_none(r.hold_time_s), keepalive=or_none(r.keepalive_s))
        row.update(host=host, source=SOURCE, phase="main", node=node, evidence_path=path,
                   evidence_pointer=f"/items/{r.item}{r.pointer}")
        out.append(row)
    if not out:
        return peers
    return pd.concat([peers, pd.DataFrame(out)], ignore_index=True, sort=False)
