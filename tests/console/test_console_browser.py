"""The console in a real browser: Debian's chromium, headless, driven by Playwright (no browser download).

A real `edge-verify run` daemon plays a clip of someone not enrolled as its camera (file://), its relay
on a RecordingPin. Through the console an installer logs in, watches the live view, enrolls that person
from the daemon's frames (the door stays locked meanwhile: pin history), sees them in the list, checks
who the door would say it is, runs the self-test, and removes them; the daemon lets them in after the
enrollment. Any console error in a page fails the test.

EDGE_VERIFY_CONSOLE_SCREENSHOTS=DIR saves a screenshot of each page there (the README's docs/console).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from consolekit import TOKEN, kiosk_settings, openings_between, relay_levels, serve_console, start_daemon, stop_daemon
from daemonkit import PIN, blanks, face_frame, read_events, write_clip

sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
expect, sync_playwright = sync_api.expect, sync_api.sync_playwright

SCREENSHOTS_ENV = "EDGE_VERIFY_CONSOLE_SCREENSHOTS"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


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
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


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


def test_installer_enrolls_checks_and_removes_a_person_in_a_browser(tmp_path, gallery_files, pipeline, browser):
    gallery, key = gallery_files
    visitor = [face_frame("George_W_Bush", 3 + index % 2, shift=index % 7 - 3) for index in range(400)]
    clip = write_clip(tmp_path / "visitor.avi", blanks(10) + visitor)
    settings = kiosk_settings(tmp_path, gallery, key, source=f"file://{clip}", **{"gallery.reload_s": 0.2})
    values = {name: settings[name] for name in ("source.uri", "door.pin", "door.pulse_s", "gallery.path",
                                                "gallery.key", "gallery.reload_s", "events.file", "events.stdout",
                                                "console.daemon_socket", "decision.liveness")}
    pin_log = tmp_path / "pins.jsonl"
    daemon = start_daemon(tmp_path, {**values, "source.rate": 10}, pin_log)
    console = serve_console(tmp_path, settings, pipeline=pipeline)
    errors: list[str] = []
    try:
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1200, "height": 860})
        page = context.new_page()
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        screens = Screens(page)
        base = console.url

        page.goto(f"{base}/login")
        screens.shot("login")
        page.fill("input[name=token]", TOKEN)
        page.click("form.login button")
        page.wait_for_url(f"{base}/live", wait_until="domcontentloaded")
        # Locator expectations, not wait_for_function: the CSP (rightly) forbids the eval that one needs.
        expect(page.locator("#guidance")).not_to_contain_text("waiting", timeout=15000)
        expect(page.locator("#decision")).to_contain_text("unknown", timeout=15000)
        screens.shot("live")

        page.goto(f"{base}/enroll")
        page.fill("input[name=name]", "George W Bush")
        page.fill("input[name=count]", "4")
        page.click("form.enroll button")
        page.wait_for_selector("#enroll-lines li", timeout=20000)
        screens.shot("enroll-progress")
        result = page.wait_for_selector("#enroll-result", timeout=60000)
        assert result.inner_text().startswith("George W Bush enrolled: 4 templates, coverage ")
        verdicts = page.inner_text("#enroll-verdicts")
        assert "One-person check: passed" in verdicts and "Duplicate check: passed" in verdicts
        page.wait_for_selector("form.enroll")  # the finished page: the form is back
        assert page.inner_text("#enroll-result").startswith("George W Bush enrolled: 4 templates")
        screens.shot("enroll")
        job = console.app._job.progress
        assert job.state == "done" and job.held and "door held locked" in job.held

        unlocked = wait_for(lambda: [event for event in read_events(tmp_path / "events.jsonl")
                                     if event["unlock"] and event["person"] == "George W Bush"], 10)
        assert unlocked, "the daemon did not let the newly enrolled person in"

        page.goto(f"{base}/people")
        assert page.locator("span.person", has_text="George W Bush").count() == 1
        screens.shot("people")

        page.goto(f"{base}/identify")
        page.click("form.identify button")
        answer = page.wait_for_selector("#identify-answer").inner_text()
        assert answer.startswith("the door would say: George W Bush, 0.")
        screens.shot("identify")

        for name in ("decisions", "camera", "liveness", "door"):
            page.goto(f"{base}/{name}")
            if name == "camera":
                page.wait_for_selector("table.hints")
            screens.shot(name)
        page.goto(f"{base}/decisions")
        assert page.locator("table.decisions td", has_text="George W Bush").count() >= 1

        page.goto(f"{base}/selftest")
        page.click("form.selftest button")
        summary = page.wait_for_selector("#selftest-summary", timeout=60000).inner_text()
        assert " passed, " in summary
        details = page.inner_text("table.selftest")
        assert "gallery" in details and "the door daemon is running" in details  # camera and door: the daemon's
        screens.shot("selftest")

        page.goto(f"{base}/people")
        page.locator("tr", has=page.locator("span.person", has_text="George W Bush")).locator(
            "form.danger button").click()
        page.wait_for_selector("form.confirm")
        screens.shot("remove-confirm")
        page.click("form.confirm button")
        page.wait_for_selector("p.notice.ok")
        assert "removed George W Bush" in page.inner_text("p.notice.ok")
        assert page.locator("span.person", has_text="George W Bush").count() == 0
        context.close()
    finally:
        console.close()
        assert stop_daemon(daemon) == 0
    assert errors == [], f"console errors in the pages: {errors}"
    levels = relay_levels(pin_log)
    assert openings_between(levels, job.started, job.ended) == []  # the door stayed locked while enrolling
    assert openings_between(levels, job.ended, time.monotonic())  # and opened for the new person afterwards
