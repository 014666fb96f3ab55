"""Enrollment asks the door's liveness cues about each camera frame and warns when they would refuse the person.

Real pipeline, real fixture photos as camera frames, a real SQLite gallery; the
cnn cue's network is a real ONNX file made to say one logit for every face
(tests/buildkit.py), so the cue's verdict is known and the test is about what
enrollment does with it."""
from __future__ import annotations

import json

import cv2
import pytest
from buildkit import camera_clip
from buildkit import cnn_only_liveness as cnn_model

from edge.cli import main
from edge.enroll.capture import Shot, enroll
from edge.enroll.liveness_check import refusal_warning
from edge.gallery import open_gallery
from edge.liveness.judge import load_liveness


def shots(photo, person, numbers=(1, 2, 3)):
    return [Shot(f"{person}_{number}", photo(person, number)) for number in numbers]


def test_frames_the_cues_call_attacks_warn_name_the_cue_and_still_enroll(pipeline, gallery, photo, tmp_path):
    liveness = load_liveness("auto", path=cnn_model(tmp_path / "models", 6.0))
    lines = []
    result = enroll("Serena", pipeline, gallery, shots(photo, "Serena_Williams"), count=3, actor="test",
                    report=lines.append, liveness=liveness)
    assert result.templates == 3
    assert len(result.warnings) == 1
    warning = result.warnings[0]
    assert warning.startswith("the door's liveness cues call 3 of 3 of Serena's frames an attack (cnn on 3)")
    assert "will likely refuse Serena" in warning and "edge-verify liveness" in warning
    assert f"warning: {warning}" in lines
    notes = [template["quality"]["liveness"] for template in gallery.show("Serena")["templates"]]
    assert notes == [{"live": False, "refused_by": "cnn"}] * 3


def test_frames_the_cues_pass_give_no_warning(pipeline, gallery, photo, tmp_path):
    liveness = load_liveness("auto", path=cnn_model(tmp_path / "models", -6.0))
    result = enroll("Serena", pipeline, gallery, shots(photo, "Serena_Williams"), count=3, actor="test",
                    liveness=liveness)
    assert result.templates == 3 and result.warnings == []
    notes = [template["quality"]["liveness"] for template in gallery.show("Serena")["templates"]]
    assert notes == [{"live": True, "refused_by": None}] * 3


def test_without_the_cues_frames_are_not_judged(pipeline, gallery, photo):
    result = enroll("Serena", pipeline, gallery, shots(photo, "Serena_Williams"), count=3, actor="test")
    assert result.warnings == []
    assert all("liveness" not in template["quality"] for template in gallery.show("Serena")["templates"])


@pytest.mark.parametrize("refused, judged, warns", [(2, 4, True), (3, 5, True), (2, 5, False), (1, 3, False),
                                                    (0, 5, False), (1, 1, True)])
def test_half_or_more_of_the_frames_refused_warns(refused, judged, warns):
    notes = [{"live": False, "refused_by": "texture"}] * refused + [{"live": True, "refused_by": None}] * (judged - refused)
    warning = refusal_warning("Ada", notes + [None])  # a frame not judged counts for nothing
    assert (warning is not None) == warns
    if warns:
        assert warning.startswith(f"the door's liveness cues call {refused} of {judged} of Ada's frames an attack "
                                  f"(texture on {refused})")


def test_nothing_judged_gives_no_warning():
    assert refusal_warning("Ada", []) is None and refusal_warning("Ada", [None, None]) is None


@pytest.fixture
def where(gallery_files):
    path, key = gallery_files
    return ["--gallery", str(path), "--key", str(key)]


def test_cli_camera_enrollment_warns_with_the_homes_liveness_model(fetched_home, token, where, gallery_files,
                                                                    face_images, capsys, tmp_path):
    cnn_model(fetched_home / "models", 6.0)
    video = camera_clip(tmp_path / "kiosk.avi", [cv2.imread(str(p)) for p in face_images["Jennifer_Aniston"]])
    code = main(["enroll", "Jennifer", "--camera", f"file://{video}", "--count", "3", "--no-poses", "--no-config",
                 "--interval", "0.25", "--timeout", "20", "--token", token, "--json", *where])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["templates"] == 3
    assert [w for w in result["warnings"] if "liveness" in w] == [result["warnings"][0]]
    assert "call 3 of 3 of Jennifer's frames an attack (cnn on 3)" in result["warnings"][0]
    assert "warning: the door's liveness cues call 3 of 3" in err
    with open_gallery(*gallery_files) as opened:
        assert opened.list_people()[0]["templates"] == 3


def test_cli_photos_are_not_judged(fetched_home, token, where, face_images, capsys):
    cnn_model(fetched_home / "models", 6.0)
    code = main(["enroll", "Serena", "--images", *map(str, face_images["Serena_Williams"][:3]), "--no-config",
                 "--token", token, "--json", *where])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["warnings"] == [] and all("liveness" not in note for note in result["quality"])


def test_cli_liveness_off_in_the_config_judges_nothing(fetched_home, token, where, face_images, capsys, tmp_path):
    cnn_model(fetched_home / "models", 6.0)
    config = tmp_path / "config.toml"
    config.write_text('[decision]\nliveness = "off"\n')
    video = camera_clip(tmp_path / "kiosk.avi", [cv2.imread(str(p)) for p in face_images["Jennifer_Aniston"]])
    code = main(["enroll", "Jennifer", "--camera", f"file://{video}", "--count", "3", "--no-poses",
                 "--config", str(config), "--interval", "0.25", "--timeout", "20", "--token", token, "--json", *where])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["warnings"] == []


def test_cli_a_broken_liveness_model_is_said_and_enrollment_goes_on(fetched_home, token, where, face_images,
                                                                     capsys, tmp_path):
    cnn_model(fetched_home / "models", 6.0)
    with open(fetched_home / "models" / "liveness-cnn.onnx", "ab") as handle:
        handle.write(b"\0")
    video = camera_clip(tmp_path / "kiosk.avi", [cv2.imread(str(p)) for p in face_images["Jennifer_Aniston"]])
    code = main(["enroll", "Jennifer", "--camera", f"file://{video}", "--count", "3", "--no-poses", "--no-config",
                 "--interval", "0.25", "--timeout", "20", "--token", token, "--json", *where])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["templates"] == 3
    assert "warning: the door's liveness cues cannot be loaded" in err and "SHA-256" in err
