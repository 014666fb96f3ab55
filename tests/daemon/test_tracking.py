"""Following faces across frames and combining a track's frames (edge.daemon.tracking), and the
per-track decision and combined-probe threshold that use them."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from edge.daemon.decision import Decider, Observation, combining_mismatch, door_threshold
from edge.daemon.tracking import Tracker, combine, frame_weight, iou, near, usable
from edge.gallery.threshold import COMBINED_TAIL, SINGLE_TAIL
from edge.pipeline import MainFace
from edge.vision.detector import Face


def face(x, y, side=100.0):
    landmarks = np.array([[x + 0.3 * side, y + 0.4 * side], [x + 0.7 * side, y + 0.4 * side],
                          [x + 0.5 * side, y + 0.6 * side], [x + 0.35 * side, y + 0.8 * side],
                          [x + 0.65 * side, y + 0.8 * side]], np.float32)
    return Face((x, y, x + side, y + side), 0.99, landmarks)


def unit(seed, dim=128):
    vector = np.random.default_rng(seed).normal(size=dim)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def near_copy(vector, seed, spread=0.05):
    noisy = vector + spread * np.random.default_rng(seed).normal(size=vector.shape) / math.sqrt(len(vector))
    return (noisy / np.linalg.norm(noisy)).astype(np.float32)


# -- boxes ------------------------------------------------------------------------------------------

def test_iou_of_boxes():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)


def test_near_needs_close_centres_and_similar_sizes():
    assert near((0, 0, 100, 100), (45, 0, 145, 100))
    assert not near((0, 0, 100, 100), (60, 0, 160, 100))  # moved more than half a face
    assert not near((0, 0, 100, 100), (0, 0, 200, 200))  # twice the size: another face


def test_a_moving_face_keeps_its_track_and_a_second_face_gets_its_own():
    tracker = Tracker(split_distance=0.4)
    ids = []
    for step in range(10):
        first, second = face(100 + 12 * step, 100), face(400, 120)
        assigned = tracker.update([first, second])
        ids.append((assigned[id(first)].id, assigned[id(second)].id))
    assert len({pair[0] for pair in ids}) == 1 and len({pair[1] for pair in ids}) == 1
    assert ids[0][0] != ids[0][1]


def test_a_fast_move_without_overlap_still_continues_the_track():
    tracker = Tracker(split_distance=0.4)
    start = list(tracker.update([face(100, 100)]).values())[0]
    jumped = face(135, 135)  # 49 px diagonally: too little overlap, centre within half a face
    assert iou(face(100, 100).box, jumped.box) < 0.3
    assert tracker.update([jumped])[id(jumped)] is start
    far = face(300, 300)
    assert tracker.update([far])[id(far)] is not start


def test_a_track_ends_after_max_missed_frames_without_its_face():
    tracker = Tracker(split_distance=0.4, max_missed=2)
    first = tracker.update([face(100, 100)])
    track = list(first.values())[0]
    tracker.update([])
    tracker.update([])
    again = face(100, 100)
    assert tracker.update([again])[id(again)] is track  # missed 2: still there
    for _ in range(3):
        tracker.update([])
    later = face(100, 100)
    assert tracker.update([later])[id(later)] is not track  # missed 3 > 2: a new track


def test_end_all_starts_every_face_afresh():
    tracker = Tracker(split_distance=0.4)
    before = list(tracker.update([face(100, 100)]).values())[0]
    tracker.end_all()
    again = face(100, 100)
    assert tracker.update([again])[id(again)].id != before.id


# -- combining ---------------------------------------------------------------------------------------

def test_combine_is_the_weighted_mean_of_unit_vectors_scaled_to_unit_length():
    a, b = np.array([2.0, 0.0]), np.array([0.0, 5.0])
    assert np.allclose(combine([a, b]), [math.sqrt(0.5), math.sqrt(0.5)], atol=1e-6)
    weighted = combine([a, b], [3.0, 1.0])
    assert np.allclose(weighted, np.array([0.75, 0.25]) / np.linalg.norm([0.75, 0.25]), atol=1e-6)
    assert np.allclose(combine([a, b], unit=False), [1.0, 2.5])  # raw embeddings: the plain weighted mean


def test_combining_noisy_frames_lands_nearer_the_person_than_the_frames_do():
    person = unit(1)
    frames = [near_copy(person, seed, spread=3.0) for seed in range(10)]
    single = np.mean([np.linalg.norm(frame - person) for frame in frames])
    assert np.linalg.norm(combine(frames) - person) < 0.6 * single


@pytest.mark.parametrize("vector", [[np.nan, 1.0], [np.inf, 1.0], [0.0, 0.0], [1e300, 1e300], []])
def test_broken_embeddings_are_not_usable(vector):
    assert not usable(np.array(vector))


def test_a_broken_embedding_cannot_join_a_track():
    tracker = Tracker(split_distance=0.4)
    track = list(tracker.update([face(0, 0)]).values())[0]
    with pytest.raises(ValueError, match="broken"):
        tracker.add(track, None, None, np.full(128, np.nan))
    assert track.frames == 0


def test_frames_of_one_person_combine_and_another_person_splits_the_track():
    tracker = Tracker(split_distance=0.4)
    ann, bob = unit(1), unit(2)
    track = None
    for step in range(4):
        box = face(100 + step, 100)
        track = tracker.add(tracker.update([box])[id(box)], ("frame", step), None, near_copy(ann, step))
    assert track.frames == 4 and np.linalg.norm(track.probe() - ann) < 0.1
    box = face(104, 100)
    swapped = tracker.add(tracker.update([box])[id(box)], ("frame", 4), None, bob)
    assert swapped.id != track.id and swapped.frames == 1  # bob's frame never joins ann's probe
    assert np.allclose(swapped.probe(), bob, atol=1e-6)


def test_the_window_keeps_only_the_last_frames():
    tracker = Tracker(split_distance=2.0, window=3)
    ann = unit(1)
    track = None
    for step in range(6):
        box = face(100, 100)
        track = tracker.add(tracker.update([box])[id(box)], ("frame", step), ("main", step), near_copy(ann, step))
    assert track.frames == 3
    assert [frame for frame, _ in track.observations] == [("frame", step) for step in range(6)]


def test_observations_are_frame_and_main_face_pairs_oldest_first():
    tracker = Tracker(split_distance=0.4)
    ann = unit(1)
    pairs = []
    for step in range(3):
        box = face(100, 100)
        main = MainFace(box, np.zeros((1, 3, 150, 150), np.float32))
        tracker.add(tracker.update([box])[id(box)], f"frame {step}", main, near_copy(ann, step))
        pairs.append((f"frame {step}", main))
    track = tracker.tracks[0]
    assert track.observations == pairs


def test_sharp_frontal_frames_weigh_more_than_blurred_or_turned_ones():
    rng = np.random.default_rng(0)
    mean, std, padding = (122.8, 117.0, 104.3), (256.0, 256.0, 256.0), 0.25
    sharp = rng.integers(0, 256, (150, 150)).astype(np.float32)
    flat = cv2.GaussianBlur(sharp, (0, 0), 8.0)  # the same detail, far out of focus

    def chip(grey):
        shift, scale = np.array(mean, np.float32).reshape(3, 1, 1), np.array(std, np.float32).reshape(3, 1, 1)
        return ((grey[None] - shift) / scale)[None]

    frontal = face(0, 0, 150)
    nose_aside = np.array([[0, 0], [0, 0], [40, 0], [0, 0], [0, 0]], np.float32)
    turned = Face(frontal.box, 0.99, frontal.landmarks + nose_aside)
    good = frame_weight(MainFace(frontal, chip(sharp)), mean, std, padding)
    blurred = frame_weight(MainFace(frontal, chip(flat)), mean, std, padding)
    aside = frame_weight(MainFace(turned, chip(sharp)), mean, std, padding)
    assert good == 1.0 and 0.1 <= blurred < 0.5 and 0.1 <= aside < 0.6


# -- deciding per track --------------------------------------------------------------------------------

def match(person="ann"):
    return Observation(person, "match", 0.2, 0.3, face=True)


def test_a_track_must_combine_min_frames_before_it_unlocks():
    decider = Decider(k=1, n=1, cooldown_s=5.0, min_frames=3)
    verdicts = [decider.observe(match(), 0.1 * step, track=7, frames=step + 1) for step in range(3)]
    assert [v.reason for v in verdicts] == ["combining", "combining", "unlock"]
    assert verdicts[-1].track == 7 and verdicts[-1].frames_combined == 3


def test_agreement_of_one_track_never_counts_for_another():
    decider = Decider(k=2, n=3, cooldown_s=0.0)
    assert not decider.observe(match(), 0.0, track=1, frames=5).unlock
    assert not decider.observe(match(), 0.1, track=2, frames=5).unlock  # a different face: starts again
    assert decider.observe(match(), 0.2, track=2, frames=6).unlock


def test_min_frames_below_one_is_refused():
    with pytest.raises(ValueError):
        Decider(min_frames=0)


# -- the combined probes' threshold -------------------------------------------------------------------

def tail(low, count=1_000_000, size=2000):
    return {"count": count, "distances": list(np.round(np.linspace(low, low + 0.2, size), 6))}


def test_combined_probes_use_the_combined_tail():
    manifest = {"threshold": 0.41, SINGLE_TAIL: tail(0.20), COMBINED_TAIL: tail(0.30)}
    single = door_threshold(manifest, 1000)
    combined = door_threshold(manifest, 1000, combined=True)
    assert combined.threshold > single.threshold and "combined" in combined.rule


def test_without_a_combined_tail_combined_probes_get_the_single_threshold_with_a_warning_note():
    manifest = {"threshold": 0.41, SINGLE_TAIL: tail(0.20)}
    combined = door_threshold(manifest, 1000, combined=True)
    assert combined.threshold == door_threshold(manifest, 1000).threshold
    assert "no combined_impostor_tail" in combined.note and "more strangers" in combined.note


def test_settings_other_than_the_measured_ones_are_said():
    manifest = {"threshold": 0.41, COMBINED_TAIL: {**tail(0.3), "min_frames": 3, "window": 5}}
    assert combining_mismatch(manifest, 3, 5) is None
    assert "measured with min_frames 3 and combine_frames 5" in combining_mismatch(manifest, 1, 5)
    assert combining_mismatch({"threshold": 0.41}, 1, 1) is None  # nothing measured, nothing to compare


def test_a_configured_threshold_replaces_both():
    manifest = {"threshold": 0.41, SINGLE_TAIL: tail(0.20), COMBINED_TAIL: tail(0.30)}
    assert door_threshold(manifest, 1000, configured=0.33, combined=True).threshold == 0.33
