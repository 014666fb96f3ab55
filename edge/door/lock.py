"""Fail-secure door lock on a relay, driven through gpiozero.

The rule: **a de-energised relay coil means LOCKED.** The software only ever
energises the coil for a bounded pulse; everything else (start-up, normal exit,
SIGTERM, an exception, a crash, ``kill -9``, a power cut of the computer) leaves
the coil off, so the door must be wired so that "coil off" is "locked".

Wiring
------
* **Fail-secure electric strike or bolt** (locked when unpowered; the usual
  choice for a face door): wire the lock's supply through the relay's **NO**
  (normally open) contact and COM. Coil off -> NO open -> lock unpowered ->
  locked. Coil on (the pulse) -> lock powered -> open.
* **Magnetic lock** (fail-safe by nature: it holds only while powered): wire it
  through the **NC** contact, so coil off -> NC closed -> magnet powered ->
  locked. The magnet still releases on a power cut of the lock supply, which
  fire codes usually demand; that is the lock's property, not the software's.

``active_high`` describes the relay *driver*, not the lock:

* ``active_high=True``: a transistor/MOSFET driver or "high-level trigger"
  module; the coil is on while the pin is HIGH. Fit a pull-down (e.g. 10 kOhm
  from the driver input to GND) so a floating or released pin reads LOW = off.
* ``active_high=False``: an opto-isolated "low-level trigger" module; the coil
  is on while the pin is LOW. Its input LED sits between VCC and IN, so a
  floating or released pin draws no current = off; add a pull-up to VCC to be
  sure. Locked is then the pin driven HIGH.

Why this covers a crash: when the process dies (even ``kill -9``) the kernel
releases the GPIO line; depending on the board and JetPack the line floats,
reverts to its pinmux default (JetPack 6) or keeps its last level (JetPack 5).
With the pull above, floating and default both read as "coil off" (choose a
header pin whose default is the locked level); the dangerous case, a line frozen at the unlocked
level after a crash mid-pulse, needs a hardware guard: use a relay module or
lock controller with a maximum on-time (monostable / watchdog timer), or a
strike rated for continuous duty plus the door sensor alarm.

Door sensor and exit button: contacts to GND. The internal pull-up is
requested, but Jetson pads may ignore it, so fit an external pull-up
(1 to 4.7 kOhm to 3.3 V) on both inputs.

Never drive a relay coil straight from a Jetson header pin: the header cannot
source the current (Nano/Xavier NX pass it through weak level shifters).

At start the relay is created with ``initial_value=False`` (locked), and
``close()``, ``atexit`` and the SIGTERM handler from
:func:`install_signal_handlers` all drive it to locked before releasing it.
"""
from __future__ import annotations

import atexit
import logging
import math
import signal
import threading
import warnings
from typing import Callable, Optional

from gpiozero import Button, DigitalInputDevice, OutputDevice
from gpiozero.exc import BadPinFactory, GPIOZeroError, PinFactoryFallback

from edge.exc import ConfigError, DoorError

log = logging.getLogger(__name__)

PULSE_MIN_S = 1.0
PULSE_MAX_S = 10.0
EXIT_BUTTON_BOUNCE_S = 0.05

NO_FACTORY_HELP = (
    "no GPIO pin factory could be loaded: set GPIOZERO_PIN_FACTORY=jetson on a Jetson "
    "(needs the gpiod package), or GPIOZERO_PIN_FACTORY=mock for a dry run without hardware"
)


def validate_pulse(seconds) -> float:
    """The unlock pulse in seconds, 1 to 10 inclusive, or ConfigError."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise ConfigError(f"door pulse_s must be a number of seconds, got {seconds!r}")
    if not PULSE_MIN_S <= seconds <= PULSE_MAX_S:
        raise ConfigError(f"door pulse_s must be between {PULSE_MIN_S:g} and {PULSE_MAX_S:g} s, got {seconds:g}")
    return float(seconds)


def _start_timer(seconds: float, callback: Callable[[], None]):
    """Run ``callback`` after ``seconds`` on a daemon thread; returns an object with cancel()."""
    timer = threading.Timer(seconds, callback)
    timer.daemon = True  # a pending relock must never keep a dying process alive
    timer.start()
    return timer


class DoorLock:
    """A relay-driven lock that is locked unless a pulse is running.

    ``pin``, ``sensor_pin`` and ``exit_pin`` are gpiozero pin names (e.g.
    ``"BOARD11"``, which resolves on the Jetson factory and on MockFactory).
    The door sensor is a contact to GND that is closed while the door is shut
    (internal pull-up); the exit button is a push button to GND that starts an
    unlock pulse (request-to-exit).
    """

    def __init__(
        self,
        pin,
        active_high: bool = True,
        pulse_s: float = 3.0,
        pin_factory=None,
        sensor_pin=None,
        exit_pin=None,
    ):
        self.pulse_s = validate_pulse(pulse_s)
        if not isinstance(active_high, bool):
            raise ConfigError(f"door active_high must be true or false, got {active_high!r}")
        self.active_high = active_high
        self.on_exit_request: Optional[Callable[[], None]] = None  # called after an exit-button pulse starts
        self.fault: Optional[str] = None  # set if a relock ever failed
        self._mutex = threading.RLock()
        self._timer = None
        self._generation = 0
        self._closed = False
        self._relay = self._sensor = self._exit = None
        try:
            with warnings.catch_warnings():
                # Without GPIOZERO_PIN_FACTORY gpiozero tries every factory and warns about each that
                # fails; the one error below says what to set instead.
                warnings.simplefilter("ignore", PinFactoryFallback)
                self._relay = OutputDevice(pin, active_high=active_high, initial_value=False, pin_factory=pin_factory)
            if sensor_pin is not None:
                self._sensor = DigitalInputDevice(sensor_pin, pull_up=True, pin_factory=pin_factory)
            if exit_pin is not None:
                self._exit = Button(exit_pin, pull_up=True, bounce_time=EXIT_BUTTON_BOUNCE_S, pin_factory=pin_factory)
                self._exit.when_pressed = self._exit_pressed
        except BadPinFactory as error:
            self._close_devices()
            raise DoorError(f"{NO_FACTORY_HELP} ({error})") from error
        except GPIOZeroError as error:
            self._close_devices()
            raise DoorError(f"cannot set up the door lock on pin {pin!r}: {error}") from error
        atexit.register(self.close)

    # -- state ----------------------------------------------------------------
    @property
    def is_locked(self) -> bool:
        with self._mutex:
            return self._closed or not self._relay.is_active

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def door_closed(self) -> Optional[bool]:
        """True/False from the door sensor, None when there is none."""
        if self._sensor is None or self._closed:
            return None
        return bool(self._sensor.is_active)

    @property
    def relay_pin(self):
        """The gpiozero Pin driving the relay (MockPin.states in tests)."""
        return self._relay.pin if self._relay is not None else None

    # -- actions --------------------------------------------------------------
    def unlock_pulse(self) -> None:
        """Open for ``pulse_s`` seconds, then relock. A pulse during a pulse restarts the time."""
        with self._mutex:
            if self._closed:
                raise DoorError("the door lock is closed; cannot unlock")
            self._cancel_timer()
            self._generation += 1
            generation = self._generation
            # Arm the relock before opening: if the timer cannot start, the door never opened.
            self._timer = _start_timer(self.pulse_s, lambda: self._pulse_ended(generation))
            try:
                self._relay.on()
            except Exception:
                self._relock_now()
                raise

    def lock(self) -> None:
        """Lock now (ends any pulse). Safe to call at any time, also after close()."""
        with self._mutex:
            if self._closed:
                return
            self._relock_now()

    def close(self) -> None:
        """Lock, then release the pins. Idempotent."""
        with self._mutex:
            if self._closed:
                return
            try:
                self._relock_now()
            finally:
                self._closed = True
                self._close_devices()
                atexit.unregister(self.close)

    def __enter__(self) -> "DoorLock":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._closed:
            return "<DoorLock closed>"
        state = "locked" if self.is_locked else "UNLOCKED"
        return f"<DoorLock pin={self.relay_pin!r} active_high={self.active_high} {state}>"

    # -- internals ------------------------------------------------------------
    def _pulse_ended(self, generation: int) -> None:
        with self._mutex:
            if self._closed or generation != self._generation:
                return  # a newer pulse or close() owns the relay now
            self._timer = None
            try:
                self._relay.off()
            except Exception as error:  # logged loudly; nothing else can drive the pin
                self.fault = f"relock after the pulse failed: {error}"
                log.critical("door relock FAILED: %s", error)

    def _relock_now(self) -> None:
        self._cancel_timer()
        self._generation += 1
        self._relay.off()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _exit_pressed(self) -> None:
        if self._closed:
            return
        self.unlock_pulse()
        callback = self.on_exit_request
        if callback is not None:
            callback()

    def _close_devices(self) -> None:
        # Inputs first, the relay last: it was driven to locked before this.
        for device in (self._exit, self._sensor, self._relay):
            if device is not None:
                device.close()


def install_signal_handlers(lock: DoorLock, signals=(signal.SIGTERM, signal.SIGINT, signal.SIGHUP)):
    """Make SIGTERM/SIGINT/SIGHUP lock the door at once, then exit through SystemExit.

    Locking happens inside the handler, before any other shutdown work, so a
    slow or failing shutdown cannot leave the door open; SystemExit then runs
    the ``finally`` blocks and ``close()``. SIGTERM (``systemctl stop``) exits
    with status 0, the others with 128 + the signal number. Must be called from
    the main thread. Returns the handler (so tests can call it directly).
    """

    def relock_and_exit(signum, frame):
        lock.lock()
        raise SystemExit(0 if signum == signal.SIGTERM else 128 + signum)

    for signum in signals:
        signal.signal(signum, relock_and_exit)
    return relock_and_exit
