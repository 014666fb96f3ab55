"""Issue 12 item 10: removing a person erases what identifies them.

The audit log names people by their number in the gallery (whose name is erased with
them), so after `gallery remove X` the log no longer holds X's name and its chain still
verifies; the events file (and its rotated files) are rewritten with the number instead of
the name, and the face crops of X's events are deleted; quality notes keep no file paths.
"""
from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest

from edge.cli import main
from edge.gallery import open_gallery

MODEL = "dlib_resnet_v1"
TOKEN = "correct-horse-battery"
SECRET = "Xavier Quintessential"


@pytest.fixture
def home(tmp_path, monkeypatch, make_vectors):
    monkeypatch.setenv("EDGE_VERIFY_HOME", str(tmp_path))
    monkeypatch.setenv("EDGE_VERIFY_ADMIN_TOKEN", TOKEN)
    monkeypatch.setattr(sys, "stdin", io.StringIO(TOKEN + "\n"))
    assert main(["admin", "set-token"]) == 0
    with open_gallery(create=True, actor="test") as gallery:
        gallery.add_person_templates(SECRET, make_vectors(1, 3), MODEL, "test")
        gallery.add_person_templates("Bob", make_vectors(2, 3), MODEL, "test")
        gallery.rename(SECRET, SECRET + " Jr", "test")
        gallery.rename(SECRET + " Jr", SECRET, "test")
    return tmp_path


def event(person, face_image=None):
    line = {"time": "2025-01-01T00:00:00.000Z", "person": person, "distance": 0.2, "margin": None,
            "frames_agreed": 3, "unlock": person is not None, "latency_ms": 1.0}
    if face_image is not None:
        line["face_image"] = str(face_image)
    return json.dumps(line)


def test_removal_erases_the_name_from_the_audit_log_and_the_chain_still_verifies(home, capsys):
    assert main(["gallery", "remove", SECRET]) == 0
    assert SECRET not in (home / "gallery.audit.jsonl").read_text()
    capsys.readouterr()
    assert main(["gallery", "verify"]) == 0, capsys.readouterr().out


def test_removal_rewrites_the_events_and_deletes_the_face_crops(home, capsys):
    faces = home / "faces"
    faces.mkdir()
    crops = [faces / f"2025010100000{number}-0000000{number}.jpg" for number in range(3)]
    for crop in crops:
        crop.write_bytes(b"jpeg")
    events = home / "events.jsonl"
    events.write_text("\n".join([event(SECRET, crops[0]), event("Bob", crops[1]), event(None)]) + "\n")
    (home / "events.jsonl.1").write_text(event(SECRET, crops[2]) + "\n")
    assert main(["gallery", "remove", SECRET, "--events", str(events)]) == 0
    for path in (events, home / "events.jsonl.1"):
        text = path.read_text()
        assert SECRET not in text and all(json.loads(line) for line in text.splitlines())
    assert [json.loads(line)["person"] for line in events.read_text().splitlines()][1:] == ["Bob", None]
    assert not crops[0].exists() and crops[1].exists() and not crops[2].exists()
    assert "events" in capsys.readouterr().out


def test_quality_notes_keep_no_file_paths(pipeline, tmp_path, face_images):
    from edge.enroll.capture import enroll, image_shots

    with open_gallery(tmp_path / "g.sqlite", tmp_path / "g.key", create=True, actor="test") as gallery:
        enroll("Colin", pipeline, gallery, image_shots(face_images["Colin_Powell"][:3]), count=3, actor="test")
        notes = json.dumps(gallery.show("Colin"))
    assert str(face_images["Colin_Powell"][0].parent) not in notes and ".jpg" not in notes
    assert np.all(["photo" in note for note in [t["quality"]["frame"] for t in json.loads(notes)["templates"]]])
