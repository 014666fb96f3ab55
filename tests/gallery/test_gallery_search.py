"""1:N search on synthetic vectors: best person, per-person margin, edge cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edge.exc import GalleryError
from edge.gallery.search import search


def gallery_of(centres: dict, per_person: int, spread: float, seed: int = 0):
    """(names, person_index, matrix): templates scattered around each person's centre."""
    rng = np.random.default_rng(seed)
    names = sorted(centres)
    rows, index = [], []
    for position, name in enumerate(names):
        for _ in range(per_person):
            rows.append(np.asarray(centres[name]) + rng.normal(scale=spread, size=len(centres[name])))
            index.append(position)
    return names, np.asarray(index), np.asarray(rows, dtype=np.float32)


def test_best_person_and_margin_to_the_second_person():
    names = ["ann", "bob", "cat"]
    matrix = np.array([[0, 0], [0, 1], [3, 0], [3, 4], [10, 10]], dtype=np.float32)
    index = np.array([0, 0, 1, 1, 2])
    match = search(matrix, index, names, [0.0, 0.1])
    assert match.person == "ann"
    assert match.distance == pytest.approx(0.1, abs=1e-6)
    # the second-nearest template is ann's other one (0.9 away): the margin must use bob instead
    assert match.second_person == "bob"
    assert match.second_distance == pytest.approx(math.hypot(3, 0.1), abs=1e-6)
    assert match.margin == pytest.approx(match.second_distance - match.distance)


def test_nearest_template_decides_for_each_person():
    names = ["ann", "bob"]
    # bob's mean is far away, but one of his templates is nearest: min, not mean
    matrix = np.array([[1, 0], [1.1, 0], [0.2, 0], [9, 0], [9, 0]], dtype=np.float32)
    match = search(matrix, np.array([0, 0, 1, 1, 1]), names, [0, 0])
    assert match.person == "bob" and match.distance == pytest.approx(0.2)


def test_finds_each_person_among_many():
    rng = np.random.default_rng(1)
    centres = {f"person {n}": rng.normal(size=128) / np.sqrt(128) for n in range(200)}
    names, index, matrix = gallery_of(centres, per_person=5, spread=0.02)
    for name in list(centres)[:50]:
        probe = centres[name] + rng.normal(scale=0.02, size=128)
        match = search(matrix, index, names, probe)
        assert match.person == name and match.margin > 0 and match.second_person != name


def test_single_person_has_infinite_margin():
    match = search(np.zeros((3, 4), np.float32), np.zeros(3, int), ["ann"], np.ones(4))
    assert match.person == "ann" and match.distance == pytest.approx(2.0)
    assert match.margin == math.inf and match.second_person is None


def test_empty_gallery_matches_nobody():
    match = search(np.zeros((0, 128), np.float32), np.zeros(0, int), [], np.ones(128))
    assert match.person is None and match.distance == math.inf


def test_unusable_probe_matches_nobody():
    names, index, matrix = gallery_of({"ann": np.zeros(8), "bob": np.ones(8)}, 2, 0.1)
    for probe in (np.full(8, np.nan), np.array([np.inf] + [0] * 7)):
        match = search(matrix, index, names, probe)
        assert match.person is None and math.isnan(match.distance)


def test_probe_of_another_dimension_is_an_error():
    names, index, matrix = gallery_of({"ann": np.zeros(8), "bob": np.ones(8)}, 2, 0.1)
    with pytest.raises(GalleryError, match="probe has 4 dimensions but the gallery templates have 8"):
        search(matrix, index, names, np.zeros(4))
