"""Issue 12 item 2: an enrollment whose frames show two people never stores the second one.

The fixture photos (4 each of 8 LFW people) stand in for the LFW figures of
benchmarks/mixed_enrollment.py: no 2+3 or 1+4 mix of two fixture people may keep
frames of both, and every person's own 4 photos are kept whole.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from edge.enroll.capture import Shot, enroll
from edge.enroll.one_person import check_frames, split
from edge.exc import EnrollmentError
from edge.gallery.search import search
from edge.verify.api import embedding_space


@pytest.fixture(scope="module")
def fixture_embeddings(pipeline, face_images):
    """{person: [embedding of each photo that passes the quality gates]}, as enrollment makes them."""
    from edge.enroll.quality import assess
    from edge.vision.image import load_image

    out = {}
    for person, paths in face_images.items():
        verdicts = [assess(pipeline, load_image(path)) for path in paths]
        out[person] = [pipeline.embed(verdict.chip[None])[0] for verdict in verdicts if verdict.ok]
    return out


def shots(photo, people_and_numbers):
    return [Shot(f"{person}_{number}", photo(person, number)) for person, number in people_and_numbers]


def test_a_two_plus_three_mix_is_refused_and_nothing_is_stored(pipeline, gallery, photo):
    # The old check (each frame against the un-normalised mean of the others) enrolled this mix.
    frames = shots(photo, [("Arnold_Schwarzenegger", 1), ("Arnold_Schwarzenegger", 2), ("George_W_Bush", 1),
                           ("George_W_Bush", 2), ("George_W_Bush", 3)])
    with pytest.raises(EnrollmentError, match="two different people: good frames 1, 2 and 3, 4, 5"):
        enroll("Mixed", pipeline, gallery, frames, count=5, actor="test")
    assert gallery.list_people() == []


def test_a_one_plus_four_mix_never_stores_the_odd_person(pipeline, gallery, photo):
    frames = shots(photo, [("Colin_Powell", 1), ("Colin_Powell", 2), ("Tony_Blair", 1), ("Colin_Powell", 3),
                           ("Colin_Powell", 4)])
    try:
        result = enroll("Mixed", pipeline, gallery, frames, count=5, actor="test")
    except EnrollmentError:
        assert gallery.list_people() == []
        return
    assert [item.label for item in result.rejected] == ["Tony_Blair_1"]
    assert result.rejected[0].reasons[0].startswith("not the same person as the other good frames")
    names, index, matrix = gallery.load_matrix(embedding_space(pipeline.manifest))
    for number in (2, 3, 4):  # Tony Blair's other photos are not "Mixed"
        match = search(matrix, index, names, pipeline.embed_primary(photo("Tony_Blair", number)))
        assert match.distance > pipeline.threshold


def test_no_mix_of_fixture_people_keeps_both_and_each_person_is_kept_whole(pipeline, fixture_embeddings):
    threshold = float(pipeline.threshold)
    stored_both, mixes = [], 0
    for first, second in itertools.permutations(sorted(fixture_embeddings), 2):
        for size in (2, 1):
            for chosen_first in itertools.combinations(fixture_embeddings[first], size):
                for chosen_second in itertools.combinations(fixture_embeddings[second], 5 - size):
                    mixes += 1
                    verdict = check_frames(np.stack(chosen_first + chosen_second), threshold)
                    kept = {0 if row < size else 1 for row in verdict.keep}
                    if verdict.problem is None and kept == {0, 1}:
                        stored_both.append((first, second, size))
    assert mixes > 1000 and stored_both == []
    for person, rows in fixture_embeddings.items():
        verdict = check_frames(np.stack(rows), threshold)
        assert verdict.problem is None and verdict.keep == list(range(len(rows))), person


def test_the_length_of_a_template_cannot_hide_a_second_person(fixture_embeddings, pipeline):
    # Frames are compared on unit vectors: scaling some up or down changes nothing.
    rows = np.stack(fixture_embeddings["Colin_Powell"][:3] + fixture_embeddings["Serena_Williams"][:2])
    threshold = float(pipeline.threshold)
    for scale in (0.1, 1.0, 25.0):
        scaled = rows.copy()
        scaled[3:] *= scale
        verdict = check_frames(scaled, threshold)
        assert verdict.problem is not None and "frames 1, 2, 3 and 4, 5" in verdict.problem


def test_split_finds_the_two_groups():
    rng = np.random.default_rng(3)
    centre_a, centre_b = rng.normal(size=(2, 64))
    rows = np.stack([centre_a + rng.normal(scale=0.05, size=64) for _ in range(3)]
                    + [centre_b + rng.normal(scale=0.05, size=64) for _ in range(2)])
    distance, groups = split(rows[[0, 3, 1, 4, 2]])
    assert sorted(map(sorted, groups)) == [[0, 2, 4], [1, 3]] and distance > 0.5
    assert check_frames(rows[:1], 0.4).keep == [0]  # one frame: nothing to compare
