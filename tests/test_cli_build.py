"""`edge-verify build` from the command line: help, refusals, and a real build."""
from __future__ import annotations

import json

import pytest

from edge.cli import main


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_explains_precisions_and_the_gate(capsys):
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    out = capsys.readouterr().out
    for phrase in ("--calibration", "--allow-fallback", "Accuracy gate", "fp16", "--dla-core", "--gate-lfw-drop"):
        assert phrase in out


def test_attributes_without_a_checkpoint_says_how_to_get_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGE_VERIFY_HOME", str(tmp_path))
    code, _, err = run(["build", "--model", "attributes"], capsys)
    assert code != 0
    assert f"no attributes checkpoint at {tmp_path}" in err and "edge-verify train attributes" in err
    assert len(err.strip().splitlines()) == 1


def test_fp16_on_onnxruntime_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGE_VERIFY_HOME", str(tmp_path))  # no weights here: the refusal must come first
    code, _, err = run(["build", "--precision", "fp16"], capsys)
    assert code != 0 and "fp16 is not supported by the onnxruntime backend" in err


def test_dla_needs_tensorrt(capsys):
    code, _, err = run(["build", "--dla-core", "0"], capsys)
    assert code == 2 and "--dla-core needs --backend tensorrt" in err


def test_int8_without_calibration_is_refused(tmp_path, monkeypatch, capsys, model_sources):
    code, _, err = run(["build", "--precision", "int8", "--out", str(tmp_path)], capsys)
    assert code != 0 and "int8 needs a calibration set" in err


def test_detector_build_from_the_fetched_weights(tmp_path, capsys, model_sources, face_images):
    held = tmp_path / "held"
    held.mkdir()
    for paths in face_images.values():
        (held / paths[0].name).symlink_to(paths[0])
    code, out, err = run(["build", "--model", "detector", "--gate-faces", str(held), "--out", str(tmp_path / "engines")], capsys)
    assert code == 0, err
    for net in ("pnet", "rnet", "onet"):
        manifest = json.loads((tmp_path / "engines" / f"detector-{net}.fp32.onnx.json").read_text())
        assert manifest["accuracy_gate"]["passed"] and manifest["accuracy_gate"]["mean_cosine"] > 0.9999
        assert manifest["model"] == f"mtcnn_{net}"
    assert out.count("fp32, mean cosine") == 3
