"""Stage machinery: ``@stage(name)`` and the ``BuildLog`` that records each stage's time and output size.

A function becomes a stage with ``@stage("name")``: calling it inside a
``BuildLog`` records and prints one line per stage; outside one it logs through
the ``edge_build`` logger. The stage functions themselves live in their own
modules (export, quantize, backends, gate, manifests), which import this one;
edge_build.stages gathers them in one place.
"""
from __future__ import annotations

import contextvars
import functools
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("edge_build")
_current: contextvars.ContextVar["BuildLog | None"] = contextvars.ContextVar("edge_build_log", default=None)


@dataclass
class StageRecord:
    name: str
    seconds: float
    size_bytes: int | None
    output: str


class BuildLog:
    """Collects one StageRecord per stage run inside ``with BuildLog():``."""

    def __init__(self, echo=None):
        self.records: list[StageRecord] = []
        self.echo = echo or log.info
        self._token = None

    def __enter__(self) -> "BuildLog":
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc) -> None:
        _current.reset(self._token)

    @property
    def seconds(self) -> float:
        return sum(record.seconds for record in self.records)

    def as_list(self) -> list[dict]:
        """Records for the manifest: file names only (scratch folders do not outlive the build)."""
        return [asdict(record) | {"output": Path(record.output).name if record.output else ""} for record in self.records]

    def add(self, record: StageRecord) -> None:
        self.records.append(record)
        size = f", {human_size(record.size_bytes)}" if record.size_bytes is not None else ""
        where = f" -> {record.output}" if record.output else ""
        self.echo(f"[{record.name}] {record.seconds:.1f} s{size}{where}")


def stage(name: str, slow: bool = False):
    """Decorator: run the function as the stage ``name`` (timed, size logged).
    A ``slow`` stage also announces its start, so a long build shows life."""

    def wrap(function):
        @functools.wraps(function)
        def run(*args, **kwargs):
            current = _current.get()
            if slow and current is not None:
                current.echo(f"[{name}] running ...")
            start = time.perf_counter()
            result = function(*args, **kwargs)
            record = StageRecord(name, time.perf_counter() - start, output_size(result), output_label(result))
            if current is not None:
                current.add(record)
            else:
                log.info("[%s] %.1f s, %s", name, record.seconds, human_size(record.size_bytes))
            return result

        run.stage_name = name
        return run

    return wrap


def output_size(result) -> int | None:
    """Bytes a stage produced: a file's size, a buffer's length, an array's nbytes."""
    path = getattr(result, "path", result)
    if isinstance(path, (str, os.PathLike)) and Path(path).is_file():
        return Path(path).stat().st_size
    if isinstance(result, (bytes, bytearray, memoryview)):
        return len(result)
    nbytes = getattr(result, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    return None


def output_label(result) -> str:
    path = getattr(result, "path", result)
    if isinstance(path, (str, os.PathLike)):
        return os.fspath(path)
    return ""


def human_size(size: int | None) -> str:
    if size is None:
        return "no file"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"  # pragma: no cover

