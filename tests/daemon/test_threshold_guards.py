"""Issue 12 item 8: no threshold that lets everybody in, and no nonsense numbers.

A match threshold looser than the model's own 1:1 threshold makes every face match
somebody: `run` refuses it unless --allow-loose-threshold (or [decision]
allow_loose_threshold = true) says it is meant. NaN, negative thresholds and fewer
than one thread are refused everywhere.
"""
from __future__ import annotations

import pytest
from daemonkit import PIN, STRANGERS, blanks, person_frames, read_events, write_clip
from gpiozero import Device

from edge.cli import main


@pytest.fixture
def env_mock_factory(monkeypatch):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.setattr(Device, "pin_factory", None)
    yield
    if Device.pin_factory is not None:
        Device.pin_factory.close()


def run_on_strangers(tmp_path, enrolled, *extra):
    gallery, key = enrolled
    clip = write_clip(tmp_path / "strangers.avi", blanks(2) + person_frames(STRANGERS[0], 8) + blanks(4))
    events = tmp_path / "events.jsonl"
    code = main(["run", "--no-config", "--source", f"file://{clip}", "--until-end", "--pin", PIN, "--pulse", "1",
                 "--gallery", str(gallery), "--key", str(key), "--events", str(events), "--no-events-stdout",
                 *extra])
    return code, read_events(events)


def test_a_threshold_looser_than_the_models_is_refused(tmp_path, enrolled, env_mock_factory, capsys):
    code, events = run_on_strangers(tmp_path, enrolled, "--threshold", "5")
    err = capsys.readouterr().err
    assert code == 2 and "looser than the model's 1:1 threshold" in err and "--allow-loose-threshold" in err
    assert not any(event["unlock"] for event in events)


def test_a_loose_threshold_in_the_config_file_is_refused_too(tmp_path, enrolled, env_mock_factory, capsys):
    gallery, key = enrolled
    config = tmp_path / "config.toml"
    config.write_text(f'[decision]\nthreshold = 5.0\n[gallery]\npath = "{gallery}"\nkey = "{key}"\n')
    code = main(["run", "--config", str(config), "--source", "dir:///nowhere", "--pin", PIN])
    assert code == 2 and "looser than the model's 1:1 threshold" in capsys.readouterr().err


def test_a_loose_threshold_runs_only_when_asked_for(tmp_path, enrolled, env_mock_factory, caplog):
    code, events = run_on_strangers(tmp_path, enrolled, "--threshold", "5", "--allow-loose-threshold")
    assert code == 0 and events  # what was asked, with a warning
    assert any("looser than the model's 1:1 threshold" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("argv", [
    ["verify", "a.jpg", "b.jpg", "--threshold", "nan"],
    ["verify", "a.jpg", "b.jpg", "--threshold", "-0.5"],
    ["verify", "a.jpg", "b.jpg", "--threshold", "inf"],
    ["identify", "a.jpg", "--threads", "0"],
    ["enroll", "Ada", "--images", "a.jpg", "--threads", "-2"],
    ["run", "--no-config", "--threshold", "nan"],
    ["run", "--no-config", "--threshold", "-1"],
])
def test_nonsense_numbers_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        code = main(argv)
        raise SystemExit(code)
    assert stopped.value.code == 2
