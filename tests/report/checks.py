"""What every report test asks of an HTML report, checked in the browser and against independent
oracles: the explain JSON (run separately) and tshark's reading of the captures."""
from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path

from tests.report.browser import png_colour_stats

ROUTE_FILE = re.compile(r"hosts/[^/]+/ip-route-v[46]\.out$")
POINTER = re.compile(r"^/(\d+)(?:/|$)")

DOM_CHECKS = """(() => {
  const box = el => { if (!el) return null; const r = el.getBoundingClientRect();
    const s = getComputedStyle(el); return {w: r.width, h: r.height,
    visible: s.display !== 'none' && s.visibility !== 'hidden' && r.width > 0 && r.height > 0}; };
  const svg = id => document.getElementById(id);
  const texts = el => el ? [...el.querySelectorAll('text')].map(t => t.textContent) : [];
  return {
    title: document.title,
    first_code: (document.querySelector('#findings article.finding') || {}).dataset?.code || null,
    codes: [...document.querySelectorAll('#findings article.finding')].map(a => a.dataset.code),
    topology: box(svg('topology-svg')), topology_texts: texts(svg('topology-svg')),
    timeline: box(svg('timeline-svg')), lanes: svg('timeline-svg') ?
      [...svg('timeline-svg').querySelectorAll('g.lane')].map(g => [g.dataset.a, g.dataset.b]) : [],
    marks: svg('timeline-svg') ? svg('timeline-svg').querySelectorAll('g.lane g.mark').length : 0,
    no_capture: !!document.getElementById('no-capture'),
    no_bgp: !!document.getElementById('no-bgp'),
    highlighted: [...document.querySelectorAll('#routes tr.hl')].map(
      tr => [tr.dataset.file, Number(tr.dataset.index), tr.children[3].textContent,
             getComputedStyle(tr.children[0]).backgroundColor]),
    findings_visible: box(document.getElementById('findings')),
    scripts: document.querySelectorAll('script').length,
    external: [...document.querySelectorAll('[src],[href]')].map(e => e.getAttribute('src') ||
      e.getAttribute('href')).filter(u => !u.startsWith('#')),
  };
})()"""


def expected_rows(explain_doc: dict) -> set[tuple[str, int]]:
    """Routing rows the explain JSON's evidence points at: (file, row index)."""
    out = set()
    for f in explain_doc["findings"]:
        for e in f["evidence"]:
            m = POINTER.match(str(e.get("pointer") or ""))
            if m and ROUTE_FILE.search(str(e.get("file") or "")):
                out.add((e["file"], int(m.group(1))))
    return out


def bundle_file(bundle: Path, relative: str) -> bytes:
    """A file of a bundle directory or archive, read with tarfile (not through diag)."""
    if bundle.is_dir():
        return (bundle / relative).read_bytes()
    with tarfile.open(bundle) as tar:
        for member in tar.getmembers():
            if member.name.split("/", 1)[-1] == relative:
                return tar.extractfile(member).read()
    raise FileNotFoundError(relative)


def tshark_bgp_pairs(pcaps: list[Path], bgp_ports=(179,)) -> set[tuple[str, str]]:
    """Peer pairs carrying BGP messages according to tshark (the oracle of the timeline lanes);
    one tshark per capture, all at once."""
    decode = [a for p in bgp_ports if p != 179 for a in ("-d", f"tcp.port=={p},bgp")]
    procs = [subprocess.Popen(["tshark", "-n", "-r", str(pcap), *decode, "-Y", "bgp", "-T",
                               "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src",
                               "-e", "ipv6.dst"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for pcap in pcaps]
    pairs = set()
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, f"tshark failed on {proc.args}: {err[-500:]}"
        for line in out.splitlines():
            fields = [f for f in line.split("\t") if f]
            if len(fields) >= 2:
                pairs.add(tuple(sorted(fields[:2])))
    return pairs


def check_page(browser, html: Path, *, first_code: str | None, hosts: list[str],
               explain_doc: dict, bgp_pairs: set | None, shots: Path | None = None) -> dict:
    """Load ``html`` in the browser, assert what every report must show; return the DOM facts."""
    page = browser.load(html)
    try:
        assert page.requests == [], f"the report made network requests: {page.requests}"
        dom = browser.evaluate(page, DOM_CHECKS)
        png = browser.screenshot(page)
    finally:
        browser.close_page(page)
    assert dom["scripts"] == 0 and dom["external"] == [], dom["external"]
    assert dom["findings_visible"]["visible"]
    if first_code is not None:
        assert dom["first_code"] == first_code, dom["codes"]
    assert dom["codes"] == [f["code"] for f in explain_doc["findings"]]
    topo = dom["topology"]
    assert topo and topo["visible"] and topo["w"] > 300 and topo["h"] > 150, topo
    for host in hosts:
        assert host in dom["topology_texts"], (host, dom["topology_texts"])
    if bgp_pairs is None:                   # no capture at all
        assert dom["no_capture"] and dom["timeline"] is None
    elif not bgp_pairs:                     # captures without a BGP message
        assert dom["no_bgp"] and dom["timeline"] is None
    else:
        tl = dom["timeline"]
        assert tl and tl["visible"] and tl["w"] > 300 and tl["h"] > 100, tl
        assert {tuple(sorted(p)) for p in dom["lanes"]} == bgp_pairs
        assert dom["marks"] >= len(bgp_pairs)
    highlighted = {(f, i) for f, i, _dst, _bg in dom["highlighted"]}
    assert highlighted == expected_rows(explain_doc)
    for _f, _i, _dst, background in dom["highlighted"]:
        assert background not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)"), background
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    width, height, colours, ink = png_colour_stats(png)
    assert (width, height) == (1280, 1600)
    assert colours > 20 and ink > 0.03, (colours, ink)   # not blank: text and colour on the page
    if shots is not None:
        shots.write_bytes(png)
    return dom


def explain_json(source: Path, *extra: str) -> dict:
    from tests.report.conftest import run_cli

    result = run_cli("explain", str(source), "--format", "json", *extra)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)
