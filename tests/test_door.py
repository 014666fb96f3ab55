"""Door lock on gpiozero MockFactory pins: the recorded pin states are the evidence."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

import edge.door.lock as lock_module
from edge.daemon import config
from edge.door import KINDS, Door, DoorLock, install_signal_handlers, open_door
from edge.exc import ConfigError, DoorError

ROOT = Path(__file__).resolve().parent.parent
RELAY, SENSOR, EXIT = "BOARD11", "BOARD13", "BOARD15"


@pytest.fixture
def factory():
    factory = MockFactory()
    yield factory
    factory.reset()


def levels(pin):
    return [state.state for state in pin.states]


class ManualTimer:
    """Stands in for threading.Timer so pulse tests need no sleeping: the test fires it."""

    def __init__(self, seconds, callback):
        self.seconds, self.callback, self.cancelled = seconds, callback, False

    def cancel(self):
        self.cancelled = True

    def fire(self):
        self.callback()


@pytest.fixture
def timers(monkeypatch):
    started = []

    def start(seconds, callback):
        started.append(ManualTimer(seconds, callback))
        return started[-1]

    monkeypatch.setattr(lock_module, "_start_timer", start)
    return started


@pytest.mark.parametrize("active_high,locked_level", [(True, False), (False, True)])
def test_fresh_lock_is_locked_with_relay_de_energised(factory, active_high, locked_level):
    # This is also the state after a kill -9 and a restart: the new process starts here.
    with DoorLock(RELAY, active_high=active_high, pin_factory=factory) as door:
        pin = factory.pin(RELAY)
        assert door.is_locked and pin.function == "output" and pin.state == locked_level
        # The first entry is the undriven input the mock pin starts as; after that the
        # output only ever held the locked level.
        assert levels(pin) == ([False] if active_high else [False, True])


def test_pulse_opens_then_the_timer_relocks(factory, timers):
    with DoorLock(RELAY, pulse_s=4.0, pin_factory=factory) as door:
        pin = factory.pin(RELAY)
        door.unlock_pulse()
        assert not door.is_locked and pin.state is True
        assert len(timers) == 1 and timers[0].seconds == 4.0
        timers[0].fire()
        assert door.is_locked and levels(pin) == [False, True, False]


def test_active_low_inverts_the_pin_level(factory, timers):
    with DoorLock(RELAY, active_high=False, pin_factory=factory) as door:
        pin = factory.pin(RELAY)
        door.unlock_pulse()
        assert pin.state is False and not door.is_locked
        timers[0].fire()
        assert pin.state is True and door.is_locked
    assert levels(pin) == [False, True, False, True]


def test_a_real_one_second_pulse(factory):
    with DoorLock(RELAY, pulse_s=1.0, pin_factory=factory) as door:
        pin = factory.pin(RELAY)
        door.unlock_pulse()
        deadline = time.monotonic() + 5
        while not door.is_locked and time.monotonic() < deadline:
            time.sleep(0.02)
        assert door.is_locked and levels(pin) == [False, True, False]
        assert pin.states[2].timestamp >= 0.99  # open for the whole pulse, not less


def test_second_pulse_restarts_the_time(factory, timers):
    with DoorLock(RELAY, pin_factory=factory) as door:
        door.unlock_pulse()
        door.unlock_pulse()
        assert timers[0].cancelled and not timers[1].cancelled
        timers[0].fire()  # a stale timer that fired anyway must not cut the new pulse short
        assert not door.is_locked
        timers[1].fire()
        assert door.is_locked and levels(factory.pin(RELAY)) == [False, True, False]


def test_lock_now_ends_the_pulse(factory, timers):
    with DoorLock(RELAY, pin_factory=factory) as door:
        door.unlock_pulse()
        door.lock()
        assert door.is_locked and timers[0].cancelled
        timers[0].fire()
        assert levels(factory.pin(RELAY)) == [False, True, False]


@pytest.mark.parametrize("bad", [0, 0.99, 10.01, 60, -3, math.nan, math.inf, "3", True, None])
def test_pulse_length_must_be_1_to_10_seconds(factory, bad):
    with pytest.raises(ConfigError, match="pulse_s"):
        DoorLock(RELAY, pulse_s=bad, pin_factory=factory)
    with DoorLock(RELAY, pulse_s=10, pin_factory=factory) as door:  # the pin was never claimed
        assert door.pulse_s == 10.0


def test_close_is_idempotent_and_leaves_it_locked(factory, timers):
    door = DoorLock(RELAY, pin_factory=factory)
    pin = factory.pin(RELAY)
    door.unlock_pulse()
    door.close()
    door.close()
    assert door.is_locked and pin.state is False and timers[0].cancelled
    assert pin.function == "input"  # released
    with pytest.raises(DoorError, match="closed"):
        door.unlock_pulse()
    door.lock()  # harmless after close
    with DoorLock(RELAY, pin_factory=factory) as again:  # the reservation was released
        assert again.is_locked


def test_an_exception_inside_the_context_leaves_it_locked(factory, timers):
    with pytest.raises(RuntimeError):
        with DoorLock(RELAY, pin_factory=factory) as door:
            door.unlock_pulse()
            raise RuntimeError("pipeline crashed mid-pulse")
    assert levels(factory.pin(RELAY)) == [False, True, False]


def test_signal_handler_locks_then_exits(factory, timers):
    previous = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    try:
        with DoorLock(RELAY, pin_factory=factory) as door:
            handler = install_signal_handlers(door, signals=(signal.SIGTERM, signal.SIGINT, signal.SIGUSR1))
            assert signal.getsignal(signal.SIGTERM) is handler
            door.unlock_pulse()
            with pytest.raises(SystemExit) as stopped:
                handler(signal.SIGTERM, None)
            assert stopped.value.code == 0 and door.is_locked
            door.unlock_pulse()
            with pytest.raises(SystemExit) as interrupted:
                handler(signal.SIGINT, None)
            assert interrupted.value.code == 130 and door.is_locked
            door.unlock_pulse()
            with pytest.raises(SystemExit):
                os.kill(os.getpid(), signal.SIGUSR1)  # a real signal, delivered to this thread
                time.sleep(1)  # the handler runs at the next bytecode; this is never reached
            assert door.is_locked
        assert levels(factory.pin(RELAY)) == [False, True, False, True, False, True, False]
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


CHILD = textwrap.dedent(
    """
    import atexit, signal, sys, time
    from gpiozero.pins.mock import MockFactory
    from edge.door import DoorLock, install_signal_handlers

    factory = MockFactory()
    # Registered first, so it runs last: after the DoorLock's own atexit hook.
    atexit.register(lambda: print("final", [s.state for s in factory.pin("BOARD11").states], flush=True))
    door = DoorLock("BOARD11", pulse_s=10, pin_factory=factory)
    if sys.argv[1] == "signal":
        install_signal_handlers(door)
    door.unlock_pulse()
    print("unlocked", flush=True)
    if sys.argv[1] == "signal":
        time.sleep(30)
    """
)


@pytest.mark.parametrize("mode", ["exit", "signal"])
def test_a_process_that_exits_or_gets_sigterm_mid_pulse_ends_locked(mode):
    """The mock pins live in the child, so the child reports their history as its last act."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout.readline().strip() == "unlocked"
        if mode == "signal":
            child.send_signal(signal.SIGTERM)
        # Keep reading through the same buffered file: communicate() would skip what
        # readline() has already buffered.
        rest = child.stdout.read()
        child.wait(timeout=20)
    finally:
        child.kill()
    assert child.returncode == 0, child.stderr.read()
    assert rest.strip() == "final [False, True, False]"


def test_exit_button_starts_a_pulse(factory, timers):
    requests = []
    with DoorLock(RELAY, pin_factory=factory, exit_pin=EXIT) as door:
        door.on_exit_request = lambda: requests.append(door.is_locked)
        button = factory.pin(EXIT)
        assert button.pull == "up"
        button.drive_low()  # pressed: the contact pulls it to GND
        assert not door.is_locked and requests == [False]
        timers[-1].fire()
        assert door.is_locked


def test_door_sensor_reports_open_and_shut(factory):
    with DoorLock(RELAY, pin_factory=factory, sensor_pin=SENSOR) as door:
        sensor = factory.pin(SENSOR)
        assert door.door_closed is False  # pulled up, contact open: the door is open
        sensor.drive_low()
        assert door.door_closed is True
    assert door.door_closed is None
    with DoorLock(RELAY, pin_factory=factory) as plain:
        assert plain.door_closed is None


def test_bad_pins_are_door_errors(factory):
    with pytest.raises(DoorError, match="BOARD1"):
        DoorLock("BOARD1", pin_factory=factory)  # 3V3, not a GPIO
    with DoorLock(RELAY, pin_factory=factory):
        with pytest.raises(DoorError, match="in use"):
            DoorLock(RELAY, pin_factory=factory)
    with pytest.raises(DoorError):
        DoorLock(RELAY, pin_factory=factory, exit_pin=RELAY)
    with DoorLock(RELAY, pin_factory=factory) as door:  # the failed attempt released its relay
        assert door.is_locked


def test_no_pin_factory_says_how_to_choose_one(monkeypatch):
    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    with pytest.raises(DoorError, match="GPIOZERO_PIN_FACTORY=jetson"):
        DoorLock(RELAY)


# --- [door] kind: open_door picks the actuator -----------------------------------------------------


def test_open_door_opens_the_configured_kind_locked_on_the_configured_pins(factory, timers):
    settings = config.resolve({"door.kind": "relay", "door.pin": RELAY, "door.active_high": False,
                               "door.pulse_s": 4.0, "door.sensor_pin": SENSOR, "door.exit_pin": EXIT}, {})
    with open_door(settings, pin_factory=factory) as door:
        assert isinstance(door, Door) and isinstance(door, DoorLock)
        assert door.describe() == f"relay on {RELAY}" and door.simulated
        relay = factory.pin(RELAY)
        assert door.is_locked and relay.state is True  # active low: locked is HIGH
        assert door.door_closed is False and door.exit_pressed is False
        door.unlock_pulse()
        assert timers[-1].seconds == 4.0 and relay.state is False
        timers[-1].fire()
        assert door.is_locked
    with open_door(settings, pin_factory=factory, pulse_s=1.0) as door:  # the selftest's shortest pulse
        door.unlock_pulse()
        assert timers[-1].seconds == 1.0


def test_an_unknown_door_kind_is_refused_naming_the_known_ones(factory):
    settings = config.resolve({}, {})
    settings["door.kind"] = "wiegand"  # past the config check, as a caller building settings by hand could
    with pytest.raises(ConfigError, match="unknown door kind 'wiegand'; known kinds: relay"):
        open_door(settings, pin_factory=factory)
    with pytest.raises(ConfigError, match=r"\[door\] kind must be one of relay, got 'http'"):
        config.resolve({"door.kind": "http"}, {})
    assert list(KINDS) == ["relay"]
