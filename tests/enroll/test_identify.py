"""`edge-verify identify IMG... --json` on enrolled and never-enrolled fixture people."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.daemon import config, parts
from edge.enroll.capture import Shot, enroll
from edge.gallery import open_gallery
from edge.daemon.decision import combined_cohort, door_threshold, match_probe
from edge.daemon.tracking import combine, frame_weight


@pytest.fixture
def enrolled(pipeline, gallery_files, photo):
    """Serena Williams and Gloria Macapagal Arroyo enrolled from photos 1-3 (6 templates)."""
    with open_gallery(*gallery_files, create=True, actor="test") as gallery:
        for name, person in (("Serena", "Serena_Williams"), ("Gloria", "Gloria_Macapagal_Arroyo")):
            frames = [Shot(f"{person}_{n}", photo(person, n)) for n in (1, 2, 3)]
            enroll(name, pipeline, gallery, frames, count=3, actor="test")
    return gallery_files


def identify(capsys, gallery_files, *images):
    code = main(["identify", "--json", "--gallery", str(gallery_files[0]), "--key", str(gallery_files[1]),
                 *map(str, images)])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_identify_json(enrolled, pipeline, face_images, capsys, tmp_path):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 120, np.uint8))
    images = [face_images["Serena_Williams"][3], face_images["Gloria_Macapagal_Arroyo"][3],
              face_images["Jennifer_Aniston"][0], face_images["Hugo_Chavez"][0], blank]
    code, answers, _ = identify(capsys, enrolled, *images)
    assert code == 0
    assert [answer["image"] for answer in answers] == [str(image) for image in images]
    threshold = door_threshold(pipeline.manifest, 6, combined=True).threshold  # the door's, for what it judges
    assert all(answer["threshold"] == threshold for answer in answers)
    serena, gloria, jennifer, hugo, empty = answers
    for answer, name in ((serena, "Serena"), (gloria, "Gloria")):
        assert answer["person"] == name and answer["nearest"] == name
        assert 0 < answer["distance"] <= threshold and answer["margin"] > 0
        assert answer["faces"] == 1 and "reason" not in answer
    for stranger in (jennifer, hugo):
        assert stranger["person"] is None
        assert stranger["distance"] > threshold and stranger["nearest"] in ("Serena", "Gloria")
        assert stranger["reason"].startswith(f"nearest is {stranger['nearest']} at ")
    assert empty == {"image": str(blank), "person": None, "distance": None, "margin": None,
                     "threshold": threshold, "nearest": None, "faces": 0, "reason": "no face found"}


def test_margin_is_to_the_second_person(enrolled, pipeline, face_images, capsys, photo):
    _, (answer,), _ = identify(capsys, enrolled, face_images["Serena_Williams"][3])
    probe = pipeline.embed_primary(photo("Serena_Williams", 4))
    gloria = [pipeline.embed_primary(photo("Gloria_Macapagal_Arroyo", n)) for n in (1, 2, 3)]
    distances = [float(np.linalg.norm(vector - probe)) for vector in gloria]
    second = min(distances)
    cohort = combined_cohort(pipeline.manifest)
    if cohort is not None:  # the door compares the two nearest people by cohort-adjusted distances
        nearest = gloria[int(np.argmin(distances))]
        spreads = cohort.spreads(np.stack([probe, nearest]))
        second = float(cohort.adjust(second, spreads[0], spreads[1]))
    assert answer["margin"] == pytest.approx(second - answer["distance"], abs=2e-4)


def test_unreadable_image_gives_a_reason_and_exit_1(enrolled, face_images, capsys, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    code, answers, _ = identify(capsys, enrolled, broken, face_images["Serena_Williams"][3])
    assert code == 1
    assert answers[0]["person"] is None and answers[0]["reason"].startswith("unreadable: ")
    assert answers[1]["person"] == "Serena"


def test_text_output(enrolled, face_images, capsys):
    code = main(["identify", "--gallery", str(enrolled[0]), "--key", str(enrolled[1]),
                 str(face_images["Serena_Williams"][3]), str(face_images["Hugo_Chavez"][0])])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0].startswith(f"{face_images['Serena_Williams'][3]}: Serena (distance 0.")
    assert lines[1].startswith(f"{face_images['Hugo_Chavez'][0]}: nobody (nearest is ")


def test_without_a_gallery(models_ready, gallery_files, face_images, capsys):
    code = main(["identify", "--gallery", str(gallery_files[0]), "--key", str(gallery_files[1]),
                 str(face_images["Serena_Williams"][3])])
    assert code == 1 and "no gallery at" in capsys.readouterr().err


def test_gallery_show_reports_the_threshold_for_its_size(enrolled, pipeline, capsys):
    where = ["--gallery", str(enrolled[0]), "--key", str(enrolled[1])]
    assert main(["gallery", "show", "--json", *where]) == 0
    summary = json.loads(capsys.readouterr().out)
    expected = door_threshold(pipeline.manifest, 6, combined=True)
    assert summary["threshold_1n"]["threshold"] == expected.threshold
    assert summary["threshold_1n"]["n_templates"] == summary["templates"] == 6
    assert summary["threshold_1n"]["rule"] == expected.rule
    assert main(["gallery", "show", *where]) == 0
    text = capsys.readouterr().out
    assert f"threshold    {expected.threshold:.4f} for 1:N with 6 templates (rule: {expected.rule}" in text


def test_identify_decides_with_the_daemons_decision_settings(enrolled, pipeline, face_images, capsys, tmp_path):
    """identify reads [decision] from the daemon's config and takes the threshold from the daemon's own code."""
    settings_file = tmp_path / "config.toml"
    settings_file.write_text("[decision]\nstranger_rate = 0.01\n")
    serena = face_images["Serena_Williams"][3]
    where = ["--gallery", str(enrolled[0]), "--key", str(enrolled[1]), "--config", str(settings_file)]
    assert main(["identify", "--json", *where, str(serena)]) == 0
    answer, = json.loads(capsys.readouterr().out)
    daemon_settings = config.load(settings_file, {"gallery.path": str(enrolled[0]), "gallery.key": str(enrolled[1])})
    door = parts.open_live_gallery(daemon_settings, pipeline.manifest)
    door.gallery.close()
    assert answer["threshold"] == door.combined_threshold == door_threshold(pipeline.manifest, 6, stranger_rate=0.01,
                                                                             combined=True).threshold
    assert answer["threshold"] != door_threshold(pipeline.manifest, 6, combined=True).threshold  # the config was read

    settings_file.write_text("[decision]\nthreshold = 0.05\n")  # set in the config: replaces the 1:N rule
    assert main(["identify", "--json", *where, str(serena)]) == 0
    answer, = json.loads(capsys.readouterr().out)
    assert answer["threshold"] == 0.05 and answer["person"] is None and answer["nearest"] == "Serena"
    assert answer["reason"].startswith("nearest is Serena at ") and answer["reason"].endswith("above the threshold 0.050")


def identify_combined(capsys, gallery_files, *images):
    code = main(["identify", "--combine", "--json", "--gallery", str(gallery_files[0]), "--key", str(gallery_files[1]),
                 *map(str, images)])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_combine_decides_the_photos_as_one_attempt_with_the_doors_code(enrolled, pipeline, face_images, capsys,
                                                                     tmp_path, photo):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 120, np.uint8))
    code, answer, _ = identify_combined(capsys, enrolled, face_images["Serena_Williams"][3],
                                        face_images["Serena_Williams"][0], blank)
    assert code == 0 and answer["photos_combined"] == 2 and answer["faces"] == [1, 1, 0]
    assert answer["skipped"] == [f"{blank}: no face found"] and answer["person"] == "Serena"
    # the same probe the daemon makes of a track's frames: weighted mean of unit embeddings, at unit length
    mains = [pipeline.main_face(photo("Serena_Williams", n)) for n in (4, 1)]
    probe = combine([pipeline.embed(main.chip)[0] for main in mains],
                    [frame_weight(main, pipeline.mean, pipeline.std, pipeline.padding) for main in mains])
    with open_gallery(*enrolled) as gallery:
        names, index, matrix = gallery.load_matrix()
    threshold = door_threshold(pipeline.manifest, len(matrix), combined=True).threshold
    door = match_probe(matrix, index, names, probe, threshold, combined_cohort(pipeline.manifest))
    assert door.person == "Serena" and answer["distance"] == pytest.approx(door.distance, abs=1e-4)
    assert answer["threshold"] == threshold


def test_combined_photos_land_nearer_the_person_than_the_worse_photo_alone(enrolled, face_images, capsys):
    photos = [face_images["Serena_Williams"][3], face_images["Serena_Williams"][0]]
    _, singles, _ = identify(capsys, enrolled, *photos)
    _, together, _ = identify_combined(capsys, enrolled, *photos)
    assert together["distance"] < max(single["distance"] for single in singles)


def test_combine_with_no_usable_photo_says_why_and_fails_on_unreadable(enrolled, capsys, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    code, answer, _ = identify_combined(capsys, enrolled, broken)
    assert code == 1 and answer["photos_combined"] == 0 and answer["person"] is None
    assert answer["faces"] == [None] and answer["reason"] == "no photo shows a usable face"
