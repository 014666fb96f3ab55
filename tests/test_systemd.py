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


def verify(unit_text: str, tmp_path: Path) -> tuple:
    """systemd-analyze verify on ``unit_text`` inside a scratch root.

    verify insists that ExecStart's program exists, and /usr/bin/edge-verify is
    not installed on a development machine; so the unit is checked under
    --root with the host's unit files and this environment's real edge-verify
    script copied to root/usr/bin. The unit text itself is not changed.
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
    result = subprocess.run(
        [ANALYZE, "verify", f"--root={root}", "edge-verify.service"], capture_output=True, text=True, timeout=60
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
def test_security_exposure_stays_low():
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", str(UNIT)], capture_output=True, text=True, timeout=60
    )
    match = re.search(r"Overall exposure level for edge-verify\.service: ([0-9.]+)", result.stdout + result.stderr)
    if match is None:
        pytest.skip(f"this systemd-analyze cannot rate a unit offline: {result.stderr.strip()[:200]}")
    assert float(match.group(1)) <= 2.0


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
