"""`edge-verify door lock`: the pin the daemon drives goes to LOCKED, after a crash too.

Run on the Jetson pin factory over the stand-in `gpiod`, whose lines keep their
last level when released (what JetPack 5 and 6.2.2 do): exactly the case where
a daemon killed mid-pulse leaves the relay energised until something relocks it.
"""
from __future__ import annotations

import pytest
from gpiozero import Device, OutputDevice

import gpiod_standin
from edge.cli import main
from edge.daemon.config import BY_NAME
from edge.door import jetson
from edge.door.jetson_pins import board_for, lines
from edge.door.relock import LockTarget, drive_locked, lock_target
from edge.exc import ConfigError, DoorError

MAIN, AON = "/dev/gpiochip0", "/dev/gpiochip1"
DEFAULT_PIN = BY_NAME["door.pin"].default


@pytest.fixture
def world(monkeypatch):
    world = gpiod_standin.World({MAIN: ("tegra234-gpio", 164), AON: ("tegra234-gpio-aon", 32)})
    gpiod_standin.install(monkeypatch, world)
    return world


@pytest.fixture
def factory(world, monkeypatch):
    factory = jetson.JetsonFactory(model="orin-nx", chips={"tegra234-gpio": MAIN, "tegra234-gpio-aon": AON})
    monkeypatch.setattr(Device, "pin_factory", factory)  # what GPIOZERO_PIN_FACTORY=jetson gives the CLI
    yield factory
    factory.close()


def relay_line(world, pin=DEFAULT_PIN):
    line = lines(board_for("orin-nx"))[int(pin.removeprefix("BOARD"))]
    return world.line(MAIN if line.chip_label == "tegra234-gpio" else AON, line.offset)


def crash_mid_pulse(factory, pin=DEFAULT_PIN, active_high=True):
    """What a kill -9 during an unlock pulse leaves: the line released at the unlocked level."""
    relay = OutputDevice(pin, active_high=active_high, initial_value=False, pin_factory=factory)
    relay.on()
    relay.pin._request.release()  # the kernel releases the process's line request; no gpiozero close() runs
    relay.pin._request = None
    factory.release_all(relay)


@pytest.mark.parametrize("active_high", [True, False])
def test_door_lock_relocks_a_relay_left_energised_by_a_crash(world, factory, active_high, capsys):
    crash_mid_pulse(factory, active_high=active_high)
    line = relay_line(world)
    assert line.output is active_high  # energised: the door is open
    flag = "--active-high" if active_high else "--active-low"
    assert main(["door", "lock", "--no-config", flag]) == 0
    assert line.output is (not active_high) and line.request is None
    assert line.history[-2:] == [("out", not active_high), ("released", not active_high)]
    assert f"relay pin {DEFAULT_PIN} driven {'low' if active_high else 'high'}" in capsys.readouterr().out


def test_door_lock_reads_only_the_door_section_of_the_daemons_config(world, factory, tmp_path):
    config = tmp_path / "config.toml"
    # A broken camera URI and a key this release does not know: the daemon would refuse this
    # file, but the door must still be locked from it.
    config.write_text('[source]\nuri = "ftp://nowhere"\n[door]\npin = "BOARD15"\nactive_high = false\n'
                      'kind = "relay"\n[future]\nsetting = 1\n')
    crash_mid_pulse(factory, pin="BOARD15", active_high=False)
    assert main(["door", "lock", "--config", str(config)]) == 0
    assert relay_line(world, "BOARD15").output is True  # active low: locked is high


def test_flags_win_over_the_file(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[door]\npin = "BOARD15"\nactive_high = false\n')
    assert lock_target(config, {}) == LockTarget("BOARD15", False, str(config))
    assert lock_target(config, {"door.pin": "BOARD16", "door.active_high": True}) == LockTarget("BOARD16", True, "flag")
    assert lock_target(None, {}) == LockTarget(DEFAULT_PIN, True, "built-in default")


@pytest.mark.parametrize("text, message", [
    ("[door\npin = 1", "not valid TOML"),
    ('[door]\npin = ""\n', "must name a pin"),
    ("[door]\nactive_high = \"yes\"\n", "active_high must be true or false"),
    ('[door]\nkind = "motor"\n', "no relay pin to lock"),
])
def test_a_config_the_pin_cannot_be_read_from_is_a_config_error(tmp_path, text, message):
    config = tmp_path / "config.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        lock_target(config, {})


def test_a_line_held_by_the_running_daemon_is_a_clear_failure(world, factory, capsys):
    daemon = OutputDevice(DEFAULT_PIN, initial_value=False, pin_factory=factory)
    other_process = jetson.JetsonFactory(model="orin-nx", chips={"tegra234-gpio": MAIN, "tegra234-gpio-aon": AON})
    try:
        assert main(["door", "lock", "--no-config"]) == 1  # same process: gpiozero refuses the reservation
        assert "cannot drive the relay pin" in capsys.readouterr().err
        with pytest.raises(DoorError, match="another program holds this line"):  # another process: EBUSY
            drive_locked(LockTarget(DEFAULT_PIN, True, "flag"), pin_factory=other_process)
    finally:
        other_process.close()
        daemon.close()
