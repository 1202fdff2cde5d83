"""Can this host run the lab? Root/capabilities and the Debian packages it needs.

Contract: :func:`check` raises :class:`~diag.errors.EnvironmentProblem` with a one-line reason and
what to do, or returns None. It reads /proc/self/status and PATH only.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from diag.errors import EnvironmentProblem

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21       # ip netns add mounts the namespace file

# binary -> Debian package
TOOLS = {
    "ip": "iproute2", "bridge": "iproute2", "sysctl": "procps", "unshare": "util-linux",
    "/usr/lib/frr/zebra": "frr", "/usr/lib/frr/bgpd": "frr", "vtysh": "frr",
    "gobgpd": "gobgpd", "gobgp": "gobgpd", "bird": "bird2", "birdc": "bird2", "birdcl": "bird2",
    "arping": "arping",
    "/usr/sbin/sshd": "openssh-server", "ssh-keygen": "openssh-client", "nc": "netcat-openbsd",
    "nft": "nftables", "ethtool": "ethtool",
}


# Calico's BIRD is a fork of 1.6, which Debian ships as `bird` — a package that conflicts with
# bird2. .ci/bird1.sh unpacks it into this prefix (apt-get download + dpkg -x).
BIRD1_PREFIX = Path(os.environ.get("DIAG_BIRD1_PREFIX", "/opt/diag-bird1"))
BIRD1 = BIRD1_PREFIX / "usr" / "sbin" / "bird"
BIRD1_CLIENT = BIRD1_PREFIX / "usr" / "sbin" / "birdc"


def check_bird1() -> None:
    """BIRD 1.6 for calico labs: unpacked privately, never installed as a package."""
    if not (BIRD1.exists() and BIRD1_CLIENT.exists()):
        raise EnvironmentProblem(
            f"calico labs run BIRD 1.6 as Calico does, and {BIRD1} is missing",
            hint="sudo bash .ci/bird1.sh (unpacks Debian's bird 1.6 into "
                 f"{BIRD1_PREFIX}; it conflicts with bird2 as a package), or: --bird 2")


def effective_caps() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def check() -> None:
    caps = effective_caps()
    if not (caps >> CAP_NET_ADMIN & 1 and caps >> CAP_SYS_ADMIN & 1):
        who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
        raise EnvironmentProblem(
            f"diag lab needs root with CAP_NET_ADMIN and CAP_SYS_ADMIN to create network "
            f"namespaces (running as {who} without them)",
            hint="run it as root, e.g. `sudo diag lab up` (in a container: --privileged or "
                 "--cap-add NET_ADMIN --cap-add SYS_ADMIN)")
    missing = sorted({pkg for tool, pkg in TOOLS.items()
                      if not (Path(tool).exists() if tool.startswith("/") else shutil.which(tool))})
    if missing:
        raise EnvironmentProblem(
            f"diag lab needs Debian packages that are not installed: {', '.join(missing)}",
            hint=f"apt-get install -y --no-install-recommends {' '.join(missing)}")
