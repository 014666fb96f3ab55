"""The liveness cues as pure functions, on synthetic inputs whose answer is known by construction."""
from __future__ import annotations

import json
import math
from dataclasses import replace

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


@pytest.mark.parametrize("points", [8, 16])
def test_the_uniform_pattern_table_is_the_definition(points):
    table = texture._riu2_table(points)
    rng = np.random.default_rng(points)
    for code in list(range(min(300, 1 << points))) + rng.integers(0, 1 << points, 300).tolist() + [(1 << points) - 1]:
        bits = [(code >> k) & 1 for k in range(points)]
        transitions = sum(bits[k] != bits[k - 1] for k in range(points))  # circular
        assert table[code] == (sum(bits) if transitions <= 2 else points + 1), code
    assert table.dtype == np.int64 and len(table) == 1 << points
    assert np.bincount(table).tolist()[:points + 1] == [1] + [points] * (points - 1) + [1]


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


def test_the_looked_up_stretch_gives_the_edges_of_stretching_every_pixel():
    rng = np.random.default_rng(3)
    scene, _, _ = framed_scene("card", 0.2)
    regions = [texture.grey(scene), rng.integers(0, 256, (231, 307), dtype=np.uint8),
               rng.integers(90, 140, (120, 90), dtype=np.uint8), np.full((60, 80), 77, np.uint8)]
    for region in regions:
        low, high = np.percentile(region, (2, 98))
        by_pixel = np.clip((region.astype(np.float32) - low) * (255.0 / max(high - low, 1.0)), 0, 255).astype(np.uint8)
        expected = cv2.Canny(cv2.GaussianBlur(by_pixel, (5, 5), 1.0), 25, 75)
        assert np.array_equal(context.edges(region), expected)


def test_the_percentiles_from_the_histogram_are_numpys():
    rng = np.random.default_rng(4)
    regions = [rng.integers(0, 256, (231, 307), dtype=np.uint8), rng.integers(100, 103, (17, 9), dtype=np.uint8),
               np.clip(rng.normal(128, 40, (64, 48)), 0, 255).astype(np.uint8), np.full((3, 5), 200, np.uint8),
               np.array([[7]], np.uint8), rng.integers(0, 256, (40, 60), dtype=np.uint8)[::3, 1::2]]
    qs = (0, 2, 2.5, 37.3, 50, 98, 99.9, 100)
    for region in regions:
        for q, got in zip(qs, context.percentiles(region, *qs), strict=True):
            expected = np.percentile(region, q)
            # the type matters too: a Python float would make the stretch's arithmetic float32
            assert got == expected and type(got) is type(expected), (region.shape, q, got, expected)


# -- motion -------------------------------------------------------------------------------------

# A face as a textured surface in centimetres (x right, y down, z towards the camera), rendered by
# projecting a dense grid of its points: a head's nose stands out of it, a photo's does not.
LANDMARKS_CM = np.array([[-3.2, -3.0], [3.2, -3.0], [0.0, 0.5], [-2.5, 3.5], [2.5, 3.5]])
NOSE_CM = 2.6
_STEP_CM = 0.04


def surface_texture(seed: int = 0) -> np.ndarray:
    """Skin-like grey texture over the face's grid (blobs of a few millimetres to a few centimetres), with
    dark eyes, nostrils and mouth where the landmarks are."""
    rng = np.random.default_rng(seed)
    shape = (int(20 / _STEP_CM), int(16 / _STEP_CM))
    bands = [cv2.GaussianBlur(rng.normal(0, 1, shape), (0, 0), sigma) for sigma in (1.5, 5.0, 15.0)]
    grey_ = 128 + sum(weight * band / band.std() for band, weight in zip(bands, (10.0, 18.0, 25.0)))
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    x, y = xs * _STEP_CM - 8.0, ys * _STEP_CM - 10.0
    for (cx, cy), (rx, ry) in zip(LANDMARKS_CM, ((1.2, 0.5), (1.2, 0.5), (0.9, 0.3), (1.4, 0.3), (1.4, 0.3))):
        grey_ -= 60 * np.exp(-((x - cx) / rx) ** 2 - ((y - cy - (0.6 if cy == 0.5 else 0)) / ry) ** 2)
    return np.clip(grey_, 10, 245)


def depth(x: np.ndarray, y: np.ndarray, flat: bool) -> np.ndarray:
    if flat:
        return np.zeros_like(x)
    nose = NOSE_CM * np.exp(-(x ** 2 + (y - 0.5) ** 2) / (2 * 1.1 ** 2))
    return nose - 0.04 * x ** 2  # the cheeks fall back a little


def render(yaw_deg: float, pitch_deg: float, flat: bool, distance: float = 50.0, shift=(0.0, 0.0), seed: int = 0,
           noise: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """(grey 640x480 frame, five landmarks) of the face turned by yaw and pitch, ``distance`` cm away."""
    grey_ = surface_texture()
    ys, xs = np.mgrid[0:grey_.shape[0], 0:grey_.shape[1]]
    x, y = xs * _STEP_CM - 8.0, ys * _STEP_CM - 10.0
    z = depth(x, y, flat)
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    turn = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]]) @ np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])

    def project(points):  # (N, 3) cm -> (N, 2) px, and depth
        camera = points * [1, 1, -1] @ turn.T + [shift[0], shift[1], distance]
        return 640 * camera[:, :2] / camera[:, 2:3] + [320, 240], camera[:, 2]

    pixels, far = project(np.c_[x.ravel(), y.ravel(), z.ravel()])
    order = np.argsort(-far)  # far first: nearer points overwrite them
    frame = np.full((480, 640), 90.0)
    cols, rows = np.round(pixels[order]).astype(int).T
    inside = (cols >= 0) & (cols < 640) & (rows >= 0) & (rows < 480)
    frame[rows[inside], cols[inside]] = grey_.ravel()[order][inside]
    rng = np.random.default_rng(seed)
    frame = cv2.GaussianBlur(frame, (0, 0), 0.6) + rng.normal(0, noise, frame.shape)
    marks = np.c_[LANDMARKS_CM, depth(LANDMARKS_CM[:, 0], LANDMARKS_CM[:, 1], flat)]
    landmarks, _ = project(marks)
    return np.clip(frame, 0, 255).astype(np.uint8), landmarks + rng.normal(0, 1.0, (5, 2))  # a detector's error


def clip(yaws, pitches, flat: bool, **kw) -> tuple[list, list]:
    frames = [render(y, p, flat, seed=i, **kw) for i, (y, p) in enumerate(zip(yaws, pitches))]
    return [f for f, _ in frames], [m for _, m in frames]


TURN = np.concatenate([np.linspace(0, 30, 8), np.linspace(30, -25, 8)])  # degrees: a hand turning a card
STILL = np.zeros(16)  # at least min_frames + 3
SETTINGS = motion.MotionSettings()  # the shipped settings, chosen on real clips
# calls this rendered head live: its nose is a smooth bump, and the shipped live_parallax asks for more
SENSITIVE = motion.MotionSettings(live_parallax=0.05, min_pairs=3)


@pytest.fixture(scope="module")
def turning():
    return {"head": clip(TURN, TURN / 3, flat=False), "photo": clip(TURN, TURN / 3, flat=True)}


def test_a_turning_head_is_live_and_the_same_turn_of_a_photo_is_an_attack(turning):
    head = motion.judge_frames(*turning["head"], SETTINGS)
    photo = motion.judge_frames(*turning["photo"], SETTINGS)
    assert photo.call == motion.ATTACK and photo.parallax_pairs == 0
    assert head.call != motion.ATTACK and head.flat_turn_pairs == 0
    assert head.max_parallax > 10 * photo.max_parallax and photo.max_parallax < SETTINGS.attack_parallax
    assert motion.judge_frames(*turning["head"], SENSITIVE).call == motion.LIVE


def test_a_still_face_or_one_that_only_comes_closer_is_undecided(turning):
    assert motion.judge_frames(*clip(STILL, STILL, flat=False), SETTINGS).call == motion.UNDECIDED
    approach = [render(0.0, 0.0, True, distance=d, seed=i) for i, d in enumerate(np.linspace(80, 50, 8))]
    assert motion.judge_frames([f for f, _ in approach], [m for _, m in approach], SETTINGS).call == motion.UNDECIDED
    head = turning["head"]
    assert motion.judge_frames(head[0][:3], head[1][:3], SETTINGS).call == motion.UNDECIDED  # too few frames


def test_the_clip_call_from_measures_is_the_tracks_call(turning):
    for frames, landmarks in (*turning.values(), clip(STILL[:6], STILL[:6], flat=False)):
        measures = motion.clip_measures(frames, landmarks)
        assert motion.clip_calls(measures, SETTINGS) == motion.judge_frames(frames, landmarks, SETTINGS).call
    never = motion.MotionSettings.from_manifest({"live_parallax": None})
    assert never.live_parallax == math.inf and never.as_manifest()["live_parallax"] is None


def test_a_face_turning_like_a_plane_is_held_until_the_cue_decides_or_time_runs_out():
    settings = motion.MotionSettings(min_pairs=4, hold_pairs=2, min_frames=3, max_frames=6)
    plane = [(0.05, 0.0)]  # one pair turned without parallax
    held = [[], plane, plane, [], [], [], [], []]
    track = motion.MotionTrack(settings)
    calls = [track.feed(pairs).call for pairs in held]
    U, D = motion.UNDECIDED, motion.DECIDING
    assert calls == [U, U, D, D, D, U, U, U]  # from min_frames until max_frames, then let go
    assert motion.passive_call(held, settings) == (U, 6)
    assert motion.passive_call([[], plane, plane, plane, plane, []], settings) == (motion.ATTACK, 5)
    assert motion.passive_call([[]] * 8, settings) == (U, 3)  # nothing seen: the door may open at min_frames
    head = [[], plane, plane] + [[(0.05, 0.2)]] * 4
    assert motion.passive_call(head, replace(settings, max_frames=10)) == (motion.LIVE, 7)  # parallax ends the hold
    assert motion.passive_call(held, replace(settings, hold_pairs=None)) == (U, 3)


def test_the_judge_holds_a_face_that_turns_like_a_plane(turning):
    settings = motion.MotionSettings(min_pairs=1000, hold_pairs=2, min_frames=5, max_frames=10)  # never an attack
    frames, landmarks = turning["photo"]
    verdicts = judge_track(Scripted([{}] * 40, motion=settings, window=3),
                           [(f, Face((0, 0, 10, 10), lm)) for f, lm in zip(frames, landmarks)])
    held = verdicts[settings.min_frames - 1:settings.max_frames - 1]
    assert all(not v.live and v.refused_by == "motion" and "deciding" in v.reason for v in held)
    assert verdicts[settings.max_frames - 1].live  # time ran out: the other cues decide


def test_a_photo_carried_across_the_view_is_flat_and_a_head_is_not():
    shifts = np.concatenate([np.linspace(-8, 8, 8), np.linspace(8, -8, 8)])  # cm, 50 cm from the camera
    settings = replace(SETTINGS, attack_shift=0.03)
    for flat in (True, False):
        frames = [render(0.0, 0.0, flat, shift=(x, 0.0), seed=i) for i, x in enumerate(shifts)]
        images, landmarks = [f for f, _ in frames], [m for _, m in frames]
        verdict = motion.judge_frames(images, landmarks, settings)
        assert (verdict.call == motion.ATTACK) == flat, (flat, verdict)
        # without the shift rule nothing turned: the photo says nothing either
        assert motion.judge_frames(images, landmarks, replace(settings, attack_shift=math.inf)).call != motion.ATTACK


def test_pair_measures_of_a_pure_homography_have_no_parallax():
    frame, a = render(0.0, 0.0, flat=False)
    h = np.array([[1.08, 0.06, -20], [-0.04, 0.93, 15], [1.5e-4, -1e-4, 1]])
    warped = cv2.warpPerspective(frame, h, (640, 480))
    b = cv2.perspectiveTransform(a[None].astype(np.float64), h)[0]
    turn, parallax, shift = motion.pair_measures(motion.sample(frame, a), motion.sample(warped, b))
    assert parallax < 0.005 and turn > 0.01
    moved = np.linalg.norm(b[[0, 1, 4, 3]].mean(axis=0) - a[[0, 1, 4, 3]].mean(axis=0))
    assert shift == pytest.approx(moved / 640)
    assert motion.sample(frame, np.zeros((5, 2))) is None  # no face to cut


def test_the_homography_fit_recovers_a_known_one():
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 128, (60, 2))
    h = np.array([[0.9, 0.1, 4.0], [-0.05, 1.1, -3.0], [1e-4, 2e-4, 1.0]])
    dst = cv2.perspectiveTransform(src[None], h)[0]
    np.testing.assert_allclose(motion.fit_homography(src, dst), h, atol=1e-6)
    assert motion.fit_homography(src[:5], dst[:5]) is None


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

    def pixel_scores(self, image, main, cues=("texture", "cnn", "context")):
        return {name: score for name, score in next(self.script).items() if name in cues}


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


def test_motion_calling_an_attack_refuses_the_track_for_good(turning):
    still = SETTINGS.min_frames + 2
    held_still = clip(STILL[:still], STILL[:still], flat=True)
    frames = held_still[0] + turning["photo"][0] + held_still[0]
    landmarks = held_still[1] + turning["photo"][1] + held_still[1]
    liveness = Scripted([{}] * 60, motion=SETTINGS, window=3)
    verdicts = judge_track(liveness, [(f, Face((0, 0, 10, 10), lm)) for f, lm in zip(frames, landmarks)])
    # still, the card says nothing to the motion cue (nor would a still head): the other cues decide
    assert [v.live for v in verdicts[:still]] == [False] * (SETTINGS.min_frames - 1) + [True] * 3
    first = next(i for i, v in enumerate(verdicts) if v.refused_by == "motion")
    assert still < first < still + len(TURN)
    assert all(v.refused_by == "motion" and v.reason == "attack" for v in verdicts[first:])  # still again: refused


def test_with_the_motion_cue_no_track_is_live_before_it_has_seen_enough_frames():
    count = SETTINGS.min_frames + 3
    frames, landmarks = clip(STILL[:count], STILL[:count], flat=False)
    liveness = Scripted([{}] * count, motion=SETTINGS, window=2)
    verdicts = judge_track(liveness, [(f, Face((0, 0, 10, 10), lm)) for f, lm in zip(frames, landmarks)])
    assert [v.live for v in verdicts] == [False] * (SETTINGS.min_frames - 1) + [True] * 4
    assert verdicts[2].reason == "too few frames"


def test_the_active_check_waits_for_a_head_turn(turning):
    count = SETTINGS.min_frames + 3
    still = clip(STILL[:count], STILL[:count], flat=False)
    frames, landmarks = still[0] + turning["head"][0], still[1] + turning["head"][1]
    liveness = Scripted([{}] * 60, motion=SENSITIVE, window=3, active=True)
    verdicts = judge_track(liveness, [(f, Face((0, 0, 10, 10), lm)) for f, lm in zip(frames, landmarks)])
    waiting = verdicts[SENSITIVE.min_frames - 1:count]
    assert waiting and all(v.reason == "waiting for a head turn" and v.refused_by == "motion" for v in waiting)
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
    with pytest.raises(ConfigError, match="texture, cnn, context, motion, colour"):
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


# -- measuring apart from recording (the daemon measures on its helper thread) -------------------

def test_measuring_then_recording_judges_exactly_as_adding(turning):
    liveness = Scripted([{"texture": 0.1}] * 40, motion=SENSITIVE, window=3, texture={"head": None, "threshold": 0.5})
    added, split = liveness.new_track(), liveness.new_track()
    frames, landmarks = turning["photo"]
    for frame, points in zip(frames, landmarks):
        face = Face((0, 0, 10, 10), points)
        one = added.add(frame, face)
        other = split.record(split.measure(frame, face), face)
        assert (one.live, one.reason, one.scores, one.refusing) == (other.live, other.reason, other.scores, other.refusing)
    assert one.scores["motion"] == motion.ATTACK  # the frames did decide something


def test_a_frame_measured_for_one_track_and_recorded_on_another_is_paired_with_that_track(turning):
    liveness = Liveness(motion=SENSITIVE, window=3)
    frames, landmarks = turning["photo"]
    earlier = liveness.new_track()
    for frame, points in zip(frames[:4], landmarks[:4]):
        earlier.add(frame, Face((0, 0, 10, 10), points))
    face = Face((0, 0, 10, 10), landmarks[4])
    cues = earlier.measure(frames[4], face)
    assert cues.pairs and len(earlier.motion_track.history) == 4  # measuring changed nothing
    fresh = liveness.new_track()  # the face turned out to be someone else: a new track
    verdict = fresh.record(cues, face)
    track = fresh.motion_track
    assert verdict.frames == 1 and len(track.history) == 1
    assert track.parallax_pairs == track.flat_turn_pairs == 0 and track.max_turn == 0.0  # no pair with the other track's frames


def test_a_frame_cue_that_refused_a_full_window_refuses_the_rest_of_the_track():
    settings = dict(texture={"head": None, "threshold": 0.5}, context=0.6, window=3)
    # the third frame fills the window with a mean of 0.6: refused, and kept although later windows pass
    script = [{"texture": 0.6, "context": 0.0}] * 3 + [{"texture": 0.1, "context": 0.0}] * 5
    verdicts = judge_track(Scripted(script, **settings), [(None, Face((0, 0, 10, 10)))] * 8)
    assert [v.refused_by for v in verdicts] == ["texture"] * 8
    assert verdicts[2].reason == "attack"
    assert verdicts[-1].scores["texture"] == pytest.approx(0.1)
    assert verdicts[-1].reason == "attack, called earlier in this track"  # the event says why a passing window is refused
    # a refusal before the window is full is not kept (the first frames of an approach are the worst)
    early = [{"texture": 0.9, "context": 0.0}] + [{"texture": 0.1, "context": 0.0}] * 5
    verdicts = judge_track(Scripted(early, **settings), [(None, Face((0, 0, 10, 10)))] * 6)
    assert [v.live for v in verdicts] == [False, False, True, True, True, True]
    # a new track starts clean
    fresh = judge_track(Scripted([{"texture": 0.1, "context": 0.0}] * 3, **settings), [(None, Face((0, 0, 10, 10)))] * 3)
    assert fresh[-1].live


# -- settling: the daemon stops measuring what can no longer change a track's verdict ---------------

def live_and_named(verdicts) -> list:
    return [(v.live, v.refused_by) for v in verdicts]


def settled_track(liveness: Liveness, observations) -> list:
    """The daemon's way: each frame measured, then recorded, by a settling judge."""
    judge = liveness.new_track(settle=True)
    return [judge.record(judge.measure(image, main), main) for image, main in observations]


def test_a_track_refused_for_good_is_not_measured_again_and_stays_refused():
    settings = dict(texture={"head": None, "threshold": 0.5}, context=0.6, window=3)
    # three frames fill the window and refuse it for good; a fourth measure would exhaust the script
    refused = [{"texture": 0.6, "context": 0.0}] * 3
    faces = [(None, Face((0, 0, 10, 10)))] * 8
    verdicts = settled_track(Scripted(refused, **settings), faces)
    everything = judge_track(Scripted(refused + [{"texture": 0.1, "context": 0.0}] * 5, **settings), faces)
    assert live_and_named(verdicts) == live_and_named(everything) == [(False, "texture")] * 8
    assert verdicts[-1].reason == "attack, called earlier in this track" and verdicts[-1].frames == 8
    assert verdicts[-1].scores["texture"] == pytest.approx(0.6)  # the window as it was when it refused
    # a refusal that is not kept (the window not yet full) does not settle anything
    early = [{"texture": 0.9, "context": 0.0}] + [{"texture": 0.1, "context": 0.0}] * 5
    faces = [(None, Face((0, 0, 10, 10)))] * 6
    assert live_and_named(settled_track(Scripted(early, **settings), faces)) == \
        live_and_named(judge_track(Scripted(early, **settings), faces)) == [(False, "texture")] * 2 + [(True, None)] * 4


class CountedFlows:
    def __init__(self, monkeypatch):
        self.calls = 0
        flow = motion._flow

        def counted(*args):
            self.calls += 1
            return flow(*args)

        monkeypatch.setattr(motion, "_flow", counted)


@pytest.mark.parametrize("kind, call", [("head", motion.LIVE), ("photo", motion.ATTACK)])
def test_once_the_motion_cue_has_called_a_track_its_flows_stop_and_every_verdict_is_the_same(
        turning, monkeypatch, kind, call):
    frames, landmarks = turning[kind]
    faces = [(f, Face((0, 0, 10, 10), lm)) for f, lm in zip(frames, landmarks)]
    settings = dict(texture={"head": None, "threshold": 0.5}, motion=SENSITIVE, window=3)
    flows = CountedFlows(monkeypatch)
    everything = judge_track(Scripted([{"texture": 0.1}] * 40, **settings), faces)
    all_flows, flows.calls = flows.calls, 0
    verdicts = settled_track(Scripted([{"texture": 0.1}] * 40, **settings), faces)
    assert live_and_named(verdicts) == live_and_named(everything)
    assert [v.scores["motion"] for v in verdicts] == [v.scores["motion"] for v in everything]
    assert verdicts[-1].scores["motion"] == call  # the clip did decide
    decided = next(i for i, v in enumerate(everything) if v.scores["motion"] == call)
    assert flows.calls < all_flows and flows.calls <= 2 * (decided + 1)  # at most two pairs a frame, until then


def test_a_frame_a_settled_track_skipped_is_measured_in_full_for_the_new_track_it_joins(turning):
    settings = dict(texture={"head": None, "threshold": 0.5}, context=0.6, motion=SENSITIVE, window=3)
    frames, landmarks = turning["photo"]
    liveness = Scripted([{"texture": 0.9, "context": 0.0}] * 3 + [{"texture": 0.1, "context": 0.0}], **settings)
    refused = liveness.new_track(settle=True)
    for frame, points in zip(frames[:3], landmarks[:3]):
        face = Face((0, 0, 10, 10), points)
        assert not refused.record(refused.measure(frame, face), face).live
    face = Face((0, 0, 10, 10), landmarks[3])
    cues = refused.measure(frames[3], face)  # refused for good: nothing measured
    fresh = liveness.new_track(settle=True)  # the face turned out to be someone else: a new track
    verdict = fresh.record(cues, face)
    assert verdict.frames == 1 and verdict.scores["texture"] == pytest.approx(0.1)  # measured for it after all
    assert len(fresh.motion_track.history) == 1  # and its face cut for the motion cue
