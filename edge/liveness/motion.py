"""Motion cue: over the frames of one tracked face, does it move like a plane or like a head?

A photo or a screen is flat: wherever it is turned, the image of its eyes and
mouth corners (four points) fixes a homography that also carries the nose to
where it is seen. A head is not flat: the nose tip stands 2 to 3 cm in front of
the eye and mouth plane, so when the head turns the nose leaves the place the
homography predicts (parallax).

For pairs of frames of one track (each new frame against up to ``PAIRS_PER_FRAME``
earlier ones) two numbers are measured, both as a share of the face's size
(square root of the eye-mouth quadrilateral's area):

* ``turn``: how far the four plane points are from a similarity (shift,
  rotation, scale) of the earlier frame's: foreshortening, i.e. the face turned
  out of the image plane. A face that only shifts or comes nearer has none;
* ``parallax``: the distance between the nose and the nose carried over by the
  four points' homography.

Verdict of a track (``MotionSettings``):

* ``live``: at least ``min_pairs`` pairs show parallax >= ``live_parallax``;
* ``attack``: at least ``min_pairs`` pairs turned by >= ``attack_turn`` while
  their parallax stayed below ``attack_parallax``: it turned like a plane, and
  no frame pair showed the parallax of a head;
* ``undecided``: anything else, e.g. a still face (a still head and a still
  photo look alike to this cue: it says nothing about them).

The landmarks are the detector's own, so no extra image work is done: the cost
is a few 4-point fits per frame. The optional *active* check (``[liveness]
active``) asks the person for a small head turn and accepts only ``live``.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

FEATURES = "landmark-parallax-v1"
PLANE = (0, 1, 4, 3)  # eyes and mouth corners, in order around the quadrilateral
NOSE = 2
HISTORY = 30  # frames of a track kept
PAIRS_PER_FRAME = 6  # earlier frames each new one is compared with (spread over the history)

LIVE, ATTACK, UNDECIDED = "live", "attack", "undecided"


@dataclass(frozen=True)
class MotionSettings:
    """Defaults: chosen by benchmarks/liveness_motion_clips.py on its validation half (synthetic flat
    attacks and NUAA real sequences). ``live_parallax`` None in a manifest: never call a track live."""

    live_parallax: float = 0.4
    attack_turn: float = 0.07
    attack_parallax: float = 0.08
    min_pairs: int = 2
    min_frames: int = 5

    @classmethod
    def from_manifest(cls, entry: dict) -> "MotionSettings":
        known = {name: entry[name] for name in cls.__dataclass_fields__ if name in entry}
        if "live_parallax" in known and known["live_parallax"] is None:
            known["live_parallax"] = math.inf
        return cls(**known)

    def as_manifest(self) -> dict:
        return {name: (None if value == math.inf else value) for name, value in self.__dict__.items()}


@dataclass(frozen=True)
class MotionVerdict:
    call: str  # LIVE, ATTACK or UNDECIDED
    frames: int
    parallax_pairs: int  # pairs with the parallax of a head
    flat_turn_pairs: int  # pairs turned like a plane without parallax
    max_parallax: float
    max_turn: float


def quad_scale(points: np.ndarray) -> float:
    return float(np.sqrt(abs(cv2.contourArea(points.astype(np.float32)))))


def pair_measures(earlier: np.ndarray, later: np.ndarray) -> tuple[float, float]:
    """(turn, parallax) between two frames' five landmarks, as shares of the later face's size."""
    a = np.asarray(earlier, dtype=np.float64)
    b = np.asarray(later, dtype=np.float64)
    src, dst = a[list(PLANE)], b[list(PLANE)]
    scale = quad_scale(dst)
    if scale < 1e-6 or quad_scale(src) < 1e-6:
        return 0.0, 0.0
    homography = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    nose = homography @ np.array([a[NOSE, 0], a[NOSE, 1], 1.0])
    if abs(nose[2]) < 1e-9:
        return 0.0, 0.0
    parallax = float(np.linalg.norm(nose[:2] / nose[2] - b[NOSE])) / scale
    turn = similarity_residual(src, dst) / scale
    return turn, parallax


def similarity_residual(src: np.ndarray, dst: np.ndarray) -> float:
    """RMS distance of ``dst`` from the least-squares similarity image of ``src``."""
    sc, dc = src - src.mean(axis=0), dst - dst.mean(axis=0)
    # complex numbers: a similarity is multiplication by one complex number
    zs, zd = sc[:, 0] + 1j * sc[:, 1], dc[:, 0] + 1j * dc[:, 1]
    factor = np.vdot(zs, zd) / max(np.vdot(zs, zs).real, 1e-12)
    return float(np.sqrt(np.mean(np.abs(zd - factor * zs) ** 2)))


def frame_measures(history, current: np.ndarray) -> list[tuple[float, float]]:
    """(turn, parallax) of a new frame's landmarks against up to PAIRS_PER_FRAME earlier ones, spread
    over the history (newest first)."""
    earlier = list(history)[::-1]
    if not earlier:
        return []
    step = max(1, len(earlier) // PAIRS_PER_FRAME)
    return [pair_measures(before, current) for before in earlier[::step][:PAIRS_PER_FRAME]]


def clip_calls(measures: list, settings: MotionSettings) -> str:
    """The call a track gets over a whole clip, from each frame's frame_measures (in order): ATTACK if the
    cue called it an attack on any frame (the judge keeps that for good), else its last call."""
    parallax_pairs = flat_pairs = 0
    call = UNDECIDED
    for frame, pairs in enumerate(measures, start=1):
        for turn, parallax in pairs:
            if parallax >= settings.live_parallax:
                parallax_pairs += 1
            elif turn >= settings.attack_turn and parallax < settings.attack_parallax:
                flat_pairs += 1
        if frame >= settings.min_frames:
            if parallax_pairs >= settings.min_pairs:
                call = LIVE
            elif flat_pairs >= settings.min_pairs:
                return ATTACK
    return call


@dataclass
class MotionTrack:
    """The motion cue's state for one tracked face; feed it each frame's landmarks."""

    settings: MotionSettings = field(default_factory=MotionSettings)
    history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    parallax_pairs: int = 0
    flat_turn_pairs: int = 0
    max_parallax: float = 0.0
    max_turn: float = 0.0
    frames: int = 0

    def add(self, landmarks) -> MotionVerdict:
        current = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
        for turn, parallax in frame_measures(self.history, current):
            self._count(turn, parallax)
        self.history.append(current)
        self.frames += 1
        return self.verdict()

    def _count(self, turn: float, parallax: float) -> None:
        s = self.settings
        self.max_parallax = max(self.max_parallax, parallax)
        self.max_turn = max(self.max_turn, turn)
        if parallax >= s.live_parallax:
            self.parallax_pairs += 1
        elif turn >= s.attack_turn and parallax < s.attack_parallax:
            self.flat_turn_pairs += 1

    def verdict(self) -> MotionVerdict:
        s = self.settings
        call = UNDECIDED
        if self.frames >= s.min_frames:
            if self.parallax_pairs >= s.min_pairs:
                call = LIVE
            elif self.flat_turn_pairs >= s.min_pairs:
                call = ATTACK
        return MotionVerdict(call, self.frames, self.parallax_pairs, self.flat_turn_pairs, self.max_parallax,
                             self.max_turn)


def judge_landmarks(sequence, settings: MotionSettings | None = None) -> MotionVerdict:
    """The verdict of a whole track's landmarks ((T, 5, 2), in frame order)."""
    track = MotionTrack(settings or MotionSettings())
    verdict = MotionVerdict(UNDECIDED, 0, 0, 0, 0.0, 0.0)
    for landmarks in sequence:
        verdict = track.add(landmarks)
    return verdict
