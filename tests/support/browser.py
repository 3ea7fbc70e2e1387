"""A real browser for page tests: Debian's chromium, headless, driven by Selenium through
chromium-driver; and an event loop in a thread, so that a bridge runs while Selenium (blocking)
drives the page from the test's thread."""
from __future__ import annotations

import asyncio
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

# Installed in the page before a call starts: every caption line's changes, with the time they
# were drawn (Date.now(), the same clock as the test's time.time()).
WATCH_LINES = """
window.__seen = [];
const seen = (line) => window.__seen.push({call: line.dataset.call, segment: Number(line.dataset.segment),
  kind: line.classList.contains('final') ? 'final' : 'partial',
  text: line.querySelector('.text').textContent, t: Date.now() / 1000});
new MutationObserver((records) => {
  for (const r of records) {
    const node = r.target.nodeType === 1 ? r.target : r.target.parentElement;
    const line = node && node.closest('#live .line');
    if (line) seen(line);
    for (const added of r.addedNodes) if (added.nodeType === 1 && added.matches('.line')) seen(added);
  }
}).observe(document.getElementById('live'), {subtree: true, childList: true, characterData: true,
                                              attributes: true, attributeFilter: ['class']});
"""


@contextmanager
def chromium(tmp_path: Path):
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("needs Debian's chromium and chromium-driver (README test command)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(check: Callable[[], object], timeout_s: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


class LoopThread:
    """An asyncio loop on a thread of its own; run() a coroutine on it from the test's thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> "LoopThread":
        self._thread.start()
        return self

    def run(self, coro, timeout_s: float = 120.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def start(self, coro) -> "asyncio.Future":
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class Emitted:
    """What the bridge's caption hub hands out, stamped with time.time() as it does."""

    def __init__(self, hub) -> None:
        self.messages: list[tuple[float, dict]] = []
        self._subscriber = hub.subscribe()

    async def collect(self) -> None:
        while (message := await self._subscriber.next()) is not None:
            self.messages.append((time.time(), message))

    def of(self, kind: str) -> list[tuple[float, dict]]:
        return [(t, m) for t, m in self.messages if m["type"] == kind]
