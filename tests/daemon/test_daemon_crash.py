"""kill -9 during an unlock pulse, then a restart: the new daemon starts locked and stays locked.

The daemon runs as a real subprocess (`edge-verify run`) with its relay on a gpiozero
MockPin that also writes every change to a file (daemonkit.RecordingPin), because a
mock pin's memory dies with its process.

What this models: after SIGKILL nothing in the process runs any more, so the recorded
relay level stays where the pulse left it (energised): the worst case, a GPIO line
that keeps its last level. The guarantee on hardware does not come from software at
that point but from the wiring documented in edge/door/lock.py and the [door] section
of systemd/config.toml: the lock is wired so that a de-energised relay means locked,
and the driver input has a pull to its OFF level, so a released line is "locked".
What the software must and does guarantee is checked here: the restarted daemon
drives the relay to the locked level before anything else, and keeps it there.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from daemonkit import (
    ENROLLED,
    PIN,
    PIN_LOG_ENV,
    STRANGERS,
    blanks,
    person_frames,
    read_events,
    read_pin_log,
    write_clip,
)

LAUNCHER = Path(__file__).resolve().parent / "recorded_run.py"
WAIT_S = 120  # generous bound on a loaded machine; the test normally needs a few seconds


def start(args, pin_log, log_file):
    env = dict(os.environ, **{PIN_LOG_ENV: str(pin_log), "OMP_NUM_THREADS": "1"})
    return subprocess.Popen([sys.executable, str(LAUNCHER), "run", "--no-config", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=log_file)


def wait_for(condition, process, what):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            raise AssertionError(f"the daemon exited ({process.returncode}) before {what}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"timed out waiting for {what}")


def unlock_written(path) -> bool:
    try:
        return any(event["unlock"] for event in read_events(path))
    except ValueError:  # a line being written right now: look again
        return False


def test_kill_9_mid_pulse_then_restart_is_locked(tmp_path, enrolled):
    gallery, key = enrolled
    pin_log = tmp_path / "pins.jsonl"
    common = ["--pin", PIN, "--gallery", str(gallery), "--key", str(key), "--pulse", "10"]

    # Run 1: an enrolled person, then empty frames played in real time; killed mid-pulse.
    first_clip = write_clip(tmp_path / "first.avi", person_frames(ENROLLED[0], 5) + blanks(300))
    with open(tmp_path / "first.log", "w") as log_file:
        first = start(["--source", f"file://{first_clip}", "--rate", "10", "--events", str(tmp_path / "first.jsonl"),
                       "--no-events-stdout", *common], pin_log, log_file)
        try:
            wait_for(lambda: any(r["state"] for r in read_pin_log(pin_log)), first, "the unlock pulse")
            # The event is written just after the relay is driven: on a loaded machine a kill at
            # once can land between the two. The 10 s pulse leaves ample time to wait for it.
            wait_for(lambda: unlock_written(tmp_path / "first.jsonl"), first, "the unlock event")
            os.kill(first.pid, signal.SIGKILL)
            assert first.wait(30) == -signal.SIGKILL
        finally:
            if first.poll() is None:
                first.kill()
    before = read_pin_log(pin_log)
    assert before[-1]["pid"] == first.pid and before[-1]["state"] is True  # died energised: nothing relocked it
    assert [e["person"] for e in read_events(tmp_path / "first.jsonl") if e["unlock"]] == [ENROLLED[0]]

    # Run 2 (what systemd's Restart=on-failure does): strangers and empty frames.
    second_clip = write_clip(tmp_path / "second.avi", blanks(5) + person_frames(STRANGERS[0], 6) + blanks(5))
    with open(tmp_path / "second.log", "w") as log_file:
        second = start(["--source", f"file://{second_clip}", "--until-end", "--events",
                        str(tmp_path / "second.jsonl"), "--no-events-stdout", *common], pin_log, log_file)
        assert second.wait(WAIT_S) == 0, (tmp_path / "second.log").read_text()
    after = [r for r in read_pin_log(pin_log) if r["pid"] == second.pid]
    setup = after[0]
    assert setup["what"] == "function" and setup["function"] == "output"
    # Active-high relay: the locked level is low. The first thing the new daemon did was make
    # the relay an output at that level, every later record is low, and it ended released.
    assert all(r["state"] is False for r in after)
    assert after[-1]["function"] == "input"
    events = read_events(tmp_path / "second.jsonl")
    assert events and not any(e["unlock"] for e in events)
