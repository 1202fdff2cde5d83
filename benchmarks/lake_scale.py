"""Fleet-scale explain from the evidence lake: N hosts x M routes written straight into a lake.

    python3 benchmarks/lake_scale.py                          # 5,000 hosts x 5,000 routes
    python3 benchmarks/lake_scale.py --hosts 500 --routes 5000 --keep /tmp/lake500
    python3 benchmarks/lake_scale.py --lake /tmp/lake500      # time an existing lake again
    python3 benchmarks/lake_scale.py --hosts 1000 --in-memory # the other design, measured

The cluster is :mod:`benchmarks.explain_scale`'s (a router and N-1 Cilium-like nodes, each
kernel holding the other nodes' pod CIDRs and service /32s via the router, the same prefixes as
GoBGP best paths), but the rows are written column-wise straight into the lake's Parquet files
(:func:`write`): building and exporting a 0.9 GB bundle per 500 hosts would take longer than
the analysis. ``tests/lake/test_fleet.py`` checks, at a few hosts, that these rows are the rows
``diag facts --export`` makes of the bundle ``explain_scale.build`` writes for the same cluster.
With more than 4,000 nodes the pod CIDRs come from 100.64.0.0/10 (172.16.0.0/12 holds 4,096
/24s).

Prints the write time, then the time of ``diag explain LAKE`` (a subprocess, as an operator
runs it: its wall and CPU time and its peak memory) and where the time goes (``--split``: the
analysis in-process, stage by stage); exits 1 if the healthy cluster gets any warning or error.
``--in-memory`` times the alternative design instead: the lake's tables read into pandas as
``load_facts`` makes them and the existing analyzers run over them (docs/explain.md, "Fleet
scale").
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import explain_scale as es

WIDE_POD_RANGE = ipaddress.ip_network("100.64.0.0/10")


def _dict_column(codes, names: list):
    import numpy as np
    import pyarrow as pa

    codes = np.asarray(codes, dtype=np.int32)
    mask = codes < 0
    return pa.DictionaryArray.from_arrays(
        pa.array(codes, type=pa.int32(), mask=mask if mask.any() else None),
        pa.array(names, type=pa.string()))


def _hops(gateway: str | None, dev: str) -> str:
    return json.dumps([{"gateway": gateway, "dev": dev, "weight": 1, "flags": []}],
                      separators=(",", ":"))


class _Rows:
    """Rows of one table as columns of dictionary codes, appended block by block (numpy)."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self.names: dict[str, dict[str, int]] = {c: {} for c in columns}
        self.parts: dict[str, list] = {c: [] for c in columns}
        self.plain: dict[str, list] = {}

    def code(self, column: str, value) -> int:
        if value is None:
            return -1
        names = self.names[column]
        code = names.get(value)
        if code is None:
            code = names[value] = len(names)
        return code

    def add(self, n: int, **values) -> None:
        """``n`` rows: each column a single value (repeated) or a numpy array of codes made
        with :meth:`code` (``codes=`` prefix), or plain values for typed columns."""
        import numpy as np

        for column in self.columns:
            value = values.get(column)
            if isinstance(value, np.ndarray):
                self.parts[column].append(value.astype(np.int32))
            else:
                self.parts[column].append(np.full(n, self.code(column, value), dtype=np.int32))

    def table(self, typed: dict[str, str]):
        import numpy as np
        import pyarrow as pa

        arrays = {}
        for column in self.columns:
            codes = np.concatenate(self.parts[column]) if self.parts[column] else \
                np.zeros(0, np.int32)
            names = list(self.names[column])
            kind = typed.get(column)
            if kind is None:
                arrays[column] = _dict_column(codes, names)
            else:                         # a typed column: its few distinct values
                values = np.array([None] + [_typed(v, kind) for v in names], dtype=object)
                arrays[column] = pa.array(values[codes + 1], type={
                    "int64": pa.int64(), "bool": pa.bool_(), "float64": pa.float64()}[kind],
                    from_pandas=True)
            self.parts[column] = []
        return pa.table(arrays)


def _typed(value, kind):
    if kind == "bool":
        return value == "True"
    return int(value) if kind == "int64" else float(value)


def write(directory: Path, hosts: int, routes: int, break_node: int | None = None) -> str:
    """The lake of the cluster ``explain_scale.build(hosts, routes, break_node)`` describes;
    returns the bundle id."""
    import hashlib

    import numpy as np

    from diag import lake

    if hosts - 1 > 4000:
        es.POD_RANGE = WIDE_POD_RANGE
    n_extra = max(0, routes - (hosts - 1))
    names = ["router"] + [f"node-{i:04d}" for i in range(1, hosts)]
    pods = [es.pod_cidr(i) for i in range(hosts)]         # pods[0] unused (the router)
    extras = [f"{es.SERVICES.network_address + k}/32" for k in range(n_extra)]
    route_cols = [c for c, _ in lake.SCHEMA["routes"] if c != "bundle"]
    r = _Rows(route_cols)
    path_cols = [c for c, _ in lake.SCHEMA["bgp_paths"] if c != "bundle"]
    p = _Rows(path_cols)
    # codes of the per-prefix columns, made once: pod CIDR j and service k
    pod_dst = np.array([r.code("dst", pods[j]) for j in range(hosts)])
    extra_dst = np.array([r.code("dst", e) for e in extras], dtype=np.int64)
    pod_prefix = np.array([p.code("prefix", pods[j]) for j in range(hosts)])
    extra_prefix = np.array([p.code("prefix", e) for e in extras], dtype=np.int64)
    common = {"source": "ip-route-v4", "phase": "main", "family": "inet", "ecmp": "False",
              "flags": "[]"}
    via_router = dict(common, table="main", type="unicast", gateway=es.ROUTER_IP, dev="eth1",
                      nexthops=_hops(es.ROUTER_IP, "eth1"), protocol="bgp", metric="20",
                      scope="universe")
    for i, host in enumerate(names):
        if i == 0:
            r.add(1, host=host, **dict(common, table="main", type="unicast", dst="10.0.0.0/16",
                                       dev="eth1", nexthops=_hops(None, "eth1"),
                                       protocol="kernel", scope="link", prefsrc=es.ROUTER_IP))
            for j in range(1, hosts):
                ip = es.node_ip(j)
                r.add(1, host=host, **dict(via_router, dst=pods[j], gateway=ip,
                                           nexthops=_hops(ip, "eth1")))
            r.add(len(extras), host=host, dst=extra_dst, **dict(
                common, table="main", type="unicast", dev="lo", nexthops=_hops(None, "lo"),
                protocol="static", scope="universe"))
            r.add(1, host=host, **dict(common, table="local", type="local",
                                       dst=f"{es.ROUTER_IP}/32", dev="eth1",
                                       nexthops=_hops(None, "eth1"), protocol="kernel",
                                       scope="host", prefsrc=es.ROUTER_IP))
            continue
        node, mgmt = es.node_ip(i), es.mgmt_ip(i)
        own = ipaddress.ip_network(pods[i])
        r.add(1, host=host, **dict(common, table="main", type="unicast", dst="0.0.0.0/0",
                                   gateway="10.128.0.1", dev="eth0",
                                   nexthops=_hops("10.128.0.1", "eth0"), protocol="boot",
                                   scope="universe"))
        r.add(1, host=host, **dict(common, table="main", type="unicast", dst="10.128.0.0/16",
                                   dev="eth0", nexthops=_hops(None, "eth0"), protocol="kernel",
                                   scope="link", prefsrc=mgmt))
        r.add(1, host=host, **dict(common, table="main", type="unicast", dst="10.0.0.0/16",
                                   dev="eth1", nexthops=_hops(None, "eth1"), protocol="kernel",
                                   scope="link", prefsrc=node))
        r.add(1, host=host, **dict(common, table="main", type="unicast", dst=pods[i],
                                   dev="lxc_pod", nexthops=_hops(None, "lxc_pod"),
                                   protocol="kernel", scope="link",
                                   prefsrc=str(own.network_address + 1)))
        others = np.array([j for j in range(1, hosts) if j != i], dtype=np.int64)
        if i == break_node:
            others = others[others != i % (hosts - 1) + 1]
        r.add(len(others), host=host, dst=pod_dst[others], **via_router)
        r.add(len(extras), host=host, dst=extra_dst, **via_router)
        for address, dev in ((node, "eth1"), (mgmt, "eth0")):
            r.add(1, host=host, **dict(common, table="local", type="local", dst=f"{address}/32",
                                       dev=dev, nexthops=_hops(None, dev), protocol="kernel",
                                       scope="host", prefsrc=address))
        path = {"source": "gobgp-global-rib", "phase": "main", "daemon": "GOBGP", "rib": "loc",
                "origin": "INCOMPLETE", "best": "True", "valid": "True", "stale": "False"}
        p.add(1, host=host, prefix=pods[i], nexthop="0.0.0.0", as_path="[]", as_path_str="",
              local="True", **path)
        learned = dict(path, peer=es.ROUTER_IP, nexthop=es.ROUTER_IP, as_path="[65000,65001]",
                       as_path_str="65000 65001", local="False")
        every = np.array([j for j in range(1, hosts) if j != i], dtype=np.int64)
        p.add(len(every), host=host, prefix=pod_prefix[every], **learned)
        p.add(len(extras), host=host, prefix=extra_prefix, **learned)
    typed = {c: t for c, t in lake.SCHEMA["routes"] if t in ("int64", "bool", "float64")}
    tables = {"routes": r.table(typed)}
    typed = {c: t for c, t in lake.SCHEMA["bgp_paths"] if t in ("int64", "bool", "float64")}
    tables["bgp_paths"] = p.table(typed)
    tables.update(_small_tables(names, pods))
    ident = hashlib.sha256(f"lake_scale {hosts}x{routes} {break_node}".encode()).hexdigest()
    lake.append(directory, ident, tables, {"source": f"benchmarks/lake_scale.py {hosts}x{routes}",
                                           "kind": "bundle", "status": "complete",
                                           "started": es.STAMP, "hosts": hosts})
    return ident


def _small_tables(names: list[str], pods: list[str]) -> dict:
    """rules, addresses, interfaces, sysctls, the model: a few rows per host, as records."""
    import pandas as pd

    rules, addresses, interfaces, sysctls, model = [], [], [], [], []
    for i, host in enumerate(names):
        router = i == 0
        for priority, table in ((0, "local"), (32766, "main"), (32767, "default")):
            rules.append({"host": host, "source": "ip-rule-v4", "phase": "main",
                          "priority": priority, "family": "inet", "src": "all", "dst": "all",
                          "table": table, "action": "lookup", "not_": False, "l3mdev": False})
        cluster = es.ROUTER_IP if router else es.node_ip(i)
        addrs = [("lo", 1, "127.0.0.1", 8, "host"), ("eth1", 2, cluster, 16, "global")]
        if not router:
            pod = ipaddress.ip_network(pods[i])
            addrs += [("eth0", 3, es.mgmt_ip(i), 16, "global"),
                      ("lxc_pod", 4, str(pod.network_address + 1), 24, "global")]
        for ifname, index, address, plen, scope in addrs:
            net = ipaddress.ip_network(f"{address}/{plen}", strict=False)
            addresses.append({"host": host, "source": "ip-addr", "phase": "main",
                              "ifindex": index, "ifname": ifname, "family": "inet",
                              "address": address, "prefixlen": plen, "network": str(net),
                              "scope": scope, "secondary": False})
            interfaces.append({"host": host, "source": "ip-link", "phase": "main",
                               "ifindex": index, "ifname": ifname,
                               "kind": None if ifname == "lo" else "veth",
                               "mtu": 65536 if ifname == "lo" else 1500,
                               "operstate": "UNKNOWN" if ifname == "lo" else "UP",
                               "up": True, "lower_up": True})
        sysctls.append({"host": host, "source": "sysctl-net", "phase": "main",
                        "key": "net.ipv4.ip_forward", "value": "1", "family": "ipv4",
                        "name": "ip_forward"})
        model.append({
            "host": host, "role": "router" if router else "node",
            "role_how": "declared in the inventory (role)" if router else
            "has a pod CIDR (bgp-origination)",
            "role_source": "declared" if router else "bgp-origination",
            "node_ip": cluster, "node_ip_source": "bgp-session", "cluster_iface": "eth1",
            "cluster_iface_source": "node-ip", "default_iface": None if router else "eth0",
            "default_iface_source": "none" if router else "route",
            "pod_cidr": None if router else pods[i],
            "pod_cidr_source": "none" if router else "bgp-origination",
            "asn": None if router else 65001, "asn_source": "none" if router else "bgp-session",
            "peering_ips": [cluster], "forwarding": True,
            "daemons": [] if router else ["GOBGP"]})
    nodes = [ipaddress.ip_network(pod) for pod in pods[1:]]
    cover = nodes[0]
    while not all(n.subnet_of(cover) for n in nodes):
        cover = cover.supernet()
    cluster = [{"host": None, "pod_range": str(cover), "pod_range_source": "summary",
                "lb_ips": [], "lb_ips_source": "arp", "notes": []}]
    return {"rules": pd.DataFrame(rules), "addresses": pd.DataFrame(addresses),
            "interfaces": pd.DataFrame(interfaces), "sysctls": pd.DataFrame(sysctls),
            "model_hosts": pd.DataFrame(model), "model_cluster": pd.DataFrame(cluster)}


def run_explain(directory: Path) -> dict:
    """``diag explain LAKE --format json`` as a subprocess: wall, CPU, peak memory (its own:
    the child reports ``VmHWM`` itself — ``ru_maxrss`` of a child started by a process that
    holds the writer's memory counts that memory too)."""
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    code = ("import atexit, sys; from diag.cli import main; "
            "atexit.register(lambda: sys.stderr.write(next(l for l in open('/proc/self/status') "
            "if l.startswith('VmHWM')))); sys.argv = ['diag', 'explain', sys.argv[1], "
            "'--format', 'json']; main()")
    proc = subprocess.run([sys.executable, "-c", code, str(directory)], check=False, capture_output=True,
                          text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"diag explain failed ({proc.returncode}): {proc.stderr[-2000:]}")
    hwm = next((line.split()[1] for line in proc.stderr.splitlines()
                if line.startswith("VmHWM")), "0")
    return {"explain_s": round(time.monotonic() - started, 2),
            "explain_cpu_s": round(after.ru_utime + after.ru_stime
                                   - before.ru_utime - before.ru_stime, 2),
            "peak_rss_mib": round(int(hwm) / 1024),
            "doc": json.loads(proc.stdout)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=5000)
    ap.add_argument("--routes", type=int, default=5000)
    ap.add_argument("--keep", type=Path, help="write the lake here and keep it")
    ap.add_argument("--lake", type=Path, help="time an existing lake (from --keep)")
    ap.add_argument("--split", action="store_true", help="also the in-process stage times")
    ap.add_argument("--in-memory", action="store_true", help="time the alternative: the lake "
                    "read into pandas tables and the existing analyzers")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lake-scale-") as tmp:
        directory = args.lake or args.keep or Path(tmp) / "lake"
        result: dict = {"hosts": args.hosts, "routes_per_host": args.routes}
        if not args.lake:
            started = time.monotonic()
            write(directory, args.hosts, args.routes)
            result["write_s"] = round(time.monotonic() - started, 2)
            os.sync()
        result["lake_mib"] = round(sum(f.stat().st_size for f in directory.rglob("*.parquet"))
                                   / 2**20, 1)
        if args.in_memory:
            result.update(_in_memory(directory))
        else:
            run = run_explain(directory)
            doc = run.pop("doc")
            bad = [f for f in doc["findings"] if f["severity"] != "info"]
            result.update(run, findings=len(doc["findings"]), warnings_or_errors=len(bad))
        if args.split:
            result["stages"] = _stages(directory)
        result["load_average"] = round(os.getloadavg()[0], 1)
        print(json.dumps(result, indent=1))
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        return 1 if result.get("warnings_or_errors") else 0


def _stages(directory: Path) -> dict:
    """The analysis in a fresh process (this one may hold the writer's memory), stage by
    stage: seconds, CPU seconds (all threads) and the peak RSS so far."""
    code = ("import json, sys; from diag.pipeline import explain_lake; t = {}; "
            f"explain_lake({str(directory)!r}, timings=t); print(json.dumps(t))")
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads(proc.stdout)


def _in_memory(directory: Path) -> dict:
    """The other design: every table the routing analyzers read, from the lake into pandas as
    the facts have them, then ``build_fib`` and ``routing.analyze`` as ``diag explain`` runs
    them. Run in this process: peak memory from ``ru_maxrss``."""
    import gc

    from diag import lake
    from diag.analyze import routing
    from diag.analyze.fib import build_fib
    from diag.facts.export import model_from_rows

    gc.disable()
    (ident,) = lake.bundles(directory)
    t0, c0 = time.monotonic(), time.process_time()
    reader = lake.LakeBundle(directory, ident)
    tables = {name: reader.frame(name) for name in
              ("routes", "rules", "addresses", "neighbors", "fdb", "interfaces", "sysctls",
               "bgp_paths", "route_gets", "packets")}
    model = model_from_rows(reader.frame("model_hosts").to_dict("records"),
                            reader.frame("model_cluster").to_dict("records"))
    t1, c1 = time.monotonic(), time.process_time()
    fib = build_fib(tables)
    findings, _checks = routing.analyze(tables, model, fib)
    t2, c2 = time.monotonic(), time.process_time()
    return {"design": "lake -> pandas tables -> existing analyzers",
            "read_s": round(t1 - t0, 2), "read_cpu_s": round(c1 - c0, 2),
            "analyze_s": round(t2 - t1, 2), "analyze_cpu_s": round(c2 - c1, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "findings": len(findings)}


if __name__ == "__main__":
    sys.exit(main())
