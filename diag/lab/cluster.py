"""The lab as a Kubernetes cluster: its objects on disk, the API endpoint that serves them, and
the reconcilers that turn them into the daemons' configuration (a lab part: no API server or
container runtime can be installed on these machines; nothing outside ``diag lab`` uses this).

Contract: :class:`LabCluster` of a :class:`~diag.lab.lab.Lab` (``lab.cluster``):

- where things are: :attr:`~LabCluster.objects_dir` (``RUN/kube/objects``: one List per
  ``*.json`` file; editing a file is editing the cluster), :attr:`~LabCluster.kubeconfig_path`
  (``RUN/kube/kubeconfig``, written by the endpoint), :attr:`~LabCluster.denied_path`
  (``RUN/kube/denied``: API resources answered with 403, one a line, read on every request);
- :meth:`~LabCluster.write_objects` (at ``up``: what a real cluster would show, from
  :mod:`diag.lab.kube_objects`), :meth:`~LabCluster.objects` (as on disk now);
- the daemons from the objects: :meth:`~LabCluster.node_config` (a node's gobgpd TOML, or its
  BIRD 1.6 / BIRD 2 configuration, rendered by :mod:`diag.lab.kube_reconcile` with the fault
  knobs of :class:`~diag.lab.configs.BgpOptions`), :meth:`~LabCluster.node_prefixes` (what a
  Cilium node originates in GoBGP);
- :meth:`~LabCluster.start_api` / :meth:`~LabCluster.wait_api`: the endpoint as a lab process
  on 127.0.0.1 in the root namespace (it opens a loopback socket there and touches nothing
  else), tracked by PID under the key ``kube/api``;
- the agents' part: :meth:`~LabCluster.refresh_status` (each CiliumBGPNodeConfig's ``status``
  from GoBGP's own state, and the L2 Leases' ``renewTime``; the endpoint calls it before serving
  them, at most once a second), :meth:`~LabCluster.announce` (L2 announcements: the Lease's
  holder holds each selected LoadBalancer IP as a /32 on the policy's interfaces, so it answers
  ARP for it; a new holder sends a gratuitous ARP);
- :meth:`~LabCluster.apply` (``diag lab kube apply``): bring the daemons in line with the
  objects as Cilium's operator and agent, or calico-node, would — CiliumBGPNodeConfigs from the
  ClusterConfigs, GoBGP restarted when its peers changed, originated prefixes added or
  withdrawn through GoBGP's API, BIRD reconfigured (``birdcl configure``), L2 announcements moved.

:func:`main` is the endpoint's process: ``python -m diag.lab.cluster --name LAB``.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import ipaddress
import json
import re
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from diag.errors import EnvironmentProblem, UsageError
from diag.k8s.selectors import label_selector_matches
from diag.lab import configs, environment
from diag.lab import kube_objects as K
from diag.lab import kube_reconcile as R
from diag.lab import plan as P
from diag.lab.system import run, wait_for

if TYPE_CHECKING:
    from diag.lab.lab import Lab

API_KEY = "kube/api"
STATUS_INTERVAL = 1.0            # seconds between two status refreshes of the endpoint
_GOBGP_STATES = {1: "idle", 2: "connect", 3: "active", 4: "opensent", 5: "openconfirm",
                 6: "established"}


class LabCluster:
    def __init__(self, lab: "Lab") -> None:
        self.lab = lab
        self.dir = lab.run_dir / "kube"
        self._refreshed = 0.0
        self._lock = threading.Lock()

    # --- where things are ---------------------------------------------------------------------

    @property
    def objects_dir(self) -> Path:
        return self.dir / "objects"

    @property
    def kubeconfig_path(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def denied_path(self) -> Path:
        return self.dir / "denied"

    @property
    def url_path(self) -> Path:
        return self.dir / "api-url"

    @property
    def kubectl_path(self) -> Path:
        """The lab's kubectl: ``exec`` and ``debug node`` into its pods, the rest the real
        kubectl's (:mod:`diag.lab.kubectl`)."""
        return self.dir / "bin" / "kubectl"

    def collect_command(self) -> str:
        """Every node through its CNI agent pod, and the objects: no SSH at all."""
        return (f"diag collect --kube --via kubectl --kubectl {self.kubectl_path} "
                f"--kubeconfig {self.kubeconfig_path}")

    # --- the objects --------------------------------------------------------------------------

    def object_options(self) -> K.KubeObjectOptions:
        state = self.lab.state
        created = datetime.datetime.fromtimestamp(state.created, datetime.UTC)
        return K.KubeObjectOptions(cni=self.lab.cni, mode=self.lab.mode,
                                   cilium_api=state.cilium_api or "v2",
                                   created=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                   renew_time=created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                                   agent_pods=self.lab.cni == "cilium" or state.bird == "1.6")

    def write_objects(self, denied: tuple[str, ...] = ()) -> None:
        """The objects a real cluster would show for the lab, and the denied resources."""
        self.dir.mkdir(mode=0o700, exist_ok=True)
        K.write_objects(self.objects_dir, K.cluster_objects(self.lab.plan, self.object_options()))
        self.denied_path.write_text(
            "# API resources the lab's endpoint answers with 403 Forbidden, one a line\n"
            "# (e.g. ciliumnodes.cilium.io, nodes); read on every request\n"
            + "".join(f"{resource}\n" for resource in denied))

    def files(self) -> dict[str, list[dict]]:
        return K.read_objects(self.objects_dir)

    def objects(self) -> list[dict]:
        return [o for items in self.files().values() for o in items]

    def _write(self, stem: str, items: list[dict]) -> None:
        K.write_objects(self.objects_dir, {stem: items})

    @contextlib.contextmanager
    def _writing(self):
        """Serialise read-modify-write of the object files between the endpoint's status
        refreshes and ``diag lab kube apply`` (two processes)."""
        with open(self.dir / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- the daemons from the objects ---------------------------------------------------------

    def node_config(self, node: P.Host, opts: configs.BgpOptions,
                    objects: list[dict] | None = None) -> tuple[Path, str]:
        """(path, text) of ``node``'s BGP daemon configuration: what the CNI would run, from the
        objects, with the fault knobs of ``opts`` (:func:`~diag.lab.kube_reconcile.
        node_daemon_config`). Raises :class:`~diag.lab.kube_reconcile.NoBgpInstance` when the
        objects give the node no (or more than one) BGP instance."""
        objects = self.objects() if objects is None else objects
        hd = self.lab.files.host_dir(node.name)
        text = R.node_daemon_config(objects, node.name, cni=self.lab.cni,
                                    bird=self.lab.state.bird, options=opts,
                                    log_path=hd / "bird.log")
        return hd / ("gobgpd.toml" if self.lab.cni == "cilium" else "bird.conf"), text

    def node_prefixes(self, node: str, objects: list[dict] | None = None) -> tuple[str, ...]:
        """The IPv4 prefixes a Cilium node's BGP control plane originates (GoBGP's RIB)."""
        intent = R.cilium_bgp_intent(self.objects() if objects is None else objects, node)
        return tuple(p for p in intent.prefixes if ipaddress.ip_network(p).version == 4)

    # --- the endpoint -------------------------------------------------------------------------

    def start_api(self) -> None:
        """Start the endpoint (root namespace, 127.0.0.1 only); :meth:`wait_api` waits for it."""
        self.url_path.unlink(missing_ok=True)
        self.lab.daemons.spawn_local(API_KEY, [
            sys.executable, "-m", "diag.lab.cluster", "--name", self.lab.name,
            "--objects", str(self.objects_dir)])

    def wait_api(self, timeout: float = 15) -> str:
        def ready() -> str | None:
            if not self.lab.daemons.is_running(API_KEY):
                log = self.lab.run_dir / "logs" / "kube_api.log"
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] \
                    if log.exists() else []
                raise EnvironmentProblem(f"the lab's Kubernetes API endpoint exited: "
                                         f"{' '.join(tail) or 'no output'}")
            if self.url_path.exists() and self.kubeconfig_path.exists():
                return self.url_path.read_text().strip()
            return None

        return wait_for(ready, timeout=timeout, interval=0.05,
                        what="the lab's Kubernetes API endpoint")

    @property
    def api_url(self) -> str | None:
        try:
            return self.url_path.read_text().strip() or None
        except FileNotFoundError:
            return None

    # --- what the agents write ----------------------------------------------------------------

    def refresh_status(self, *, force: bool = False) -> None:
        """CiliumBGPNodeConfig status from GoBGP (state, route counts, established time) and
        the Leases renewed by their holders; at most once per :data:`STATUS_INTERVAL`."""
        if self.lab.cni != "cilium":
            return
        with self._lock, self._writing():
            now = time.monotonic()
            if not force and now - self._refreshed < STATUS_INTERVAL:
                return
            self._refreshed = now
            files = self.files()
            configs_now = files.get("ciliumbgpnodeconfigs", [])
            fresh = [self._node_status(obj) for obj in configs_now]
            if fresh != configs_now:
                self._write("ciliumbgpnodeconfigs", fresh)
            leases = files.get("leases", [])
            stamp = _now()
            renewed = [_renewed(lease, stamp) if self._holder_alive(lease) else lease
                       for lease in leases]
            if renewed != leases:
                self._write("leases", renewed)

    def _holder_alive(self, lease: dict) -> bool:
        holder = (lease.get("spec") or {}).get("holderIdentity")
        return any(n.name == holder for n in self.lab.plan.nodes)

    def _node_status(self, obj: dict) -> dict:
        node = obj["metadata"]["name"]
        if not self.lab.daemons.is_running(f"{node}/gobgpd"):
            return obj                    # no agent answering: the status stays as it was
        proc = self._in_node(node, ["gobgp", "neighbor", "-j"])
        try:
            neighbors = json.loads(proc.stdout or "null")
        except json.JSONDecodeError:
            return obj
        if not isinstance(neighbors, list):   # a hung gobgpd answers an error object
            return obj
        by_address = {nb.get("conf", {}).get("neighbor_address"): nb for nb in neighbors}
        instances = []
        for instance in (obj.get("spec") or {}).get("bgpInstances") or []:
            peers = []
            for peer in instance.get("peers") or []:
                nb = by_address.get(peer.get("peerAddress"))
                if nb is None:
                    continue
                state = _GOBGP_STATES.get(nb.get("state", {}).get("session_state"), "unknown")
                received = sum(a.get("state", {}).get("received", 0)
                               for a in nb.get("afi_safis") or [])
                advertised = self._advertised(node, peer["peerAddress"]) \
                    if state == "established" else 0
                timers = nb.get("timers", {}).get("state", {})
                entry = {"name": peer.get("name"), "peerAddress": peer.get("peerAddress"),
                         "peerASN": peer.get("peerASN"), "peeringState": state}
                uptime = (timers.get("uptime") or {}).get("seconds")
                if state == "established" and uptime:
                    entry["establishedTime"] = _rfc3339(uptime)
                entry["routeCount"] = [{"afi": "ipv4", "safi": "unicast", "received": received,
                                        "advertised": advertised}]
                entry["timers"] = {"appliedHoldTimeSeconds": timers.get(
                    "negotiated_hold_time", configs.HOLD), "appliedKeepaliveSeconds":
                    timers.get("keepalive_interval", configs.KEEPALIVE)}
                peers.append(entry)
            instances.append({"name": instance.get("name"), "localASN":
                              instance.get("localASN"), "peers": peers})
        return dict(obj, status={"bgpInstances": instances})

    def _advertised(self, node: str, peer: str) -> int:
        proc = self._in_node(node, ["gobgp", "neighbor", peer, "adj-out", "-a", "ipv4", "-j"])
        try:
            return len(json.loads(proc.stdout or "{}") or {})
        except (json.JSONDecodeError, TypeError):
            return 0

    def _in_node(self, node: str, argv: list[str]):
        return run(["ip", "netns", "exec", self.lab.netns(node), *argv], check=False, timeout=5)

    # --- L2 announcements ---------------------------------------------------------------------

    def l2_holder(self) -> str | None:
        """The node holding the first L2 announcement Lease (None without one)."""
        for lease in self.files().get("leases", []):
            return (lease.get("spec") or {}).get("holderIdentity")
        return None

    def announce(self) -> list[str]:
        """Make each L2 announcement real: the Lease's holder (kept while the policy still
        selects it, else the first selected node, as the next agent to take the Lease) holds
        the selected Services' LoadBalancer IPs as /32 on the interfaces matching the policy's
        patterns, no other node does. Returns what changed."""
        if self.lab.cni != "cilium":
            return []
        with self._writing():
            return self._announce()

    def _announce(self) -> list[str]:
        files = self.files()
        objects = [o for items in files.values() for o in items]
        nodes = {o["metadata"]["name"]: o for o in objects
                 if o.get("kind") == "Node" and o.get("apiVersion") == "v1"}
        services = [o for o in objects if o.get("kind") == "Service"
                    and (o.get("spec") or {}).get("type") == "LoadBalancer"]
        lb_ips = {i["ip"] for s in services for i in _ingress(s)}
        leases = {lease["metadata"]["name"]: lease for lease in files.get("leases", [])}
        wanted: dict[str, set[tuple[str, str]]] = {n.name: set() for n in self.lab.plan.nodes}
        notes: list[str] = []
        for policy in (o for o in objects if o.get("kind") == "CiliumL2AnnouncementPolicy"):
            spec = policy.get("spec") or {}
            if not spec.get("loadBalancerIPs"):
                continue
            eligible = [n.name for n in self.lab.plan.nodes if n.name in nodes and
                        label_selector_matches(spec.get("nodeSelector"), nodes[n.name]["metadata"]
                                               .get("labels") or {}, absent=True)]
            patterns = [re.compile(p) for p in spec.get("interfaces") or []]
            for service in services:
                meta = service["metadata"]
                labels = dict(meta.get("labels") or {}, **{
                    "io.kubernetes.service.name": meta["name"],
                    "io.kubernetes.service.namespace": meta.get("namespace", "default")})
                if not label_selector_matches(spec.get("serviceSelector"), labels, absent=True):
                    continue
                name = K.L2_LEASE.format(namespace=meta.get("namespace", "default"),
                                         name=meta["name"])
                lease = leases.get(name)
                holder = (lease or {}).get("spec", {}).get("holderIdentity")
                if holder not in eligible:
                    new = eligible[0] if eligible else None
                    leases[name] = _taken(lease, name, new)
                    notes.append(f"Lease kube-system/{name}: holder {holder or 'none'} -> "
                                 f"{new or 'none'}")
                    holder = new
                if holder is None:
                    continue
                ifaces = [i for i in self._interfaces(holder)
                          if not patterns or any(p.search(i) for p in patterns)]
                wanted[holder] |= {(iface, i["ip"]) for iface in ifaces
                                   for i in _ingress(service)}
        if list(leases.values()) != files.get("leases", []):
            self._write("leases", list(leases.values()))
        have = {node: self._lb_addresses(node, lb_ips) for node in wanted}
        for node, want in wanted.items():       # the old holder lets go first: never two
            for iface, ip in sorted(have[node] - want):
                self._in_node(node, ["ip", "addr", "del", f"{ip}/32", "dev", iface])
                notes.append(f"{node}: {ip} no longer announced on {iface}")
        for node, want in wanted.items():
            for iface, ip in sorted(want - have[node]):
                self._in_node(node, ["ip", "addr", "replace", f"{ip}/32", "dev", iface])
                # a new holder tells the segment at once, as Cilium's agent does
                self._in_node(node, ["arping", "-q", "-U", "-c", "1", "-i", iface, ip])
                notes.append(f"{node}: announces {ip} on {iface} (answers ARP for it)")
        return notes

    def _interfaces(self, node: str) -> list[str]:
        proc = self._in_node(node, ["ip", "-j", "link", "show"])
        return [link["ifname"] for link in json.loads(proc.stdout or "[]")
                if link.get("ifname") != "lo"]

    def _lb_addresses(self, node: str, lb_ips: set[str]) -> set[tuple[str, str]]:
        proc = self._in_node(node, ["ip", "-j", "-4", "addr", "show"])
        return {(link["ifname"], a["local"]) for link in json.loads(proc.stdout or "[]")
                for a in link.get("addr_info", [])
                if a.get("local") in lb_ips and a.get("prefixlen") == 32}

    # --- reconciling --------------------------------------------------------------------------

    def apply(self) -> list[str]:
        """Bring the daemons in line with the objects as they are now; returns what changed."""
        from diag.lab.faults.state import read as active_fault

        fault = active_fault(self.lab)
        if fault is not None:
            raise UsageError(f"fault {fault.name} is active in lab {self.lab.name!r}: the "
                             "daemons do not run the objects' configuration now",
                             hint=f"diag lab heal --name {self.lab.name}, then apply again")
        try:
            objects = self.objects()
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise UsageError(f"the lab's objects in {self.objects_dir} do not read as JSON "
                             f"objects or Lists: {err}") from None
        notes: list[str] = []
        if self.lab.cni == "cilium":
            with self._writing():
                notes += self._operator(objects)
        opts = self.lab.files.bgp_options()
        for node in self.lab.plan.nodes:
            if self.lab.cni == "cilium":
                notes += self._reconcile_gobgp(node, opts, objects)
            else:
                notes += self._reconcile_bird(node, opts, objects)
        notes += self.announce()
        self.refresh_status(force=True)
        return notes

    def _operator(self, objects: list[dict]) -> list[str]:
        """CiliumBGPNodeConfigs as Cilium's operator writes them: one per node a ClusterConfig
        selects, its instances and peers copied; the status kept."""
        current = {o["metadata"]["name"]: o for o in self.files().get("ciliumbgpnodeconfigs", [])}
        cluster_configs = {o["metadata"]["name"]: o for o in objects
                           if o.get("kind") == "CiliumBGPClusterConfig"}
        out, notes = [], []
        for node in self.lab.plan.nodes:
            intent = R.cilium_bgp_intent(objects, node.name)
            owner = cluster_configs.get(intent.source.removeprefix("ClusterConfig "))
            old = current.get(node.name)
            if owner is None or not intent.source.startswith("ClusterConfig "):
                if old is not None:
                    notes.append(f"CiliumBGPNodeConfig {node.name}: deleted (no "
                                 "ClusterConfig selects the node)")
                continue
            api = owner["apiVersion"]
            spec = {"bgpInstances": [
                {"name": i.get("name"), "localASN": i.get("localASN"),
                 "peers": [{k: v for k, v in p.items() if k in (
                     "name", "peerAddress", "peerASN", "peerConfigRef")}
                     for p in i.get("peers") or []]}
                for i in (owner.get("spec") or {}).get("bgpInstances") or []]}
            new = {"apiVersion": api, "kind": "CiliumBGPNodeConfig",
                   "metadata": dict((old or {}).get("metadata") or K._meta(node.name),
                                    ownerReferences=[{"apiVersion": api,
                                                      "kind": "CiliumBGPClusterConfig",
                                                      "name": owner["metadata"]["name"],
                                                      "controller": True}]),
                   "spec": spec}
            if old is not None and "status" in old:
                new["status"] = old["status"]
            if old is None or {k: old.get(k) for k in ("spec", "metadata")} != \
                    {k: new.get(k) for k in ("spec", "metadata")}:
                notes.append(f"CiliumBGPNodeConfig {node.name}: "
                             f"{'created' if old is None else 'updated'} from ClusterConfig "
                             f"{owner['metadata']['name']}")
            out.append(new)
        if out != list(current.values()):
            self._write("ciliumbgpnodeconfigs", out)
        return notes

    def _reconcile_gobgp(self, node: P.Host, opts: configs.BgpOptions,
                         objects: list[dict]) -> list[str]:
        key = f"{node.name}/gobgpd"
        try:
            path, text = self.node_config(node, opts, objects)
        except R.NoBgpInstance as err:
            if self.lab.daemons.is_running(key):
                self.lab.daemons.stop(key)
                return [f"{node.name}: {err}; gobgpd stopped"]
            return [f"{node.name}: {err}"]
        if not self.lab.daemons.is_running(key) or _read(path) != text:
            self.lab.daemons.restart_bgp(node.name, opts)
            return [f"{node.name}: gobgpd restarted with the new peers ({path.name})"]
        want = set(self.node_prefixes(node.name, objects))
        have = self.lab.daemons.gobgp_originated(node.name)
        notes = []
        for prefix in sorted(have - want):
            self._in_node(node.name, ["gobgp", "global", "rib", "del", "-a", "ipv4", prefix])
            notes.append(f"{node.name}: GoBGP withdraws {prefix}")
        for prefix in sorted(want - have):
            self._in_node(node.name, ["gobgp", "global", "rib", "add", "-a", "ipv4", prefix])
            notes.append(f"{node.name}: GoBGP advertises {prefix}")
        return notes

    def _reconcile_bird(self, node: P.Host, opts: configs.BgpOptions,
                        objects: list[dict]) -> list[str]:
        path, text = self.node_config(node, opts, objects)
        if _read(path) == text and self.lab.daemons.is_running(f"{node.name}/bird"):
            return []
        if not self.lab.daemons.is_running(f"{node.name}/bird"):
            self.lab.daemons.restart_bgp(node.name, opts)
            return [f"{node.name}: BIRD started ({path.name})"]
        self.lab.files.write_text_secret(path, text)
        proc = self._in_node(node.name, ["birdcl", "-s", str(self.lab.files.bird_socket(
            node.name)), "configure"])
        words = " ".join(proc.stdout.split()[-3:]) if proc.stdout else proc.stderr.strip()
        return [f"{node.name}: BIRD reconfigured ({words})"]


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _ingress(service: dict) -> list[dict]:
    return [i for i in ((service.get("status") or {}).get("loadBalancer") or {}).get(
        "ingress") or [] if i.get("ip")]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _rfc3339(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _renewed(lease: dict, stamp: str) -> dict:
    return dict(lease, spec=dict(lease.get("spec") or {}, renewTime=stamp))


def _taken(lease: dict | None, name: str, holder: str | None) -> dict:
    stamp = _now()
    spec = dict((lease or {}).get("spec") or {"leaseDurationSeconds": 15,
                                               "leaseTransitions": -1})
    spec.update(holderIdentity=holder, acquireTime=stamp, renewTime=stamp,
                leaseTransitions=spec.get("leaseTransitions", 0) + 1)
    if holder is None:
        spec.pop("holderIdentity")
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": (lease or {}).get("metadata") or K._meta(name, "kube-system"),
            "spec": spec}


def main(argv: list[str] | None = None) -> int:
    """The lab's API endpoint process: serve the lab's objects until SIGTERM."""
    from diag.lab.kubeapi import ApiOptions, KubeApiServer
    from diag.lab.lab import Lab

    parser = argparse.ArgumentParser(prog="python -m diag.lab.cluster")
    parser.add_argument("--name", required=True)
    parser.add_argument("--objects", type=Path, help="the lab's objects directory (as a check)")
    args = parser.parse_args(argv)
    environment.check()
    cluster = Lab.load(args.name).cluster
    if args.objects is not None and args.objects.resolve() != cluster.objects_dir.resolve():
        raise SystemExit(f"--objects {args.objects} is not lab {args.name}'s "
                         f"({cluster.objects_dir})")

    def before_read(resource: str) -> None:
        if resource in ("ciliumbgpnodeconfigs.cilium.io", "leases.coordination.k8s.io"):
            try:
                cluster.refresh_status()
            except Exception as err:  # noqa: BLE001 - a stale status beats a failed request
                print(f"status refresh failed: {type(err).__name__}: {err}", flush=True)

    api = KubeApiServer(ApiOptions(objects_dir=cluster.objects_dir,
                                   denied_file=cluster.denied_path,
                                   cert_dir=cluster.dir / "tls", before_read=before_read))
    api.kubeconfig(cluster.kubeconfig_path)
    tmp = cluster.url_path.with_name(f".{cluster.url_path.name}.tmp")
    tmp.write_text(api.url + "\n")
    tmp.replace(cluster.url_path)
    print(f"serving lab {args.name}'s objects at {api.url}", flush=True)
    try:
        api.httpd.serve_forever()
    finally:
        api.httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
