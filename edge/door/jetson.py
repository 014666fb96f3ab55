"""A gpiozero pin factory for Jetson boards, on the GPIO character device (libgpiod 2).

gpiozero ships no Jetson support, and its default factories either fail or,
when Jetson.GPIO's ``RPi.GPIO`` alias is installed, pretend to work and fail at
the first pin. Select this one explicitly::

    GPIOZERO_PIN_FACTORY=jetson edge-verify run ...

(the ``jetson`` entry point in the ``gpiozero_pin_factories`` group), or pass
``JetsonFactory()`` as ``pin_factory``. It needs the official libgpiod 2 Python
bindings, ``pip install 'gpiod>=2'`` (Ubuntu's ``python3-libgpiod`` is the 1.x API
and will not do), and read/write access to ``/dev/gpiochip*`` (the ``gpio``
group with NVIDIA's udev rule, see systemd/99-edge-verify-gpio.rules).

Pins are named as in :mod:`edge.door.jetson_pins` (``BOARD32`` etc.). Chips are
found by label (``tegra234-gpio``, ``tegra234-gpio-aon``...), never by number:
``/dev/gpiochipN`` numbering differs between boards and releases.

An output is requested with its direction and first value in one request, so
a relay never sees a glitch to the unlocked level while the pin is set up.
Edge events (door sensor, exit button) are read on one thread per watched pin.
``bounce`` becomes the line's ``debounce_period``: the kernel debounces (in the
GPIO controller where it can, else in gpiolib), so a bounce is filtered before
it is an event and every edge that is reported is delivered. (Filtering in user
space by event time dropped the release of a short tap and then, with gpiozero
believing the button still held, ignored the next press.)

libgpiod's request objects are not thread-safe: every call into a request
happens under the pin's lock. The watcher thread waits on the request's file
descriptor with ``select`` (no library call) and takes the lock only to read
the events; callbacks run after the lock is released.

A released line is not "off": JetPack 5 and 6.2.2 keep its last level, 6.0 to
6.2.1 hand the pad back to its special function. Nothing here can relock a
door after a crash; ``edge-verify door lock`` (run by the service's
``ExecStopPost=`` and at boot) and the wiring (README "Fail-secure wiring") do.
"""
from __future__ import annotations

import errno
import glob
import logging
import select
import threading
import time
from datetime import timedelta
from types import MethodType
from typing import Optional
from weakref import WeakMethod, ref

from gpiozero.exc import (
    PinFixedPull,
    PinInvalidBounce,
    PinInvalidEdges,
    PinInvalidFunction,
    PinInvalidPin,
    PinInvalidPull,
    PinSetInput,
)
from gpiozero.pins import Factory, Pin

from edge.door.jetson_pins import Board, Line, board_for, board_info, detect_board, line_for
from edge.exc import DoorError

log = logging.getLogger(__name__)

CONSUMER = "edge-verify"
WATCH_POLL_S = 0.1  # how often a watcher thread checks whether it should stop
# What libgpiod raises for a refused request: OSError (EBUSY, EACCES...), ValueError
# (EINVAL: settings the driver rejects), NotImplementedError (EOPNOTSUPP: e.g. bias
# or debounce the controller lacks).
GPIOD_ERRORS = (OSError, ValueError, NotImplementedError)

GPIOD_MISSING = (
    "the jetson pin factory needs the libgpiod 2 Python bindings: pip install 'gpiod>=2' in this "
    "environment (or pip install 'edge-verify[jetson]')"
)
GPIOD_TOO_OLD = (
    "the installed gpiod module is the libgpiod 1.x API (apt python3-libgpiod or gpiod<2); the jetson pin "
    "factory needs gpiod>=2: pip install 'gpiod>=2' in the venv (it does not need the apt package)"
)


def import_gpiod():
    """The ``gpiod`` module (v2 API), or DoorError saying what to install."""
    try:
        import gpiod  # optional, Jetson-only dependency (the jetson extra)
    except ImportError as error:
        raise DoorError(GPIOD_MISSING) from error
    if not (hasattr(gpiod, "request_lines") and hasattr(gpiod, "LineSettings")):
        raise DoorError(GPIOD_TOO_OLD)
    return gpiod


def find_chips(gpiod, pattern: str = "/dev/gpiochip*") -> dict:
    """{chip label: device path} for every GPIO chip this process may open."""
    chips, denied = {}, []
    for path in sorted(glob.glob(pattern)):
        try:
            with gpiod.Chip(path) as chip:
                chips[chip.get_info().label] = path
        except PermissionError:
            denied.append(path)
        except OSError:
            continue  # not a GPIO chip after all (is_gpiochip_device would say the same)
    if not chips:
        if denied:
            raise DoorError(
                f"permission denied on {', '.join(denied)}: add this user to the gpio group and install the "
                "udev rule (systemd/99-edge-verify-gpio.rules), then log in again"
            )
        raise DoorError(f"no GPIO character devices match {pattern}: is this a Jetson, and is /dev passed through?")
    return chips


class JetsonFactory(Factory):
    """gpiozero pin factory for Jetson dev-kit headers via libgpiod 2."""

    def __init__(self, model: Optional[str] = None, chips: Optional[dict] = None):
        super().__init__()
        self.board: Board = board_for(model) if model else detect_board()
        self._gpiod = import_gpiod()
        self._chips = dict(chips) if chips is not None else find_chips(self._gpiod)
        self._pins: dict = {}
        self._pins_lock = threading.Lock()

    def close(self) -> None:
        with self._pins_lock:
            pins, self._pins = list(self._pins.values()), {}
        for pin in pins:
            pin.close()

    def ticks(self) -> float:
        # Edge events carry CLOCK_MONOTONIC timestamps, the same clock as this.
        return time.monotonic()

    def ticks_diff(self, later: float, earlier: float) -> float:
        return later - earlier

    def _get_board_info(self):
        return board_info(self.board)

    def pin(self, name):
        try:
            line = line_for(self.board, name)
        except DoorError as error:
            raise PinInvalidPin(str(error)) from None
        info = next(pin for _header, pin in self.board_info.find_pin(name))
        with self._pins_lock:
            existing = self._pins.get(info.number)
            if existing is None:
                existing = self._pins[info.number] = JetsonPin(self, info, line, self._chip_path(line))
            return existing

    def _chip_path(self, line: Line) -> str:
        try:
            return self._chips[line.chip_label]
        except KeyError:
            found = ", ".join(f"{label} ({path})" for label, path in sorted(self._chips.items())) or "none"
            raise DoorError(
                f"no GPIO chip labelled {line.chip_label!r} for line {line.name}; chips found: {found}"
            ) from None


class JetsonPin(Pin):
    """One header pin; the line is requested on first use and released on close()."""

    def __init__(self, factory: JetsonFactory, info, line: Line, chip_path: str):
        self._factory = factory
        self._info = info
        self._line = line
        self._chip_path = chip_path
        self._gpiod = factory._gpiod
        self._mutex = threading.RLock()  # guards self._request: the bindings are not thread-safe
        self._request = None
        self._function = "input"
        self._pull = "floating"
        self._edges = "both"
        self._bounce: Optional[float] = None
        self._when_changed = None
        self._watcher: Optional[threading.Thread] = None
        self._stop_watch: Optional[threading.Event] = None

    def __repr__(self) -> str:
        return self._info.name

    @property
    def factory(self) -> JetsonFactory:
        return self._factory

    def close(self) -> None:
        with self._mutex:
            self._stop_watcher()
            self._when_changed = None
            self._release()
            # The factory hands this object to the pin's next device: it must start afresh,
            # not inherit a pull or bounce the previous device asked for.
            self._function, self._pull, self._edges, self._bounce = "input", "floating", "both", None

    def _release(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            try:
                request.release()
            except (*GPIOD_ERRORS, self._gpiod.RequestReleasedError):
                pass  # already gone with its file descriptor: nothing is left to let go of

    # -- line requests -------------------------------------------------------
    def _settings(self, output_state: Optional[bool] = None, watch: bool = False):
        gpiod = self._gpiod
        line = gpiod.line
        if output_state is not None:
            value = line.Value.ACTIVE if output_state else line.Value.INACTIVE
            return gpiod.LineSettings(direction=line.Direction.OUTPUT, output_value=value)
        bias = {"up": line.Bias.PULL_UP, "down": line.Bias.PULL_DOWN, "floating": line.Bias.DISABLED}[self._pull]
        edges = {"both": line.Edge.BOTH, "rising": line.Edge.RISING, "falling": line.Edge.FALLING,
                 "none": line.Edge.NONE}[self._edges]
        return gpiod.LineSettings(
            direction=line.Direction.INPUT,
            bias=bias,
            edge_detection=edges if watch else line.Edge.NONE,
            debounce_period=timedelta(seconds=self._bounce or 0.0),
            event_clock=line.Clock.MONOTONIC,
        )

    def _apply(self, settings) -> None:
        config = {self._line.offset: settings}
        try:
            if self._request is None:
                self._request = self._gpiod.request_lines(self._chip_path, config=config, consumer=CONSUMER)
            else:
                self._request.reconfigure_lines(config)
        except GPIOD_ERRORS as error:
            if self._request is not None and not isinstance(error, OSError):
                self._release()  # a refused reconfiguration leaves the line in an unknown state: let it go
            raise DoorError(
                f"cannot configure {self._info.name} = line {self._line.name} (offset {self._line.offset} "
                f"on {self._chip_path}): {describe_error(error)}"
            ) from error

    def _configure_input(self) -> None:
        self._apply(self._settings(watch=self._when_changed is not None))

    # -- gpiozero Pin interface ----------------------------------------------
    def _get_info(self):
        return self._info

    def _get_function(self) -> str:
        return self._function

    def _set_function(self, value: str) -> None:
        if value not in ("input", "output"):
            raise PinInvalidFunction(f"invalid function {value!r} for pin {self!r}")
        if value == "output":
            self.output_with_state(False)
            return
        with self._mutex:
            self._function = "input"
            self._restart_watch()

    def output_with_state(self, state) -> None:
        with self._mutex:
            self._stop_watcher()
            self._function = "output"
            self._apply(self._settings(output_state=bool(state)))

    def input_with_pull(self, pull: str) -> None:
        self._check_pull(pull)
        with self._mutex:
            self._function = "input"
            self._pull = pull
            self._restart_watch()

    def _get_state(self) -> bool:
        # For an output this is the output register, not the pad: a pad the pinmux does not
        # give to the GPIO controller reads back whatever was written (README "On Jetson").
        with self._mutex:
            if self._request is None:
                self._configure_input()
            try:
                value = self._request.get_value(self._line.offset)
            except GPIOD_ERRORS as error:
                raise DoorError(f"cannot read {self._info.name}: {describe_error(error)}") from error
            return value == self._gpiod.line.Value.ACTIVE

    def _set_state(self, value) -> None:
        with self._mutex:
            if self._function != "output":
                raise PinSetInput(f"cannot set the state of input pin {self!r}")
            value_enum = self._gpiod.line.Value
            try:
                self._request.set_value(self._line.offset, value_enum.ACTIVE if value else value_enum.INACTIVE)
            except GPIOD_ERRORS as error:
                raise DoorError(f"cannot drive {self._info.name}: {describe_error(error)}") from error

    def _get_pull(self) -> str:
        return self._pull

    def _set_pull(self, value: str) -> None:
        with self._mutex:
            if self._function != "input":
                raise PinFixedPull(f"cannot set the pull of output pin {self!r}")
            self._check_pull(value)
            self._pull = value
            self._restart_watch()

    def _check_pull(self, value: str) -> None:
        if value not in ("up", "down", "floating"):
            raise PinInvalidPull(f"invalid pull {value!r} for pin {self!r}")

    def _get_bounce(self) -> Optional[float]:
        return self._bounce

    def _set_bounce(self, value) -> None:
        if value is not None and (not isinstance(value, (int, float)) or value < 0):
            raise PinInvalidBounce(f"bounce must be None or a number of seconds >= 0, got {value!r}")
        with self._mutex:
            self._bounce = None if value is None else float(value)
            if self._function == "input" and self._request is not None:
                self._restart_watch()  # the kernel debounces: it needs the new period

    def _get_edges(self) -> str:
        return self._edges

    def _set_edges(self, value: str) -> None:
        if value not in ("both", "rising", "falling", "none"):
            raise PinInvalidEdges(f"invalid edges {value!r} for pin {self!r}")
        with self._mutex:
            self._edges = value
            if self._watcher is not None:
                self._restart_watch()

    def _get_when_changed(self):
        return None if self._when_changed is None else self._when_changed()

    def _set_when_changed(self, value) -> None:
        with self._mutex:
            if value is None:
                self._when_changed = None
                self._stop_watcher()
                if self._function == "input" and self._request is not None:
                    self._configure_input()  # turn kernel edge detection off again
                return
            if self._function != "input":
                raise PinSetInput(f"cannot watch edges on output pin {self!r}")
            # Weak references, as gpiozero's own pins keep: a pin must not keep its device alive.
            self._when_changed = WeakMethod(value) if isinstance(value, MethodType) else ref(value)
            if self._watcher is None:
                self._restart_watch()

    # -- edge events (called with self._mutex held, except _watch) ---------------
    def _restart_watch(self) -> None:
        self._stop_watcher()
        self._configure_input()
        if self._when_changed is not None and self._function == "input":
            self._start_watcher()

    def _start_watcher(self) -> None:
        stop = threading.Event()
        thread = threading.Thread(
            target=self._watch, args=(self._request, self._request.fd, stop), name=f"gpio-{self._info.name}",
            daemon=True,
        )
        self._stop_watch, self._watcher = stop, thread
        thread.start()

    def _stop_watcher(self) -> None:
        thread, stop = self._watcher, self._stop_watch
        self._watcher = self._stop_watch = None
        if thread is None:
            return
        stop.set()
        if thread is not threading.current_thread():
            # The watcher never blocks on self._mutex for longer than WATCH_POLL_S, so
            # joining while holding it cannot deadlock.
            thread.join(timeout=2 * WATCH_POLL_S + 1)

    def _watch(self, request, fd: int, stop: threading.Event) -> None:
        rising = self._gpiod.EdgeEvent.Type.RISING_EDGE
        while not stop.is_set():
            try:
                readable, _, _ = select.select([fd], [], [], WATCH_POLL_S)
            except (OSError, ValueError):
                return  # the request was released and its descriptor closed under us
            if not readable:
                continue
            events = self._read_events(request, stop)
            if events is None:
                return
            for event in events:
                if stop.is_set():
                    return
                self._deliver(event.timestamp_ns / 1e9, event.event_type is rising)

    def _read_events(self, request, stop: threading.Event):
        """The waiting events, read under the pin lock; None when the watcher must stop."""
        while not self._mutex.acquire(timeout=WATCH_POLL_S):
            if stop.is_set():
                return None  # close() or a reconfiguration holds the lock and waits for us to go
        try:
            if stop.is_set() or request is not self._request:
                return None
            return request.read_edge_events()
        except (*GPIOD_ERRORS, self._gpiod.RequestReleasedError):
            return None
        finally:
            self._mutex.release()

    def _deliver(self, ticks: float, state: bool) -> None:
        callback = self._get_when_changed()
        if callback is None:
            return
        try:
            callback(ticks, state)
        except Exception:
            # The watcher must outlive a failing callback: a handler's bug, or a device gpiozero is closing
            # (it clears its hold thread before it closes the pin). Ending this thread would lose every
            # later edge of the line (the door sensor, the exit button) without a word.
            log.exception("%s: the handler of an edge failed; the line is still watched", self)


def describe_error(error: Exception) -> str:
    """One line for what libgpiod refused, with the likely cause."""
    text = getattr(error, "strerror", None) or (error.args[-1] if error.args else "") or type(error).__name__
    if isinstance(error, NotImplementedError):
        return (f"{text}: the GPIO driver does not support a setting asked for (a pull resistor or hardware "
                "debounce); fit external pull resistors and set pull/bounce to none")
    if isinstance(error, ValueError):
        return f"{text}: the GPIO driver refused these line settings"
    if isinstance(error, OSError) and error.errno == errno.EBUSY:
        return f"{text} (another program holds this line: gpioinfo shows which)"
    return str(text)
