"""The duplicate check asks the door's question (issue 13 item 1): would the door take the new
person's combined frames for someone enrolled, at the door's threshold for the gallery's size?"""
from __future__ import annotations

import numpy as np

from edge.daemon.decision import door_threshold
from edge.enroll.capture import duplicate_problem, duplicate_threshold
from edge.gallery.threshold import COMBINED_TAIL, SINGLE_TAIL


def unit(vector):
    vector = np.asarray(vector, dtype=np.float64)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def towards(start, goal, distance):
    """A unit vector ``distance`` away from the unit vector ``start``, turned toward ``goal``."""
    side = goal - np.dot(goal, start) * start
    side /= np.linalg.norm(side)
    angle = 2 * np.arcsin(distance / 2)
    return unit(np.cos(angle) * start + np.sin(angle) * side)


def newcomer_and_lookalike(seed=0):
    rng = np.random.default_rng(seed)
    centre = unit(rng.normal(size=128))
    other = unit(rng.normal(size=128))
    frames = np.stack([towards(centre, unit(rng.normal(size=128)), 0.25) for _ in range(5)])
    # an enrolled person whose template lies within the 1:1 threshold (0.41) of one frame only
    template = towards(frames[0], other, 0.38)
    return frames, template


def test_one_frame_near_someone_is_not_a_duplicate_when_the_combined_frames_are_not():
    frames, template = newcomer_and_lookalike()
    names, index, matrix = ["Adrien"], np.array([0]), template[None]
    assert np.linalg.norm(frames[0] - template) <= 0.4093  # the old check: "matches Adrien on 1 of 5 frames"
    problem, other = duplicate_problem(frames, names, index, matrix, "Alvaro", threshold=0.30)
    assert problem is None and other is None


def test_the_same_face_under_another_name_is_a_duplicate():
    frames, _ = newcomer_and_lookalike()
    names, index, matrix = ["Alice"], np.array([0, 0]), frames[:2] + 0.001
    problem, other = duplicate_problem(frames[2:], names, index, matrix, "Bob", threshold=0.30)
    assert other == "Alice" and "the door would take this face for Alice" in problem


def test_the_person_themselves_is_never_their_own_duplicate():
    frames, _ = newcomer_and_lookalike()
    problem, _ = duplicate_problem(frames, ["Bob"], np.array([0]), frames[:1], "Bob", threshold=0.30)
    assert problem is None


def test_duplicate_threshold_is_the_doors_for_combined_probes_at_the_size_and_settings():
    tail = {"count": 1_000_000, "distances": list(np.round(np.linspace(0.2, 0.4, 3000), 6))}
    manifest = {"threshold": 0.41, SINGLE_TAIL: tail, COMBINED_TAIL: {**tail, "distances": list(
        np.round(np.linspace(0.25, 0.45, 3000), 6))}}
    small, large = duplicate_threshold(manifest, 10), duplicate_threshold(manifest, 5000)
    assert small.threshold == door_threshold(manifest, 10, combined=True).threshold
    assert large.threshold < small.threshold  # more templates: the door is stricter, so is the check
    assert duplicate_threshold(manifest, 10, {"threshold": 0.33, "stranger_rate": 1e-3}).threshold == 0.33
    looser = duplicate_threshold(manifest, 5000, {"threshold": None, "stranger_rate": 1e-2})
    assert looser.threshold > large.threshold
