"""A headless Chromium driven over the DevTools protocol (a websocket), for the tests that
look at pages the way a reviewer does: the HTML report and the MLflow UI.

Only what those tests need: open a page (optionally with the network off), collect console
errors, uncaught exceptions and failed requests, evaluate an expression, and take a
full-page PNG at a given viewport width.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:  # .ci/run installs it; a missing browser is a broken test machine, not a skip
        raise RuntimeError("chromium is not installed: apt-get install chromium (as .ci/run does)")
    return found


@dataclass
class PageLog:
    """What went wrong while a page loaded and ran."""

    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)


class Browser:
    """One headless Chromium process with one page, used from a synchronous test."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.proc = subprocess.Popen(
            [chromium_binary(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--hide-scrollbars", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            page = next(t for t in json.load(resp) if t["type"] == "page")
        self.ws_url = page["webSocketDebuggerUrl"]
        self.loop = asyncio.new_event_loop()
        self.ids = itertools.count(1)
        self.session: Any = None
        self.ws: Any = None
        self.events: list[dict[str, Any]] = []
        self.loop.run_until_complete(self._connect())

    async def _connect(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.ws_url, max_msg_size=0)

    async def _call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.ws.receive_json(), timeout=60)
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.loop.run_until_complete(self._call(method, **params))

    def _drain(self, seconds: float) -> None:
        async def drain() -> None:
            try:
                while True:
                    self.events.append(await asyncio.wait_for(self.ws.receive_json(), timeout=seconds))
            except asyncio.TimeoutError:
                return

        self.loop.run_until_complete(drain())

    def open(self, url: str, *, width: int, height: int = 900, mobile: bool = False,
             offline: bool = False) -> PageLog:
        """Load ``url`` at a viewport ``width`` (CSS px) and return what failed on the way."""
        self.events.clear()
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=mobile)
        self.call("Network.emulateNetworkConditions", offline=offline, latency=0, downloadThroughput=-1,
                  uploadThroughput=-1)
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 60
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not load within 60 s")
            self._drain(0.5)
        self._drain(1.0)  # late console messages and requests
        log = PageLog()
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                log.console_errors.append(" ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
                log.console_errors.append(p["entry"]["text"])
            elif method == "Runtime.exceptionThrown":
                log.exceptions.append(p["exceptionDetails"].get("text", ""))
            elif method == "Network.loadingFailed":
                log.failed_requests.append(f"{p.get('errorText')} ({p.get('requestId')})")
        return log

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            self._drain(0.5)
        raise TimeoutError(f"{expression!r} stayed false for {timeout} s")

    def screenshot(self, path: Path) -> Path:
        """The whole page (not only the viewport) as PNG."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        async def close() -> None:
            await self.ws.close()
            await self.session.close()

        self.loop.run_until_complete(close())
        self.loop.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def is_blank(png: Path) -> bool:
    """True when the image is (nearly) one colour: nothing was drawn."""
    from PIL import Image

    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    return colours is not None and len(colours) < 8
