"""Cohort-adjusted distances (edge.gallery.cohort) and everything that judges combined probes with them:
the nearest template's row from every search path, the door's decision and threshold, the daemon's
gallery, the enrollment duplicate check and the coverage in `gallery show`."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import edge.gallery.cohort as cohort_module
from edge.daemon.decision import combined_cohort, door_threshold, match_probe
from edge.daemon.watch import LiveGallery
from edge.enroll.capture import door_rule, duplicate_problem
from edge.enroll.coverage import coverage
from edge.exc import ManifestMismatch
from edge.gallery.cohort import COHORT_KEY, COHORT_TAIL, Cohort, encode_faces
from edge.gallery.search import PRUNE_FROM_ROWS, prepare, search, search_directly, template_distances
from edge.gallery.threshold import COMBINED_TAIL
from edge_build.starter import calibrated_figures


def face_like(rng, people: int, per_person: int = 5) -> np.ndarray:
    """Unit rows clustered by person, most variance on 24 random axes (so the search's projection is kept)."""
    axes = np.linalg.qr(rng.standard_normal((128, 128)))[0]
    spectrum = np.where(np.arange(128) < 24, 1.0, 0.12)
    centres = (rng.standard_normal((people, 128)) * spectrum) @ axes.T
    rows = np.repeat(centres, per_person, axis=0) + 0.3 * (rng.standard_normal((people * per_person, 128))
                                                           * spectrum) @ axes.T
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


class FixedGallery:
    """Just what LiveGallery reads of a Gallery: its state, its matrix (5 templates a person)."""

    path = "gallery.sqlite"

    def __init__(self, matrix: np.ndarray):
        self.matrix, self.names = matrix, [f"person {n:05d}" for n in range(len(matrix) // 5)]

    def state(self):
        return ("gallery", 1, None)

    def replaced(self) -> bool:
        return False

    def load_matrix(self, model=None):
        return list(self.names), np.arange(len(self.matrix)) // 5, self.matrix.copy()


def units(rng, rows, dim=16):
    vectors = rng.standard_normal((rows, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def entry(faces, k=3, weight=1.0, offset=0.4):
    return {"rows": len(faces), "dim": faces.shape[1], "k": k, "weight": weight, "offset": offset,
            "float16_base64": encode_faces(faces)}


def tail(smallest, count=10_000_000, size=2000):
    return {"count": count, "distances": list(np.linspace(smallest, smallest + 0.2, size))}


def brute_spreads(faces, vectors, k):
    faces = faces.astype(np.float16).astype(np.float64)
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    distances = np.linalg.norm(vectors[:, None, :] - faces[None, :, :], axis=2)
    return np.sort(distances, axis=1)[:, :k].mean(axis=1)


# -- the cohort itself --------------------------------------------------------------------------

def test_spreads_are_the_mean_distance_to_the_k_nearest_cohort_faces(monkeypatch):
    rng = np.random.default_rng(1)
    faces, vectors = units(rng, 200), rng.standard_normal((37, 16)) * 3.0  # not unit: spreads are at unit length
    cohort = Cohort.from_manifest({COHORT_KEY: entry(faces, k=4)})
    monkeypatch.setattr(cohort_module, "BLOCK_ROWS", 8)  # several blocks
    assert cohort.spreads(vectors) == pytest.approx(brute_spreads(faces, vectors, 4), abs=1e-5)


def test_a_face_in_a_crowded_region_must_come_nearer():
    rng = np.random.default_rng(2)
    crowd = units(rng, 1, 16)[0]
    faces = np.vstack([crowd + 0.05 * rng.standard_normal((30, 16)), units(rng, 30)]).astype(np.float32)
    cohort = Cohort.from_manifest({COHORT_KEY: entry(faces, k=5)})
    lonely = units(rng, 1, 16)[0]
    crowded_spread, lonely_spread = cohort.spreads(np.stack([crowd, lonely]))
    assert crowded_spread < lonely_spread
    # the same plain distance, adjusted: larger between crowded faces than between lonely ones
    assert cohort.adjust(0.3, crowded_spread, crowded_spread) > cohort.adjust(0.3, lonely_spread, lonely_spread)
    assert cohort.adjust(0.3, 0.4, 0.4) == pytest.approx(0.3 - 0.4 + 0.4)
    assert cohort.adjust(0.05, 1.2, 1.2) == 0.0  # never a negative "distance"


def test_a_manifest_without_a_cohort_has_none_and_a_broken_one_is_refused():
    assert Cohort.from_manifest({"threshold": 0.4}) is None
    faces = units(np.random.default_rng(3), 10)
    assert Cohort.from_manifest({"preprocess": {COHORT_KEY: entry(faces)}}).faces.shape == (10, 16)
    for broken in ({**entry(faces), "rows": 11}, {**entry(faces), "k": 0}, {**entry(faces), "k": 11},
                   {**entry(faces), "float16_base64": "not base64!"}, {k: v for k, v in entry(faces).items() if k != "k"},
                   {**entry(faces), "offset": math.nan}):
        with pytest.raises(ManifestMismatch, match="cohort"):
            Cohort.from_manifest({COHORT_KEY: broken})
    with pytest.raises(ManifestMismatch, match="another model"):
        Cohort.from_manifest({COHORT_KEY: entry(faces)}).spreads(np.ones((1, 8)))


def test_the_door_uses_a_cohort_only_with_its_tail():
    faces = units(np.random.default_rng(4), 20)
    both = {"threshold": 0.41, COHORT_KEY: entry(faces), COHORT_TAIL: tail(0.10), COMBINED_TAIL: tail(0.25)}
    assert combined_cohort(both) is not None
    assert door_threshold(both, 1000, combined=True).rule == f"impostor tail ({COHORT_TAIL})"
    assert door_threshold(both, 1000, combined=True).threshold < door_threshold(
        {k: v for k, v in both.items() if k != COHORT_TAIL}, 1000, combined=True).threshold
    without_tail = {k: v for k, v in both.items() if k != COHORT_TAIL}
    assert combined_cohort(without_tail) is None
    assert door_threshold(without_tail, 1000, combined=True).rule == f"impostor tail ({COMBINED_TAIL})"
    without_faces = {k: v for k, v in both.items() if k != COHORT_KEY}
    assert combined_cohort(without_faces) is None


def test_the_shipped_figures_hold_a_cohort_and_its_tail():
    figures = calibrated_figures()
    cohort = Cohort.from_manifest(figures)
    assert cohort is not None and cohort.faces.shape[0] > 1000 and cohort.dim == 128
    assert figures[COHORT_TAIL]["count"] > 1_000_000
    assert door_threshold(figures, 1000, combined=True).rule == f"impostor tail ({COHORT_TAIL})"


# -- the nearest template's row, on every search path ---------------------------------------------

@pytest.mark.parametrize("how", ["plain", "prepared", "direct"])
def test_the_match_names_the_row_of_the_nearest_template(how):
    rng = np.random.default_rng(5)
    matrix = units(rng, 60)
    index = np.arange(60) // 4
    names = [f"p{n}" for n in range(15)]
    for probe in units(rng, 20):
        found = {"plain": lambda: search(matrix, index, names, probe),
                 "prepared": lambda: search(prepare(matrix), index, names, probe),
                 "direct": lambda: search_directly(matrix, index, names, probe)}[how]()
        distances = template_distances(matrix, probe)
        assert names[index[found.row]] == found.person
        assert distances[found.row] == pytest.approx(found.distance, abs=1e-6)
        assert found.row == int(np.argmin(distances))
        others = index != index[found.row]
        assert found.second_row == int(np.flatnonzero(others)[np.argmin(distances[others])])


def test_the_pruned_search_names_the_row_in_the_whole_gallery():
    rng = np.random.default_rng(6)
    matrix = face_like(rng, PRUNE_FROM_ROWS // 5 + 1)
    prepared = prepare(matrix)
    assert prepared.projection is not None
    index = np.arange(len(matrix)) // 5
    names = [f"p{n}" for n in range(len(matrix) // 5)]
    for row in (7, 5000, len(matrix) - 3):
        probe = matrix[row] + 0.01 * rng.standard_normal(128).astype(np.float32)
        probe /= np.linalg.norm(probe)
        found = search(prepared, index, names, probe)
        distances = template_distances(matrix, probe)
        assert found.row == int(np.argmin(distances))
        others = index != index[found.row]
        assert found.second_row == int(np.flatnonzero(others)[np.argmin(distances[others])])


# -- deciding with it ---------------------------------------------------------------------------

def crowded_setup(seed=7):
    """A cohort crowded around one face; a gallery template there and one in an empty region."""
    rng = np.random.default_rng(seed)
    crowd = units(rng, 1)[0]
    faces = np.vstack([crowd + 0.05 * rng.standard_normal((40, 16)), units(rng, 40)]).astype(np.float32)
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    # the offset: a typical face's spread (here, of faces anywhere), as the shipped cohort's
    typical = float(np.median(Cohort.from_manifest({COHORT_KEY: entry(faces, k=5)}).spreads(units(rng, 200))))
    cohort = Cohort.from_manifest({COHORT_KEY: entry(faces, k=5, offset=typical)})
    return rng, crowd, faces, cohort


def test_match_probe_compares_adjusted_distances_of_the_two_nearest_people():
    rng, crowd, faces, cohort = crowded_setup()
    matrix = units(rng, 8)
    index, names = np.arange(8) // 2, ["a", "b", "c", "d"]
    probe = matrix[3] + 0.2 * units(rng, 1)[0]
    probe /= np.linalg.norm(probe)
    plain = search(matrix, index, names, probe)
    spreads = cohort.spreads(matrix)
    first = cohort.adjust(plain.distance, cohort.spreads(probe)[0], spreads[plain.row])
    second = cohort.adjust(plain.second_distance, cohort.spreads(probe)[0], spreads[plain.second_row])
    assert plain.person == "b" and first < second
    found = match_probe(matrix, index, names, probe, first + 1e-6, cohort)
    assert found.person == "b" and found.distance == pytest.approx(first)
    assert found.margin == pytest.approx(second - first)
    assert match_probe(prepare(matrix), index, names, probe, first + 1e-6, cohort).distance == pytest.approx(first)
    assert match_probe(matrix, index, names, probe, first - 1e-6, cohort).person is None
    assert match_probe(matrix, index, names, probe, plain.distance).distance == plain.distance


def test_the_runner_up_wins_when_nearer_once_adjusted():
    rng, crowd, faces, cohort = crowded_setup(11)
    lonely = units(rng, 1)[0]
    probe = 1.05 * crowd + lonely  # between a crowded face and a lonely one, a little nearer the crowded one
    probe /= np.linalg.norm(probe)
    # "crowded" a hair nearer in plain distance, "lonely" nearer once adjusted (the crowd must come nearer)
    matrix = np.stack([crowd, lonely]).astype(np.float32)
    plain = search(matrix, np.array([0, 1]), ["crowded", "lonely"], probe)
    found = match_probe(matrix, np.array([0, 1]), ["crowded", "lonely"], probe, 10.0, cohort)
    spreads = cohort.spreads(np.vstack([probe[None], matrix]))
    adjusted = cohort.adjust(template_distances(matrix, probe), spreads[0], spreads[1:])
    assert found.person == ["crowded", "lonely"][int(np.argmin(adjusted))] == "lonely"
    assert found.distance == pytest.approx(adjusted.min()) and found.margin == pytest.approx(np.ptp(adjusted))
    assert plain.person == "crowded" and plain.distance < plain.second_distance


def test_the_daemon_gallery_adjusts_combined_probes_only():
    rng = np.random.default_rng(8)
    matrix = face_like(rng, 40)
    faces = face_like(rng, 100)
    manifest = {"model": "test_model", "embedding_normalization": "l2", "threshold": 0.9,
                "outputs": [{"shape": [1, 128]}], COHORT_KEY: entry(faces, k=10, offset=0.37),
                COHORT_TAIL: tail(0.05), COMBINED_TAIL: tail(0.3), "impostor_tail": tail(0.3)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        live = LiveGallery(FixedGallery(matrix), manifest, reopen=lambda: None)
        live.load()
    probe = matrix[11] + 0.05 * rng.standard_normal(128).astype(np.float32)
    probe /= np.linalg.norm(probe)
    plain = search(matrix, np.arange(len(matrix)) // 5, live.names, probe)
    combined, single = live.match_combined(probe), live.match(probe)
    assert single.distance == plain.distance
    assert combined.distance == pytest.approx(live.cohort.adjust(plain.distance, live.cohort.spreads(probe)[0],
                                                                 live.cohort.spreads(matrix)[plain.row]))
    assert combined.distance != pytest.approx(plain.distance)


def test_the_duplicate_check_asks_with_the_door_s_adjusted_distance():
    rng, crowd, faces, cohort = crowded_setup(9)
    manifest = {"embedding_normalization": "l2", COHORT_KEY: entry(faces, k=5, offset=cohort.offset),
                COHORT_TAIL: tail(0.0)}
    rule = door_rule(manifest)
    assert rule["unit"] is True and rule["cohort"] is not None and door_rule(None) == {}
    # someone enrolled in the crowded region; the new person's frames near them
    enrolled = np.stack([crowd + 0.02 * units(rng, 1)[0] for _ in range(3)])
    enrolled /= np.linalg.norm(enrolled, axis=1, keepdims=True)
    new = np.stack([crowd + 0.25 * units(rng, 1)[0] for _ in range(3)])
    new /= np.linalg.norm(new, axis=1, keepdims=True)
    names, index = ["Ann"], np.zeros(3, dtype=np.intp)
    plain = search(enrolled, index, names, new.mean(0) / np.linalg.norm(new.mean(0))).distance
    # at a threshold just above the plain distance the plain check refuses; adjusted (crowded: larger) it does not
    threshold = plain + 0.01
    assert duplicate_problem(new, names, index, enrolled, "Bob", threshold)[1] == "Ann"
    assert duplicate_problem(new, names, index, enrolled, "Bob", threshold, **rule) == (None, None)


def test_coverage_judges_templates_by_the_adjusted_distance():
    rng, crowd, faces, cohort = crowded_setup(10)
    rows = np.stack([crowd + 0.15 * units(rng, 1)[0] for _ in range(3)])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    plain_nearest = np.sort(np.linalg.norm(rows[:, None] - rows[None], axis=2), axis=1)[:, 1]
    threshold = float(plain_nearest.max()) + 0.01
    assert coverage([None] * 3, rows, threshold)["recognised"] == 3
    assert coverage([None] * 3, rows, threshold, cohort)["recognised"] < 3  # crowded: they must come nearer
