"""Checks on what callers hand the gallery: names, vectors, model ids, quality notes."""
from __future__ import annotations

import json
import unicodedata

import numpy as np

from edge.exc import GalleryError

MAX_NAME = 200


# Joiners inside words are ordinary spelling in Persian and Indic scripts and reorder nothing;
# every other control or format character (bidi overrides and isolates, C0/C1 controls,
# zero-width spaces, line separators) can hide or reorder text in listings and logs.
_ALLOWED_FORMAT = {"\u200c", "\u200d"}
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def normal_name(name) -> str:
    """A name as the gallery stores and looks it up: NFC, so each spelling of a name is one person."""
    return unicodedata.normalize("NFC", name) if isinstance(name, str) else name


def check_name(name) -> str:
    """The name to store (NFC), or GalleryError saying what is wrong with it."""
    if not isinstance(name, str) or not name.strip():
        raise GalleryError("a person's name must be a non-empty text")
    name = normal_name(name)
    if name != name.strip():
        raise GalleryError(f"the name {name!r} starts or ends with spaces; give it without them")
    if len(name) > MAX_NAME:
        raise GalleryError(f"the name {name[:40]!r}... is too long (at most {MAX_NAME} characters)")
    odd = [character for character in name
           if unicodedata.category(character) in _REFUSED_CATEGORIES and character not in _ALLOWED_FORMAT]
    if odd:
        codes = ", ".join(f"U+{ord(character):04X}" for character in dict.fromkeys(odd))
        raise GalleryError(f"the name {name!r} holds a control or format character ({codes}), which can hide or "
                           "reorder text in listings and logs; type the name without it")
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
