"""gpiozero devices built on the Jetson pin factory, over a stand-in `gpiod` (libgpiod 2 names).

The factory is driven the way the door uses it: an OutputDevice for the relay
(a pulse), a DigitalInputDevice for the door sensor (an edge), a Button for the
exit button (press, release, a short tap), and DoorLock on top of them. The
stand-in (tests/gpiod_standin.py) answers like libgpiod's Python bindings and
records what the lines did, so these tests see the relay's levels, every line
request and its settings, and any two threads inside one request at once.
"""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from gpiozero import Button, DigitalInputDevice, OutputDevice

import gpiod_standin
from edge.daemon.config import BY_NAME
from edge.door import DoorLock
from edge.door import jetson
from edge.door.jetson_pins import board_for, lines
from edge.exc import DoorError

MAIN, AON = "/dev/gpiochip0", "/dev/gpiochip1"
CHIPS = {"tegra234-gpio": MAIN, "tegra234-gpio-aon": AON}
DEFAULT_PIN = BY_NAME["door.pin"].default
WAIT_S = 2.0


def line_of(pin: str, board: str = "orin-nx"):
    number = int(pin.removeprefix("BOARD"))
    line = lines(board_for(board))[number]
    return (MAIN if line.chip_label.endswith("-gpio") else AON), line.offset


@pytest.fixture
def world(monkeypatch):
    world = gpiod_standin.World({MAIN: ("tegra234-gpio", 164), AON: ("tegra234-gpio-aon", 32)})
    gpiod_standin.install(monkeypatch, world)
    return world


@pytest.fixture
def factory(world):
    factory = jetson.JetsonFactory(model="orin-nx", chips=CHIPS)
    yield factory
    factory.close()


def wait_for(condition, timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


# ------------------------------------------------------------------ the relay


@pytest.mark.parametrize("pin", sorted({DEFAULT_PIN, "BOARD11"}))
def test_output_device_pulses_the_relay_line(world, factory, pin):
    path, offset = line_of(pin)
    relay = OutputDevice(pin, active_high=True, initial_value=False, pin_factory=factory)
    state = world.line(path, offset)
    first = state.request._settings[offset]
    assert first.direction == gpiod_standin.Direction.OUTPUT
    assert first.output_value == gpiod_standin.Value.INACTIVE  # requested already low: no glitch to "on"
    relay.on()
    assert state.output is True and relay.is_active
    relay.off()
    assert state.output is False and not relay.is_active
    relay.close()
    assert state.history == [("out", False), ("out", True), ("out", False), ("released", False)]
    assert state.request is None


def test_an_active_low_relay_is_requested_high(world, factory):
    path, offset = line_of(DEFAULT_PIN)
    with OutputDevice(DEFAULT_PIN, active_high=False, initial_value=False, pin_factory=factory) as relay:
        relay.on()
        relay.off()
    assert world.line(path, offset).history == [("out", True), ("out", False), ("out", True), ("released", True)]


def test_door_lock_pulses_and_relocks_on_the_jetson_factory(world, factory):
    path, offset = line_of(DEFAULT_PIN)
    door = DoorLock(DEFAULT_PIN, pulse_s=1.0, pin_factory=factory, sensor_pin="BOARD13", exit_pin="BOARD15")
    try:
        door.unlock_pulse()
        assert world.line(path, offset).output is True and not door.is_locked
        door.lock()
        assert world.line(path, offset).output is False and door.is_locked
    finally:
        door.close()
    assert world.line(path, offset).history[-1] == ("released", False)
    assert all(world.line(*line_of(pin)).request is None for pin in ("BOARD13", "BOARD15"))


# ------------------------------------------------------------------ inputs and edges


def test_digital_input_device_reads_the_pad_and_reports_an_edge(world, factory):
    path, offset = line_of("BOARD13")
    world.drive(path, offset, True)
    sensor = DigitalInputDevice("BOARD13", pull_up=True, pin_factory=factory)
    try:
        settings = world.line(path, offset).request._settings[offset]
        assert settings.direction == gpiod_standin.Direction.INPUT
        assert settings.bias == gpiod_standin.Bias.PULL_UP
        assert settings.edge_detection == gpiod_standin.Edge.BOTH
        assert not sensor.is_active  # pulled up, contact open: high = inactive
        closed = threading.Event()
        sensor.when_activated = closed.set
        world.drive(path, offset, False)  # the contact closes: an edge
        assert closed.wait(WAIT_S), "the falling edge never reached gpiozero"
        assert sensor.is_active
    finally:
        sensor.close()
    assert world.line(path, offset).request is None


def test_button_press_and_release_reach_gpiozero(world, factory):
    path, offset = line_of("BOARD15")
    world.drive(path, offset, True)  # released: the pull-up holds it high
    pressed, released = threading.Event(), threading.Event()
    button = Button("BOARD15", pull_up=True, bounce_time=0.05, pin_factory=factory)
    try:
        button.when_pressed = pressed.set
        button.when_released = released.set
        world.drive(path, offset, False)
        assert pressed.wait(WAIT_S) and button.is_pressed
        world.drive(path, offset, True)
        assert released.wait(WAIT_S) and not button.is_pressed
    finally:
        button.close()


def test_a_callback_that_raises_does_not_stop_the_lines_later_edges(world, factory, caplog):
    """The watcher thread outlives a callback that fails (a handler's bug, or a device that gpiozero is closing:
    it clears its hold thread before its pin): otherwise every later edge of the door sensor or the exit
    button is lost without a word."""
    path, offset = line_of("BOARD15")
    world.drive(path, offset, True)
    presses = []

    def press():
        presses.append(time.monotonic())
        if len(presses) == 1:
            raise RuntimeError("a handler's bug")

    button = Button("BOARD15", pull_up=True, bounce_time=0.05, pin_factory=factory)
    try:
        button.when_pressed = press
        start = time.monotonic_ns()
        world.drive(path, offset, False, timestamp_ns=start)
        assert wait_for(lambda: len(presses) == 1)
        world.drive(path, offset, True, timestamp_ns=start + 200_000_000)
        world.drive(path, offset, False, timestamp_ns=start + 400_000_000)
        assert wait_for(lambda: len(presses) == 2), "the watcher died with the first callback"
    finally:
        button.close()
    assert any("a handler's bug" in record.getMessage() or "a handler's bug" in (record.exc_text or "")
               for record in caplog.records)


def test_button_debounce_is_the_kernels(world, factory):
    """bounce_time goes to the kernel as debounce_period, so the kernel filters bounces."""
    path, offset = line_of("BOARD15")
    world.drive(path, offset, True)
    button = Button("BOARD15", pull_up=True, bounce_time=0.05, pin_factory=factory)
    try:
        settings = world.line(path, offset).request._settings[offset]
        assert settings.debounce_period == timedelta(seconds=0.05)
    finally:
        button.close()


def test_a_short_tap_does_not_swallow_the_next_press(world, factory):
    """A 20 ms tap, then a real press half a second later: two presses.

    The kernel reports each settled edge; dropping the tap's release in user
    space left gpiozero believing the button was still held, so it ignored the
    next press."""
    path, offset = line_of("BOARD15")
    world.drive(path, offset, True)
    presses = []
    button = Button("BOARD15", pull_up=True, bounce_time=0.05, pin_factory=factory)
    try:
        button.when_pressed = lambda: presses.append(time.monotonic())
        start = time.monotonic_ns()
        world.drive(path, offset, False, timestamp_ns=start)
        world.drive(path, offset, True, timestamp_ns=start + 20_000_000)
        world.drive(path, offset, False, timestamp_ns=start + 500_000_000)
        assert wait_for(lambda: len(presses) == 2), f"{len(presses)} press(es) seen, 2 expected"
        world.drive(path, offset, True, timestamp_ns=start + 700_000_000)
        assert wait_for(lambda: not button.is_pressed)
    finally:
        button.close()


def test_the_edge_watcher_never_shares_a_request_with_another_thread(world, factory):
    """libgpiod's request objects are not thread-safe: one thread at a time."""
    path, offset = line_of("BOARD15")
    world.drive(path, offset, True)
    button = Button("BOARD15", pull_up=True, bounce_time=0.05, pin_factory=factory)
    try:
        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline:
            button.is_pressed  # noqa: B018  (reads the line from this thread while the watcher waits)
            time.sleep(0.002)
        world.drive(path, offset, False)
        assert wait_for(lambda: button.is_pressed)
    finally:
        button.close()
    assert world.overlaps == []


# ------------------------------------------------------------------ errors and clean-up


def test_a_busy_line_is_a_door_error_naming_the_line(world, factory):
    path, offset = line_of(DEFAULT_PIN)
    holder = world.module().request_lines(path, config={offset: gpiod_standin.LineSettings()}, consumer="other")
    try:
        with pytest.raises(DoorError, match="another program holds this line"):
            OutputDevice(DEFAULT_PIN, pin_factory=factory)
    finally:
        holder.release()
    with OutputDevice(DEFAULT_PIN, pin_factory=factory):  # the reservation was not left behind
        pass


@pytest.mark.parametrize("what", ["bias", "debounce"])
def test_features_the_driver_lacks_are_door_errors(world, factory, what):
    """gpiod raises NotImplementedError (EOPNOTSUPP) and ValueError (EINVAL), not only OSError."""
    setattr(world, f"{what}_supported", False)
    with pytest.raises(DoorError, match="not supported"):
        Button("BOARD15", pull_up=True, bounce_time=0.05, pin_factory=factory)
    path, offset = line_of("BOARD15")
    assert world.line(path, offset).request is None  # the half-built button let go of its line
    with DigitalInputDevice("BOARD15", pull_up=None, active_state=False, pin_factory=factory):
        pass  # and its reservation


def test_a_door_lock_that_fails_half_way_closes_what_it_built(world, factory):
    relay_path, relay_offset = line_of(DEFAULT_PIN)
    sensor_path, sensor_offset = line_of("BOARD13")
    holder = world.module().request_lines(sensor_path, config={sensor_offset: gpiod_standin.LineSettings()})
    try:
        # Held: the traceback keeps the half-built DoorLock alive, so only an explicit close frees the relay.
        with pytest.raises(DoorError, match="BOARD13") as caught:
            DoorLock(DEFAULT_PIN, pin_factory=factory, sensor_pin="BOARD13")
        relay = world.line(relay_path, relay_offset)
        assert relay.request is None and relay.history[-1] == ("released", False)
        with OutputDevice(DEFAULT_PIN, pin_factory=factory):
            pass
        del caught
    finally:
        holder.release()


def test_chips_are_found_by_label(world, monkeypatch, tmp_path):
    gpiod = world.module()
    for name in ("gpiochip0", "gpiochip1", "gpiochip2"):
        (tmp_path / name).touch()
    world.chips = {str(tmp_path / "gpiochip0"): ("tegra234-gpio", 164),
                   str(tmp_path / "gpiochip1"): ("tegra234-gpio-aon", 32)}
    assert jetson.find_chips(gpiod, str(tmp_path / "gpiochip*")) == {
        "tegra234-gpio": str(tmp_path / "gpiochip0"), "tegra234-gpio-aon": str(tmp_path / "gpiochip1")}
    world.denied = set(world.chips)
    with pytest.raises(DoorError, match="gpio group"):
        jetson.find_chips(gpiod, str(tmp_path / "gpiochip*"))


def test_closing_the_factory_releases_every_line(world):
    factory = jetson.JetsonFactory(model="orin-nx", chips=CHIPS)
    relay = OutputDevice(DEFAULT_PIN, pin_factory=factory)
    sensor = DigitalInputDevice("BOARD13", pull_up=True, pin_factory=factory)
    sensor.when_activated = lambda: None
    factory.close()
    assert all(request._released for request in world.requests)
    del relay, sensor
