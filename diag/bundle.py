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

Bad input degrades per file, never for the whole bundle when it can be helped
(docs/bundle-format.md, "Bad input"): the manifest is validated against its schema up front (a bad
top-level field refuses the bundle, naming the field; a bad host record makes that host
``UNUSABLE`` and the rest is read; a bad command record is dropped); a file larger than the reading
limit of its kind (:data:`MAX_OUTPUT_BYTES` for a command's output, :data:`MAX_KUBE_BYTES` for a
Kubernetes file) is never loaded, also inside an archive, where it is skipped before its bytes
are decompressed into anything (``TOO_LARGE`` problem); JSON is read with a depth limit
(:func:`load_json`).
"""
from __future__ import annotations

import errno
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
UNUSABLE = "UNUSABLE"      # the reachability given to a host whose manifest record is bad

# Reader limits: generous for real bundles (captures are bounded by --max-bytes), small enough
# that a crafted archive cannot fill the disk or memory.
MAX_TOTAL_BYTES = 4 * 1024**3
MAX_MEMBERS = 100_000
MAX_MANIFEST_BYTES = 64 * 1024**2
# Per-file reading limits: a command's output is cut by the collector at its cap (16 MiB,
# collect/catalogue.py's DEFAULT_CAP), so a larger file was not written by diag collect; kubectl's
# object lists are not capped by the collector, so their limit is more generous. Captures are
# streamed and need none (the archive's total limit still bounds them).
MAX_OUTPUT_BYTES = 16 * 1024**2
MAX_KUBE_BYTES = 64 * 1024**2
# Deeper JSON than this is refused: real outputs nest less than 20 levels, and nothing that reads
# JSON afterwards (parsers, renderers) should meet a structure deep enough to exhaust the stack.
MAX_JSON_DEPTH = 128

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._@+-]")


def safe_component(name: str) -> str:
    """A host name or command id turned into one safe path component (no '/', no '..')."""
    cleaned = _SAFE_NAME.sub("_", name).strip(".") or "_"
    return cleaned[:120]


class OutputTooLarge(OSError):
    """A bundle file larger than the reading limit of its kind: refused, never loaded."""


def read_limit(relative: str) -> int | None:
    """The most bytes diag reads of the bundle file ``relative`` (None: streamed, no limit)."""
    if relative.endswith(CAPTURE_SUFFIXES):
        return None
    if relative == MANIFEST:
        return MAX_MANIFEST_BYTES
    if relative.startswith(KUBE_DIR + "/"):
        return MAX_KUBE_BYTES
    return MAX_OUTPUT_BYTES


def load_json(data: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for evidence: ValueError (json's own, or "nested deeper than ...") for
    anything that is not JSON within ``max_depth`` levels of arrays and objects."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {max_depth} levels") from None
    if not _within_depth(value, max_depth):
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    return value


def _within_depth(value: Any, limit: int) -> bool:
    """No array or object in ``value`` deeper than ``limit`` (iterative: deep input cannot
    exhaust the stack here)."""
    if type(value) is not dict and type(value) is not list:
        return True
    stack = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > limit:
            return False
        for child in (node.values() if type(node) is dict else node):
            kind = type(child)
            if kind is dict or kind is list:
                push((child, depth + 1))
    return True


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

    # SHA256_MISMATCH | MISSING_FILE | UNLISTED_FILE | SIZE_MISMATCH | TOO_LARGE |
    # BAD_HOST_RECORD | BAD_COMMAND_RECORD
    kind: str
    path: str
    detail: str = ""
    host: str = ""      # the host a manifest record problem is about


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
        """The file's bytes; :class:`OutputTooLarge` (an OSError) past its reading limit
        (:func:`read_limit`), checked before anything is read."""
        path = self.path(relative)
        limit = read_limit(relative)
        with open(path, "rb") as handle:
            if limit is None:
                return handle.read()
            size = os.fstat(handle.fileno()).st_size
            data = handle.read(limit + 1) if size <= limit else b""
        if size > limit or len(data) > limit:
            raise OutputTooLarge(errno.EFBIG, f"{max(size, len(data))} bytes, more than the "
                                 f"reading limit of {limit}", relative)
        return data

    @property
    def unusable_hosts(self) -> dict[str, str]:
        """Hosts whose manifest record could not be used: host -> why."""
        return {host: str(record.get("error"))
                for host, record in self.manifest.get("hosts", {}).items()
                if record.get("reachability") == UNUSABLE}

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


def checked_input(path: Path, directories: bool = True, what: str = "input") -> Path:
    """``path`` if it is a regular file (or, with ``directories``, a directory): a FIFO, a
    socket, a device or a missing path is refused with :class:`UnusableInput` before anything
    opens it (opening a FIFO waits for a writer forever; a device never ends)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UnusableInput(f"{path}: no such file" if what == "capture"
                            else f"not found: {path}") from None
    except OSError as err:
        raise UnusableInput(f"cannot read {what} {path}: {err.strerror}") from None
    if stat.S_ISREG(mode) or (directories and stat.S_ISDIR(mode)):
        return path
    kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode)
            or stat.S_ISBLK(mode) else "not a regular file")
    wanted = "a file or a bundle directory" if directories else "a file"
    hints = {"input": "give a capture, a bundle directory or a bundle archive",
             "capture": "give a capture file (pcap or pcapng)"}
    raise UnusableInput(f"{path} is {kind}, not {wanted}", hints.get(what))


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
        return read_bundle_dir(source)
    target = Path(extract_to) if extract_to else Path(tempfile.mkdtemp(prefix="diag-bundle-"))
    oversized: list[str] = []
    root = extract_archive(source, target, max_total_bytes=max_total_bytes,
                           max_members=max_members, oversized=oversized)
    inside = root.relative_to(target).parts
    return read_bundle_dir(root, [PurePosixPath(*PurePosixPath(name).parts[len(inside):])
                                  .as_posix() for name in oversized])


def extract_archive(archive: Path, target: Path, *, max_total_bytes: int = MAX_TOTAL_BYTES,
                    max_members: int = MAX_MEMBERS, oversized: list[str] | None = None) -> Path:
    """Extract a bundle archive member by member, refusing anything unsafe; returns its root.

    ``target`` must be new or empty, so nothing already there (a planted symlink) is followed.
    A member larger than its reading limit (:func:`read_limit`, judged from its name below the
    archive's top directory) is not written: its name goes to ``oversized`` and its bytes are
    skipped (counted towards ``max_total_bytes`` from its header, before they are decompressed,
    so a bomb of large members is refused without inflating them).
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
                limit = _member_limit(relative)
                if limit is not None and member.size > limit:
                    total += member.size
                    if total > max_total_bytes:
                        raise UnusableInput(
                            f"bundle refused: expands beyond {max_total_bytes} bytes "
                            "(decompression bomb?)")
                    if oversized is not None:
                        oversized.append(relative.as_posix())
                    continue           # tarfile skips its bytes; nothing of it is kept
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


def _member_limit(relative: PurePosixPath) -> int | None:
    """The reading limit of an archive member, judged as the bundle file it becomes: below the
    archive's one top directory, or as itself in an archive without one (the top directory is
    only known after the last member, so the more generous of the two)."""
    names = [relative] + ([PurePosixPath(*relative.parts[1:])] if len(relative.parts) > 1 else [])
    limits = [read_limit(name.as_posix()) for name in names]
    return None if None in limits else max(limits)


def read_bundle_dir(root: Path, oversized: Iterable[str] = ()) -> Bundle:
    """Read and verify a bundle directory (no links, no special files, sha256s checked).
    ``oversized``: members an archive held but :func:`extract_archive` skipped (too large)."""
    oversized = set(oversized)
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
    if MANIFEST not in files and MANIFEST in oversized:
        raise UnusableInput(f"bundle refused: manifest larger than {MAX_MANIFEST_BYTES} bytes")
    if MANIFEST not in files:
        raise UnusableInput(f"not a bundle: {root} has no {MANIFEST}")
    if files[MANIFEST].st_size > MAX_MANIFEST_BYTES:
        raise UnusableInput(f"bundle refused: manifest larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = load_json(manifest_path.read_bytes())
    except (ValueError, UnicodeDecodeError) as err:
        raise UnusableInput(f"bundle manifest is not valid JSON: {err}") from None
    manifest, problems = validated_manifest(manifest)
    kube = manifest.get("kube")
    listed = {MANIFEST, REDACTIONS}
    records = [command for record in manifest["hosts"].values()
               for command in record["commands"]]
    if kube:
        records += [entry for key in ("commands", "resources") for entry in kube.get(key, [])]
    entries = [(_checked_relative(command["path"]).as_posix(), command)
               for command in records if command.get("path") is not None]
    too_large = {key for key, _ in entries if key in files
                 and (read_limit(key) or files[key].st_size) < files[key].st_size}
    digests = _sha256_files(root, sorted({key for key, _ in entries
                                          if key in files and key not in too_large}))
    for key, command in entries:
        listed.add(key)
        if key in oversized or key in too_large:
            problems.append(Problem("TOO_LARGE", key, f"more than the reading limit of "
                                                      f"{read_limit(key)} bytes: not read"))
            continue
        if key not in files:
            problems.append(Problem("MISSING_FILE", key))
            continue
        if files[key].st_size != command.get("bytes"):
            problems.append(Problem("SIZE_MISMATCH", key,
                                    f"{files[key].st_size} != {command.get('bytes')}"))
        if digests[key] != command.get("sha256"):
            problems.append(Problem("SHA256_MISMATCH", key, digests[key]))
    for relative in sorted((set(files) | set(oversized)) - listed):
        problems.append(Problem("UNLISTED_FILE", relative))
    return Bundle(root=root, manifest=manifest, problems=tuple(problems))


# --- the manifest's schema --------------------------------------------------------------------
# Each field is checked for the type the writer gives it (None = absent or null is fine); what
# readers then take from the manifest has that type, so no reader needs its own guard.

_TEXT, _INT, _NUMBER, _BOOL, _OBJECT, _LIST = ((str,), (int,), (int, float), (bool,), (dict,),
                                               (list,))
_TOP_FIELDS = {"status": _TEXT, "started": _TEXT, "finished": _TEXT, "diag_version": _TEXT,
               "partial_reasons": _LIST, "run": _OBJECT, "redactions": _OBJECT,
               "created_by": _OBJECT}
_HOST_FIELDS = {"commands": _LIST, "reachability": _TEXT, "error": _TEXT, "target": _TEXT,
                "transport": _TEXT, "declared": _OBJECT, "daemons": _OBJECT,
                "clock_offset_s": _NUMBER, "clock_uncertainty_s": _NUMBER}
_COMMAND_FIELDS = {"id": _TEXT, "path": _TEXT, "bytes": _INT, "sha256": _TEXT, "outcome": _TEXT,
                   "exit_code": _INT, "stderr": _TEXT, "started": _TEXT, "duration_s": _NUMBER,
                   "timeout_s": _NUMBER, "truncated": _BOOL, "phase": _TEXT, "daemon": _TEXT,
                   "cap_bytes": _INT, "argv": _LIST, "run_as": _TEXT}
_KUBE_RECORD_FIELDS = {"id": _TEXT, "path": _TEXT, "bytes": _INT, "sha256": _TEXT,
                       "outcome": _TEXT, "group": _TEXT, "resource": _TEXT, "kind": _TEXT,
                       "version": _TEXT, "stderr": _TEXT}
_DECLARED_FIELDS = {"role": _TEXT, "pod_cidr": _TEXT, "cluster_iface": _TEXT, "lb_ips": _LIST,
                    "labels": _OBJECT}


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _wanted(types: tuple[type, ...]) -> str:
    return {_TEXT: "a string", _INT: "an integer", _NUMBER: "a number", _BOOL: "a boolean",
            _OBJECT: "an object", _LIST: "an array"}[types]


def _field_problem(record: dict[str, Any], fields: dict[str, tuple[type, ...]]) -> str | None:
    """The first field of ``record`` not of its type (None: all are), as one phrase."""
    for name, types in fields.items():
        value = record.get(name)
        if value is None:
            continue
        # bool is an int to Python, never to the manifest's writer
        if not isinstance(value, types) or (isinstance(value, bool) and types != _BOOL):
            return f"{name!r} is {_type_name(value)}, not {_wanted(types)}"
    return None


def declared_problem(declared: Any) -> str | None:
    """Why a host's declared model fields (the manifest's ``declared``, an inventory entry)
    cannot be used, or None: each known field of its type, ``lb_ips`` a list of strings."""
    if not isinstance(declared, dict):
        return f"declared is {_type_name(declared)}, not an object"
    problem = _field_problem(declared, _DECLARED_FIELDS)
    if problem is None and not all(isinstance(ip, str) for ip in declared.get("lb_ips") or []):
        problem = "'lb_ips' holds something else than strings"
    return problem


def _host_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"the record is {_type_name(record)}, not an object"
    problem = _field_problem(record, _HOST_FIELDS)
    if problem is None and record.get("declared") is not None:
        problem = declared_problem(record["declared"])
    return problem


def _command_problem(record: Any, fields: dict[str, tuple[type, ...]]) -> str | None:
    if not isinstance(record, dict):
        return f"the record is {_type_name(record)}, not an object"
    problem = _field_problem(record, fields)
    if problem is None and fields is _COMMAND_FIELDS and not record.get("id"):
        problem = "it has no 'id'"
    if problem is None and isinstance(record.get("bytes"), int) and record["bytes"] < 0:
        problem = "'bytes' is negative"
    return problem


def validated_manifest(manifest: Any) -> tuple[dict[str, Any], list[Problem]]:
    """The manifest checked against its schema (docs/bundle-format.md, "Bad input"), and the
    problems found: a bad top-level field raises :class:`UnusableInput` naming it; a host
    record that is not usable becomes ``{"commands": [], "reachability": "UNUSABLE", "error":
    why}`` (a ``BAD_HOST_RECORD`` problem); a bad command or kube record is dropped (a
    ``BAD_COMMAND_RECORD`` problem). The manifest given is not changed."""
    if not isinstance(manifest, dict):
        raise UnusableInput(f"bundle manifest is {_type_name(manifest)}, not an object")
    version = manifest.get("schema_version")
    if version not in READ_SCHEMA_VERSIONS or isinstance(version, bool):
        raise UnusableInput(f"unknown bundle schema version {version!r}",
                            "this diag reads schemas "
                            + ", ".join(str(v) for v in READ_SCHEMA_VERSIONS))
    if not isinstance(manifest.get("hosts"), dict):
        raise UnusableInput("bundle manifest has no hosts table",
                            f"field 'hosts' is {_type_name(manifest.get('hosts'))}, "
                            "not an object")
    problem = _field_problem(manifest, _TOP_FIELDS)
    if problem is None and not all(isinstance(r, str) for r in
                                   manifest.get("partial_reasons") or []):
        problem = "'partial_reasons' holds something else than strings"
    kube = manifest.get("kube")
    if problem is None and kube is not None:
        problem = (f"'kube' is {_type_name(kube)}, not an object" if not isinstance(kube, dict)
                   else next((f"'kube.{key}' is {_type_name(kube[key])}, not an array"
                              for key in ("commands", "resources")
                              if kube.get(key) is not None and not isinstance(kube[key], list)),
                             None))
    if problem is not None:
        raise UnusableInput(f"bundle manifest: field {problem}")
    problems: list[Problem] = []
    hosts: dict[str, Any] = {}
    for host, record in manifest["hosts"].items():
        where = f"{MANIFEST}#/hosts/{_pointer_token(host)}"
        why = _host_problem(record)
        if why is not None:
            problems.append(Problem("BAD_HOST_RECORD", where, why, host))
            hosts[host] = {"commands": [], "reachability": UNUSABLE,
                           "error": f"manifest record unusable: {why}"}
            continue
        commands = []
        for index, command in enumerate(record.get("commands") or []):
            why = _command_problem(command, _COMMAND_FIELDS)
            if why is None:
                commands.append(command)
            else:
                problems.append(Problem("BAD_COMMAND_RECORD", f"{where}/commands/{index}", why,
                                        host))
        hosts[host] = dict(record, commands=commands)
    out = dict(manifest, hosts=hosts)
    if isinstance(kube, dict):
        section = dict(kube)
        for key in ("commands", "resources"):
            kept = []
            for index, entry in enumerate(kube.get(key) or []):
                why = _command_problem(entry, _KUBE_RECORD_FIELDS)
                if why is None:
                    kept.append(entry)
                else:
                    problems.append(Problem("BAD_COMMAND_RECORD",
                                            f"{MANIFEST}#/kube/{key}/{index}", why))
            section[key] = kept
        out["kube"] = section
    return out, problems


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


__all__ = ["Bundle", "BundleWriter", "OutputIndex", "OutputTooLarge", "Problem", "StreamFile",
           "bundle_id", "checked_input", "command_record", "declared_problem", "kube_object_pointer",
           "load_json", "read_limit", "validated_manifest", "extract_archive", "is_bundle",
           "open_bundle", "output_path", "read_bundle_dir",
           "safe_component", "sha256_file", "source_sha256", "write_archive", "KUBE_SCHEMA_VERSION",
           "READ_SCHEMA_VERSIONS", "SCHEMA_VERSION"]
