"""Following each face across frames, and one probe per approach: the frames of a track, combined.

Why
---
A person walking up to the kiosk is seen in many frames. Judged frame by frame,
each frame is a separate, noisy attempt: a blurred or badly lit frame of an
enrolled person misses the threshold, and a stranger gets as many tries as
there are frames. Combining the frames of one face, the quality-weighted mean
of their unit embeddings, scaled back to unit length, averages the noise of
single frames away: the combined probe of an enrolled person lies nearer their
templates than most of its frames, and a stranger's stays about as far from
everybody as the stranger is. The door then decides on the combined probe,
with a threshold measured for combined probes (edge.daemon.decision).

Tracks
------
Every detected face is followed by its box: a face continues the track whose
last box overlaps it most (IoU at least ``MIN_IOU``), or, when it moved too fast
for any overlap, whose box centre is within half a face of it at a similar size.
A track not seen for more than ``max_missed`` frames has left; a read that
brought no frame ends every track (nothing is known about the frames in between).
Only the main face (edge.pipeline) is embedded, so only the main face's track
gathers embeddings; the other faces are followed so that when one of them
becomes the main face it starts from its own track, never from someone else's.

A frame whose embedding lies farther from its track's combined probe than the
model's 1:1 threshold is not the same person, whatever the box says (someone
stepped in where the last person stood): the track is split and the new face
starts afresh.

What a track exposes
--------------------
``Track.observations``: its recent (RGB frame, MainFace) pairs, oldest first, the
form per-track judges read (edge.liveness.judge.judge_track); ``Track.judge``: a
slot for the daemon's incremental liveness judge of this face, emptied whenever
a frame passes without the face being judged (a liveness window never spans a
gap in which a photo could be swapped in, while the identity probe may);
``Track.probe()``: the combined probe; ``Track.frames``: how many frames it holds.
"""
from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np

from edge.enroll.quality import chip_measures, chip_pixels, pose
from edge.vision.detector import iou

MIN_IOU = 0.3
DEFAULT_MAX_MISSED = 5  # frames: at 15 fps a third of a second without the face ends its track
# Frames combined into a track's probe: its latest ones. Averaging a few frames takes out what
# differs from frame to frame (sensor noise, motion blur, a blink); averaging many also mixes
# views of the face that differ for good (a turn of the head, another expression), and a good
# view then pays for a bad one. On the LFW door clips (benchmarks/door_measure.py), each window
# with its own measured combined threshold: staff unlocked within 2 s with 158 | 1,000 enrolled
# (photo templates): 3 frames 91.5 | 84.5 %, 5 frames 92.0 | 82.5 %, 8 frames 90.5 | 81.0 %,
# 15 frames 87.5 | 77.5 %, 30 frames 85.0 | 78.5 %, strangers 0-2 per 1,000 for every window.
DEFAULT_WINDOW = 5
KEEP_OBSERVATIONS = 30  # (frame, MainFace) pairs a track keeps for per-track judges


# -- quality ----------------------------------------------------------------------------------------

# A frame's weight in the combined probe. Blur is what most often spoils a frame at
# the door (a person walking); it shows as low sharpness of the aligned chip
# (edge.enroll.quality: contrast-normalised Laplacian variance; the enrollment gate
# refuses below 18). A face turned far aside aligns badly. Both weights are 1 for a
# good frame and fall smoothly, never to zero: a poor frame still counts a little.
SHARP_FULL = 40.0  # sharpness at which a frame counts fully
YAW_FULL_DEG = 20.0  # yaw up to which a frame counts fully
YAW_ZERO_DEG = 60.0
MIN_WEIGHT = 0.1


def frame_weight(main, mean, std, padding: float) -> float:
    """How much this frame's embedding counts in its track's combined probe, 0.1 to 1."""
    grey = chip_pixels(main.chip[0], mean, std)
    sharpness = chip_measures(grey, padding)["sharpness"]
    sharp = min(1.0, max(sharpness, 0.0) / SHARP_FULL)
    yaw, _, _ = pose(main.landmarks)
    turned = 1.0 if not math.isfinite(yaw) else float(np.clip((YAW_ZERO_DEG - abs(yaw)) / (YAW_ZERO_DEG - YAW_FULL_DEG),
                                                             0.0, 1.0))
    return max(MIN_WEIGHT, sharp * turned)


def usable(embedding) -> bool:
    """Finite, with a finite non-zero length: a broken embedding (NaN, infinity, overflow) never joins a probe."""
    vector = np.asarray(embedding, dtype=np.float64).reshape(-1)
    if vector.size == 0 or not np.all(np.isfinite(vector)):
        return False
    with np.errstate(over="ignore"):
        length = float(np.linalg.norm(vector))
    return math.isfinite(length) and length > 0


def combine(embeddings, weights=None, unit: bool = True) -> np.ndarray:
    """The combined probe: the weighted mean of unit-length embeddings, scaled to unit length.

    ``unit`` False (an engine whose embeddings are compared as they come, manifest
    without "embedding_normalization": "l2"): the weighted mean of the embeddings as
    they are, since the gallery holds them that way. A NaN anywhere gives NaN (no match).
    """
    vectors = np.asarray(embeddings, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError("combine needs at least one embedding")
    weights = np.ones(len(vectors)) if weights is None else np.asarray(weights, dtype=np.float64)
    if unit:
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    mean = (weights[:, None] * vectors).sum(axis=0) / weights.sum()
    if unit:
        mean = mean / np.linalg.norm(mean)
    return mean.astype(np.float32)


# -- tracks -----------------------------------------------------------------------------------------

def near(a, b) -> bool:
    """Centres within half a face and sizes within a factor 1.5: the same face after a fast move."""
    side_a, side_b = min(a[2] - a[0], a[3] - a[1]), min(b[2] - b[0], b[3] - b[1])
    if side_a <= 0 or side_b <= 0 or max(side_a, side_b) > 1.5 * min(side_a, side_b):
        return False
    dx = (a[0] + a[2] - b[0] - b[2]) / 2.0
    dy = (a[1] + a[3] - b[1] - b[3]) / 2.0
    return math.hypot(dx, dy) <= 0.5 * max(side_a, side_b)


@dataclass
class Sample:
    embedding: np.ndarray
    weight: float


class Track:
    """One face followed across frames."""

    def __init__(self, track_id: int, face, window: int = DEFAULT_WINDOW):
        self.id = track_id
        self.face = face
        self.missed = 0
        self.samples: deque = deque(maxlen=window)
        self._observations: deque = deque(maxlen=KEEP_OBSERVATIONS)
        self.judge = None  # the daemon's per-track liveness judge (edge.liveness.judge.TrackJudge)

    @property
    def box(self):
        return self.face.box

    @property
    def observations(self) -> list:
        """The recent (RGB frame, MainFace) pairs of this track in which it was the main face, oldest first."""
        return list(self._observations)

    @property
    def frames(self) -> int:
        """Frames in the combined probe."""
        return len(self.samples)

    def add(self, frame, main, embedding, weight: float) -> None:
        self.samples.append(Sample(np.asarray(embedding, dtype=np.float32).reshape(-1), float(weight)))
        self._observations.append((frame, main))

    def probe(self, unit: bool = True) -> Optional[np.ndarray]:
        """The combined probe of the frames so far (None before the first embedded frame)."""
        if not self.samples:
            return None
        return combine([sample.embedding for sample in self.samples], [sample.weight for sample in self.samples],
                       unit)


class Tracker:
    """Assigns each frame's faces to tracks; the main face's embedding joins its track's probe."""

    def __init__(self, split_distance: float, max_missed: int = DEFAULT_MAX_MISSED, window: int = DEFAULT_WINDOW,
                 unit: bool = True):
        if not (isinstance(max_missed, int) and max_missed >= 0):
            raise ValueError(f"max_missed must be a whole number >= 0, got {max_missed!r}")
        if not (isinstance(window, int) and window >= 1):
            raise ValueError(f"the combining window must be at least 1 frame, got {window!r}")
        self.split_distance = float(split_distance)
        self.max_missed = max_missed
        self.window = window
        self.unit = unit
        self.tracks: list = []
        self._ids = itertools.count(1)

    def update(self, faces) -> dict:
        """Follow this frame's ``faces`` (every detected face): {id(face): Track}. Unseen tracks age."""
        pairs = sorted(((self._affinity(track, face), number, position)
                        for number, track in enumerate(self.tracks) for position, face in enumerate(faces)),
                       key=lambda item: -item[0])
        taken_tracks, taken_faces, assigned = set(), set(), {}
        for score, number, position in pairs:
            if score <= 0 or number in taken_tracks or position in taken_faces:
                continue
            taken_tracks.add(number)
            taken_faces.add(position)
            track = self.tracks[number]
            track.face, track.missed = faces[position], 0
            assigned[id(faces[position])] = track
        for number, track in enumerate(self.tracks):
            if number not in taken_tracks:
                track.missed += 1
                track.judge = None
        self.tracks = [track for track in self.tracks if track.missed <= self.max_missed]
        for position, face in enumerate(faces):
            if position not in taken_faces:
                track = Track(next(self._ids), face, self.window)
                self.tracks.append(track)
                assigned[id(face)] = track
        return assigned

    def add(self, track: Track, frame, main, embedding, weight: float = 1.0) -> Track:
        """Add the main face (``frame``: the RGB image, ``main``: its MainFace) and its embedding to
        ``track``; returns the track it joined (a new one after a split).
        The caller checks :func:`usable` first: a broken embedding is refused here."""
        if not usable(embedding):
            raise ValueError("a broken embedding (NaN, infinity or zero length) cannot join a track")
        vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
        current = track.probe(self.unit)
        if current is not None:
            probe = vector / np.linalg.norm(vector) if self.unit else vector
            if float(np.linalg.norm(probe - current)) > self.split_distance:
                track = self._split(track)
        track.add(frame, main, vector, weight)
        return track

    def end_all(self) -> None:
        """A read brought no frame: every track has lost its face."""
        self.tracks = []

    def restart_judges(self, keep: Optional[Track] = None) -> None:
        """Per-track judges start over on every track but ``keep``, the one whose face is judged this
        frame (None: no face is judged this frame, none big enough or none at all)."""
        for track in self.tracks:
            if track is not keep:
                track.judge = None

    def _split(self, track: Track) -> Track:
        fresh = Track(next(self._ids), track.face, self.window)
        self.tracks = [fresh if existing is track else existing for existing in self.tracks]
        return fresh

    @staticmethod
    def _affinity(track: Track, face) -> float:
        overlap = iou(track.box, face.box)
        if overlap >= MIN_IOU:
            return overlap
        return 0.01 if near(track.box, face.box) else 0.0


__all__ = ["Track", "Tracker", "combine", "frame_weight", "iou", "near", "usable"]
