"""Who would the kiosk say this photo shows? The installer's check of an enrollment.

The same steps as the door, for one photo: the main face (the one the kiosk
would act on), its embedding, the nearest enrolled person, and the 1:N
threshold for the gallery's current size (edge.gallery.threshold). A photo
shows ``person`` only when the distance is at or below that threshold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge.exc import ImageError
from edge.gallery.search import search
from edge.gallery.threshold import OpenSetChoice, choose_threshold
from edge.pipeline import primary_face_index
from edge.verify.api import embedding_space


@dataclass
class GallerySnapshot:
    """The decrypted gallery matrix and the threshold chosen for its size."""

    names: list
    person_index: np.ndarray
    matrix: np.ndarray
    choice: OpenSetChoice

    @classmethod
    def load(cls, gallery, manifest: dict, target_rate: float = 1e-3) -> "GallerySnapshot":
        names, index, matrix = gallery.load_matrix(embedding_space(manifest))
        return cls(names, index, matrix, choose_threshold(manifest, len(matrix), target_rate))


def identify_image(pipeline, snapshot: GallerySnapshot, path) -> dict:
    """{image, person, distance, margin, threshold, nearest, faces[, reason]} for one photo file."""
    from edge.vision.image import load_image

    threshold = snapshot.choice.threshold
    answer = {"image": str(path), "person": None, "distance": None, "margin": None, "threshold": threshold,
              "nearest": None, "faces": 0}
    try:
        rgb = load_image(path)
    except ImageError as error:
        return {**answer, "faces": None, "reason": f"unreadable: {error}"}
    faces = pipeline.detect(rgb)
    answer["faces"] = len(faces)
    if not faces:
        return {**answer, "reason": "no face found"}
    main_face = faces[primary_face_index(faces, rgb.shape)]
    probe = pipeline.embed(pipeline.align(rgb, [main_face]))[0]
    match = search(snapshot.matrix, snapshot.person_index, snapshot.names, probe)
    if match.person is None:
        return {**answer, "reason": "nobody is enrolled" if not snapshot.names else "the face could not be embedded"}
    answer.update(nearest=match.person, distance=finite(match.distance), margin=finite(match.margin))
    if match.distance <= threshold:
        answer["person"] = match.person
    else:
        answer["reason"] = f"nearest is {match.person} at {match.distance:.3f}, above the threshold {threshold:.3f}"
    return answer


def finite(value: float) -> float | None:
    """JSON has no infinity: an infinite margin (one person enrolled) is reported as null."""
    return round(float(value), 4) if math.isfinite(value) else None
