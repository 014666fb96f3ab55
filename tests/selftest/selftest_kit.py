"""Helpers for the selftest tests: run the real CLI in a subprocess and read its JSON report."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def selftest(kiosk: dict, *args: str, home: Path | None = None, json_output: bool = True, stdin=subprocess.DEVNULL):
    """Run the real CLI; returns (exit code, parsed JSON report or the text output, stderr)."""
    env = dict(os.environ, EDGE_VERIFY_HOME=str(home or kiosk["home"]), GPIOZERO_PIN_FACTORY="mock",
               OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "edge", "selftest", "--config", str(kiosk["config"]), *args]
    if json_output:
        command.append("--json")
    done = subprocess.run(command, capture_output=True, text=True, env=env, stdin=stdin, timeout=120, cwd=ROOT)
    if not json_output:
        return done.returncode, done.stdout, done.stderr
    try:
        report = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"selftest printed no JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.returncode, report, done.stderr


def by_name(report: dict) -> dict:
    return {check["name"]: check for check in report["checks"]}
