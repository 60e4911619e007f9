"""The report as a person sees it: Debian's chromium, headless, opens the file offline.

Two views of the same page: ``--screenshot`` (the picture a person looks at; each plot's area must be painted)
and a DevTools-protocol session over ``--remote-debugging-pipe`` that records every request the page makes,
every console message, exception and browser log entry (failed loads, blocked content), and reads the laid-out
DOM (sections, plot sizes, graph boxes). A control page with a console error, a missing image and an external
image shows that each check catches what it looks for. Set EDGEDEPLOY_SCREENSHOT_DIR to keep the screenshots.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from test_report import digits_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# CI installs chromium (.ci/run): there a missing browser is a failure, not a skip
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                reason="needs Debian's chromium (apt-get install -y chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
WIDTH = 1400
SECTIONS = ["summary", "variants", "plots", "steps", "graph"]


class Browser:
    """A headless chromium driven through the DevTools protocol on a pipe (fd 3: commands in, fd 4: replies out)."""

    def __init__(self, profile: Path) -> None:
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        cmd = ["bash", "-c", f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}', CHROMIUM, *FLAGS,
               "--remote-debugging-pipe", f"--user-data-dir={profile}", f"--window-size={WIDTH},1000", "about:blank"]
        self.proc = subprocess.Popen(cmd, pass_fds=(to_chrome_r, from_chrome_w), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf, self._id, self.events = b"", 0, []
        page = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)

    def _read(self, timeout: float) -> dict[str, Any] | None:
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._r], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, session: bool = False, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its reply, keeping the events that arrive meanwhile."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            reply = self._read(end - time.monotonic())
            if reply is None:
                break
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)
        raise TimeoutError(f"chromium did not answer {method} in {timeout} s")

    def open(self, path: Path, settle: float = 1.0) -> None:
        """Navigate to a local file and wait for its load event, then for late messages."""
        self.call("Page.navigate", session=True, url=path.resolve().as_uri())
        end = time.monotonic() + 60
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            ev = self._read(end - time.monotonic())
            if ev is None:
                raise TimeoutError(f"{path} did not finish loading")
            self.events.append(ev)
        end = time.monotonic() + settle
        while (ev := self._read(max(end - time.monotonic(), 0.0))) is not None:
            self.events.append(ev)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        res = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        return res["result"].get("value")

    def problems(self) -> dict[str, list[str]]:
        """Requests, console messages, exceptions, failed loads and error/warning log entries seen so far."""
        out: dict[str, list[str]] = {"requests": [], "console": [], "exceptions": [], "failed": [], "log": []}
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Network.requestWillBeSent":
                out["requests"].append(p["request"]["url"])
            elif m == "Runtime.consoleAPICalled":
                out["console"].append(f"{p['type']}: " + " ".join(str(a.get("value", a.get("description")))
                                                                  for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                out["exceptions"].append(p["exceptionDetails"].get("text", ""))
            elif m == "Network.loadingFailed":
                out["failed"].append(f"{p.get('errorText')} {p.get('blockedReason') or ''}".strip())
            elif m == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                out["log"].append(f"{p['entry']['level']}: {p['entry']['text']} {p['entry'].get('url', '')}")
        return out

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._r)
        os.close(self._w)


@pytest.fixture
def browser(tmp_path: Path):
    b = Browser(tmp_path / "profile")
    yield b
    b.close()


def screenshot(page: Path, out: Path, height: int) -> Path:
    """A full-page PNG through chromium's own --screenshot (a fresh profile each time)."""
    with tempfile.TemporaryDirectory(prefix="edgedeploy-chromium-") as profile:
        subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
                        f"--window-size={WIDTH},{height}", page.resolve().as_uri()],
                       check=True, timeout=120, capture_output=True)
    keep = os.environ.get("EDGEDEPLOY_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(keep) / out.name)
    return out


def test_the_checks_catch_a_broken_page(browser, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<html><body><p>broken</p><img src="missing.png"><img src="https://example.invalid/x.png">'
                    '<script>console.error("boom")</script></body></html>')
    browser.open(page)
    found = browser.problems()
    assert "error: boom" in found["console"]
    assert "https://example.invalid/x.png" in found["requests"]
    assert any(r.endswith("/missing.png") for r in found["requests"])
    assert len(found["failed"]) == 2 and any("missing.png" in x for x in found["log"])


def test_report_in_headless_chromium(browser, tmp_path):
    from edgedeploy.report import render_report

    report = render_report(digits_run(), tmp_path / "report.html")
    browser.open(report)
    layout = browser.evaluate("""JSON.stringify({
      sections: [...document.querySelectorAll('main > section')].map(s => s.id),
      figures: [...document.querySelectorAll('figure.plot')].map(f => {
        const s = f.querySelector('svg'), r = s.getBoundingClientRect();
        return {id: f.id, x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height,
                marks: s.querySelectorAll('path, rect, use').length, texts: s.querySelectorAll('text').length};
      }),
      graphBoxes: document.querySelectorAll('.edgedeploy-graph g.node').length,
      graph: (() => { const r = document.querySelector('.graph').getBoundingClientRect();
                      return {y: r.top + scrollY, h: r.height}; })(),
      links: [...document.querySelectorAll('[src], [href]')].map(e => e.getAttribute('src') || e.getAttribute('href')),
      images: document.images.length,
      pageWidth: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight})""")
    dom = json.loads(layout)
    found = browser.problems()
    assert found["requests"] == [report.resolve().as_uri()]       # the file itself and nothing else
    assert found["console"] == found["exceptions"] == found["failed"] == found["log"] == []
    assert dom["sections"] == SECTIONS
    assert all(link.startswith("#") for link in dom["links"]) and dom["images"] == 0
    assert dom["pageWidth"] <= WIDTH                               # no sideways scrolling at 1400 px
    assert len(dom["figures"]) == 9 and dom["graphBoxes"] == 16
    for fig in dom["figures"]:                                     # every plot laid out at a readable size
        assert fig["w"] > 450 and fig["h"] > 150 and fig["marks"] > 10 and fig["texts"] > 5, fig

    import numpy as np
    from PIL import Image

    png = screenshot(report, tmp_path / "edgedeploy-report.png", int(dom["height"]))
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape[:2] == (int(dom["height"]), WIDTH)
    for fig in dom["figures"] + [{"id": "graph", "x": 60, "y": dom["graph"]["y"], "w": 600, "h": 600}]:
        y0, x0 = int(fig["y"]), int(fig["x"])
        crop = img[y0:y0 + int(fig["h"]), x0:x0 + int(fig["w"])].reshape(-1, 3)
        inked = float((crop.min(axis=1) < 200).mean())
        colours = len(np.unique(crop, axis=0))
        assert inked > 0.02 and colours > 20, (fig["id"], inked, colours)   # painted, not blank or one flat colour
