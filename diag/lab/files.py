"""A lab's run directory: where its files are, and writing them (secrets, daemon configs, SSH).

Contract: :class:`LabFiles` of a :class:`~diag.lab.lab.Lab` names every file the lab owns under
its run directory (``/run/diag-lab/<name>``): the SSH client files a user collects with
(``ssh_config_path``, ``known_hosts_path``, ``identity_path``), the TCP-MD5 password, each host's
directory with its daemons' configs, logs and sockets (``host_dir``, ``frr_dir``,
``bird_socket``). It writes them: the secrets and keys (:meth:`write_secrets`), the daemons'
configurations (:meth:`write_frr_configs` and :meth:`write_sshd_config` rendered by
:mod:`diag.lab.configs`; :meth:`write_node_config` from the lab's Kubernetes objects through
:mod:`diag.lab.cluster`) and the SSH client files
(:meth:`write_ssh_client_files`). :meth:`bgp_options` is the healthy baseline a fault departs
from; :meth:`bgp_config_is` tells whether a daemon's config on disk is what options render.
Starting and stopping the daemons is :mod:`diag.lab.daemons`.
"""
from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from diag.errors import EnvironmentProblem
from diag.lab import configs
from diag.lab import plan as P

if TYPE_CHECKING:
    from diag.lab.lab import Lab


class LabFiles:
    def __init__(self, lab: "Lab") -> None:
        self.lab = lab
        self.run_dir = lab.run_dir

    # --- where things are ---------------------------------------------------------------------

    @property
    def ssh_config_path(self) -> Path:
        return self.run_dir / "ssh_config"

    @property
    def known_hosts_path(self) -> Path:
        return self.run_dir / "known_hosts"

    @property
    def identity_path(self) -> Path:
        return self.run_dir / "ssh" / "id_ed25519"

    @property
    def md5_password(self) -> str:
        return (self.run_dir / "md5_password").read_text().strip()

    @property
    def md5_peers(self) -> tuple[str, str]:
        """The two hosts whose BGP session uses TCP-MD5."""
        return (self.lab.plan.router.name, P.MD5_PEER)

    def host_dir(self, host: str) -> Path:
        return self.run_dir / "hosts" / host

    @property
    def frr_dir(self) -> Path:
        """The router's FRR state: vty sockets, zserv.api, pid and log files, configs."""
        return self.host_dir(self.lab.plan.router.name) / "frr"

    def bird_socket(self, host: str) -> Path:
        return self.host_dir(host) / "bird" / "bird.ctl"

    # --- the BGP configuration ----------------------------------------------------------------

    def bgp_options(self) -> configs.BgpOptions:
        """The healthy baseline's options."""
        return configs.BgpOptions(md5_password=self.md5_password)

    def bgp_config_is(self, host: str, options: configs.BgpOptions | None = None) -> bool:
        """True if ``host``'s BGP daemon config on disk is what ``options`` (default: healthy)
        renders — so a fault's heal restarts a daemon only when its config was changed."""
        opts = options or self.bgp_options()
        plan, h = self.lab.plan, self.lab.plan_host(host)
        if h.role == "router":
            path, text = self.frr_dir / "bgpd.conf", configs.render_bgpd(plan, h, opts)
        else:
            path, text = self.lab.cluster.node_config(h, opts)
        try:
            return path.read_text() == text
        except FileNotFoundError:
            return False

    # --- writing ------------------------------------------------------------------------------

    def write_secrets(self) -> None:
        """The TCP-MD5 password, the user's SSH key and every host's SSH host key."""
        md5 = self.run_dir / "md5_password"
        md5.touch(mode=0o600)
        md5.write_text(secrets.token_hex(12) + "\n")
        ssh = self.run_dir / "ssh"
        ssh.mkdir(mode=0o700)
        jobs = [subprocess.Popen(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                                  f"diag-lab-{self.lab.name}", "-f", str(self.identity_path)])]
        for host in self.lab.plan.hosts:
            hd = self.host_dir(host.name)
            hd.mkdir(parents=True)
            hd.chmod(0o711)
            hd.parent.chmod(0o711)
            jobs.append(subprocess.Popen(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                                          f"{host.name}@diag-lab-{self.lab.name}",
                                          "-f", str(hd / "ssh_host_ed25519_key")]))
        if any(job.wait() != 0 for job in jobs):
            raise EnvironmentProblem("ssh-keygen failed to generate the lab's keys")
        shutil.copyfile(f"{self.identity_path}.pub", ssh / "authorized_keys")

    def write_frr_configs(self, opts: configs.BgpOptions) -> None:
        plan = self.lab.plan
        router = plan.router
        self.frr_dir.mkdir(parents=True, exist_ok=True)
        (self.frr_dir / "zebra.conf").write_text(configs.render_zebra(plan, router))
        bgpd_conf = self.frr_dir / "bgpd.conf"
        bgpd_conf.touch(mode=0o600)
        bgpd_conf.write_text(configs.render_bgpd(plan, router, opts))
        # zebra and bgpd drop to the frr user: they must own their directory and files
        for path in [self.frr_dir, *self.frr_dir.iterdir()]:
            shutil.chown(path, "frr", "frr")

    def write_node_config(self, node: P.Host, opts: configs.BgpOptions) -> Path:
        """The node's BGP daemon config (GoBGP on cilium, BIRD on calico), generated from the
        lab's Kubernetes objects (:meth:`diag.lab.cluster.LabCluster.node_config`); its path."""
        if self.lab.cni == "calico":
            self.bird_socket(node.name).parent.mkdir(exist_ok=True)
        conf, text = self.lab.cluster.node_config(node, opts)
        return self.write_text_secret(conf, text)

    @staticmethod
    def write_text_secret(path: Path, text: str) -> Path:
        """Write a file that may hold a password: created mode 0600, replaced atomically."""
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.touch(mode=0o600)
        tmp.write_text(text)
        tmp.replace(path)
        return path

    def write_sshd_config(self, host: P.Host, use_pam: bool) -> Path:
        hd = self.host_dir(host.name)
        conf = hd / "sshd_config"
        (hd / "sshd.pid").unlink(missing_ok=True)
        conf.write_text(configs.render_sshd(
            host, host_key=hd / "ssh_host_ed25519_key", pid_file=hd / "sshd.pid",
            authorized_keys=self.run_dir / "ssh" / "authorized_keys", use_pam=use_pam))
        return conf

    def write_ssh_client_files(self) -> None:
        hosts = self.lab.plan.hosts
        keys = {h.name: (self.host_dir(h.name) / "ssh_host_ed25519_key.pub").read_text()
                for h in hosts}
        self.known_hosts_path.write_text(configs.render_known_hosts(keys))
        self.ssh_config_path.write_text(configs.render_ssh_config(
            self.lab.name, {h.name: self.lab.netns(h.name) for h in hosts},
            identity=self.identity_path, known_hosts=self.known_hosts_path))
