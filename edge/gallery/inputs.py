"""Checks on what callers hand the gallery: names, vectors, model ids, quality notes."""
from __future__ import annotations

import json

import numpy as np

from edge.exc import GalleryError

MAX_NAME = 200


def check_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise GalleryError("a person's name must be a non-empty text")
    if name != name.strip():
        raise GalleryError(f"the name {name!r} starts or ends with spaces; give it without them")
    if len(name) > MAX_NAME or any(ord(character) < 32 or ord(character) == 127 for character in name):
        raise GalleryError(f"the name {name[:40]!r}... is too long or holds control characters" if len(name) > MAX_NAME
                           else f"the name {name!r} holds control characters")
    return name


def check_model(model) -> str:
    if not isinstance(model, str) or not model.strip():
        raise GalleryError("templates need the id of the embedding model that made them (e.g. 'dlib_resnet_v1')")
    return model


def check_vectors(vectors) -> np.ndarray:
    """(K, D) float32, K >= 1, all finite; a single (D,) vector counts as K = 1."""
    try:
        matrix = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise GalleryError(f"templates must be numeric vectors ({error})") from error
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] < 1:
        raise GalleryError(f"templates must be a (count, dimension) array with at least one row; got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise GalleryError("a template holds NaN or infinite values (a failed embedding?); nothing was stored")
    return matrix


def check_quality(quality, count: int) -> list:
    """One JSON text (or None) per template: ``quality`` is None, one dict for all, or a list of ``count``."""
    if quality is None or isinstance(quality, dict):
        items = [quality] * count
    elif isinstance(quality, (list, tuple)) and len(quality) == count:
        items = list(quality)
    else:
        raise GalleryError(f"quality must be None, one dict, or a list of {count} dicts (one per template)")
    try:
        return [None if item is None else json.dumps(item, sort_keys=True, allow_nan=False) for item in items]
    except (TypeError, ValueError) as error:
        raise GalleryError(f"quality notes must be plain JSON values ({error})") from error
