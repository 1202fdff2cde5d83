"""Findings that point the right way, on real lab evidence: each test changes a running lab the
way an operator or a fault would (FRR/BIRD/GoBGP commands, nftables, kernel routes), collects a
bundle with the command the lab printed (capture included; for the events that must be in the
capture, the change is made once tcpdump runs in the router's namespace), undoes the change and
waits until the lab is healthy again, then asks explain:

- a hold-timer expiry while the reconnects stay half-open is the consequence of
  BGP_TRANSPORT_BLOCKED, which ranks first;
- a Cease sent by an operator's action is info when the session comes back (BGP_SESSION_RESET),
  an error while it stays down; a Cease sent by a fault (maximum prefixes) is a fault;
- a by-design AS path loop (Cilium's GoBGP installs no routes) never outranks the missing route
  and the leak: with no covering route, the leak is the first finding;
- a ToR that originates its own LAN prefix is a router, not a node with that pod CIDR.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diag.analyze import explain
from diag.facts import load_facts
from tests.analyze.test_lab_fault_table import check_evidence

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


# --- helpers ------------------------------------------------------------------------------------

def _listing(result) -> str:
    return "\n".join(f"{f.severity} {f.code} <- {f.caused_by}: {f.summary}"
                     for f in result.findings)


def _capturing(lab) -> bool:
    """tcpdump (the collection's capture) runs in the router's namespace."""
    proc = subprocess.run(["ip", "netns", "pids", lab.netns(lab.plan.router.name)],
                          capture_output=True, text=True)
    for pid in proc.stdout.split():
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "tcpdump":
                return True
        except OSError:
            continue
    return False


def _wait(predicate, timeout: float, what: str, seen=None):
    """Poll ``predicate`` until true; on time-out say what ``seen()`` (if given) shows then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}"
                         + (f"; last seen: {seen()}" if seen is not None else ""))


def _collect(labs, up, name: str, capture: str = "3s", during=None) -> Path:
    """The lab's own collect command into the store's directory; ``during()`` runs once the
    capture is running."""
    out = labs.tmp / f"{up.name}-{name}"
    argv = [sys.executable, "-m", "diag", *up.collect_argv[1:], "--capture", capture,
            "-o", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO)
    try:
        if during is not None:
            _wait(lambda: _capturing(up.lab) or proc.poll() is not None, 60, "the capture")
            assert proc.poll() is None, "the collection ended before its capture ran"
            time.sleep(0.5)
            during()
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (0, 3), f"{argv} -> {proc.returncode}\n{stdout[-800:]}\n{stderr[-800:]}"
    return out


def _half_open(lab, host: str) -> list[str]:
    from diag.lab.faults import probes

    return probes.half_open_179(lab, host)


def _lab_half_open(lab) -> dict[str, list[str]]:
    from diag.lab.faults import probes

    return probes.lab_half_open_179(lab)


def _healthy(lab, timeout: float = 90) -> None:
    """Every session Established, the routes back, and no handshake on 179 left half-open
    (a router's SYN-RECV lingers up to a minute after a block is lifted: the next test's
    evidence must not inherit it)."""
    from diag.lab.faults import probes

    _wait(lambda: probes.all_established(lab) and lab.daemons.routes_ready()
          and not _lab_half_open(lab), timeout,
          "every session Established, the routes back and no half-open handshake on 179",
          seen=lambda: (probes.all_established(lab), _lab_half_open(lab)))


def _router_peer(lab, node_ip: str) -> dict:
    from diag.lab.faults import probes

    return probes.frr_neighbor(lab, node_ip)


def _nft(lab, host: str, rules: str | None) -> None:
    ns = ["ip", "netns", "exec", lab.netns(host), "nft"]
    if rules is None:
        subprocess.run([*ns, "delete", "table", "inet", "fi_causes"], capture_output=True)
    else:
        subprocess.run([*ns, "-f", "-"], input=rules, text=True, check=True,
                       capture_output=True)


def _first_root(result):
    first = result.findings[0]
    assert first.caused_by is None, _listing(result)
    return first


# --- hold timer behind a blocked transport ------------------------------------------------------

@pytest.mark.parametrize("cni,mode", [("calico", "native")])
def test_hold_timer_expiry_is_the_consequence_of_a_blocked_transport(labs, cni, mode):
    """nftables on k8s-ctr drops TCP 179 both ways and the established session is left alone:
    the hold timers expire (the keepalives are the first packets lost), then every reconnect
    stays half-open. The root cause is the blocked transport; the expiry is its consequence."""
    from diag.lab import faults
    from diag.lab.faults.base import roles

    up = labs.running(cni, mode)
    lab = up.lab
    faults.heal(lab)
    _healthy(lab)
    node = roles(lab).node
    _nft(lab, node.name, "table inet fi_causes {\n chain input {\n"
         "  type filter hook input priority 0;\n"
         "  tcp dport 179 drop\n  tcp sport 179 drop\n }\n}\n")
    try:
        def observed() -> tuple[dict, dict]:
            peer = _router_peer(lab, node.ip)
            return ({k: peer.get(k) for k in ("bgpState", "lastNotificationReason",
                                              "lastResetDueTo", "lastErrorCodeSubcode")},
                    {h: _half_open(lab, h) for h in (node.name, lab.plan.router.name)})

        def expired_and_half_open():
            said, half = observed()
            down = said["bgpState"] != "Established"
            return down and ("Hold Timer" in json.dumps(said) or "0400" in json.dumps(said)) \
                and any(half.values())
        _wait(expired_and_half_open, 90, "the hold timer to expire and the reconnects to hang",
              seen=observed)
        bundle = _collect(labs, up, "hold-behind-blocked")
    finally:
        _nft(lab, node.name, None)
    _healthy(lab)

    result = explain(load_facts(bundle))
    listing = _listing(result)
    first = _first_root(result)
    assert first.code == "BGP_TRANSPORT_BLOCKED" and first.severity == "error", listing
    assert "hold timer expired" in first.summary, first
    hold = [f for f in result.findings if f.code == "BGP_HOLD_TIMER_EXPIRED"]
    assert hold and all(f.caused_by == "BGP_TRANSPORT_BLOCKED" for f in hold), listing
    assert result.findings.index(hold[0]) > 0
    assert not check_evidence(bundle, first), check_evidence(bundle, first)
    # every SYN-SENT/SYN-RECV line it cites is in that host's ss output
    assert any("SYN-" in e.value for e in first.evidence), first.evidence


@pytest.mark.parametrize("cni,mode", [("calico", "native")])
def test_healthy_waits_for_a_half_open_handshake_to_clear(labs, cni, mode):
    """The BGP faults' healthy state (what `diag lab heal` and the next `diag lab fault` wait
    for) is not reached while a handshake on :179 is half-open: one is made on purpose (k8s-ctr
    connects to the router's FRR and nftables drops the SYN-ACK; the session stays
    Established), the probe says not healthy; once the SYN-ACK gets through (k8s-ctr answers RST,
    its socket gone) the probe says healthy again."""
    from diag.lab import faults
    from diag.lab.faults import probes
    from diag.lab.faults.base import roles

    up = labs.running(cni, mode)
    lab = up.lab
    faults.heal(lab)
    _healthy(lab)
    healthy = faults.FAULTS["bgp-transport-blocked"].healthy
    node = roles(lab).node
    _nft(lab, node.name, "table inet fi_causes {\n chain input {\n"
         "  type filter hook input priority 0;\n"
         "  tcp sport 179 tcp flags & (syn | ack) == syn | ack drop\n }\n}\n")
    try:
        subprocess.run(["ip", "netns", "exec", lab.netns(node.name), "timeout", "2", "bash",
                        "-c", f"exec 3<>/dev/tcp/{node.gateway}/179"], capture_output=True)
        router_half = _wait(lambda: [line for line in _half_open(lab, lab.plan.router.name)
                                     if f" {node.ip}:" in f" {line}"], 10,
                            "the router's SYN-RECV of k8s-ctr's handshake",
                            seen=lambda: _lab_half_open(lab))
        assert probes.all_established(lab), "the established sessions were touched"
        assert healthy(lab) is None, (router_half, healthy(lab))
    finally:
        _nft(lab, node.name, None)
    said = _wait(lambda: healthy(lab), 90, "healthy once the SYN-ACK gets through",
                 seen=lambda: _lab_half_open(lab))
    assert "no TCP handshake on :179 half-open" in said and not _lab_half_open(lab)


# --- Cease: operator or fault -------------------------------------------------------------------

def _tshark_notifications(pcap: Path) -> list[tuple[int, int]]:
    out = subprocess.run(["tshark", "-n", "-r", str(pcap), "-Y", "bgp.type == 3", "-T", "fields",
                          "-e", "bgp.notify.major_error", "-e", "bgp.notify.minor_error_cease"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    found = []
    for line in out.splitlines():
        major, _, minor = line.partition("\t")
        if major:
            found.append((int(major.split(",")[0]), int(minor.split(",")[0] or 0)))
    return found


def _router_capture(bundle: Path) -> Path:
    return bundle / "hosts" / "router" / "capture.pcap"


@pytest.mark.parametrize("cni,mode", [("calico", "native")])
def test_operator_reset_that_heals_is_info(labs, cni, mode):
    """`clear bgp ADDR` on the router while the capture runs: FRR sends Cease 6/4
    (Administrative Reset), BIRD reconnects at once. An operator's action that healed: info,
    and nothing above info."""
    from diag.lab import faults
    from diag.lab.faults.base import roles

    up = labs.running(cni, mode)
    lab = up.lab
    faults.heal(lab)
    _healthy(lab)
    node = roles(lab).node
    bundle = _collect(labs, up, "operator-reset", capture="8s",
                      during=lambda: lab.daemons.vtysh(f"clear bgp {node.ip}"))
    _healthy(lab)

    assert (6, 4) in _tshark_notifications(_router_capture(bundle))
    result = explain(load_facts(bundle))
    listing = _listing(result)
    resets = [f for f in result.findings if f.code == "BGP_SESSION_RESET"]
    assert resets and all(f.severity == "info" for f in resets), listing
    assert any("Administrative Reset" in f.summary and "operator" in f.summary
               for f in resets), listing
    assert not [f for f in result.findings if f.severity != "info"], listing
    for f in resets:
        assert not check_evidence(bundle, f), check_evidence(bundle, f)


@pytest.mark.parametrize("cni,mode", [("calico", "native")])
def test_operator_shutdown_that_stays_down_is_an_error(labs, cni, mode):
    """`neighbor ADDR shutdown` on the router: Cease 6/2 and the session stays down to the end
    of the evidence — an error that says an operator did it and how to undo it. Twice: while
    the capture runs (the daemons, asked before the capture, still said Established: the
    capture is the later evidence), and before the collection (the daemons say it), that time
    with TCP 179 dropped on k8s-ctr as well, so that k8s-ctr's reconnects leave handshakes
    half-open: the shutdown FRR reports (``Idle (Admin)``) still decides, and the half-open
    handshakes are told in the finding's note, not made the cause."""
    from diag.lab import faults
    from diag.lab.faults.base import roles

    up = labs.running(cni, mode)
    lab = up.lab
    faults.heal(lab)
    _healthy(lab)
    node = roles(lab).node
    asn = lab.plan.router.asn

    def shut(undo: bool = False):
        lab.daemons.vtysh("conf t", f"router bgp {asn}",
                          f"{'no ' if undo else ''}neighbor {node.ip} shutdown")
    try:
        during = _collect(labs, up, "operator-shutdown", capture="4s", during=shut)
    finally:
        shut(undo=True)
    _healthy(lab)
    shut()
    try:
        _wait(lambda: "Idle" in str(_router_peer(lab, node.ip).get("bgpState")), 30,
              "the router's session to be Idle")
        _nft(lab, node.name, "table inet fi_causes {\n chain input {\n"
             "  type filter hook input priority 0;\n  tcp sport 179 drop\n }\n}\n")
        _wait(lambda: _half_open(lab, lab.plan.router.name) and _half_open(lab, node.name), 30,
              "k8s-ctr's reconnects to stay half-open",
              seen=lambda: _lab_half_open(lab))
        before = _collect(labs, up, "operator-shutdown-before")
    finally:
        _nft(lab, node.name, None)
        shut(undo=True)
    _healthy(lab)

    assert (6, 2) in _tshark_notifications(_router_capture(during))
    for bundle, source in ((during, "pcap"), (before, "frr")):
        result = explain(load_facts(bundle))
        listing = _listing(result)
        first = _first_root(result)
        assert first.code == "BGP_SESSION_NOT_ESTABLISHED" and first.severity == "error", listing
        assert "Administrative Shutdown" in first.summary and "operator" in first.summary, first
        assert source in first.confidence.sources, first
        assert any(f"no neighbor {node.ip} shutdown" in line for line in first.fix), first.fix
        assert not [f for f in result.findings if f.code == "BGP_SESSION_RESET"
                    and f.severity != "info"], listing
        assert not check_evidence(bundle, first), check_evidence(bundle, first)
    # the daemons' view: the half-open handshakes are told, not the cause; the routes the
    # session no longer brings are its consequences
    result = explain(load_facts(before))
    first = _first_root(result)
    assert "half-open" in first.note and any("SYN-" in e.value for e in first.evidence), first
    assert not [f for f in result.findings if f.code == "BGP_TRANSPORT_BLOCKED"], \
        _listing(result)
    leaks = [f for f in result.findings if f.code == "EGRESS_LEAK_DEFAULT_ROUTE"]
    assert leaks and all(f.caused_by == "BGP_SESSION_NOT_ESTABLISHED" for f in leaks), \
        _listing(result)


@pytest.mark.parametrize("cni,mode", [("calico", "native")])
def test_maximum_prefix_cease_is_a_fault(labs, cni, mode):
    """k8s-ctr's BIRD gets `import limit 1 action disable` while the router sends it three
    prefixes: BIRD sends Cease 6/1 (Maximum Number of Prefixes Reached) and keeps the session
    down. A fault, not an operator's action: an error naming the limit, with its fix — from the
    capture (the change made while it runs) and from the daemons (made before the collection)."""
    from diag.lab import faults
    from diag.lab.faults.base import in_ns, roles

    up = labs.running(cni, mode)
    lab = up.lab
    faults.heal(lab)
    _healthy(lab)
    node = roles(lab).node
    conf = lab.files.host_dir(node.name) / "bird.conf"
    sock = str(lab.files.bird_socket(node.name))
    original = conf.read_text()
    channel = "  ipv4 { import all; export where source = RTS_STATIC; };"
    if channel in original:                     # BIRD 2: the limit is the channel's
        limited = original.replace(channel, "  ipv4 { import all; import limit 1 action "
                                   "disable; export where source = RTS_STATIC; };")
    else:                                       # BIRD 1.6 (calico-node's): the protocol's
        lines = original.splitlines(keepends=True)
        at = next(i for i, line in enumerate(lines) if line.startswith("  import all;"))
        limited = "".join(lines[:at + 1] + ["  import limit 1 action disable;\n"]
                          + lines[at + 1:])

    def limit(on: bool = True):
        conf.write_text(limited if on else original)
        in_ns(lab, node.name, ["birdc", "-s", sock, "configure"], check=True)
        if not on:
            in_ns(lab, node.name, ["birdc", "-s", sock, "enable", "all"])

    def refused() -> bool:
        return "0601" in json.dumps(_router_peer(lab, node.ip).get("lastErrorCodeSubcode"))
    try:
        during = _collect(labs, up, "max-prefix", capture="4s", during=limit)
    finally:
        limit(on=False)
    _healthy(lab)
    limit()
    try:
        _wait(refused, 30, "the router to receive Cease 6/1")
        before = _collect(labs, up, "max-prefix-before")
    finally:
        limit(on=False)
    _healthy(lab)

    assert (6, 1) in _tshark_notifications(_router_capture(during))
    for bundle, source in ((during, "pcap"), (before, "bird")):
        result = explain(load_facts(bundle))
        listing = _listing(result)
        first = _first_root(result)
        assert first.code == "BGP_SESSION_NOT_ESTABLISHED" and first.severity == "error", listing
        assert "Maximum Number of Prefixes Reached" in first.summary, first
        assert "a fault" in first.summary and "operator" not in first.summary, first
        assert source in first.confidence.sources, first
        assert any("maximum-prefix" in line for line in first.fix), first.fix
        assert not [f for f in result.findings if f.code == "BGP_SESSION_RESET"
                    and f.severity == "info" and "Maximum" in f.summary], listing
        assert not check_evidence(bundle, first), check_evidence(bundle, first)


# --- a by-design loop next to a missing route ---------------------------------------------------

@pytest.mark.parametrize("cni,mode", [("cilium", "native")])
def test_by_design_loop_never_outranks_the_missing_route(labs, cni, mode):
    """Cilium-like node (GoBGP installs no learned routes) whose nodes share one AS: fault
    bgp-as-path-loop drops the other nodes' pod CIDRs from k8s-ctr's GoBGP RIB — by design
    here. Then k8s-ctr's covering route is removed: no route covers the remote pod CIDRs and
    the kernel sends them out the management NIC. That is the finding, first; the loop stays
    info after it."""
    from diag.lab import faults
    from diag.lab.faults import probes
    from diag.lab.faults.base import in_ns, roles

    up = labs.running(cni, mode)
    lab = up.lab
    node = roles(lab).node
    remote = roles(lab).remote
    proc = subprocess.run([sys.executable, "-m", "diag", "lab", "fault", "bgp-as-path-loop",
                           "--name", up.name], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    host = lab.hosts[node.name]
    covering = [r for r in probes.routes(lab, node.name)
                if r.get("gateway") and r.get("dst") not in (None, "default")
                and _overlaps(r["dst"], remote.pod_cidr)]
    try:
        for r in covering:
            in_ns(lab, node.name, ["ip", "route", "del", r["dst"]], check=True)
        kernel = probes.route_get(lab, node.name, lab.hosts[remote.name].pod_ip)
        bundle = _collect(labs, up, "loop-and-no-route")
    finally:
        for r in covering:
            in_ns(lab, node.name, ["ip", "route", "replace", r["dst"], "via", r["gateway"],
                                   "dev", r["dev"]])
        faults.heal(lab)
    _healthy(lab, timeout=120)
    assert covering, "the lab's node has no covering route to remove"
    assert kernel.get("dev") == host.mgmt_iface, kernel     # the kernel: out the wrong NIC

    result = explain(load_facts(bundle))
    listing = _listing(result)
    first = _first_root(result)
    assert first.code == "EGRESS_LEAK_DEFAULT_ROUTE" and first.severity == "error", listing
    assert node.name in first.hosts and remote.pod_cidr in first.summary, first
    loops = [f for f in result.findings if f.code == "BGP_AS_PATH_LOOP"]
    assert loops and all(f.severity == "info" for f in loops), listing
    assert all("by design" in f.severity_reason for f in loops), loops
    assert not check_evidence(bundle, first), check_evidence(bundle, first)


# --- a ToR announcing its own LAN ---------------------------------------------------------------

@pytest.mark.parametrize("cni,mode", [("calico", "native")])
def test_tor_originating_its_lan_is_a_router_not_a_node(labs, cni, mode):
    """The router gets a LAN of its own (203.0.113.0/24 on a bridge of its own) and originates it
    in BGP; the nodes learn it from the router. The router is still a router: its role says it
    originates a prefix outside the pod range and shows no CNI signal, and the pod range and the
    nodes are unchanged."""
    from diag.lab import faults
    from diag.lab.faults.base import ip_lines

    up = labs.running(cni, mode)
    lab = up.lab
    faults.heal(lab)
    _healthy(lab)
    router = lab.plan.router
    lan = "203.0.113.0/24"

    def learned() -> bool:
        from diag.lab.faults.probes import routes

        return any(r.get("dst") == lan for r in routes(lab, "k8s-ctr"))
    ip_lines(lab, router.name, ["link add fi_lan type bridge", "addr add 203.0.113.1/24 dev fi_lan",
                                "link set fi_lan up"], check=True)
    lab.daemons.vtysh("conf t", f"router bgp {router.asn}", "address-family ipv4 unicast",
                      f"network {lan}")
    try:
        _wait(learned, 30, f"the nodes to learn {lan}")
        bundle = _collect(labs, up, "tor-lan")
    finally:
        lab.daemons.vtysh("conf t", f"router bgp {router.asn}", "address-family ipv4 unicast",
                          f"no network {lan}")
        ip_lines(lab, router.name, ["link del fi_lan"])
    _healthy(lab)

    facts = load_facts(bundle)
    model = facts.model
    tor = model.hosts[router.name]
    assert tor.role.value == "router", tor.role
    assert lan in tor.role.how and "outside the pod range" in tor.role.how, tor.role
    assert "no CNI signal" in tor.role.how, tor.role
    assert tor.pod_cidr.value is None and any(lan in c for c in tor.pod_cidr.conflicts), tor
    nodes = {h.name: h.pod_cidr.value for h in model.nodes()}
    assert nodes == {h.name: h.pod_cidr for h in lab.plan.nodes}, nodes
    assert all("a CNI runs here" in h.role.how for h in model.nodes())
    assert model.pod_range.value and not _overlaps(model.pod_range.value, lan), model.pod_range
    result = explain(facts)
    assert not [f for f in result.findings if f.severity != "info"], _listing(result)


def _overlaps(a: str, b: str) -> bool:
    import ipaddress

    return ipaddress.ip_network(a).overlaps(ipaddress.ip_network(b))


# --- ARP: the capture that can see the replies decides ------------------------------------------

@pytest.mark.parametrize("cni,mode,fault", [("cilium", "native", "arp-unanswered")])
def test_arp_unanswered_is_decided_by_the_asking_host(labs, cni, mode, fault):
    """Fault arp-unanswered: the router asks for a LoadBalancer IP nobody holds, every host
    captures (`tcpdump -i any`). The router sent the requests, so its capture would hold the
    replies: it decides (an error, no limit). The nodes on its segment only received the
    broadcast requests: the one ARP rule says their captures could not see a unicast reply."""
    lb = labs.bundle(cni, mode, fault)
    facts = load_facts(lb.path)
    from diag.lab.faults.base import lb_ip

    target = lb_ip(lb.lab)
    arp = facts.tables["arp"]
    asked = arp[(arp.op == "request") & (arp.target_ip == target) & arp.copy_of.isna()]
    router = lb.lab.plan.router.name
    mine = asked[asked.host == router]
    others = asked[asked.host != router]
    assert len(mine) >= 3 and set(mine.direction) == {"out"}, mine
    assert set(mine.sees_replies) == {True} and set(mine.answered) == {False}
    assert len(others) and set(others.direction) == {"in"}
    assert set(others.sees_replies) == {False}
    assert all("came in from another host" in b for b in others.blind)

    result = explain(facts)
    found = [f for f in result.findings if f.code == "ARP_UNANSWERED" and f.subject == target]
    assert len(found) == 1, _listing(result)
    f = found[0]
    assert f.severity == "error" and not f.confidence.limits, f
    assert router in f.summary and set(f.hosts) >= {router} | set(others.host), f
    assert result.findings[0] is f, _listing(result)
    assert not check_evidence(lb.path, f), check_evidence(lb.path, f)
