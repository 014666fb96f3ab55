"""The liveness cues as pure functions, on synthetic inputs whose answer is known by construction."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from edge.exc import ManifestMismatch, NoLivenessModel
from edge.liveness import context, motion, texture
from edge.liveness.judge import Liveness, Tracks, judge_track, overlap, parse_cues
from edge.liveness.model import FORMAT, read_model, write_model
from edge.exc import ConfigError


# -- texture ------------------------------------------------------------------------------------

def textured_chip(seed: int = 0, size: int = texture.CHIP_SIZE) -> np.ndarray:
    """A skin-like chip: smooth shading plus fine random grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    shading = 120 + 40 * np.sin(x / 9.0) * np.cos(y / 13.0)
    grain = cv2.GaussianBlur(rng.normal(0, 12, (size, size)).astype(np.float32), (0, 0), 0.7)
    return (shading + grain).astype(np.float32)


def test_texture_features_ignore_brightness_and_contrast():
    chip = textured_chip()
    base = texture.features(chip)
    assert base.shape == (texture.FEATURE_COUNT,)
    changed = texture.features(chip * 0.6 + 40.0)
    # LBP signs, spectral shares and sharpness ratios do not see a gain and an offset
    np.testing.assert_allclose(changed, base, atol=0.03)
    blurred = texture.features(cv2.GaussianBlur(chip, (0, 0), 1.2))
    assert np.abs(blurred - base).max() > 10 * np.abs(changed - base).max()


def test_a_print_loses_the_high_band_and_a_screen_grid_peaks_in_it():
    chip = textured_chip(1)
    spectrum = texture.spectrum_features(chip)
    soft = texture.spectrum_features(cv2.GaussianBlur(chip, (0, 0), 1.0))
    assert soft[texture.BANDS - 2] < spectrum[texture.BANDS - 2] - 1.0  # last band's share drops
    x = np.arange(chip.shape[1], dtype=np.float32)
    grid = chip + 12.0 * np.sin(2 * np.pi * 0.4 * x)[None, :]  # a fine periodic pattern: moire, a pixel grid
    assert texture.spectrum_features(grid)[-1] > spectrum[-1] + 1.0


def test_lbp_histograms_are_normalised_and_count_flat_patches_as_uniform():
    flat = np.full((32, 32), 100.0, dtype=np.float32)
    for points, radius in texture.LBP_SETS:
        histogram = texture.lbp_histogram(flat, points, radius)
        assert histogram.sum() == pytest.approx(1.0)
        assert histogram[points] == pytest.approx(1.0)  # every neighbour >= centre: all ones


def face_landmarks(centre=(320.0, 240.0), scale: float = 100.0, roll: float = 0.0) -> np.ndarray:
    """Five landmarks of an upright face of width ``scale`` (the MTCNN template), turned by ``roll``."""
    from edge.vision import align

    points = (np.asarray(align.MTCNN_TEMPLATE) - 0.5) * scale
    turn = np.array([[math.cos(roll), -math.sin(roll)], [math.sin(roll), math.cos(roll)]])
    return points @ turn.T + np.asarray(centre)


def test_the_grey_chip_has_the_same_scale_whatever_the_camera_resolution():
    rng = np.random.default_rng(2)
    scene = cv2.GaussianBlur(rng.uniform(0, 255, (240, 320)).astype(np.float32), (0, 0), 2.0)
    scene = cv2.cvtColor(np.clip(scene, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    small = texture.grey_chip(scene, face_landmarks((160, 120), 60))
    big_scene = cv2.resize(scene, (1280, 960), interpolation=cv2.INTER_CUBIC)
    big = texture.grey_chip(big_scene, face_landmarks((160 * 4 + 1.5, 120 * 4 + 1.5), 240))
    assert small.shape == big.shape == (texture.CHIP_SIZE, texture.CHIP_SIZE)
    assert np.corrcoef(small.ravel(), big.ravel())[0, 1] > 0.95


# -- context ------------------------------------------------------------------------------------

def framed_scene(border: str, roll: float = 0.0) -> tuple[np.ndarray, tuple, np.ndarray]:
    """A plain 640x480 scene with a face-sized blob; ``border``: "card" draws a phone/print outline around it,
    "one side" a single door-frame line, "none" nothing. Returns (RGB, box, landmarks)."""
    image = np.full((480, 640, 3), 150, np.uint8)
    centre = np.array([320.0, 230.0])
    cv2.ellipse(image, (320, 230), (45, 60), math.degrees(roll), 0, 360, (200, 170, 150), -1)
    box = (275.0, 170.0, 365.0, 290.0)
    if border == "card":
        corners = np.array([[-95, -130], [95, -130], [95, 170], [-95, 170]], dtype=np.float64)
        turn = np.array([[math.cos(roll), -math.sin(roll)], [math.sin(roll), math.cos(roll)]])
        outline = (corners @ turn.T + centre).astype(np.int32)
        cv2.polylines(image, [outline], True, (20, 20, 25), 6)
    elif border == "one side":
        cv2.line(image, (200, 40), (200, 460), (20, 20, 25), 6)
    return image, box, face_landmarks(centre, 90, roll)


@pytest.mark.parametrize("roll", [0.0, 0.3])
def test_a_card_outline_around_the_face_is_a_border_on_every_side(roll):
    image, box, landmarks = framed_scene("card", roll)
    coverage = context.features(image, box, landmarks)
    assert (coverage > 0.6).sum() >= 3, coverage
    assert context.attack_score(coverage) > 0.6


@pytest.mark.parametrize("border", ["none", "one side"])
def test_no_border_or_one_straight_line_is_not_a_card(border):
    image, box, landmarks = framed_scene(border)
    assert context.attack_score(context.features(image, box, landmarks)) < 0.2


# -- motion -------------------------------------------------------------------------------------

# a head's five points in centimetres (x right, y down, z towards the camera): the nose stands out
HEAD = np.array([[-3.2, -3.0, 0.0], [3.2, -3.0, 0.0], [0.0, 0.5, 2.6], [-2.5, 3.5, 0.8], [2.5, 3.5, 0.8]])


def project(points3d: np.ndarray, yaw: float, pitch: float, distance: float = 50.0, shift=(0.0, 0.0)) -> np.ndarray:
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    turn = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]]) @ np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    camera = points3d * [1, 1, -1] @ turn.T + [shift[0], shift[1], distance]
    return 640 * camera[:, :2] / camera[:, 2:3] + [320, 240]


def track(points3d, yaws, pitches, noise: float, seed: int = 0, **kw) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([project(points3d, math.radians(y), math.radians(p), **kw) + rng.normal(0, noise, (5, 2))
                     for y, p in zip(yaws, pitches)])


# sensitive settings for these clean synthetic landmarks (the shipped defaults are chosen on real detector output)
CLEAN = motion.MotionSettings(live_parallax=0.12, attack_turn=0.03, attack_parallax=0.06, min_pairs=3)
TURN = np.concatenate([np.linspace(0, 30, 8), np.linspace(30, -25, 8)])  # degrees: a hand turning a card


def test_a_turning_head_is_live_and_the_same_turn_of_a_photo_is_an_attack():
    flat = HEAD * [1, 1, 0]  # the same face, printed
    head = motion.judge_landmarks(track(HEAD, TURN, TURN / 3, noise=0.7), CLEAN)
    photo = motion.judge_landmarks(track(flat, TURN, TURN / 3, noise=0.7), CLEAN)
    assert head.call == motion.LIVE and head.parallax_pairs >= 3
    assert photo.call == motion.ATTACK and photo.parallax_pairs == 0


def test_a_still_face_or_one_that_only_comes_closer_is_undecided():
    still = np.zeros(16)
    assert motion.judge_landmarks(track(HEAD, still, still, noise=0.5), CLEAN).call == motion.UNDECIDED
    approach = [project(HEAD, 0.0, 0.0, distance=d) for d in np.linspace(90, 45, 16)]
    assert motion.judge_landmarks(approach, CLEAN).call == motion.UNDECIDED
    assert motion.judge_landmarks(track(HEAD, TURN, TURN, noise=0.5)[:3], CLEAN).call == motion.UNDECIDED  # too few


def test_the_clip_call_from_measures_is_the_tracks_call():
    for points, seed in ((HEAD, 0), (HEAD * [1, 1, 0], 1), (HEAD, 2)):
        landmarks = track(points, TURN if seed < 2 else np.zeros(16), TURN / 3, noise=0.6, seed=seed)
        history, measures = [], []
        for current in landmarks:
            measures.append(motion.frame_measures(history, current))
            history.append(current)
        assert motion.clip_calls(measures, CLEAN) == motion.judge_landmarks(landmarks, CLEAN).call
    never = motion.MotionSettings.from_manifest({"live_parallax": None})
    assert never.live_parallax == math.inf and never.as_manifest()["live_parallax"] is None


def test_pair_measures_of_a_pure_homography_have_no_parallax():
    a = face_landmarks()
    h = np.array([[1.1, 0.08, 5], [-0.05, 0.9, 3], [2e-4, -1e-4, 1]])
    b = cv2.perspectiveTransform(a[None].astype(np.float64), h)[0]
    turn, parallax = motion.pair_measures(a, b)
    assert parallax < 1e-6 and turn > 0.01


# -- judging per track ----------------------------------------------------------------------------

class Face:
    def __init__(self, box, landmarks=None):
        self.box = box
        self.landmarks = face_landmarks() if landmarks is None else landmarks
        self.chip = None


class Scripted(Liveness):
    """Frame cues whose scores are given per frame (the arithmetic of the judge, not the features)."""

    def __init__(self, script, **kw):
        super().__init__(**kw)
        self.script = iter(script)

    def frame_scores(self, image, main):
        return dict(next(self.script))


def test_the_window_mean_decides_and_the_refusing_cue_is_named():
    settings = dict(texture={"head": None, "threshold": 0.5}, context=0.6, window=3)
    script = [{"texture": 0.9, "context": 0.0}] + [{"texture": 0.1, "context": 0.1}] * 5
    verdicts = judge_track(Scripted(script, **settings), [(None, Face((0, 0, 10, 10)))] * 6)
    # means 0.9, 0.5 (reaches the threshold), then 0.37: below it, and the window is full
    assert [v.refused_by for v in verdicts] == ["texture", "texture", None, None, None, None]
    assert verdicts[1].reason == "attack" and verdicts[1].scores["texture"] == pytest.approx(0.5)
    assert [v.live for v in verdicts] == [False, False, True, True, True, True]
    both = judge_track(Scripted([{"texture": 0.7, "context": 0.9}] * 3, **settings), [(None, Face((0, 0, 10, 10)))] * 3)
    assert both[-1].refused_by == "texture"  # several refuse: the first in CUES order is named


def test_motion_calling_an_attack_refuses_the_track_for_good():
    card = HEAD * [1, 1, 0]
    held_still = track(card, np.zeros(6), np.zeros(6), noise=0.3)
    turned = track(card, TURN, TURN / 3, noise=0.5, seed=2)
    settings = CLEAN
    liveness = Scripted([{}] * 40, motion=settings, window=3)
    frames = np.concatenate([held_still, turned, held_still])
    verdicts = judge_track(liveness, [(None, Face((0, 0, 10, 10), lm)) for lm in frames])
    # still, the card says nothing to the motion cue (nor would a still head): the other cues decide
    assert [v.live for v in verdicts[:6]] == [False] * (settings.min_frames - 1) + [True] * (7 - settings.min_frames)
    first = next(i for i, v in enumerate(verdicts) if v.refused_by == "motion")
    assert 6 < first < 6 + len(turned)
    assert all(v.refused_by == "motion" and v.reason == "attack" for v in verdicts[first:])  # still again: refused


def test_with_the_motion_cue_no_track_is_live_before_it_has_seen_enough_frames():
    head = track(HEAD, np.zeros(8), np.zeros(8), noise=0.3)
    liveness = Scripted([{}] * 8, motion=CLEAN, window=2)
    verdicts = judge_track(liveness, [(None, Face((0, 0, 10, 10), lm)) for lm in head])
    assert [v.live for v in verdicts] == [False] * 4 + [True] * 4
    assert verdicts[2].reason == "too few frames"


def test_the_active_check_waits_for_a_head_turn():
    still = track(HEAD, np.zeros(8), np.zeros(8), noise=0.3)
    turning = track(HEAD, TURN, TURN / 3, noise=0.3, seed=1)
    liveness = Scripted([{}] * 40, motion=CLEAN, window=3, active=True)
    verdicts = judge_track(liveness, [(None, Face((0, 0, 10, 10), lm)) for lm in np.concatenate([still, turning])])
    assert all(v.reason == "waiting for a head turn" and v.refused_by == "motion" for v in verdicts[5:8])
    assert verdicts[-1].live


def test_a_face_elsewhere_starts_a_new_track():
    liveness = Scripted([{"texture": 0.0}] * 10, texture={"head": None, "threshold": 0.5}, window=2)
    tracks = Tracks(liveness)
    near = [tracks.observe(None, Face((100, 100, 200, 200))), tracks.observe(None, Face((105, 100, 205, 200)))]
    assert [v.live for v in near] == [False, True] and tracks.number == 1
    assert not tracks.observe(None, Face((400, 100, 500, 200))).live  # another place: a new track, window empty
    assert tracks.number == 2
    tracks.forget()
    tracks.observe(None, Face((400, 100, 500, 200)))
    assert tracks.number == 3
    assert overlap((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)


def test_cue_lists_are_checked():
    assert parse_cues("auto") is None and parse_cues("texture, motion") == ("texture", "motion")
    with pytest.raises(ConfigError, match="texture, context, motion, colour"):
        parse_cues("texture,moire")


# -- the liveness model file ---------------------------------------------------------------------

def minimal_model() -> dict:
    n = texture.FEATURE_COUNT
    return {"format": FORMAT, "window": 5, "cues": {
        "texture": {"features": texture.FEATURES, "mean": [0.0] * n, "scale": [1.0] * n, "weights": [0.0] * n,
                    "bias": 0.0, "threshold": 0.5},
        "context": {"features": context.FEATURES, "threshold": 0.5},
        "motion": {"features": motion.FEATURES}}}


def test_the_model_file_round_trips_and_a_missing_one_says_how_to_train(tmp_path):
    path = write_model(minimal_model(), tmp_path / "liveness.json")
    assert read_model(path)["cues"]["context"]["threshold"] == 0.5
    with pytest.raises(NoLivenessModel, match="edge-verify train liveness"):
        read_model(tmp_path / "absent.json")


@pytest.mark.parametrize("change, message", [
    (lambda m: m["cues"]["texture"].update(features="grey-lbp-fft-v0"), "fitted on features"),
    (lambda m: m["cues"]["texture"].update(weights=[0.0]), "must hold"),
    (lambda m: m["cues"]["context"].pop("threshold"), "states no threshold"),
    (lambda m: m.update(window=0), "window"),
    (lambda m: m.update(format="other/1"), "is not a"),
    (lambda m: m["cues"].update(moire={"features": "x"}), "unknown cue"),
])
def test_a_model_this_runtime_cannot_use_is_refused(tmp_path, change, message):
    model = minimal_model()
    change(model)
    path = tmp_path / "liveness.json"
    path.write_text(json.dumps(model))
    with pytest.raises(ManifestMismatch, match=message):
        read_model(path)
