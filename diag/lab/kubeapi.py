"""The lab's small Kubernetes API endpoint: enough of the API for a real kubectl to read
objects, and nothing else (lab only; never used against a real cluster).

Contract: :class:`KubeApiServer` (``with KubeApiServer(ApiOptions(objects_dir=...)) as api``)
serves HTTPS on a loopback port (``api.url``) from a thread, or as a process with
``python -m diag.lab.kubeapi --objects DIR --port-file FILE [...]`` (:func:`main`). The
certificate is self-signed for 127.0.0.1 (kept in :attr:`ApiOptions.cert_dir`, made when
missing) and goes into the kubeconfig as the cluster's CA: kubectl sends a token or an exec
credential plugin's token only over TLS, so plain HTTP (``tls=False``) serves anonymous
clients only. It answers, for ``GET`` only:

- ``/version``; legacy discovery: ``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>/<version>``
  (kubectl 1.32 asks for aggregated discovery first and takes this form when the answer is plain
  ``application/json``), listing the kinds of :data:`diag.k8s.kinds.KINDS` whose API group is
  installed, at every version the kind serves (newest preferred; :attr:`ApiOptions.versions`
  narrows it, e.g. to ``v2alpha1`` for a Cilium 1.17 cluster);
- lists and gets, cluster-wide and per namespace, with ``labelSelector`` (``k=v``, ``k!=v``,
  ``k``, ``!k``) and ``fieldSelector`` (``metadata.name``, ``metadata.namespace``); objects are
  returned at the version asked for (only ``apiVersion`` changes: the conversion Cilium's and
  Calico's CRDs declare is ``None``);
- the API's own ``Status`` bodies: 403 ``Forbidden`` for the resources in
  :attr:`ApiOptions.denied` or listed in :attr:`ApiOptions.denied_file` (worded as RBAC words
  it), 404 ``NotFound`` for a missing object or an unknown path (also for resources in
  :attr:`ApiOptions.vanished`: listed by discovery, gone when listed, as a CRD deleted in
  between), 401 when :attr:`ApiOptions.token` is set and the
  request does not carry it, 405 for any other method;
- :attr:`ApiOptions.slow` delays a resource's lists (for timeouts);
  :attr:`ApiOptions.before_read` is called with the resource before it is read (the lab refreshes
  status it takes from its daemons there).

Objects come from the ``*.json`` files in ``objects_dir`` (each one object or a List), re-read
whenever a file there changes, so editing a file is editing the cluster. Every object keeps what
the file gives; missing ``uid``, ``resourceVersion`` and ``creationTimestamp`` are filled in,
and with ``as_applied`` objects also carry ``managedFields`` and a last-applied annotation, as
after ``kubectl apply`` (so collection is tested on dropping them). Requests are logged in
:attr:`KubeApiServer.requests` (method, path, status).

:func:`write_kubeconfig` writes a kubeconfig for the endpoint (token or exec credential plugin).
"""
from __future__ import annotations

import argparse
import base64
import copy
import datetime
import hashlib
import ipaddress
import json
import os
import ssl
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from diag.k8s.kinds import KINDS, Kind, split_api_version
from diag.lab.kube_objects import read_objects

SERVER_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-diag-lab",
                  "gitCommit": "0000000000000000000000000000000000000000",
                  "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
                  "goVersion": "go1.23.0", "compiler": "gc", "platform": "linux/amd64"}
ALWAYS_INSTALLED = frozenset({"", "coordination.k8s.io"})
# served too, though diag never lists them: the CNI agent pods (how --via kubectl finds them)
# and the lab's debug pods
LAB_KINDS = (Kind("", "Pod", "pods", True, ("v1",), "core", ("po",)),)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
USER = "diag-lab"


@dataclass(frozen=True)
class ApiOptions:
    objects_dir: Path
    denied: frozenset[str] = frozenset()        # resources ("ciliumnodes.cilium.io", "nodes")
    vanished: frozenset[str] = frozenset()
    slow: Mapping[str, float] = field(default_factory=dict)
    installed_groups: frozenset[str] | None = None  # None: core + the objects' groups
    versions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    token: str | None = None
    as_applied: bool = True
    tls: bool = True
    cert_dir: Path | None = None                # default: a "tls" directory beside objects_dir
    denied_file: Path | None = None             # more denied resources, one a line, re-read
    before_read: Callable[[str], None] | None = None   # called with a resource before serving it


def resource_name(kind: Kind) -> str:
    return kind.resource


class ObjectStore:
    """The objects of a directory, indexed by kind; reloaded when a file changes."""

    def __init__(self, directory: Path, as_applied: bool) -> None:
        self.directory = Path(directory)
        self.as_applied = as_applied
        self._signature: tuple | None = None
        self._objects: dict[tuple[str, str], list[dict]] = {}
        self._lock = threading.Lock()
        self.generation = 0

    def _current_signature(self) -> tuple:
        entries = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                info = path.stat()
            except FileNotFoundError:         # removed since the listing: a deleted object
                continue
            entries.append((path.name, info.st_mtime_ns, info.st_size))
        return tuple(entries)

    def objects(self) -> dict[tuple[str, str], list[dict]]:
        with self._lock:
            signature = self._current_signature()
            if signature != self._signature:
                self._objects = self._load()
                self._signature = signature
                self.generation += 1
            return self._objects

    def _load(self) -> dict[tuple[str, str], list[dict]]:
        out: dict[tuple[str, str], list[dict]] = {}
        for items in read_objects(self.directory).values():
            for item in items:
                group, _ = split_api_version(item["apiVersion"])
                out.setdefault((group, item["kind"]), []).append(self._complete(item))
        return out

    def _complete(self, item: dict) -> dict:
        item = copy.deepcopy(item)
        metadata = item.setdefault("metadata", {})
        identity = f"{item['kind']}/{metadata.get('namespace', '')}/{metadata['name']}"
        digest = hashlib.sha256(identity.encode()).hexdigest()
        metadata.setdefault("uid", str(uuid.UUID(digest[:32])))
        metadata.setdefault("resourceVersion", str(int(digest[:6], 16)))
        metadata.setdefault("creationTimestamp", "2025-01-01T00:00:00Z")
        if self.as_applied:
            applied = {k: v for k, v in item.items() if k in ("apiVersion", "kind", "spec",
                                                              "data")}
            applied["metadata"] = {k: v for k, v in metadata.items()
                                   if k in ("name", "namespace", "labels")}
            metadata.setdefault("annotations", {})[LAST_APPLIED] = \
                json.dumps(applied, separators=(",", ":"), sort_keys=True) + "\n"
            metadata["managedFields"] = [{
                "apiVersion": item["apiVersion"], "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:annotations": {".": {}}}},
                "manager": "kubectl-client-side-apply", "operation": "Update",
                "time": "2025-01-01T00:00:00Z"}]
        return item


def _status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "details": details or {}, "code": code}


def _label_selector_matches(expression: str, labels: Mapping[str, str]) -> bool:
    for term in filter(None, (t.strip() for t in expression.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def ensure_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for ``host``: ``cert.pem`` and ``key.pem`` in
    ``directory`` (mode 0600), made once and reused."""
    cert_path, key_path = Path(directory) / "cert.pem", Path(directory) / "key.pem"
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "diag-lab-kubeapi")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    Path(directory).mkdir(parents=True, exist_ok=True)
    for path, data in ((key_path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())), (cert_path, cert.public_bytes(
                serialization.Encoding.PEM))):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    return cert_path, key_path


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, ssl.SSLError, TimeoutError)):
            return        # the client left (kubectl gave up on a slow answer): not our error
        super().handle_error(request, client_address)


class KubeApiServer:
    def __init__(self, options: ApiOptions, host: str = "127.0.0.1", port: int = 0) -> None:
        self.options = options
        self.store = ObjectStore(options.objects_dir, options.as_applied)
        self.requests: list[tuple[str, str, int]] = []
        handler = _handler_class(self)
        self.httpd = _Server((host, port), handler)
        self.ca_pem: bytes | None = None
        if options.tls:
            cert, key = ensure_certificate(options.cert_dir or
                                           Path(options.objects_dir).parent / "tls", host)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.ca_pem = cert.read_bytes()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{'https' if self.options.tls else 'http'}://{host}:{port}"

    def kubeconfig(self, path: Path, **kwargs: Any) -> Path:
        """A kubeconfig for this endpoint (see :func:`write_kubeconfig`)."""
        return write_kubeconfig(path, self.url, ca_pem=self.ca_pem, **kwargs)

    def start(self) -> KubeApiServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="diag-kubeapi",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> KubeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what is served ---------------------------------------------------------------------
    def denied(self) -> frozenset[str]:
        """:attr:`ApiOptions.denied` and the resources listed in :attr:`ApiOptions.denied_file`
        (one a line, ``#`` comments), read on every request: a lab marks kinds denied at run
        time by editing that file."""
        extra: set[str] = set()
        if self.options.denied_file is not None:
            try:
                text = Path(self.options.denied_file).read_text()
            except FileNotFoundError:
                text = ""
            extra = {line.split("#", 1)[0].strip() for line in text.splitlines()} - {""}
        return self.options.denied | extra

    def installed_groups(self) -> frozenset[str]:
        if self.options.installed_groups is not None:
            return self.options.installed_groups | ALWAYS_INSTALLED
        return ALWAYS_INSTALLED | {group for group, _ in self.store.objects()}

    def served(self) -> list[tuple[Kind, tuple[str, ...]]]:
        groups = self.installed_groups()
        return [(kind, tuple(self.options.versions.get(kind.resource, kind.versions)))
                for kind in KINDS + LAB_KINDS if kind.group in groups]

    def group_versions(self) -> dict[str, list[str]]:
        """group -> versions, preferred first."""
        out: dict[str, list[str]] = {}
        for kind, versions in self.served():
            entry = out.setdefault(kind.group, [])
            for version in versions:
                if version not in entry:
                    entry.append(version)
        return out

    def resources_of(self, group: str, version: str) -> list[Kind]:
        return [kind for kind, versions in self.served()
                if kind.group == group and version in versions]


def _handler_class(server: KubeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "diag-lab-kubeapi"

        def log_message(self, *args: Any) -> None:   # the request log is kept, not printed
            pass

        def send_json(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            server.requests.append((self.command, self.path, code))

        def do_GET(self) -> None:
            token = server.options.token
            if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
                self.send_json(401, _status(401, "Unauthorized", "Unauthorized"))
                return
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            parts = [p for p in url.path.split("/") if p]
            try:
                code, body = route(server, parts, query)
            except Exception as err:  # a lab bug: answer as the API would, keep serving
                code, body = 500, _status(500, "InternalError", f"diag lab api: {err}")
            self.send_json(code, body)

        def _not_allowed(self) -> None:
            self.send_json(405, _status(405, "MethodNotAllowed",
                                        "the server does not allow this method on the requested "
                                        "resource"))

        do_POST = do_PUT = do_PATCH = do_DELETE = _not_allowed

    return Handler


_NOT_FOUND = _status(404, "NotFound", "the server could not find the requested resource",
                     {"causes": [{"reason": "UnexpectedServerResponse",
                                  "message": "404 page not found"}]})


def route(server: KubeApiServer, parts: list[str], query: dict[str, str]) -> tuple[int, dict]:
    if parts == ["version"]:
        return 200, SERVER_VERSION
    if parts == ["api"]:
        return 200, {"kind": "APIVersions", "versions": ["v1"],
                     "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                     "serverAddress": "127.0.0.1"}]}
    if parts == ["apis"]:
        groups = []
        for group, versions in server.group_versions().items():
            if not group:
                continue
            entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
        return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return 404, _NOT_FOUND
    kinds = server.resources_of(group, version)
    if not kinds:
        return 404, _NOT_FOUND
    group_version = f"{group}/{version}" if group else version
    if not rest:
        resources = [{"name": k.plural, "singularName": k.kind.lower(),
                      "namespaced": k.namespaced, "kind": k.kind,
                      "verbs": ["get", "list", "watch"],
                      **({"shortNames": list(k.short_names)} if k.short_names else {})}
                     for k in kinds]
        if group == "":
            resources.append(NAMESPACES_RESOURCE)
        return 200, {"kind": "APIResourceList", "apiVersion": "v1",
                     "groupVersion": group_version, "resources": resources}
    if group == "" and rest[0] == "namespaces" and len(rest) <= 2:
        return _namespaces(server, rest[1] if len(rest) == 2 else None)
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    plural, name = rest[0], (rest[1] if len(rest) > 1 else None)
    if len(rest) > 2:
        return 404, _NOT_FOUND
    kind = next((k for k in kinds if k.plural == plural), None)
    if kind is None or (namespace is not None and not kind.namespaced):
        return 404, _NOT_FOUND
    resource = kind.resource
    qualified = f"{plural}.{group}" if group else plural
    verb = "get" if name else "list"
    if resource in server.denied():
        where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        return 403, _status(403, "Forbidden",
                            f'{qualified}{" " + json.dumps(name) if name else ""} is forbidden: '
                            f'User "{USER}" cannot {verb} resource "{plural}" in API group '
                            f'"{group}" {where}',
                            {**({"name": name} if name else {}), "group": group, "kind": plural})
    delay = server.options.slow.get(resource)
    if delay:
        time.sleep(delay)
    if resource in server.options.vanished:
        return 404, _NOT_FOUND
    if server.options.before_read is not None:
        server.options.before_read(resource)
    items = [_at_version(o, group_version) for o in server.store.objects().get((group, kind.kind),
                                                                                [])]
    if namespace is not None:
        items = [o for o in items if o["metadata"].get("namespace") == namespace]
    if name is not None:
        found = next((o for o in items if o["metadata"]["name"] == name), None)
        if found is None:
            return 404, _status(404, "NotFound", f'{qualified} "{name}" not found',
                                {"name": name, "group": group, "kind": plural})
        return 200, found
    items = _select(items, query)
    return 200, {"kind": kind.list_kind, "apiVersion": group_version,
                 "metadata": {"resourceVersion": str(server.store.generation)},
                 "items": items}


# kubectl asks whether a namespace exists before it words a NotFound for a namespaced object
NAMESPACES_RESOURCE = {"name": "namespaces", "singularName": "namespace", "namespaced": False,
                       "kind": "Namespace", "verbs": ["get", "list", "watch"],
                       "shortNames": ["ns"]}
DEFAULT_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")


def _namespaces(server: KubeApiServer, name: str | None) -> tuple[int, dict]:
    names = set(DEFAULT_NAMESPACES)
    for objects in server.store.objects().values():
        names.update(o["metadata"]["namespace"] for o in objects
                     if o["metadata"].get("namespace"))
    items = [{"apiVersion": "v1", "kind": "Namespace",
              "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}},
              "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
             for n in sorted(names)]
    if name is None:
        return 200, {"kind": "NamespaceList", "apiVersion": "v1",
                     "metadata": {"resourceVersion": "1"}, "items": items}
    found = next((i for i in items if i["metadata"]["name"] == name), None)
    if found is None:
        return 404, _status(404, "NotFound", f'namespaces "{name}" not found',
                            {"name": name, "kind": "namespaces"})
    return 200, found


def _at_version(obj: dict, group_version: str) -> dict:
    return dict(obj, apiVersion=group_version)


def _select(items: list[dict], query: dict[str, str]) -> list[dict]:
    if "labelSelector" in query:
        items = [o for o in items if _label_selector_matches(
            query["labelSelector"], o["metadata"].get("labels") or {})]
    for term in filter(None, query.get("fieldSelector", "").split(",")):
        key, _, value = term.replace("==", "=").partition("=")
        field_name = key.removeprefix("metadata.")
        items = [o for o in items if str(o["metadata"].get(field_name, "")) == value]
    return items


def write_kubeconfig(path: Path, url: str, *, ca_pem: bytes | None = None,
                     token: str | None = None, exec_command: list[str] | None = None,
                     context: str = "diag-lab", namespace: str | None = None) -> Path:
    """A kubeconfig (JSON, which kubectl reads like YAML) for the endpoint; mode 0600.
    ``ca_pem``: the endpoint's certificate, trusted as the cluster's CA."""
    user: dict[str, Any] = {}
    if token is not None:
        user["token"] = token
    elif not exec_command:
        # kubectl prompts for a user name when an https cluster's user has no credentials;
        # an endpoint without ApiOptions.token takes any token
        user["token"] = "diag-lab"
    if exec_command:
        user["exec"] = {"apiVersion": "client.authentication.k8s.io/v1", "command":
                        exec_command[0], "args": exec_command[1:],
                        "interactiveMode": "Never", "provideClusterInfo": False}
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": context, "cluster": {
            "server": url, **({"certificate-authority-data": base64.b64encode(ca_pem).decode()}
                              if ca_pem else {})}}],
        "users": [{"name": USER, "user": user}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": USER,
                                                   **({"namespace": namespace}
                                                      if namespace else {})}}],
        "current-context": context,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(config, handle, indent=1)
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the endpoint as a process until SIGTERM; its URL goes to ``--port-file``."""
    parser = argparse.ArgumentParser(prog="python -m diag.lab.kubeapi")
    parser.add_argument("--objects", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--deny", action="append", default=[])
    parser.add_argument("--denied-file", type=Path, help="more denied resources, one a line")
    parser.add_argument("--vanished", action="append", default=[])
    parser.add_argument("--slow", action="append", default=[], help="RESOURCE=SECONDS")
    parser.add_argument("--token")
    parser.add_argument("--cert-dir", type=Path)
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for the endpoint")
    parser.add_argument("--plain-http", action="store_true")
    args = parser.parse_args(argv)
    slow = {}
    for entry in args.slow:
        resource, _, seconds = entry.partition("=")
        slow[resource] = float(seconds)
    api = KubeApiServer(ApiOptions(objects_dir=args.objects, denied=frozenset(args.deny),
                                   vanished=frozenset(args.vanished), slow=slow,
                                   token=args.token, tls=not args.plain_http,
                                   denied_file=args.denied_file,
                                   cert_dir=args.cert_dir), port=args.port)
    if args.kubeconfig is not None:
        api.kubeconfig(args.kubeconfig, token=args.token)
    tmp = args.port_file.with_name(f".{args.port_file.name}.tmp")
    tmp.write_text(api.url + "\n")
    os.replace(tmp, args.port_file)
    try:
        api.httpd.serve_forever()
    finally:
        api.httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
