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

A file that cannot be written (a full disk, a removed folder) must not stop the
door: the event still goes to stdout, the daemon keeps deciding, and ``dropped``
counts what the file missed (said in the journal and in the daemon's status). A
line is never left half written: a failed write is cut back.

Face crops (``store_faces``) are kept beside the events file, mode 0640 like the
events, and only the newest ``keep`` of them (store_face).

When a person is removed from the gallery, forget_person rewrites the events file
and its rotated files with the person's number ("person #N", whose name the gallery
erased) instead of their name, and deletes the face crops of their events. Writes
and that rewrite take the file's lock, so no line is lost or torn between them.
(journald keeps its own copy of stdout until its retention ends.)
"""
from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Union

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("time", "person", "distance", "margin", "frames_agreed", "unlock", "latency_ms")
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5
DEFAULT_FACES_KEPT = 1000
DROP_LOG_EVERY_S = 60.0


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
        self._descriptor: Optional[int] = self._open()

    def _open(self) -> int:
        # 0640: events name people; the log group may read them, others may not.
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def write_line(self, line: str) -> None:
        """Append one whole line, or raise OSError having written nothing."""
        data = line.encode("utf-8") + b"\n"
        if self._descriptor is None:
            self._descriptor = self._open()  # the last rotation could not reopen the file
        size = os.fstat(self._descriptor).st_size
        if self.max_bytes and size > 0 and size + len(data) > self.max_bytes:
            self._rotate()
            size = 0
        fcntl.flock(self._descriptor, fcntl.LOCK_EX)  # forget_person may be rewriting the file
        try:
            size = os.fstat(self._descriptor).st_size
            written = os.write(self._descriptor, data)
            if written != len(data):
                raise OSError(28, "no space left on device (short write)")
        except OSError:
            try:
                os.ftruncate(self._descriptor, size)  # no half line for a reader to trip over
            except OSError:
                pass  # the file stays as it was before this write at worst
            raise
        finally:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)

    def _rotate(self) -> None:
        os.close(self._descriptor)
        self._descriptor = None
        for number in range(self.backups - 1, 0, -1):
            older = self._backup(number)
            if older.exists():
                os.replace(older, self._backup(number + 1))
        os.replace(self.path, self._backup(1))
        self._descriptor = self._open()

    def _backup(self, number: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{number}")

    def close(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


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
        self.dropped = 0  # events the file missed (a full disk); they still went to stdout
        self._dropped_logged_at = -math.inf
        self._lock = threading.Lock()
        self._file = RotatingLines(path, max_bytes, backups) if path is not None else None
        self.path = self._file.path if self._file else None

    def write(self, event: dict) -> str:
        """Check, encode and write one event; returns the line written."""
        check_event(event)
        line = encode(event)
        with self._lock:
            if self._file is not None:
                self._to_file(line)
            if self.stdout:
                self._echo(line)
        return line

    def _to_file(self, line: str) -> None:
        """Write to the file; a failure is counted and said now and then, never raised."""
        try:
            self._file.write_line(line)
        except OSError as error:
            self.dropped += 1
            now = time.monotonic()
            if now - self._dropped_logged_at >= DROP_LOG_EVERY_S:
                self._dropped_logged_at = now
                log.error("cannot write the events file %s (%s): %d event(s) dropped so far; decisions go on and "
                          "are still printed to the journal", self.path, error.strerror or error, self.dropped)
            return
        if self._dropped_logged_at > -math.inf:
            log.warning("the events file %s is written again; %d event(s) were dropped", self.path, self.dropped)
            self._dropped_logged_at = -math.inf

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


def store_face(folder: Union[str, os.PathLike], name: str, crop, keep: int = DEFAULT_FACES_KEPT) -> Optional[str]:
    """Save a face crop as ``folder/name.jpg`` (mode 0640) and delete all but the newest ``keep``;
    returns the path, or None when it could not be written (a full disk must not stop the door)."""
    import cv2  # numpy and OpenCV only where crops are stored (off by default)

    folder = Path(folder)
    path = folder / f"{name}.jpg"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        encoded, data = cv2.imencode(".jpg", crop)
        if not encoded:
            return None
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
        try:
            if os.write(descriptor, data.tobytes()) != data.size:
                raise OSError(28, "no space left on device (short write)")
        finally:
            os.close(descriptor)
    except OSError as error:
        path.unlink(missing_ok=True)
        log.error("cannot store the face crop %s: %s", path, error.strerror or error)
        return None
    prune_faces(folder, keep)
    return str(path)


def prune_faces(folder: Path, keep: int) -> None:
    """Delete the oldest crops beyond ``keep`` (names sort by time: see the daemon's store_face call)."""
    crops = sorted(entry.name for entry in os.scandir(folder) if entry.name.endswith(".jpg") and entry.is_file())
    for name in crops[:max(len(crops) - keep, 0)]:
        try:
            os.unlink(folder / name)
        except FileNotFoundError:
            pass


def forget_person(path: Union[str, os.PathLike], name: str, replacement: str,
                  backups: int = DEFAULT_BACKUPS) -> tuple[int, int]:
    """Replace ``name`` by ``replacement`` in the events file and its rotated files, and delete the face
    crops of those events; returns (events rewritten, crops deleted). Missing files are skipped."""
    path = Path(path)
    rewritten = deleted = 0
    for file in [path] + [path.with_name(f"{path.name}.{number}") for number in range(1, backups + 1)]:
        try:
            descriptor = os.open(file, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            size = os.fstat(descriptor).st_size
            lines, changed, crops = _forget_in(os.pread(descriptor, size, 0), name, replacement)
            if changed:
                data = b"".join(lines)
                os.ftruncate(descriptor, 0)
                os.pwrite(descriptor, data, 0)
                os.fsync(descriptor)
        finally:
            os.close(descriptor)
        rewritten += changed
        for crop in crops:
            try:
                os.unlink(crop)
                deleted += 1
            except FileNotFoundError:
                pass
    return rewritten, deleted


def _forget_in(data: bytes, name: str, replacement: str) -> tuple[list[bytes], int, list[str]]:
    lines, changed, crops = [], 0, []
    for line in data.splitlines(keepends=True):
        try:
            event = json.loads(line)
        except ValueError:
            lines.append(line)  # not ours to judge: kept as it is
            continue
        if not isinstance(event, dict) or event.get("person") != name:
            lines.append(line)
            continue
        event["person"] = replacement
        if event.get("face_image"):
            crops.append(str(event["face_image"]))
            event["face_image"] = None
        lines.append(encode(event).encode("utf-8") + b"\n")
        changed += 1
    return lines, changed, crops
