"""The block-wise 1:N search gives exactly the Match of the search it replaced.

``reference_search`` is the previous implementation, kept verbatim here: every
template's distance from the differences, the minimum per person, argpartition.
The fast search ranks by ||t||^2 - 2 t.p and measures the close candidates again
directly, so distances must be bit-identical, people and runner-ups the same.
"""
from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

from edge.gallery.search import Match, prepare, search, search_directly

# edge.gallery re-exports the function search, which hides the module of the same name
search_module = importlib.import_module("edge.gallery.search")


def reference_search(matrix, person_index, names, probe) -> Match:
    if len(names) == 0 or len(matrix) == 0:
        return Match(None, math.inf, math.inf, None, math.inf)
    probe = np.asarray(probe, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(probe)):
        return Match(None, math.nan, math.nan, None, math.nan)
    differences = matrix - probe
    template_distances = np.sqrt(np.einsum("ij,ij->i", differences, differences)).astype(np.float64)
    distances = np.full(len(names), np.inf)
    np.minimum.at(distances, np.asarray(person_index, dtype=np.intp), template_distances)
    if len(names) == 1:
        return Match(names[0], float(distances[0]), math.inf, None, math.inf)
    first, second = np.argpartition(distances, 1)[:2]
    if distances[second] < distances[first]:
        first, second = second, first
    best, runner_up = float(distances[first]), float(distances[second])
    return Match(names[first], best, runner_up - best, names[second], runner_up)


@pytest.fixture(params=["plain", "prepared"])
def ready(request):
    """Search the matrix as given, or prepared once (as the daemon does at each load): same Match."""
    return (lambda matrix: matrix) if request.param == "plain" else prepare


def unit_gallery(rng, templates: int, per_person: int = 5, dim: int = 128, shuffle: bool = False):
    matrix = rng.standard_normal((templates, dim)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    index = np.arange(templates) // per_person
    if shuffle:
        index = rng.permutation(index)
    names = [f"person {n}" for n in range(int(index.max()) + 1)]
    return matrix, index, names


def probes_for(rng, matrix, count: int) -> list[np.ndarray]:
    """Random unit probes, noisy copies of templates, and exact copies (distance 0)."""
    rows = rng.integers(0, len(matrix), count)
    noisy = matrix[rows] + rng.normal(0, 0.02, (count, matrix.shape[1])).astype(np.float32)
    random = rng.standard_normal((count, matrix.shape[1])).astype(np.float32)
    return [*random / np.linalg.norm(random, axis=1, keepdims=True), *noisy, *matrix[rows[: count // 2]]]


@pytest.mark.parametrize("templates", [1, 7, 1023, 1024, 1025, 5000])
def test_same_match_as_the_reference_on_random_unit_galleries(templates, ready):
    rng = np.random.default_rng(templates)
    matrix, index, names = unit_gallery(rng, templates, shuffle=templates > 7)
    searched = ready(matrix)
    for probe in probes_for(rng, matrix, 20):
        assert search(searched, index, names, probe) == reference_search(matrix, index, names, probe)


def test_same_match_when_people_are_within_rounding_of_each_other(ready):
    # Two other people at distances that differ in the last bits of float32: only the
    # direct measurement of the candidates can order them as the reference does.
    rng = np.random.default_rng(3)
    matrix, index, names = unit_gallery(rng, 3000)
    probe = matrix[10] + rng.normal(0, 0.05, 128).astype(np.float32)
    step = rng.standard_normal(128).astype(np.float32) * 1e-7
    matrix[500] = matrix[10] + step
    matrix[900] = matrix[10] - step
    matrix[1400] = matrix[10] + 2 * step
    for candidate in (probe, matrix[10], matrix[500]):
        assert search(ready(matrix), index, names, candidate) == reference_search(matrix, index, names, candidate)


def test_same_match_for_large_norms_float64_and_people_without_templates(ready):
    rng = np.random.default_rng(4)
    matrix, index, names = unit_gallery(rng, 2500)
    names = names + ["nobody yet"]
    scaled = matrix * np.float32(300)
    as_float64 = matrix.astype(np.float64)
    for probe in probes_for(rng, matrix, 8):
        assert search(ready(scaled), index, names, probe * 300) == reference_search(scaled, index, names, probe * 300)
        assert search(ready(as_float64), index, names, probe) == reference_search(as_float64, index, names, probe)


def test_only_one_person_with_templates_among_several_names(ready):
    matrix = np.eye(4, dtype=np.float32)
    match = search(ready(matrix), np.zeros(4, int), ["ann", "bob"], np.array([1, 0, 0, 0]))
    assert match == reference_search(matrix, np.zeros(4, int), ["ann", "bob"], np.array([1, 0, 0, 0]))
    assert match.person == "ann" and match.second_person == "bob" and match.second_distance == math.inf


def test_a_template_that_is_not_finite_falls_back_to_the_direct_search(ready):
    rng = np.random.default_rng(5)
    matrix, index, names = unit_gallery(rng, 40)
    matrix[7, 3] = np.nan
    probe = matrix[20] + 0.01
    assert search(ready(matrix), index, names, probe) == search_directly(matrix, index, names, probe)
    assert search(ready(matrix), index, names, probe).person == names[index[20]]


def test_equal_distances_go_to_the_person_listed_first(ready):
    matrix = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    match = search(ready(matrix), np.array([2, 1, 0]), ["ann", "bob", "cat"], [1, 0])
    assert (match.person, match.distance, match.second_person, match.second_distance) == ("ann", 0.0, "cat", 0.0)


def test_the_bound_is_what_keeps_the_results_exact(monkeypatch, ready):
    """Without the direct re-measurement of candidates the shortcut's rounding shows."""
    rng = np.random.default_rng(6)
    matrix, index, names = unit_gallery(rng, 2000)
    probes = probes_for(rng, matrix, 20)
    monkeypatch.setattr(search_module, "template_distances",
                        lambda rows, probe: np.sqrt(np.maximum(np.einsum("ij,ij->i", rows, rows) - 2 * rows @ probe
                                                               + probe @ probe, 0)).astype(np.float64))
    searched = ready(matrix)
    assert any(search(searched, index, names, p) != reference_search(matrix, index, names, p) for p in probes)


def test_same_match_with_numpy_1_row_norms(monkeypatch, ready):
    """numpy 1.x has no vecdot: the einsum path must give the same results."""
    monkeypatch.delattr(np, "vecdot", raising=False)
    rng = np.random.default_rng(7)
    matrix, index, names = unit_gallery(rng, 5000, shuffle=True)
    searched = ready(matrix)
    for probe in probes_for(rng, matrix, 10):
        assert search(searched, index, names, probe) == reference_search(matrix, index, names, probe)


def test_a_prepared_matrix_cannot_be_changed_under_its_kept_norms():
    rng = np.random.default_rng(8)
    matrix, index, names = unit_gallery(rng, 300)
    prepared = prepare(matrix)
    with pytest.raises(ValueError):
        prepared.matrix[0, 0] = 5
    with pytest.raises(ValueError):
        prepared.rows[0, 0] = 5
    assert len(prepared) == 300 and prepared.shape == (300, 128)


def test_an_empty_prepared_gallery_matches_nobody():
    assert search(prepare(np.zeros((0, 128), np.float32)), np.zeros(0, int), [], np.ones(128)).person is None


# ---- the lower-bound prune of a prepared matrix (edge.gallery.search.Projection) ----------------------

def face_like_gallery(rng, people: int, per_person: int = 5, dim: int = 128, shuffle: bool = False):
    """Unit templates clustered by person, most variance on a few axes (as face embeddings have).

    The axes are the same for every call with the same ``dim``, so strangers drawn by a second call
    look like the enrolled people."""
    spectrum = np.where(np.arange(dim) < 24, 1.0, 0.12)
    rotation, _ = np.linalg.qr(np.random.default_rng(dim).standard_normal((dim, dim)))
    centres = (rng.standard_normal((people, dim)) * spectrum) @ rotation.T
    spread = (rng.standard_normal((people * per_person, dim)) * spectrum) @ rotation.T
    matrix = (np.repeat(centres, per_person, axis=0) + 0.3 * spread).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    index = np.arange(people * per_person) // per_person
    if shuffle:
        index = rng.permutation(index)
    return matrix, index, [f"person {n}" for n in range(people)]


def pruned_count(prepared, index, names, probes) -> int:
    return sum(search_module.search_pruned(prepared, index, names, np.asarray(p, np.float32)) is not None
               for p in probes)


@pytest.fixture
def small_prune(monkeypatch):
    """Prune galleries of any size, so the tests stay small (the logic does not depend on the size)."""
    monkeypatch.setattr(search_module, "PRUNE_FROM_ROWS", 64)


@pytest.mark.parametrize("people,shuffle", [(200, False), (1000, True), (3000, False)])
def test_the_pruned_search_gives_the_reference_match(small_prune, people, shuffle):
    rng = np.random.default_rng(people)
    matrix, index, names = face_like_gallery(rng, people, shuffle=shuffle)
    prepared = prepare(matrix)
    assert prepared.projection is not None
    strangers, _, _ = face_like_gallery(rng, 20)
    probes = [*probes_for(rng, matrix, 20), *strangers]
    for probe in probes:
        assert search(prepared, index, names, probe) == reference_search(matrix, index, names, probe)
    assert pruned_count(prepared, index, names, probes) > len(probes) // 2  # the prune did the work


def test_the_prune_is_on_for_a_large_face_like_gallery_at_the_shipped_settings():
    rng = np.random.default_rng(11)
    matrix, index, names = face_like_gallery(rng, search_module.PRUNE_FROM_ROWS // 5 + 1)
    prepared = prepare(matrix)
    probes = probes_for(rng, matrix, 6)
    assert prepared.projection is not None and pruned_count(prepared, index, names, probes) > 0
    for probe in probes:
        assert search(prepared, index, names, probe) == reference_search(matrix, index, names, probe)


def test_no_projection_for_small_galleries_or_random_directions():
    rng = np.random.default_rng(12)
    assert prepare(face_like_gallery(rng, 100)[0]).projection is None  # 500 rows: one pass is cheaper
    assert prepare(unit_gallery(rng, search_module.PRUNE_FROM_ROWS + 5)[0]).projection is None  # isotropic


def test_a_projection_that_prunes_nothing_falls_back_to_the_full_pass(small_prune, monkeypatch):
    """Adversarial: random directions, where no lower bound rules anything out."""
    monkeypatch.setattr(search_module, "PRUNE_FROM_SHARE", 0.0)
    rng = np.random.default_rng(13)
    matrix, index, names = unit_gallery(rng, 4000, shuffle=True)
    prepared = prepare(matrix)
    assert prepared.projection is not None
    probes = probes_for(rng, matrix, 10)[:10]  # random unit probes
    assert pruned_count(prepared, index, names, probes) == 0
    for probe in probes_for(rng, matrix, 10):
        assert search(prepared, index, names, probe) == reference_search(matrix, index, names, probe)


def test_pruned_ties_duplicates_and_near_ties(small_prune):
    rng = np.random.default_rng(14)
    matrix, index, names = face_like_gallery(rng, 600)
    matrix[[50, 400, 2000]] = matrix[7]  # one vector held by four people: equal distances
    step = rng.standard_normal(128).astype(np.float32) * 1e-7
    matrix[900], matrix[1300] = matrix[20] + step, matrix[20] - step  # within rounding of each other
    prepared = prepare(matrix)
    for probe in (matrix[7], matrix[20], matrix[7] + 0.01, matrix[20] + rng.normal(0, 0.02, 128).astype(np.float32)):
        # the plain search: the reference's argpartition picks any one of people at equal distances
        assert search(prepared, index, names, probe) == search(matrix, index, names, probe)
        found, reference = search(prepared, index, names, probe), reference_search(matrix, index, names, probe)
        assert (found.distance, found.second_distance) == (reference.distance, reference.second_distance)
    tie = search(prepared, index, names, matrix[7])
    assert (tie.person, tie.second_person) == (names[index[7]], names[index[50]])  # the first listed of the four
    assert pruned_count(prepared, index, names, [matrix[7], matrix[20]]) == 2


def test_a_gallery_of_copies_is_searched_in_full(small_prune, monkeypatch):
    monkeypatch.setattr(search_module, "PRUNE_FROM_SHARE", 0.0)
    matrix = np.tile(face_like_gallery(np.random.default_rng(15), 1)[0][:1], (3000, 1))
    index = np.arange(3000) // 3
    names = [f"person {n}" for n in range(1000)]
    prepared = prepare(matrix)
    probe = matrix[0] + 0.01
    assert pruned_count(prepared, index, names, [probe]) == 0
    # everybody at one distance: the plain search takes the first listed (the reference's argpartition any)
    assert search(prepared, index, names, probe) == search(matrix, index, names, probe)
    assert search(prepared, index, names, probe).distance == reference_search(matrix, index, names, probe).distance


def test_pruned_float64_and_large_norm_galleries(small_prune):
    rng = np.random.default_rng(16)
    matrix, index, names = face_like_gallery(rng, 800)
    for gallery, scale in ((matrix.astype(np.float64), 1), (matrix * np.float32(300), 300)):
        prepared = prepare(gallery)
        assert prepared.projection is not None
        for probe in probes_for(rng, matrix, 6):
            assert search(prepared, index, names, probe * scale) == reference_search(gallery, index, names, probe * scale)


def test_a_reload_projects_the_new_gallery(small_prune):
    """A changed gallery gets its own axes; each prepared matrix answers for its own templates."""
    rng = np.random.default_rng(17)
    before, index, names = face_like_gallery(rng, 500)
    after, _, _ = face_like_gallery(rng, 500)
    old, new = prepare(before), prepare(after)
    assert not np.allclose(old.projection.axes, new.projection.axes)
    for probe in probes_for(rng, after, 8):
        assert search(new, index, names, probe) == reference_search(after, index, names, probe)


def test_the_bounds_are_lower_bounds_with_room_to_spare(small_prune):
    """What the prune rests on, checked in float64: the axes lengthen no vector by more than their
    ``stretch``, and no computed bound exceeds stretch x the true squared distance by more than a
    quarter of the rounding allowance."""
    rng = np.random.default_rng(18)
    matrix, index, names = face_like_gallery(rng, 1000)
    prepared = prepare(matrix)
    projection = prepared.projection
    axes = projection.axes.astype(np.float64)
    vectors = rng.standard_normal((2000, 128))
    assert np.all(np.sum((vectors @ axes.T) ** 2, axis=1) <= projection.stretch * np.sum(vectors ** 2, axis=1))
    strangers, _, _ = face_like_gallery(rng, 10)
    for probe in [*probes_for(rng, matrix, 10), *strangers]:
        bounds, probe_part = search_module.lower_bounds(projection, probe)
        exact = np.sum((matrix.astype(np.float64) - probe.astype(np.float64)) ** 2, axis=1)
        excess = (bounds.astype(np.float64) + probe_part) - projection.stretch * exact
        assert excess.max() <= search_module.bound_rounding(prepared, probe) / 4
