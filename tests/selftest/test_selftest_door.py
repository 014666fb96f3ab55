"""Door checks on gpiozero MockFactory pins, in process so pins can be wired to each other.

The relay pin's recorded states are the evidence: it went on once for the pulse
and ended at the locked level, whatever went wrong in between."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockConnectedPin, MockFactory, MockPin

from edge.daemon import config
from edge.selftest.context import Context
from edge.selftest.runner import run_selftest
from edge.selftest.service import daemon_processes
from edge.selftest.settings import Settings

RELAY, SENSOR, EXIT, FEEDBACK = "BOARD11", "BOARD13", "BOARD15", "BOARD16"


class WeldedContact(MockConnectedPin):
    """A relay whose contact closes on the first pulse and never opens again."""

    def _change_state(self, value):
        if value and self.input_pin:
            self.input_pin.drive_high()
        return MockPin._change_state(self, value)


class ShortedToGround(MockPin):
    """An input whose wire touches GND: the pull-up cannot raise it (pressed button, closed contact)."""

    def drive_high(self):
        self.drive_low()


class ReadFailsWhileRelayOn(MockPin):
    """An input whose reads fail while the relay is energised (a GPIO driver error mid-pulse)."""

    def _get_state(self):
        if self.factory.pin(RELAY).state:
            raise OSError("GPIO line read failed")
        return super()._get_state()


@pytest.fixture
def factory():
    factory = MockFactory()
    yield factory
    factory.reset()


def door_settings(feedback_pin=None, **door) -> Settings:
    """Self-test settings over the daemon's, with these [door] values (the rest built-in defaults)."""
    daemon = config.resolve({f"door.{key}": value for key, value in door.items()}, {})
    return Settings(daemon=daemon, feedback_pin=feedback_pin)


def door_run(factory, tmp_path, confirm=None, yes=True, **settings):
    values = {"pin": RELAY, "sensor_pin": SENSOR, "exit_pin": EXIT, **settings}
    context = Context(settings=door_settings(**values), yes=yes, pin_factory=factory,
                      confirm=confirm or (lambda question: None), proc_root=tmp_path, systemd_runtime=tmp_path / "none")
    report = run_selftest(context, ("door",))
    return report, {check.name: check for check in report.checks}


def levels(pin):
    return [state.state for state in pin.states]


def test_feedback_that_follows_the_relay_passes(factory, tmp_path):
    feedback = factory.pin(FEEDBACK)
    relay = factory.pin(RELAY, pin_class=MockConnectedPin, input_pin=feedback)
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    report, checks = door_run(factory, tmp_path, feedback_pin=FEEDBACK)
    assert report.ok, [check.line() for check in report.checks]
    assert checks["door.feedback"].detail == f"feedback on {FEEDBACK} followed the pulse (left low, came back)"
    assert checks["door.relay"].detail.startswith(f"relay on {RELAY} energised for 1 s and switched off by its timer")
    assert checks["door.locked"].detail == f"door locked: relay de-energised ({RELAY} low), pins released"
    assert levels(relay) == [False, True, False]
    assert levels(feedback) == [False, True, False]
    assert relay.states[2].timestamp >= 0.9  # seconds the relay was on: the whole 1 s pulse
    assert {signum: signal.getsignal(signum) for signum in handlers} == handlers


def test_feedback_that_stays_on_after_the_pulse_fails_as_a_stuck_contact(factory, tmp_path):
    feedback = factory.pin(FEEDBACK)
    relay = factory.pin(RELAY, pin_class=WeldedContact, input_pin=feedback)
    report, checks = door_run(factory, tmp_path, feedback_pin=FEEDBACK)
    assert [check.name for check in report.checks if check.status == "FAIL"] == ["door.feedback"]
    assert "did not return to low after the relay switched off: the relay contact may be stuck closed" \
        in checks["door.feedback"].detail
    assert levels(relay) == [False, True, False] and checks["door.locked"].status == "PASS"


def test_a_fault_during_the_pulse_still_ends_locked(factory, tmp_path):
    relay = factory.pin(RELAY)
    factory.pin(FEEDBACK, pin_class=ReadFailsWhileRelayOn)
    report, checks = door_run(factory, tmp_path, feedback_pin=FEEDBACK)
    assert checks["door.relay"].status == "FAIL"
    assert checks["door.relay"].detail == "unexpected OSError: GPIO line read failed"
    assert checks["door.feedback"].status == "SKIP"
    assert checks["door.locked"].status == "PASS"
    assert levels(relay) == [False, True, False] and relay.state is False


def test_active_low_relay_ends_high(factory, tmp_path):
    relay = factory.pin(RELAY)
    report, checks = door_run(factory, tmp_path, active_high=False)
    assert report.ok
    assert checks["door.locked"].detail == f"door locked: relay de-energised ({RELAY} high), pins released"
    assert levels(relay) == [False, True, False, True]  # input, locked (high), pulse (low), locked


def test_declined_pulse_never_energises_the_relay(factory, tmp_path):
    relay = factory.pin(RELAY)
    asked = []
    report, checks = door_run(factory, tmp_path, yes=False, confirm=lambda question: asked.append(question) or False)
    assert asked == [f"Pulse the door relay on {RELAY} for 1 s? The door unlocks briefly."]
    assert checks["door.relay"].status == "SKIP" and checks["door.relay"].detail == "relay pulse declined"
    assert report.ok and True not in levels(relay)


def test_sensor_and_exit_button_states_are_read(factory, tmp_path):
    factory.pin(SENSOR, pin_class=ShortedToGround)  # door contact closed: the door is shut
    factory.pin(EXIT, pin_class=ShortedToGround)  # exit button held down (or its wire shorted)
    report, checks = door_run(factory, tmp_path)
    assert checks["door.sensor"].detail == f"door sensor on {SENSOR}: contact closed, the door is shut"
    assert checks["door.exit_button"].status == "FAIL"
    assert checks["door.exit_button"].detail.startswith(f"exit button on {EXIT} reads PRESSED: if nobody is pressing it")
    assert checks["door.locked"].status == "PASS"


def test_missing_pin_factory_fails_with_what_to_set(tmp_path, monkeypatch):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    monkeypatch.setattr(Device, "pin_factory", None)
    context = Context(settings=door_settings(pin=RELAY), yes=True, proc_root=tmp_path,
                      systemd_runtime=tmp_path / "none")
    checks = {check.name: check for check in run_selftest(context, ("door",)).checks}
    assert checks["door.relay"].status == "FAIL"
    assert "GPIOZERO_PIN_FACTORY=jetson" in checks["door.relay"].detail
    assert checks["door.locked"].status == "PASS"


@pytest.fixture
def fake_daemon(tmp_path):
    """A real process whose command line is `.../edge-verify run --config ...`, as the service's is."""
    script = tmp_path / "bin" / "edge-verify"
    script.parent.mkdir()
    script.write_text("import time\ntime.sleep(60)\n")
    process = subprocess.Popen([sys.executable, str(script), "run", "--config", "/etc/edge-verify/config.toml"])
    deadline = time.monotonic() + 10
    while process.pid not in daemon_processes() and time.monotonic() < deadline:
        time.sleep(0.01)  # until the child has exec'd: before that it shows pytest's command line
    yield process.pid
    process.kill()
    process.wait()


def test_a_running_daemon_keeps_the_selftest_off_the_real_gpio(fake_daemon, tmp_path, monkeypatch):
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    context = Context(settings=door_settings(pin=RELAY), yes=True, systemd_runtime=tmp_path / "none")
    checks = run_selftest(context, ("door",)).checks
    assert [check.status for check in checks] == ["SKIP"] * 5
    assert checks[0].detail.startswith("an `edge-verify run` daemon is running (pid ")
    assert str(fake_daemon) in checks[0].detail and "sudo systemctl stop edge-verify" in checks[0].detail


def test_mock_pins_are_not_held_by_a_running_daemon(fake_daemon, factory, tmp_path):
    context = Context(settings=door_settings(pin=RELAY), yes=True, pin_factory=factory,
                      systemd_runtime=tmp_path / "none")
    checks = {check.name: check for check in run_selftest(context, ("door",)).checks}
    assert checks["door.relay"].status == "PASS"


def test_without_a_feedback_input_the_pad_is_not_claimed_to_be_confirmed(factory, tmp_path):
    """Reading the relay pin back reads the output register, not the pad (JetPack 6 pinmux)."""
    factory.pin(RELAY)
    report, checks = door_run(factory, tmp_path)
    assert checks["door.feedback"].status == "SKIP"
    assert "output register, not the pad" in checks["door.feedback"].detail
    assert "--feedback-pin" in checks["door.feedback"].detail
