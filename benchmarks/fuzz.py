"""The long fuzzing run: decoder, parsers and whole bundles, printing what was tried and what broke.

Usage::

    python benchmarks/fuzz.py [--scale 1.0] [--seed 1] [--workers 2] [--crashes DIR] [--bundles N]

At ``--scale 1`` (the issue's goal; about 1-2 hours on two cores): 1,000,000 decoder inputs (each a
frame mutated from the repository's real captures and fed to the per-packet decoder, plus
whole capture files of random pcap/pcapng blocks cut anywhere, through both decoders and the
summary), 100,000 parser inputs (each a real fixture output mutated, or made-up JSON/text/junk,
through the column-wise reader, the parser and the type check exactly as the facts read them;
one in ten a real Kubernetes List mutated, through the kube parser),
and 5,000 whole-bundle analyses (the 4-host fixture bundle with outputs and manifest damaged,
through facts, explain and every renderer). Prints the inputs tried, the internal errors
(anything but :class:`diag.errors.DiagError`; distinct ones by exception type and innermost diag
line, with the first input of each saved under ``--crashes``) and the peak RSS of each worker.
Exit status 0 when there was no internal error, 1 otherwise. The CI-sized version of the same
generators is tests/fuzz (hypothesis); every distinct crash found becomes a test in
tests/fuzz/test_regressions.py.
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import struct
import sys
import tarfile
import tempfile
import time
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOALS = {"decoder": 1_000_000, "parser": 100_000, "bundle": 5_000}
HOSTILE = ["[/]", "\x1b[31m", "\x9b", "\u202e", "\x00", "-1", "1e309", "NaN", "all", "default",
           "0x10/0xff", "fe80::1%eth0", "10.0.0.0/33", "256.1.1.1", "Established", "UP", "{", "["]


# --- mutations --------------------------------------------------------------------------------

def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        if op == 0 and data:                      # flip bytes
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 1:                             # cut
            data = data[:rng.randint(0, len(data))]
        elif op == 2:                             # insert junk
            at = rng.randint(0, len(data))
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        elif op == 3 and data:                    # interesting values at a random place
            at = rng.randrange(len(data))
            value = rng.choice([b"\x00\x00", b"\xff\xff", b"\x00\x13", b"\xff\xff\xff\xff",
                                b"\x80\x00", b"\x7f"])
            data[at:at + len(value)] = value
        elif op == 4 and len(data) > 2:           # duplicate a slice
            a = rng.randrange(len(data))
            b = rng.randint(a, min(len(data), a + 64))
            data[b:b] = data[a:b]
    return bytes(data)


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(10 if depth < 4 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2 ** 31, 2 ** 63, -(2 ** 70), 65535, 179])
    if kind == 3:
        return rng.random() * 1e6
    if kind in (4, 5, 6):
        return rng.choice(HOSTILE + ["eth0", "10.0.0.1", "10.0.0.0/24", "x" * rng.randint(0, 9)])
    if kind in (7, 8):
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    from tests.fuzz.strategies import KEYS
    return {rng.choice(KEYS): random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def mutate_json(rng: random.Random, doc):
    """``doc`` with one random node replaced by a random value (a copy)."""
    doc = json.loads(json.dumps(doc))
    node, parent, key = doc, None, None
    for _ in range(rng.randint(0, 6)):
        if isinstance(node, dict) and node:
            parent, key = node, rng.choice(list(node))
        elif isinstance(node, list) and node:
            parent, key = node, rng.randrange(len(node))
        else:
            break
        node = parent[key]
    if parent is None:
        return random_value(rng)
    parent[key] = random_value(rng)
    return doc


def mutate_output(rng: random.Random, seed: bytes) -> bytes:
    choice = rng.randrange(8)
    if choice < 4 and seed.lstrip()[:1] in (b"[", b"{"):
        try:
            return json.dumps(mutate_json(rng, json.loads(seed))).encode()
        except ValueError:
            pass
    if choice < 6:
        return mutate_bytes(rng, seed)
    if choice == 6:
        return json.dumps(random_value(rng)).encode()
    depth = rng.randint(100, 5000)
    return b"[" * depth + b"]" * depth


# --- the three targets ------------------------------------------------------------------------

class Tally:
    def __init__(self, crashes: Path) -> None:
        self.tried = 0
        self.errors: Counter = Counter()
        self.guarded: Counter = Counter()     # parser exceptions the facts' guard made rows
        self.crashes = crashes

    def crashed(self, what: str, err: BaseException, data: bytes | None) -> None:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if "/diag/" in f.filename]
        where = f"{frames[-1].filename.split('/diag/')[-1]}:{frames[-1].lineno}" if frames \
            else "?"
        key = f"{what}: {type(err).__name__} at diag/{where}"
        if key not in self.errors and data is not None:
            self.crashes.mkdir(parents=True, exist_ok=True)
            name = f"{what}-{len(self.errors)}-{type(err).__name__}.bin"
            (self.crashes / name).write_bytes(data)
        self.errors[key] += 1


def fuzz_decoder(rng: random.Random, count: int, tally: Tally, work: Path) -> None:
    from diag.decode import DecodeOptions
    from diag.decode.frames import PacketDecoder
    from diag.errors import DiagError
    from tests.fuzz.strategies import real_frames

    frames = real_frames()
    linktypes = [1, 1, 1, 276, 113, 0, 101, 104, 108, 228, 229]
    options = DecodeOptions()
    decoder = PacketDecoder(options.bgp_ports, options.vxlan_ports, options.geneve_ports, {})
    files = max(1, count // 500)               # one whole file per 500 frames
    for k in range(count - files):
        data = mutate_bytes(rng, rng.choice(frames))
        try:
            decoder.packet(k + 1, 1.7e9 + k, 0, rng.choice(linktypes), data, len(data),
                           rng.randrange(4))
            if k % 4096 == 4095:
                decoder.take()
        except Exception as err:  # noqa: BLE001 - counted
            tally.crashed("decoder-frame", err, data)
            decoder = PacketDecoder(options.bgp_ports, options.vxlan_ports,
                                    options.geneve_ports, {})
        tally.tried += 1
    for _ in range(files):
        data = random_capture(rng, frames)
        path = work / "fuzz.cap"
        path.write_bytes(data)
        for vectorize in (False, True):
            try:
                summarize(path, vectorize)
            except DiagError:
                pass
            except Exception as err:  # noqa: BLE001 - counted
                tally.crashed("decoder-file", err, data)
        tally.tried += 1


def summarize(path: Path, vectorize: bool) -> dict:
    import io

    from rich.console import Console

    from diag.decode import iter_rows
    from diag.decode.summary import CaptureSummary
    from diag.report.pcap_text import render

    summary = CaptureSummary()
    for chunk in iter_rows(path, chunk_packets=7, vectorize=vectorize):
        summary.add(chunk)
    result = summary.result()
    render(result, Console(file=io.StringIO(), width=100))
    return result


def _block(kind: int, body: bytes) -> bytes:
    body += b"\0" * ((-len(body)) % 4)
    return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def random_capture(rng: random.Random, frames) -> bytes:
    if rng.random() < 0.4:
        out = [struct.pack("<IHHiIII", rng.choice([0xA1B2C3D4, 0xA1B23C4D]), 2, 4, 0, 0, 65535,
                           rng.choice([1, 1, 276, 113, 0, 101]))]
        for _ in range(rng.randint(0, 30)):
            data = mutate_bytes(rng, rng.choice(frames)) if rng.random() < 0.8 else b""
            out.append(struct.pack("<IIII", rng.randrange(2 ** 32), rng.randrange(2 ** 32),
                                    len(data), len(data)) + data)
        data = b"".join(out)
    else:
        out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
        if rng.random() < 0.9:
            out.append(_block(1, struct.pack("<HHI", rng.choice([1, 276, 113]), 0, 65535)
                              + struct.pack("<HH", 9, 1) + bytes([rng.choice([6, 9, 0, 0x80 | 30])])
                              + b"\0\0\0"))
        for _ in range(rng.randint(0, 30)):
            kind = rng.randrange(8)
            data = mutate_bytes(rng, rng.choice(frames))
            ts = rng.randrange(2 ** 64)
            if kind < 4:
                out.append(_block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF,
                                                 len(data), len(data)) + data
                                  + b"\0" * ((-len(data)) % 4)
                                  + struct.pack("<HHI", 2, 4, rng.randrange(4))))
            elif kind == 4:
                out.append(_block(3, struct.pack("<I", len(data)) + data))
            elif kind == 5:
                out.append(_block(2, struct.pack("<HHIIII", 0, 0, ts >> 32, ts & 0xFFFFFFFF,
                                                 len(data), len(data)) + data))
            elif kind == 6:
                out.append(_block(rng.choice([1, 2, 3, 6]), rng.randbytes(rng.choice([0, 4, 8]))))
            else:
                out.append(_block(rng.choice([4, 5, 0x0BAD]), rng.randbytes(rng.randint(0, 40))))
        data = b"".join(out)
    if rng.random() < 0.5:
        data = data[:rng.randint(0, len(data))]
    return mutate_bytes(rng, data) if rng.random() < 0.3 else data


def fuzz_parsers(rng: random.Random, count: int, tally: Tally) -> None:
    from diag.facts.tables import UNEXPECTED_SHAPE
    from diag.parse.common import ParseError
    from diag.parse.k8s import parse_list
    from tests.fuzz.strategies import fixture_outputs, kube_seeds
    from tests.fuzz.test_fuzz import SPECS, parse_one

    seeds = fixture_outputs()
    kube = kube_seeds()
    for _ in range(count):
        if rng.random() < 0.1:          # a kind's file of the kube part
            data = mutate_output(rng, rng.choice(kube))
            try:
                parse_list(data)
            except ParseError:
                pass
            except Exception as err:  # noqa: BLE001 - counted
                tally.crashed("parser-kube", err, data)
            tally.tried += 1
            continue
        spec = rng.choice(SPECS)
        pool = seeds.get(spec.split(".")[0]) or seeds.get(rng.choice(list(seeds)))
        data = mutate_output(rng, rng.choice(pool))
        try:
            _part, failure = parse_one(spec, data)
        except Exception as err:  # noqa: BLE001 - counted
            tally.crashed(f"parser-{spec}", err, data)
        else:   # a parser that raised (caught by the facts' guard): a row, but worth a look
            if failure is not None and failure.startswith(UNEXPECTED_SHAPE):
                tally.guarded[f"{spec}: {failure.split('(')[1].split(':')[0].rstrip(')')}"] += 1
        tally.tried += 1


def fuzz_bundles(rng: random.Random, count: int, tally: Tally, work: Path) -> None:
    from diag.parse import parser_for
    from tests.fuzz.test_fuzz import BUNDLE, _analyse

    with tarfile.open(BUNDLE) as tar:
        tar.extractall(work / "seed", filter="data")
    seed = work / "seed" / BUNDLE.name.removesuffix(".tar.gz")
    base = json.loads((seed / "manifest.json").read_text())
    commands = [(h, c) for h, rec in base["hosts"].items() for c in rec["commands"]
                if c.get("path")]
    for _ in range(count):
        root = work / "b"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(seed, root)
        manifest = base
        for _host, command in rng.sample(commands, rng.randint(1, 4)):
            path = root / command["path"]
            if parser_for(command["id"]) is not None or path.suffix == ".pcap":
                path.write_bytes(mutate_output(rng, path.read_bytes()) if path.suffix != ".pcap"
                                 else mutate_bytes(rng, path.read_bytes()))
        if rng.random() < 0.3:
            manifest = mutate_json(rng, base)
        (root / "manifest.json").write_text(json.dumps(manifest))
        try:
            _analyse(root)
        except Exception as err:  # noqa: BLE001 - counted
            known = len(tally.errors)
            tally.crashed("bundle", err, None)
            if len(tally.errors) > known:       # a new one: keep the whole damaged bundle
                shutil.copytree(root, tally.crashes / f"bundle-{known}", dirs_exist_ok=True)
        tally.tried += 1


def worker(target: str, count: int, seed: int, crashes: str
           ) -> tuple[str, int, dict, float, float, dict]:
    import gc

    gc.enable()
    rng = random.Random(seed)
    tally = Tally(Path(crashes))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="diag-fuzz-") as tmp:
        if target == "decoder":
            fuzz_decoder(rng, count, tally, Path(tmp))
        elif target == "parser":
            fuzz_parsers(rng, count, tally)
        else:
            fuzz_bundles(rng, count, tally, Path(tmp))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return target, tally.tried, dict(tally.errors), peak, time.monotonic() - started, \
        dict(tally.guarded)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the goals to run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--crashes", type=Path, default=Path("fuzz-crashes"))
    parser.add_argument("--bundles", type=int, default=None,
                        help="whole-bundle analyses (default: the scale's share of 5,000)")
    options = parser.parse_args(argv)
    jobs = []
    for target, goal in GOALS.items():
        total = max(1, int(goal * options.scale))
        if target == "bundle" and options.bundles is not None:
            total = options.bundles
        parts = options.workers
        for k in range(parts):
            share = total // parts + (1 if k < total % parts else 0)
            if share:
                jobs.append((target, share, options.seed * 1000 + len(jobs),
                             str(options.crashes)))
    started = time.monotonic()
    tried: Counter = Counter()
    errors: Counter = Counter()
    peaks: list[float] = []
    guarded: Counter = Counter()
    with ProcessPoolExecutor(max_workers=options.workers) as pool:
        for target, count, errs, peak, seconds, caught in pool.map(worker, *zip(*jobs)):
            tried[target] += count
            guarded.update(caught)
            errors.update(errs)
            peaks.append(peak)
            print(f"  {target:<8} {count:>9,} inputs in {seconds:7.1f} s, "
                  f"{sum(errs.values())} internal errors, peak RSS {peak:.0f} MB", flush=True)
    print(f"inputs tried: decoder {tried['decoder']:,}, parsers {tried['parser']:,}, "
          f"whole bundles {tried['bundle']:,} in {time.monotonic() - started:.0f} s")
    print(f"internal errors: {sum(errors.values())} ({len(errors)} distinct)")
    for key, n in errors.most_common():
        print(f"  {n:>6} x {key}")
    print(f"parser exceptions made parse_errors rows by the guard (not internal errors): "
          f"{sum(guarded.values())} ({len(guarded)} distinct)")
    for key, n in guarded.most_common(10):
        print(f"  {n:>6} x {key}")
    print(f"peak RSS of a worker: {max(peaks):.0f} MB")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
