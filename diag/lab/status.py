"""What ``diag lab status`` shows: namespaces, daemons, BGP per peer, SSH endpoints, the
Kubernetes API endpoint (``kubectl``, ``kubeconfig``), timings.

Contract: :func:`status` gathers a JSON-able dict from a :class:`~diag.lab.lab.Lab` (live queries of
the kernel and daemons); :func:`render_text` formats it; :func:`ready_lines` are the lines ``up`` and
``status`` end with (the ready-to-paste collect commands, SSH and Kubernetes, and ssh).
"""
from __future__ import annotations

import shutil
from typing import Any

from diag.lab.lab import Lab, last_teardown_seconds
from diag.lab.system import is_alive, netns_list


def status(lab: Lab) -> dict[str, Any]:
    present = netns_list()
    state = lab.state
    peers = []
    try:
        peers = [vars(p) | {"established": p.established} for p in lab.daemons.bgp_state()]
    except Exception as err:  # a dead daemon must not hide the rest of the status
        peers = [{"error": f"{type(err).__name__}: {err}"}]
    from diag.lab.faults.state import read as read_fault

    fault = read_fault(lab)
    return {
        "name": lab.name, "cni": lab.cni, "mode": lab.mode, "addressing": lab.addressing,
        "fault": None if fault is None else {"name": fault.name, "phase": fault.phase,
                                             "evidence": fault.evidence},
        "phase": state.phase, "error": state.error, "run_dir": str(lab.run_dir),
        "timings": {**state.timings, "last_teardown_s": last_teardown_seconds(lab.name)},
        "namespaces": {ns: ns in present for ns in state.namespaces},
        "processes": [{"key": p.key, "pid": p.pid, "running": is_alive(p.pid, p.starttime)}
                      for p in state.processes],
        "bgp": peers,
        "hosts": {name: {"netns": h.netns, "role": h.role, "ips": list(h.ips),
                         "cluster_iface": h.cluster_iface, "asn": h.asn, "daemon": h.daemon,
                         "pod_cidr": h.pod_cidr, "pod_ip": h.pod_ip,
                         "ssh": f"ip netns exec {h.netns} nc 127.0.0.1 22"}
                  for name, h in lab.hosts.items()},
        "ssh_config": str(lab.files.ssh_config_path), "known_hosts": str(lab.files.known_hosts_path),
        "collect_command": lab.collect_command(), "ssh_command": lab.ssh_command(),
        "bird": state.bird or None, "peering": state.peering,
        "cilium_api": state.cilium_api or None,
        "kubectl": str(lab.cluster.kubectl_path) if lab.cluster.kubectl_path.exists() else None,
        "kubectl_real": shutil.which("kubectl"), "kubeconfig": str(lab.cluster.kubeconfig_path),
        "kube_api": lab.cluster.api_url, "kube_objects": str(lab.cluster.objects_dir),
        "kube_denied": str(lab.cluster.denied_path),
        "kube_collect_command": lab.kube_collect_command(),
    }


def render_text(st: dict[str, Any]) -> str:
    t = st["timings"]
    timing = ", ".join(f"{label} {t[key]:.1f} s" for key, label in (
        ("bringup_s", "bring-up"), ("established_s", "sessions Established at"),
        ("last_teardown_s", "last teardown")) if t.get(key) is not None)
    variant = "".join(f", {label} {st[key]}" for key, label in (
        ("bird", "BIRD"), ("cilium_api", "Cilium BGP API")) if st.get(key))
    if st.get("peering", "address") != "address":
        variant += f", router peering by {st['peering']}"
    lines = [f"lab {st['name']}: {st['cni']}, {st['mode']}, addressing {st['addressing']}"
             f"{variant} — {st['phase']}" + (f" ({timing})" if timing else "")]
    if st["error"]:
        lines.append(f"  error: {st['error']}")
    lines.append(f"run dir: {st['run_dir']}")
    fault = st.get("fault")
    lines.append(f"fault: {fault['name']} ({fault['phase']}; heal: diag lab heal --name {st['name']})"
                 if fault else "fault: none")
    lines.append("namespaces: " + " ".join(
        ns + ("" if ok else " (missing)") for ns, ok in st["namespaces"].items()))
    lines.append("processes:")
    for p in st["processes"]:
        lines.append(f"  {p['key']:<20} pid {p['pid']:<8} {'running' if p['running'] else 'DEAD'}")
    lines.append("BGP sessions (as each speaker reports them):")
    for p in st["bgp"]:
        if "error" in p:
            lines.append(f"  error: {p['error']}")
            continue
        pfx = "" if p["prefixes_received"] is None else f"  prefixes received {p['prefixes_received']}"
        lines.append(f"  {p['host']:<8} {p['daemon']:<6} peer {p['peer']:<16} {p['state']}{pfx}")
    lines.append("hosts:")
    for name, h in st["hosts"].items():
        pod = f"  pod {h['pod_ip']} ({h['pod_cidr']})" if h["pod_cidr"] else ""
        lines.append(f"  {name:<8} {h['netns']:<18} {h['daemon']:<6} AS {h['asn']:<11} "
                     f"{' '.join(h['ips'])}{pod}")
    lines.append("ssh endpoints: ProxyCommand ip netns exec <netns> nc 127.0.0.1 22 "
                 f"(see {st['ssh_config']})")
    lines.append(f"Kubernetes API (lab endpoint): {st.get('kube_api') or 'not running'}, "
                 f"kubeconfig {st['kubeconfig']}; objects in {st['kube_objects']} "
                 "(edit, then: diag lab kube apply)")
    return "\n".join(lines + ready_lines(st))


def ready_lines(st: dict[str, Any]) -> list[str]:
    kubectl = "" if st.get("kubectl_real") else \
        " (kubectl is not installed: diag collect --kube needs it)"
    return ["", "collect evidence from every host:", f"  {st['collect_command']}",
            f"or every node through its CNI agent pod, and the objects, with kubectl (no SSH)"
            f"{kubectl}:",
            f"  {st['kube_collect_command']}",
            "log into a node:", f"  {st['ssh_command']}"]
