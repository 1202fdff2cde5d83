"""The lab's pods as containers: the CNI agent pods and ``kubectl debug node`` pods (lab only).

Contract: a pod is one long-running process in its node's network namespace (a hostNetwork pod,
as every CNI agent is) with a mount namespace of its own whose root is a tmpfs (``pivot_root``)
holding the host's ``/usr``, ``/etc``, ``/dev``, ``/proc``, ``/sys`` and, on ``PATH``, only the
pod's tools (``/pod/bin``: :data:`AGENT_TOOLS` plus the image's own). So a tool the image does
not ship is really missing there, and ``nsenter --mount`` into the process lands in the
container's files, as on a real node:

- the cilium agent pod (``cilium-XXXXX``, container ``cilium-agent``, label ``k8s-app=cilium``):
  a ``sleep`` holding the namespaces, tools plus the lab's ``cilium-dbg``
  (:mod:`diag.lab.cilium_dbg`, rendering the node's GoBGP) — no tcpdump, as Cilium's image;
- the calico-node pod (``calico-node-XXXXX``, container ``calico-node``, label
  ``k8s-app=calico-node``): BIRD 1.6 itself, its socket at ``/var/run/calico/bird.ctl`` (a bind
  of the lab's socket directory, so the lab's own tools keep reaching it), ``birdcl`` on PATH;
- a debug pod (``node-debugger-NODE-XXXXX``, container ``debugger``, namespace ``default``):
  a ``sleep`` with the tools and tcpdump, made and deleted by :mod:`diag.lab.kubectl`.

:func:`agent_pods` gives the Pod objects the lab's API serves (``pods.json``);
:func:`container_argv` the argv that starts a container; :func:`tools` the tools of an image.
Processes are tracked by the lab like its daemons (keys ``NODE/cilium-agent``, ``NODE/bird``,
``kube/pod/NAME``) and end with ``diag lab down``.
"""
from __future__ import annotations

import hashlib
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from diag.lab import environment
from diag.lab.plan import AddressingPlan

POD_PATH = "/pod/bin"
CALICO_SOCKET_DIR = "/var/run/calico"
AGENT_TOOLS = ("sh", "env", "timeout", "id", "hostname", "uname", "cat", "date", "test", "stat",
               "sleep", "ip", "ss", "bridge", "nstat", "sysctl")
DEBUG_NAMESPACE = "default"
SYSTEM_NAMESPACE = "kube-system"


def _suffix(*parts: str) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()
    letters = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(letters[int(digest[i:i + 2], 16) % len(letters)] for i in range(0, 10, 2))


def agent_pod_name(cni: str, node: str) -> str:
    return f"{'cilium' if cni == 'cilium' else 'calico-node'}-{_suffix(cni, node)}"


def agent_container(cni: str) -> str:
    return "cilium-agent" if cni == "cilium" else "calico-node"


def agent_key(cni: str, node: str) -> str:
    """The lab process that is the agent pod (its namespaces are the pod's)."""
    return f"{node}/cilium-agent" if cni == "cilium" else f"{node}/bird"


def agent_pods(plan: AddressingPlan, cni: str, created: str) -> list[dict[str, Any]]:
    """The agent pods' objects, one per node (what ``kubectl get pods -A -l ...`` shows)."""
    label = "cilium" if cni == "cilium" else "calico-node"
    image = ("quay.io/cilium/cilium:v1.18.0" if cni == "cilium"
             else "docker.io/calico/node:v3.29.0")
    out = []
    for node in plan.nodes:
        out.append(pod_object(agent_pod_name(cni, node.name), SYSTEM_NAMESPACE, node.name,
                              agent_container(cni), image, {"k8s-app": label}, created,
                              host_ip=node.ip))
    return out


def pod_object(name: str, namespace: str, node: str, container: str, image: str,
               labels: dict[str, str], created: str, host_ip: str | None = None,
               command: list[str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "creationTimestamp": created},
        "spec": {"nodeName": node, "hostNetwork": True,
                 "containers": [{"name": container, "image": image,
                                 **({"command": command} if command else {})}]},
        "status": {"phase": "Running", **({"hostIP": host_ip, "podIP": host_ip}
                                           if host_ip else {}),
                   "containerStatuses": [{"name": container, "ready": True, "image": image,
                                          "state": {"running": {"startedAt": created}}}]},
    }


def tools(kind: str, run_dir: Path) -> dict[str, str]:
    """name -> the host file the pod's ``/pod/bin/name`` is: ``cilium``, ``calico``, ``debug``."""
    names = list(AGENT_TOOLS)
    out = {}
    for name in names + (["tcpdump"] if kind == "debug" else []):
        found = shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                                         "/sbin:/bin")
        if found:
            out[name] = found
    if kind == "cilium":
        out["cilium-dbg"] = str(cilium_dbg_script(run_dir))
    if kind == "calico":
        # calico-node ships birdcl; the host's (bird2's light client) speaks BIRD 1.6's socket
        out["birdcl"] = shutil.which("birdcl", path="/usr/sbin:/usr/bin") or "/usr/sbin/birdcl"
    return out


def package_root() -> Path:
    """The directory holding the ``diag`` package (bind-mounted into pods that run it)."""
    import diag

    return Path(diag.__file__).resolve().parent.parent


def cilium_dbg_script(run_dir: Path) -> Path:
    """The lab's ``cilium-dbg`` as a file (written by :func:`write_scripts`)."""
    return run_dir / "kube" / "bin" / "cilium-dbg"


def write_scripts(run_dir: Path, lab_name: str, real_kubectl: str | None) -> dict[str, Path]:
    """The lab's ``kubectl`` stand-in and ``cilium-dbg`` as executable scripts."""
    bin_dir = run_dir / "kube" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    python = shlex.quote(sys.executable)
    path = shlex.quote(str(package_root()))
    scripts = {
        "kubectl": f"exec {python} -P -m diag.lab.kubectl --lab {shlex.quote(lab_name)} "
                   f"--real {shlex.quote(real_kubectl or 'kubectl')} -- \"$@\"",
        "cilium-dbg": f"exec {python} -P -m diag.lab.cilium_dbg --lab {shlex.quote(lab_name)} "
                      "-- \"$@\"",
    }
    out = {}
    for name, body in scripts.items():
        target = bin_dir / name
        target.write_text(f"#!/bin/sh\nexport PYTHONPATH={path}${{PYTHONPATH:+:$PYTHONPATH}}\n"
                          f"{body}\n")
        target.chmod(0o755)
        out[name] = target
    return out


_SETUP = r'''set -e
hostname "$1"; R="$2"; shift 2
mount --make-rprivate /
mount -t tmpfs -o mode=0755 pod-root "$R"
for d in usr etc dev proc sys; do mkdir -p "$R/$d"; mount --rbind "/$d" "$R/$d"; done
for d in bin sbin lib lib64; do [ -L "/$d" ] && ln -s "$(readlink "/$d")" "$R/$d"; done
mkdir -p "$R/tmp" "$R/root" "$R/run" "$R/pod/bin" "$R/.oldroot"
while [ "$1" != "--" ]; do
  case "$1" in
    bind) mkdir -p "$R$3"; mount --bind "$2" "$R$3"; shift 3;;
    tool) ln -s "$3" "$R/pod/bin/$2"; shift 3;;
  esac
done
shift
cd "$R"; pivot_root . .oldroot; umount -l /.oldroot; rmdir /.oldroot
exec "$@"
'''


def container_argv(netns: str, node: str, root: Path, tool_files: dict[str, str],
                   binds: list[tuple[str, str]], command: list[str]) -> list[str]:
    """The argv starting a pod's process: in ``netns``, a new mount and UTS namespace, the
    tmpfs root at ``root`` (an empty directory) pivoted to, ``binds`` (host path, container
    path), the tools linked into ``/pod/bin``, then ``command``."""
    spec: list[str] = []
    for source, target in binds:
        spec += ["bind", source, target]
    for name, target in sorted(tool_files.items()):
        spec += ["tool", name, target]
    return ["ip", "netns", "exec", netns, "unshare", "--mount", "--uts", "--",
            "sh", "-c", _SETUP, "diag-pod", node, str(root), *spec, "--", *command]


def common_binds(run_dir: Path) -> list[tuple[str, str]]:
    """What every lab pod sees at the host's path: the lab's run directory (state, sockets,
    scripts), the diag package (the lab's cilium-dbg runs it), BIRD 1.6's files."""
    binds = [(str(run_dir), str(run_dir)), (str(package_root()), str(package_root()))]
    for prefix in dict.fromkeys((sys.base_prefix, sys.prefix)):   # the Python running diag
        if not prefix.startswith("/usr"):
            binds.append((prefix, prefix))
    if environment.BIRD1_PREFIX.exists():
        binds.append((str(environment.BIRD1_PREFIX), str(environment.BIRD1_PREFIX)))
    return binds
