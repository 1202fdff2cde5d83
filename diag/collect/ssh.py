"""The SSH transport (asyncssh), honouring the user's OpenSSH config and known_hosts.

Config: ``--ssh-config FILE`` or ``~/.ssh/config`` is handed to asyncssh, which applies Host/Match,
Hostname, User, Port, IdentityFile, ProxyJump, ProxyCommand and UserKnownHostsFile; the agent is
used through ``SSH_AUTH_SOCK`` as OpenSSH would. ``--identity`` sets the key(s) to offer,
``--known-hosts`` replaces the known_hosts files.

Host keys are always verified. Known hosts come from ``--known-hosts``, else the config's
``UserKnownHostsFile``, else ``~/.ssh/known_hosts`` and ``/etc/ssh/ssh_known_hosts``; a config
that disables them (``UserKnownHostsFile none``) is refused. A key that is not listed fails as
``HOST_KEY_UNKNOWN`` unless ``accept_new`` (``--accept-new-host-keys``, OpenSSH's
``accept-new``): then the key is appended to the first known_hosts file and the connection
proceeds. A host that *is* listed with
other keys fails as ``HOST_KEY_CHANGED`` whatever the options.

Each command line is built from argv with :func:`shlex.quote` on every element, so no argument can
become shell syntax on the remote side.
"""
from __future__ import annotations

import asyncio
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diag.collect.targets import Target
from diag.collect.transport import ProcessHandle, Transport, TransportError


@dataclass(frozen=True)
class SshOptions:
    config: Path | None = None            # None: ~/.ssh/config when it exists
    identities: tuple[Path, ...] = ()
    known_hosts: Path | None = None
    accept_new: bool = False
    connect_timeout: float = 10.0
    # A ProxyCommand such as `nc` keeps a dead server's connection open; keepalives notice.
    keepalive_interval: float = 3.0
    keepalive_count_max: int = 3
    extra: dict[str, Any] = field(default_factory=dict)  # asyncssh options (tests, benchmarks)

    def config_files(self) -> list[str]:
        if self.config is not None:
            return [str(self.config)]
        default = Path("~/.ssh/config").expanduser()
        return [str(default)] if default.is_file() else []


def command_line(argv: list[str]) -> str:
    """The remote shell's command line: every argv element quoted."""
    return " ".join(shlex.quote(arg) for arg in argv)


class HostKeyPolicy:
    """Decides unknown keys (accept-new) and remembers why a key was refused."""

    def __init__(self, files: list[Path], accept_new: bool) -> None:
        self.files = files
        self.accept_new = accept_new
        self.refusal: str | None = None
        self.accepted_new = False

    def known(self) -> Any:
        import asyncssh

        text = b"".join(path.read_bytes() + b"\n" for path in self.files if path.is_file())
        return asyncssh.import_known_hosts(text.decode(errors="replace"))

    def decide(self, host: str, addr: str, port: int, key: Any) -> bool:
        import asyncssh

        listed = asyncssh.match_known_hosts(self.known(), host, addr or "", port)
        if listed[0] or listed[1]:  # host keys or CA keys exist for this host: the key changed
            self.refusal = "HOST_KEY_CHANGED"
            return False
        if not self.accept_new:
            self.refusal = "HOST_KEY_UNKNOWN"
            return False
        name = host if port in (22, None) else f"[{host}]:{port}"
        line = f"{name} {key.export_public_key('openssh').decode().strip()}\n"
        target = self.files[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a") as handle:
            handle.write(line)
        self.accepted_new = True
        return True


def _known_hosts_files(target: Target, options: SshOptions) -> list[Path]:
    if options.known_hosts is not None:
        return [options.known_hosts]
    import asyncssh

    resolved = asyncssh.SSHClientConnectionOptions(
        host=target.address, config=options.config_files(),
        **({"port": target.port} if target.port else {}),
        **({"username": target.user} if target.user else {}))
    if resolved.known_hosts is None:
        raise TransportError("ERROR", "the SSH config disables known_hosts (UserKnownHostsFile "
                                      "none); diag never collects without host key checking")
    files = [Path(os.path.expanduser(str(p))) for p in resolved.known_hosts
             if isinstance(p, (str, os.PathLike))]
    if files:
        return files
    # OpenSSH's defaults: the user's file (where accept-new writes) and the system-wide one
    return [Path("~/.ssh/known_hosts").expanduser(), Path("/etc/ssh/ssh_known_hosts")]


class SshTransport(Transport):
    name = "ssh"

    def __init__(self, target: Target, options: SshOptions) -> None:
        super().__init__()
        self.target = target
        self.options = options
        self.connection: Any = None
        self.policy: HostKeyPolicy | None = None

    async def connect(self) -> None:
        import asyncssh

        try:
            files = _known_hosts_files(self.target, self.options)
        except (asyncssh.Error, ValueError, OSError) as err:
            raise TransportError("ERROR", f"SSH config: {_one_line(err)}") from None
        self.policy = policy = HostKeyPolicy(files, self.options.accept_new)

        class Client(asyncssh.SSHClient):
            def validate_host_public_key(self, host: str, addr: str, port: int,
                                         key: Any) -> bool:
                return policy.decide(host, addr, port, key)

        kwargs: dict[str, Any] = dict(
            config=self.options.config_files(), known_hosts=policy.known(),
            client_factory=Client, connect_timeout=self.options.connect_timeout,
            login_timeout=self.options.connect_timeout,
            keepalive_interval=self.options.keepalive_interval,
            keepalive_count_max=self.options.keepalive_count_max, **self.options.extra)
        if self.target.port:
            kwargs["port"] = self.target.port
        if self.target.user:
            kwargs["username"] = self.target.user
        if self.options.identities:
            kwargs["client_keys"] = [str(p) for p in self.options.identities]
        try:
            self.connection = await asyncio.wait_for(
                asyncssh.connect(self.target.address, **kwargs),
                self.options.connect_timeout + 2)
        except asyncssh.HostKeyNotVerifiable as err:
            raise TransportError(policy.refusal or "HOST_KEY_UNKNOWN", _one_line(err)) from None
        except asyncssh.PermissionDenied as err:
            raise TransportError("AUTH_FAILED", _one_line(err)) from None
        except asyncio.TimeoutError:
            raise TransportError("CONNECT_TIMEOUT", "no SSH session within "
                                 f"{self.options.connect_timeout:g}s") from None
        except (OSError, asyncssh.ConnectionLost, asyncssh.DisconnectError) as err:
            raise TransportError("UNREACHABLE", _one_line(err) or type(err).__name__) from None
        except (asyncssh.Error, ValueError, KeyError) as err:
            raise TransportError("ERROR", _one_line(err)) from None
        uid = await self.run(["id", "-u"], timeout=self.options.connect_timeout, cap=64)
        try:
            self.uid = int(uid.stdout.strip())
        except ValueError:
            self.uid = None

    async def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            try:
                await asyncio.wait_for(self.connection.wait_closed(), 2)
            except (asyncio.TimeoutError, Exception):
                pass
            self.connection = None

    async def _spawn(self, argv: list[str], stdin: bool = False) -> ProcessHandle:
        import asyncssh

        if self.connection is None:
            raise TransportError("CONNECTION_LOST", "not connected")
        try:
            process = await self.connection.create_process(
                command_line(argv), encoding=None,
                **({} if stdin else {"stdin": asyncssh.DEVNULL}))
        except (asyncssh.Error, OSError) as err:
            raise TransportError("CONNECTION_LOST", _one_line(err)) from None

        def reader(stream: Any):
            async def read(size: int) -> bytes:
                try:
                    return await stream.read(size)
                except (asyncssh.Error, OSError) as err:
                    raise TransportError("CONNECTION_LOST", _one_line(err)) from None
            return read

        async def wait() -> int | None:
            completed = await process.wait(check=False)
            return completed.returncode if completed.exit_status is not None or \
                completed.exit_signal else None

        async def stop() -> None:
            try:
                process.terminate()
            except (asyncssh.Error, OSError):
                pass
            process.close()

        async def close() -> None:
            process.close()

        async def write_stdin(data: bytes) -> None:
            try:
                process.stdin.write(data)
                await process.stdin.drain()
            except (asyncssh.Error, OSError) as err:
                raise TransportError("CONNECTION_LOST", _one_line(err)) from None

        return ProcessHandle(reader(process.stdout), reader(process.stderr), wait, stop, close,
                             write_stdin if stdin else None)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
