"""Decision events: one JSON object per line, to stdout (journald) and a rotating file.

Every event carries at least these keys (more are allowed and kept):

============== ================================================================
``time``       when the decision was made: ISO 8601 UTC, e.g. ``2025-01-31T08:15:02.123Z``
               (:func:`event_time` makes one)
``person``     the matched person's name, or ``null`` when unknown / no match
``distance``   distance of the best gallery match (``null`` when no face)
``margin``     distance gap between the best and the second-best person (``null`` if none)
``frames_agreed`` how many of this face's last N decisions named this person (K-of-N rule)
``unlock``     ``true`` only when this decision opened the door
``latency_ms`` decode-to-decision time of the deciding frame, milliseconds
============== ================================================================

The daemon's decisions also carry ``track`` (the id of the face followed across
frames, null when none) and ``frames_combined`` (frames in the combined probe that
was judged), and ``reason``, ``threshold``, ``frame``, ``face_px``, ``read_ms``.

Non-finite numbers (NaN, inf) are written as ``null`` so every line is strict
JSON; numpy scalars and arrays are converted. Face images are never written
here.

Rotation: before a line would take the file past ``max_bytes`` the file is
renamed to ``.1`` (older ones shift up to ``.backups``) and a new one is
started, so every line lands whole in exactly one file and none is lost by
rotating; only files beyond ``backups`` are deleted. One process writes a
given file (the daemon); several writers would race on rotation.
"""
from __future__ import annotations

import json
import math
import os
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Union

REQUIRED_KEYS = ("time", "person", "distance", "margin", "frames_agreed", "unlock", "latency_ms")
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5


def event_time(timestamp: Optional[float] = None) -> str:
    """``timestamp`` (seconds since the epoch; now if None) as ISO 8601 UTC with milliseconds."""
    moment = datetime.now(timezone.utc) if timestamp is None else datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_event(event: dict) -> None:
    """ValueError naming what is wrong with ``event`` (a programming error in the caller)."""
    if not isinstance(event, dict):
        raise ValueError(f"an event must be a dict, got {type(event).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in event]
    if missing:
        raise ValueError(f"event lacks required keys: {', '.join(missing)}")
    if not isinstance(event["unlock"], bool):
        raise ValueError(f"event 'unlock' must be true or false, got {event['unlock']!r}")
    if event["person"] is not None and not isinstance(event["person"], str):
        raise ValueError(f"event 'person' must be a name or None, got {event['person']!r}")


def encode(event: dict) -> str:
    """One line of strict JSON (no trailing newline)."""
    return json.dumps(_plain(event), ensure_ascii=False, allow_nan=False, separators=(", ", ": "))


def _plain(value):
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays, without importing numpy here
        return _plain(value.tolist())
    raise TypeError(f"cannot write {type(value).__name__} into an event")


class RotatingLines:
    """Append-only text lines with size-based rotation (see the module docstring)."""

    def __init__(self, path: Union[str, os.PathLike], max_bytes: int, backups: int):
        if not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be an integer >= 0 (0: never rotate), got {max_bytes!r}")
        if not isinstance(backups, int) or backups < 1:
            raise ValueError(f"backups must be an integer >= 1, got {backups!r}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self._open()

    def _open(self):
        # 0640: events name people; the log group may read them, others may not.
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        return os.fdopen(descriptor, "ab")

    def write_line(self, line: str) -> None:
        data = line.encode("utf-8") + b"\n"
        size = self._file.tell()
        if self.max_bytes and size > 0 and size + len(data) > self.max_bytes:
            self._rotate()
        self._file.write(data)
        self._file.flush()

    def _rotate(self) -> None:
        self._file.close()
        for number in range(self.backups - 1, 0, -1):
            older = self._backup(number)
            if older.exists():
                os.replace(older, self._backup(number + 1))
        os.replace(self.path, self._backup(1))
        self._file = self._open()

    def _backup(self, number: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{number}")

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class EventLog:
    """Writes each event as one JSON line to stdout and/or a rotating file."""

    def __init__(
        self,
        path: Union[str, os.PathLike, None] = None,
        stdout: bool = True,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backups: int = DEFAULT_BACKUPS,
    ):
        self.stdout = stdout
        self._lock = threading.Lock()
        self._file = RotatingLines(path, max_bytes, backups) if path is not None else None
        self.path = self._file.path if self._file else None

    def write(self, event: dict) -> str:
        """Check, encode and write one event; returns the line written."""
        check_event(event)
        line = encode(event)
        with self._lock:
            if self._file is not None:
                self._file.write_line(line)
            if self.stdout:
                self._echo(line)
        return line

    @staticmethod
    def _echo(line: str) -> None:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            # A closed or broken stdout (journald restarted, pipe gone) must not stop
            # the daemon; the file still has the line.
            pass

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()

    def __enter__(self) -> "EventLog":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
