"""System checks with the machine's probes replaced: a nearly full disk, a wrong clock, a hot
SoC (a /sys/class/thermal-shaped folder), systemd's answers; and the daemon finder."""
from __future__ import annotations

import subprocess
from datetime import datetime, timezone

import pytest

from edge.daemon import config
from edge.selftest import service
from edge.selftest.context import Context
from edge.selftest.runner import run_selftest
from edge.selftest.settings import Settings

MB = 1024 * 1024


def system_checks(tmp_path, **probes) -> dict:
    events = tmp_path / "logs" / "events.jsonl"  # the daemon logs next to its events file
    settings = probes.pop("settings", None) or Settings(daemon=config.resolve({"events.file": str(events)}, {}))
    probes.setdefault("thermal_root", tmp_path / "no-thermal")
    probes.setdefault("systemd_runtime", tmp_path / "no-systemd")
    probes.setdefault("command", lambda argv: None)
    report = run_selftest(Context(settings=settings, **probes), ("system",))
    return {check.name: check for check in report.checks}


def test_too_little_free_disk_fails(tmp_path):
    asked = []

    def nearly_full(path):
        asked.append(path)
        return 50 * MB

    checks = system_checks(tmp_path, free_bytes=nearly_full)
    detail = checks["system.disk"].detail
    assert checks["system.disk"].status == "FAIL"
    # The log folder does not exist yet: its nearest existing parent is measured.
    assert asked[0] == tmp_path
    assert detail.startswith(f"only 50 MB free for logs at {tmp_path} (minimum 200 MB): free space: shrink the journal")


def test_enough_free_disk_passes(tmp_path):
    checks = system_checks(tmp_path, free_bytes=lambda path: 5 * 1024 * MB)
    assert checks["system.disk"].status == "PASS"
    assert checks["system.disk"].detail.startswith(f"5.0 GB free for logs ({tmp_path / 'logs'})")


def test_a_clock_before_the_release_fails(tmp_path):
    checks = system_checks(tmp_path, now=lambda: datetime(2001, 1, 1, tzinfo=timezone.utc))
    assert checks["system.clock"].status == "FAIL"
    assert checks["system.clock"].detail.startswith("the clock says 2001-01-01 00:00 UTC, before ")
    assert system_checks(tmp_path)["system.clock"].status == "PASS"


def write_zone(root, index, name, millidegrees, trips=()):
    zone = root / f"thermal_zone{index}"
    zone.mkdir(parents=True)
    (zone / "type").write_text(name + "\n")
    (zone / "temp").write_text(f"{millidegrees}\n")
    for number, (kind, temp) in enumerate(trips):
        (zone / f"trip_point_{number}_type").write_text(kind + "\n")
        (zone / f"trip_point_{number}_temp").write_text(f"{temp}\n")


def write_cooling(root, index, name, state, top):
    device = root / f"cooling_device{index}"
    device.mkdir(parents=True)
    for item, value in (("type", name), ("cur_state", state), ("max_state", top)):
        (device / item).write_text(f"{value}\n")


@pytest.fixture
def jetson_thermal(tmp_path):
    """Zones and cooling devices as an Orin names them; PMIC-Die reads a fixed 100 C placeholder."""
    root = tmp_path / "thermal"
    write_zone(root, 0, "CPU-therm", 52500, [("passive", 99000), ("critical", 104500)])
    write_zone(root, 1, "GPU-therm", 51000, [("passive", 99000)])
    write_zone(root, 2, "PMIC-Die", 100000)
    write_cooling(root, 0, "pwm-fan", 3, 10)
    write_cooling(root, 1, "cpu-balanced", 0, 10)
    return root


def test_normal_temperatures_pass_and_the_pmic_placeholder_is_ignored(tmp_path, jetson_thermal):
    checks = system_checks(tmp_path, thermal_root=jetson_thermal)
    assert checks["system.temperature"].status == "PASS"
    assert checks["system.temperature"].detail == "CPU-therm 52.5 C, GPU-therm 51.0 C (limit 90 C)"
    assert checks["system.throttling"].status == "PASS"


def test_a_hot_throttling_soc_fails_both_checks(tmp_path, jetson_thermal):
    (jetson_thermal / "thermal_zone1" / "temp").write_text("99500\n")
    (jetson_thermal / "cooling_device1" / "cur_state").write_text("4\n")
    checks = system_checks(tmp_path, thermal_root=jetson_thermal)
    assert checks["system.temperature"].detail.startswith("GPU-therm at 99.5 C, above the 90 C limit")
    assert checks["system.throttling"].detail.startswith(
        "throttling: GPU-therm 99.5 C reached its passive trip point 99.0 C; cpu-balanced at state 4 of 10:")


def test_without_thermal_zones_both_skip(tmp_path):
    checks = system_checks(tmp_path)
    assert checks["system.temperature"].status == checks["system.throttling"].status == "SKIP"
    assert "no readable thermal zones" in checks["system.temperature"].detail


def answers(show: str = "", ntp: str = "", ntp_code: int = 0):
    """A stand-in for systemctl and timedatectl on a machine booted with systemd."""
    def command(argv):
        if argv[0] == "systemctl":
            return subprocess.CompletedProcess(argv, 0, show, "")
        return subprocess.CompletedProcess(argv, ntp_code, ntp, "Failed to connect to bus" if ntp_code else "")
    return command


SHOW = "LoadState={}\nActiveState={}\nSubState={}\nUnitFileState={}\nMainPID={}\n"


@pytest.mark.parametrize("state,status,start", [
    (("loaded", "active", "running", "enabled", 812), "PASS", "the edge-verify service is active (running, pid 812)"),
    (("loaded", "inactive", "dead", "enabled", 0), "PASS", "the edge-verify service is inactive and enabled; start it"),
    (("loaded", "failed", "failed", "enabled", 0), "FAIL", "the edge-verify service has failed: see journalctl"),
    (("loaded", "activating", "auto-restart", "enabled", 0), "FAIL", "the edge-verify service has crashed and is restarting"),
    (("loaded", "inactive", "dead", "disabled", 0), "FAIL", "the edge-verify service is inactive; it is disabled, so it"),
    (("not-found", "inactive", "dead", "", 0), "FAIL", "the edge-verify service is not installed"),
])
def test_service_state(tmp_path, state, status, start):
    if service.systemd_available(tmp_path) == "systemctl is not installed":
        pytest.skip("systemctl is not installed here")
    checks = system_checks(tmp_path, systemd_runtime=tmp_path, command=answers(show=SHOW.format(*state)))
    assert checks["system.service"].status == status
    assert checks["system.service"].detail.startswith(start)


def test_without_systemd_the_service_and_ntp_checks_skip(tmp_path):
    checks = system_checks(tmp_path, command=answers(ntp_code=1))
    assert checks["system.service"].status == "SKIP" and "cannot ask systemd" in checks["system.service"].detail
    assert checks["system.ntp"].detail == "NTP state unavailable: Failed to connect to bus"


@pytest.mark.parametrize("output,status", [
    ("NTP=yes\nNTPSynchronized=yes\n", "PASS"),
    ("NTP=yes\nNTPSynchronized=no\n", "FAIL"),
    ("NTP=no\nNTPSynchronized=no\n", "PASS"),
])
def test_ntp_state(tmp_path, output, status):
    assert system_checks(tmp_path, command=answers(ntp=output))["system.ntp"].status == status


@pytest.mark.parametrize("argv,daemon", [
    (["/usr/bin/python3", "/usr/bin/edge-verify", "run", "--config", "/etc/edge-verify/config.toml"], True),
    (["/opt/venv/bin/edge-verify", "run"], True),
    (["python", "-m", "edge", "run", "--until-end"], True),
    (["/usr/bin/edge-verify", "selftest"], False),
    (["/usr/bin/python3", "/usr/bin/edge-verify", "enroll", "run"], False),
    (["vim", "run"], False),
])
def test_daemon_command_lines(argv, daemon):
    assert service.is_daemon_command(argv) is daemon
