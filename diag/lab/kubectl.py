"""The lab's ``kubectl`` (lab only): ``exec`` and ``debug node`` into the lab's pods; every other
verb handed to the real kubectl unchanged.

The lab's API endpoint speaks plain HTTP GETs; ``exec`` and ``debug`` need the API's streaming
protocols, so this program does them itself, as a cluster would (``RUN/kube/bin/kubectl``,
written at ``diag lab up``; ``diag lab status --json`` names it under ``kubectl``):

- ``kubectl exec [-i] [-n NS] POD [-c CONTAINER] -- ARGV...`` runs ARGV in the pod
  (:mod:`diag.lab.pods`): ``nsenter`` into the pod process's mount, network and UTS namespaces,
  ``PATH`` the pod's tools only; stdin passed through with ``-i``; exit status the command's,
  with kubectl's ``command terminated with exit code N``. Errors as a cluster words them: a pod
  that does not exist (``Error from server (NotFound): pods "X" not found``), a container the pod
  does not have (``unable to upgrade connection: container not found``), ``pods/exec`` listed
  in ``RUN/kube/denied`` (``Error from server (Forbidden) ...``: RBAC), a program the image
  lacks (containerd's ``executable file not found in $PATH``), a pod whose process is gone;
  ``RUN/kube/exec-delay`` (seconds) delays every exec, for timeouts.
- ``kubectl debug node/NODE --image=IMAGE [--profile=P] -- COMMAND...`` creates the debug pod
  ``node-debugger-NODE-XXXXX`` (namespace ``default``, container ``debugger``, host network,
  the debug tools with tcpdump), prints kubectl's ``Creating debugging pod ...`` line and
  returns, as kubectl does without ``-i``; the pod is an object of the API (``kubectl get pod``
  shows it) and a tracked lab process.
- ``kubectl delete pod NAME`` of a debug pod stops its process and removes its object.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from diag.lab import pods as L

_VALUE_FLAGS = {"--kubeconfig", "--context", "-n", "--namespace", "--request-timeout", "-c",
                "--container", "--image", "--profile", "--timeout", "--grace-period", "-o",
                "--output", "--cluster", "--user", "-l", "--selector"}


def _parse(args: list[str]) -> tuple[dict[str, str], list[str], list[str], set[str]]:
    """(flags with values, positionals, the command after ``--``, boolean flags)."""
    flags: dict[str, str] = {}
    positionals: list[str] = []
    switches: set[str] = set()
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return flags, positionals, args[i + 1:], switches
        if arg.startswith("-") and "=" in arg:
            key, value = arg.split("=", 1)
            flags[key] = value
        elif arg in _VALUE_FLAGS and i + 1 < len(args):
            flags[arg] = args[i + 1]
            i += 1
        elif arg.startswith("-"):
            switches.add(arg)
        else:
            positionals.append(arg)
        i += 1
    return flags, positionals, [], switches


def _fail(message: str, code: int = 1) -> int:
    print(message, file=sys.stderr)
    return code


@contextlib.contextmanager
def _locked(lab):
    """Stand-ins run side by side (one per node): lab state changes one at a time."""
    path = lab.run_dir / "kube" / "pods.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _pods(lab) -> dict[tuple[str, str], dict]:
    from diag.lab.kube_objects import read_objects

    out = {}
    for items in read_objects(lab.cluster.objects_dir).values():
        for item in items:
            if item.get("kind") == "Pod":
                meta = item.get("metadata") or {}
                out[(meta.get("namespace") or "default", meta.get("name"))] = item
    return out


def _process_key(lab, pod: dict) -> str:
    name = pod["metadata"]["name"]
    if name.startswith("node-debugger-"):
        return f"kube/pod/{name}"
    return L.agent_key(lab.cni, pod["spec"]["nodeName"])


def _denied(lab) -> set[str]:
    try:
        text = lab.cluster.denied_path.read_text()
    except OSError:
        return set()
    return {line.split("#", 1)[0].strip() for line in text.splitlines()} - {""}


def exec_(lab, flags: dict[str, str], positionals: list[str], command: list[str],
          switches: set[str]) -> int:
    namespace = flags.get("-n") or flags.get("--namespace") or "default"
    if not positionals or not command:
        return _fail("error: you must specify at least one command for the container")
    name = positionals[0].removeprefix("pod/").removeprefix("pods/")
    pod = _pods(lab).get((namespace, name))
    if pod is None:
        return _fail(f'Error from server (NotFound): pods "{name}" not found')
    if "pods/exec" in _denied(lab):
        return _fail(f'Error from server (Forbidden): pods "{name}" is forbidden: User '
                     f'"diag-lab" cannot create resource "pods/exec" in API group "" in the '
                     f'namespace "{namespace}"')
    containers = [c.get("name") for c in pod["spec"].get("containers") or []]
    container = flags.get("-c") or flags.get("--container") or containers[0]
    if container not in containers:
        return _fail(f'error: unable to upgrade connection: container not found ("{container}")')
    delay = lab.cluster.dir / "exec-delay"
    if delay.exists():
        time.sleep(float(delay.read_text().strip() or 0))
    pid = lab.daemons.pid(_process_key(lab, pod))
    if pid is None:
        return _fail("error: Internal error occurred: error executing command in container: "
                     "container is not running")
    program = command[0]
    if "/" not in program and not os.path.exists(f"/proc/{pid}/root{L.POD_PATH}/{program}"):
        return _fail('error: Internal error occurred: error executing command in container: '
                     'failed to exec in container: failed to start exec '
                     f'"{secrets.token_hex(32)}": OCI runtime exec failed: exec failed: unable '
                     f'to start container process: exec: "{program}": executable file not '
                     'found in $PATH: unknown')
    interactive = bool({"-i", "--stdin", "-it", "-ti"} & switches)
    done = subprocess.run(["nsenter", "--target", str(pid), "--mount", "--net", "--uts", "--",
                           "env", "-i", f"PATH={L.POD_PATH}", "HOME=/root", *command],
                          check=False, stdin=None if interactive else subprocess.DEVNULL)
    if done.returncode != 0:
        print(f"command terminated with exit code {done.returncode}", file=sys.stderr)
    return done.returncode


def debug(lab, flags: dict[str, str], positionals: list[str], command: list[str]) -> int:
    target = positionals[0] if positionals else ""
    if not target.startswith("node/"):
        return _fail("error: the lab's kubectl debugs nodes only: kubectl debug node/NAME")
    node = target.split("/", 1)[1]
    if node not in {n.name for n in lab.plan.nodes}:
        return _fail(f'Error from server (NotFound): nodes "{node}" not found')
    image = flags.get("--image")
    if not image:
        return _fail("error: --image is required for node debugging")
    if not command:
        return _fail("error: the lab's kubectl debug needs a command (no interactive session)")
    namespace = flags.get("-n") or flags.get("--namespace") or L.DEBUG_NAMESPACE
    name = f"node-debugger-{node}-{''.join(secrets.choice('bcdfghjklmnpqrstvwxz2456789') for _ in range(5))}"
    root = lab.run_dir / "pods" / name / "root"
    root.mkdir(parents=True)
    argv = L.container_argv(lab.netns(node), node, root, L.tools("debug", lab.run_dir),
                            L.common_binds(lab.run_dir), command)
    with _locked(lab):
        record = lab.daemons.spawn_local(f"kube/pod/{name}", argv)
    deadline = time.monotonic() + 10
    while not os.path.exists(f"/proc/{record.pid}/root{L.POD_PATH}/sleep"):
        if time.monotonic() > deadline or not os.path.exists(f"/proc/{record.pid}"):
            return _fail(f"error: debug pod {name} did not start")
        time.sleep(0.02)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    obj = L.pod_object(name, namespace, node, "debugger", image,
                       {"app.kubernetes.io/managed-by": "kubectl-debug"}, created,
                       command=command)
    _write_pod(lab, name, obj)
    print(f"Creating debugging pod {name} with container debugger on node {node}.")
    return 0


def _pod_file(lab, name: str) -> Path:
    return lab.cluster.objects_dir / f"pod-{name}.json"


def _write_pod(lab, name: str, obj: dict) -> None:
    path = _pod_file(lab, name)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [obj]}, indent=1))
    tmp.replace(path)


def delete(lab, flags: dict[str, str], positionals: list[str], switches: set[str],
           real: str, args: list[str]) -> int:
    names = positionals[1:] if positionals[:1] in (["pod"], ["pods"], ["po"]) else \
        [p.split("/", 1)[1] for p in positionals if p.startswith(("pod/", "pods/"))]
    ours = [n for n in names if _pod_file(lab, n).exists()]
    if not names or len(ours) != len(names):
        if not ours and names and "--ignore-not-found" in switches | set(flags):
            return 0
        os.execv(real, [real, *args])
    for name in ours:
        with _locked(lab):
            lab.daemons.stop(f"kube/pod/{name}")
        _pod_file(lab, name).unlink(missing_ok=True)
        shutil.rmtree(lab.run_dir / "pods" / name, ignore_errors=True)
        print(f'pod "{name}" deleted')
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["--lab"] or argv[2:3] != ["--real"] or argv[4:5] != ["--"]:
        return _fail("usage: python -m diag.lab.kubectl --lab NAME --real KUBECTL -- ARGS...", 2)
    name, real, args = argv[1], argv[3], argv[5:]
    flags, positionals, command, switches = _parse(args)
    verb = positionals[0] if positionals else ""
    if verb not in ("exec", "debug", "delete"):
        os.execv(real, [real, *args])
    from diag.lab.lab import Lab

    lab = Lab.load(name)
    if verb == "exec":
        return exec_(lab, flags, positionals[1:], command, switches)
    if verb == "debug":
        return debug(lab, flags, positionals[1:], command)
    return delete(lab, flags, positionals[1:], switches, real, args)


if __name__ == "__main__":
    raise SystemExit(main())
