"""What every camera source returns, and how lost sources come back.

A kiosk runs unattended, so a read never raises for a stream problem: it returns
a :class:`Frame` whose ``status`` says what happened and whose ``detail`` says
why. The daemon decides what to do with it; the source only promises that
``read()`` comes back within about ``timeout`` seconds (plus the backend's own
open time), so the daemon can keep the systemd watchdog fed while a camera is
unplugged.

Statuses:

* ``ok``: ``image`` is a BGR uint8 array. Black, blank or noisy images are still
  ``ok``; judging them is the pipeline's job, not the camera's.
* ``timeout``: no frame arrived within ``timeout`` seconds; a live source is
  reconnecting and may come back.
* ``error``: this read failed (a lost stream, an undecodable image, a truncated
  file); ``detail`` says why and whether a reconnect is scheduled.
* ``end``: a finite source (file, folder) is exhausted, or a source gave up after
  its last reconnect attempt (then ``Source.failure`` holds the reason, and the
  read that gave up returned ``error`` first).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from enum import Enum
from typing import Iterator, Optional

import numpy as np

from edge.exc import ConfigError


class FrameStatus(Enum):
    OK = "ok"
    TIMEOUT = "timeout"
    END = "end"
    ERROR = "error"


@dataclass(frozen=True)
class Frame:
    """One read. ``timestamp`` is ``time.monotonic()`` when the read finished."""

    status: FrameStatus
    image: Optional[np.ndarray]
    timestamp: float
    index: int
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is FrameStatus.OK


@dataclass(frozen=True)
class Reconnect:
    """Exponential backoff between reconnect attempts.

    The n-th consecutive attempt waits ``min(max_delay_s, initial_s * factor**(n-1))``
    seconds. ``max_attempts=None`` keeps trying for ever (live cameras: the
    kiosk should recover when the cable is plugged back in); a number gives up
    after that many consecutive failed attempts; 0 never reconnects.
    """

    initial_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 30.0
    max_attempts: Optional[int] = None

    def __post_init__(self) -> None:
        for name in ("initial_s", "factor", "max_delay_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"reconnect {name} must be a finite number >= 0, got {value!r}")
        if self.factor < 1:
            raise ConfigError(f"reconnect factor must be >= 1, got {self.factor!r}")
        if self.max_attempts is not None and (
            not isinstance(self.max_attempts, int) or self.max_attempts < 0
        ):
            raise ConfigError(f"reconnect max_attempts must be None or an integer >= 0, got {self.max_attempts!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before consecutive attempt number ``attempt`` (1-based)."""
        return min(self.max_delay_s, self.initial_s * self.factor ** max(0, attempt - 1))

    def allows(self, attempt: int) -> bool:
        return self.max_attempts is None or attempt <= self.max_attempts


# Live sources keep trying (capped at 30 s between attempts); a file cannot grow
# back, so it gets a few quick retries (a decoder hiccup) and then a clear error.
LIVE_RECONNECT = Reconnect()
FILE_RECONNECT = Reconnect(initial_s=0.05, factor=2.0, max_delay_s=0.5, max_attempts=3)
NO_RECONNECT = Reconnect(max_attempts=0)


def reconnect_policy(reconnect: "bool | Reconnect", live: bool) -> Reconnect:
    if isinstance(reconnect, Reconnect):
        return reconnect
    if reconnect is True:
        return LIVE_RECONNECT if live else FILE_RECONNECT
    if reconnect is False:
        return NO_RECONNECT
    raise ConfigError(f"reconnect must be True, False or a Reconnect, got {reconnect!r}")


class Pacer:
    """Spaces reads of a recorded source at ``fps`` (real-time playback).

    ``fps=None`` means as fast as possible, which is what tests and offline runs
    want; the daemon asks for real time when replaying a clip as a fake camera.
    """

    def __init__(self, fps: Optional[float]):
        if fps is not None and (
            isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0
        ):
            raise ConfigError(f"rate must be None, 'realtime' or a positive frame rate, got {fps!r}")
        self.fps = fps
        self._start: Optional[float] = None

    def wait(self, index: int) -> None:
        if self.fps is None:
            return
        now = time.monotonic()
        if self._start is None:
            self._start = now - index / self.fps
        delay = self._start + index / self.fps - now
        if delay > 0:
            time.sleep(delay)


class Source:
    """Base class: subclasses implement ``_read()`` and ``_release()``."""

    def __init__(self, uri: str, timeout: float):
        if not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
            raise ConfigError(f"source timeout must be a positive number of seconds, got {timeout!r}")
        self.uri = uri
        self.timeout = float(timeout)
        self.reconnects = 0  # reconnect attempts made so far (all of them, for the log)
        self.failure: Optional[str] = None  # set when the source has given up for good
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def read(self) -> Frame:
        if self._closed:
            return self._frame(FrameStatus.ERROR, detail=f"{self.uri}: source is closed")
        if self.failure is not None:
            return self._frame(FrameStatus.END, detail=f"gave up: {self.failure}")
        return self._read()

    def frames(self) -> Iterator[Frame]:
        """Every read until ``end`` (the ``end`` frame itself is not yielded)."""
        while True:
            frame = self.read()
            if frame.status is FrameStatus.END or self._closed:
                return
            yield frame

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._release()

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self.uri!r} {state}>"

    # -- for subclasses -------------------------------------------------------
    def _read(self) -> Frame:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def _frame(self, status: FrameStatus, image=None, index: int = -1, detail: str = "") -> Frame:
        return Frame(status=status, image=image, timestamp=time.monotonic(), index=index, detail=detail)


def image_problem(image) -> Optional[str]:
    """Why ``image`` is not a frame at all (None when it is one, even a black one)."""
    if image is None:
        return "the backend returned no image"
    if not isinstance(image, np.ndarray) or image.size == 0:
        return "the backend returned an empty image"
    if image.dtype != np.uint8:
        return f"the backend returned {image.dtype} pixels, not uint8"
    return None
