"""Decision events as JSON lines: stdout plus a rotating file that loses nothing."""
from __future__ import annotations

import json
import re
import stat
import threading
from pathlib import Path

import numpy as np
import pytest

from edge.events import REQUIRED_KEYS, EventLog, event_time


def event(seq=0, **changes):
    base = dict(time=event_time(), person="Tony_Blair", distance=0.31, margin=0.12, frames_agreed=3,
                unlock=True, latency_ms=41.5, seq=seq)
    base.update(changes)
    return base


def lines_in_order(path: Path):
    """Every line of the current file and its backups, oldest first."""
    backups = sorted(path.parent.glob(path.name + ".*"), key=lambda p: int(p.suffix[1:]), reverse=True)
    return [line for file in [*backups, path] for line in file.read_text().splitlines()]


def test_one_json_line_to_stdout_and_file(tmp_path, capsys):
    path = tmp_path / "logs" / "events.jsonl"
    with EventLog(path) as log:
        written = log.write(event(person=None, unlock=False))
    out = capsys.readouterr().out
    assert out == written + "\n" and path.read_text() == written + "\n"
    parsed = json.loads(written)
    assert parsed["person"] is None and parsed["unlock"] is False and set(REQUIRED_KEYS) <= set(parsed)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_required_keys_and_types_are_checked(tmp_path):
    log = EventLog(tmp_path / "e.jsonl", stdout=False)
    partial = event()
    del partial["margin"], partial["latency_ms"]
    with pytest.raises(ValueError, match="margin, latency_ms"):
        log.write(partial)
    with pytest.raises(ValueError, match="unlock"):
        log.write(event(unlock=1))
    with pytest.raises(ValueError, match="person"):
        log.write(event(person=7))
    with pytest.raises(TypeError, match="object"):
        log.write(event(extra=object()))
    assert (tmp_path / "e.jsonl").read_text() == ""  # nothing half-written


def test_numpy_and_non_finite_values_become_strict_json(tmp_path):
    log = EventLog(tmp_path / "e.jsonl", stdout=False)
    line = log.write(event(distance=np.float32(0.25), margin=float("nan"), frames_agreed=np.int64(4),
                           unlock=False, latency_ms=float("inf"), box=np.array([1, 2, 3, 4]), ok=np.bool_(True)))
    parsed = json.loads(line)
    assert parsed["distance"] == 0.25 and parsed["frames_agreed"] == 4
    assert parsed["margin"] is None and parsed["latency_ms"] is None
    assert parsed["box"] == [1, 2, 3, 4] and parsed["ok"] is True
    assert "NaN" not in line and "Infinity" not in line


def test_rotation_keeps_every_line_whole_and_in_order(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventLog(path, stdout=False, max_bytes=600, backups=100) as log:
        for seq in range(60):
            log.write(event(seq))
    files = [path, *path.parent.glob("events.jsonl.*")]
    assert len(files) > 5 and all(file.stat().st_size <= 600 for file in files)
    assert [json.loads(line)["seq"] for line in lines_in_order(path)] == list(range(60))


def test_only_backups_beyond_the_limit_are_dropped(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventLog(path, stdout=False, max_bytes=600, backups=2) as log:
        for seq in range(60):
            log.write(event(seq))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    kept = [json.loads(line)["seq"] for line in lines_in_order(path)]
    assert kept == list(range(60 - len(kept), 60))  # the newest, contiguous


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path, stdout=False, max_bytes=2000, backups=1000)

    def writer(offset):
        for seq in range(offset, offset + 100):
            log.write(event(seq))

    threads = [threading.Thread(target=writer, args=(n * 1000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    seqs = sorted(json.loads(line)["seq"] for line in lines_in_order(path))
    assert seqs == sorted(n * 1000 + i for n in range(4) for i in range(100))


def test_stdout_only_and_file_only(tmp_path, capsys):
    EventLog().write(event(1))
    assert json.loads(capsys.readouterr().out)["seq"] == 1
    EventLog(tmp_path / "e.jsonl", stdout=False).write(event(2))
    assert capsys.readouterr().out == ""


def test_event_time_is_iso_utc_with_milliseconds():
    assert event_time(0) == "1970-01-01T00:00:00.000Z"
    assert event_time(1700000000.1234) == "2023-11-14T22:13:20.123Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event_time())


def test_bad_rotation_settings(tmp_path):
    with pytest.raises(ValueError, match="backups"):
        EventLog(tmp_path / "e.jsonl", backups=0)
    with pytest.raises(ValueError, match="max_bytes"):
        EventLog(tmp_path / "e.jsonl", max_bytes=-1)
