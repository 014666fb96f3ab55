"""Daemon settings: the TOML file, the flags, and the one-line errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import build_parser, main
from edge.cli.run import settings_from
from edge.daemon import config
from edge.exc import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "systemd" / "config.toml"


def parse(argv):
    return build_parser().parse_args(["run", *argv])


def from_cli(argv):
    return settings_from(parse(argv))


def test_the_shipped_example_config_loads_and_every_key_in_it_is_known():
    settings = config.load(EXAMPLE)
    assert settings["source.uri"] == "csi://0" and settings["door.pin"] == "BOARD32"
    assert settings["door.pulse_s"] == 3.0 and settings["door.active_high"] is True
    assert (settings["decision.k"], settings["decision.n"], settings["decision.min_frames"]) == (1, 1, 3)
    assert settings["decision.threshold"] is None  # the manifest's, unless configured
    assert settings["events.file"] == "/var/log/edge-verify/events.jsonl"


def test_every_option_has_a_flag_and_flags_win_over_the_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[door]\npin = "BOARD13"\npulse_s = 4\n[decision]\nk = 2\nn = 4\n')
    settings = from_cli(["--config", str(path), "--pulse", "2.5", "--k", "4", "--active-low", "--source",
                         "file://x.avi", "--no-flip", "--reconnect-attempts", "7", "--rate", "realtime"])
    assert settings["door.pin"] == "BOARD13"  # from the file
    assert settings["door.pulse_s"] == 2.5 and settings["decision.k"] == 4 and settings["decision.n"] == 4
    assert settings["door.active_high"] is False and settings["engine.flip"] is False
    assert settings["source.reconnect_max_attempts"] == 7 and settings["source.rate"] == "realtime"
    flags = {action.dest for action in build_parser()._subparsers._group_actions[0].choices["run"]._actions}
    assert {option.dest for option in config.OPTIONS} <= flags


def test_without_a_file_the_built_in_defaults_apply():
    settings = from_cli(["--no-config"])
    assert settings["decision.k"] == 1 and settings["decision.n"] == 1 and settings["decision.cooldown_s"] == 5.0
    assert settings["decision.min_frames"] == 3
    assert settings["decision.min_face_px"] == 80 and settings["door.pulse_s"] == 3.0
    assert settings["events.file"] is None and settings["engine.precision"] == "fp32"


@pytest.mark.parametrize("argv,message", [
    (["--pulse", "0.5"], "between 1 and 10"),
    (["--pulse", "11"], "between 1 and 10"),
    (["--pulse", "soon"], "--pulse must be a number"),
    (["--k", "6", "--n", "5"], "k (6) must be at most n (5)"),
    (["--min-frames", "0"], "min_frames must be at least 1"),
    (["--min-frames", "6"], "min_frames (6) must be at most combine_frames (5)"),
    (["--combine-frames", "0"], "combine_frames must be at least 1"),
    (["--combine-frames", "101"], "combine_frames must be at most 100"),
    (["--k", "0"], "k must be at least 1"),
    (["--search-every", "0"], "search_every must be at least 1"),
    (["--n", "2.5"], "--n must be a whole number"),
    (["--threshold", "-0.1"], "threshold must be greater than 0"),
    (["--threshold", "nan"], "must be a finite number"),
    (["--cooldown", "-1"], "cooldown_s must be at least 0"),
    (["--stranger-rate", "1.5"], "stranger_rate must be between 0 and 1"),
    (["--precision", "int4"], "precision must be one of fp32, fp16, int8"),
    (["--source", "ftp://camera"], "unsupported source"),
    (["--rate", "fast"], "rate must be \"realtime\" or frames per second"),
    (["--source-timeout", "0"], "timeout_s must be greater than 0"),
    (["--sensor-pin", "BOARD32"], "must be different pins"),
    (["--store-faces"], "store_faces needs an events file"),
    (["--door-kind", "wiegand"], "[door] kind must be one of relay, got 'wiegand'"),
])
def test_bad_flags_are_one_line_config_errors(argv, message):
    with pytest.raises(ConfigError) as caught:
        from_cli(["--no-config", *argv])
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("text,message", [
    ("[door]\npulse_s = 20\n", "between 1 and 10"),
    ("[door]\npulse_s = \"3\"\n", "pulse_s must be a number"),
    ("[door]\nactive_high = \"yes\"\n", "active_high must be true or false"),
    ("[decision]\nthresh = 0.5\n", "unknown key 'thresh' in [decision]"),
    ("[camera]\nuri = \"csi://0\"\n", "unknown section [camera]"),
    ("[decision\nk = 3\n", "is not valid TOML"),
    ("[decision]\nk = 3.5\n", "k must be a whole number"),
])
def test_bad_files_name_the_key_and_the_file(tmp_path, text, message):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_a_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.toml")


def test_bad_setting_exits_2_before_any_hardware_is_touched(capsys):
    assert main(["run", "--no-config", "--k", "9"]) == 2
    assert "error: [decision] k (9) must be at most n (1)" in capsys.readouterr().err


def test_engine_threads_default_to_half_the_cores_because_a_helper_thread_runs_beside_them(monkeypatch):
    from edge.daemon import parts

    chosen = config.resolve({"engine.threads": 3}, {}, origin="the test")
    unset = config.resolve({}, {}, origin="the test")
    assert parts.engine_threads(chosen) == 3
    for cores, threads in ((8, 4), (2, 1), (1, 1), (None, 1)):
        monkeypatch.setattr(parts.os, "cpu_count", lambda: cores)
        assert parts.engine_threads(unset) == threads
