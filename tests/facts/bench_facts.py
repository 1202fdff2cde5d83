"""Benchmark (not a test): ``load_facts`` on a synthetic bundle of H hosts x R routes.

    python3 tests/facts/bench_facts.py [HOSTS] [ROUTES]     # default 500 x 5000

Each host: ``ip -j -d addr``/``link`` (cluster NIC, pod veth), ``ip -j route show table all`` with
R BGP-learned /32 routes plus default and pod routes, ``gobgp neighbor -j`` and
``gobgp global rib -j`` (its pod CIDR); a router with FRR summary/neighbors/RIB for every node.
The bundle is written with diag.bundle.BundleWriter (the collect format) and read back through
the safe reader, parsers and model inference; prints wall time per stage.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from diag.bundle import BundleWriter


def node_outputs(i: int, routes: int) -> dict[str, bytes]:
    ip, pod = f"10.{i // 250}.{i % 250}.10", f"100.{64 + i // 256}.{i % 256}"
    addr = [{"ifindex": 1, "ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1",
                                                          "prefixlen": 8, "scope": "host"}]},
            {"ifindex": 2, "ifname": "ens3", "addr_info": [{"family": "inet", "local": ip,
                                                            "prefixlen": 24, "scope": "global"}]},
            {"ifindex": 3, "ifname": "podif", "link_netnsid": 1, "linkinfo": {"info_kind": "veth"},
             "addr_info": [{"family": "inet", "local": f"{pod}.1", "prefixlen": 24,
                            "scope": "global"}]}]
    table = [{"dst": "default", "gateway": f"10.{i // 250}.{i % 250}.1", "dev": "ens3", "flags": []},
             {"dst": f"{pod}.0/24", "dev": "podif", "protocol": "kernel", "scope": "link",
              "prefsrc": f"{pod}.1", "flags": []}]
    table += [{"dst": f"172.{16 + r // 65536}.{(r // 256) % 256}.{r % 256}", "nhid": 8,
               "gateway": f"10.{i // 250}.{i % 250}.1", "dev": "ens3", "protocol": "bgp",
               "metric": 20, "flags": []} for r in range(routes)]
    neighbor = [{"conf": {"local_asn": 65001, "neighbor_address": "10.255.0.1", "peer_asn": 65000},
                 "state": {"session_state": 6, "neighbor_address": "10.255.0.1"},
                 "transport": {"local_address": ip}, "timers": {"state": {"uptime": {"seconds": 1}}},
                 "afi_safis": [{"state": {"received": 1, "accepted": 1}}]}]
    rib = {f"{pod}.0/24": [{"nlri": {"prefix": f"{pod}.0/24"}, "best": True,
                            "attrs": [{"type": 1, "value": 2}, {"type": 3, "nexthop": "0.0.0.0"}]}]}
    return {"ip-addr": json.dumps(addr).encode(), "ip-link": json.dumps(addr).encode(),
            "ip-route-v4": json.dumps(table).encode(), "gobgp-neighbor": json.dumps(neighbor).encode(),
            "gobgp-global-rib": json.dumps(rib).encode(),
            "sysctl-net": b"net.ipv4.ip_forward = 1\n"}


def main() -> int:
    hosts = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    routes = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    from diag.facts import load_facts

    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        writer = BundleWriter(Path(tmp) / "b", {"synthetic": True})
        peers = {}
        for i in range(hosts):
            host = f"node{i}"
            writer.set_host(host, reachability="OK")
            for spec, data in node_outputs(i, routes).items():
                writer.add_output(host, {"id": spec, "outcome": "OK", "argv": []}, data)
            peers[f"10.{i // 250}.{i % 250}.10"] = {"remoteAs": 65001, "localAs": 65000,
                                                    "bgpState": "Established",
                                                    "hostLocal": "10.255.0.1"}
        writer.set_host("router", reachability="OK")
        writer.add_output("router", {"id": "frr-bgp-neighbors", "outcome": "OK", "argv": []},
                          json.dumps(peers).encode())
        writer.finish([])
        written = time.monotonic() - started
        started = time.monotonic()
        facts = load_facts(Path(tmp) / "b")
        loaded = time.monotonic() - started
    nodes = sum(1 for h in facts.model.hosts.values() if h.role.value == "node")
    print(f"{hosts} hosts x {routes} routes: {len(facts.tables['routes'])} route rows; "
          f"bundle written in {written:.1f} s; load_facts {loaded:.1f} s "
          f"({nodes} nodes, pod range {facts.model.pod_range.value})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
