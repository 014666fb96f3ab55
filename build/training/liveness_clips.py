"""Clips for the motion cue: runs of consecutive frames of one capture, and synthetic flat attacks.

A clip is a dict with its ``landmarks`` ((T, 5, 2) list, in frame order), where
it came from, and the motion cue's per-frame ``measures`` (``measured``: the cue
reads the pixels, so captured clips keep their frames' ``paths`` and ``rows``,
and synthetic clips are measured while their frames exist). Captured clips cut
each sequence of a liveness folder (edge_build.training.liveness_data) into runs
of ``length`` frames with a face (at least ``min_length``). Synthetic clips mount a face photo as a print or a
phone, move it as a plane (edge_build.training.liveness_synth) and run the
product's detector on every frame.
"""
from __future__ import annotations

import sys

import numpy as np
from tqdm import tqdm

from edge.liveness import motion
from edge.pipeline import choose_main_face
from edge.vision.image import load_image
from edge_build.training import liveness_synth as synth
from edge_build.training.liveness_data import Faces, Frame

CLIP = 15
MIN_CLIP = 8


def captured_clips(frames: list[Frame], faces: Faces, length: int = CLIP, min_length: int = MIN_CLIP) -> list[dict]:
    by = {}
    for index, frame in enumerate(frames):
        by.setdefault(frame.sequence, []).append(index)
    clips = []
    for sequence, rows in sorted(by.items()):
        rows.sort(key=lambda i: frames[i].order)
        for start in range(0, len(rows), length):
            run = [i for i in rows[start:start + length] if faces.found[i]]
            if len(run) >= min_length:
                first = frames[run[0]]
                clips.append({"live": first.live, "group": first.group, "dataset": first.dataset,
                              "attack": first.attack, "sequence": sequence, "landmarks": faces.landmarks[run].tolist(),
                              "paths": [str(frames[i].path) for i in run], "rows": run})
    return clips


def face_crop(image: np.ndarray, box, rng: np.random.Generator) -> np.ndarray:
    """The face with a portrait's surroundings (2 to 3 face widths), as a photo of someone shows it."""
    x1, y1, x2, y2 = box
    width, height = x2 - x1, y2 - y1
    grow = rng.uniform(1.0, 1.6)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + 0.15 * height
    left, right = int(max(cx - grow * width, 0)), int(min(cx + grow * width, image.shape[1]))
    top, bottom = int(max(cy - grow * 1.3 * height, 0)), int(min(cy + grow * 1.3 * height, image.shape[0]))
    return image[top:bottom, left:right]


def synthetic_clips(photos: list[tuple[str, np.ndarray, tuple]], pipeline, rng: np.random.Generator,
                    length: int = CLIP, progress: bool = True) -> list[dict]:
    """One flat-attack clip per (name, RGB image, face box): prints and phones in turn."""
    clips = []
    for number, (name, image, box) in enumerate(tqdm(photos, desc="synthetic flat attacks", unit="clip",
                                                     file=sys.stderr, disable=not progress, leave=False)):
        kind = "print" if number % 2 == 0 else "phone"
        frames, _ = synth.flat_attack(face_crop(image, box, rng), rng, length, kind=kind)
        track, seen = [], []
        for frame in frames:
            face = choose_main_face(pipeline.detect(frame), frame.shape)
            if face is not None:
                track.append(np.asarray(face.landmarks, float).tolist())
                seen.append(frame)
        clips.append({"number": number, "source": name, "kind": kind, "live": False, "landmarks": track,
                      "measures": motion.clip_measures(seen, track)})
    return clips


def measured(clip: dict) -> list:
    """The motion cue's measures of a clip's frames, computed once (captured clips read their frames)."""
    if "measures" not in clip:
        clip["measures"] = motion.clip_measures((load_image(path) for path in clip["paths"]), clip["landmarks"])
    return clip["measures"]
