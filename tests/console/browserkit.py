"""The browser for the console tests: Debian's chromium, headless, driven by Playwright (no browser download),
with screenshots of each page when EDGE_VERIFY_CONSOLE_SCREENSHOTS=DIR is set (the README's docs/console).
The kiosk's browser test and the hub's (tests/fleet/test_fleet_console.py) both use it."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

SCREENSHOTS_ENV = "EDGE_VERIFY_CONSOLE_SCREENSHOTS"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def playwright_api():
    return pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed and this user cannot install it: run "
                    "`sudo apt-get install -y chromium` (the README's test command does)")
    return path


@pytest.fixture
def browser(chromium):
    with playwright_api().sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def watched_page(browser, errors: list):
    """A page of a new context (the console's self-signed certificate accepted) whose console errors and
    uncaught exceptions are collected in ``errors``."""
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1200, "height": 860})
    page = context.new_page()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return context, page


class Screens:
    def __init__(self, page):
        self.page = page
        folder = os.environ.get(SCREENSHOTS_ENV)
        self.folder = Path(folder) if folder else None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def shot(self, name: str) -> None:
        if self.folder is not None:
            self.page.screenshot(path=str(self.folder / f"{name}.png"), full_page=True)


def wait_for(predicate, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    return None
