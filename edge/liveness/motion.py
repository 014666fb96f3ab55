"""Motion cue: over the frames of one tracked face, does it move like a plane or like a head?

A photo or a screen is flat: however it is turned, one homography carries its
whole face from one frame to another. A head is not flat: the nose tip stands 2
to 3 cm in front of the eyes, cheeks and mouth, so when the head turns the nose
leaves the place that the rest of the face's homography predicts (parallax).

The detector's five landmarks are too noisy to see that (a few pixels of error
against a parallax of one or two), and a landmark network trained on heads
places the nose of a turned photo where a head's nose would be. So the cue
measures on the pixels. For pairs of frames of one track (each new frame against
``PAIRS_PER_FRAME`` earlier ones, spread over the history: the older one gives
the longer baseline, the nearer one a turn that has not yet reversed):

1. each frame's face is cut into a grey patch of fixed scale (``QUAD`` px for the
   square root of the eye-mouth quadrilateral's area), once per frame;
2. the earlier patch is warped onto the later one by the homography of the four
   eye and mouth corners, and dense optical flow (OpenCV's DIS) measures what is
   left;
3. one homography is fitted to that flow over the face *without* its nose, and
   ``parallax`` is how far the nose region's median flow lies from it;
   ``turn`` is how far the whole motion is from a similarity (shift, rotation,
   scale) at the four corners: foreshortening, i.e. the face turned out of the
   image plane. Both are shares of the face's size;
4. ``shift`` is how far the face moved across the view, as a share of the
   frame's width: a face carried sideways is seen from another angle, so a head
   shows parallax then too, while a photo carried sideways need not turn.

A bent print is a smooth surface through its nose, which the homography fitted
around the nose nearly follows; a head's nose stands out of it (none of NUAA's
hand-held, bending print clips was called live).

Verdict of a track (``MotionSettings``), from its ``min_frames``-th frame on:

* ``live``: at least ``min_pairs`` pairs show parallax >= ``live_parallax``;
* ``attack``: at least ``min_pairs`` pairs turned by >= ``attack_turn`` (or
  moved across the view by >= ``attack_shift``) while their parallax stayed
  below ``attack_parallax``, and it was not called live: it moved like a plane;
* ``undecided``: anything else, e.g. a still face (a still head and a still
  photo look alike to this cue: it says nothing about them).

A door opens at the first frame a track is live, which the judge allows from
``min_frames`` on: in the default (passive) mode an attack called later comes
too late, so ``min_frames`` is the cue's time to see a plane turn, and every
unlock waits for it. A face that has begun to turn like a plane by then
(``hold_pairs`` pairs) is held (``deciding``) until the cue calls it live or an
attack, or ``max_frames`` pass; a head shows parallax and is rarely held.

On held-out clips (benchmarks/liveness_motion_clips.py) the shipped settings
refused 89 % of synthetic flat attacks and 52 % of NUAA's captured prints before
a door could open, and no real head (2 of 75 were held for a few frames); the
landmark version of this cue called 2 % and 5 % attacks at any time. The optional *active* check
(``[liveness] active``) asks the person for a small head turn and accepts only
``live``.
"""
from __future__ import annotations

import functools
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from edge.liveness.texture import grey

FEATURES = "dense-parallax-v3"  # v3: each pair also measures how far the face moved across the view
PLANE = (0, 1, 4, 3)  # eyes and mouth corners, in order around the quadrilateral
NOSE = 2
HISTORY = 30  # frames of a track kept
PAIRS_PER_FRAME = 2  # earlier frames each new one is compared with (spread over the history)
PATCH = 128  # side of a face patch, px
QUAD = 40.0  # the eye-mouth quadrilateral's scale in a patch, px
NOSE_RADIUS = 0.18  # the nose region: this share of QUAD around the nose landmark
NOSE_CLEARANCE = 0.35  # the rest of the face keeps this far from the nose
FIT_STEP = 3  # fit the face's homography on every FIT_STEP-th pixel (the flow is smooth)

LIVE, ATTACK, UNDECIDED, DECIDING = "live", "attack", "undecided", "deciding"


@dataclass(frozen=True)
class MotionSettings:
    """Defaults: chosen by benchmarks/liveness_motion_clips.py on its validation half (synthetic flat
    attacks and NUAA real sequences) for ``min_frames`` 5 and ``max_frames`` 9: a track may be live from
    its 5th frame (9th while it turns like a plane), so an attack must be called by then. 5 is the frame
    cues' window, so a face that does not turn like a plane waits no longer than without this cue;
    waiting 8 frames (``WAITS[8]``) caught 97.5 % of the validation flat attacks against 94 %, at 3 more
    frames for every unlock. Held out: 89 % of synthetic flat attacks and 52 % of NUAA's captured prints refused, no real
    head refused, 2 of 75 held. ``live_parallax`` None in a manifest: never call a track live."""

    live_parallax: float = 0.1
    attack_turn: float = 0.005
    attack_parallax: float = 0.005
    # a pair whose face moved this share of the frame's width across the view also counts as turned (the
    # camera sees it from a new angle, about 2 degrees at 3 % of a 60-degree view); inf: only turns count
    attack_shift: float = 0.03
    min_pairs: int = 6
    min_frames: int = 5  # a track may be live from here: the frame cues' window, so no unlock waits longer
    # a face that has begun to turn like a plane (hold_pairs such pairs) and is not yet called live is held,
    # not let in, until the cue decides or max_frames pass; None: never hold
    hold_pairs: Optional[int] = 2
    max_frames: int = 9

    @classmethod
    def from_manifest(cls, entry: dict) -> "MotionSettings":
        known = {name: entry[name] for name in cls.__dataclass_fields__ if name in entry}
        for name in ("live_parallax", "attack_shift"):
            if name in known and known[name] is None:
                known[name] = math.inf
        return cls(**known)

    def as_manifest(self) -> dict:
        return {name: (None if value == math.inf else value) for name, value in self.__dict__.items()}


# How long a face is kept from the door while the cue looks for a plane -> the settings that
# benchmarks/liveness_motion_clips.py chose for that wait on its validation half (`--min-frames`,
# `--max-frames`). 8 frames refuse more attacks per clip but every unlock waits 3 frames longer.
WAITS = {5: MotionSettings(),
         8: MotionSettings(attack_shift=0.02, min_frames=8, hold_pairs=3, max_frames=12)}


@dataclass(frozen=True)
class MotionVerdict:
    call: str  # LIVE, ATTACK, DECIDING (held: turning like a plane so far) or UNDECIDED
    frames: int
    parallax_pairs: int  # pairs with the parallax of a head
    flat_turn_pairs: int  # pairs turned like a plane without parallax
    max_parallax: float
    max_turn: float


@dataclass(frozen=True)
class FaceSample:
    """One frame's face for the cue: its landmarks (image px), its grey patch and the patch's map."""

    landmarks: np.ndarray  # (5, 2)
    patch: np.ndarray  # (PATCH, PATCH) uint8
    to_patch: np.ndarray  # 3x3: image px -> patch px (a similarity)
    nose: np.ndarray  # patch px of the nose region, (N, 2)
    fit: np.ndarray  # patch px the face's homography is fitted on (the face less its nose, thinned), (M, 2)
    quad: np.ndarray  # the eye-mouth quadrilateral in patch px, (4, 2)
    centre: np.ndarray  # the quadrilateral's centre, image px
    width: float  # the frame's width, px


def quad_scale(points: np.ndarray) -> float:
    return float(np.sqrt(abs(cv2.contourArea(points.astype(np.float32)))))


def sample(image: np.ndarray, landmarks) -> Optional[FaceSample]:
    """The face of one frame (RGB or grey) as the cue compares it; None for a degenerate quadrilateral."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    quad = points[list(PLANE)]
    size = quad_scale(quad)
    if size < 4.0:
        return None
    scale = QUAD / size
    centre = quad.mean(axis=0)
    # the quadrilateral's centre a little above the patch's: the chin needs more room than the brow
    to_patch = np.array([[scale, 0.0, PATCH / 2 - scale * centre[0]],
                         [0.0, scale, PATCH / 2 - 0.1 * QUAD - scale * centre[1]], [0.0, 0.0, 1.0]])
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    patch = cv2.warpAffine(grey(image), to_patch[:2], (PATCH, PATCH), flags=interpolation,
                           borderMode=cv2.BORDER_REPLICATE)
    in_patch = _apply(to_patch, points)
    nose, rest = regions(in_patch)
    thinned = np.zeros_like(rest)
    thinned[::FIT_STEP, ::FIT_STEP] = True
    grid = patch_grid()
    return FaceSample(points, patch, to_patch, grid[nose], grid[rest & thinned], in_patch[list(PLANE)], centre,
                      float(np.asarray(image).shape[1]))


def _apply(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    moved = np.column_stack([points, np.ones(len(points))]) @ homography.T  # np.c_: the same, 3x slower
    return moved[:, :2] / moved[:, 2:3]


def fit_homography(src: np.ndarray, dst: np.ndarray) -> Optional[np.ndarray]:
    """Least-squares homography src -> dst (normalised DLT); None when the points do not fix one."""
    if len(src) < 8:
        return None
    mean, spread = src.mean(axis=0), max(float(src.std()), 1e-9)
    norm = np.array([[1 / spread, 0, -mean[0] / spread], [0, 1 / spread, -mean[1] / spread], [0, 0, 1]])
    s, d = _apply(norm, src), _apply(norm, dst)
    ones, zeros = np.ones(len(s)), np.zeros(len(s))
    rows = np.concatenate([
        np.column_stack([s, ones, zeros, zeros, zeros, -s[:, 0] * d[:, 0], -s[:, 1] * d[:, 0], -d[:, 0]]),
        np.column_stack([zeros, zeros, zeros, s, ones, -s[:, 0] * d[:, 1], -s[:, 1] * d[:, 1], -d[:, 1]])])
    # the null vector of the rows = the eigenvector of their 9x9 Gram matrix with the least eigenvalue
    # (cheaper than an SVD of all rows: the fit runs for every pair of frames)
    values, vectors = np.linalg.eigh(rows.T @ rows)
    if values[1] < 1e-12 * max(values[-1], 1e-300):
        return None
    fitted = np.linalg.inv(norm) @ vectors[:, 0].reshape(3, 3) @ norm
    return fitted / fitted[2, 2] if abs(fitted[2, 2]) > 1e-12 else None


@functools.cache
def patch_grid() -> np.ndarray:
    """(PATCH, PATCH, 2) float64: each patch pixel's (x, y); made on first use, never at import."""
    return np.stack(np.mgrid[0:PATCH, 0:PATCH][::-1], axis=-1).astype(np.float64)


_FLOW = threading.local()  # one DIS object per thread: it reuses its buffers between calls


def _flow(later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    flow = getattr(_FLOW, "dis", None)
    if flow is None:  # made on first use, never at import
        flow = _FLOW.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        # the preset stops at a quarter of the patch's resolution, which smooths a nose's parallax away
        # (a 7 px nose offset came out as 0.6 px); half resolution keeps it (3.5 px over the nose region)
        flow.setFinestScale(1)
    return flow.calc(later, earlier, None)


def regions(landmarks_in_patch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nose, rest of the face) masks of a patch, from the landmarks in patch px."""
    nose = landmarks_in_patch[NOSE]
    quad = landmarks_in_patch[list(PLANE)]
    centre = quad.mean(axis=0)
    grid = patch_grid()
    x, y = grid[..., 0], grid[..., 1]
    from_nose = np.hypot(x - nose[0], y - nose[1])
    face = ((x - centre[0]) / (0.95 * QUAD)) ** 2 + ((y - centre[1]) / (1.2 * QUAD)) ** 2 < 1
    return from_nose < NOSE_RADIUS * QUAD, face & (from_nose > NOSE_CLEARANCE * QUAD)


def pair_measures(earlier: FaceSample, later: FaceSample) -> tuple[float, float, float]:
    """(turn, parallax, shift) between two frames of one face: turn and parallax as shares of the face's
    size, shift (how far the face moved across the view) as a share of the frame's width; zeros when
    the pair cannot be measured."""
    src = earlier.landmarks[list(PLANE)].astype(np.float32)
    dst = later.landmarks[list(PLANE)].astype(np.float32)
    try:
        corners = cv2.getPerspectiveTransform(src, dst)  # earlier image -> later image
        # later patch px -> earlier patch px, through the images
        to_earlier = earlier.to_patch @ np.linalg.inv(corners) @ np.linalg.inv(later.to_patch)
    except (cv2.error, np.linalg.LinAlgError):
        return 0.0, 0.0, 0.0
    warped = cv2.warpPerspective(earlier.patch, to_earlier, (PATCH, PATCH),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    flow = _flow(later.patch, warped)  # later(x) ~ warped(x + flow(x))
    fit, nose = later.fit, later.nose
    residual_fit = fit_homography(fit, fit + flow[fit[:, 1].astype(int), fit[:, 0].astype(int)])
    if residual_fit is None or not len(nose):
        return 0.0, 0.0, 0.0
    seen = nose + flow[nose[:, 1].astype(int), nose[:, 0].astype(int)]
    parallax = float(np.linalg.norm(np.median(seen - _apply(residual_fit, nose), axis=0))) / QUAD
    whole = to_earlier @ residual_fit  # later patch px -> earlier patch px: the plane's whole motion
    turn = similarity_residual(later.quad, _apply(whole, later.quad)) / QUAD
    shift = float(np.linalg.norm(later.centre - earlier.centre)) / max(later.width, 1.0)
    return (turn, parallax, shift) if math.isfinite(turn) and math.isfinite(parallax) else (0.0, 0.0, 0.0)


def similarity_residual(src: np.ndarray, dst: np.ndarray) -> float:
    """RMS distance of ``dst`` from the least-squares similarity image of ``src``."""
    sc, dc = src - src.mean(axis=0), dst - dst.mean(axis=0)
    # complex numbers: a similarity is multiplication by one complex number
    zs, zd = sc[:, 0] + 1j * sc[:, 1], dc[:, 0] + 1j * dc[:, 1]
    factor = np.vdot(zs, zd) / max(np.vdot(zs, zs).real, 1e-12)
    return float(np.sqrt(np.mean(np.abs(zd - factor * zs) ** 2)))


def frame_measures(history, current: FaceSample) -> list[tuple[float, float]]:
    """(turn, parallax, shift) of a new frame against up to PAIRS_PER_FRAME earlier ones, spread over the
    history (newest first)."""
    earlier = list(history)[::-1]
    if not earlier:
        return []
    step = max(1, len(earlier) // PAIRS_PER_FRAME)
    return [pair_measures(before, current) for before in earlier[::step][:PAIRS_PER_FRAME]]


def clip_measures(images, landmarks) -> list:
    """Each frame's frame_measures over a whole clip (frames without a usable face measure nothing)."""
    history, measures = deque(maxlen=HISTORY), []
    for image, points in zip(images, landmarks):
        current = sample(image, points)
        if current is None:
            measures.append([])
            continue
        measures.append(frame_measures(history, current))
        history.append(current)
    return measures


def passive_call(measures: list, settings: MotionSettings) -> tuple[str, int]:
    """(call, frame) a passive door acts on for a clip (its frame_measures, in order): the first call from
    ``min_frames`` on that is not DECIDING (the track may be live there, so an attack called later comes
    after the door opened), or ATTACK as soon as it is called; DECIDING or UNDECIDED when the clip ends
    first."""
    track = MotionTrack(settings)
    call = UNDECIDED
    for pairs in measures:
        call = track.feed(pairs).call
        if call == ATTACK or (track.frames >= settings.min_frames and call != DECIDING):
            break
    return call, track.frames


def clip_calls(measures: list, settings: MotionSettings) -> str:
    """The call a track gets over a whole clip, from each frame's frame_measures (in order): ATTACK if the
    cue called it an attack on any frame (the judge keeps that for good), else its last call."""
    track = MotionTrack(settings)
    call = UNDECIDED
    for pairs in measures:
        call = track.feed(pairs).call
        if call == ATTACK:
            return ATTACK
    return call


@dataclass
class MotionTrack:
    """The motion cue's state for one tracked face; feed it each frame and the face's landmarks."""

    settings: MotionSettings = field(default_factory=MotionSettings)
    history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    parallax_pairs: int = 0
    flat_turn_pairs: int = 0
    max_parallax: float = 0.0
    max_turn: float = 0.0
    frames: int = 0

    def add(self, image: np.ndarray, landmarks) -> MotionVerdict:
        return self.take(*self.measure(image, landmarks))

    def measure(self, image: np.ndarray, landmarks) -> tuple[Optional[FaceSample], list]:
        """(this frame's FaceSample, its pairs against the history), changing nothing: the costly part
        (the flows), which a caller may run on another thread while this track is not being changed."""
        current = sample(image, landmarks)
        return current, ([] if current is None else frame_measures(self.history, current))

    def settled(self) -> bool:
        """Called live for good: enough pairs showed a head's parallax, and that count only grows, so no
        later pair can change the call (from ``min_frames`` on it is LIVE)."""
        return self.parallax_pairs >= self.settings.min_pairs

    def take(self, current: Optional[FaceSample], pairs) -> MotionVerdict:
        """One more frame, measured by :meth:`measure` on this track's present history."""
        if current is not None:
            self.history.append(current)
        return self.feed(pairs)

    def feed(self, pairs) -> MotionVerdict:
        """One more frame, given its measured (turn, parallax, shift) pairs (benchmarks replay stored measures)."""
        for measures in pairs:
            self.count(*measures)
        self.frames += 1
        return self.verdict()

    def count(self, turn: float, parallax: float, shift: float = 0.0) -> None:
        """One measured pair. Flat: it turned, or moved across the view (the camera then sees it from
        another angle, and a head shows parallax), with no parallax."""
        s = self.settings
        self.max_parallax = max(self.max_parallax, parallax)
        self.max_turn = max(self.max_turn, turn)
        if parallax >= s.live_parallax:
            self.parallax_pairs += 1
        elif (turn >= s.attack_turn or shift >= s.attack_shift) and parallax < s.attack_parallax:
            self.flat_turn_pairs += 1

    def verdict(self) -> MotionVerdict:
        s = self.settings
        call = UNDECIDED
        if self.frames >= s.min_frames:
            if self.parallax_pairs >= s.min_pairs:
                call = LIVE
            elif self.flat_turn_pairs >= s.min_pairs:
                call = ATTACK
            elif self.held():
                call = DECIDING
        return MotionVerdict(call, self.frames, self.parallax_pairs, self.flat_turn_pairs, self.max_parallax,
                             self.max_turn)

    def held(self) -> bool:
        """Turned like a plane in ``hold_pairs`` pairs, not yet in ``min_pairs``, and not shown to be a head:
        wait for the cue (up to ``max_frames``). Asked after the live and attack calls."""
        s = self.settings
        return s.hold_pairs is not None and self.flat_turn_pairs >= s.hold_pairs and self.frames < s.max_frames


def judge_frames(images, landmarks, settings: MotionSettings | None = None) -> MotionVerdict:
    """The verdict of a whole track: its frames (RGB or grey) and their landmarks ((T, 5, 2)), in order."""
    track = MotionTrack(settings or MotionSettings())
    verdict = MotionVerdict(UNDECIDED, 0, 0, 0, 0.0, 0.0)
    for image, points in zip(images, landmarks):
        verdict = track.add(image, points)
    return verdict
