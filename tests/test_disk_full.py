"""Issue 12 item 7: a full disk is said as such, changes nothing half way, and never stops the door.

- gallery changes and token changes on a full disk say "no space left on ...", leave no
  temporary file, and write no audit record of a change that did not happen;
- a full events file does not stop the daemon: it keeps deciding (and unlocking), counts
  the events the file missed and says so in the journal and its status;
- stored face crops are kept to the newest N, mode 0640 like the events.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.events import EventLog, RotatingLines

KIT = Path(__file__).resolve().parent / "events_disk_full_kit.py"
EVENT = {"time": "2025-01-01T00:00:00.000Z", "person": None, "distance": None, "margin": None, "frames_agreed": 0,
         "unlock": False, "latency_ms": 1.0}


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_an_events_file_that_cannot_be_written_drops_and_counts_and_says_so(tmp_path, monkeypatch, capsys, caplog):
    events = EventLog(tmp_path / "events.jsonl", stdout=True)
    events.write(EVENT)
    monkeypatch.setattr(RotatingLines, "write_line", no_space)
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        events.write({**EVENT, "person": "Alice"})  # must not raise
    assert events.dropped == 3
    assert capsys.readouterr().out.count('"person": "Alice"') == 3  # the journal still has them
    assert len([record for record in caplog.records if "events file" in record.getMessage()]) == 1
    monkeypatch.undo()
    events.write(EVENT)
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == 2
    events.close()


def test_the_daemon_keeps_deciding_with_a_full_events_file(tmp_path, pipeline, monkeypatch):
    sys.path.insert(0, str(Path(__file__).resolve().parent / "daemon"))
    from daemonkit import ENROLLED, PIN, blanks, levels, make_gallery, openings, person_frames, settings, write_clip
    from gpiozero.pins.mock import MockFactory

    from edge.daemon import notify
    from edge.daemon.loop import Daemon

    gallery, key = make_gallery(tmp_path, pipeline)
    clip = write_clip(tmp_path / "clip.avi", blanks(2) + person_frames(ENROLLED[0], 8) + blanks(25))
    monkeypatch.setattr(RotatingLines, "write_line", no_space)
    statuses = []
    monkeypatch.setattr(notify, "status", lambda text: statuses.append(text) or False)
    factory = MockFactory()
    try:
        daemon = Daemon(settings(gallery, key, f"file://{clip}", **{"events.file": str(tmp_path / "ev.jsonl"),
                                                                    "source.rate": 10.0}),
                        until_end=True, pin_factory=factory, pipeline=pipeline)
        assert daemon.run() == 0
        assert openings(levels(factory.pin(PIN))) == 1  # the door still opened for an enrolled person
    finally:
        factory.close()
    assert daemon.events.dropped == daemon.stats.faces > 0
    assert any("not written to the events file" in status for status in statuses)


def test_face_crops_are_kept_to_the_newest_and_private(tmp_path):
    from edge.events import store_face

    crop = np.full((60, 50, 3), 128, np.uint8)
    paths = [store_face(tmp_path / "faces", f"20250101T0000{second:02d}-{second:08d}", crop, keep=3)
             for second in range(5)]
    kept = sorted(path.name for path in (tmp_path / "faces").iterdir())
    assert kept == [Path(path).name for path in paths[-3:]]
    assert all(stat.S_IMODE(os.stat(path).st_mode) == 0o640 for path in paths[-3:])


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare for a tmpfs")
def test_a_gallery_on_a_full_disk_says_so_and_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, str(KIT), str(folder)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["set-token"]["rc"] == 0
    assert "no space left on the disk holding" in out["enroll"]["err"], out["enroll"]
    change = out["change token"]
    assert change["rc"] != 0 and "no space left" in change["err"] and "Traceback" not in change["err"], change
    assert out["token unchanged"] and out["audit unchanged"] and out["partial files"] == []
    assert out["events dropped"] > 0 and out["events whole lines"]
