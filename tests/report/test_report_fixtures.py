"""`diag report` on the committed bundles and captures (no lab): HTML checked in headless Chromium
(no request, findings, pictures, highlighted rows, a non-blank screenshot), the no-request check
failing on a planted image, Markdown and JSON against the explain JSON, escaping of hostile
content, the CLI's errors and exit codes, atomic writes, and a big synthetic bundle staying small.
"""
from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from tests.report.checks import (bundle_file, check_page, expected_rows, explain_json,
                                 tshark_bgp_pairs)
from tests.report.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = sorted((ROOT / "tests/fixtures/bundles").glob("*.tar.gz"))
PCAP = ROOT / "captures/bgp_session.pcap"
LAB_PCAPS = sorted((ROOT / "captures/lab").glob("bgp-*.pcap"))


def _captures(bundle: Path, tmp: Path) -> list[Path]:
    out = []
    with tarfile.open(bundle) as tar:
        for m in tar.getmembers():
            if m.name.endswith("capture.pcap") and m.size:
                target = tmp / m.name.replace("/", "_")
                target.write_bytes(tar.extractfile(m).read())
                out.append(target)
    return out


def _truth_hosts(bundle: Path) -> list[str]:
    truth = json.loads(bundle.with_name(bundle.name.replace(".tar.gz", ".truth.json")).read_text())
    hosts = truth.get("hosts")
    return sorted(hosts if isinstance(hosts, (list, dict)) else [])


@pytest.mark.tshark
@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name.split(".")[0])
def test_html_report_of_fixture_bundle_in_browser(browser, bundle, tmp_path):
    out = tmp_path / "report.html"
    result = run_cli("report", str(bundle), "-o", str(out))
    doc = explain_json(bundle)
    worst_error = any(f["severity"] == "error" for f in doc["findings"])
    assert result.exit_code == (1 if worst_error else 0), result.output
    assert result.output == ""                       # the report goes to the file only
    hosts = _truth_hosts(bundle)
    assert hosts and set(hosts) == set(doc["bundle"]["hosts"])
    first = doc["findings"][0]["code"] if doc["findings"] else None
    dom = check_page(browser, out, first_code=first,
                     hosts=hosts, explain_doc=doc,
                     bgp_pairs=tshark_bgp_pairs(_captures(bundle, tmp_path)))
    # each highlighted row shows the route the pointer names in the raw file (read with tarfile)
    for file, index, dst, _bg in dom["highlighted"]:
        route = json.loads(bundle_file(bundle, file))[index]
        assert dst == route["dst"], (file, index, dst, route)


def test_highlighted_rows_follow_the_pointers_only(tmp_path):
    """Rows are found through the explain JSON: a fixture with ROUTE_RIB_NOT_IN_FIB evidence
    highlights exactly those rows, and the same bundle gathered with a document whose evidence
    was dropped highlights none (nothing is re-analysed)."""
    from diag.bundle import open_bundle
    from diag.facts import load_facts
    from diag.pipeline import report as build_report
    from diag.report.data import gather
    from diag.report.html import render_html

    bundle = ROOT / "tests/fixtures/bundles/cilium-native-default.tar.gz"
    doc, data = build_report(bundle)
    want = expected_rows(doc)
    assert want, "the fixture's explain JSON should point into ip-route files"
    html = render_html(doc, data)
    got = set(re.findall(r'<tr class="hl" data-file="([^"]+)" data-index="(\d+)"', html))
    assert {(f, int(i)) for f, i in got} == want
    stripped = json.loads(json.dumps(doc))
    for f in stripped["findings"]:
        f["evidence"] = []
    opened = open_bundle(bundle, tmp_path / "x")
    data2 = gather(load_facts(opened.root), opened, stripped)
    assert data2.routes and not any(t.highlighted for t in data2.routes)
    assert 'class="hl"' not in render_html(stripped, data2)


def test_planted_image_is_caught_by_the_no_request_check(browser, tmp_path):
    bundle = ROOT / "tests/fixtures/bundles/calico-vxlan-default.tar.gz"
    out = tmp_path / "report.html"
    run_cli("report", str(bundle), "-o", str(out), "--fail-on", "never")
    clean = browser.load(out)
    browser.close_page(clean)
    assert clean.requests == []
    planted = tmp_path / "planted.html"
    text = out.read_text()
    assert text.count("<body>") == 1
    planted.write_text(text.replace("<body>", '<body><img src="http://192.0.2.1/x.png">'))
    page = browser.load(planted)
    browser.close_page(page)
    assert page.requests == ["http://192.0.2.1/x.png"]
    with pytest.raises(AssertionError, match="network requests"):
        check_page(browser, planted, first_code=None, hosts=[], explain_doc={"findings": []},
                   bgp_pairs=None)


@pytest.mark.tshark
def test_pcap_only_report(browser, tmp_path):
    out = tmp_path / "p.html"
    result = run_cli("report", str(PCAP), "-o", str(out))
    doc = explain_json(PCAP)
    assert result.exit_code == (1 if any(f["severity"] == "error" for f in doc["findings"])
                                else 0), result.output
    pairs = tshark_bgp_pairs([PCAP])
    speakers = sorted({a for p in pairs for a in p})
    first = doc["findings"][0]["code"] if doc["findings"] else None
    dom = check_page(browser, out, first_code=first,
                     hosts=speakers, explain_doc=doc, bgp_pairs=pairs)
    assert dom["highlighted"] == []
    text = out.read_text()
    assert "a bare capture" in text and "A bare capture has no routing tables" in text


@pytest.mark.tshark
@pytest.mark.parametrize("pcap", LAB_PCAPS, ids=lambda p: p.stem)
def test_lab_capture_timelines_mark_notifications_and_resets(pcap, tmp_path):
    """Every NOTIFICATION tshark sees is a NOTIFICATION event of the report's JSON timeline, and
    TCP RST/FIN on port 179 are events too (tshark counts them)."""
    import subprocess

    out = tmp_path / "r.json"
    result = run_cli("report", str(pcap), "-o", str(out), "--fail-on", "never")
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())["report"]
    events = [e for lane in report["timeline"]["lanes"] for e in lane["events"]]

    def tshark_frames(filt: str) -> set[int]:
        out = subprocess.run(["tshark", "-n", "-r", str(pcap), "-Y", filt, "-T", "fields", "-e",
                              "frame.number"], capture_output=True, text=True, check=True).stdout
        return {int(x) for x in out.split()}

    lanes_hosts = {lane["capture"] for lane in report["timeline"]["lanes"]}
    assert lanes_hosts <= {"capture"}
    notif = tshark_frames("bgp.type == 3")
    assert {e["frame"] for e in events if e["kind"] == "NOTIFICATION"} == notif
    for flag, kind in (("tcp.flags.reset == 1", "RST"), ("tcp.flags.fin == 1", "FIN")):
        frames = tshark_frames(f"tcp.port == 179 && {flag}")
        assert {e["frame"] for e in events if e["kind"] == kind} == frames


def test_session_reset_is_marked_on_a_reopened_session(tmp_path):
    """A capture cut and glued: an established session (OPENs, KEEPALIVEs) followed by a new OPEN
    of the same pair is a RESET event; scapy writes the capture (independent of diag),
    the BGP messages are bytes laid out as RFC 4271 says."""
    import socket
    import struct

    from scapy.layers.inet import IP, TCP  # noqa: PLC0415
    from scapy.layers.l2 import Ether  # noqa: PLC0415
    from scapy.utils import wrpcap  # noqa: PLC0415

    def bgp(kind: int, body: bytes = b"") -> bytes:   # RFC 4271 4.1: marker, length, type
        return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), kind) + body

    def bgp_open(my_as: int, bgp_id: str) -> bytes:   # RFC 4271 4.2, no optional parameters
        return bgp(1, struct.pack("!BHH4sB", 4, my_as, 90, socket.inet_aton(bgp_id), 0))

    a, b = "192.0.2.1", "192.0.2.2"
    pkts, t = [], 1_800_000_000.0
    seq = {a: 1000, b: 5000}

    def send(src, dst, sport, dport, payload, flags="PA"):
        nonlocal t
        # explicit MACs: scapy would otherwise try to resolve the destination (ARP on the host)
        p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src, dst=dst) \
            / TCP(sport=sport, dport=dport, flags=flags,
                                                  seq=seq[src], ack=seq[dst]) / payload
        seq[src] += len(payload)
        t += 1
        p.time = t
        pkts.append(p)

    for port in (40000, 40001):           # two connections: the second one re-opens the session
        seq[a], seq[b] = 1000 + port, 5000 + port
        for src, dst, sp, dp, as_ in ((a, b, port, 179, 65001), (b, a, 179, port, 65000)):
            send(src, dst, sp, dp, bgp_open(as_, src))
        for src, dst, sp, dp in ((a, b, port, 179), (b, a, 179, port)):
            send(src, dst, sp, dp, bgp(4))
    pcap = tmp_path / "reset.pcap"
    wrpcap(str(pcap), pkts)
    out = tmp_path / "r.json"
    assert run_cli("report", str(pcap), "-o", str(out), "--fail-on", "never").exit_code == 0
    lanes = json.loads(out.read_text())["report"]["timeline"]["lanes"]
    assert len(lanes) == 1
    resets = [e for e in lanes[0]["events"] if e["kind"] == "RESET"]
    assert [e["frame"] for e in resets] == [5]          # the first OPEN of the second connection
    assert lanes[0]["counts"]["OPEN"] == 4 and lanes[0]["state"] == "ESTABLISHED"


def test_markdown_and_json_share_explains_findings(tmp_path):
    bundle = ROOT / "tests/fixtures/bundles/cilium-vxlan-default.tar.gz"
    doc = explain_json(bundle)
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    assert run_cli("report", str(bundle), "-o", str(md)).exit_code == 1
    assert run_cli("report", str(bundle), "-o", str(js)).exit_code == 1
    report = json.loads(js.read_text())
    assert set(report) == set(doc) | {"report"}
    for key in ("schema_version", "bundle", "findings", "checked", "not_checked"):
        assert report[key] == doc[key], key
    assert report["report"]["highlighted_routes"]
    assert {(r["file"], int(r["pointer"][1:])) for r in report["report"]["highlighted_routes"]} \
        == expected_rows(doc)
    text = md.read_text()
    assert "<" not in text.replace("&lt;", "")       # no raw HTML needed
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    codes = [re.search(r"`([A-Z_0-9]+)`", h).group(1) for h in headings
             if re.match(r"### \d+\.", h)]
    assert codes == [f["code"] for f in doc["findings"]]
    # every table row has as many unescaped pipes as its header
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            cols = _pipes(lines[i - 1])
            j = i + 1
            while j < len(lines) and lines[j].startswith("| "):
                assert _pipes(lines[j]) == cols, lines[j]
                j += 1
    assert text.count("```") % 2 == 0


def _pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def _edited_bundle(tmp_path: Path, edit) -> Path:
    src = ROOT / "tests/fixtures/bundles/calico-native-default.tar.gz"
    with tarfile.open(src) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    root = next((tmp_path / "x").iterdir())
    manifest = json.loads((root / "manifest.json").read_text())
    edit(root, manifest)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


EVIL = '<script>alert(1)</script><img src="http://192.0.2.1/e.png">|`x`'


def test_hostile_content_is_escaped(browser, tmp_path):
    def edit(root, manifest):
        manifest["hosts"][EVIL] = manifest["hosts"].pop("k8s-w1")
        cmd = manifest["hosts"][EVIL]["commands"][0]
        cmd["stderr"] = EVIL
        cmd["outcome"] = "FAILED"

    root = _edited_bundle(tmp_path, edit)
    for ext in ("html", "md", "json"):
        out = tmp_path / f"r.{ext}"
        result = run_cli("report", str(root), "-o", str(out), "--fail-on", "never")
        assert result.exit_code == 0, result.output
    html = (tmp_path / "r.html").read_text()
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "&lt;script&gt;" in html
    page = browser.load(tmp_path / "r.html")
    try:
        assert page.requests == []
        assert browser.evaluate(page, "document.querySelectorAll('script,img').length") == 0
        assert browser.evaluate(page, "document.body.innerText.includes('<script>alert(1)')")
    finally:
        browser.close_page(page)
    md = (tmp_path / "r.md").read_text()
    assert "<script" not in md and "\\|" in md
    assert EVIL in json.loads((tmp_path / "r.json").read_text())["bundle"]["hosts"]


def test_cli_errors_one_line_and_exit_codes(tmp_path):
    bundle = ROOT / "tests/fixtures/bundles/cilium-native-default.tar.gz"
    bad = run_cli("report", str(bundle), "-o", str(tmp_path / "r.pdf"))
    assert bad.exit_code == 2 and "cannot tell the report format" in bad.output
    assert "Traceback" not in bad.output and not (tmp_path / "r.pdf").exists()
    missing = run_cli("report", str(tmp_path / "nope.tar.gz"), "-o", str(tmp_path / "r.html"))
    assert missing.exit_code == 4 and "not found" in missing.output
    assert not (tmp_path / "r.html").exists()
    notpcap = tmp_path / "x.pcap"
    notpcap.write_bytes(b"hello, not a capture\n" * 4)
    res = run_cli("report", str(notpcap), "-o", str(tmp_path / "r.html"))
    assert res.exit_code == 4 and "Traceback" not in res.output
    # hostile archive: path traversal
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        data = b"{}"
        info = tarfile.TarInfo("b/../../escape.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    res = run_cli("report", str(evil), "-o", str(tmp_path / "r.html"))
    assert res.exit_code == 4 and "traversal" in res.output
    assert len([l for l in res.output.splitlines() if l.startswith("diag: error")]) == 1
    assert not (tmp_path.parent / "escape.txt").exists()
    res = run_cli("report", str(bundle), "-o", str(tmp_path / "r.html"), "--fail-on", "bogus")
    assert res.exit_code == 2
    res = run_cli("report", str(bundle), "-o", str(tmp_path / "no-such-dir" / "r.html"))
    assert res.exit_code == 2 and "does not exist" in res.output   # no parents are made
    # exit code like explain: error finding -> 1 by default, never -> 0, the file written in both
    assert run_cli("report", str(bundle), "-o", str(tmp_path / "a.html")).exit_code == 1
    assert run_cli("report", str(bundle), "-o", str(tmp_path / "b.html"), "--fail-on",
                   "never").exit_code == 0
    assert (tmp_path / "a.html").stat().st_size > 10_000 and (tmp_path / "b.html").exists()


def test_atomic_write_keeps_the_old_report_on_failure(tmp_path):
    out = tmp_path / "r.html"
    out.write_text("old report")
    res = run_cli("report", str(tmp_path / "missing"), "-o", str(out))
    assert res.exit_code == 4 and out.read_text() == "old report"
    bundle = ROOT / "tests/fixtures/bundles/cilium-native-default.tar.gz"
    assert run_cli("report", str(bundle), "-o", str(out), "--fail-on", "never").exit_code == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]     # no temporary file left


def test_no_capture_bundle_says_so(browser, tmp_path):
    def edit(root, manifest):
        for rec in manifest["hosts"].values():
            for cmd in [c for c in rec["commands"] if c["id"] == "capture"]:
                (root / cmd["path"]).unlink()
                rec["commands"].remove(cmd)

    root = _edited_bundle(tmp_path, edit)
    out = tmp_path / "r.html"
    assert run_cli("report", str(root), "-o", str(out), "--fail-on", "never").exit_code == 0
    doc = explain_json(root)
    check_page(browser, out, first_code=None, hosts=["router", "k8s-ctr", "k8s-w0", "k8s-w1"],
               explain_doc=doc, bgp_pairs=None)
    assert "no capture in this bundle" in out.read_text()
    md = tmp_path / "r.md"
    run_cli("report", str(root), "-o", str(md), "--fail-on", "never")
    assert "No capture in this bundle" in md.read_text()


def test_big_synthetic_bundle_stays_small(browser, tmp_path):
    """60 hosts x 300 routes (the scale benchmark's generator): grid topology, routing rows only
    for the host a finding points into, the file stays small, the browser still shows it all."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("explain_scale",
                                                  ROOT / "benchmarks/explain_scale.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bundle = bench.build(tmp_path / "b", hosts=60, routes=300, break_node=7)
    out = tmp_path / "r.html"
    assert run_cli("report", str(bundle), "-o", str(out)).exit_code == 1
    doc = explain_json(bundle)
    size = out.stat().st_size
    assert size < 1_500_000, size
    hosts = doc["bundle"]["hosts"]
    dom = check_page(browser, out, first_code=doc["findings"][0]["code"], hosts=hosts,
                     explain_doc=doc, bgp_pairs=None)
    assert len(hosts) == 60 and dom["highlighted"]
    text = out.read_text()
    assert "Other hosts (no finding points into their routes)" in text


def test_renderers_do_not_import_other_stages():
    """Stage layout: only the command module (cli.py) composes analyze + facts + report."""
    import ast

    for path in sorted((ROOT / "diag/report").glob("*.py")):
        if path.name == "cli.py":
            continue
        tree = ast.parse(path.read_text())
        names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        bad = [n for n in names if n.startswith(("diag.analyze", "diag.collect", "diag.lab"))]
        assert not bad, (path.name, bad)


def test_cli_start_up_imports_no_renderer():
    import subprocess
    import sys

    code = ("import sys, diag.cli; heavy = [m for m in ('pandas', 'diag.report.html', "
            "'diag.report.data', 'diag.report.svg', 'scapy') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True).stdout.strip()
    assert out == "[]", out


@pytest.mark.parametrize("pcap", sorted((ROOT / "captures/lab").glob("arp-*.pcap")) + [PCAP],
                         ids=lambda p: p.stem)
def test_arp_without_replies_against_scapy(pcap, tmp_path):
    """The report's ARP table against scapy's reading of the capture: per asked address, the
    requests, and those with no reply from the target to the asker within 1 s."""
    from scapy.all import ARP, ICMP, rdpcap  # noqa: PLC0415

    # an ARP quoted inside an ICMP error (port unreachable for a VXLAN datagram) was not sent
    packets = [(float(p.time), p[ARP]) for p in rdpcap(str(pcap)) if ARP in p and ICMP not in p]
    want = {}
    for ts, arp in packets:
        if arp.op != 1 or arp.psrc == arp.pdst:
            continue
        answered = any(r.op == 2 and r.psrc == arp.pdst and r.pdst == arp.psrc
                       and ts <= t <= ts + 3.0 for t, r in packets)   # diag pcap's rule
        req, una = want.get(arp.pdst, (0, 0))
        want[arp.pdst] = (req + 1, una + (not answered))
    want = {k: v for k, v in want.items() if v[1]}
    out = tmp_path / "r.json"
    assert run_cli("report", str(pcap), "-o", str(out), "--fail-on", "never").exit_code == 0
    got = {a["target"]: (a["requests"], a["unanswered"])
           for a in json.loads(out.read_text())["report"]["arp_unanswered"]}
    assert got == want


def test_png_decoder_agrees_with_chromium(browser, tmp_path):
    """The screenshot check decodes PNGs itself (zlib + unfiltering): Chromium's own decoder
    (createImageBitmap on a canvas) is its oracle, pixel for pixel on a sample grid, for both
    the fast screenshots (Up filter) and the default ones (Paeth and the others)."""
    import base64

    from tests.report.browser import png_pixels

    out = tmp_path / "r.html"
    run_cli("report", str(PCAP), "-o", str(out), "--fail-on", "never")
    page = browser.load(out)
    fast = browser.screenshot(page)
    slow = base64.b64decode(browser.call("Page.captureScreenshot", {"format": "png"},
                                         session=page.session)["data"])
    browser.close_page(page)
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><title>decode</title>")
    page = browser.load(blank)
    try:
        for png in (fast, slow):
            width, height, bpp, rows = png_pixels(png)
            points = [(x, y) for y in range(0, height, 97) for x in range(0, width, 89)]
            url = "data:image/png;base64," + base64.b64encode(png).decode()
            js = f"""(async () => {{
              const blob = await (await fetch('{url}')).blob();
              const bmp = await createImageBitmap(blob);
              const c = new OffscreenCanvas(bmp.width, bmp.height); const g = c.getContext('2d');
              g.drawImage(bmp, 0, 0); const d = g.getImageData(0, 0, bmp.width, bmp.height).data;
              return {json.dumps(points)}.map(([x, y]) => {{ const i = (y * bmp.width + x) * 4;
                return [d[i], d[i + 1], d[i + 2]]; }});
            }})()"""
            theirs = browser.evaluate(page, js)
            ours = [list(rows[y][x * bpp:x * bpp + 3]) for x, y in points]
            assert ours == theirs
    finally:
        browser.close_page(page)


def test_header_names_hosts_not_collected_and_failed_commands(tmp_path):
    def edit(root, manifest):
        manifest["hosts"]["k8s-w0"]["reachability"] = "CONNECT_TIMEOUT"
        manifest["hosts"]["k8s-w0"]["error"] = "connect timed out after 10 s"
        manifest["status"], manifest["partial_reasons"] = "partial", ["HOST_UNREACHED"]

    root = _edited_bundle(tmp_path, edit)
    for ext in ("html", "md", "json"):
        assert run_cli("report", str(root), "-o", str(tmp_path / f"r.{ext}"), "--fail-on",
                       "never").exit_code == 0
    html = (tmp_path / "r.html").read_text()
    header = html[html.index('<header id="summary">'):html.index("</header>")]
    assert "hosts not collected" in header and "CONNECT_TIMEOUT" in header
    assert "connect timed out after 10 s" in header and "HOST_UNREACHED" in header
    assert "failed commands" in header          # the fixture's router route-get probe failed
    md = (tmp_path / "r.md").read_text()
    assert "**host not collected**: k8s-w0: CONNECT_TIMEOUT" in md
    coll = json.loads((tmp_path / "r.json").read_text())["report"]["collection"]
    assert coll["failed_hosts"] == [{"host": "k8s-w0", "reachability": "CONNECT_TIMEOUT",
                                     "error": "connect timed out after 10 s"}]
    assert coll["failed_commands"] and coll["status"] == "partial"
