#!/usr/bin/env python3
"""Record the lab captures committed in captures/lab/ (root; builds two labs of its own).

    sudo python3 captures/record_lab.py [OUTDIR]      # default: captures/lab

Each capture is tcpdump inside one lab namespace (diag.lab.capture.recording) while a fault is
applied through diag.lab.faults or a daemon restarts; captures/README.md says what each shows.
The labs are named ``caprc`` (cilium, native) and ``caprk`` (calico, vxlan) and removed at the end.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diag.lab import Lab, faults, teardown  # noqa: E402
from diag.lab.capture import recording  # noqa: E402
from diag.lab.system import wait_for  # noqa: E402


def _ping(lab: Lab, src: str, dst: str, count: int = 3) -> None:
    lab.exec_pod(src, ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1",
                       lab.hosts[dst].pod_ip], check=False)


def _until(path: Path, display_filter: str, timeout: float = 15) -> None:
    """Poll the growing capture until tshark finds ``display_filter`` in it."""
    import subprocess

    def seen() -> bool:
        out = subprocess.run(["tshark", "-r", str(path), "-Y", display_filter],
                             capture_output=True, text=True).stdout
        return bool(out.strip())

    wait_for(seen, timeout=timeout, interval=0.3, what=f"{display_filter} in {path.name}")


def _restart_and_wait(lab: Lab, host: str) -> None:
    lab.daemons.restart_bgp(host)
    lab.daemons.wait_established(timeout=40)
    wait_for(lab.daemons.routes_ready, timeout=20, what="routes")


def cilium(out: Path) -> None:
    teardown("caprc")
    lab = Lab.up("caprc", cni="cilium", mode="native")
    try:
        rif = lab.plan.router_nic_for(lab.plan.host("k8s-ctr")).name
        with recording(lab, "router", rif, out / "bgp-frr-gobgp-open-update.pcap", "tcp port 179"):
            _restart_and_wait(lab, "k8s-ctr")
        with recording(lab, "router", rif, out / "bgp-gobgp-bad-peer-as.pcap", "tcp port 179") as p:
            faults.apply(lab, "bgp-bad-peer-as")
            _until(p, "bgp.notify.minor_error_open == 2")
        faults.heal(lab)
        with recording(lab, "router", rif, out / "bgp-frr-hold-timer-expired.pcap",
                       "tcp port 179") as p:
            faults.apply(lab, "bgp-hold-timer-expired")
            _until(p, "bgp.notify.major_error == 4")
        faults.heal(lab)
        with recording(lab, "k8s-ctr", "any", out / "leak-eth0-any-sll2.pcap", "icmp"):
            _ping(lab, "k8s-ctr", "k8s-w0", 2)          # healthy: out eth1 to the router
            faults.apply(lab, "rib-not-in-fib")          # then out eth0, to the sink
            _ping(lab, "k8s-ctr", "k8s-w0", 2)
        faults.heal(lab)
        with recording(lab, "router", rif, out / "arp-unanswered-then-answered.pcap", "arp"):
            faults.apply(lab, "arp-unanswered")
            _ping_lb = ["arping", "-c", "3", "-i", rif, faults.base.lb_ip(lab)]
            lab.exec("router", _ping_lb, check=False)
            faults.heal(lab)
            lab.exec("router", _ping_lb, check=False)
        with recording(lab, "router", rif, out / "arp-multiple-responders.pcap", "arp"):
            faults.apply(lab, "arp-multiple-responders")
        faults.heal(lab)
    finally:
        lab.down()


def calico(out: Path) -> None:
    teardown("caprk")
    lab = Lab.up("caprk", cni="calico", mode="vxlan")
    try:
        rif = lab.plan.router_nic_for(lab.plan.host("k8s-ctr")).name
        with recording(lab, "router", rif, out / "bgp-frr-bird-md5-bad-peer-as.pcap",
                       "tcp port 179") as p:
            _restart_and_wait(lab, "k8s-w1")            # the TCP-MD5 session
            faults.apply(lab, "bgp-bad-peer-as")
            _until(p, "bgp.notify.minor_error_open == 2")
            faults.heal(lab)
        ctr_if = lab.hosts["k8s-ctr"].cluster_iface
        with recording(lab, "k8s-ctr", ctr_if, out / "vxlan-8472-and-port-mismatch.pcap",
                       "udp port 8472 or udp port 4789 or icmp"):
            _ping(lab, "k8s-ctr", "k8s-w0")
            _ping(lab, "k8s-ctr", "k8s-w1")
            faults.apply(lab, "vxlan-port-mismatch")
            _ping(lab, "k8s-ctr", "k8s-w0", 2)
        faults.heal(lab)
    finally:
        lab.down()


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "lab"
    out.mkdir(parents=True, exist_ok=True)
    cilium(out)
    calico(out)
    for path in sorted(out.glob("*.pcap")):
        print(f"{path}  {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
