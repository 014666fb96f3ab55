"""benchmarks/liveness_synthetic_attacks.py counts what the product's own judgement says, clip by clip.

A folder laid out as LFW (images/<person>/<photo>.jpg) of the committed fixture photos; the home's
liveness model is a cnn cue whose network says one logit for every face (tests/buildkit.py), so each
count is known: an attack network refuses every clip and photo, a live one passes them."""
from __future__ import annotations

import json

import pytest
from buildkit import cnn_only_liveness, load_benchmark

BENCH = load_benchmark("liveness_synthetic_attacks")


@pytest.fixture
def lfw(tmp_path, face_images):
    for person, paths in face_images.items():
        folder = tmp_path / "lfw" / "images" / person
        folder.mkdir(parents=True)
        for path in paths:
            (folder / path.name).symlink_to(path)
    return tmp_path / "lfw"


def run(tmp_path, lfw, logit: float) -> dict:
    cnn_only_liveness(tmp_path / "home" / "models", logit)
    out = tmp_path / f"figures{logit}.json"
    assert BENCH.main(["--lfw", str(lfw), "--clips", "4", "--frames", "8", "--photos", "2", "--json", str(out)]) == 0
    return json.loads(out.read_text())["cue_sets"]["auto"]


def test_an_attack_network_refuses_every_clip_and_photo(fetched_home, tmp_path, lfw):
    result = run(tmp_path, lfw, 6.0)
    assert result["cues"] == ["cnn"]
    tally = result["tally"]
    assert sorted(tally) == ["phone moving", "phone still", "print moving", "print still"]
    assert all(counts["clips"] == 1 and counts["accepted"] == 0 for counts in tally.values())
    assert all(clip["refused_by"].get("cnn", 0) >= 1 for clip in result["clips"] if clip["faces"])
    assert result["photo_tally"] == {"photos": 2, "refused": 2, "refused_by": {"cnn": 2}}
    # every clip and photo is another person: the photos are of people no clip shows
    shown = {clip["source"].rsplit("_", 1)[0] for clip in result["clips"]}
    assert len(shown) == 4 and not shown & {photo["photo"].rsplit("_", 1)[0] for photo in result["photos"]}


def test_a_live_network_passes_every_clip_with_a_face(fetched_home, tmp_path, lfw):
    result = run(tmp_path, lfw, -6.0)
    window = 5  # the model's
    judged = [clip for clip in result["clips"] if clip["longest_track"] >= window]
    assert {clip["hand"] for clip in judged} >= {"still"}, "no still clip gave a full track"
    assert all(clip["live"] for clip in judged)
    short = [clip for clip in result["clips"] if clip["longest_track"] < window]
    assert not any(clip["live"] for clip in short)
    assert sum(counts["short"] for counts in result["tally"].values()) == len(short)
    assert result["photo_tally"]["refused"] == 0


def test_people_in_an_excluded_folder_are_never_drawn(tmp_path, face_images, lfw):
    import numpy as np

    trained = tmp_path / "trained"
    trained.mkdir()
    for person in ("Colin_Powell", "Serena_Williams"):
        (trained / face_images[person][0].name).symlink_to(face_images[person][0])
    people = BENCH.lfw_people(lfw, np.random.default_rng(0), [trained])
    assert sorted(path.name for path in people) == sorted(set(face_images) - {"Colin_Powell", "Serena_Williams"})


def test_a_card_held_over_the_face_in_a_real_room_covers_it_in_every_frame(pipeline, face_images):
    """--rooms: the card is held over the room's person, so the only face the door sees, frame after frame
    while the hand turns it, is the card's (a different person, by the product's own embedding)."""
    import numpy as np

    from edge.vision.image import load_image
    from edge_build.training import liveness_synth as synth
    from edge_build.training.liveness_clips import face_crop

    rng = np.random.default_rng(2)
    room = np.full((480, 640, 3), 120, np.uint8)
    person = load_image(face_images["Colin_Powell"][0])
    room[100:100 + person.shape[0], 300:300 + person.shape[1]] = person  # the person in the room
    in_room = pipeline.main_face(room)
    card_photo = load_image(face_images["Serena_Williams"][0])
    card = face_crop(card_photo, pipeline.main_face(card_photo).box, rng)
    place = BENCH.over_face(synth.mount(card, "print").shape[:2], in_room.box, rng)
    frames, _ = synth.flat_attack(card, rng, 8, kind="print", motion=synth.Motion(yaw_deg=25, pitch_deg=12, shift=0.01),
                                  room=room, **place)
    serena, colin = (pipeline.embed_primary(image) for image in (card_photo, person))
    for frame in frames:
        faces = pipeline.detect(frame, smallest=40)
        assert len(faces) == 1, "the room's person shows beside the card"
        seen = pipeline.embed_primary(frame)
        # the card's face, not the room's: far nearer Serena than Colin (the door's threshold is about 0.4-0.6)
        assert np.linalg.norm(seen - serena) + 0.2 < np.linalg.norm(seen - colin)
    with pytest.raises(ValueError, match="the room is 640x480, the frames 320x240"):
        synth.flat_attack(card, rng, 2, size=(320, 240), room=room)
