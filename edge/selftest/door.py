"""Door checks: the door sensor and exit button are read, the relay is pulsed once
(after the technician agrees, or with --yes), an optional feedback input must
see the pulse, and the lock ends LOCKED whatever happens.

The pulse is the shortest one DoorLock allows (1 s), switched off by DoorLock's
own timer: that is the mechanism the daemon relies on, so it is tested too. The
relay is switched off again in ``finally`` (and by SIGTERM/SIGINT/SIGHUP during
the pulse), and then released.

Relay feedback: a relay contact (or an opto-coupler on the lock supply) wired
back to an input. Only a change of level is looked for, so either polarity
works; fit an external pull-up or pull-down, since the input is read without
one (Jetson pads may ignore internal pulls).

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
from gpiozero.pins.mock import MockFactory, MockPin

from edge.door import PULSE_MIN_S, DoorLock, install_signal_handlers
from edge.exc import DoorError
from edge.selftest.runner import Result
from edge.selftest.service import STOP_HINT

CHECKS = ("sensor", "exit_button", "relay", "feedback", "locked")
POLL_S = 0.005
QUIET_S = 0.1  # the feedback input is watched this long before the pulse: it must hold still
RELOCK_GRACE_S = 1.0  # the pulse timer may be this late before it counts as broken
SETTLE_S = 0.5  # the feedback may take this long to return after the relay drops out
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def read_input(pin: str, pin_factory):
    """True when the contact to GND is closed (pull-up input reads low)."""
    try:
        device = DigitalInputDevice(pin, pull_up=True, pin_factory=pin_factory)
    except GPIOZeroError as error:
        raise DoorError(f"cannot read input pin {pin!r}: {error}") from error
    try:
        return bool(device.is_active)
    finally:
        device.close()


def sensor_check(pin: str | None, pin_factory) -> Result:
    if not pin:
        return Result.skipped("no door sensor configured ([door] sensor_pin)")
    if read_input(pin, pin_factory):
        return Result.passed(f"door sensor on {pin}: contact closed, the door is shut")
    return Result.passed(f"door sensor on {pin}: contact open, the door is OPEN; if it is shut, check the sensor's "
                         "wire, its pull-up and the magnet's alignment")


def exit_button_check(pin: str | None, pin_factory) -> Result:
    if not pin:
        return Result.skipped("no exit button configured ([door] exit_pin)")
    if read_input(pin, pin_factory):
        return Result.failed(f"exit button on {pin} reads PRESSED: if nobody is pressing it, the button is stuck "
                             "or its wire is shorted to GND, and the daemon would keep unlocking the door")
    return Result.passed(f"exit button on {pin}: released")


class RelayTest:
    """One relay pulse with the feedback input watched, and the relock."""

    def __init__(self, settings, pin_factory):
        self.settings = settings
        self.pin_factory = pin_factory
        self.door: DoorLock | None = None
        self.feedback_input = None
        self.saved_handlers: dict = {}
        self.pulsed = False
        self.before = self.during = self.after = None
        self.lock_result: Result | None = None

    def pulse(self) -> Result:
        pin = self.settings.door_pin
        self.door = DoorLock(pin, active_high=self.settings.active_high, pulse_s=PULSE_MIN_S,
                             pin_factory=self.pin_factory)
        self._guard_signals()
        if self.settings.feedback_pin:
            self._open_feedback(self.settings.feedback_pin)
            self.before = self._quiet_level()
        started = time.monotonic()
        self.door.unlock_pulse()
        self.pulsed = True
        if self.door.is_locked:
            return Result.failed(f"the relay output on {pin} did not switch on: the GPIO driver refused it")
        levels = self._watch_pulse(deadline=started + PULSE_MIN_S + RELOCK_GRACE_S)
        lasted = time.monotonic() - started
        self.during = levels
        if not self.door.is_locked:
            self.door.lock()
            return Result.failed(f"the relay on {pin} was still on {lasted:.1f} s into a {PULSE_MIN_S:g} s pulse; "
                                 "it was switched off by hand now. The pulse timer is broken: do not put the daemon "
                                 "back in service; report this")
        if self.feedback_input is not None:
            self.after = self._settled_level(self.before)
        hardware = " (mock pins: nothing was switched)" if isinstance(self.door.relay_pin, MockPin) else \
            "; you should have heard the lock click"
        return Result.passed(f"relay on {pin} energised for {PULSE_MIN_S:g} s and switched off by its timer{hardware}")

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
                relay = self.door.relay_pin
                level = relay.state if relay is not None else None
                locked_level = not self.settings.active_high
                if self.door.is_locked and (level is None or bool(level) == locked_level):
                    state = "low" if not locked_level else "high"
                    self.lock_result = Result.passed(f"door locked: relay de-energised ({self.settings.door_pin} "
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
    pin = context.settings.door_pin
    answer = context.confirm(f"Pulse the door relay on {pin} for {PULSE_MIN_S:g} s? The door unlocks briefly.")
    if answer is None:
        return Result.skipped("no terminal to confirm the relay pulse: rerun with --yes to pulse the relay")
    if not answer:
        return Result.skipped("relay pulse declined")
    return None


def run(context, step) -> None:
    settings = context.settings
    if not settings.door_pin:
        step("relay", lambda: Result.failed("no relay pin configured: set [door] pin in the config file or pass --pin"))
        for name in ("feedback", "locked"):
            step.skip(name, "no relay pin configured")
        return
    holder = context.daemon_holder() if not uses_mock_pins(context.pin_factory) else None
    if holder:
        for name in CHECKS:
            step.skip(name, f"{holder} and holds the GPIO; {STOP_HINT}")
        return
    step("sensor", lambda: sensor_check(settings.sensor_pin, context.pin_factory))
    step("exit_button", lambda: exit_button_check(settings.exit_pin, context.pin_factory))
    refused = confirmation(context)
    if refused is not None:
        step.record("relay", refused.status, refused.detail, 0.0)
        step.skip("feedback", "the relay was not pulsed")
        step.skip("locked", "the relay was never driven; it stays de-energised (locked)")
        return
    test = RelayTest(settings, context.pin_factory)
    try:
        step("relay", test.pulse)
        step("feedback", test.feedback)
    finally:
        test.close()
    step("locked", lambda: test.lock_result)
