"""Issue 12 item 14: SIGTERM while the daemon starts ends it cleanly (status 0), door locked.

A signal handler that raises inside an import (onnxruntime's, numpy's) leaves the module
half made: the daemon then died with an ImportError traceback and status 1. During start-up
a stop request now locks the door at once and ends the start between its steps.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from daemonkit import PIN, blanks, levels, person_frames, settings, write_clip

from edge.daemon import parts
from edge.daemon.loop import Daemon


def test_sigterm_while_models_load_lets_the_step_finish_and_exits_zero(tmp_path, enrolled, mock_factory, pipeline,
                                                                       monkeypatch):
    gallery, key = enrolled
    clip = write_clip(tmp_path / "clip.avi", blanks(3))
    finished = []

    def slow_load(current_settings):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the models are being imported
        time.sleep(0.05)
        finished.append(True)  # the step is not cut in the middle
        return pipeline

    monkeypatch.setattr(parts, "load_pipeline", slow_load)
    daemon = Daemon(settings(gallery, key, f"file://{clip}"), until_end=True, pin_factory=mock_factory)
    with pytest.raises(SystemExit) as stopped:
        daemon.run()
    assert stopped.value.code == 0 and finished == [True]
    assert not any(levels(mock_factory.pin(PIN))) and daemon.door.closed  # never opened, locked and released
    assert daemon.gallery is None  # the start ended right after the step


def test_sigterm_at_any_moment_of_the_start_exits_without_a_traceback(tmp_path, enrolled):
    gallery, key = enrolled
    clip = write_clip(tmp_path / "clip.avi", blanks(2) + person_frames("Colin_Powell", 40))
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}
    for delay in (0.45, 0.55, 0.7, 1.0):
        process = subprocess.Popen([sys.executable, "-m", "edge", "run", "--no-config", "--source", f"file://{clip}",
                                    "--gallery", str(gallery), "--key", str(key), "--pin", PIN, "--no-events-stdout"],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
        # -SIGTERM: stopped before Python ran any of ours (nothing was driven); else a clean 0
        assert process.returncode in (0, -signal.SIGTERM) and "Traceback" not in err, (delay, err[-2000:])
