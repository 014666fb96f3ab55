"""enroll(): real fixture photos, the real pipeline, a real SQLite gallery in tmp_path."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge.verify.api import embedding_space
from enroll_frames import blurred, darkened

from edge.enroll.capture import Shot, camera_shots, enroll, image_shots
from edge.exc import DuplicateFaceError, EnrollmentError, GalleryError, SourceError
from edge.gallery.search import search


def photos(photo, person, numbers=(1, 2, 3, 4)):
    return [Shot(f"{person}_{number}", photo(person, number)) for number in numbers]


def test_enrolls_fixture_photos_with_progress_and_quality(pipeline, gallery, photo):
    lines = []
    result = enroll("Serena", pipeline, gallery, photos(photo, "Serena_Williams"), count=3, actor="test",
                    report=lines.append)
    assert result.templates == 3 and result.frames == 3 and not result.rejected
    assert lines == [f"Serena_Williams_{n}: good ({n}/3 good frames)" for n in (1, 2, 3)]  # stops at count
    shown = gallery.show("Serena")
    assert len(shown["templates"]) == 3
    assert [t["quality"]["frame"] for t in shown["templates"]] == ["Serena_Williams_1", "Serena_Williams_2",
                                                                     "Serena_Williams_3"]
    assert all(t["quality"]["face_px"] >= 80 and t["quality"]["sharpness"] > 0 for t in shown["templates"])
    # the stored templates are the pipeline's own embeddings of those photos
    names, index, matrix = gallery.load_matrix(embedding_space(pipeline.manifest))
    expected = pipeline.embed_primary(photo("Serena_Williams", 2))
    assert np.min(np.linalg.norm(matrix - expected, axis=1)) < 1e-4
    # and the unused fourth photo is found as Serena
    assert search(matrix, index, names, pipeline.embed_primary(photo("Serena_Williams", 4))).person == "Serena"


def test_rejections_are_reported_with_reasons_and_skipped(pipeline, gallery, photo):
    lines = []
    frames = [Shot("blurred", blurred(photo("Colin_Powell", 1))), Shot("dark", darkened(photo("Colin_Powell", 2))),
              *photos(photo, "Colin_Powell", (1, 2, 3))]
    result = enroll("Colin", pipeline, gallery, frames, count=3, actor="test", report=lines.append)
    assert result.templates == 3 and result.frames == 5
    assert [item.label for item in result.rejected] == ["blurred", "dark"]
    assert lines[0].startswith("blurred: rejected: too blurred: sharpness")
    assert lines[1].startswith("dark: rejected: too dark: brightness")
    assert lines[2] == "Colin_Powell_1: good (1/3 good frames)"


def test_too_few_good_frames_stores_nothing(pipeline, gallery, photo):
    version = gallery.version()
    frames = [Shot("b1", blurred(photo("Colin_Powell", 1))), Shot("b2", blurred(photo("Colin_Powell", 2))),
              *photos(photo, "Colin_Powell", (3, 4))]
    with pytest.raises(EnrollmentError, match=r"only 2 good frames of 4 \(at least 3 needed\); rejected: "
                                              r"too blurred \(2\); nothing was stored"):
        enroll("Colin", pipeline, gallery, frames, count=5, actor="test")
    assert gallery.list_people() == [] and gallery.version() == version


def test_source_that_ends_early_still_enrolls_the_minimum(pipeline, gallery, photo):
    result = enroll("Colin", pipeline, gallery, photos(photo, "Colin_Powell"), count=5, actor="test")
    assert result.templates == 4  # four photos: fewer than 5, at least 3


def test_unreadable_file_is_reported_not_fatal(pipeline, gallery, face_images, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    lines = []
    result = enroll("Colin", pipeline, gallery, image_shots([broken, *face_images["Colin_Powell"][:3]]), count=3,
                    actor="test", report=lines.append)
    assert result.templates == 3
    assert lines[0] == f"{broken}: skipped: not a readable image (corrupt, truncated or not a JPEG/PNG/BMP/WebP file)"


def test_duplicate_under_another_name_is_refused_unless_forced(pipeline, gallery, photo):
    enroll("Alice", pipeline, gallery, photos(photo, "Colin_Powell", (1, 2)), count=2, actor="test")
    version = gallery.version()
    with pytest.raises(DuplicateFaceError, match=r"the door would take this face for Alice, who is already enrolled "
                                                 r"\(the 2 frames combined are 0\.\d+ from them, within the door's "
                                                 r"threshold 0\.\d+\).*use --force"):
        enroll("Bob", pipeline, gallery, photos(photo, "Colin_Powell", (3, 4)), count=2, actor="test")
    assert [p["name"] for p in gallery.list_people()] == ["Alice"] and gallery.version() == version
    lines = []
    result = enroll("Bob", pipeline, gallery, photos(photo, "Colin_Powell", (3, 4)), count=2, force=True,
                    actor="test", report=lines.append)
    assert result.templates == 2 and result.warnings and lines[-1].startswith("warning: the door would take this "
                                                                              "face for Alice")
    record = json.loads(gallery.audit.path.read_text().splitlines()[-1])
    assert record["action"] == "add" and record["subject"] == gallery.person_ref("Bob")
    assert record["details"]["forced_duplicate"] == gallery.person_ref("Alice")


def test_force_never_switches_off_the_one_person_check(pipeline, gallery, photo):
    frames = photos(photo, "Arnold_Schwarzenegger", (1, 2)) + photos(photo, "George_W_Bush", (1, 2, 3))
    with pytest.raises(EnrollmentError, match="two different people"):
        enroll("Mixed", pipeline, gallery, frames, count=5, force=True, actor="test")
    assert gallery.list_people() == []


def test_the_duplicate_check_asks_the_doors_threshold_for_this_gallery(pipeline, gallery, photo):
    enroll("Alice", pipeline, gallery, photos(photo, "Colin_Powell", (1, 2)), count=2, actor="test")
    # a site whose door decides at a tighter threshold than these two photo sets are apart: not a duplicate
    result = enroll("Bob", pipeline, gallery, photos(photo, "Colin_Powell", (3, 4)), count=2, actor="test",
                    decision={"threshold": 0.05, "stranger_rate": 1e-3})
    assert result.templates == 2 and not result.warnings


def test_another_person_is_not_a_duplicate(pipeline, gallery, photo):
    enroll("Alice", pipeline, gallery, photos(photo, "Colin_Powell", (1, 2)), count=2, actor="test")
    result = enroll("Serena", pipeline, gallery, photos(photo, "Serena_Williams", (1, 2)), count=2, actor="test")
    assert result.templates == 2 and not result.warnings


def test_same_name_needs_append_and_append_needs_the_same_face(pipeline, gallery, photo):
    enroll("Colin", pipeline, gallery, photos(photo, "Colin_Powell", (1, 2)), count=2, actor="test")
    def never_read():
        raise AssertionError("frames were taken before the name was checked")
        yield

    with pytest.raises(GalleryError, match="Colin is already enrolled .*use --append"):
        enroll("Colin", pipeline, gallery, never_read(), count=2, actor="test")
    result = enroll("Colin", pipeline, gallery, photos(photo, "Colin_Powell", (3, 4)), count=2, append=True,
                    actor="test")
    assert result.appended and gallery.list_people()[0]["templates"] == 4
    with pytest.raises(EnrollmentError, match="do not look like the enrolled Colin"):
        enroll("Colin", pipeline, gallery, photos(photo, "Serena_Williams", (1, 2)), count=2, append=True,
               actor="test")
    assert gallery.list_people()[0]["templates"] == 4


def test_frames_of_two_people_are_refused(pipeline, gallery, photo):
    frames = photos(photo, "Colin_Powell", (1, 2)) + photos(photo, "Serena_Williams", (1,))
    with pytest.raises(EnrollmentError, match="rejected: not the same person as the other good frames"):
        enroll("Colin", pipeline, gallery, frames, count=3, actor="test")
    assert gallery.list_people() == []


# ---- from a camera: a real MJPG video through cv2.VideoCapture ---------------------------------------

def write_video(path, frames_bgr, fps=10.0):
    height, width = frames_bgr[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened()
    for frame in frames_bgr:
        writer.write(frame)
    writer.release()
    return path


def test_enrolls_from_a_camera_stream(pipeline, gallery, face_images, tmp_path):
    # four photos, each held for 0.3 s at 10 fps; frames are taken at most every 0.25 s
    stills = [cv2.imread(str(path)) for path in face_images["Gloria_Macapagal_Arroyo"]]
    video = write_video(tmp_path / "kiosk.avi", [still for still in stills for _ in range(3)])
    lines = []
    result = enroll("Gloria", pipeline, gallery, camera_shots(f"file://{video}", timeout_s=20, interval_s=0.25),
                    count=3, actor="test", report=lines.append)
    assert result.templates == 3
    labels = [entry["frame"] for entry in result.quality]
    numbers = [int(label.split()[1]) for label in labels]
    assert numbers == sorted(numbers) and min(np.diff(numbers)) >= 2  # spaced, not consecutive frames
    assert lines[-1].endswith("good (3/3 good frames)")


def test_camera_without_faces_fails_clearly(pipeline, gallery, tmp_path):
    video = write_video(tmp_path / "empty.avi", [np.full((240, 320, 3), 100, np.uint8)] * 6, fps=20.0)
    with pytest.raises(EnrollmentError, match=r"only 0 good frames of \d+ \(at least 3 needed\); rejected: "
                                              r"no face found \(\d+\)"):
        enroll("Nobody", pipeline, gallery, camera_shots(f"file://{video}", interval_s=0.0), actor="test")
    assert gallery.list_people() == []


def test_camera_that_cannot_open_is_an_error(pipeline, gallery, tmp_path):
    with pytest.raises(SourceError):
        enroll("Nobody", pipeline, gallery, camera_shots(f"file://{tmp_path / 'missing.avi'}"), actor="test")


def test_a_folder_of_stills_is_taken_whole(pipeline, gallery, face_images, tmp_path):
    import shutil

    folder = tmp_path / "stills"
    folder.mkdir()
    for path in face_images["Hugo_Chavez"]:
        shutil.copy(path, folder / path.name)
    result = enroll("Hugo", pipeline, gallery, camera_shots(f"dir://{folder}", interval_s=5.0), count=4, actor="test")
    assert [entry["frame"] for entry in result.quality] == ["frame 0", "frame 1", "frame 2", "frame 3"]
