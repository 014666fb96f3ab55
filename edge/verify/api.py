"""Small pure functions for comparing face embeddings.

Embeddings are the 128-number descriptors of the dlib ResNet (not normalised).
Two photos of the same person land close together: the Euclidean distance
between their embeddings is small. A *threshold* turns a distance into a
decision: at or below it the two faces are declared the same person.

The threshold is a trade-off. Lower lets fewer strangers through (fewer false
accepts) and turns away more genuine staff (more false rejects). It belongs to
the model, so it is stored in the embedding engine's manifest, chosen on LFW's
development split (View 1), never on the figures we report.
"""
from __future__ import annotations

import numpy as np


def face_distance(known: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Euclidean distance from ``candidate`` (D,) to each row of ``known`` (N, D) or to ``known`` (D,).

    0 means identical embeddings; for the dlib model distances of the same
    person are typically 0.2-0.5, different people 0.7-1.2.
    """
    known = np.asarray(known, dtype=np.float32)
    candidate = np.asarray(candidate, dtype=np.float32)
    return np.linalg.norm(known - candidate, axis=-1)


def is_same(distance: float, threshold: float) -> bool:
    """True when ``distance`` is at or below the threshold: the same person.

    NaN (a broken embedding) is never the same person: a fault must not open the door.
    """
    return bool(np.isfinite(distance) and distance <= threshold)


def average_with_flip(embeddings: np.ndarray, flipped: np.ndarray) -> np.ndarray:
    """Mean of a face's embedding and that of its mirror image.

    Averaging the two cancels part of the noise from pose and landmark error; on
    LFW it is worth about 0.3 accuracy points for one extra embedding.
    """
    return (np.asarray(embeddings, dtype=np.float32) + np.asarray(flipped, dtype=np.float32)) / 2.0


def l2_normalize(embeddings: np.ndarray) -> np.ndarray:
    """Scale each embedding to unit length; distances then lie in [0, 2].

    Only the direction of a dlib descriptor carries identity well: its length
    varies with image quality, and removing it lets fewer strangers through at
    the low false-accept rates a door needs. A zero vector stays NaN-free zero
    and so never matches anyone closely.
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(embeddings, axis=-1, keepdims=True)
    return np.divide(embeddings, norms, out=np.zeros_like(embeddings), where=norms > 0)


def embedding_space(manifest: dict) -> str:
    """The id templates are stored under: embeddings that may be compared with each other.

    One id per model and normalisation, whatever the precision or backend (an INT8
    engine's templates stay comparable with FP32 ones). Unit-length and raw
    descriptors of the same network are different spaces, so the normalisation is
    part of the id, and a gallery enrolled in another space is refused, not misread.
    """
    model = str(manifest["model"])
    return f"{model}+l2" if manifest.get("embedding_normalization") == "l2" else model
