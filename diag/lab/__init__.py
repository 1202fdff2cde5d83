"""The namespace lab: the classic cross-subnet Kubernetes cluster with real routing daemons.

A router (FRR zebra + bgpd) on two node subnets, three nodes (GoBGP for ``cilium``, BIRD 1.6 as
Calico runs it — or BIRD 2 — for ``calico``), one pod namespace per node, a management NIC per node
whose default route leads to a sink (the two-NIC trap), sshd everywhere — all in network
namespaces named ``<lab>-<host>``, built and torn down in seconds — and the lab as a small
Kubernetes cluster: the objects a real cluster would show, served to kubectl by a loopback API
endpoint, from which the nodes' BGP daemons are configured (``lab.cluster``). docs/lab.md has the
drawing, both addressing plans and the variants (``--bird``, ``--peering``).

Python API (for faults, collect and explain tests)::

    from diag.lab import Lab, teardown

    lab = Lab.up("t1", cni="cilium", mode="native", addressing="default")  # -> Lab, ready
    #   (also bird="1.6"|"2", peering="address"|"interface"|"range", cilium_api, kube_denied)
    lab = Lab.load("t1")                       # the same lab from its run directory
    lab.hosts["k8s-w1"]                        # HostInfo: netns, ips, role, cluster_iface,
                                               #   cluster_ip, mgmt_iface, asn, daemon,
                                               #   pod_cidr, pod_ip, pod_netns
    lab.plan                                   # the AddressingPlan (diag.lab.plan)
    lab.exec("k8s-w1", ["ip", "-j", "route"], check=True)  # CompletedProcess (text, captured),
                                               #   in the host's netns, hostname and sockets
    lab.exec_pod("k8s-w1", ["ping", "-c1", ip])   # inside the node's pod namespace
    lab.pod_ping("k8s-ctr", "k8s-w0")          # bounded real ping pod -> pod
    lab.collect_command(), lab.ssh_command("k8s-w1")

    lab.daemons.bgp_state()                    # [PeerState(host, daemon, peer, state, ...)]
    lab.daemons.wait_established(timeout=20)
    lab.daemons.vtysh("show bgp summary json") # the router's FRR
    lab.daemons.spawn("fault/ping", "k8s-ctr", argv, pod=True)  # tracked by PID; .stop(key)
    lab.daemons.pid("k8s-w1/gobgpd")           # a daemon's PID (keys: router/zebra, router/bgpd,
                                               #   HOST/sshd, NODE/gobgpd or NODE/bird)
    lab.daemons.restart_bgp("k8s-w1", BgpOptions(...))  # re-render a config and restart it

    lab.files.ssh_config_path, lab.files.known_hosts_path, lab.files.identity_path
    lab.files.md5_password, lab.files.md5_peers  # TCP-MD5 on router <-> k8s-w1
    lab.files.bgp_options()                    # the healthy baseline a fault departs from

    lab.cluster.kubeconfig_path, lab.cluster.objects_dir   # kubectl's way in; the objects
    lab.cluster.apply()                        # `diag lab kube apply`: daemons follow the objects
    lab.kube_collect_command()                 # diag collect --kube --kubeconfig ...

    lab.down()                                 # -> teardown seconds
    teardown("t1")                             # the same from the name alone (after a crash)

    from diag.lab import faults                # every catalogue failure, injected and healed:
    faults.apply(lab, "bgp-md5-mismatch")      #   see diag.lab.faults and docs/lab.md "Faults"
    faults.heal(lab)
    from diag.lab.capture import recording     # tcpdump inside a lab namespace, stopped by PID

Everything a lab owns is recorded in its run directory (``/run/diag-lab/<name>``, or
``$DIAG_LAB_RUN_DIR``): state.json, ssh_config, known_hosts, md5_password, per-host configs/logs.
Inside a lab host, plain ``vtysh``, ``birdc`` and ``gobgp`` reach the lab's daemons (private bind
mounts of their socket directories over /run/frr and /run/bird; GoBGP's API on 127.0.0.1:50051).
"""
from __future__ import annotations

from diag.lab.configs import BgpOptions
from diag.lab.lab import DEFAULT_NAME, HostInfo, Lab, existing_labs, lab_exists, teardown

__all__ = ["BgpOptions", "DEFAULT_NAME", "HostInfo", "Lab", "existing_labs", "lab_exists",
           "teardown"]
