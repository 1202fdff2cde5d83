"""Fuzz the compiled decode core on a build with AddressSanitizer and bounds assertions.

Usage (from the repository root)::

    python benchmarks/fuzz_core.py                      # 1,000,000 inputs, ASan + checked build
    python benchmarks/fuzz_core.py --inputs 30000       # what CI runs (tests/decode/test_core_fuzz.py)
    python benchmarks/fuzz_core.py --build checked      # bounds assertions only, no ASan
    python benchmarks/fuzz_core.py --compare-every 50   # and every 50th batch against the reference

Builds ``diag.decode._core`` a second time into a temporary directory with
``DIAG_CORE_CHECKED=1`` (every read of capture bytes asserts its bound and aborts when it would
leave the record: see diag/decode/_core/core.h) and ``-fsanitize=address`` (libasan ships with
gcc), then runs the inputs in a child process that loads that build with ``LD_PRELOAD`` of
libasan. An input is one captured frame: seeds are every frame of the shipped and fixture
captures and of a generated BGP-heavy mix (benchmarks/generate.py), each mutated (bits flipped,
boundary bytes, truncated, extended, spliced, fields set to the values decoders branch on:
ethertypes, VLAN tags, IP versions and protocols, ports 179/4789/8472/6081, TCP flags, BGP
markers and lengths), re-framed under every supported link type, in batches whose order is
shuffled in places (TCP reassembly); each batch also goes through the record scanners as a
pcap and as a pcapng buffer with mutated record headers, and the flows are flushed at its end.

A crash is a child that dies by a signal or an ASan report (exit code 86): the batch is saved
under ``--crashes`` (default /tmp/diag-fuzz-crashes) as a pcap and the run goes on with a new
child. The last line is ``inputs N, batches B, crashes C``; the exit status is 1 when C > 0.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BATCH = 500
LINKTYPES = (1, 1, 1, 113, 276, 101, 0, 108, 104, 228, 229)
MAGIC_VALUES = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0x45, 0x60, 0x11, 0x06, 0x3A, 0x2C, 0x33)
INTERESTING_U16 = (0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8, 0x88CC, 179, 4789, 8472, 6081,
                   0x6558, 0x0000, 0xFFFF, 0x0013, 0x1000)


# --- seeds -----------------------------------------------------------------------------------------

def _pcap_frames(path: Path) -> list[bytes]:
    """The frames of a classic pcap (either byte order), without the reference's reader."""
    data = path.read_bytes()
    if len(data) < 24:
        return []
    magic = data[:4]
    order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    if magic not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4",
                     b"\xa1\xb2\x3c\x4d"):
        return []
    rec = struct.Struct(order + "IIII")
    out, pos = [], 24
    while pos + 16 <= len(data):
        caplen = rec.unpack_from(data, pos)[2]
        if pos + 16 + caplen > len(data):
            break
        out.append(data[pos + 16:pos + 16 + caplen])
        pos += 16 + caplen
    return out


def seeds(work: Path) -> list[bytes]:
    frames: list[bytes] = []
    for path in sorted([*REPO.glob("captures/*.pcap"), *REPO.glob("captures/lab/*.pcap"),
                        *REPO.glob("tests/fixtures/**/*.pcap")]):
        frames.extend(_pcap_frames(path))
    sys.path.insert(0, str(HERE))
    import generate

    for mix in ("bgp-heavy", "light"):
        mixed = work / f"{mix}.pcap"
        generate.generate(6000, mixed, seed=17, mix=mix)
        frames.extend(_pcap_frames(mixed))
    return [f for f in frames if f]


# --- mutations -------------------------------------------------------------------------------------

def mutate(rng: random.Random, frame: bytes, others: list[bytes]) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.choice((0, 1, 1, 2, 3, 6))):
        kind = rng.random()
        if not data:
            data.extend(rng.randbytes(rng.randint(1, 60)))
        at = rng.randrange(len(data))
        if kind < 0.25:
            data[at] ^= 1 << rng.randrange(8)
        elif kind < 0.40:
            data[at] = rng.choice(MAGIC_VALUES)
        elif kind < 0.55 and len(data) > 1:
            value = rng.choice(INTERESTING_U16)
            at = min(at, len(data) - 2)
            data[at:at + 2] = value.to_bytes(2, "big")
        elif kind < 0.65:
            del data[rng.randrange(len(data) + 1):]                  # truncated
        elif kind < 0.72:
            data.extend(rng.randbytes(rng.randint(1, 64)))          # extended
        elif kind < 0.80 and others:
            other = rng.choice(others)                               # spliced
            cut = rng.randrange(len(other) + 1)
            data[at:] = other[cut:cut + rng.randint(1, 200)]
        elif kind < 0.88:
            data[at:at + 19] = b"\xff" * 16 + rng.randbytes(3)      # a BGP header anywhere
        elif kind < 0.94:
            n = rng.randint(1, 16)
            data[at:at] = bytes(data[at:at + n])                     # a run repeated
        else:
            data[at:at + 4] = rng.randbytes(4)
    return bytes(data[:70000])


def batch(rng: random.Random, pool: list[bytes]) -> tuple[int, list[bytes]]:
    start = rng.randrange(len(pool))
    frames = [mutate(rng, pool[(start + i) % len(pool)], pool) for i in range(BATCH)]
    for _ in range(rng.randint(0, 20)):          # reorder a little: reassembly's odd paths
        i, j = rng.randrange(BATCH), rng.randrange(BATCH)
        frames[i], frames[j] = frames[j], frames[i]
    return rng.choice(LINKTYPES), frames


def pcap_bytes(linktype: int, frames: list[bytes], rng: random.Random | None = None) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)]
    for i, f in enumerate(frames):
        wire = len(f) + (i % 3)
        caplen = len(f)
        if rng is not None and rng.random() < 0.01:
            caplen = rng.choice((caplen + 1, caplen + 1000, 0xFFFFFFFF, 17 << 20))
        out.append(struct.pack("<IIII", 1_700_000_000 + i, (i * 7919) % 1_000_000, caplen, wire)
                   + f)
    return b"".join(out)


def pcapng_bytes(linktype: int, frames: list[bytes], rng: random.Random) -> bytes:
    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           block(1, struct.pack("<HHI", linktype, 0, 262144)
                 + struct.pack("<HH", 9, 1) + b"\x06\0\0\0" + b"\0\0\0\0")]
    for i, f in enumerate(frames):
        opts = b""
        if i % 4 == 0:
            opts = struct.pack("<HHI", 2, 4, i % 4) + b"\0\0\0\0"
        body = struct.pack("<IIIII", 0, i, 1000 * i, len(f), len(f)) + f
        body += b"\0" * (-len(body) % 4) + opts
        b = bytearray(block(6, body))
        if rng.random() < 0.02:                          # a damaged block header or length
            at = rng.choice((4, 8, 20, 24, len(b) - 4))
            b[at:at + 4] = rng.randbytes(4)
        out.append(bytes(b))
    return b"".join(out)


# --- the child: decode batches with the build under test -------------------------------------------

def child(module: str, seed: int, first: int, count: int, crash_file: Path,
          compare_every: int) -> int:
    import importlib.util

    spec = importlib.util.spec_from_file_location("diag.decode._core", module)
    core_mod = importlib.util.module_from_spec(spec)
    sys.modules["diag.decode._core"] = core_mod
    spec.loader.exec_module(core_mod)
    sys.path.insert(0, str(REPO))
    from diag.decode import DecodeOptions, core

    assert core.load() is core_mod and core_mod.CHECKED, "not the build under test"
    work = Path(tempfile.mkdtemp(prefix="diag-fuzz-"))
    try:
        pool = seeds(work)
        options = DecodeOptions()
        totals: dict[str, int] = {}
        for b in range(first, first + count):
            rng = random.Random(seed * 1_000_003 + b)
            linktype, frames = batch(rng, pool)
            raw = pcap_bytes(linktype, frames, rng)
            crash_file.write_bytes(raw)                  # kept if this batch kills the child
            stats = _one_batch(core, core_mod, options, linktype, frames, raw, rng)
            for k, v in stats.items():
                totals[k] = totals.get(k, 0) + v
            if compare_every and b % compare_every == 0:
                _compare(work / "cmp.pcap", pcap_bytes(linktype, frames))
            print(f"batch {b} " + " ".join(f"{k}={v}" for k, v in sorted(totals.items())),
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _one_batch(core, core_mod, options, linktype: int, frames: list[bytes], raw: bytes,
               rng: random.Random) -> dict:
    dec, reference, _slow = core._decoder(core_mod, options, True, True, {})
    dec.set_heads(True, True)
    pos, *cols = core_mod.scan_pcap(raw, 24, len(frames) + 5, False, 1e-6, linktype)
    first = 1
    shadow = None
    if rng.random() < 0.2:      # a parallel worker's view: another's block, some connections
        dec.own(rng.randrange(3), 3, rng.randrange(-1, 3))     # and maybe the ARP worker
        shadow = reference.packet if rng.random() < 0.5 else None
    dec.decode(raw, first, *cols, [None, "eth0"], shadow)
    dec.take()
    dec.finish(len(frames), 1.0)
    dec.take()
    # the same frames through the pcapng walk, block headers damaged here and there
    ng = pcapng_bytes(linktype, frames, rng)
    at = 0
    while at < len(ng):
        found = core_mod.scan_pcapng(ng, at, 100000, False, ((0, linktype, 1e-6),))
        if found[0] == at:
            at += 4        # a block the scanner leaves to the reader: step over its start
        else:
            at = found[0]
            core_mod.pcapng_ts(bytes(len(found[1])), found[4], found[5])
    stats = dec.stats()
    return {"frames": len(frames), "frames_to_reference": stats["frames_to_reference"],
            "messages_to_reference": stats["messages_to_reference"],
            "streams_to_reference": stats["streams_to_reference"]}


def _compare(path: Path, raw: bytes) -> None:
    import json

    from diag.decode import iter_rows
    from diag.decode.summary import CaptureSummary

    path.write_bytes(raw)
    out = []
    for decoder in ("python", "compiled"):
        os.environ["DIAG_DECODER"] = decoder
        s = CaptureSummary()
        for c in iter_rows(path, chunk_packets=97, decoder=decoder):
            s.add(c)
        out.append(json.dumps(s.result(), default=str))
    del os.environ["DIAG_DECODER"]
    if out[0] != out[1]:
        raise SystemExit(f"the compiled summary differs from the reference on {path}")


# --- the parent: build, run children, count crashes ------------------------------------------------

def build(kind: str, into: Path) -> Path:
    env = dict(os.environ, DIAG_CORE_CHECKED="1")
    if kind == "asan":
        env["DIAG_CORE_ASAN"] = "1"
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(into),
                    "--build-temp", str(into / "tmp"), "--force"], cwd=REPO, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    found = list((into / "diag" / "decode").glob("_core*.so"))
    if not found:
        raise SystemExit("the fuzzing build of the core was not made (see setup.py's warning)")
    return found[0]


def libasan() -> str:
    path = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                          text=True).stdout.strip()
    if not path or not Path(path).exists():
        raise SystemExit("libasan not found (gcc -print-file-name=libasan.so)")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1_000_000, help="frames to feed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--build", choices=("asan", "checked"), default="asan")
    parser.add_argument("--crashes", type=Path, default=Path("/tmp/diag-fuzz-crashes"))
    parser.add_argument("--compare-every", type=int, default=0,
                        help="every Nth batch also against the reference decoder (slow)")
    parser.add_argument("--child", nargs=4, metavar=("MODULE", "FIRST", "COUNT", "CRASHFILE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        module, first, count, crash_file = args.child
        return child(module, args.seed, int(first), int(count), Path(crash_file),
                     args.compare_every)

    batches = max(1, -(-args.inputs // BATCH))
    built = Path(tempfile.mkdtemp(prefix="diag-fuzz-build-"))
    started = time.monotonic()
    crashes = 0
    last = ""
    try:
        module = build(args.build, built)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        if args.build == "asan":
            env["LD_PRELOAD"] = libasan()
            env["ASAN_OPTIONS"] = "detect_leaks=0:exitcode=86:abort_on_error=0"
        crash_file = built / "current.pcap"
        b = 0
        while b < batches:
            proc = subprocess.Popen([sys.executable, __file__, "--seed", str(args.seed),
                                     "--compare-every", str(args.compare_every), "--child",
                                     str(module), str(b), str(batches - b), str(crash_file)],
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, cwd=REPO)
            done = b
            for line in proc.stdout:
                if line.startswith("batch "):
                    done = int(line.split()[1]) + 1
                    last = line.split(" ", 2)[2].strip()
            err = proc.stderr.read()
            proc.wait()
            if proc.returncode == 0:
                b = done
                continue
            crashes += 1
            args.crashes.mkdir(parents=True, exist_ok=True)
            saved = args.crashes / f"batch-{done}.pcap"
            shutil.copy(crash_file, saved)
            (args.crashes / f"batch-{done}.txt").write_text(err[-20000:])
            print(f"CRASH in batch {done} (exit {proc.returncode}): saved {saved}",
                  file=sys.stderr)
            b = done + 1
    finally:
        shutil.rmtree(built, ignore_errors=True)
    took = time.monotonic() - started
    print(f"decoded (last child): {last}")
    print(f"build {args.build}: inputs {batches * BATCH:,}, batches {batches:,}, "
          f"crashes {crashes} ({took:.0f} s)")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
