"""Enrollment that lasts (issue 13 item 5): the kiosk asks for a few looks, keeps the templates that
add the most, and `gallery show NAME` says how well the person is covered."""
from __future__ import annotations

import json

import cv2
import numpy as np

from edge.cli import main
from edge.enroll.capture import Shot, enroll
from edge.enroll.coverage import coverage, look_of
from edge.enroll.poses import choose_templates, pose_plan
from edge.gallery import open_gallery

# George_W_Bush fixture photos measure yaw -9 (1), +1 (2), +16 (3), -32 (4) degrees. (A mirror image
# would have the opposite yaw but, with flip-averaged embeddings, the same template: a copy.)


def guided_frames(photo):
    bush = {n: photo("George_W_Bush", n) for n in (1, 2, 3, 4)}
    return [Shot("left too early", bush[3]), Shot("front a", bush[2]), Shot("front b", bush[1]),
            Shot("left a", bush[3]), Shot("right a", bush[4])]


def test_plan_asks_for_front_and_both_sides_and_glasses_off_when_worn():
    assert [pose.name for pose in pose_plan()] == ["front", "left", "right"]
    assert [pose.name for pose in pose_plan(glasses=True)][-1] == "front, no glasses"


def test_guided_enrollment_takes_each_look_and_keeps_the_ones_that_add_most(pipeline, gallery, photo):
    lines = []
    result = enroll("George", pipeline, gallery, guided_frames(photo), count=3, actor="test", report=lines.append,
                    poses=pose_plan(), per_pose=1)
    assert lines[0] == "pose 1 of 3: look straight at the camera"
    assert lines[1].startswith("left too early: yaw +16 deg, not yet: look straight at the camera")
    assert "pose 2 of 3: turn your head slightly to your left" in lines
    notes = [template["quality"] for template in gallery.show("George")["templates"]]
    assert result.templates == 3 and not result.warnings
    assert [note["pose"] for note in notes] == ["front", "left", "right"]
    assert all(look_of(note["yaw_deg"]) == note["pose"] for note in notes)
    # with fewer templates wanted than frames taken, the ones that add the most are kept
    lines = []
    enroll("George 2", pipeline, gallery, guided_frames(photo), count=2, actor="test", report=lines.append,
           poses=pose_plan(), per_pose=1, force=True)  # the same face again: forced past the duplicate check
    assert any(line.startswith("keeping the 2 of 3 good frames") for line in lines)


def test_a_look_not_given_is_a_warning(pipeline, gallery, photo):
    frames = guided_frames(photo)[:4] + [Shot("still front", photo("George_W_Bush", 1))]  # never turned right
    result = enroll("George", pipeline, gallery, frames, count=5, actor="test", poses=pose_plan(), per_pose=1,
                    min_count=2)
    assert result.templates == 2 and result.warnings == ["not covered: right (add them later with --append)"]


def test_choose_templates_keeps_the_typical_look_then_the_least_covered_ones():
    rng = np.random.default_rng(0)
    base = rng.normal(size=128)
    same_moment = [base + 0.01 * rng.normal(size=128) for _ in range(5)]
    turned = [base + 0.8 * rng.normal(size=128), base + 0.8 * rng.normal(size=128)]
    kept = choose_templates(np.stack(same_moment + turned), 3)
    assert sum(1 for row in kept if row < 5) == 1 and {5, 6} <= set(kept)  # one copy of the moment, both turns
    assert choose_templates(np.stack(same_moment[:2]), 3) == [0, 1]


def unit_rows(count, spread, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=128)
    rows = np.stack([base / np.linalg.norm(base) + spread * rng.normal(size=128) / np.sqrt(128) for _ in range(count)])
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_coverage_names_the_missing_looks_and_the_templates_the_others_miss():
    notes = [{"yaw_deg": yaw} for yaw in (-2.0, 4.0, 18.0)]
    found = coverage(notes, unit_rows(3, 0.2), threshold=0.4)
    assert found["looks"] == ["front", "left"] and found["missing"] == ["right"] and found["verdict"] == "partial"
    assert found["recognised"] == 3 and "turned slightly to their right" in found["advice"]
    full = coverage(notes + [{"yaw_deg": -20.0}], unit_rows(4, 0.2), threshold=0.4)
    assert full["verdict"] == "good" and full["advice"] is None and full["yaw_range"] == [-20.0, 18.0]
    strict = coverage(notes + [{"yaw_deg": -20.0}], unit_rows(4, 0.2), threshold=0.01)
    assert strict["recognised"] == 0 and strict["verdict"] == "partial"


def test_gallery_show_name_says_how_well_the_person_is_covered(models_ready, pipeline, photo, tmp_path, capsys):
    gallery_path, key = tmp_path / "gallery.sqlite", tmp_path / "gallery.key"
    with open_gallery(gallery_path, key, create=True, actor="test") as gallery:
        enroll("George", pipeline, gallery, guided_frames(photo), count=3, actor="test", poses=pose_plan(),
               per_pose=1)
        enroll("Colin", pipeline, gallery, [Shot(f"c{n}", photo("Colin_Powell", n)) for n in (1, 2, 4)], count=3,
               actor="test")
    where = ["--gallery", str(gallery_path), "--key", str(key)]
    assert main(["gallery", "show", "George", "--json", *where]) == 0
    george = json.loads(capsys.readouterr().out)["coverage"]
    assert george["looks"] == ["front", "left", "right"] and george["templates"] == 3
    assert main(["gallery", "show", "Colin", *where]) == 0
    text = capsys.readouterr().out
    assert "coverage partial: looks front" in text and "turned slightly to their left" in text


def test_camera_enrollment_asks_for_looks_by_default(models_ready, photo, tmp_path, capsys, monkeypatch):
    stills = tmp_path / "camera"
    stills.mkdir()
    for number, shot in enumerate(guided_frames(photo)):
        cv2.imwrite(str(stills / f"{number:02d}.png"), cv2.cvtColor(shot.image, cv2.COLOR_RGB2BGR))
    monkeypatch.setenv("EDGE_VERIFY_ADMIN_TOKEN", "poses-test-token-1")
    where = ["--gallery", str(tmp_path / "gallery.sqlite"), "--key", str(tmp_path / "gallery.key")]
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("poses-test-token-1\n"))
    assert main(["admin", "set-token", "--gallery", str(tmp_path / "gallery.sqlite")]) == 0
    capsys.readouterr()
    code = main(["enroll", "George", "--camera", f"dir://{stills}", "--count", "3", "--per-pose", "1", "--no-config",
                 "--daemon-socket", str(tmp_path / "no-daemon.sock"), *where])
    err = capsys.readouterr().err
    assert code == 0 and "pose 2 of 3: turn your head slightly to your left" in err
    assert main(["enroll", "Other", "--images", "x.jpg", "--glasses", *where]) == 2
    assert "--glasses and --no-poses are for --camera" in capsys.readouterr().err


def test_a_look_the_person_cannot_give_is_given_up_and_the_next_asked_for(pipeline, gallery, photo, monkeypatch):
    monkeypatch.setattr("edge.enroll.capture.POSE_PATIENCE", 2)
    bush = {n: photo("George_W_Bush", n) for n in (1, 2, 3, 4)}
    frames = [Shot("front", bush[2]), Shot("front again", bush[1]), Shot("still front", bush[1]),
              Shot("right", bush[4])]  # never turns left: after 2 frames of other looks, right is asked for
    lines = []
    result = enroll("George", pipeline, gallery, frames, count=5, actor="test", report=lines.append,
                    poses=pose_plan(), per_pose=1, min_count=2)
    assert "no frame of left (2 good frames, none left): going on without it" in lines
    assert result.templates == 2 and result.warnings == ["not covered: left (add them later with --append)"]
    assert [template["quality"]["pose"] for template in gallery.show("George")["templates"]] == ["front", "right"]
