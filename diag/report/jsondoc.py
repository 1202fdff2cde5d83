"""The JSON report: the explain JSON document, unchanged, plus one extra top-level key ``report``.

Contract: :func:`render_json(doc, data) -> str`. Every key of ``diag explain --format json``
(``schema_version``, ``bundle``, ``findings``, ``checked``, ``not_checked``; docs/explain.md) is
kept as explain wrote it, so a reader of explain's JSON reads this too. ``report`` (docs/report.md)
holds what the other report formats show besides the findings: ``generated``, ``diag_version``,
``source_sha256``, ``collection`` {started, finished, status, partial_reasons, failed_hosts,
failed_commands}, ``topology`` {source, hosts, subnets, sessions, tunnels}, ``timeline``
{captures, lanes: [{a, b, capture, counts, state, events}]}, ``highlighted_routes`` [{host, file,
pointer, route, findings}], ``arp_unanswered``, ``missing``.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from diag.report.data import ReportData


def report_section(data: ReportData) -> dict[str, Any]:
    topo, tl = data.topology, data.timeline
    return {
        "generated": data.generated,
        "diag_version": data.diag_version,
        "source_sha256": data.source_sha256,
        "collection": {
            "started": data.started, "finished": data.finished, "status": data.status,
            "partial_reasons": list(data.partial_reasons),
            "failed_hosts": [{"host": h, "reachability": r, "error": e}
                             for h, r, e in data.failed_hosts],
            "failed_commands": [{"host": c.host, "id": c.id, "outcome": c.outcome,
                                 "exit_code": c.exit_code} for c in data.failed_commands],
            "commands": len(data.commands)},
        "topology": {
            "source": topo.source,
            "hosts": [{"name": h.name, "role": h.role, "node_ip": h.node_ip, "asn": h.asn,
                       "pod_cidr": h.pod_cidr, "reachability": h.reachability}
                      for h in topo.hosts],
            "subnets": [{"network": s.network, "members": [list(m) for m in s.members]}
                        for s in topo.subnets],
            "sessions": [asdict(s) for s in topo.sessions],
            "tunnels": _tunnels(topo.tunnels)},
        "timeline": {
            "captures": [{"host": h, "file": f, "packets": n} for h, f, n in tl.captures],
            "start": tl.t0, "end": tl.t1,
            "lanes": [{"a": ln.a, "b": ln.b, "capture": ln.host,
                       "also_seen_by": list(ln.other_hosts),
                       "counts": dict(ln.counts), "state": ln.state,
                       "events": [asdict(m) for m in ln.notable]} for ln in tl.lanes]},
        "highlighted_routes": [{"host": t.host, "file": t.file, "pointer": f"/{r.index}",
                                "route": r.route, "findings": list(r.marks)}
                               for t in data.routes for r in t.highlighted],
        "arp_unanswered": [asdict(a) for a in data.arp_unanswered],
        "missing": list(data.missing),
    }


def _tunnels(links) -> list[dict[str, Any]]:
    """One entry per VTEP device with its remotes (a full mesh of N VTEPs has N * (N - 1) links;
    above MAX_REMOTES remotes only their count is kept, so the file stays small)."""
    devices: dict[tuple, dict[str, Any]] = {}
    for t in links:
        d = devices.setdefault((t.host, t.device), {
            "host": t.host, "device": t.device, "kind": t.kind, "vni": t.vni, "port": t.port,
            "local": t.local, "remotes": [], "remote_count": 0})
        d["remote_count"] += 1
        if len(d["remotes"]) < MAX_REMOTES:
            d["remotes"].append({"remote": t.remote, "remote_host": t.remote_host})
    return list(devices.values())


MAX_REMOTES = 64


def render_json(doc: dict[str, Any], data: ReportData) -> str:
    out = dict(doc)
    out["report"] = report_section(data)
    return json.dumps(out, indent=2, default=str) + "\n"
