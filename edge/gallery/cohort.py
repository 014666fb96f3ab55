"""Cohort normalisation: judge a distance by how crowded the two faces' neighbourhoods are.

Why: one distance threshold treats every face alike, but faces are not spread
evenly in the embedding space. A face in a crowded region (many people look like
it to the model) lies near many strangers, so the threshold that keeps strangers
out of the crowded regions is far stricter than the sparse regions need, and the
1:N rule at a few thousand templates is set by exactly those crowded pairs. The
*spread* of a face is the mean distance to its ``k`` nearest faces in a fixed
cohort of other people's photos (shipped with the model, never the site's
people): small in a crowded region, large in a sparse one. The door then
compares

    adjusted = max(0, distance - weight * (spread(probe) + spread(template)) / 2 + offset)

with a threshold measured on adjusted distances of strangers
(``cohort_combined_impostor_tail``, benchmarks/door_calibrate.py). A pair of
faces that are both in crowded regions must come nearer to match; a pair in sparse
regions may be further apart. ``offset`` is ``weight`` times the cohort's typical
spread, so adjusted distances stay on the scale of plain ones (a face of typical
spread keeps its distance).

Measured (benchmarks/cohort_choice.py, calibration people only: half of them as
cohort, pairs among the other half): k=10, weight 1 raised the genuine pairs
accepted at a false-match rate of 1e-5 from 59 % to 77 %; k of 5 to 20 did as
well, weights 0.5 and 1.5 worse.

The risk: a site whose people are rarer in the cohort than LFW's public figures
get larger spreads, so their strangers come nearer each other after adjusting.
The cohort and the tail come from the same kind of photos, so the stranger rate
holds for people like the cohort; benchmarks/door_measure.py measures it on
people outside both.
"""
from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from edge.exc import ManifestMismatch
from edge.gallery.threshold import manifest_entry
from edge.verify.api import l2_normalize

COHORT_KEY = "cohort"
COHORT_TAIL = "cohort_combined_impostor_tail"  # adjusted distances of combined probes (edge.daemon.decision)
BLOCK_ROWS = 2048  # rows whose distances to the cohort are held at once (2,048 x 2,608 float32: 21 MiB)


@dataclass(frozen=True, eq=False)
class Cohort:
    """Unit-length cohort embeddings (rows) and the adjustment's settings."""

    faces: np.ndarray  # (rows, dim) float32, unit length
    k: int
    weight: float
    offset: float

    @classmethod
    def from_manifest(cls, manifest: dict) -> Optional["Cohort"]:
        """The manifest's cohort, None when it ships none; a malformed one is an error, never ignored."""
        entry = manifest_entry(manifest, COHORT_KEY)
        if entry is None:
            return None
        try:
            rows, dim = int(entry["rows"]), int(entry["dim"])
            faces = np.frombuffer(base64.b64decode(entry["float16_base64"]), dtype="<f2").astype(np.float32)
            faces = faces.reshape(rows, dim)
            k, weight, offset = int(entry["k"]), float(entry["weight"]), float(entry["offset"])
        except (KeyError, TypeError, ValueError) as error:
            raise ManifestMismatch(f"the embedding manifest's {COHORT_KEY} is malformed ({error!r}); "
                                   "rebuild the engine (`edge-verify models fetch --force`)") from error
        if not (1 <= k <= rows and np.all(np.isfinite(faces)) and math.isfinite(weight) and math.isfinite(offset)):
            raise ManifestMismatch(f"the embedding manifest's {COHORT_KEY} is malformed: it needs k between 1 and "
                                   f"its {rows} faces, finite faces, weight and offset; rebuild the engine")
        return cls(l2_normalize(faces), k, weight, offset)

    @property
    def dim(self) -> int:
        return int(self.faces.shape[1])

    def spreads(self, vectors) -> np.ndarray:
        """The spread of each row of ``vectors``: mean distance (at unit length) to its k nearest cohort faces."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if vectors.shape[1] != self.dim:
            raise ManifestMismatch(f"the cohort holds {self.dim}-d faces but these are {vectors.shape[1]}-d: "
                                   "the gallery was enrolled with another model")
        out = np.empty(len(vectors), dtype=np.float64)
        for start in range(0, len(vectors), BLOCK_ROWS):
            block = l2_normalize(vectors[start:start + BLOCK_ROWS])
            squared = np.maximum(2.0 - 2.0 * (block @ self.faces.T), 0.0)
            nearest = np.partition(squared, self.k - 1, axis=1)[:, :self.k]
            out[start:start + len(block)] = np.sqrt(nearest.astype(np.float64)).mean(axis=1)
        return out

    def adjust(self, distance, probe_spread, template_spread):
        """The adjusted distance (module docstring); works on numbers and arrays alike. Never below 0: two
        very close faces in sparse regions would come out negative, which reads as nonsense for a distance
        and changes no decision (every threshold lies far above 0)."""
        return np.maximum(distance - self.weight * 0.5 * (probe_spread + template_spread) + self.offset, 0.0)


def encode_faces(faces: np.ndarray) -> str:
    """The manifest form of cohort faces: little-endian float16, base64 (2,608 x 128 faces: 0.9 MB of text)."""
    return base64.b64encode(np.ascontiguousarray(faces, dtype="<f2").tobytes()).decode("ascii")
