"""The systemd unit, sysusers/tmpfiles files and the example config, checked with systemd's own tools."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.door import validate_pulse
from edge.sources import parse_uri

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
SYSTEMD = ROOT / "systemd"
UNIT = SYSTEMD / "edge-verify.service"
LOCK_UNIT = SYSTEMD / "edge-verify-lock.service"
DROP_INS = SYSTEMD / "edge-verify.service.d"
LOCK_COMMAND = "/usr/bin/edge-verify door lock --config /etc/edge-verify/config.toml"
HOST_UNITS = next((Path(p) for p in ("/usr/lib/systemd/system", "/lib/systemd/system") if Path(p, "sysinit.target").exists()), None)
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed here")


def directives(path: Path) -> dict:
    """{key: [values]} over all sections (keys are unique enough in this unit)."""
    found: dict = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def verify(unit_text: str, tmp_path: Path, lock_text: str | None = None, drop_ins: dict | None = None) -> tuple:
    """systemd-analyze verify on ``unit_text`` inside a scratch root.

    verify insists that ExecStart's program exists, and /usr/bin/edge-verify is
    not installed on a development machine; so the unit is checked under
    --root with the host's unit files and this environment's real edge-verify
    script copied to root/usr/bin. The unit text itself is not changed.
    ``lock_text`` adds edge-verify-lock.service, ``drop_ins`` {name: text}
    files in edge-verify.service.d/.
    """
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    units = root / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    for unit in HOST_UNITS.iterdir():
        if unit.is_file() and not unit.is_symlink():
            shutil.copy(unit, units)
    script = shutil.which("edge-verify") or str(Path(sys.executable).with_name("edge-verify"))
    shutil.copy(script, root / "usr/bin/edge-verify")
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/edge-verify.service").write_text(unit_text)
    names = ["edge-verify.service"]
    # The daemon's unit wants the boot lock unit: it is always installed with it.
    (root / "etc/systemd/system/edge-verify-lock.service").write_text(lock_text or LOCK_UNIT.read_text())
    if lock_text is not None:
        names.append("edge-verify-lock.service")
    for name, text in (drop_ins or {}).items():
        (root / "etc/systemd/system/edge-verify.service.d").mkdir(exist_ok=True)
        (root / "etc/systemd/system/edge-verify.service.d" / name).write_text(text)
    result = subprocess.run(
        [ANALYZE, "verify", f"--root={root}", *names], capture_output=True, text=True, timeout=60
    )
    output = (result.stdout + result.stderr).strip()
    about_unit = [line for line in output.splitlines() if "edge-verify" in line]
    return result.returncode, about_unit, output


@needs_analyze
@pytest.mark.skipif(HOST_UNITS is None, reason="no systemd unit directory on this machine to verify against")
def test_unit_verifies_without_a_single_warning(tmp_path):
    code, about_unit, output = verify(UNIT.read_text(), tmp_path)
    assert code == 0 and about_unit == [], output


@needs_analyze
@pytest.mark.skipif(HOST_UNITS is None, reason="no systemd unit directory on this machine to verify against")
def test_the_verify_check_catches_a_broken_unit(tmp_path):
    broken = UNIT.read_text().replace("WatchdogSec=30s", "WatchdogSec=half a minute") + "\nColour=blue\n"
    _code, about_unit, _output = verify(broken, tmp_path)
    assert any("WatchdogSec" in line or "sec value" in line for line in about_unit)
    assert any("Colour" in line for line in about_unit)


@needs_analyze
@pytest.mark.skipif(HOST_UNITS is None, reason="no systemd unit directory on this machine to verify against")
def test_lock_unit_and_device_drop_ins_verify_without_a_warning(tmp_path):
    drop_ins = {path.name: path.read_text() for path in sorted(DROP_INS.glob("*.conf"))}
    assert sorted(drop_ins) == ["dla.conf", "jetpack5.conf"]
    code, about_unit, output = verify(UNIT.read_text(), tmp_path, lock_text=LOCK_UNIT.read_text(), drop_ins=drop_ins)
    assert code == 0 and about_unit == [], output


@needs_analyze
@pytest.mark.skipif(HOST_UNITS is None, reason="no systemd unit directory on this machine to verify against")
def test_the_verify_check_catches_a_relock_command_that_cannot_run(tmp_path):
    broken = UNIT.read_text().replace(f"ExecStopPost={LOCK_COMMAND}", "ExecStopPost=/usr/bin/edge-verifyy door lock")
    code, about_unit, _output = verify(broken, tmp_path)
    assert code != 0 and any("edge-verifyy" in line for line in about_unit)


@needs_analyze
@pytest.mark.parametrize("unit", [UNIT, LOCK_UNIT], ids=lambda path: path.name)
def test_security_exposure_stays_low(unit):
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", str(unit)], capture_output=True, text=True, timeout=60
    )
    match = re.search(rf"Overall exposure level for {re.escape(unit.name)}: ([0-9.]+)", result.stdout + result.stderr)
    if match is None:
        pytest.skip(f"this systemd-analyze cannot rate a unit offline: {result.stderr.strip()[:200]}")
    assert float(match.group(1)) <= 2.0


def test_the_door_is_relocked_after_every_stop_and_at_boot():
    """A crashed daemon cannot relock its relay, and a released Jetson line does not turn off."""
    found = directives(UNIT)
    run_config = found["ExecStart"][0].split("--config", 1)[1].strip()
    assert found["ExecStopPost"] == [LOCK_COMMAND] and LOCK_COMMAND.endswith(run_config)
    lock = directives(LOCK_UNIT)
    assert lock["Type"] == ["oneshot"] and lock["ExecStart"] == [LOCK_COMMAND]
    assert "edge-verify.service" in lock["Before"][0].split()
    assert "edge-verify-lock.service" in found["Wants"] and "edge-verify-lock.service" in found["After"]
    assert lock["WantedBy"] == ["multi-user.target"]
    assert "GPIOZERO_PIN_FACTORY=jetson" in lock["Environment"] and lock["DevicePolicy"] == ["closed"]
    assert lock["DeviceAllow"] == ["char-gpiochip rw"] and lock["SupplementaryGroups"] == ["gpio"]


def test_device_allow_lists_per_jetpack_release():
    jetpack6 = {value.split()[0] for value in directives(UNIT)["DeviceAllow"]}
    # JetPack 6 (the target): nvgpu's igpu0 nodes, the TSG node, nvmap and host1x fences.
    assert {"/dev/nvgpu/igpu0/ctrl", "/dev/nvgpu/igpu0/as", "/dev/nvgpu/igpu0/channel", "/dev/nvgpu/igpu0/tsg",
            "/dev/nvhost-tsg-gpu", "/dev/nvmap", "/dev/host1x-fence"} <= jetpack6
    assert not any(name.endswith(("dbg", "prof", "-dbg-gpu", "-prof-gpu")) for name in jetpack6)  # no profilers
    jetpack5 = {value.split()[0] for value in directives(DROP_INS / "jetpack5.conf")["DeviceAllow"]}
    assert {"/dev/nvhost-ctrl", "/dev/nvhost-ctrl-gpu", "/dev/nvhost-gpu", "/dev/nvhost-as-gpu"} <= jetpack5
    dla = {value.split()[0] for value in directives(DROP_INS / "dla.conf")["DeviceAllow"]}
    assert dla == {"/dev/nvhost-nvdla0", "/dev/nvhost-ctrl-nvdla0", "/dev/nvhost-nvdla1", "/dev/nvhost-ctrl-nvdla1"}
    assert "strace" in UNIT.read_text()  # how to confirm the list on a device


def test_unit_has_the_promised_service_settings():
    found = directives(UNIT)
    expected = {
        "Type": "notify", "NotifyAccess": "main", "Restart": "on-failure", "User": "edge-verify",
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "DevicePolicy": "closed", "CapabilityBoundingSet": "", "StateDirectory": "edge-verify",
        "LogsDirectory": "edge-verify", "SystemCallFilter": "@system-service",
    }
    for key, value in expected.items():
        assert value in found.get(key, []), key
    assert found["ExecStart"] == ["/usr/bin/edge-verify run --config /etc/edge-verify/config.toml"]
    assert re.fullmatch(r"\d+s", found["WatchdogSec"][0])
    assert {"char-video4linux rw", "char-gpiochip rw"} <= set(found["DeviceAllow"])
    assert set(found["SupplementaryGroups"][0].split()) == {"video", "gpio"}
    assert set(found["ReadWritePaths"][0].split()) == {"/var/lib/edge-verify", "/var/log/edge-verify"}
    assert "EDGE_VERIFY_HOME=/var/lib/edge-verify" in found["Environment"]


def test_example_config_is_valid_for_the_parts_that_read_it():
    config = tomllib.loads((SYSTEMD / "config.toml").read_text())
    assert parse_uri(config["source"]["uri"]).live
    assert config["source"]["timeout_s"] > 0
    assert validate_pulse(config["door"]["pulse_s"]) == 3.0
    assert isinstance(config["door"]["active_high"], bool) and config["door"]["pin"].startswith("BOARD")
    assert 1 <= config["decision"]["k"] <= config["decision"]["n"]
    assert config["events"]["file"].startswith("/var/log/edge-verify/")  # the unit's LogsDirectory
    assert config["events"]["store_faces"] is False
    assert "threshold" not in config["decision"]  # the manifest's calibrated threshold by default


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers is not installed here")
def test_sysusers_creates_the_user_and_its_groups(tmp_path):
    (tmp_path / "etc").mkdir()
    subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(SYSTEMD / "edge-verify.sysusers.conf")],
                   check=True, capture_output=True, timeout=60)
    passwd = (tmp_path / "etc/passwd").read_text()
    groups = {line.split(":")[0]: line.split(":")[3] for line in (tmp_path / "etc/group").read_text().splitlines()}
    assert re.search(r"^edge-verify:x:\d+:\d+:[^:]*:/var/lib/edge-verify:/usr/sbin/nologin$", passwd, re.M)
    assert "edge-verify" in groups["video"].split(",") and "edge-verify" in groups["gpio"].split(",")


@pytest.mark.skipif(shutil.which("systemd-tmpfiles") is None or shutil.which("systemd-sysusers") is None,
                    reason="systemd-tmpfiles/systemd-sysusers are not installed here")
def test_tmpfiles_creates_the_directories(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles needs root to hand directories to the edge-verify user")
    (tmp_path / "etc").mkdir()
    subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(SYSTEMD / "edge-verify.sysusers.conf")],
                   check=True, capture_output=True, timeout=60)
    subprocess.run(["systemd-tmpfiles", "--create", f"--root={tmp_path}", str(SYSTEMD / "edge-verify.tmpfiles.conf")],
                   check=True, capture_output=True, timeout=60)
    for folder in ("etc/edge-verify", "var/lib/edge-verify", "var/log/edge-verify"):
        assert (tmp_path / folder).stat().st_mode & 0o777 == 0o750, folder
