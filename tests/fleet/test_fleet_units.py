"""The hub's and the fleet agent's systemd units, checked with systemd's own tools."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = [ROOT / "systemd" / "edge-verify-hub.service", ROOT / "systemd" / "edge-verify-fleet.service"]
HOST_UNITS = next((Path(p) for p in ("/usr/lib/systemd/system", "/lib/systemd/system")
                   if Path(p, "sysinit.target").exists()), None)
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None or HOST_UNITS is None,
                                reason="systemd-analyze and the host's unit files are needed")


def verify(name: str, text: str, tmp_path: Path) -> tuple[int, list[str], str]:
    """systemd-analyze verify under a scratch root holding the host's units and this edge-verify script."""
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    units = root / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    for unit in HOST_UNITS.iterdir():
        if unit.is_file() and not unit.is_symlink():
            shutil.copy(unit, units)
    shutil.copy(shutil.which("edge-verify") or str(Path(sys.executable).with_name("edge-verify")),
                root / "usr/bin/edge-verify")
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system" / name).write_text(text)
    result = subprocess.run([ANALYZE, "verify", f"--root={root}", name], capture_output=True, text=True, timeout=60)
    output = (result.stdout + result.stderr).strip()
    return result.returncode, [line for line in output.splitlines() if "edge-verify" in line], output


@pytest.mark.parametrize("unit", UNITS, ids=lambda path: path.name)
def test_units_verify_without_a_warning_and_a_broken_one_is_caught(unit, tmp_path):
    code, about, output = verify(unit.name, unit.read_text(), tmp_path / "good")
    assert code == 0 and about == [], output
    _, about, _ = verify(unit.name, unit.read_text().replace("RestartSec=2s", "RestartSec=soon"), tmp_path / "bad")
    assert any("RestartSec" in line or "sec value" in line for line in about)


@pytest.mark.parametrize("unit", UNITS, ids=lambda path: path.name)
def test_units_security_exposure_stays_low(unit):
    result = subprocess.run([ANALYZE, "security", "--offline=true", str(unit)], capture_output=True, text=True,
                            timeout=60)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout + result.stderr)
    if match is None:
        pytest.skip(f"this systemd-analyze cannot rate a unit offline: {result.stderr.strip()[:200]}")
    assert float(match.group(1)) <= 2.5
