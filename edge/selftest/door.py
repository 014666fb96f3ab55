"""Door checks: the door sensor and exit button are read, the relay is pulsed once
(after the technician agrees, or with --yes), an optional feedback input must
see the pulse, and the lock ends LOCKED whatever happens.

The door is opened as the daemon opens it (edge.door.open_door from the daemon's
settings) and driven only through the door interface (edge.door.Door). The
pulse is the shortest one allowed (1 s), switched off by the door's own timer:
that is the mechanism the daemon relies on, so it is tested too. The door is
locked again in ``finally`` (and by SIGTERM/SIGINT/SIGHUP while it is open),
and then released.

Relay feedback: a relay contact (or an opto-coupler on the lock supply) wired
back to an input: a measuring wire of the self-test, not part of the door, so it
is read with gpiozero here. Only a change of level is looked for, so either
polarity works; fit an external pull-up or pull-down, since the input is read
without one (Jetson pads may ignore internal pulls).

Pins come from gpiozero's factory: GPIOZERO_PIN_FACTORY=jetson on the device,
=mock for a dry run. The checks never take the pins while the daemon runs
(mock pins excepted: they exist only inside this process).
"""
from __future__ import annotations

import os
import signal
import threading
import time

from gpiozero import DigitalInputDevice
from gpiozero.exc import GPIOZeroError
from gpiozero.pins.mock import MockFactory

from edge.door import PULSE_MIN_S, Door, install_signal_handlers, open_door
from edge.exc import DoorError
from edge.selftest.runner import Result
from edge.selftest.service import STOP_HINT

CHECKS = ("sensor", "exit_button", "relay", "feedback", "locked")
POLL_S = 0.005
QUIET_S = 0.1  # the feedback input is watched this long before the pulse: it must hold still
RELOCK_GRACE_S = 1.0  # the pulse timer may be this late before it counts as broken
SETTLE_S = 0.5  # the feedback may take this long to return after the relay drops out
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def sensor_check(door: Door, pin: str) -> Result:
    if door.door_closed:
        return Result.passed(f"door sensor on {pin}: contact closed, the door is shut")
    return Result.passed(f"door sensor on {pin}: contact open, the door is OPEN; if it is shut, check the sensor's "
                         "wire, its pull-up and the magnet's alignment")


def exit_button_check(door: Door, pin: str) -> Result:
    if door.exit_pressed:
        return Result.failed(f"exit button on {pin} reads PRESSED: if nobody is pressing it, the button is stuck "
                             "or its wire is shorted to GND, and the daemon would keep unlocking the door")
    return Result.passed(f"exit button on {pin}: released")


class RelayTest:
    """The door opened once: its inputs read, one relay pulse with the feedback input watched, and the relock."""

    def __init__(self, settings, pin_factory):
        self.settings = settings
        self.daemon = settings.daemon
        self.pin_factory = pin_factory
        self.door: Door | None = None
        self.feedback_input = None
        self.saved_handlers: dict = {}
        self.pulsed = False
        self.before = self.during = self.after = None
        self.lock_result: Result | None = None

    def open(self) -> Door:
        """The daemon's door with the shortest pulse, opened (locked) on first use."""
        if self.door is None:
            self.door = open_door(self.daemon, self.pin_factory, pulse_s=PULSE_MIN_S)
            self._guard_signals()
        return self.door

    def sensor(self) -> Result:
        pin = self.daemon["door.sensor_pin"]
        if not pin:
            return Result.skipped("no door sensor configured ([door] sensor_pin)")
        return sensor_check(self.open(), pin)

    def exit_button(self) -> Result:
        pin = self.daemon["door.exit_pin"]
        if not pin:
            return Result.skipped("no exit button configured ([door] exit_pin)")
        return exit_button_check(self.open(), pin)

    def pulse(self) -> Result:
        pin = self.daemon["door.pin"]
        door = self.open()
        if self.settings.feedback_pin:
            self._open_feedback(self.settings.feedback_pin)
            self.before = self._quiet_level()
        started = time.monotonic()
        door.unlock_pulse()
        self.pulsed = True
        if door.is_locked:
            return Result.failed(f"the relay output on {pin} did not switch on: the GPIO driver refused it")
        levels = self._watch_pulse(deadline=started + PULSE_MIN_S + RELOCK_GRACE_S)
        lasted = time.monotonic() - started
        self.during = levels
        if not door.is_locked:
            door.lock()
            return Result.failed(f"the relay on {pin} was still on {lasted:.1f} s into a {PULSE_MIN_S:g} s pulse; "
                                 "it was switched off by hand now. The pulse timer is broken: do not put the daemon "
                                 "back in service; report this")
        if self.feedback_input is not None:
            self.after = self._settled_level(self.before)
        hardware = " (mock pins: nothing was switched)" if door.simulated else "; you should have heard the lock click"
        return Result.passed(f"{door.describe()} energised for {PULSE_MIN_S:g} s and switched off by its timer"
                             f"{hardware}")

    def feedback(self) -> Result:
        pin = self.settings.feedback_pin
        if not pin:
            return Result.skipped("no feedback input given (--feedback-pin): the pulse was not confirmed "
                                  "electrically, and reading the relay pin back cannot confirm it (a GPIO reads its "
                                  "output register, not the pad; on JetPack 6 a pad left to another function by "
                                  "the pinmux drives nothing). Listen for the lock's click, or wire a relay contact "
                                  "back to an input and pass --feedback-pin")
        if not self.pulsed or self.during is None:
            return Result.skipped("the relay was not pulsed (see door.relay)")
        if self.before is None:
            return Result.failed(f"feedback input on {pin} flickers while the relay is off: the input floats; "
                                 "fit a pull-up or pull-down resistor on it")
        level = "high" if self.before else "low"
        if not any(value != self.before for value in self.during):
            return Result.failed(f"relay feedback never changed: check relay wiring/coil supply (feedback on {pin} "
                                 f"stayed {level} through the {PULSE_MIN_S:g} s pulse; is the relay's LED lit during "
                                 "the pulse? is the feedback wire on the right contact?)")
        if self.after != self.before:
            return Result.failed(f"relay feedback on {pin} changed during the pulse but did not return to {level} "
                                 "after the relay switched off: the relay contact may be stuck closed and the door "
                                 "UNLOCKED; replace the relay")
        return Result.passed(f"feedback on {pin} followed the pulse (left {level}, came back)")

    def close(self) -> None:
        """Lock, then release the pins; always runs, and remembers how it went for door.locked."""
        try:
            if self.door is None:
                self.lock_result = Result.passed("the relay was never driven; it stays de-energised (locked)")
                return
            try:
                self.door.lock()
                if self.door.is_locked:
                    state = "low" if self.daemon["door.active_high"] else "high"
                    self.lock_result = Result.passed(f"door locked: relay de-energised ({self.daemon['door.pin']} "
                                                     f"{state}), pins released")
                else:
                    self.lock_result = Result.failed("the relay output still reads ON after locking: the door may be "
                                                     "UNLOCKED; cut the lock's supply and check the relay driver")
            except Exception as error:  # reported below, and close() still tries to relock and release
                self.lock_result = Result.failed(f"locking failed: {error}; the door may be UNLOCKED: cut the lock's "
                                                 "supply and check the relay driver")
            finally:
                self.door.close()
        finally:
            if self.feedback_input is not None:
                self.feedback_input.close()
            self._restore_signals()

    # -- internals ------------------------------------------------------------
    def _open_feedback(self, pin: str) -> None:
        try:
            self.feedback_input = DigitalInputDevice(pin, pull_up=None, active_state=True, pin_factory=self.pin_factory)
        except GPIOZeroError as error:
            raise DoorError(f"cannot read the feedback input {pin!r}: {error}") from error

    def _quiet_level(self):
        """The feedback level while the relay is off, or None when it does not hold still."""
        first = self.feedback_input.value
        deadline = time.monotonic() + QUIET_S
        while time.monotonic() < deadline:
            if self.feedback_input.value != first:
                return None
            time.sleep(POLL_S)
        return first

    def _watch_pulse(self, deadline: float) -> list:
        levels = []
        while time.monotonic() < deadline:
            if self.feedback_input is not None:
                levels.append(self.feedback_input.value)
            if self.door.is_locked:
                break
            time.sleep(POLL_S)
        return levels

    def _settled_level(self, wanted):
        deadline = time.monotonic() + SETTLE_S
        level = self.feedback_input.value
        while level != wanted and time.monotonic() < deadline:
            time.sleep(POLL_S)
            level = self.feedback_input.value
        return level

    def _guard_signals(self) -> None:
        # A technician's Ctrl-C (or systemd's SIGTERM) during the pulse relocks first.
        if threading.current_thread() is not threading.main_thread():
            return
        self.saved_handlers = {signum: signal.getsignal(signum) for signum in SIGNALS}
        install_signal_handlers(self.door, SIGNALS)

    def _restore_signals(self) -> None:
        for signum, handler in self.saved_handlers.items():
            signal.signal(signum, handler)
        self.saved_handlers = {}


def uses_mock_pins(pin_factory) -> bool:
    """Mock pins belong to this process alone, so a running daemon cannot hold them."""
    if pin_factory is not None:
        return isinstance(pin_factory, MockFactory)
    return os.environ.get("GPIOZERO_PIN_FACTORY", "").strip().lower() == "mock"


def confirmation(context) -> Result | None:
    """None when the pulse may go ahead, else the SKIP saying why not."""
    if context.yes:
        return None
    pin = context.settings.daemon["door.pin"]
    answer = context.confirm(f"Pulse the door relay on {pin} for {PULSE_MIN_S:g} s? The door unlocks briefly.")
    if answer is None:
        return Result.skipped("no terminal to confirm the relay pulse: rerun with --yes to pulse the relay")
    if not answer:
        return Result.skipped("relay pulse declined")
    return None


def run(context, step) -> None:
    settings = context.settings
    if not settings.daemon["door.pin"]:
        step("relay", lambda: Result.failed("no relay pin configured: set [door] pin in the config file or pass --pin"))
        for name in ("feedback", "locked"):
            step.skip(name, "no relay pin configured")
        return
    holder = context.daemon_holder() if not uses_mock_pins(context.pin_factory) else None
    if holder:
        for name in CHECKS:
            step.skip(name, f"{holder} and holds the GPIO; {STOP_HINT}")
        return
    test = RelayTest(settings, context.pin_factory)
    refused = None
    try:
        step("sensor", test.sensor)
        step("exit_button", test.exit_button)
        refused = confirmation(context)
        if refused is not None:
            step.record("relay", refused.status, refused.detail, 0.0)
            step.skip("feedback", "the relay was not pulsed")
        else:
            step("relay", test.pulse)
            step("feedback", test.feedback)
    finally:
        test.close()
    if refused is not None and test.door is None:
        step.skip("locked", "the relay was never driven; it stays de-energised (locked)")
    elif refused is not None and test.lock_result.status == "PASS":
        # Opened to read its inputs, never pulsed: nothing to show beyond "still locked".
        step.skip("locked", "the relay was not pulsed; it stays de-energised (locked)")
    else:
        step("locked", lambda: test.lock_result)
