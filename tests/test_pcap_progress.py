"""``diag pcap``'s progress bar: on stderr for captures of 64 MiB or more when stderr is a
terminal (a real pseudo-terminal here), never in JSON output, never when stderr is piped, never
for a small capture; stdout is the same with and without the bar."""
from __future__ import annotations

import json
import os
import pty
import select
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from diag.report.progress import MIN_BYTES

REPO = Path(__file__).resolve().parents[1]


def _udp_frame(i: int) -> bytes:
    """Ethernet / IPv4 / UDP with a 1,400-byte payload (the core decodes it in its fast path)."""
    payload = bytes(1400)
    udp = struct.pack("!HHHH", 40000 + i % 1000, 53, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 1, 2]))
    return b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00" + ip + udp


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "large.pcap"
    frame = _udp_frame(0)
    record = struct.pack("<IIII", 1_700_000_000, 0, len(frame), len(frame)) + frame
    count = MIN_BYTES // len(record) + 10
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for _ in range(0, count, 1000):
            out.write(record * 1000)
    assert path.stat().st_size >= MIN_BYTES
    return path


def _run(args: list[str], stderr_tty: bool) -> tuple[str, str]:
    """Run ``python -m diag ARGS``: stdout piped; stderr a pseudo-terminal or a pipe."""
    env = dict(os.environ, COLUMNS="120", TERM="xterm")
    env.pop("NO_COLOR", None)
    cmd = [sys.executable, "-m", "diag", *args]
    if not stderr_tty:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout, proc.stderr
    main, secondary = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=secondary,
                            stdin=subprocess.DEVNULL)
    os.close(secondary)
    err = bytearray()
    out = bytearray()
    os.set_blocking(proc.stdout.fileno(), False)
    while True:
        ready, _, _ = select.select([main, proc.stdout], [], [], 300)
        if not ready:
            proc.kill()
            raise AssertionError("diag pcap did not finish")
        if main in ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:             # the child closed its side
                chunk = b""
            if not chunk:
                break
            err += chunk
        if proc.stdout in ready:
            out += proc.stdout.read() or b""
    out += proc.stdout.read() or b""
    proc.wait(timeout=60)
    os.close(main)
    assert proc.returncode == 0, err.decode(errors="replace")
    return out.decode(), err.decode(errors="replace")


def test_a_terminal_sees_a_bar_for_a_large_capture(large):
    out, err = _run(["pcap", str(large), "--workers", "1"], stderr_tty=True)
    assert "decoding large.pcap" in err
    assert "packets" in err and "MB" in err          # packets, bytes read (rich's download column)
    assert "packets by kind" in out
    piped_out, piped_err = _run(["pcap", str(large), "--workers", "1"], stderr_tty=False)
    assert piped_out == out                          # the bar never touches stdout
    assert "decoding" not in piped_err and "\x1b[" not in piped_err


def test_the_bar_follows_several_workers(large):
    out, err = _run(["pcap", str(large), "--workers", "2"], stderr_tty=True)
    assert "decoding large.pcap" in err
    assert "packets by kind" in out


def test_never_in_json_output(large):
    out, err = _run(["pcap", str(large), "--format", "json", "--workers", "1"], stderr_tty=True)
    assert "decoding" not in err and "\x1b[" not in err
    assert json.loads(out)["packets"]["total"] > 40_000


def test_never_for_a_small_capture():
    _out, err = _run(["pcap", str(REPO / "captures" / "bgp_session.pcap")], stderr_tty=True)
    assert "decoding" not in err
