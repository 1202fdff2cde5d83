"""Intent versus state: what the analyzers that judge the cluster's Kubernetes objects (the
intent) against the daemons', kernel's and captures' state share.

Contract:

- :class:`Objects` — the objects as the facts' Kubernetes tables hold them: which kinds were
  read (:meth:`Objects.read`, :meth:`Objects.missing` for "not checkable: needs ..."), their rows
  as plain dicts (:meth:`Objects.rows`), evidence citing the stored List and the JSON pointer of
  the part (:meth:`Objects.evidence`: ``role="intent"`` for a spec, ``"state"`` for a status),
  the fix as a ``kubectl patch --type json`` line whose ``path`` is the row's pointer
  (:meth:`Objects.patch`), and the alternatives: several definitions of one kind, namespace and
  name (manifests from notes or from several files, never one cluster's state; each is judged
  alone) in :attr:`Objects.alternatives`.
- :class:`State` — per node, what the collected hosts show: the host that is a Node, its BGP
  sessions and originated prefixes, who holds a prefix, its links and addresses, ARP in the
  captures, neighbour entries.
- :class:`Verdict` — one intent rule's result: ``finding`` (an effect the state confirms, or
  the objects and the daemons disagreeing: ``INTENT_NOT_APPLIED``), the state findings it
  ``absorbs`` (same code and subject: their evidence joins it) and those that are its
  ``effects`` (they get ``caused_by``). :func:`join` applies them to the state analyzers'
  findings.

A rule never reports an effect from the objects alone: without the state that would show it,
its check is "not checked" and says what would supply it.
"""
from __future__ import annotations

import ipaddress
import json
import shlex
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from diag.analyze.catalog import default_severity
from diag.bundle import OutputIndex, kube_object_pointer
from diag.k8s import kinds as K
from diag.k8s.kinds import split_api_version
from diag.model import Check, Confidence, Evidence, Finding
from diag.values import is_missing

OBJECT_HOST = "kubernetes"            # the Evidence host of a cited object
CALICO_GROUPS = ("crd.projectcalico.org", "projectcalico.org")


def plain(value: Any) -> Any:
    if isinstance(value, (list, dict, tuple)):
        return value
    return None if is_missing(value) else value


def records(df) -> list[dict[str, Any]]:
    if df is None or not len(df):
        return []
    return [{k: plain(v) for k, v in row.items()} for row in df.to_dict("records")]


def net(text: Any):
    try:
        return ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        return None


def address(text: Any):
    try:
        return ipaddress.ip_address(str(text).split("/")[0])
    except ValueError:
        return None


def show(value: Any) -> str:
    """A selector, label map or list as it reads in YAML/JSON (not Python's repr)."""
    return json.dumps(value, separators=(", ", ": "))


RIB_COMMANDS = ("gobgp-global-rib", "cilium-bgp-routes", "bird-route-all", "frr-bgp-ipv4-unicast")


def ref_of(row: dict[str, Any]) -> str:
    """``Kind namespace/name`` or ``Kind/name``: how a finding names an object."""
    if row.get("namespace"):
        return f"{row['kind']} {row['namespace']}/{row['name']}"
    return f"{row['kind']}/{row['name']}"


# --- the objects ---------------------------------------------------------------------------

class Objects:
    def __init__(self, tables: dict[str, Any], outputs: OutputIndex | None) -> None:
        self.tables = tables
        self.outputs = outputs if outputs is not None else OutputIndex()
        self.resources = records(tables.get("kube_resources"))
        self._read = {(str(r["group"] or ""), str(r["kind"])) for r in self.resources
                      if r["outcome"] == "OK"}
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self.alternatives = self._alternatives()

    @property
    def present(self) -> bool:
        return bool(self._read)

    def read(self, group: str, kind: str) -> bool:
        if group == "calico":
            return any((g, kind) in self._read for g in CALICO_GROUPS)
        return (group, kind) in self._read

    def refused(self, group: str, kind: str) -> bool:
        """The kind exists in the cluster but its objects were not read (RBAC, a timeout):
        a check that needs them is "not checkable", not "nothing to check"."""
        groups = CALICO_GROUPS if group == "calico" else (group,)
        return any(r["kind"] == kind and str(r["group"] or "") in groups
                   and r["outcome"] not in ("OK", "NOT_INSTALLED") for r in self.resources)

    def missing(self, *wanted: tuple[str, str]) -> list[str]:
        """The kinds of ``wanted`` whose objects were not read, as ``Kind (group)``, with what
        became of them (not installed, refused by the API)."""
        out = []
        for group, kind in wanted:
            if self.read(group, kind):
                continue
            groups = CALICO_GROUPS if group == "calico" else (group,)
            why = next((r for r in self.resources if r["kind"] == kind
                        and str(r["group"] or "") in groups), None)
            outcome = {"NOT_INSTALLED": "not installed", None: "not collected"}.get(
                why["outcome"] if why else None, str(why["outcome"]).lower() if why else "")
            out.append(f"{kind} ({groups[0] or 'core'}: {outcome})")
        return out

    def rows(self, table: str) -> list[dict[str, Any]]:
        if table not in self._rows:
            self._rows[table] = records(self.tables.get(table))
        return self._rows[table]

    def file(self, row: dict[str, Any]) -> str:
        group = split_api_version(str(row.get("api_version") or ""))[0]
        path = self.outputs.kube_objects(group, str(row["kind"]))
        if path is None:
            for r in self.resources:   # facts built without the manifest's index
                if r["kind"] == row["kind"] and str(r["group"] or "") == group and r["path"]:
                    return str(r["path"])
            return f"kube objects of {row['kind']}"
        return path

    def evidence(self, row: dict[str, Any], value: str, *parts: str | int,
                 role: str = "intent", at: str | None = None) -> Evidence:
        """The object of ``row``, at its row's pointer (or ``at``) plus ``parts``."""
        from diag.k8s import pointers

        pointer = pointers.append(row["pointer"] if at is None else at, *parts)
        return Evidence(OBJECT_HOST, self.file(row), kube_object_pointer(int(row["item"]),
                                                                        pointer),
                        f"{ref_of(row)} {value}", role=role)

    def patch(self, row: dict[str, Any], ops: list[dict[str, Any]]) -> str:
        """``kubectl patch`` of the object with a JSON patch whose paths are pointers relative
        to the object (the row's pointer joined to each op's ``path`` when it is relative)."""
        group = split_api_version(str(row.get("api_version") or ""))[0]
        kind = K.find(group, str(row["kind"]))
        resource = kind.resource if kind else str(row["kind"]).lower()
        body = [dict(op, path=op["path"] if op["path"].startswith("/") else
                     f"{row['pointer']}/{op['path']}") for op in ops]
        namespace = f" -n {shlex.quote(row['namespace'])}" if row.get("namespace") else ""
        return (f"kubectl patch {resource} {shlex.quote(str(row['name']))}{namespace} "
                f"--type json -p {shlex.quote(json.dumps(body))}")

    def _alternatives(self) -> dict[tuple[str, str, str, str], list[int]]:
        """(group, kind, namespace, name) -> the stored items that define it, where several
        do (a List from one cluster never holds two)."""
        seen: dict[tuple[str, str, str, str], set[int]] = defaultdict(set)
        object_tables = [name for name, df in self.tables.items() if df is not None
                         and hasattr(df, "columns") and
                         {"kind", "api_version", "item", "pointer"} <= set(df.columns)]
        for table in object_tables:
            for row in self.rows(table):
                group = split_api_version(str(row.get("api_version") or ""))[0]
                key = (group, str(row["kind"]), str(row.get("namespace") or ""),
                       str(row["name"]))
                seen[key].add(int(row["item"]))
        return {key: sorted(items) for key, items in seen.items() if len(items) > 1}

    def is_alternative(self, row: dict[str, Any]) -> bool:
        group = split_api_version(str(row.get("api_version") or ""))[0]
        return (group, str(row["kind"]), str(row.get("namespace") or ""),
                str(row["name"])) in self.alternatives

    def node_labels(self) -> dict[str, dict[str, str]]:
        return {str(r["name"]): dict(r["labels"] or {}) for r in self.rows("k8s_nodes")}

    def config(self) -> dict[str, dict[str, Any]]:
        """cilium-config's keys -> their rows (kube-system/cilium-config only)."""
        return {str(r["key"]): r for r in self.rows("cilium_config")
                if (r.get("namespace"), r["name"]) == ("kube-system", "cilium-config")}


# --- the state -------------------------------------------------------------------------------

class State:
    """What the collected hosts show, keyed by Kubernetes Node where one is matched."""

    def __init__(self, tables: dict[str, Any], model, outputs: OutputIndex | None) -> None:
        self.tables, self.model = tables, model
        self.outputs = outputs if outputs is not None else OutputIndex()
        self.host_of_node: dict[str, str] = {}
        for h in model.hosts.values():
            if h.kube_node.known:
                self.host_of_node[str(h.kube_node.value)] = h.name
        self._cache: dict[str, list[dict[str, Any]]] = {}

    def rows(self, table: str) -> list[dict[str, Any]]:
        if table not in self._cache:
            self._cache[table] = records(self.tables.get(table))
        return self._cache[table]

    def host(self, node: str) -> str | None:
        return self.host_of_node.get(node)

    def collected(self, host: str | None) -> bool:
        h = self.model.hosts.get(host) if host else None
        return bool(h and h.collected)

    def file(self, host: str, source: str) -> str:
        return self.outputs.path(host, str(source).split("+")[0])

    def index_in(self, table: str, row: dict[str, Any]) -> int:
        """A row's place among the rows of the same host and output (the JSON pointer of
        ``ip -j`` outputs)."""
        same = [r for r in self.rows(table) if r["host"] == row["host"]
                and r["source"] == row["source"]]
        return next(i for i, r in enumerate(same) if r is row)

    # BGP
    def sessions(self, host: str) -> list[dict[str, Any]]:
        return [r for r in self.rows("bgp_peers") if r["host"] == host]

    def session_evidence(self, row: dict[str, Any]) -> Evidence:
        source = str(row["source"]).split("+")[0]
        if row.get("evidence_path"):
            return Evidence(row["host"], str(row["evidence_path"]),
                            str(row.get("evidence_pointer") or ""),
                            f"{row['daemon']} peer {row['peer']} AS {row.get('peer_as')} state "
                            f"{row.get('state_raw')} (CiliumBGPNodeConfig status)")
        if source.startswith("gobgp"):
            same = [r for r in self.rows("bgp_peers") if r["host"] == row["host"]
                    and r["source"] == row["source"]]
            pointer = f"/{next(i for i, r in enumerate(same) if r is row)}"
        elif source.startswith("frr"):
            pointer = f"/{row['peer']}"
        else:
            pointer = f"line starting {row['name']}" if row.get("name") else \
                f"line with {row['peer']}"
        counts = "" if row.get("state") != "ESTABLISHED" else \
            f", accepted {row.get('accepted') if row.get('accepted') is not None else '?'}" \
            f" advertised {row.get('advertised') if row.get('advertised') is not None else '?'}"
        error = f", last error {row['last_error']!r}" if row.get("last_error") else ""
        return Evidence(row["host"], self.file(row["host"], source), pointer,
                        f"{row['daemon']} peer {row['peer']} AS {row.get('peer_as')} state "
                        f"{row.get('state_raw')}{counts}{error}")

    def established(self, host: str) -> list[dict[str, Any]]:
        return [r for r in self.sessions(host) if r.get("state") == "ESTABLISHED"]

    def paths(self, host: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.rows("bgp_paths") if r.get("rib") == "loc"
                and (host is None or r["host"] == host)]

    def originated(self, host: str) -> set[str]:
        return {str(r["prefix"]) for r in self.paths(host) if r.get("local")}

    def holders(self, prefix: str, exclude: str | None = None) -> list[dict[str, Any]]:
        """Other speakers' best paths for ``prefix`` (learned, not originated)."""
        return [r for r in self.paths() if str(r["prefix"]) == prefix and r["host"] != exclude
                and not r.get("local") and r.get("best")]

    def speakers(self, exclude: str | None = None) -> list[str]:
        """Hosts whose BGP RIB was read (so an absence from it means something)."""
        return sorted({r["host"] for r in self.paths() if r["host"] != exclude})

    def path_evidence(self, row: dict[str, Any]) -> Evidence:
        source = str(row["source"]).split("+")[0]
        pointer = f"/{str(row['prefix']).replace('/', '~1')}" if source.startswith(
            ("gobgp", "frr")) else f"line starting {row['prefix']}"
        return Evidence(row["host"], self.file(row["host"], source), pointer,
                        f"{row['daemon']} best path {row['prefix']} via {row.get('nexthop')}")

    def failed_commands(self, host: str, prefixes: tuple[str, ...]) -> list[Evidence]:
        """The manifest records of ``host``'s commands starting with ``prefixes`` that did not
        succeed (a daemon's CLI that could not reach it)."""
        from diag.bundle import command_record

        mine = [r for r in self.rows("commands") if r["host"] == host]
        return [Evidence(host, *command_record(host, i),
                         f"{r['id']}: {r.get('outcome')} (exit {r.get('exit_code')}) "
                         f"{str(r.get('stderr') or '').strip()[:80]}")
                for i, r in enumerate(mine) if str(r["id"]).startswith(prefixes)
                and str(r.get("outcome")).upper() not in ("OK",)]

    def rib_read(self, host: str) -> str | None:
        """The command id of ``host``'s BGP RIB output when it was read (even empty)."""
        for r in self.rows("commands"):
            if r["host"] == host and r["id"] in RIB_COMMANDS and \
                    str(r.get("outcome")).upper() == "OK":
                return str(r["id"])
        return None

    def rib_evidence(self, host: str, absent: str) -> Evidence | None:
        """Evidence that ``host``'s BGP RIB was read and ``absent`` is not in it."""
        mine = [r for r in self.paths(host)]
        source = str(mine[0]["source"]).split("+")[0] if mine else self.rib_read(host)
        if source is None:
            return None
        prefixes = sorted({str(r["prefix"]) for r in mine})
        held = f"{', '.join(prefixes[:6])}{' ...' if len(prefixes) > 6 else ''}" if prefixes \
            else "empty"
        return Evidence(host, self.file(host, source), f"no line with {absent}",
                        f"BGP RIB of {host} ({source}): {held} (no {absent})")

    # links, addresses, routes
    def links(self, host: str) -> list[dict[str, Any]]:
        return [r for r in self.rows("interfaces") if r["host"] == host
                and r.get("phase", "main") in (None, "main")]

    def addresses(self, host: str) -> list[dict[str, Any]]:
        return [r for r in self.rows("addresses") if r["host"] == host and r.get("family") in
                ("inet", 4, "4", None)]

    def link_evidence(self, row: dict[str, Any], value: str) -> Evidence:
        return Evidence(row["host"], self.file(row["host"], row["source"]),
                        f"/{self.index_in('interfaces', row)}", value)

    def address_evidence(self, row: dict[str, Any], value: str) -> Evidence:
        # ip -j addr lists links: the link's place, then its addr_info
        same = [r for r in self.rows("addresses") if r["host"] == row["host"]
                and r["source"] == row["source"]]
        links = list(dict.fromkeys(r["ifname"] for r in same))
        return Evidence(row["host"], self.file(row["host"], row["source"]),
                        f"/{links.index(row['ifname'])}", value)

    def routes(self, host: str) -> list[dict[str, Any]]:
        return [r for r in self.rows("routes") if r["host"] == host]

    def route_evidence(self, row: dict[str, Any]) -> Evidence:
        via = f" via {row['gateway']}" if row.get("gateway") else ""
        return Evidence(row["host"], self.file(row["host"], row["source"]),
                        f"/{self.index_in('routes', row)}",
                        f"{row['dst']}{via} dev {row.get('dev')}"
                        + (f" proto {row['protocol']}" if row.get("protocol") else ""))

    # ARP
    def arp(self) -> list[dict[str, Any]]:
        return [r for r in self.rows("arp") if not r.get("tunnel_depth")]

    def captured(self) -> bool:
        return bool(self.rows("packets")) or bool(self.outputs and self.outputs._captures)

    def frame_evidence(self, row: dict[str, Any], value: str) -> Evidence:
        """A captured frame (an ``arp`` or ``bgp_messages`` row)."""
        file = self.outputs.capture(row["host"]) or "capture"
        return Evidence(row["host"], file, f"frame {int(row['frame'])}", value,
                        int(row["frame"]))

    def real_as(self, peer: str) -> tuple[int | None, list[Evidence]]:
        """The AS the BGP speaker at ``peer`` runs: its OPEN in a capture, its own daemon's
        local AS (when it is a collected host)."""
        evidence: list[Evidence] = []
        found = None
        for r in self.rows("bgp_messages"):
            if r.get("src") == peer and r.get("type_name") == "OPEN" and \
                    r.get("open_my_as") is not None:
                found = int(r["open_my_as"])
                evidence.append(self.frame_evidence(r, f"OPEN from {peer} my AS {found}"))
                break
        host = self.model.host_of_ip(peer)
        if host:
            own = [r for r in self.sessions(host) if r.get("local_as") is not None]
            if own:
                found = found if found is not None else int(own[0]["local_as"])
                evidence.append(self.session_evidence(own[0]))
        if found is None:
            # a session Established with it: it accepted the AS its peer expects
            up = [r for r in self.rows("bgp_peers") if r["peer"] == peer
                  and r.get("state") == "ESTABLISHED" and r.get("peer_as") is not None]
            if up:
                found = int(up[0]["peer_as"])
                evidence.append(self.session_evidence(up[0]))
        return found, evidence

    def mac_owner(self, mac: str) -> tuple[str, str] | None:
        for r in self.rows("interfaces"):
            if r.get("mac") and str(r["mac"]).lower() == mac.lower():
                return r["host"], r["ifname"]
        return None


# --- verdicts and joining them with the state analyzers' findings ------------------------------

@dataclass
class Verdict:
    finding: Finding
    absorbs: tuple[tuple[str, str], ...] = ()      # (code, token) state findings it takes in
    effects: tuple[tuple[str, str], ...] = ()      # (code, token) findings it causes


def finding(code: str, summary: str, sources: Iterable[str | None], evidence: Iterable,
            fix: Iterable[str] = (), *, severity: str | None = None, reason: str = "",
            note: str = "", hosts: Iterable[str | None] = (), subject: str = "") -> Finding:
    return Finding(code, severity or default_severity(code), summary,
                   Confidence(tuple(sorted({s for s in sources if s}))),
                   tuple(dict.fromkeys(e for e in evidence if e is not None)), tuple(fix),
                   severity_reason=reason, note=note,
                   hosts=tuple(dict.fromkeys(h for h in hosts if h)), subject=subject)


def _tokens(f: Finding) -> set[str]:
    words = set()
    for part in str(f.subject).replace(",", " ").split():
        words.add(part.strip())
    return words | set(f.hosts)


def _matches(f: Finding, code: str, token: str) -> bool:
    return f.code == code and (token == "*" or token in _tokens(f))


def join(findings: list[Finding], verdicts: list[Verdict]) -> list[Finding]:
    """The state findings with the verdicts' findings: a state finding a verdict absorbs gives
    it its evidence and sources and leaves the list; one that is a verdict's effect names it
    (``caused_by``), unless it already names another cause."""
    out = list(findings)
    joined: list[Finding] = []
    for verdict in verdicts:
        mine = verdict.finding
        taken = [f for f in out if any(_matches(f, c, t) for c, t in verdict.absorbs)]
        if taken:
            out = [f for f in out if f not in taken]
            cited = {(e.host, e.file, e.value) for e in mine.evidence} | \
                {(e.host, e.file, e.pointer) for e in mine.evidence}
            state_ev = [e for f in taken for e in f.evidence
                        if (e.host, e.file, e.value) not in cited
                        and (e.host, e.file, e.pointer) not in cited]
            sources = set(mine.confidence.sources) | {s for f in taken
                                                       for s in f.confidence.sources}
            mine = replace(mine, evidence=tuple(dict.fromkeys(mine.evidence + tuple(state_ev))),
                           confidence=Confidence(tuple(sorted(sources))),
                           hosts=tuple(dict.fromkeys(mine.hosts + tuple(
                               h for f in taken for h in f.hosts))))
        joined.append(mine)
    for n, (verdict, mine) in enumerate(zip(verdicts, joined)):
        if mine.severity == "info":
            continue
        linked: set[str] = set()
        for i, f in enumerate(out):
            if f.code != mine.code and any(_matches(f, c, t) for c, t in verdict.effects) and \
                    (f.caused_by is None or f.caused_by in _effect_codes(verdict)):
                linked.add(f.code)
                out[i] = replace(f, caused_by=mine.code, severity_reason=(
                    f.severity_reason + "; " if f.severity_reason else "")
                    + f"effect of {mine.code}: {mine.summary}")
        # an effect of an effect is an effect: its cause is the root one
        for i, f in enumerate(out):
            if f.caused_by in linked and f.caused_by != mine.code:
                linked.add(f.code)
                out[i] = replace(f, caused_by=mine.code, severity_reason=(
                    f.severity_reason + "; " if f.severity_reason else "")
                    + f"through {f.caused_by}, effect of {mine.code}")
        for j, other in enumerate(joined):
            if other is not mine and other.caused_by is None and other.code != mine.code \
                    and any(_matches(other, c, t) for c, t in verdict.effects):
                joined[j] = replace(other, caused_by=mine.code)
        # the hosts its effects are on are hosts it is about (ranking pairs cause and effect
        # by host)
        more = tuple(h for f in out if f.caused_by == mine.code for h in f.hosts)
        if more:
            joined[n] = mine = replace(mine, hosts=tuple(dict.fromkeys(mine.hosts + more)))
    return joined + out


def _effect_codes(verdict: Verdict) -> set[str]:
    return {c for c, _ in verdict.effects}


def not_checkable(name: str, objects: Objects, *wanted: tuple[str, str],
                  state: str = "") -> Check | None:
    """The check's "not checked" when a needed kind is absent (or ``state`` names the state
    that would show the effect); None when it can run."""
    missing = objects.missing(*wanted)
    if missing:
        return Check(name, None, needs="not checkable: no " + ", no ".join(missing)
                     + " objects (diag collect --kube)")
    if state:
        return Check(name, None, needs=state)
    return None


def alternatives(objects: Objects) -> tuple[list[Finding], list[Check]]:
    """One info finding per kind, namespace and name defined several times."""
    out = []
    for (group, kind, namespace, name), items in sorted(objects.alternatives.items()):
        row = {"kind": kind, "namespace": namespace or None, "name": name,
               "api_version": f"{group}/x" if group else "v1"}
        ev = [Evidence(OBJECT_HOST, objects.file(row), kube_object_pointer(i),
                       f"{ref_of(row)} definition {n + 1} of {len(items)}", role="intent")
              for n, i in enumerate(items)]
        out.append(finding(
            "K8S_OBJECT_ALTERNATIVES",
            f"{ref_of(row)}: {len(items)} alternative definitions (a cluster holds one object "
            "of a name: these are alternatives, e.g. manifests from notes); each is judged "
            "alone, and a check that depends on which one applies says so",
            ["objects"], ev, subject=f"{kind}/{name}"))
    return out, []


# --- every intent analyzer, joined with the state analyzers' findings ---------------------------

def analyze(facts, findings: list[Finding]) -> tuple[list[Finding], list[Check]]:
    """The intent analyzers over ``facts`` (their objects and state), joined with the state
    analyzers' ``findings``; returns (all findings, the intent checks)."""
    from diag.analyze import (
        intent_calico,
        intent_cilium,
        intent_config,
        intent_l2,
        intent_lbipam,
        intent_metallb,
    )

    objects = Objects(facts.tables, facts.outputs)
    if not objects.present:
        return findings, []
    state = State(facts.tables, facts.model, facts.outputs)
    verdicts: list[Verdict] = []
    checks: list[Check] = []
    for module in (intent_cilium, intent_lbipam, intent_l2, intent_config, intent_calico,
                   intent_metallb):
        more, more_checks = module.analyze(objects, state)
        verdicts += more
        checks += more_checks
    notes, note_checks = alternatives(objects)
    return join(findings, verdicts) + notes, checks + note_checks
