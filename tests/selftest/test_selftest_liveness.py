"""`selftest --with-face`: the door's liveness cues judge the face in view (a real person asked to stand there).

The home's liveness model is a cnn cue whose network says one logit for every face (tests/buildkit.py), so
the cue's verdict is known; the camera is the kiosk's file:// clip of fixture photos."""
from __future__ import annotations

from pathlib import Path

import pytest
from buildkit import cnn_only_liveness
from selftest_kit import by_name, selftest


def home_with_cnn(tmp_path: Path, kiosk: dict, logit: float) -> Path:
    """The kiosk's home (its engines linked) with a liveness model whose cnn cue says ``logit`` for every face."""
    home = tmp_path / "home"
    models = home / "models"
    models.mkdir(parents=True)
    for item in (kiosk["home"] / "models").iterdir():
        if not item.name.startswith("liveness"):
            (models / item.name).symlink_to(item.resolve())
    cnn_only_liveness(models, logit)
    return home


def test_cues_calling_the_face_in_view_an_attack_fail_with_what_to_do(kiosk, tmp_path):
    code, report, _ = selftest(kiosk, "--only", "camera", "--with-face", home=home_with_cnn(tmp_path, kiosk, 6.0))
    check = by_name(report)["camera.liveness"]
    assert code == 1 and check["status"] == "FAIL" and report["summary"]["failures"] == ["camera.liveness"]
    assert check["detail"].startswith("the door's liveness cues (cnn) call 10 of 10 frames of the face in view an "
                                      "attack (cnn on 10): if a real person stood there, the door refuses them")
    assert "train it on this camera's real and attack frames" in check["detail"]


def test_cues_passing_the_face_in_view_pass(kiosk, tmp_path):
    code, report, _ = selftest(kiosk, "--only", "camera", "--with-face", home=home_with_cnn(tmp_path, kiosk, -6.0))
    check = by_name(report)["camera.liveness"]
    assert code == 0 and check["status"] == "PASS"
    assert check["detail"] == "the door's liveness cues (cnn) let the face in view pass on 10 of 10 frames"


@pytest.mark.parametrize("args, reason", [
    ((), "not asked: rerun with --with-face"),
    (("--with-face", "--min-face", "200"), "no face to judge (see camera.face)"),
])
def test_no_face_asked_or_found_skips_the_liveness_check(kiosk, tmp_path, args, reason):
    _, report, _ = selftest(kiosk, "--only", "camera", *args, home=home_with_cnn(tmp_path, kiosk, 6.0))
    check = by_name(report)["camera.liveness"]
    assert check["status"] == "SKIP" and check["detail"].startswith(reason)


def test_without_a_liveness_model_it_skips(kiosk):
    _, report, _ = selftest(kiosk, "--only", "camera", "--with-face")
    check = by_name(report)["camera.liveness"]
    assert check["status"] == "SKIP" and check["detail"].startswith("no liveness cues to run")
