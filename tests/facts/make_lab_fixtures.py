"""One-off (not CI): build labs with real daemons, collect bundles, save them as test fixtures.

Run as root from the repository root::

    python3 tests/facts/make_lab_fixtures.py [--only cilium-native-default ...]

For each (cni, mode, addressing) it brings a lab up (names ``fxg<n>``), runs pod-to-pod pings and
an ARP probe for an unused address during a short capture, runs the collect command the lab
prints, and writes

- ``tests/fixtures/bundles/<case>.tar.gz``      the bundle archive, as diag collect wrote it
- ``tests/fixtures/bundles/<case>.truth.json``  what the lab knows it built (diag.lab API only:
  hosts, roles, cluster NICs/IPs, pod CIDRs, ASNs, the probed address) — the facts tests' oracle
- ``tests/fixtures/<spec>/<case>--<host>.out``  single command outputs for the parser tests

and, for one lab per CNI, failure outputs (wrong peer AS on one node) for the state vocabulary.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from diag.lab import BgpOptions, Lab

ROOT = Path(__file__).resolve().parents[2]
UNROUTABLE = "203.0.113.9"  # RFC 5737 TEST-NET-3: no lab route covers it (nodes: default route)
FIXTURES = ROOT / "tests" / "fixtures"
CASES = [(cni, mode, addressing) for addressing in ("default", "alt")
         for cni in ("cilium", "calico") for mode in ("native", "vxlan")]

# per-command fixtures copied out of the bundles: (spec id, hosts to take it from)
SPECS = ("ip-addr", "ip-link", "ip-route-v4", "ip-route-v6", "ip-rule-v4", "ip-rule-v6", "ip-neigh",
         "bridge-fdb", "ss-tanpi", "nstat", "sysctl-net", "frr-bgp-summary", "frr-bgp-ipv4-unicast",
         "frr-bgp-neighbors", "frr-ip-route", "gobgp-neighbor", "gobgp-global-rib",
         "bird-protocols-all", "bird-route-all", "ip-version", "ss-version", "frr-version",
         "hostname")


def unused_address(lab: Lab) -> str:
    """An address on the first node subnet that no host holds (a would-be LoadBalancer IP)."""
    ctr = lab.hosts["k8s-ctr"]
    net = ipaddress.ip_interface(next(a for a in ctr.ips
                                      if a.split("/")[0] == ctr.cluster_ip)).network
    taken = {a.split("/")[0] for h in lab.hosts.values() for a in h.ips}
    for host in list(net.hosts())[40:]:
        if str(host) not in taken:
            return str(host)
    raise RuntimeError("no free address")


def truth(lab: Lab, cni: str, mode: str, addressing: str, lb_probe: str) -> dict:
    return {
        "cni": cni, "mode": mode, "addressing": addressing,
        "pod_range": lab.plan.pod_range if hasattr(lab.plan, "pod_range") else None,
        "lb_probe": lb_probe,
        "hosts": {name: {"role": h.role, "cluster_iface": h.cluster_iface,
                         "cluster_ip": h.cluster_ip, "mgmt_iface": h.mgmt_iface, "asn": h.asn,
                         "daemon": h.daemon, "pod_cidr": h.pod_cidr, "pod_ip": h.pod_ip,
                         "ips": list(h.ips)}
                  for name, h in lab.hosts.items()},
    }


def collect(lab: Lab, out: Path, lb_probe: str) -> None:
    nodes = [n for n, h in lab.hosts.items() if h.role == "node"]
    # traffic during the capture: pod pings across the router and within a subnet, an ARP probe
    lab.daemons.spawn("fx/ping1", nodes[0], ["ping", "-c", "60", "-i", "0.3",
                                     lab.hosts[nodes[-1]].pod_ip], pod=True)
    lab.daemons.spawn("fx/ping2", nodes[1], ["ping", "-c", "60", "-i", "0.3",
                                     lab.hosts[nodes[0]].pod_ip], pod=True)
    lab.daemons.spawn("fx/arp", "router", ["ping", "-c", "40", "-i", "0.5", "-W", "1", lb_probe])
    # probes: a remote pod (routed) and a documentation address (unroutable on the router)
    probes = ["--probe", lab.hosts[nodes[-1]].pod_ip, "--probe", UNROUTABLE]
    argv = lab.collect_command().split() + probes + ["-o", str(out), "--capture", "4", "--filter",
                                            "tcp port 179 or udp port 8472 or arp or icmp",
                                            "--max-bytes", "200000"]
    subprocess.run(argv, check=False, stdout=subprocess.DEVNULL)
    for key in ("fx/ping1", "fx/ping2", "fx/arp"):
        lab.daemons.stop(key)


def archive(bundle: Path, destination: Path) -> None:
    with tarfile.open(destination, "w:gz") as tar:
        for path in sorted(bundle.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                info = tar.gettarinfo(str(path), arcname=f"{destination.name[:-7]}/"
                                      f"{path.relative_to(bundle).as_posix()}")
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                with open(path, "rb") as handle:
                    tar.addfile(info, handle)


def copy_specs(bundle: Path, case: str) -> None:
    for host_dir in sorted((bundle / "hosts").iterdir()):
        for spec in SPECS:
            src = host_dir / f"{spec}.out"
            if src.exists() and src.stat().st_size:
                dst = FIXTURES / spec / f"{case}--{host_dir.name}.out"
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
        for src in sorted(host_dir.glob("gobgp-adj-in-*.out")):
            dst = FIXTURES / "gobgp-adj-in" / f"{case}--{host_dir.name}--{src.name[13:]}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)


def failure_outputs(lab: Lab, cni: str, case: str) -> None:
    """Wrong peer AS on k8s-w0's side; save the states each daemon then reports."""
    lab.daemons.restart_bgp("k8s-w0", BgpOptions(md5_password=lab.files.md5_password,
                                         peer_as_override={"k8s-w0": 65123}))
    time.sleep(6)  # one-off generator: let the session fail at least once (Notification sent)
    outputs = {"frr-bgp-summary": ["vtysh", "-c", "show bgp summary json"],
               "frr-bgp-neighbors": ["vtysh", "-c", "show bgp neighbors json"]}
    for spec, argv in outputs.items():
        text = lab.exec("router", argv).stdout
        (FIXTURES / spec / f"{case}-badpeeras--router.out").write_text(text)
    if cni == "cilium":
        text = lab.exec("k8s-w0", ["gobgp", "neighbor", "-j"]).stdout
        (FIXTURES / "gobgp-neighbor" / f"{case}-badpeeras--k8s-w0.out").write_text(text)
    else:
        text = lab.exec("k8s-w0", ["birdc", "show", "protocols", "all"]).stdout
        (FIXTURES / "bird-protocols-all" / f"{case}-badpeeras--k8s-w0.out").write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    (FIXTURES / "bundles").mkdir(parents=True, exist_ok=True)
    for n, (cni, mode, addressing) in enumerate(CASES):
        case = f"{cni}-{mode}-{addressing}"
        if args.only and case not in args.only:
            continue
        name = f"fxg{n}"
        started = time.monotonic()
        lab = Lab.up(name, cni=cni, mode=mode, addressing=addressing)
        try:
            lb_probe = unused_address(lab)
            work = Path(tempfile.mkdtemp(prefix="fx-"))
            bundle = work / case
            collect(lab, bundle, lb_probe)
            archive(bundle, FIXTURES / "bundles" / f"{case}.tar.gz")
            (FIXTURES / "bundles" / f"{case}.truth.json").write_text(
                json.dumps(truth(lab, cni, mode, addressing, lb_probe), indent=1) + "\n")
            copy_specs(bundle, case)
            if mode == "native" and addressing == "default":
                failure_outputs(lab, cni, case)
            shutil.rmtree(work)
        finally:
            lab.down()
        print(f"{case}: {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
