"""The evidence bundle: the only code that knows its layout and its manifest.

Layout (described in docs/bundle-format.md)::

    BUNDLE/
      manifest.json           everything about the run; rewritten atomically after every step
      redactions.json         what was redacted where (never the secret itself)
      hosts/<host>/<id>.out   one command's stdout, redacted, named by the catalogue's stable id
      hosts/<host>/<id>.pcap  one capture (complete pcap records only)
      kube/<id>.out           kubectl's version and API discovery output (schema 2)
      kube/<group>/<resource>.json  one kind's objects as a List (``core`` for the core group)

Schema 2 is schema 1 plus the manifest's ``kube`` section (the cluster's objects, read with
kubectl); a bundle without Kubernetes objects is still written as schema 1, and both are read.

Writing (:class:`BundleWriter`): every file is written to a temporary name, fsynced and renamed, and
the manifest is rewritten the same way after each file, so a crash or Ctrl-C at any moment leaves a
readable bundle. The manifest's ``status`` is ``in_progress`` while collecting and ``complete`` or
``partial`` (with ``partial_reasons``) at the end; a reader must treat ``in_progress`` as partial.

Reading (:func:`open_bundle`): a bundle from someone else is untrusted input. Directories and
``.tar.gz`` archives are refused, with one line, when they hold path traversal (``..``), absolute
paths, symlinks, hard links, device files or FIFOs, or when an archive expands beyond the size or
member limits (decompression bombs are stopped while streaming, not by trusting headers). Every
file's sha256 is checked against the manifest; mismatches, missing and unlisted files are returned
as problems rather than raised, so that a damaged bundle can still be inspected.
"""
from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import socket
import stat
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Iterable, Iterator

from diag import __version__
from diag.errors import DiagError, ExitStatus, UnusableInput

SCHEMA_VERSION = 1
KUBE_SCHEMA_VERSION = 2          # written once a bundle holds a kube part
READ_SCHEMA_VERSIONS = (1, 2)
MANIFEST = "manifest.json"
REDACTIONS = "redactions.json"
HOSTS_DIR = "hosts"
OUTPUT_SUFFIX = ".out"
CAPTURE_SUFFIXES = (".pcap", ".pcapng")
KUBE_DIR = "kube"

STATUS_IN_PROGRESS = "in_progress"
STATUS_COMPLETE = "complete"
STATUS_PARTIAL = "partial"

# Reader limits: generous for real bundles (captures are bounded by --max-bytes), small enough
# that a crafted archive cannot fill the disk or memory.
MAX_TOTAL_BYTES = 4 * 1024**3
MAX_MEMBERS = 100_000
MAX_MANIFEST_BYTES = 64 * 1024**2

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._@+-]")


def safe_component(name: str) -> str:
    """A host name or command id turned into one safe path component (no '/', no '..')."""
    cleaned = _SAFE_NAME.sub("_", name).strip(".") or "_"
    return cleaned[:120]


def _file_name(command_id: str, suffix: str) -> str:
    return safe_component(command_id) + suffix


def output_path(host: str, command_id: str, suffix: str = OUTPUT_SUFFIX) -> str:
    """The bundle path the writer gives a host's output: ``hosts/<host>/<id><suffix>``.

    The manifest is the authority (two host names that sanitise alike get ``<host>~2``); this is
    where an output not listed there would be, for evidence that names one anyway."""
    return f"{HOSTS_DIR}/{safe_component(host)}/{_file_name(command_id, suffix)}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes, sync_dir: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    if sync_dir:
        _fsync_dir(path.parent)


class StreamFile:
    """A bundle file written incrementally (a capture); committed atomically by :meth:`commit`."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.tmp = final.with_name(f".{final.name}.partial")
        self._handle: BinaryIO = open(self.tmp, "wb")
        self._sha = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        self._sha.update(data)
        self.bytes += len(data)

    def commit(self) -> tuple[str, int]:
        """Flush, fsync and rename into place; returns (sha256, bytes). Idempotent."""
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            os.replace(self.tmp, self.final)
            _fsync_dir(self.final.parent)
        return self._sha.hexdigest(), self.bytes


class BundleWriter:
    """Builds one bundle directory; the manifest on disk is always valid JSON.

    Host records and command records are plain JSON-able dicts (their fields are documented in
    docs/bundle-format.md); this class adds ``path``, ``bytes`` and ``sha256`` for files it writes.
    """

    # The manifest is rewritten at most this often while collecting (always on finish): a crash
    # loses at most this much of the record, and the files it would have listed show up as
    # UNLISTED_FILE problems, never as a broken bundle.
    FLUSH_INTERVAL = 0.25

    def __init__(self, root: Path, run: dict[str, Any]) -> None:
        root = Path(root)
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise DiagError(f"output directory {root} exists and is not empty",
                            "choose a new --out directory", ExitStatus.USAGE)
        try:
            root.mkdir(parents=True, exist_ok=True)
            (root / HOSTS_DIR).mkdir(exist_ok=True)
        except OSError as err:
            raise DiagError(f"cannot create bundle directory {root}: {err.strerror}",
                            "choose a writable --out directory", ExitStatus.USAGE) from None
        self.root = root
        self.manifest: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "diag_version": __version__,
            "created_by": {"user": _current_user(), "host": socket.gethostname()},
            "started": _utc(time.time()),
            "finished": None,
            "status": STATUS_IN_PROGRESS,
            "partial_reasons": [],
            "run": run,
            "hosts": {},
            "redactions": {"path": REDACTIONS, "count": 0},
        }
        self._redactions: list[dict[str, Any]] = []
        self._host_dirs: dict[str, Path] = {}
        self._dirty_dirs: set[Path] = set()
        self._last_flush = 0.0
        self._write_redactions()
        self.flush()

    # -- hosts and files -------------------------------------------------------------------
    def host_dir(self, host: str) -> Path:
        if host not in self._host_dirs:
            name = safe_component(host)
            taken = set(p.name for p in self._host_dirs.values())
            candidate, n = name, 1
            while candidate in taken:  # two names that sanitise alike ("a:22", "a_22")
                n += 1
                candidate = f"{name}~{n}"
            path = self.root / HOSTS_DIR / candidate
            path.mkdir(exist_ok=True)
            self._host_dirs[host] = path
        return self._host_dirs[host]

    def set_host(self, host: str, **fields: Any) -> None:
        record = self.manifest["hosts"].setdefault(host, {"commands": []})
        record.update(fields)
        self._changed()

    def _changed(self) -> None:
        if time.monotonic() - self._last_flush >= self.FLUSH_INTERVAL:
            self.flush()

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def add_output(self, host: str, command: dict[str, Any], data: bytes,
                   suffix: str = OUTPUT_SUFFIX) -> dict[str, Any]:
        """Write one command's (already redacted) output and record it; returns the record."""
        path = self.host_dir(host) / _file_name(command["id"], suffix)
        _atomic_write(path, data, sync_dir=False)  # the directory is synced before the manifest
        self._dirty_dirs.add(path.parent)
        record = dict(command, path=self._relative(path), bytes=len(data),
                      sha256=hashlib.sha256(data).hexdigest())
        self.add_command(host, record)
        return record

    def add_command(self, host: str, record: dict[str, Any]) -> None:
        self.manifest["hosts"].setdefault(host, {"commands": []})["commands"].append(record)
        self._changed()

    def open_stream(self, host: str, command_id: str, suffix: str) -> StreamFile:
        return StreamFile(self.host_dir(host) / _file_name(command_id, suffix))

    def add_stream(self, host: str, command: dict[str, Any], stream: StreamFile) -> dict[str, Any]:
        digest, size = stream.commit()
        record = dict(command, path=self._relative(stream.final), bytes=size, sha256=digest)
        self.add_command(host, record)
        return record

    # -- the Kubernetes part ------------------------------------------------------------------
    def set_kube(self, **fields: Any) -> None:
        """Create or update the manifest's ``kube`` section (the bundle becomes schema 2)."""
        section = self.manifest.setdefault("kube", {"commands": [], "resources": []})
        section.update(fields)
        self.manifest["schema_version"] = KUBE_SCHEMA_VERSION
        self._changed()

    def set_via(self, **fields: Any) -> None:
        """Create or update the manifest's ``via`` section: how hosts were found and reached
        through the cluster (``diag collect --via kubectl``)."""
        self.manifest.setdefault("via", {}).update(fields)
        self._changed()

    def kube_path(self, record: dict[str, Any]) -> Path:
        """Where a kube record's output goes: ``kube/<group>/<resource>.json`` for a kind's
        objects (``core`` for the core group), ``kube/<id>.out`` for kubectl's other outputs."""
        if record.get("resource"):
            group = safe_component(record.get("group") or "core")
            return self.root / KUBE_DIR / group / (safe_component(record["resource"]) + ".json")
        return self.root / KUBE_DIR / (safe_component(record["id"]) + ".out")

    def add_kube_output(self, record: dict[str, Any], data: bytes) -> dict[str, Any]:
        """Write one kubectl output (already redacted) and record it: a kind's record goes to
        ``kube.resources``, anything else to ``kube.commands``; returns the record."""
        path = self.kube_path(record)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, data, sync_dir=False)
        self._dirty_dirs.add(path.parent)
        written = dict(record, path=self._relative(path), bytes=len(data),
                       sha256=hashlib.sha256(data).hexdigest())
        self.add_kube_record(written)
        return written

    def add_kube_record(self, record: dict[str, Any]) -> None:
        """Record a kube entry without a file (a kind not installed or not collected)."""
        self.set_kube()
        key = "resources" if record.get("resource") else "commands"
        self.manifest["kube"][key].append(record)
        self._changed()

    def add_redactions(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        self._redactions.extend(entries)
        self.manifest["redactions"]["count"] = len(self._redactions)
        self._write_redactions()
        self._changed()

    def _write_redactions(self) -> None:
        _atomic_write(self.root / REDACTIONS,
                      json.dumps({"redactions": self._redactions}, indent=1).encode())

    # -- lifecycle ---------------------------------------------------------------------------
    def flush(self) -> None:
        """Write the manifest now (after syncing the directories of the files it lists)."""
        for directory in sorted(self._dirty_dirs):
            _fsync_dir(directory)
        self._dirty_dirs.clear()
        self._last_flush = time.monotonic()
        _atomic_write(self.root / MANIFEST,
                      json.dumps(self.manifest, indent=1, sort_keys=False).encode())

    def finish(self, partial_reasons: list[str]) -> str:
        reasons = sorted(set(partial_reasons))
        self.manifest["partial_reasons"] = reasons
        self.manifest["status"] = STATUS_PARTIAL if reasons else STATUS_COMPLETE
        self.manifest["finished"] = _utc(time.time())
        self.flush()
        return self.manifest["status"]

    def archive(self, destination: Path | None = None) -> Path:
        """Pack the bundle into one .tar.gz (regular files only), written atomically."""
        destination = destination or self.root.with_name(self.root.name + ".tar.gz")
        return write_archive(self.root, destination)


def write_archive(root: Path, destination: Path) -> Path:
    tmp = destination.with_name(f".{destination.name}.tmp{os.getpid()}")
    top = safe_component(root.name)
    with tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(root.rglob("*")):
            if path.name.startswith(".") or not path.is_file() or path.is_symlink():
                continue  # temporaries of an interrupted write are not part of the bundle
            info = tar.gettarinfo(str(path), arcname=f"{top}/{path.relative_to(root).as_posix()}")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, destination)
    _fsync_dir(destination.parent)
    return destination


def _utc(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1e6):06d}Z"


def _current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in a container: the uid is still meaningful
        return str(os.getuid())


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    """Something wrong with a readable bundle: a sha256 mismatch, a missing or unlisted file."""

    kind: str   # SHA256_MISMATCH | MISSING_FILE | UNLISTED_FILE | SIZE_MISMATCH
    path: str
    detail: str = ""


@dataclass(frozen=True)
class Bundle:
    """A verified bundle directory: the manifest, where the files are, and what is wrong."""

    root: Path
    manifest: dict[str, Any]
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    @property
    def partial(self) -> bool:
        return self.manifest.get("status") != STATUS_COMPLETE

    def path(self, relative: str) -> Path:
        """The file a manifest path names; refuses anything outside the bundle."""
        return self.root / _checked_relative(relative)

    def read(self, relative: str) -> bytes:
        return self.path(relative).read_bytes()

    def commands(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for host, record in self.manifest.get("hosts", {}).items():
            for command in record.get("commands", []):
                yield host, command

    def outputs(self) -> "OutputIndex":
        """Where each (host, command id)'s output is, as the manifest lists it, and where each
        Kubernetes kind's objects are stored."""
        return OutputIndex(((host, str(command.get("id", "")), command.get("path"))
                            for host, command in self.commands() if isinstance(command, dict)),
                           kube=((str(r.get("group") or ""), str(r.get("kind") or ""),
                                  r.get("path")) for r in self.kube_resources()
                                 if r.get("outcome") == "OK"))

    def captures(self, present_only: bool = False) -> list[tuple[str, Path]]:
        """(host, file) of every capture the manifest lists with bytes in it, in its order
        (``present_only``: only those whose file is there)."""
        return [(host, self.path(command["path"])) for host, command in self.commands()
                if isinstance(command, dict) and _is_capture_path(command.get("path"))
                and command.get("bytes")
                and (not present_only or self.path(command["path"]).is_file())]

    @property
    def kube(self) -> dict[str, Any] | None:
        """The manifest's ``kube`` section, or None (no Kubernetes part: schema 1 bundles)."""
        section = self.manifest.get("kube")
        return section if isinstance(section, dict) else None

    def kube_resources(self) -> Iterator[dict[str, Any]]:
        """One record per kind diag looked for (installed or not, collected or not)."""
        for record in (self.kube or {}).get("resources", []):
            if isinstance(record, dict):
                yield record


def _is_capture_path(path: Any) -> bool:
    return isinstance(path, str) and path.endswith(CAPTURE_SUFFIXES)


class OutputIndex:
    """(host, command id) -> the bundle path of that output: what evidence cites.

    Built from the manifest (:meth:`Bundle.outputs`) or from ``(host, id, path)`` triples (the
    facts' ``commands`` table); a pair the manifest does not list answers with the writer's
    layout (:func:`output_path`), so evidence about a missing output still names where it would
    be."""

    def __init__(self, entries: Iterable[tuple[str, str, Any]] = (),
                 kube: Iterable[tuple[str, str, Any]] = ()) -> None:
        self._paths: dict[tuple[str, str], str] = {}
        self._captures: dict[str, str] = {}
        self._kube: dict[tuple[str, str], str] = {}
        for group, kind, path in kube:
            if isinstance(path, str):
                self._kube.setdefault((str(group), str(kind)), path)
        for host, command_id, path in entries:
            if not isinstance(path, str):
                continue
            self._paths[(str(host), str(command_id))] = path
            if _is_capture_path(path):
                self._captures.setdefault(str(host), path)

    def path(self, host: str, command_id: str, suffix: str = OUTPUT_SUFFIX) -> str:
        """The file of ``host``'s output of ``command_id`` (a phase suffix such as
        ``+after-capture`` is not part of the id)."""
        listed = self._paths.get((host, command_id))
        return listed if listed is not None else output_path(host, command_id, suffix)

    def capture(self, host: str) -> str | None:
        """The first capture file of ``host``, or None."""
        return self._captures.get(host)

    def kube_objects(self, group: str, kind: str) -> str | None:
        """The file holding the objects of ``kind`` (API group ``group``, ``""`` for the core
        group) as one List, or None when that kind's objects were not read."""
        return self._kube.get((group, kind))


def kube_object_pointer(item: int, pointer: str = "") -> str:
    """The JSON pointer, inside a kind's stored List, of the ``item``-th object's part at
    ``pointer`` (relative to the object: a ``kubectl patch`` path): ``/items/<item><pointer>``."""
    return f"/items/{int(item)}{pointer}"


def command_record(host: str, index: int) -> tuple[str, str]:
    """(file, JSON pointer) of the manifest's record of ``host``'s ``index``-th command: what
    evidence cites for a command's outcome."""
    return MANIFEST, f"/hosts/{_pointer_token(host)}/commands/{index}"


def _pointer_token(text: str) -> str:
    """One JSON pointer reference token (RFC 6901): ``~`` and ``/`` escaped."""
    return text.replace("~", "~0").replace("/", "~1")


def is_bundle(path: Path) -> bool:
    """A directory, a ``.tar.gz``/``.tgz``/``.tar`` archive, or any tar file: read as a bundle
    (anything else is read as a capture)."""
    path = Path(path)
    if path.is_dir():
        return True
    if path.name.lower().endswith((".tar.gz", ".tgz", ".tar")):
        return True
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def source_sha256(source: Path) -> str | None:
    """What names a bundle in a document: the archive's sha256, or for a directory its
    manifest's; None when there is no such file."""
    source = Path(source)
    target = source / MANIFEST if source.is_dir() else source
    return sha256_file(target) if target.is_file() else None


def bundle_id(source: Path) -> str:
    """The bundle's identity in an evidence lake: the sha256 of its ``manifest.json`` (the
    manifest names every file with its sha256, so it names the whole bundle), the same for the
    directory and its archive. Raises :class:`UnusableInput` when there is no manifest."""
    source = Path(source)
    if source.is_dir():
        path = source / MANIFEST
        if not path.is_file():
            raise UnusableInput(f"not a bundle: no {MANIFEST} in {source}")
        return sha256_file(path)
    try:
        with tarfile.open(source, "r|*") as tar:      # streaming: members in archive order
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if member.isfile() and parts and parts[-1] == MANIFEST and len(parts) <= 2:
                    if member.size > MAX_MANIFEST_BYTES:
                        raise UnusableInput(f"bundle refused: {MANIFEST} is too large")
                    handle = tar.extractfile(member)
                    assert handle is not None
                    return hashlib.sha256(handle.read()).hexdigest()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise UnusableInput(f"unreadable bundle archive {source}: {err}") from None
    raise UnusableInput(f"not a bundle: no {MANIFEST} in {source}")


def _checked_relative(name: str) -> PurePosixPath:
    if not isinstance(name, str) or not name or "\x00" in name or "\\" in name:
        raise UnusableInput(f"bundle refused: bad member name {name!r}")
    path = PurePosixPath(name)
    if path.is_absolute():
        raise UnusableInput(f"bundle refused: absolute path {name!r}")
    if any(part == ".." for part in path.parts):
        raise UnusableInput(f"bundle refused: path traversal in {name!r}")
    return path


def open_bundle(source: Path, extract_to: Path | None = None, *,
                max_total_bytes: int = MAX_TOTAL_BYTES,
                max_members: int = MAX_MEMBERS) -> Bundle:
    """Open a bundle directory or .tar.gz archive safely and verify it (see module docstring).

    An archive is extracted into ``extract_to`` (a new temporary directory if omitted).
    Raises :class:`UnusableInput` for anything unsafe or unreadable.
    """
    source = Path(source)
    if not source.exists():
        raise UnusableInput(f"bundle not found: {source}")
    if source.is_dir():
        root = source
    else:
        target = Path(extract_to) if extract_to else Path(tempfile.mkdtemp(prefix="diag-bundle-"))
        root = extract_archive(source, target, max_total_bytes=max_total_bytes,
                               max_members=max_members)
    return read_bundle_dir(root)


def extract_archive(archive: Path, target: Path, *, max_total_bytes: int = MAX_TOTAL_BYTES,
                    max_members: int = MAX_MEMBERS) -> Path:
    """Extract a bundle archive member by member, refusing anything unsafe; returns its root.

    ``target`` must be new or empty, so nothing already there (a planted symlink) is followed.
    """
    if target.is_symlink() or (target.exists() and any(target.iterdir())):
        raise UnusableInput(f"cannot extract into {target}: not a new, empty directory")
    target.mkdir(parents=True, exist_ok=True)
    total = 0
    members = 0
    tops: set[str] = set()
    try:
        tar = tarfile.open(archive, "r|*")  # streaming: sizes are counted, not trusted
    except (tarfile.TarError, OSError) as err:
        raise UnusableInput(f"not a bundle archive: {archive}: {err}") from None
    try:
        with tar:
            for member in tar:
                members += 1
                if members > max_members:
                    raise UnusableInput(f"bundle refused: more than {max_members} members")
                relative = _checked_relative(member.name)
                if member.issym() or member.islnk():
                    raise UnusableInput(f"bundle refused: link member {member.name!r}")
                if member.isdev() or member.isfifo():
                    raise UnusableInput(f"bundle refused: device or FIFO member {member.name!r}")
                if not (member.isfile() or member.isdir()):
                    raise UnusableInput(f"bundle refused: unsupported member {member.name!r}")
                tops.add(relative.parts[0])
                destination = target.joinpath(*relative.parts)
                if member.isdir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                with open(destination, "xb") as out:
                    while True:
                        chunk = source.read(1 << 20)
                        if not chunk:
                            break
                        total += len(chunk)
                        if total > max_total_bytes:
                            raise UnusableInput(
                                f"bundle refused: expands beyond {max_total_bytes} bytes "
                                "(decompression bomb?)")
                        out.write(chunk)
    except FileExistsError as err:
        raise UnusableInput(f"bundle refused: duplicate member {err.filename}") from None
    except (tarfile.TarError, EOFError, OSError, ValueError) as err:
        raise UnusableInput(f"unreadable bundle archive {archive}: {err}") from None
    if len(tops) == 1 and (target / next(iter(tops))).is_dir():
        return target / next(iter(tops))
    return target


def read_bundle_dir(root: Path) -> Bundle:
    """Read and verify a bundle directory (no links, no special files, sha256s checked)."""
    manifest_path = root / MANIFEST
    files: dict[str, os.stat_result] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            info = os.lstat(full)
            relative = full.relative_to(root).as_posix()
            if stat.S_ISLNK(info.st_mode):
                raise UnusableInput(f"bundle refused: symlink {relative!r}")
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                raise UnusableInput(f"bundle refused: special file {relative!r}")
            if info.st_nlink > 1:
                raise UnusableInput(f"bundle refused: hard link {relative!r}")
            files[relative] = info
    if MANIFEST not in files:
        raise UnusableInput(f"not a bundle: {root} has no {MANIFEST}")
    if files[MANIFEST].st_size > MAX_MANIFEST_BYTES:
        raise UnusableInput("bundle refused: manifest too large")
    try:
        manifest = json.loads(manifest_path.read_bytes())
    except (ValueError, UnicodeDecodeError) as err:
        raise UnusableInput(f"bundle manifest is not valid JSON: {err}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("hosts"), dict):
        raise UnusableInput("bundle manifest has no hosts table")
    version = manifest.get("schema_version")
    if version not in READ_SCHEMA_VERSIONS:
        raise UnusableInput(f"unknown bundle schema version {version!r}",
                            "this diag reads schemas "
                            + ", ".join(str(v) for v in READ_SCHEMA_VERSIONS))
    kube = manifest.get("kube")
    if kube is not None and not isinstance(kube, dict):
        raise UnusableInput("bundle manifest: kube is not an object")
    problems: list[Problem] = []
    listed = {MANIFEST, REDACTIONS}
    records = [command for record in manifest["hosts"].values() if isinstance(record, dict)
               for command in record.get("commands", [])]
    if kube:
        records += [entry for key in ("commands", "resources")
                    if isinstance(kube.get(key), list) for entry in kube[key]]
    entries = [(_checked_relative(command["path"]).as_posix(), command)
               for command in records
               if isinstance(command, dict) and command.get("path") is not None]
    digests = _sha256_files(root, sorted({key for key, _ in entries if key in files}))
    for key, command in entries:
        listed.add(key)
        if key not in files:
            problems.append(Problem("MISSING_FILE", key))
            continue
        if files[key].st_size != command.get("bytes"):
            problems.append(Problem("SIZE_MISMATCH", key,
                                    f"{files[key].st_size} != {command.get('bytes')}"))
        if digests[key] != command.get("sha256"):
            problems.append(Problem("SHA256_MISMATCH", key, digests[key]))
    for relative in sorted(set(files) - listed):
        problems.append(Problem("UNLISTED_FILE", relative))
    return Bundle(root=root, manifest=manifest, problems=tuple(problems))


def _sha256_files(root: Path, keys: list[str]) -> dict[str, str]:
    """sha256 of each file, several at a time: hashlib releases the GIL on large blocks, so a
    big bundle's check (0.5 s per GB on one core) runs on every core."""
    if len(keys) < 8:
        return {key: sha256_file(root / key) for key in keys}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return dict(zip(keys, pool.map(lambda key: sha256_file(root / key), keys)))


def sha256_file(path: Path) -> str:
    """The file's sha256, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["Bundle", "BundleWriter", "bundle_id", "OutputIndex", "Problem", "StreamFile",
           "command_record", "kube_object_pointer",
           "extract_archive", "is_bundle", "open_bundle", "output_path", "read_bundle_dir",
           "safe_component", "sha256_file", "source_sha256", "write_archive", "KUBE_SCHEMA_VERSION",
           "READ_SCHEMA_VERSIONS", "SCHEMA_VERSION"]
