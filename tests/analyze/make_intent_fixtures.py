"""One-off (not CI): the real state behind the intent tests, from labs with real daemons.

Run as root from the repository root::

    python3 tests/analyze/make_intent_fixtures.py [--only CASE ...]

For each case it brings up the lab it needs (names ``inx<cni><mode>``; cilium native, cilium
vxlan, calico native), applies the configuration fault with ``diag lab fault NAME`` (or nothing:
``healthy``), collects with the lab's printed ``diag collect --kube --via kubectl ...`` line
(every node through its agent pod, captures from a ``kubectl debug node`` pod) plus
``--capture`` (12 s for peer-asn-typo: GoBGP reconnects every 5-10 s, the OPEN must be in it),
heals, and writes ``tests/fixtures/intent/<case>.tar.gz``: the bundle as ``diag collect`` wrote
it, repacked with mtime 0. The labs are torn down at the end.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "intent"
DEBUG_IMAGE = ("--debug-image", "nicolaka/netshoot")
CASES = {
    # case: (cni, mode, fault or None, capture)
    "cilium-native-healthy": ("cilium", "native", None, "3s"),
    "advertisement-selector-mismatch": ("cilium", "native", "advertisement-selector-mismatch",
                                        "3s"),
    "peer-asn-typo": ("cilium", "native", "peer-asn-typo", "12s"),
    "node-not-selected": ("cilium", "native", "node-not-selected", "3s"),
    "lb-pool-exhausted": ("cilium", "native", "lb-pool-exhausted", "3s"),
    "l2-policy-wrong-interface": ("cilium", "native", "l2-policy-wrong-interface", "3s"),
    "l2-lease-failover-stale": ("cilium", "native", "l2-lease-failover-stale", "3s"),
    "autodirect-across-subnets": ("cilium", "native", "autodirect-across-subnets", "3s"),
    "cilium-vxlan-healthy": ("cilium", "vxlan", None, "3s"),
    "tunnel-port-config-mismatch": ("cilium", "vxlan", "tunnel-port-config-mismatch", "3s"),
    "calico-native-healthy": ("calico", "native", None, "3s"),
    "calico-mesh-off-no-rr": ("calico", "native", "calico-mesh-off-no-rr", "3s"),
    "ippool-mode-mismatch": ("calico", "native", "ippool-mode-mismatch", "3s"),
    "bird-filter-reject": ("calico", "native", "bird-filter-reject", "3s"),
}


def diag(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "diag", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=240)
    if check and proc.returncode not in (0, 3):
        raise SystemExit(f"diag {shlex.join(args)} -> {proc.returncode}\n{proc.stdout}\n"
                         f"{proc.stderr}")
    return proc


def repack(bundle: Path, archive: Path) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(bundle.rglob("*")):
            if not path.is_file():
                continue
            info = tar.gettarinfo(str(path), arcname=f"{archive.name.split('.')[0]}/"
                                                     f"{path.relative_to(bundle).as_posix()}")
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as handle:
                tar.addfile(info, handle)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    cases = {k: v for k, v in CASES.items() if not args.only or k in args.only}
    up: dict[tuple[str, str], tuple[str, str]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="intent-fx-") as tmp:
            for case, (cni, mode, fault, capture) in cases.items():
                key = (cni, mode)
                if key not in up:
                    name = f"inx{cni[:3]}{mode[:3]}"
                    diag("lab", "down", "--name", name, check=False)
                    out = diag("lab", "up", "--name", name, "--cni", cni, "--mode", mode).stdout
                    line = next(x.strip() for x in out.splitlines()
                                if x.strip().startswith("diag collect --kube"))
                    up[key] = (name, line)
                name, line = up[key]
                if fault:
                    print(diag("lab", "fault", fault, "--name", name).stdout)
                bundle = Path(tmp) / case
                diag(*shlex.split(line)[1:], "--capture", capture, *DEBUG_IMAGE,
                     "-o", str(bundle))
                repack(bundle, OUT / f"{case}.tar.gz")
                print(f"wrote {OUT / f'{case}.tar.gz'}")
                if fault:
                    diag("lab", "heal", "--name", name)
    finally:
        for name, _ in up.values():
            diag("lab", "down", "--name", name, check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
