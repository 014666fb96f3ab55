"""The console in a real browser: Debian's chromium, headless, driven by Playwright (no browser download).

A real `edge-verify run` daemon plays a clip of someone not enrolled as its camera (file://), turning his
head now and then, its relay on a RecordingPin. Through the console an installer logs in, watches the live
view, enrolls that person from the daemon's frames, the page asking for each pose in turn and ticking each
one done (the door stays locked meanwhile: pin history), sees them in the list with their coverage, checks
who the door would say it is, runs the self-test, and removes them; the daemon lets them in after the
enrollment. Any console error in a page fails the test.

EDGE_VERIFY_CONSOLE_SCREENSHOTS=DIR saves a screenshot of each page there (the README's docs/console).
"""
from __future__ import annotations

import re
import time

from browserkit import Screens, browser, chromium, playwright_api, wait_for, watched_page  # noqa: F401 (fixtures)
from consolekit import TOKEN, kiosk_settings, openings_between, relay_levels, serve_console, start_daemon, stop_daemon
from daemonkit import blanks, face_frame, read_events, write_clip

# George_W_Bush photo 2 looks straight at the camera (yaw about +1), photo 3 is turned to his left (+16),
# photo 4 to his right (-30): a clip cycling through them gives every pose the enrollment asks for.
LOOKS = (2, 3, 4)
LOOK_FRAMES = 20  # 2 s of each look at 10 fps


def turning_visitor(cycles: int) -> list:
    return [face_frame("George_W_Bush", photo, shift=index % 7 - 3)
            for _ in range(cycles) for photo in LOOKS for index in range(LOOK_FRAMES)]


def test_installer_enrolls_checks_and_removes_a_person_in_a_browser(tmp_path, gallery_files, pipeline, browser):
    expect = playwright_api().expect
    gallery, key = gallery_files
    clip = write_clip(tmp_path / "visitor.avi", blanks(10) + turning_visitor(7))
    settings = kiosk_settings(tmp_path, gallery, key, source=f"file://{clip}", **{"gallery.reload_s": 0.2})
    values = {name: settings[name] for name in ("source.uri", "door.pin", "door.pulse_s", "gallery.path",
                                                "gallery.key", "gallery.reload_s", "events.file", "events.stdout",
                                                "console.daemon_socket", "decision.liveness")}
    pin_log = tmp_path / "pins.jsonl"
    daemon = start_daemon(tmp_path, {**values, "source.rate": 10}, pin_log)
    console = serve_console(tmp_path, settings, pipeline=pipeline)
    errors: list[str] = []
    try:
        context, page = watched_page(browser, errors)
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
        page.fill("input[name=count]", "5")
        page.click("form.enroll button")
        # the pose asked for now, in words, then a tick for each pose done
        expect(page.locator("#enroll-lines")).to_contain_text("pose 1 of 3: look straight at the camera",
                                                              timeout=30000)
        expect(page.locator("#enroll-prompt")).to_contain_text("turn your head slightly to your", timeout=60000)
        expect(page.locator("#enroll-poses li.asking")).to_contain_text("now: turn your head slightly")
        front_done = re.compile("^\u2714 front: [123]/3 good frames$")
        expect(page.locator("#enroll-poses li.done").first).to_have_text(front_done)
        screens.shot("enroll-progress")
        result = page.wait_for_selector("#enroll-result", timeout=90000)
        assert result.inner_text() in ("George W Bush enrolled: 5 templates, coverage good",
                                       "George W Bush enrolled: 5 templates, coverage partial")
        verdicts = page.inner_text("#enroll-verdicts")
        assert "One-person check: passed" in verdicts and "Duplicate check: passed" in verdicts
        page.wait_for_selector("form.enroll")  # the finished page: the form is back
        assert page.inner_text("#enroll-result").startswith("George W Bush enrolled: 5 templates")
        ticks = page.locator("#enroll-poses li.done")
        # a tick per look; a look may end with fewer than 3 frames when the clip turns away first
        assert [re.sub(r"[123]/3", "n/3", text) for text in ticks.all_inner_texts()] == [
            f"\u2714 {look}: n/3 good frames" for look in ("front", "left", "right")]
        assert page.inner_text("#enroll-coverage").startswith("coverage ")
        assert "looks front, left, right" in page.inner_text("#enroll-coverage")
        screens.shot("enroll")
        job = console.app._job.progress
        assert job.state == "done" and job.held and "door held locked" in job.held

        unlocked = wait_for(lambda: [event for event in read_events(tmp_path / "events.jsonl")
                                     if event["unlock"] and event["person"] == "George W Bush"], 10)
        assert unlocked, "the daemon did not let the newly enrolled person in"

        page.goto(f"{base}/people")
        assert page.locator("span.person", has_text="George W Bush").count() == 1
        screens.shot("people")
        page.locator("tr", has=page.locator("span.person", has_text="George W Bush")).locator("a.coverage").click()
        assert "looks front, left, right" in page.wait_for_selector("#person-coverage").inner_text()
        assert page.locator("table.templates tbody tr").count() == 5
        screens.shot("person")

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
