"""One guided enrollment started from the console, run on its own thread.

It makes the same library call as `edge-verify enroll --camera` (edge.enroll.capture.
enroll with the pose plan of edge.enroll.poses, the frames and the door hold of
edge.enroll.kiosk), so the gallery gets the same checks and the same audit record; the
console only shows its progress: the pose asked for now and each pose's good frames
(edge.enroll.poses.PoseProgress), each frame's verdict as it comes ("good, left (2/3)",
"rejected: too blurred ..."), then the one-person and duplicate verdicts in words, the
result line and the person's coverage (edge.enroll.coverage, as `gallery show NAME`).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from edge.enroll.poses import PoseProgress
from edge.exc import DuplicateFaceError, EdgeVerifyError, EnrollmentError

MAX_LINES = 200


@dataclass
class Progress:
    name: str
    state: str = "starting"  # starting, capturing, done, failed, cancelled
    lines: list = field(default_factory=list)  # {"kind": good|rejected|info|warning, "text"}
    good: int = 0
    count: int = 0  # good frames wanted in all
    poses: Optional[PoseProgress] = None
    result: Optional[str] = None
    coverage: Optional[str] = None  # the words of `gallery show NAME`
    verdicts: list = field(default_factory=list)  # the one-person and duplicate checks, in words
    error: Optional[str] = None
    held: Optional[str] = None
    started: float = field(default_factory=time.monotonic)
    ended: Optional[float] = None

    def as_dict(self) -> dict:
        return {"name": self.name, "state": self.state, "lines": self.lines[-40:], "good": self.good,
                "count": self.count, "prompt": self.prompt(), "poses": self.pose_lines(), "result": self.result,
                "coverage": self.coverage, "verdicts": self.verdicts, "error": self.error, "held": self.held}

    def prompt(self) -> Optional[str]:
        """What the person at the camera is asked to do now, while the frames are taken."""
        if self.poses is None or self.state not in ("starting", "capturing"):
            return None
        return self.poses.prompt

    def pose_lines(self) -> list[dict]:
        """Each pose in words, with its state (waiting, asking, done, missed) for the page to mark."""
        if self.poses is None:
            return []
        return [{"state": step.state, "text": pose_words(step)} for step in self.poses.steps]


def pose_words(step) -> str:
    taken = f"{step.taken}/{step.needed} good frames"
    if step.state == "done":
        return f"\u2714 {step.name}: {taken}"
    if step.state == "missed":
        return f"\u2718 {step.name}: not given within the time ({step.why})"
    if step.state == "asking":
        return f"\u25b6 {step.name}: {taken}, now: {step.prompt}"
    return f"{step.name}: {taken}"


class EnrollJob:
    """``run_enrollment(report, stop)`` does the work and returns the EnrollResult (or raises)."""

    def __init__(self, name: str, count: int, run_enrollment: Callable, describe: Callable,
                 poses: Optional[PoseProgress] = None):
        self.progress = Progress(name, count=count, poses=poses)
        self.stop = threading.Event()
        self._run_enrollment = run_enrollment
        self._describe = describe  # what run_enrollment returns -> (result line, coverage words, verdicts)
        self._thread = threading.Thread(target=self._run, name=f"enroll {name}", daemon=True)

    def start(self) -> "EnrollJob":
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: Optional[float] = None) -> None:
        self._thread.join(timeout)

    def report(self, message: str) -> None:
        progress = self.progress
        if ": good (" in message or ": good, " in message:
            kind = "good"
            progress.good += 1
        elif ": rejected:" in message or ": skipped:" in message:
            kind = "rejected"
        elif message.startswith("warning:"):
            kind = "warning"
        else:
            kind = "info"
            if "door held locked" in message:
                progress.held = message
        progress.state = "capturing"
        progress.lines.append({"kind": kind, "text": message})
        del progress.lines[:-MAX_LINES]

    def _run(self) -> None:
        progress = self.progress
        try:
            result = self._run_enrollment(self.report, self.stop)
        except DuplicateFaceError as error:
            self._fail(str(error), [f"Duplicate check: refused. {error}"])
        except EnrollmentError as error:
            words = ([f"One-person check: refused. {error}"] if "same person" in str(error) else [])
            self._fail(str(error), words)
        except EdgeVerifyError as error:
            self._fail(str(error), [])
        except Exception as error:  # shown on the page; the console itself keeps serving
            self._fail(f"unexpected {type(error).__name__}: {error}", [])
        else:
            progress.result, progress.coverage, progress.verdicts = self._describe(result)
            progress.state = "done"
        finally:
            progress.ended = time.monotonic()

    def _fail(self, message: str, verdicts: list) -> None:
        progress = self.progress
        progress.state = "cancelled" if self.stop.is_set() else "failed"
        progress.error = message
        progress.verdicts = verdicts
