"""What selftest and `gallery show` say about liveness: the enabled cues with their validated
figures, or a warning that a printed photo can open the door."""
from __future__ import annotations

import json

import pytest

from edge.cli import main
from edge.daemon import config
from edge.gallery import open_gallery
from edge.liveness import context, motion, texture
from edge.liveness.model import FORMAT, write_model
from edge.selftest.compute import liveness_check

FIGURES = {"protocol": "leave one group out", "print": {"apcer": 0.303, "attacks": 1747}, "real": {"bpcer": 0.04}}


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_VERIFY_HOME", str(tmp_path))
    return tmp_path


def with_model(home):
    n = texture.FEATURE_COUNT
    write_model({"format": FORMAT, "window": 5, "cues": {
        "texture": {"features": texture.FEATURES, "mean": [0.0] * n, "scale": [1.0] * n, "weights": [0.0] * n,
                    "bias": 0.0, "threshold": 0.7, "validated": FIGURES},
        "context": {"features": context.FEATURES, "threshold": 0.47, "validated": FIGURES},
        "motion": {"features": motion.FEATURES}}}, home / "models" / "liveness.json")


def settings(**values):
    return config.resolve(values, {}, origin="the test")


def test_selftest_warns_without_liveness_and_fails_when_the_daemon_would_not_start(home):
    result = liveness_check(settings())
    assert result.status == "SKIP" and result.detail.startswith("WARNING") and "printed photo" in result.detail
    assert "edge-verify train liveness" in result.detail
    off = liveness_check(settings(**{"decision.liveness": "off"}))
    assert off.status == "SKIP" and "liveness off in the config" in off.detail
    required = liveness_check(settings(**{"decision.liveness": "required"}))
    assert required.status == "FAIL" and "refuses to start" in required.detail


def test_selftest_lists_the_cues_and_their_validated_figures(home):
    with_model(home)
    result = liveness_check(settings())
    assert result.status == "PASS", result.detail
    assert "cues texture, context, motion" in result.detail and "window 5 frames" in result.detail
    assert "print APCER 30.3 %" in result.detail and "real BPCER 4.0 %" in result.detail
    only = liveness_check(settings(**{"liveness.cues": "context"}))
    assert only.status == "PASS" and "cues context " in only.detail and "texture" not in only.detail


def test_gallery_show_says_whether_liveness_runs(home, capsys):
    with open_gallery(create=True, actor="test") as gallery:
        gallery.add_person_templates("Alice", [[0.1] * 128], "dlib_resnet_v1", "test")
    assert main(["gallery", "show"]) == 0
    out = capsys.readouterr().out
    assert "liveness     WARNING no liveness check" in out and "printed photo" in out
    with_model(home)
    assert main(["gallery", "show", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["liveness"]
    assert summary["enabled"] and summary["cues"] == ["texture", "context", "motion"]
