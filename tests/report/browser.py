"""Headless Chromium driven through the DevTools protocol over a pipe (test helper, stdlib only).

Why a pipe: ``--remote-debugging-pipe`` makes Chromium read protocol commands from fd 3 and write
replies and events to fd 4 (JSON messages, each ended by a NUL byte) — no port, no websocket
library, no new dependency. Usage::

    with Browser.start() as browser:            # one process per test session (a fixture)
        page = browser.load(Path("report.html"))  # navigate, wait for the load event (deadline)
        page.requests                             # every URL requested except the file and data:
        browser.evaluate(page, "document.title")  # Runtime.evaluate, value returned by value
        png = browser.screenshot(page)            # Page.captureScreenshot -> PNG bytes
        browser.close_page(page)

``png_pixels(png)`` decodes a PNG with zlib (8-bit RGB/RGBA, the filters of the spec) so a test
can see that a screenshot is not blank. ``CHROMIUM`` is None when the browser is not installed.

Network safety: besides the report's own guarantee, Chromium gets ``--proxy-server`` pointing at
a closed loopback port, so a request that a broken report (or the planted-image test) makes is
recorded by ``Network.requestWillBeSent`` and then fails at once on loopback; no packet leaves.
"""
from __future__ import annotations

import base64
import fcntl
import itertools
import json
import os
import select
import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-default-apps",
         "--disable-sync", "--metrics-recording-only", "--disable-dev-shm-usage",
         "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
         "--window-size=1280,1600", "--hide-scrollbars", "--mute-audio")


class BrowserError(RuntimeError):
    pass


@dataclass
class Page:
    url: str
    session: str
    target: str
    requests: list[str] = field(default_factory=list)
    load_seconds: float = 0.0


class Browser:
    def __init__(self, proc: subprocess.Popen, to_browser: int, from_browser: int,
                 profile: tempfile.TemporaryDirectory) -> None:
        self.proc, self._out, self._in, self._profile = proc, to_browser, from_browser, profile
        self._ids = itertools.count(1)
        self._buffer = b""
        self._events: list[dict[str, Any]] = []

    @classmethod
    def start(cls, executable: str | None = CHROMIUM, timeout: float = 30.0) -> "Browser":
        if not executable:
            raise BrowserError("chromium is not installed")
        profile = tempfile.TemporaryDirectory(prefix="diag-chromium-")
        cmd_r, cmd_w = os.pipe()        # we write commands, Chromium reads them on fd 3
        out_r, out_w = os.pipe()        # Chromium writes on fd 4, we read
        # inheritable copies at fds >= 10, so that moving them to 3 and 4 in the child cannot
        # overwrite one with the other
        child_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
        child_w = fcntl.fcntl(out_w, fcntl.F_DUPFD, 10)

        def to_fds_3_and_4() -> None:   # runs in the child between fork and exec
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)
            os.close(child_r)
            os.close(child_w)

        argv = [executable, "--remote-debugging-pipe", f"--user-data-dir={profile.name}",
                *FLAGS, "about:blank"]
        # close_fds=False: Python's own fds are not inheritable (PEP 446), only 3 and 4 pass
        proc = subprocess.Popen(argv, close_fds=False, preexec_fn=to_fds_3_and_4,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        for fd in (cmd_r, out_w, child_r, child_w):
            os.close(fd)
        browser = cls(proc, cmd_w, out_r, profile)
        browser.call("Browser.getVersion", timeout=timeout)   # the pipe answers: it is up
        return browser

    # --- protocol ---------------------------------------------------------------------------

    def _send(self, method: str, params: dict | None, session: str | None) -> int:
        msg_id = next(self._ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._out, data):]
        return msg_id

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._in], [], [], left)
            if ready:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise BrowserError(f"Chromium closed the pipe (exit {self.proc.poll()})")
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        msg_id = self._send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read(deadline)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self._events.append(msg)

    def _wait_event(self, method: str, session: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self._events):
                if ev["method"] == method and ev.get("sessionId") == session:
                    return self._events.pop(i)
            msg = self._read(deadline)
            if "method" in msg:
                self._events.append(msg)

    # --- pages ------------------------------------------------------------------------------

    def load(self, path: Path, timeout: float = 30.0) -> Page:
        """Open ``path`` in a new tab, wait for its load event, record the requests it made."""
        url = Path(path).resolve().as_uri()
        started = time.monotonic()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target,
                                                      "flatten": True})["sessionId"]
        self.call("Network.enable", session=session)
        self.call("Page.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 1600,
                                                        "deviceScaleFactor": 1,
                                                        "mobile": False}, session=session)
        self._events = [e for e in self._events if e.get("sessionId") != session]
        nav = self.call("Page.navigate", {"url": url}, session=session, timeout=timeout)
        if nav.get("errorText"):
            raise BrowserError(f"navigation to {url} failed: {nav['errorText']}")
        self._wait_event("Page.loadEventFired", session, timeout)
        page = Page(url, session, target, load_seconds=time.monotonic() - started)
        # a round trip after the load event flushes every event Chromium queued before it
        self.call("Runtime.evaluate", {"expression": "1"}, session=session)
        for ev in [e for e in self._events if e.get("sessionId") == session]:
            if ev["method"] == "Network.requestWillBeSent":
                requested = ev["params"]["request"]["url"]
                if requested != url and not requested.startswith("data:"):
                    page.requests.append(requested)
        self._events = [e for e in self._events if e.get("sessionId") != session]
        return page

    def evaluate(self, page: Page, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=page.session)
        if "exceptionDetails" in result:
            raise BrowserError(f"evaluate failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, page: Page, full_page: bool = False) -> bytes:
        # optimizeForSpeed: Chromium then filters every row with "Up", which png_pixels
        # unfilters with numpy in ~0.2 s (its default mixes in Paeth: ~1.5 s in Python)
        params: dict[str, Any] = {"format": "png", "optimizeForSpeed": True}
        if full_page:
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", params, session=page.session)["data"]
        return base64.b64decode(data)

    def close_page(self, page: Page) -> None:
        self.call("Target.closeTarget", {"targetId": page.target})

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for fd in (self._out, self._in):
            try:
                os.close(fd)
            except OSError:
                pass
        self._profile.cleanup()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- PNG ---------------------------------------------------------------------------------------

def png_pixels(png: bytes) -> tuple[int, int, int, list[bytes]]:
    """(width, height, bytes per pixel, rows of unfiltered pixel bytes) of an 8-bit RGB/RGBA PNG."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat = 8, b""
    width = height = bpp = 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in (2, 6) or interlace:
                raise ValueError(f"unsupported PNG: depth {depth} colour {colour}")
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    import numpy as np

    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = np.zeros(stride, np.uint8)
    for y in range(height):
        start = y * (stride + 1)
        ftype = raw[start]
        line = np.frombuffer(raw, np.uint8, stride, start + 1)
        if ftype == 0:                      # None
            cur = line.copy()
        elif ftype == 1:                    # Sub: a running sum per channel
            cur = (np.cumsum(line.reshape(-1, bpp).astype(np.int64), axis=0) & 0xFF) \
                .astype(np.uint8).reshape(-1)
        elif ftype == 2:                    # Up
            cur = line + prev
        else:                               # Average, Paeth: sequential along the row
            cur = np.frombuffer(_unfilter_sequential(ftype, line.tobytes(), prev.tobytes(), bpp),
                                np.uint8)
        rows.append(cur.tobytes())
        prev = cur
    return width, height, bpp, rows


def _unfilter_sequential(ftype: int, data: bytes, prev: bytes, bpp: int) -> bytes:
    line = bytearray(data)
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        if ftype == 3:
            line[i] = (line[i] + (a + b) // 2) & 0xFF
        elif ftype == 4:
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        else:
            raise ValueError(f"bad PNG filter {ftype}")
    return bytes(line)


def png_colour_stats(png: bytes, step: int = 4) -> tuple[int, int, int, float]:
    """(width, height, distinct colours, share of pixels differing from the most common colour),
    sampling every ``step``-th pixel of every ``step``-th row."""
    from collections import Counter

    width, height, bpp, rows = png_pixels(png)
    counts: Counter = Counter()
    for row in rows[::step]:
        for x in range(0, width, step):
            counts[row[x * bpp:x * bpp + 3]] += 1
    total = sum(counts.values())
    background = counts.most_common(1)[0][1] if counts else 0
    return width, height, len(counts), (total - background) / total if total else 0.0
