"""Two real FRR 8.4 routers in network namespaces exchanging VPN, labeled, EVPN and 2-octet-AS
routes, and the capture of their sessions: what tests/decode/test_lab_families.py decodes.

``record(workdir, prefix)`` builds namespaces ``<prefix>-bgpfam-a`` and ``-b`` (``bgpfam-a`` without
a prefix), starts zebra and bgpd in each and tcpdump in B (``-i any``, TCP port 179), waits (polling
B's RIB, with a deadline) until every route below has arrived, saves B's RIB as FRR shows it
(JSON), stops tcpdump, then the daemons by PID, and deletes the namespaces. It returns a
:class:`Recording`. ``teardown(prefix)`` removes what a failed run left.

The routers (A: AS 4200000001, B: AS 65002), one session per link:

* 10.99.0.1-10.99.0.2: VPN-IPv4 and VPN-IPv6 from ``network ... rd ... label ...`` (this kernel
  has no VRF and no MPLS; FRR advertises these static VPN routes all the same), and L2VPN EVPN
  from a bridge ``br100`` with a VXLAN device (VNI 100, local 10.99.0.1): a static FDB entry and
  a neighbour on the bridge's address make the type-2 routes (MAC, and MAC+IP), the VNI the
  type-3 route;
* 10.99.1.1-10.99.1.2: IPv4 labeled unicast only (FRR refuses one neighbour active in both IPv4
  unicast and labeled unicast);
* 10.99.2.1-10.99.2.2: IPv4 unicast, B with ``dont-capability-negotiate``: the session is 2-octet
  both ways. A sends its 4-octet AS as AS_TRANS in AS_PATH plus AS4_PATH; B, which did not
  advertise the capability, acts as a 2-octet (OLD) speaker there and keeps ``23456``. B learns
  the same route over the first session too (IPv4 unicast there as well, preferred by weight)
  and sends it back over this one as ``65002 23456`` plus AS4_PATH; A, a 4-octet (NEW) speaker
  receiving from an OLD one, merges them (RFC 6793 4.2.3; ``allowas-in`` lets A keep a route
  with its own AS, so its RIB shows the merged path). Only that prefix crosses this session:
  FRR 8.4 re-advertises a route learned by labeled unicast as IPv4 unicast with no NEXT_HOP at
  all. That quirk is kept on the first session (B sends 10.60.0.0/24 back to A there): A logs
  "Missing well-known attribute NEXT_HOP" and withdraws it (RFC 7606), which the test compares
  with what diag says of that UPDATE.

``Recording.rib`` holds B's RIB (``RIB_COMMANDS``), per-route details with the labels B received
(``vpn4:RD:PREFIX``, ``vpn6:RD:PREFIX``, ``labeled:PREFIX``) and A's IPv4 unicast RIB
(``a_unicast``).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from diag.lab.system import (ip_batch, netns_add, netns_delete, netns_list, run, spawn,
                             stop_pids, wait_for)

FRR_BIN = Path("/usr/lib/frr")
AS_A, AS_B = 4_200_000_001, 65002
VPN4 = [("10.50.0.0/24", "65001:100", 100), ("10.51.0.0/24", "10.99.0.1:7", 200)]
VPN6 = [("2001:db8:50::/64", "65001:200", 300)]
LABELED = "10.60.0.0/24"
TWO_OCTET = "10.70.0.0/24"
MAC, MAC_IP, IP = "02:00:00:00:aa:01", "02:00:00:00:aa:02", "10.100.0.5"
VNI = 100
RIB_COMMANDS = {"vpn4": "show bgp ipv4 vpn json", "vpn6": "show bgp ipv6 vpn json",
                "labeled": "show bgp ipv4 labeled-unicast json",
                "evpn": "show bgp l2vpn evpn route json", "unicast": "show bgp ipv4 unicast json"}


@dataclass
class Recording:
    pcap: Path
    rib: dict[str, dict] = field(default_factory=dict)     # B's RIB per RIB_COMMANDS key
    logs: dict[str, Path] = field(default_factory=dict)    # "a"/"b" -> bgpd.log (after stop)


def names(prefix: str) -> tuple[str, str]:
    head = f"{prefix}-" if prefix else ""
    return f"{head}bgpfam-a", f"{head}bgpfam-b"


def teardown(prefix: str) -> None:
    """Remove namespaces a failed run left (their processes were stopped by PID, or die with
    them: nothing here outlives its namespace)."""
    for ns in names(prefix):
        if ns in netns_list():
            pids = [int(p) for p in run(["ip", "netns", "pids", ns], check=False).stdout.split()]
            stop_pids([(pid, None) for pid in pids])
            netns_delete(ns)


def _links(a: str, b: str) -> None:
    lines_a = ["link set lo up"]
    lines_b = ["link set lo up"]
    for i in range(3):
        lines_a += [f"link add fa{i} type veth peer name fb{i} netns {b}",
                    f"addr add 10.99.{i}.1/30 dev fa{i}", f"link set fa{i} up"]
        lines_b += [f"addr add 10.99.{i}.2/30 dev fb{i}", f"link set fb{i} up"]
    lines_a += [
        "link add br100 type bridge", "link set br100 addrgenmode none",
        f"link add vxlan{VNI} type vxlan id {VNI} local 10.99.0.1 dstport 4789 nolearning",
        f"link set vxlan{VNI} master br100", "link add ev0 type veth peer name ev1",
        "link set ev0 master br100", "addr add 10.100.0.1/24 dev br100",
        f"link set vxlan{VNI} up", "link set ev0 up", "link set ev1 up", "link set br100 up",
    ]
    ip_batch(a, lines_a)
    ip_batch(b, lines_b)
    run(["ip", "netns", "exec", a, "bridge", "fdb", "add", MAC, "dev", "ev0", "master", "static"])
    run(["ip", "netns", "exec", a, "bridge", "fdb", "add", MAC_IP, "dev", "ev0", "master",
         "static"])
    ip_batch(a, [f"neigh add {IP} lladdr {MAC_IP} dev br100 nud permanent"])


def _bgpd_a() -> str:
    vpn4 = "\n".join(f"  network {p} rd {rd} label {label}" for p, rd, label in VPN4)
    vpn6 = "\n".join(f"  network {p} rd {rd} label {label}" for p, rd, label in VPN6)
    return f"""frr defaults traditional
hostname fam-a
ip prefix-list two-octet seq 5 permit {TWO_OCTET}
!
router bgp {AS_A}
 bgp router-id 10.99.0.1
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 no bgp network import-check
 neighbor 10.99.0.2 remote-as {AS_B}
 neighbor 10.99.1.2 remote-as {AS_B}
 neighbor 10.99.2.2 remote-as {AS_B}
 address-family ipv4 unicast
  network {LABELED}
  network {TWO_OCTET}
  neighbor 10.99.0.2 activate
  neighbor 10.99.0.2 prefix-list two-octet out
  neighbor 10.99.2.2 activate
  neighbor 10.99.2.2 prefix-list two-octet out
  neighbor 10.99.2.2 allowas-in
 exit-address-family
 address-family ipv4 labeled-unicast
  neighbor 10.99.1.2 activate
 exit-address-family
 address-family ipv4 vpn
{vpn4}
  neighbor 10.99.0.2 activate
 exit-address-family
 address-family ipv6 vpn
{vpn6}
  neighbor 10.99.0.2 activate
 exit-address-family
 address-family l2vpn evpn
  neighbor 10.99.0.2 activate
  advertise-all-vni
 exit-address-family
!
"""


def _bgpd_b() -> str:
    return f"""frr defaults traditional
hostname fam-b
ip prefix-list two-octet seq 5 permit {TWO_OCTET}
!
router bgp {AS_B}
 bgp router-id 10.99.0.2
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor 10.99.0.1 remote-as {AS_A}
 neighbor 10.99.1.1 remote-as {AS_A}
 neighbor 10.99.2.1 remote-as {AS_A}
 neighbor 10.99.2.1 dont-capability-negotiate
 address-family ipv4 unicast
  neighbor 10.99.0.1 activate
  neighbor 10.99.0.1 weight 100
  neighbor 10.99.2.1 activate
  neighbor 10.99.2.1 prefix-list two-octet out
 exit-address-family
 address-family ipv4 labeled-unicast
  neighbor 10.99.1.1 activate
 exit-address-family
 address-family ipv4 vpn
  neighbor 10.99.0.1 activate
 exit-address-family
 address-family ipv6 vpn
  neighbor 10.99.0.1 activate
 exit-address-family
 address-family l2vpn evpn
  neighbor 10.99.0.1 activate
 exit-address-family
!
"""


class _Routers:
    """The processes of one recording, stopped by PID whatever happens. FRR's files live in a
    directory of their own under /run that the ``frr`` user can reach (zebra and bgpd drop to
    it; a test's temporary directory is private to root)."""

    def __init__(self, workdir: Path, prefix: str) -> None:
        import tempfile

        self.workdir, self.prefix = workdir, prefix
        self.ns_a, self.ns_b = names(prefix)
        self.procs: list[tuple[str, int, int]] = []      # (name, pid, starttime)
        self.frr_root = Path(tempfile.mkdtemp(dir="/run", prefix=f"{prefix or 'diag'}-bgpfam-"))
        self.frr_root.chmod(0o755)

    def dir(self, ns: str) -> Path:
        return self.frr_root / ns

    def start(self, ns: str, name: str, argv: list[str]) -> None:
        pid, starttime = spawn(["ip", "netns", "exec", ns, *argv],
                               self.workdir / f"{ns}-{name}.out")
        self.procs.append((f"{ns}/{name}", pid, starttime))

    def frr(self, ns: str, bgpd_conf: str) -> None:
        d = self.dir(ns)
        d.mkdir(parents=True)
        (d / "zebra.conf").write_text(f"hostname {ns}\n")
        (d / "bgpd.conf").write_text(bgpd_conf)
        for path in (d, *d.iterdir()):
            shutil.chown(path, "frr", "frr")
        common = ["-z", str(d / "zserv.api"), "--vty_socket", str(d), "-P", "0"]
        self.start(ns, "zebra", [str(FRR_BIN / "zebra"), "-f", str(d / "zebra.conf"),
                                 "-i", str(d / "zebra.pid"), *common,
                                 "--log", f"file:{d / 'zebra.log'}"])
        wait_for((d / "zserv.api").exists, timeout=15, what=f"zebra in {ns}")
        self.start(ns, "bgpd", [str(FRR_BIN / "bgpd"), "-f", str(d / "bgpd.conf"),
                                "-i", str(d / "bgpd.pid"), *common,
                                "--log", f"file:{d / 'bgpd.log'}"])

    def vtysh(self, ns: str, command: str) -> dict:
        out = run(["vtysh", "--vty_socket", str(self.dir(ns)), "-c", command], check=False)
        try:
            return json.loads(out.stdout or "{}")
        except json.JSONDecodeError:
            return {}

    def stop(self, name_prefix: str = "") -> None:
        mine = [(pid, st) for name, pid, st in self.procs if name.startswith(name_prefix)]
        left = stop_pids(mine, grace=2.0, deadline=10.0)
        assert not left, f"still running: {left}"
        for name, pid, _st in self.procs:
            daemon = name.rsplit("/", 1)[-1]
            if daemon in ("zebra", "bgpd"):       # FRR's per-process state (see diag.lab.lab)
                shutil.rmtree(f"/var/tmp/frr/{daemon}.{pid}", ignore_errors=True)
        if not name_prefix:
            for ns in (self.ns_a, self.ns_b):     # the logs, kept beside the capture
                for log in ("zebra.log", "bgpd.log"):
                    if (self.dir(ns) / log).exists():
                        shutil.copy(self.dir(ns) / log, self.workdir / f"{ns}-{log}")
            shutil.rmtree(self.frr_root, ignore_errors=True)


def _arrived(rib: dict[str, dict]) -> bool:
    text = json.dumps(rib)
    wanted = [p for p, _rd, _l in VPN4 + VPN6] + [LABELED, TWO_OCTET, MAC, MAC_IP, IP,
                                                   '"routeType": 3']
    merged_back = any(p.get("peerId") == "10.99.2.2" for p in
                      rib.get("a_unicast", {}).get("routes", {}).get(TWO_OCTET, []))
    return all(w in text for w in wanted) and merged_back


def record(workdir: Path, prefix: str, timeout: float = 90) -> Recording:
    teardown(prefix)
    routers = _Routers(workdir, prefix)
    a, b = routers.ns_a, routers.ns_b
    pcap = workdir / "frr-families.pcap"
    try:
        netns_add(a)
        netns_add(b)
        _links(a, b)
        # --immediate-mode: the exchange lasts milliseconds; without it libpcap hands packets
        # over per ring block (up to a second later) and stopping tcpdump sooner loses them.
        # -B: in immediate mode each ring slot holds a whole snapshot (256 KiB), so the default
        # 2 MiB ring has 8 slots, and on a loaded machine the kernel dropped 7-13 of the burst's
        # ~50 packets (tcpdump's "dropped by kernel"), leaving gaps tshark will not decode past
        routers.start(b, "tcpdump", ["tcpdump", "-i", "any", "--immediate-mode", "-U", "-s",
                                     "0", "-B", "65536", "-Z", "root", "-w", str(pcap),
                                     "tcp", "port", "179"])
        wait_for(lambda: pcap.exists() and pcap.stat().st_size >= 24, timeout=15,
                 what="tcpdump's capture file")
        routers.frr(b, _bgpd_b())
        routers.frr(a, _bgpd_a())
        rib: dict[str, dict] = {}

        def arrived() -> bool:
            rib.update({k: routers.vtysh(b, c) for k, c in RIB_COMMANDS.items()})
            rib["a_unicast"] = routers.vtysh(a, "show bgp ipv4 unicast json")
            return _arrived(rib)

        wait_for(arrived, timeout=timeout, interval=0.5, what="every route in B's RIB")
        for family, routes in (("ipv4", VPN4), ("ipv6", VPN6)):
            for prefix, rd, _label in routes:
                rib[f"vpn{family[-1]}:{rd}:{prefix}"] = routers.vtysh(
                    b, f"show bgp {family} vpn rd {rd} {prefix} json")
        rib[f"labeled:{LABELED}"] = routers.vtysh(
            b, f"show bgp ipv4 labeled-unicast {LABELED} json")
        routers.stop(f"{b}/tcpdump")          # flushes and closes the capture
        said = (workdir / f"{b}-tcpdump.out").read_text()
        if "\n0 packets dropped by kernel" not in said:    # a gap: the comparison means nothing
            raise RuntimeError(f"tcpdump lost packets of the recording: {said!r}")
        return Recording(pcap, dict(rib), {"a": workdir / f"{a}-bgpd.log",
                                           "b": workdir / f"{b}-bgpd.log"})
    finally:
        routers.stop()
        for ns in (a, b):
            netns_delete(ns)
