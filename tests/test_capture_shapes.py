"""Every capture shape through every command (issue: hostile evidence, items 3 and 4).

Captures crafted byte by byte: BGP OPEN/NOTIFICATION/UPDATE that are only their 19-byte header,
timestamps no calendar holds, short pcapng blocks (IDB, obsolete PB, EPB, SPB) at the end of a
file, unknown block types and options, zero-length records; and evidence text that a terminal
would obey (escape sequences, OSC 8 links, C1 controls, bidi overrides) or rich would read as
markup (``[/]``) in an interface name and a BGP shutdown message. Each goes through ``diag
pcap`` (text, json), ``facts`` (text, json), ``explain`` (text, json, md) and ``report`` (html,
md, json): never exit 70 or a traceback; damage is counted as malformed and the rest decoded;
terminal and Markdown output carry no control character from the evidence, shown instead as
``\\x1b``; HTML keeps its own escaping.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diag.cli import app
from tests.craft import bgpmsg as m
from tests.craft.builders import A, B, Frames, ether_tcp_emit
from tests.craft.pcapfile import LINKTYPE_ETHERNET, pcap_bytes
from tests.craft.tcpflow import TcpFlow

HOSTILE = "eth[/]0\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07\x1b[2J\x9b31m\u202eoob"
SHUTDOWN = "[/] [bold]maintenance\x1b[31m red\x1b]0;title\x07 \x85next"
CONTROL_BYTES = ("\x1b", "\x9b", "\x07", "\u202e", "\x85")


def _block(kind: int, body: bytes) -> bytes:
    return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * ((-len(value)) % 4)


def _epb(ts: int, data: bytes, iface: int = 0, options: bytes = b"") -> bytes:
    body = struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
    return _block(6, body + data + b"\0" * ((-len(data)) % 4) + options)


def _session(messages: list[tuple[str, bytes]]) -> list:
    frames = Frames()
    flow = TcpFlow(ether_tcp_emit(frames), A, B, 40001, 179)
    flow.handshake()
    for direction, data in messages:
        flow.queue(direction, data)
        flow.send(direction)
    return frames.records


def _pcapng(records, *, tsresol: int = 9, name: str = "eth0", ts=None, tail: bytes = b"",
            extra: bytes = b"") -> bytes:
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                 + _option(0xBEEF, b"unknown shb option") + _option(0, b""))
    idb = _block(1, struct.pack("<HHI", LINKTYPE_ETHERNET, 0, 262144)
                 + _option(2, name.encode()) + _option(9, bytes([tsresol]))
                 + _option(0x4242, b"unknown idb option") + _option(0, b""))
    body = [shb, idb, extra]
    for k, r in enumerate(records):
        stamp = r.ts_ns if ts is None else ts(k)
        body.append(_epb(stamp, r.data, options=_option(0x7777, b"?") + _option(0, b"")))
        body.append(_block(0x0BAD, b"unknown block type\0\0"))
    return b"".join(body) + tail


def _shapes(tmp: Path) -> dict[str, Path]:
    header_only = _session([("ab", m.message(1, b"")), ("ba", m.message(3, b"")),
                            ("ab", m.message(2, b"")), ("ab", m.message(4, b"")),
                            ("ba", m.message(5, b""))])
    normal = _session([
        ("ab", m.open_message(65001, 90, "10.0.0.1", [m.cap_four_octet_as(65001)])),
        ("ba", m.open_message(65002, 90, "10.0.0.2", [m.cap_four_octet_as(65002)])),
        ("ab", m.notification(6, 2, m.shutdown_communication(SHUTDOWN)))])
    short_idb = struct.pack("<II", 1, 12) + struct.pack("<I", 12)
    short_pb = struct.pack("<II", 2, 16) + b"\0" * 4 + struct.pack("<I", 16)
    short_epb = struct.pack("<II", 6, 16) + b"\0" * 4 + struct.pack("<I", 16)
    short_spb = struct.pack("<II", 3, 12) + struct.pack("<I", 12)
    files = {
        "header-only.pcap": pcap_bytes(header_only, LINKTYPE_ETHERNET),
        "far-future.pcapng": _pcapng(normal, tsresol=0, ts=lambda k: (1 << 63) + k),
        "far-future-max.pcapng": _pcapng(normal, tsresol=6, ts=lambda k: (1 << 64) - 1 - k),
        "epoch-zero.pcapng": _pcapng(normal, ts=lambda k: 0),
        "short-idb-at-end.pcapng": _pcapng(normal, tail=short_idb),
        "short-pb-at-end.pcapng": _pcapng(normal, tail=short_pb),
        "short-epb-at-end.pcapng": _pcapng(normal, tail=short_epb),
        "short-spb-at-end.pcapng": _pcapng(normal, tail=short_spb),
        "truncated-block.pcapng": _pcapng(normal)[:-7],
        "zero-length-records.pcap": pcap_bytes(normal + [type(normal[0])(normal[-1].ts_ns, b"")]
                                               * 500, LINKTYPE_ETHERNET),
        "hostile-text.pcapng": _pcapng(normal, name=HOSTILE),
    }
    out = {}
    for name, data in files.items():
        (tmp / name).write_bytes(data)
        out[name] = tmp / name
    return out


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return _shapes(tmp_path_factory.mktemp("shapes"))


COMMANDS = [("pcap",), ("pcap", "--format", "json"), ("facts",), ("facts", "--format", "json"),
            ("explain",), ("explain", "--format", "json"), ("explain", "--format", "md"),
            ("report", "-o", "{out}.html"), ("report", "-o", "{out}.md"),
            ("report", "-o", "{out}.json")]


def _run(args: list[str]):
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout, result.stderr, result.exception


def _terminal_safe(text: str) -> bool:
    return not any(c in text for c in CONTROL_BYTES)


@pytest.mark.parametrize("shape", ["header-only.pcap", "far-future.pcapng",
                                   "far-future-max.pcapng", "epoch-zero.pcapng",
                                   "short-idb-at-end.pcapng", "short-pb-at-end.pcapng",
                                   "short-epb-at-end.pcapng", "short-spb-at-end.pcapng",
                                   "truncated-block.pcapng", "zero-length-records.pcap",
                                   "hostile-text.pcapng"])
def test_every_shape_through_every_command(shapes, tmp_path, shape):
    for command in COMMANDS:
        name, *rest = command
        args = [name, str(shapes[shape])] + [a.format(out=tmp_path / "r") for a in rest]
        code, out, err, exc = _run(args)
        assert code in (0, 1), (command, code, err, exc)
        assert "Traceback" not in out + err and _terminal_safe(out + err), (command, out[-300:])
        if name == "report":
            written = Path(args[-1]).read_text()
            if args[-1].endswith(".md"):
                assert _terminal_safe(written)
            if args[-1].endswith(".json"):
                json.loads(written)


@pytest.mark.parametrize("shape, malformed, packets", [
    ("short-idb-at-end.pcapng", 1, 7), ("short-pb-at-end.pcapng", 1, 7),
    ("short-epb-at-end.pcapng", 1, 7), ("short-spb-at-end.pcapng", 1, 7),
    ("zero-length-records.pcap", 500, 506),
])
def test_damage_is_malformed_and_the_rest_decoded(shapes, shape, malformed, packets):
    code, out, _, _ = _run(["pcap", str(shapes[shape]), "--format", "json"])
    summary = json.loads(out)
    assert code == 0 and summary["packets"]["malformed"] == malformed
    assert summary["packets"]["total"] == packets
    assert summary["bgp"]["messages"]["OPEN"] == 2 and summary["bgp"]["messages"]["NOTIFICATION"] == 1


def test_header_only_messages_are_counted_not_fatal(shapes):
    code, out, _, _ = _run(["pcap", str(shapes["header-only.pcap"]), "--format", "json"])
    assert code == 0
    messages = json.loads(out)["bgp"]["messages"]
    assert messages["OPEN"] == 1 and messages["NOTIFICATION"] == 1 and messages["KEEPALIVE"] == 1
    code, out, _, _ = _run(["explain", str(shapes["header-only.pcap"])])
    assert code in (0, 1) and "NOTIFICATION" in out


def test_far_future_timestamps_are_shown_as_raw_seconds(shapes, tmp_path):
    code, out, _, _ = _run(["pcap", str(shapes["far-future.pcapng"])])
    assert code == 0 and "9.223372036854776e+18 s" in out
    code, _, _, _ = _run(["report", str(shapes["far-future.pcapng"]), "-o",
                          str(tmp_path / "r.md")])
    assert code in (0, 1) and " s" in (tmp_path / "r.md").read_text()


def test_evidence_text_is_shown_never_obeyed(shapes, tmp_path):
    """The interface name and the shutdown text reach every output visibly: control characters
    as escapes, rich markup as text; HTML escapes markup its own way."""
    path = str(shapes["hostile-text.pcapng"])
    code, out, _, _ = _run(["pcap", path])
    assert code == 0 and "eth[/]0\\x1b]8;;http://evil.example/\\x07click" in out
    assert "[/] [bold]maintenance\\x1b[31m red\\x1b]0;title\\x07 \\x85next" in out
    assert "\\u202eoob" in out
    code, out, _, _ = _run(["pcap", path, "--format", "json"])
    assert "\\u001b" in out and json.loads(out)      # JSON escapes them itself
    code, out, _, _ = _run(["pcap", path, "--frame", "6"])      # the NOTIFICATION
    assert code == 0 and _terminal_safe(out) and "\\x1b" in out
    code, out, _, _ = _run(["explain", path, "--format", "md"])
    assert code in (0, 1) and _terminal_safe(out)
    _run(["report", path, "-o", str(tmp_path / "r.html")])
    html = (tmp_path / "r.html").read_text()
    assert "[/] [bold]maintenance" in html or "maintenance" in html
    assert "<bold>" not in html


def test_malformed_records_past_the_bound_are_counted_not_kept(tmp_path):
    """A bare capture padded with zero-length records: facts keep 1,000 malformed rows and count
    the rest in one parse_errors row; explain says so; exit 0 (the capture is usable)."""
    from tests.craft.pcapfile import Record

    records = _session([("ab", m.keepalive())])
    path = tmp_path / "padded.pcap"
    path.write_bytes(pcap_bytes(records + [Record(records[-1].ts_ns, b"")] * 1500,
                                LINKTYPE_ETHERNET))
    code, out, _, _ = _run(["facts", str(path), "--format", "json"])
    doc = json.loads(out)
    assert code == 0 and doc["tables"]["packets"] == len(records) + 1000
    assert [e["reason"] for e in doc["parse_errors"]] == [
        ("1500 malformed records (damaged, zero-length or garbage); the first 1000 are packets "
         "rows")]
    code, out, _, _ = _run(["explain", str(path)])
    assert code in (0, 1) and "the capture: 1500 malformed records" in out
