"""Benchmark `diag explain` at scale: a synthetic bundle of N hosts x M routes with BGP tables.

    python3 benchmarks/explain_scale.py                       # 500 hosts x 5,000 routes
    python3 benchmarks/explain_scale.py --hosts 20 --routes 200 --keep /tmp/small
    python3 benchmarks/explain_scale.py --profile             # cProfile of the in-process run

The bundle is written through the real writer (:class:`diag.bundle.BundleWriter`: manifest,
sha256s) with outputs in the real formats: the JSON of ``ip -j addr/link/route/rule/neigh``,
``sysctl`` and ``nstat`` text, GoBGP's ``gobgp -j neighbor`` and ``gobgp -j global rib``. The
static shapes (interface records, neighbour record, nstat/sysctl text) are the repository's own
collected lab bundle ``tests/fixtures/bundles/cilium-native-default.tar.gz`` (host k8s-ctr),
re-addressed per host.

Topology: host 0 is a router (10.0.0.1 on the cluster segment 10.0.0.0/16), hosts 1..N-1 are
Cilium-like nodes (node IP 10.0.x.y, own pod CIDR 172.16.i.0/24 out of 172.16.0.0/12, management
NIC eth0 with the default route). Each node's kernel has the other nodes' pod CIDRs and
M - (N - 1) service /32s (198.18.0.0/15) via the router, and its GoBGP RIB holds the same
prefixes as best paths learned from the router (AS path 65000 65001), so a healthy cluster: the
run must report no warning or error (checked; exit 1 otherwise).

Prints the build time, the `diag explain` wall time (a subprocess, as an operator runs it), its
CPU time and the load average (on a shared machine the wall time includes waiting for a core)
and the finding count; ``--split`` adds the in-process load/analyze split; ``--json FILE``
writes them.
"""
from __future__ import annotations

import argparse
import copy
import ipaddress
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from diag.bundle import BundleWriter  # noqa: E402

TEMPLATE = REPO / "tests/fixtures/bundles/cilium-native-default.tar.gz"
TEMPLATE_HOST = "k8s-ctr"
ROUTER_IP = "10.0.0.1"
POD_RANGE = ipaddress.ip_network("172.16.0.0/12")
SERVICES = ipaddress.ip_network("198.18.0.0/15")
STAMP = "2026-11-21T07:00:00.000000Z"


def _templates() -> dict[str, bytes]:
    out = {}
    with tarfile.open(TEMPLATE) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) == 4 and parts[1] == "hosts" and parts[2] == TEMPLATE_HOST:
                handle = tar.extractfile(member)
                if handle is not None:
                    out[parts[3].rsplit(".", 1)[0]] = handle.read()
    return out


def node_ip(i: int) -> str:
    return str(ipaddress.ip_address("10.0.0.10") + i)


def mgmt_ip(i: int) -> str:
    return str(ipaddress.ip_address("10.128.0.10") + i)


def pod_cidr(i: int) -> str:
    return str(ipaddress.ip_network(f"{POD_RANGE.network_address + i * 256}/24"))


def _addr(tpl: list, cluster: str, mgmt: str | None, pod: str | None) -> list:
    out = []
    for rec in copy.deepcopy(tpl):
        name = rec["ifname"]
        if name == "eth1":
            rec["addr_info"][0].update(local=cluster, prefixlen=16)
        elif name == "eth0":
            if mgmt is None:
                continue
            rec["addr_info"][0].update(local=mgmt, prefixlen=16)
        elif name == "lxc_pod":
            if pod is None:
                continue
            net = ipaddress.ip_network(pod)
            rec["addr_info"][0].update(local=str(net.network_address + 1), prefixlen=24)
        out.append(rec)
    return out


def _links(tpl: list, names: set[str]) -> list:
    return [rec for rec in copy.deepcopy(tpl) if rec["ifname"] in names]


def _node_routes(i: int, hosts: int, extra: list[str]) -> list[dict]:
    routes = [{"dst": "default", "gateway": "10.128.0.1", "dev": "eth0", "flags": []},
              {"dst": "10.128.0.0/16", "dev": "eth0", "protocol": "kernel", "scope": "link",
               "prefsrc": mgmt_ip(i), "flags": []},
              {"dst": "10.0.0.0/16", "dev": "eth1", "protocol": "kernel", "scope": "link",
               "prefsrc": node_ip(i), "flags": []},
              {"dst": pod_cidr(i), "dev": "lxc_pod", "protocol": "kernel", "scope": "link",
               "prefsrc": str(ipaddress.ip_network(pod_cidr(i)).network_address + 1),
               "flags": []}]
    for j in range(1, hosts):
        if j != i:
            routes.append({"dst": pod_cidr(j), "gateway": ROUTER_IP, "dev": "eth1",
                           "protocol": "bgp", "metric": 20, "flags": []})
    # `ip -j route` prints host routes without "/32" (GoBGP's RIB keeps it)
    routes += [{"dst": p.removesuffix("/32"), "gateway": ROUTER_IP, "dev": "eth1",
                "protocol": "bgp", "metric": 20, "flags": []} for p in extra]
    routes += [{"type": "local", "dst": node_ip(i), "dev": "eth1", "table": "local",
                "protocol": "kernel", "scope": "host", "prefsrc": node_ip(i), "flags": []},
               {"type": "local", "dst": mgmt_ip(i), "dev": "eth0", "table": "local",
                "protocol": "kernel", "scope": "host", "prefsrc": mgmt_ip(i), "flags": []}]
    return routes


def _rib(i: int, hosts: int, extra: list[str]) -> dict:
    def path(prefix: str, nexthop: str, learned: bool) -> dict:
        attrs = [{"type": 1, "value": 2}]
        if learned:
            attrs.append({"type": 2, "as_paths": [{"segment_type": 2, "num": 2,
                                                   "asns": [65000, 65001]}]})
        attrs.append({"type": 3, "nexthop": nexthop})
        rec = {"nlri": {"prefix": prefix}, "age": 1795244275, "best": True, "attrs": attrs,
               "stale": False}
        if learned:
            rec.update({"source-id": ROUTER_IP, "neighbor-ip": ROUTER_IP})
        return rec

    rib = {pod_cidr(i): [path(pod_cidr(i), "0.0.0.0", False)]}
    for j in range(1, hosts):
        if j != i:
            rib[pod_cidr(j)] = [path(pod_cidr(j), ROUTER_IP, True)]
    for prefix in extra:
        rib[prefix] = [path(prefix, ROUTER_IP, True)]
    return rib


def _neighbor(tpl: list, i: int, accepted: int) -> list:
    rec = copy.deepcopy(tpl[0])
    rec["conf"]["neighbor_address"] = ROUTER_IP
    rec["state"]["neighbor_address"] = ROUTER_IP
    rec["state"]["router_id"] = ROUTER_IP
    rec["transport"]["local_address"] = node_ip(i)
    for afi in rec.get("afi_safis", []):
        afi["state"]["received"] = afi["state"]["accepted"] = accepted
    return [rec]


def _command(cid: str, argv: list[str], daemon: str | None = None) -> dict:
    return {"id": cid, "argv": argv, "run_as": "user", "daemon": daemon, "phase": "main",
            "outcome": "OK", "exit_code": 0, "timeout_s": 20.0, "stderr": "", "started": STAMP,
            "duration_s": 0.01, "truncated": False, "cap_bytes": 16777216}


def build(root: Path, hosts: int, routes: int, break_node: int | None = None) -> Path:
    """Write the bundle. ``break_node``: that node's kernel loses its route to the next node's
    pod CIDR (its GoBGP still holds it): a ROUTE_RIB_NOT_IN_FIB for tests to find."""
    tpl = _templates()
    addr_tpl = json.loads(tpl["ip-addr"])
    link_tpl = json.loads(tpl["ip-link"])
    neigh_tpl = json.loads(tpl["ip-neigh"])
    neighbor_tpl = json.loads(tpl["gobgp-neighbor"])
    n_extra = max(0, routes - (hosts - 1))
    extra = [f"{SERVICES.network_address + k}/32" for k in range(n_extra)]
    names = ["router"] + [f"node-{i:04d}" for i in range(1, hosts)]
    writer = BundleWriter(root, {"targets": names, "probes": [], "capture": None,
                                 "synthetic": f"benchmarks/explain_scale.py {hosts}x{routes}"})
    writer.FLUSH_INTERVAL = 5.0          # the manifest of thousands of commands: rewrite rarely
    common = {k: tpl[k] for k in ("ip-version", "uname", "os-release", "sysctl-net", "nstat",
                                  "ip-rule-v4")}

    def put(host: str, cid: str, argv: list[str], data, daemon: str | None = None) -> None:
        if not isinstance(data, bytes):
            data = json.dumps(data, separators=(",", ":")).encode()
        writer.add_output(host, _command(cid, argv, daemon), data)

    for i, host in enumerate(names):
        router = i == 0
        writer.set_host(host, target=host, transport="ssh", reachability="OK",
                        declared={"role": "router"} if router else {},
                        uid=0, sudo=False, clock_offset_s=0.0,
                        daemons={} if router else {"GOBGP": {}})
        put(host, "hostname", ["hostname"], f"{host}\n".encode())
        for cid, data in common.items():
            put(host, cid, cid.split("-"), data)
        cluster = ROUTER_IP if router else node_ip(i)
        put(host, "ip-addr", ["ip", "-j", "addr"],
            _addr(addr_tpl, cluster, None if router else mgmt_ip(i),
                  None if router else pod_cidr(i)))
        put(host, "ip-link", ["ip", "-d", "-j", "link"],
            _links(link_tpl, {"lo", "eth1"} if router else
                   {"lo", "eth1", "eth0", "lxc_pod"}))
        if router:
            table = [{"dst": "10.0.0.0/16", "dev": "eth1", "protocol": "kernel", "scope": "link",
                      "prefsrc": ROUTER_IP, "flags": []}]
            table += [{"dst": pod_cidr(j), "gateway": node_ip(j), "dev": "eth1",
                       "protocol": "bgp", "metric": 20, "flags": []} for j in range(1, hosts)]
            table += [{"dst": p.removesuffix("/32"), "dev": "lo", "protocol": "static",
                       "flags": []} for p in extra]
            table.append({"type": "local", "dst": ROUTER_IP, "dev": "eth1", "table": "local",
                          "protocol": "kernel", "scope": "host", "prefsrc": ROUTER_IP,
                          "flags": []})
            put(host, "ip-route-v4", ["ip", "-j", "route", "show", "table", "all"], table)
            neigh = [dict(neigh_tpl[-1], dst=node_ip(j), dev="eth1")
                     for j in range(1, min(hosts, 50))]
            put(host, "ip-neigh", ["ip", "-j", "neigh"], neigh)
            continue
        table = _node_routes(i, hosts, extra)
        if i == break_node:
            lost = pod_cidr(i % (hosts - 1) + 1)
            table = [r for r in table if r["dst"] != lost]     # noqa: E501 (one pod route)
        put(host, "ip-route-v4", ["ip", "-j", "route", "show", "table", "all"], table)
        put(host, "ip-neigh", ["ip", "-j", "neigh"],
            [dict(neigh_tpl[-1], dst=ROUTER_IP, dev="eth1")])
        put(host, "gobgp-neighbor", ["gobgp", "-j", "neighbor"],
            _neighbor(neighbor_tpl, i, hosts - 2 + len(extra)), "GOBGP")
        put(host, "gobgp-global-rib", ["gobgp", "-j", "global", "rib"],
            _rib(i, hosts, extra), "GOBGP")
    writer.finish([])
    return root


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_explain(bundle: Path) -> tuple[float, dict, int, float]:
    """(wall seconds, the JSON document, exit code, CPU seconds of the subprocess). The CPU
    time is the fair figure on a shared machine: the wall time includes waiting for a core."""
    started, cpu = time.monotonic(), _children_cpu()
    proc = subprocess.run([sys.executable, "-m", "diag", "explain", str(bundle), "--format",
                           "json"], capture_output=True, text=True, cwd=REPO)
    seconds, cpu = time.monotonic() - started, _children_cpu() - cpu
    if proc.returncode not in (0, 1):
        raise SystemExit(f"diag explain failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds, json.loads(proc.stdout), proc.returncode, cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=500)
    ap.add_argument("--routes", type=int, default=5000, help="kernel routes and BGP best paths "
                    "per node")
    ap.add_argument("--keep", type=Path, help="write the bundle here and keep it")
    ap.add_argument("--bundle", type=Path, help="time an existing bundle (from --keep) instead "
                    "of building one")
    ap.add_argument("--profile", action="store_true", help="also profile explain in-process")
    ap.add_argument("--split", action="store_true", help="also time loading the facts and the "
                    "analysis separately, in-process")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="explain-scale-") as tmp:
        root = args.bundle or args.keep or Path(tmp) / "bundle"
        started = time.monotonic()
        if not args.bundle:
            build(root, args.hosts, args.routes)
            # the bundle on disk before it is explained (as a collected one is): the timed run
            # does not share the machine with the writeback of the 0.9 GB just written
            os.sync()
        else:   # the size it was built with, from the manifest ("... 100x1000")
            shape = json.loads((root / "manifest.json").read_text()).get("run", {}).get(
                "synthetic", "")
            if "x" in shape.rsplit(" ", 1)[-1]:
                args.hosts, args.routes = map(int, shape.rsplit(" ", 1)[-1].split("x"))
        built = time.monotonic() - started
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        seconds, doc, code, cpu = run_explain(root)
        bad = [f for f in doc["findings"] if f["severity"] != "info"]
        result = {"hosts": args.hosts, "routes_per_host": args.routes,
                  "bundle_mib": round(size / 2**20, 1), "build_s": round(built, 2),
                  "explain_s": round(seconds, 2), "explain_cpu_s": round(cpu, 2),
                  "load_average": round(os.getloadavg()[0], 1),
                  "findings": len(doc["findings"]),
                  "warnings_or_errors": len(bad), "exit": code}
        print(f"explain_scale: {args.hosts} hosts x {args.routes} routes "
              f"({result['bundle_mib']} MiB, built in {built:.1f} s): diag explain "
              f"{seconds:.2f} s (CPU {cpu:.2f} s, load average {result['load_average']}), "
              f"{len(doc['findings'])} findings ({len(bad)} warning/error), exit {code}")
        if args.split:
            from diag.analyze import explain
            from diag.pipeline import load_facts, paused_gc

            with paused_gc():             # as the pipeline runs both
                t0, c0 = time.monotonic(), time.process_time()
                facts = load_facts(root)
                t1, c1 = time.monotonic(), time.process_time()
                explain(facts)
                t2, c2 = time.monotonic(), time.process_time()
            result.update(load_facts_s=round(t1 - t0, 2), analyze_s=round(t2 - t1, 2),
                          load_facts_cpu_s=round(c1 - c0, 2), analyze_cpu_s=round(c2 - c1, 2))
            print(f"  in-process: load_facts {t1 - t0:.2f} s (CPU {c1 - c0:.2f} s; parse + "
                  f"tables + model), explain {t2 - t1:.2f} s (CPU {c2 - c1:.2f} s; FIB + "
                  "analyzers + ranking)")
        if args.profile:
            import cProfile
            import pstats

            from diag.pipeline import explain

            prof = cProfile.Profile()
            prof.enable()
            explain(root)
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1) + "\n")
        for f in bad[:5]:
            print(f"  unexpected {f['severity']} {f['code']}: {f['summary'][:200]}",
                  file=sys.stderr)
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
