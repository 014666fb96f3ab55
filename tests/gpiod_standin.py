"""A stand-in for the libgpiod 2 Python bindings (`gpiod`), for tests without a Jetson.

It has the v2 names the Jetson pin factory uses, with the same shapes as
libgpiod's own ``bindings/python/gpiod`` (``request_lines(path, config=...,
consumer=...)``, ``LineSettings`` as a dataclass with ``debounce_period`` a
``timedelta``, the enums in ``gpiod.line``, ``EdgeEvent.Type``, a request
``fd`` that polls readable while edge events wait) and the same error types
(EINVAL -> ValueError, EOPNOTSUPP -> NotImplementedError, EBUSY -> OSError,
a released request -> RequestReleasedError). Anything else is absent, so a
call the real module lacks fails here too.

A :class:`World` holds the lines: tests drive input levels (edge events are
queued like the kernel queues them, with the given timestamps) and read back
what the outputs did. Every request method notes when two threads are inside
one request at once (``World.overlaps``): the real bindings are not
thread-safe, so the factory must never do that.
"""
from __future__ import annotations

import errno
import os
import select
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum


class Value(Enum):
    INACTIVE = 0
    ACTIVE = 1


class Direction(Enum):
    AS_IS = 1
    INPUT = 2
    OUTPUT = 3


class Bias(Enum):
    AS_IS = 1
    UNKNOWN = 2
    DISABLED = 3
    PULL_UP = 4
    PULL_DOWN = 5


class Drive(Enum):
    PUSH_PULL = 1
    OPEN_DRAIN = 2
    OPEN_SOURCE = 3


class Edge(Enum):
    NONE = 1
    RISING = 2
    FALLING = 3
    BOTH = 4


class Clock(Enum):
    MONOTONIC = 1
    REALTIME = 2
    HTE = 3


@dataclass(repr=False)
class LineSettings:
    direction: Direction = Direction.AS_IS
    edge_detection: Edge = Edge.NONE
    bias: Bias = Bias.AS_IS
    drive: Drive = Drive.PUSH_PULL
    active_low: bool = False
    debounce_period: timedelta = timedelta()
    event_clock: Clock = Clock.MONOTONIC
    output_value: Value = Value.INACTIVE


class RequestReleasedError(Exception):
    def __init__(self):
        super().__init__("GPIO lines have been released")


class ChipClosedError(Exception):
    def __init__(self):
        super().__init__("I/O operation on closed chip")


@dataclass(frozen=True)
class ChipInfo:
    name: str
    label: str
    num_lines: int


class EdgeEvent:
    class Type(Enum):
        RISING_EDGE = 1
        FALLING_EDGE = 2

    def __init__(self, event_type, timestamp_ns, line_offset, global_seqno, line_seqno):
        self.event_type = EdgeEvent.Type(event_type)
        self.timestamp_ns = timestamp_ns
        self.line_offset = line_offset
        self.global_seqno = global_seqno
        self.line_seqno = line_seqno


@dataclass
class LineState:
    level: bool = False  # the pad as seen by an input (physical level)
    output: bool = False  # the output register (physical level), what an output drives
    driving: bool = False  # an output request holds the line now
    history: list = field(default_factory=list)  # ("out", level) / ("released", level) / ("in", settings)
    request: object = None


class World:
    """The GPIO chips of one fake board: {path: (label, number of lines)}."""

    def __init__(self, chips: dict, denied=(), debounce_supported: bool = True, bias_supported: bool = True):
        self.chips = dict(chips)
        self.denied = set(denied)
        self.debounce_supported = debounce_supported
        self.bias_supported = bias_supported
        self.lines: dict = {}
        self.requests: list = []
        self.overlaps: list = []
        self.seqno = 0

    def line(self, path: str, offset: int) -> LineState:
        return self.lines.setdefault((path, offset), LineState())

    def drive(self, path: str, offset: int, level: bool, timestamp_ns: int | None = None) -> None:
        """Set the pad level of an input, queueing an edge event where one is being watched."""
        state = self.line(path, offset)
        if state.level == bool(level):
            return
        state.level = bool(level)
        request = state.request
        if request is None or request._released:
            return
        settings = request._settings[offset]
        if settings.direction != Direction.INPUT:
            return
        logical = state.level != settings.active_low
        wanted = {Edge.BOTH: True, Edge.RISING: logical, Edge.FALLING: not logical, Edge.NONE: False}
        if not wanted[settings.edge_detection]:
            return
        self.seqno += 1
        kind = EdgeEvent.Type.RISING_EDGE if logical else EdgeEvent.Type.FALLING_EDGE
        stamp = time.monotonic_ns() if timestamp_ns is None else int(timestamp_ns)
        request._queue(EdgeEvent(kind.value, stamp, offset, self.seqno, self.seqno))

    def module(self):
        """A fresh `gpiod` module bound to this world (install it in sys.modules)."""
        world = self
        gpiod = types.ModuleType("gpiod")
        line = types.ModuleType("gpiod.line")
        for enum in (Value, Direction, Bias, Drive, Edge, Clock):
            setattr(line, enum.__name__, enum)
        exception = types.ModuleType("gpiod.exception")
        exception.RequestReleasedError = RequestReleasedError
        exception.ChipClosedError = ChipClosedError
        gpiod.line = line
        gpiod.exception = exception
        gpiod.LineSettings = LineSettings
        gpiod.EdgeEvent = EdgeEvent
        gpiod.ChipInfo = ChipInfo
        gpiod.RequestReleasedError = RequestReleasedError
        gpiod.ChipClosedError = ChipClosedError
        gpiod.api_version = "2.1.0"
        gpiod.__version__ = "2.2.0"

        class Chip:
            def __init__(self, path: str):
                path = os.fspath(path)
                if path in world.denied:
                    raise PermissionError(errno.EACCES, "Permission denied", path)
                if path not in world.chips:
                    raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
                self._path = path
                self._open = True

            def __enter__(self):
                if not self._open:
                    raise ChipClosedError()
                return self

            def __exit__(self, *exc_info):
                self.close()

            def close(self):
                if not self._open:
                    raise ChipClosedError()
                self._open = False

            def get_info(self) -> ChipInfo:
                if not self._open:
                    raise ChipClosedError()
                label, count = world.chips[self._path]
                return ChipInfo(os.path.basename(self._path), label, count)

            def request_lines(self, config, consumer=None, event_buffer_size=None, output_values=None):
                if not self._open:
                    raise ChipClosedError()
                return LineRequest(self._path, config, consumer)

        def request_lines(path, *args, **kwargs):
            with Chip(path) as chip:
                return chip.request_lines(*args, **kwargs)

        gpiod.Chip = Chip
        gpiod.request_lines = request_lines
        gpiod.is_gpiochip_device = lambda path: os.fspath(path) in world.chips
        gpiod.LineRequest = LineRequest
        return gpiod


WORLD: World | None = None  # the world LineRequest objects belong to (set by install())


def _check_settings(offset: int, settings) -> None:
    if not isinstance(settings, LineSettings):
        raise TypeError(f"line settings must be gpiod.LineSettings, got {type(settings).__name__}")
    if not isinstance(settings.debounce_period, timedelta):
        raise TypeError("debounce_period must be a datetime.timedelta")
    if settings.debounce_period and not WORLD.debounce_supported:
        raise NotImplementedError(errno.EOPNOTSUPP, "Operation not supported")
    if settings.bias in (Bias.PULL_UP, Bias.PULL_DOWN) and not WORLD.bias_supported:
        raise NotImplementedError(errno.EOPNOTSUPP, "Operation not supported")
    if settings.direction == Direction.OUTPUT and settings.edge_detection != Edge.NONE:
        raise ValueError(errno.EINVAL, "Invalid argument")  # the kernel refuses edges on outputs


class LineRequest:
    def __init__(self, path: str, config: dict, consumer):
        world = WORLD
        self._path = path
        self._consumer = consumer
        self._released = False
        self._events: list = []
        self._inside = 0
        self._guard = threading.Lock()
        settings = self._normalise(config)
        label, count = world.chips[path]
        for offset in settings:
            if not isinstance(offset, int) or not 0 <= offset < count:
                raise ValueError("line offset of out range")
            if world.line(path, offset).request is not None:
                raise OSError(errno.EBUSY, "Device or resource busy")
        self._read_fd, self._write_fd = os.pipe()
        self._settings = {}
        for offset, line_settings in settings.items():
            world.line(path, offset).request = self
            self._apply(offset, line_settings)
        world.requests.append(self)

    # -- bookkeeping -----------------------------------------------------------
    def _enter(self, name: str) -> None:
        with self._guard:
            self._inside += 1
            if self._inside > 1:
                WORLD.overlaps.append((name, threading.current_thread().name))
        if self._released:
            self._inside -= 1
            raise RequestReleasedError()

    def _leave(self) -> None:
        with self._guard:
            self._inside -= 1

    @staticmethod
    def _normalise(config: dict) -> dict:
        flat = {}
        for lines, settings in config.items():
            for offset in (lines,) if isinstance(lines, (int, str)) else lines:
                if offset in flat:
                    raise ValueError(f"line must be configured exactly once - offset {offset} repeats")
                settings = settings or LineSettings()
                _check_settings(offset, settings)
                flat[offset] = settings
        return flat

    def _apply(self, offset: int, settings: LineSettings) -> None:
        state = WORLD.line(self._path, offset)
        self._settings[offset] = settings
        if settings.direction == Direction.OUTPUT:
            state.output = (settings.output_value == Value.ACTIVE) != settings.active_low
            state.driving = True
            state.history.append(("out", state.output))
        else:
            state.driving = False
            state.history.append(("in", settings))

    def _queue(self, event) -> None:
        self._events.append(event)
        os.write(self._write_fd, b"e")

    # -- the v2 API --------------------------------------------------------------
    @property
    def fd(self) -> int:
        if self._released:
            raise RequestReleasedError()
        return self._read_fd

    def fileno(self) -> int:
        return self.fd

    @property
    def offsets(self) -> list:
        if self._released:
            raise RequestReleasedError()
        return list(self._settings)

    def get_value(self, line) -> Value:
        return self.get_values([line])[0]

    def get_values(self, lines=None) -> list:
        self._enter("get_values")
        try:
            values = []
            for offset in lines or list(self._settings):
                state, settings = WORLD.line(self._path, offset), self._settings[offset]
                # An output reads back its output register, not the pad: what the kernel returns.
                level = state.output if settings.direction == Direction.OUTPUT else state.level
                values.append(Value.ACTIVE if level != settings.active_low else Value.INACTIVE)
            return values
        finally:
            self._leave()

    def set_value(self, line, value: Value) -> None:
        self.set_values({line: value})

    def set_values(self, values: dict) -> None:
        self._enter("set_values")
        try:
            for offset, value in values.items():
                if not isinstance(value, Value):
                    raise TypeError("values must be gpiod.line.Value")
                settings = self._settings[offset]
                if settings.direction != Direction.OUTPUT:
                    raise PermissionError(errno.EPERM, "Operation not permitted")
                state = WORLD.line(self._path, offset)
                state.output = (value == Value.ACTIVE) != settings.active_low
                state.history.append(("out", state.output))
        finally:
            self._leave()

    def reconfigure_lines(self, config: dict) -> None:
        self._enter("reconfigure_lines")
        try:
            for offset, settings in self._normalise(config).items():
                if offset not in self._settings:
                    continue  # settings for lines not in the request are ignored
                self._apply(offset, settings)
        finally:
            self._leave()

    def wait_edge_events(self, timeout=None) -> bool:
        self._enter("wait_edge_events")
        try:
            seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
            readable, _, _ = select.select([self._read_fd], [], [], seconds)
            return bool(readable)
        finally:
            self._leave()

    def read_edge_events(self, max_events=None) -> list:
        self._enter("read_edge_events")
        try:
            count = len(self._events) if max_events is None else min(max_events, len(self._events))
            if count:
                os.read(self._read_fd, count)
            events, self._events = self._events[:count], self._events[count:]
            return events
        finally:
            self._leave()

    def release(self) -> None:
        self._enter("release")
        try:
            self._released = True
            for offset in self._settings:
                state = WORLD.line(self._path, offset)
                state.request = None
                # A released output keeps its last level (JetPack 5, 6.2.2) on this fake board.
                state.history.append(("released", state.output))
            os.close(self._read_fd)
            os.close(self._write_fd)
        finally:
            self._leave()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.release()


def install(monkeypatch, world: World):
    """Make `import gpiod` give this world's module for the rest of the test."""
    global WORLD
    WORLD = world
    module = world.module()
    monkeypatch.setitem(sys.modules, "gpiod", module)
    monkeypatch.setitem(sys.modules, "gpiod.line", module.line)
    monkeypatch.setitem(sys.modules, "gpiod.exception", module.exception)
    return module
