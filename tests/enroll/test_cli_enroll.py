"""`edge-verify enroll` as installers and acceptance scripts run it."""
from __future__ import annotations

import json
import stat

import cv2
import pytest
from buildkit import camera_clip
from enroll_frames import rotated

from edge.cli import main
from edge.gallery import open_gallery


def run(capsys, *argv):
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def where(gallery_files):
    path, key = gallery_files
    return ["--gallery", path, "--key", key]


def test_first_enrollment_creates_gallery_and_key(models_ready, token, where, gallery_files, face_images, capsys):
    path, key = gallery_files
    assert not path.exists() and not key.exists()
    code, out, err = run(capsys, "enroll", "Serena Williams", "--images", *face_images["Serena_Williams"][:3],
                         "--token", token, *where)
    assert code == 0, err
    assert out.strip() == "enrolled Serena Williams: 3 templates from 3 frames (0 rejected)"
    assert "(3/5 good frames)" in err  # progress goes to stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    with open_gallery(path, key) as gallery:
        assert gallery.list_people()[0]["templates"] == 3


def test_token_from_the_environment_and_json(models_ready, token, where, gallery_files, face_images, capsys,
                                             monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_VERIFY_ADMIN_TOKEN", token)
    bad = tmp_path / "rotated.png"
    cv2.imwrite(str(bad), cv2.cvtColor(rotated(cv2.cvtColor(cv2.imread(str(face_images["Colin_Powell"][0])),
                                                            cv2.COLOR_BGR2RGB)), cv2.COLOR_RGB2BGR))
    code, out, err = run(capsys, "enroll", "Colin", "--images", bad, *face_images["Colin_Powell"], "--count", "4",
                         "--json", *where)
    assert code == 0, err
    result = json.loads(out)
    assert result["name"] == "Colin" and result["templates"] == 4 and result["frames"] == 5
    assert result["rejected"][0]["frame"] == str(bad)
    assert result["rejected"][0]["reasons"][0].startswith("head tilted: roll")
    assert f"{bad}: rejected: head tilted: roll" in err
    assert len(result["quality"]) == 4 and {"sharpness", "yaw_deg", "brightness"} <= set(result["quality"][0])


@pytest.mark.parametrize("given, message", [
    (None, "this command needs the admin token"),
    ("wrong-token-123", "the admin token is wrong"),
])
def test_token_is_required(models_ready, token, where, gallery_files, face_images, capsys, given, message):
    extra = [] if given is None else ["--token", given]
    code, _, err = run(capsys, "enroll", "Colin", "--images", *face_images["Colin_Powell"], *extra, *where)
    assert code == 3 and message in err
    assert not gallery_files[0].exists()  # refused before anything was made


def test_no_token_set_yet(models_ready, where, gallery_files, face_images, capsys, monkeypatch):
    monkeypatch.delenv("EDGE_VERIFY_ADMIN_TOKEN", raising=False)
    code, _, err = run(capsys, "enroll", "Colin", "--images", *face_images["Colin_Powell"], "--token", "anything-1",
                       *where)
    assert code == 3 and "no admin token is set" in err and "admin set-token" in err


def test_duplicate_refused_then_forced(models_ready, token, where, gallery_files, face_images, capsys):
    colin = face_images["Colin_Powell"]
    assert run(capsys, "enroll", "Alice", "--images", *colin[:2], "--count", "2", "--token", token, *where)[0] == 0
    code, _, err = run(capsys, "enroll", "Bob", "--images", *colin[2:], "--count", "2", "--token", token, *where)
    assert code == 4
    assert "the door would take this face for Alice, who is already enrolled" in err and "--force" in err
    code, _, err = run(capsys, "enroll", "Bob", "--images", *colin[2:], "--count", "2", "--token", token, "--force",
                       *where)
    assert code == 0 and "warning: the door would take this face for Alice" in err
    with open_gallery(*gallery_files) as gallery:
        assert [(p["name"], p["templates"]) for p in gallery.list_people()] == [("Alice", 2), ("Bob", 2)]


def test_same_name_needs_append(models_ready, token, where, gallery_files, face_images, capsys):
    colin = face_images["Colin_Powell"]
    assert run(capsys, "enroll", "Colin", "--images", *colin[:2], "--count", "2", "--token", token, *where)[0] == 0
    code, _, err = run(capsys, "enroll", "Colin", "--images", *colin[2:], "--count", "2", "--token", token, *where)
    assert code == 1 and "Colin is already enrolled (2 templates); use --append" in err
    code, out, _ = run(capsys, "enroll", "Colin", "--images", *colin[2:], "--count", "2", "--token", token, "--append",
                       *where)
    assert code == 0 and out.startswith("added Colin: 2 templates")
    with open_gallery(*gallery_files) as gallery:
        assert gallery.list_people()[0]["templates"] == 4


@pytest.mark.parametrize("arguments, message", [
    (["--count", "0"], "--count must be at least 1"),
    (["--count", "2", "--min-count", "3"], "--min-count (3) cannot exceed --count (2)"),
])
def test_bad_numbers(models_ready, token, where, face_images, capsys, arguments, message):
    code, _, err = run(capsys, "enroll", "Colin", "--images", *face_images["Colin_Powell"], "--token", token,
                       *arguments, *where)
    assert code == 2 and message in err


def test_needs_exactly_one_source(capsys):
    with pytest.raises(SystemExit):
        main(["enroll", "Colin"])
    assert "one of the arguments --camera --images is required" in capsys.readouterr().err


def test_help_explains_the_gates_and_the_token(capsys):
    with pytest.raises(SystemExit):
        main(["enroll", "--help"])
    text = capsys.readouterr().out
    for words in ("EDGE_VERIFY_ADMIN_TOKEN", "--camera", "--images", "too blurred", "--force", "--append",
                  "identify"):
        assert words in text


def test_enroll_from_a_camera_uri(models_ready, token, where, gallery_files, face_images, capsys, tmp_path):
    video = camera_clip(tmp_path / "kiosk.avi", [cv2.imread(str(path)) for path in face_images["Jennifer_Aniston"]])
    code, out, err = run(capsys, "enroll", "Jennifer", "--camera", f"file://{video}", "--count", "3", "--no-poses",
                         "--interval", "0.25", "--timeout", "20", "--token", token, "--json", *where)
    assert code == 0, err
    assert json.loads(out)["templates"] == 3 and "(3/3 good frames)" in err
