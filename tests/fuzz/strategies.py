"""Hypothesis strategies for hostile evidence: bundle outputs, manifests, captures.

- :func:`json_values`: any JSON value, nested, with the types evidence gets wrong (huge and
  negative ints, floats, booleans where numbers are, strings with control characters and rich
  markup, keys the parsers read beside random ones).
- :func:`command_output`: what one command's output may be in a damaged bundle: JSON of any
  shape (a real fixture mutated, or made up), text lines of the parsers' own words in any order,
  binary junk, deep nesting, nothing at all.
- :func:`manifest`: a bundle manifest with any part replaced by any JSON value.
- :func:`kube_list`: a Kubernetes List as ``kubectl get -o json`` prints it (the real objects of
  tests/fixtures/k8s/upstream) with any node replaced by any JSON value, or junk.
- :func:`capture`: a pcap or pcapng file assembled from every block type (SHB, IDB, EPB, SPB, the
  obsolete PB, NRB, ISB, unknown), with any options, link types, timestamps and packet bytes (real
  frames, mutated or cut), then cut at any offset.

Used by the CI-sized property tests of this package and by benchmarks/fuzz.py for the long run.
"""
from __future__ import annotations

import json
import struct
from functools import cache
from pathlib import Path

from hypothesis import strategies as st

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# keys the parsers look for, so that made-up objects reach past their first check
KEYS = ["ifname", "ifindex", "mtu", "flags", "dst", "gateway", "dev", "table", "priority", "src",
        "fwmark", "action", "lladdr", "state", "addr_info", "local", "prefixlen", "family",
        "linkinfo", "info_kind", "info_data", "id", "port", "address", "master", "link",
        "nexthops", "protocol", "metric", "scope", "prefsrc", "mac", "vni", "peers", "routes",
        "ipv4Unicast", "vrfs", "neighbor", "state", "remoteAs", "localAs", "bgpState",
        "conf", "neighbor-address", "peer-as", "session-state", "paths", "nlri", "prefix",
        "attrs", "type", "as_paths", "asns", "best", "valid", "prefixes", "installed",
        "selected", "distance", "nexthop", "ip", "interfaceName", "uptime", "pfxRcd"]
HOSTILE_TEXT = ["[/]", "[bold]x[/bold]", "\x1b[31m", "\x1b]8;;http://x/\x07", "\x9b2J", "\u202e",
                "\x00", "\r", "\ud7ff", "%", "{", "}", "\\", "' OR 1=1", "999999999999999999999",
                "-1", "1e309", "NaN", "all", "default", "0x10/0xff", "fe80::1%eth0", "::",
                "10.0.0.0/33", "256.1.1.1", "Established", "UP", "LOWER_UP"]


def scalars():
    return st.one_of(
        st.none(), st.booleans(),
        st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(HOSTILE_TEXT), st.text(max_size=20))


def json_values(max_leaves: int = 40):
    """Any JSON value (lists and objects nested as deep as the leaves allow)."""
    return st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=6),
            st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner,
                            max_size=8)),
        max_leaves=max_leaves)


@cache
def fixture_outputs() -> dict[str, tuple[bytes, ...]]:
    """Real outputs per command id (tests/fixtures/<id>/), a few each, as seeds."""
    out: dict[str, tuple[bytes, ...]] = {}
    for directory in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        files = sorted(p for p in directory.glob("*.out"))[:4]
        if files:
            out[directory.name] = tuple(p.read_bytes()[:20000] for p in files)
    return out


def _mutated_json(seed: bytes):
    """A real JSON output with one node replaced by any value."""
    try:
        doc = json.loads(seed)
    except ValueError:
        return st.just(seed)

    def paths(node, prefix=()):
        yield prefix
        if isinstance(node, dict):
            for key, value in list(node.items())[:20]:
                yield from paths(value, prefix + (key,))
        elif isinstance(node, list):
            for index, value in enumerate(node[:20]):
                yield from paths(value, prefix + (index,))

    places = list(paths(doc))

    def replace(path, value):
        if not path:
            return json.dumps(value).encode()
        copy = json.loads(seed)
        node = copy
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
        return json.dumps(copy).encode()

    return st.builds(replace, st.sampled_from(places), json_values(12))


def _mutated_text(seed: bytes):
    lines = seed.decode("utf-8", "replace").splitlines() or [""]

    def edit(keep, extra, cut):
        chosen = [line for line, k in zip(lines, keep) if k] + extra
        text = "\n".join(chosen)
        return text.encode("utf-8", "surrogatepass")[:cut]

    return st.builds(edit, st.lists(st.booleans(), min_size=len(lines), max_size=len(lines)),
                     st.lists(st.one_of(st.sampled_from(lines),
                                        st.lists(st.sampled_from(HOSTILE_TEXT + lines[:5]),
                                                 max_size=6).map(" ".join)), max_size=4),
                     st.integers(0, 30000))


def command_output(spec: str):
    """One command's output as a damaged bundle may hold it (bytes)."""
    seeds = fixture_outputs().get(spec.split(".")[0], ())
    options = [
        json_values().map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=300),
        st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
        st.just(b""),
        st.lists(st.sampled_from(HOSTILE_TEXT), max_size=20).map(lambda w: " ".join(w).encode(
            "utf-8", "surrogatepass")),
    ]
    for seed in seeds:
        options.append(_mutated_json(seed) if seed.lstrip()[:1] in (b"[", b"{")
                       else _mutated_text(seed))
    return st.one_of(options)


@cache
def kube_seeds() -> tuple[bytes, ...]:
    """Real Kubernetes objects (tests/fixtures/k8s/upstream, see its SOURCE.md), one List per
    file, each cut to its first 8 objects."""
    import yaml

    out = []
    for path in sorted((FIXTURES / "k8s" / "upstream").glob("*.yaml")):
        items: list = []
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, list):
                items.extend(document)
            elif isinstance(document, dict):
                items.extend(document.get("items", [document]))
        if items:
            out.append(json.dumps({"apiVersion": "v1", "kind": "List", "items": items[:8]},
                                  default=str).encode())
    return tuple(out)


def kube_list():
    """One kind's file of a bundle's kube part, damaged (bytes)."""
    return st.one_of([_mutated_json(seed) for seed in kube_seeds()] + [
        json_values().map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=200),
        st.integers(1, 3000).map(lambda n: b'{"kind":"List","items":' + b"[" * n + b"]" * n
                                 + b"}")])


def manifest(base: dict):
    """``base`` (a real manifest) with one node replaced by any JSON value."""
    text = json.dumps(base).encode()
    return _mutated_json(text).map(json.loads)


# --- captures -------------------------------------------------------------------------------

def _block(kind: int, body: bytes, order: str = "<") -> bytes:
    body += b"\0" * ((-len(body)) % 4)
    return struct.pack(order + "II", kind, 12 + len(body)) + body + struct.pack(order + "I",
                                                                                12 + len(body))


def _options(order: str):
    option = st.tuples(st.integers(0, 12) | st.integers(0, 0xFFFF), st.binary(max_size=12)).map(
        lambda ov: struct.pack(order + "HH", ov[0], len(ov[1])) + ov[1]
        + b"\0" * ((-len(ov[1])) % 4))
    return st.lists(option, max_size=3).map(b"".join)


@cache
def real_frames() -> tuple[bytes, ...]:
    """Frames of the repository's real captures (BGP, VXLAN, ARP, SLL2) as packet seeds."""
    from diag.decode.capture import open_capture

    frames = []
    for path in sorted((FIXTURES.parent.parent / "captures").rglob("*.pcap"))[:6]:
        _info, records = open_capture(path)
        for k, record in enumerate(records):
            if isinstance(record, tuple) and k < 40:
                frames.append(record[4])
    return tuple(frames)


def packet_bytes():
    return st.one_of(
        st.sampled_from(real_frames()),
        st.tuples(st.sampled_from(real_frames()), st.integers(0, 2000)).map(
            lambda fc: fc[0][:fc[1]]),
        st.tuples(st.sampled_from(real_frames()), st.integers(0, 2000), st.binary(
            min_size=1, max_size=4)).map(
            lambda f: f[0][:f[1] % max(1, len(f[0]))] + f[2] + f[0][f[1] % max(1, len(f[0])) + 1:]),
        st.binary(max_size=200))


LINKTYPES = [0, 1, 12, 101, 104, 108, 113, 228, 229, 276, 147, 0xFFFF]


@st.composite
def pcapng(draw) -> bytes:
    order = draw(st.sampled_from(["<", ">"]))
    bom = struct.pack(order + "I", 0x1A2B3C4D)
    blocks = [_block(0x0A0D0D0A, bom + struct.pack(order + "HHq", 1, 0, -1)
                     + draw(_options(order)), order)]
    # most files declare an interface first, so that the blocks after it are read at all
    first = ["idb"] if draw(st.integers(0, 9)) else []
    for kind in first + [None] * draw(st.integers(0, 12)):
        kind = kind or draw(st.sampled_from(["idb", "epb", "epb", "spb", "pb", "nrb", "isb",
                                             "unknown", "shb", "short"]))
        if kind == "idb":
            blocks.append(_block(1, struct.pack(order + "HHI", draw(st.sampled_from(
                                                    [1, 1, 276, 113] + LINKTYPES)),
                                                0, draw(st.integers(0, 2 ** 32 - 1)))
                                 + draw(_options(order)), order))
        elif kind in ("epb", "pb"):
            data = draw(packet_bytes())
            iface = draw(st.sampled_from([0, 0, 0, 1, 3]))
            ts = draw(st.integers(0, 2 ** 64 - 1))
            head = (struct.pack(order + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data),
                                len(data)) if kind == "epb" else
                    struct.pack(order + "HHIIII", iface, 0, ts >> 32, ts & 0xFFFFFFFF, len(data),
                                len(data)))
            pad = b"\0" * ((-len(data)) % 4)
            blocks.append(_block(6 if kind == "epb" else 2, head + data + pad
                                 + draw(_options(order)), order))
        elif kind == "spb":
            data = draw(packet_bytes())
            blocks.append(_block(3, struct.pack(order + "I", len(data)) + data, order))
        elif kind == "short":       # a known block type with a body of any (short) length
            blocks.append(_block(draw(st.sampled_from([1, 2, 3, 6])),
                                 draw(st.just(b"") | st.binary(max_size=24)), order))
        elif kind == "shb":
            blocks.append(_block(0x0A0D0D0A, bom + struct.pack(order + "HHq", 1, 0, -1), order))
        else:
            blocks.append(_block({"nrb": 4, "isb": 5, "unknown": 0x0BAD}[kind],
                                 draw(st.binary(max_size=40)), order))
    return b"".join(blocks)


@st.composite
def pcap(draw) -> bytes:
    order = draw(st.sampled_from(["<", ">"]))
    magic = draw(st.sampled_from([0xA1B2C3D4, 0xA1B23C4D]))
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, draw(st.integers(0, 2 ** 32 - 1)),
                       draw(st.sampled_from(LINKTYPES)))]
    for _ in range(draw(st.integers(0, 12))):
        data = draw(packet_bytes())
        caplen = draw(st.sampled_from([len(data), len(data), 0, 2 ** 32 - 1]))
        out.append(struct.pack(order + "IIII", draw(st.integers(0, 2 ** 32 - 1)),
                               draw(st.integers(0, 2 ** 32 - 1)), caplen,
                               draw(st.integers(0, 2 ** 32 - 1))) + data)
    return b"".join(out)


@st.composite
def capture(draw) -> bytes:
    """A pcap or pcapng file of any blocks, cut at any offset (or whole)."""
    data = draw(st.one_of(pcap(), pcapng()))
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return data
