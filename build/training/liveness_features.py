"""Per-frame liveness features of a folder, under a camera shift, computed once and cached.

For every frame with a face: the texture features (edge.liveness.texture) and
the context side coverages (edge.liveness.context) of the main face, computed
by the runtime's own functions on the frame as shifted
(edge_build.training.liveness_shifts): what the kiosk would compute on a
camera like that. ``variant`` is a named shift, or ``augment-<seed>`` for one
random camera per frame (training augmentation, reproducible by its seed).
"""
from __future__ import annotations

import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge.liveness import context, texture
from edge.vision.image import load_image
from edge_build.training import liveness_shifts as shifts
from edge_build.training.liveness_data import Faces, Frame, file_key


@dataclass
class FrameFeatures:
    ok: np.ndarray  # (N,) a face was found (and stayed inside the shifted frame)
    texture: np.ndarray  # (N, texture.FEATURE_COUNT)
    context: np.ndarray  # (N, 4)


def shifted(frame: Frame, faces: Faces, index: int, variant: str) -> shifts.Shifted:
    shot = shifts.Shifted(load_image(frame.path), faces.boxes[index].copy(), faces.landmarks[index].copy())
    if variant.startswith("augment-"):
        # one generator per frame and seed: a frame's augmentation does not depend on the others
        seed = zlib.crc32(f"{frame.path.name}:{variant}".encode())
        return shifts.random_shift(shot, np.random.default_rng(seed))
    return shifts.apply(shot, variant)


def compute(frames: list[Frame], faces: Faces, variant: str, progress: bool = True,
            colour=None) -> FrameFeatures:
    """Features of every frame under ``variant``. ``colour(image, landmarks)``, when given, is called
    on each shifted frame too (the benchmark's colour-head chips)."""
    n = len(frames)
    out = FrameFeatures(np.zeros(n, bool), np.zeros((n, texture.FEATURE_COUNT)), np.zeros((n, 4)))
    for index in tqdm(range(n), desc=f"features {frames[0].dataset if frames else ''} {variant}", unit="frame",
                      file=sys.stderr, disable=not progress, leave=False):
        if not faces.found[index]:
            continue
        shot = shifted(frames[index], faces, index, variant)
        if not shot.inside:
            continue
        out.ok[index] = True
        out.texture[index] = texture.face_features(shot.image, shot.landmarks)
        out.context[index] = context.features(shot.image, shot.box, shot.landmarks)
        if colour is not None:
            colour(index, shot.image, shot.landmarks)
    return out


def cached(frames: list[Frame], faces: Faces, variant: str, cache_dir: Path, progress: bool = True) -> FrameFeatures:
    """compute(), cached by the files, the variant and the feature versions."""
    key = file_key([f.path for f in frames], f"{variant}|{texture.FEATURES}|{context.FEATURES}")
    cache = Path(cache_dir) / f"features-{key}.npz"
    if cache.exists():
        with np.load(cache) as stored:
            return FrameFeatures(stored["ok"], stored["texture"], stored["context"])
    cache.parent.mkdir(parents=True, exist_ok=True)
    result = compute(frames, faces, variant, progress)
    scratch = cache.with_name(cache.stem + ".tmp.npz")
    np.savez(scratch, ok=result.ok, texture=result.texture, context=result.context)
    scratch.replace(cache)
    return result
