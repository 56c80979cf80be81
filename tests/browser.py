"""Open a page in a real headless Chromium, network off, and record what a user's browser would.

The browser is Debian's ``chromium`` (``scripts/test`` installs it when missing), driven over
the DevTools protocol on a pipe (``--remote-debugging-pipe``: commands on fd 3, events on fd 4,
JSON messages ending in a NUL byte), so no driver or browser download is needed. The page is
opened with the network emulated offline and every proxy and host name pointed nowhere; the
result lists every console error, uncaught exception and request the page made.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
    "--disable-default-apps", "--disable-extensions", "--mute-audio",
    "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-pipe",
)


def chromium() -> str:
    """Path of the Chromium binary; a clear failure when it is not installed."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("chromium is not installed: `apt-get install -y chromium` (scripts/test does it)")


@dataclass
class PageVisit:
    """What happened while a page was open."""

    ready: str | None
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    text: str = ""


class _Pipe:
    """The DevTools protocol over Chromium's pipe: numbered commands, events kept as they come."""

    def __init__(self, process: subprocess.Popen, to_browser: int, from_browser: int):
        self.process, self.to_browser, self.from_browser = process, to_browser, from_browser
        self.buffer = b""
        self.events: list[dict[str, Any]] = []
        self.next_id = 0

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: str | None = None, timeout: float = 30.0, **params: Any) -> dict:
        self.next_id += 1
        command = {"id": self.next_id, "method": method, "params": params}
        if session is not None:
            command["sessionId"] = session
        os.write(self.to_browser, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)


def visit(path: Path, *, width: int = 1200, height: int = 900, timeout: float = 60.0) -> PageVisit:
    """Open ``path`` offline, wait until its charts are drawn, screenshot the first screen."""
    url = path.resolve().as_uri()
    to_browser_read, to_browser_write = os.pipe()
    from_browser_read, from_browser_write = os.pipe()

    def wire_pipes() -> None:  # in the child: the protocol's fds 3 and 4 (via fds no pipe can hold)
        high_read, high_write = os.dup2(to_browser_read, 1000), os.dup2(from_browser_write, 1001)
        os.dup2(high_read, 3)
        os.dup2(high_write, 4)

    with tempfile.TemporaryDirectory(prefix="meio-chromium-") as profile:
        process = subprocess.Popen(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "about:blank"],
            preexec_fn=wire_pipes, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, close_fds=True, pass_fds=(3, 4),
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        pipe = _Pipe(process, to_browser_write, from_browser_read)
        try:
            return _visit(pipe, url, width, height, timeout)
        finally:
            try:
                pipe.send("Browser.close", timeout=5.0)
            except (RuntimeError, TimeoutError, OSError):
                pass
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            os.close(to_browser_write)
            os.close(from_browser_read)


def _visit(pipe: _Pipe, url: str, width: int, height: int, timeout: float) -> PageVisit:
    targets = pipe.send("Target.getTargets")["targetInfos"]
    page = next(t["targetId"] for t in targets if t["type"] == "page")
    session = pipe.send("Target.attachToTarget", targetId=page, flatten=True)["sessionId"]
    for domain in ("Runtime", "Log", "Network", "Page"):
        pipe.send(f"{domain}.enable", session)
    pipe.send("Network.emulateNetworkConditions", session, offline=True, latency=0, downloadThroughput=-1,
              uploadThroughput=-1)
    pipe.send("Emulation.setDeviceMetricsOverride", session, width=width, height=height, deviceScaleFactor=1,
              mobile=False)
    pipe.events.clear()
    pipe.send("Page.navigate", session, url=url)
    deadline = time.monotonic() + timeout
    ready = None
    while time.monotonic() < deadline:
        answer = pipe.send("Runtime.evaluate", session, expression="document.body && "
                           "document.body.getAttribute('data-ready')", returnByValue=True)
        ready = answer["result"].get("value")
        if ready in ("yes", "error"):
            break
        time.sleep(0.1)
    text = pipe.send("Runtime.evaluate", session, expression="document.body.innerText",
                     returnByValue=True)["result"].get("value", "")
    shot = pipe.send("Page.captureScreenshot", session, format="png")["data"]
    result = PageVisit(ready=ready, screenshot=base64.b64decode(shot), text=text)
    for event in pipe.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            result.errors.append(details.get("exception", {}).get("description") or details["text"])
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert", "warning"):
            result.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            result.errors.append(params["entry"]["text"])
        elif method == "Network.requestWillBeSent" and params["request"]["url"] != url:
            result.requests.append(params["request"]["url"])
    return result
