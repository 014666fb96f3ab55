"""The runner: how a check's outcome, its errors and the groups chosen become the report."""
from __future__ import annotations

import json

import pytest

from edge.exc import ConfigError, GalleryError
from edge.selftest.runner import Report, Result, Step, parse_groups


def test_step_turns_errors_into_failures_and_keeps_going():
    seen = []
    step = Step("demo", seen.append)
    step("ok", lambda: Result.passed("fine"))
    step("known", lambda: (_ for _ in ()).throw(GalleryError("no gallery at /x: enroll people first")))
    step("bug", lambda: 1 / 0)
    step.skip("later", "not asked")
    assert [(check.name, check.status, check.detail) for check in seen] == [
        ("demo.ok", "PASS", "fine"),
        ("demo.known", "FAIL", "no gallery at /x: enroll people first"),
        ("demo.bug", "FAIL", "unexpected ZeroDivisionError: division by zero"),
        ("demo.later", "SKIP", "not asked"),
    ]
    report = Report(checks=seen)
    assert report.exit_code == 1
    data = json.loads(json.dumps(report.as_json()))
    assert data["summary"]["failures"] == ["demo.known", "demo.bug"]
    assert (data["summary"]["passed"], data["summary"]["failed"], data["summary"]["skipped"]) == (1, 2, 1)


def test_interrupts_are_not_swallowed():
    step = Step("demo", lambda check: None)
    with pytest.raises(KeyboardInterrupt):
        step("ctrl-c", lambda: (_ for _ in ()).throw(KeyboardInterrupt()))


def test_only_skips_and_passes_exit_zero():
    step = Step("demo", lambda check: None)
    step("a", lambda: Result.passed("fine"))
    step.skip("b", "no GPU")
    assert Report(checks=step.checks).exit_code == 0


def test_groups_keep_the_standard_order():
    assert parse_groups(None) == ("camera", "compute", "door", "gallery", "fleet", "system")
    assert parse_groups("system, camera") == ("camera", "system")
    for bad in ("", "camera,,relay", "all"):
        with pytest.raises(ConfigError):
            parse_groups(bad)
