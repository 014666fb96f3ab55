"""Runs the selected check groups and reports each check as PASS, FAIL or SKIP.

A check is one question a technician can act on ("does the camera open?",
"does the relay feedback follow the pulse?"). Groups live in their own modules
(camera, compute, door, gallery, fleet, system); each exposes ``run(context, step)``
and asks its questions through ``step``, which times them, turns an
EdgeVerifyError into a FAIL with its message, and hands each result to the
caller as soon as it is known, so the technician sees progress line by line.

Nothing a check raises stops the run: the next check still runs, and the
report says what broke. Only KeyboardInterrupt and SystemExit go through (the
door group's ``finally`` relocks on the way out).
"""
from __future__ import annotations

import importlib
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from edge.exc import ConfigError, EdgeVerifyError

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
GROUPS = ("camera", "compute", "door", "gallery", "fleet", "system")
NAME_WIDTH = 24


@dataclass(frozen=True)
class Check:
    name: str  # "group.check", e.g. "camera.open"
    status: str  # PASS, FAIL or SKIP
    detail: str  # what was seen, and for a FAIL what to do; for a SKIP why
    ms: float

    def line(self) -> str:
        return f"{self.status} {self.name:<{NAME_WIDTH}}  {self.detail} ({self.ms:.0f} ms)"


class Result:
    """What a check function returns: ``Result.passed("...")`` etc."""

    def __init__(self, status: str, detail: str):
        self.status, self.detail = status, detail

    @classmethod
    def passed(cls, detail: str) -> "Result":
        return cls(PASS, detail)

    @classmethod
    def failed(cls, detail: str) -> "Result":
        return cls(FAIL, detail)

    @classmethod
    def skipped(cls, detail: str) -> "Result":
        return cls(SKIP, detail)


class Step:
    """Runs one group's checks, timing each and collecting the Check records."""

    def __init__(self, group: str, emit: Callable[[Check], None]):
        self.group = group
        self.emit = emit
        self.checks: list[Check] = []

    def __call__(self, name: str, function: Callable[[], Result]) -> Check:
        started = time.perf_counter()
        try:
            result = function()
        except EdgeVerifyError as error:
            result = Result.failed(str(error))
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # a selftest reports a broken part; it must not stop at it
            result = Result.failed(f"unexpected {type(error).__name__}: {error}")
        ms = (time.perf_counter() - started) * 1e3
        return self.record(name, result.status, result.detail, ms)

    def skip(self, name: str, reason: str) -> Check:
        return self.record(name, SKIP, reason, 0.0)

    def record(self, name: str, status: str, detail: str, ms: float) -> Check:
        check = Check(f"{self.group}.{name}", status, detail, round(ms, 1))
        self.checks.append(check)
        self.emit(check)
        return check


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for check in self.checks if check.status == status)

    @property
    def ok(self) -> bool:
        return self.count(FAIL) == 0

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> dict:
        return {
            "ok": self.ok,
            "passed": self.count(PASS),
            "failed": self.count(FAIL),
            "skipped": self.count(SKIP),
            "failures": [check.name for check in self.checks if check.status == FAIL],
            "seconds": round(self.seconds, 2),
        }

    def summary_line(self) -> str:
        summary = self.summary()
        text = (f"selftest: {summary['passed']} passed, {summary['failed']} failed, "
                f"{summary['skipped']} skipped in {summary['seconds']:.1f} s")
        if summary["failures"]:
            return f"{text}; FAILED: {', '.join(summary['failures'])}"
        return f"{text}; nothing failed"

    def as_json(self) -> dict:
        return {"checks": [asdict(check) for check in self.checks], "summary": self.summary()}


def parse_groups(text: str | None) -> tuple[str, ...]:
    """The groups named in ``--only a,b`` (all of them for None), in the standard order."""
    if text is None:
        return GROUPS
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in wanted if name not in GROUPS]
    if unknown or not wanted:
        raise ConfigError(f"--only takes a comma-separated list of {', '.join(GROUPS)}; got {text!r}")
    return tuple(name for name in GROUPS if name in wanted)


def run_selftest(context, groups=GROUPS, emit: Callable[[Check], None] | None = None) -> Report:
    """Run ``groups`` (module names under edge.selftest) with ``context``; returns the Report."""
    emit = emit or (lambda check: None)
    report = Report()
    started = time.perf_counter()
    for group in groups:
        step = Step(group, emit)
        try:
            module = importlib.import_module(f"edge.selftest.{group}")
            module.run(context, step)
        except (KeyboardInterrupt, SystemExit):
            report.checks.extend(step.checks)
            raise
        except Exception as error:  # a bug in one group must not hide the other groups' answers
            step.record("group", FAIL, f"the {group} checks stopped: {type(error).__name__}: {error}", 0.0)
        report.checks.extend(step.checks)
    report.seconds = time.perf_counter() - started
    return report


def print_check(check: Check, stream=None) -> None:
    print(check.line(), file=stream or sys.stdout, flush=True)
