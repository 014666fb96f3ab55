"""Fail-secure door lock on a relay, driven through gpiozero: the door kind "relay".

The rule: **a de-energised relay coil means LOCKED.** The software only ever
energises the coil for a bounded pulse, and at start-up, normal exit, SIGTERM
and on an exception it drives the coil off itself. Wire the door so that "coil
off" is "locked":

* **Fail-secure electric strike or bolt** (locked when unpowered): the lock's
  supply through the relay's **NO** contact and COM.
* **Magnetic lock** (holds only while powered): through the **NC** contact.

What this process cannot do: relock after it is killed (crash, ``kill -9``, the
watchdog's abort) in the middle of a pulse. The kernel releases the line, and a
released Jetson line is not "off": JetPack 5 and 6.2.2 keep its last level,
6.0 to 6.2.1 hand the pad back to its special function. Three things cover that,
all needed (README "Fail-secure wiring"):

1. ``edge-verify door lock`` (edge.door.relock) drives the pin to locked after
   every stop of the service (``ExecStopPost=``) and at boot;
2. a pull resistor on the driver's input to its OFF level, for the moments no
   program drives the pin (boot, a released line) - on the driver's side, not
   on the header pin: Jetson headers pass through weak level shifters
   (TXB0108 on the Nano and Xavier NX dev kits, which want no pull, or one
   above 50 kOhm); a 10 kOhm pull-down there reads about 2.3 V, i.e. "on";
3. a hardware on-time limit - an edge-triggered monostable (e.g. a 555 whose
   trigger is coupled through a capacitor) or a timer relay in one-shot mode,
   set a little above ``pulse_s`` - so that no software fault, however it
   freezes the pin, holds the door open.

``active_high`` describes the relay *driver*, not the lock:

* ``active_high=True`` (recommended): a logic-level MOSFET or transistor driver,
  e.g. header pin -> 1 kOhm -> gate, 100 kOhm gate-to-GND; the coil is on while
  the pin is HIGH, and an undriven pin reads LOW = off.
* ``active_high=False``: an opto-isolated "low-level trigger" module; the coil is
  on while the pin is LOW. Power its input side from 3.3 V, never 5 V: a pull-up
  to a 5 V VCC puts 5 V on a 3.3 V pin, and a 3.3 V high against a 5 V input LED
  may not switch the opto fully off.

Door sensor and exit button: contacts to GND with external pull-ups to 3.3 V
(1 to 4.7 kOhm; never to 5 V); Jetson pads may ignore the internal pull.
Never drive a relay coil straight from a header pin: it cannot source the current.

At start the relay is created with ``initial_value=False`` (locked), and
``close()``, ``atexit`` and the SIGTERM handler from
:func:`edge.door.actuator.install_signal_handlers` all drive it to locked before
releasing it.
"""
from __future__ import annotations

import atexit
import logging
import math
import threading
import warnings
from typing import Callable, Optional

from gpiozero import Button, DigitalInputDevice, OutputDevice
from gpiozero.exc import BadPinFactory, GPIOZeroError, PinFactoryFallback
from gpiozero.pins.mock import MockPin

from edge.door.actuator import Door
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


class DoorLock(Door):
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
        self.pin = pin
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
        except DoorError:
            self._close_devices()  # the pin factory's own error (e.g. a busy line): free what was built
            raise
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
    def exit_pressed(self) -> Optional[bool]:
        """True while the exit button is pressed, None when there is none."""
        if self._exit is None or self._closed:
            return None
        return bool(self._exit.is_pressed)

    @property
    def relay_pin(self):
        """The gpiozero Pin driving the relay (MockPin.states in tests)."""
        return self._relay.pin if self._relay is not None else None

    @property
    def simulated(self) -> bool:
        return isinstance(self.relay_pin, MockPin)

    def describe(self) -> str:
        return f"relay on {self.pin}"

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


def open_relay(settings, pin_factory=None, pulse_s: Optional[float] = None) -> DoorLock:
    """The door kind "relay": a DoorLock on the pins of the daemon's ``[door]`` settings.
    ``pulse_s`` replaces ``[door] pulse_s`` (the selftest pulses for the shortest time)."""
    return DoorLock(settings["door.pin"], active_high=settings["door.active_high"],
                    pulse_s=settings["door.pulse_s"] if pulse_s is None else pulse_s, pin_factory=pin_factory,
                    sensor_pin=settings["door.sensor_pin"], exit_pin=settings["door.exit_pin"])
