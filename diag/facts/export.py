"""The facts as the evidence lake stores them: every table, the model as rows, and back.

Contract:

- :func:`lake_tables(facts) -> dict[str, DataFrame]`: the facts tables as they are, plus
  ``model_hosts`` (one row per host of the model: each :class:`~diag.facts.model.Inferred`
  part as ``<part>``, ``<part>_how``, ``<part>_source``; ``peering_ips``, ``forwarding``,
  ``daemons``), ``model_cluster`` (one row: the pod range and LoadBalancer IPs with how and
  source, the notes), ``parse_errors`` and ``problems`` (bundle damage).
- :func:`lake_record(facts) -> dict`: what the lake's manifest says about the bundle.
- :func:`model_from_rows(hosts, cluster, tunnels=()) -> ClusterModel`: the model again from
  ``model_hosts`` / ``model_cluster`` / ``tunnels`` records (dicts), for analyses that run
  from the lake; ``agrees``/``conflicts`` are not stored and come back empty.
"""
from __future__ import annotations

import json
from typing import Any

from diag.facts.model import ClusterModel, HostModel, Inferred, TunnelEndpoint

HOST_PARTS = ("role", "node_ip", "cluster_iface", "default_iface", "pod_cidr", "asn")


def lake_tables(facts) -> dict[str, Any]:
    import pandas as pd

    tables = dict(facts.tables)
    rows = []
    for name, host in facts.model.hosts.items():
        row: dict[str, Any] = {"host": name}
        for part in HOST_PARTS:
            inferred = getattr(host, part)
            row[part] = inferred.value
            row[f"{part}_how"] = inferred.how
            row[f"{part}_source"] = inferred.source
        row.update(peering_ips=list(host.peering_ips), forwarding=host.forwarding,
                   daemons=list(host.daemons), collected=host.collected)
        rows.append(row)
    tables["model_hosts"] = pd.DataFrame(rows)
    model = facts.model
    tables["model_cluster"] = pd.DataFrame([{
        "host": None, "pod_range": model.pod_range.value, "pod_range_how": model.pod_range.how,
        "pod_range_source": model.pod_range.source,
        "lb_ips": list(model.lb_ips.value) if model.lb_ips.value else model.lb_ips.value,
        "lb_ips_how": model.lb_ips.how, "lb_ips_source": model.lb_ips.source,
        "notes": list(model.notes)}])
    tables["parse_errors"] = facts.parse_errors
    tables["problems"] = pd.DataFrame([{"host": None, **p} for p in facts.problems],
                                      columns=["host", "kind", "path", "detail"])
    return tables


def lake_record(facts) -> dict[str, Any]:
    bundle = facts.bundle or {}
    return {"source": str(facts.source), "kind": facts.kind, "status": bundle.get("status"),
            "started": bundle.get("started"), "hosts": len(facts.model.hosts)}


def _loaded(value):
    if value is None or isinstance(value, (list, tuple)):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def model_from_rows(hosts: list[dict], cluster: list[dict], tunnels: list[dict] = ()
                    ) -> ClusterModel:
    models = {}
    for row in hosts:
        parts = {p: Inferred(_value(row.get(p)), str(row.get(f"{p}_how") or ""),
                             str(row.get(f"{p}_source") or "none")) for p in HOST_PARTS}
        forwarding, collected = row.get("forwarding"), _value(row.get("collected"))
        models[row["host"]] = HostModel(
            row["host"], peering_ips=tuple(_loaded(row.get("peering_ips")) or ()),
            forwarding=None if forwarding is None else bool(forwarding),
            daemons=tuple(_loaded(row.get("daemons")) or ()),
            collected=True if collected is None else bool(collected), **parts)
    one = cluster[0] if cluster else {}
    lb = _loaded(one.get("lb_ips"))
    endpoints = tuple(TunnelEndpoint(
        t["host"], t["device"], t["kind"], _value(t.get("vni")), _value(t.get("port")),
        t.get("local"), t.get("underlay_dev"), _value(t.get("mtu")),
        tuple(_loaded(t.get("remotes")) or ()), str(t.get("how") or "")) for t in tunnels)
    return ClusterModel(
        models,
        Inferred(one.get("pod_range"), str(one.get("pod_range_how") or ""),
                 str(one.get("pod_range_source") or "none")),
        Inferred(lb, str(one.get("lb_ips_how") or ""),
                 str(one.get("lb_ips_source") or "none")),
        endpoints, tuple(_loaded(one.get("notes")) or ()))


def _value(value):
    """A cell as the model holds it: None for missing (NaN, NA), ints as ints."""
    from diag.values import or_none

    value = or_none(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
