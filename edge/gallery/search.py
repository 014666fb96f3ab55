"""1:N search: which enrolled person is nearest to a probe embedding.

A person's distance is the smallest distance over their templates (several
templates cover glasses, light and pose). The margin is how much nearer the best
person is than the second-best *person*, not the second-best template, which is
usually the same person again and would make every margin look tiny.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge.exc import GalleryError


@dataclass(frozen=True)
class Match:
    """The nearest person (None when the gallery is empty or the probe is unusable).

    ``distance`` is Euclidean (smaller = more alike); ``margin`` = second_distance - distance,
    infinite when only one person is enrolled. No threshold is applied here.
    """

    person: str | None
    distance: float
    margin: float
    second_person: str | None
    second_distance: float


NO_MATCH = Match(None, math.inf, math.inf, None, math.inf)


def person_distances(matrix: np.ndarray, person_index: np.ndarray, n_people: int, probe) -> np.ndarray:
    """Distance from the probe to each person (min over their templates); inf for a person with no rows."""
    probe = np.asarray(probe, dtype=np.float32).reshape(-1)
    if matrix.ndim != 2 or probe.shape[0] != matrix.shape[1]:
        raise GalleryError(f"the probe has {probe.shape[0]} dimensions but the gallery templates have "
                           f"{matrix.shape[1] if matrix.ndim == 2 else '?'} (embedded with another model?)")
    differences = matrix - probe
    # float32 sums are off by ~1e-7 here, far below any threshold, and twice as fast as float64
    template_distances = np.sqrt(np.einsum("ij,ij->i", differences, differences)).astype(np.float64)
    best = np.full(n_people, np.inf)
    np.minimum.at(best, np.asarray(person_index, dtype=np.intp), template_distances)
    return best


def search(matrix: np.ndarray, person_index: np.ndarray, names: list[str], probe) -> Match:
    """Best person, their distance, and the margin to the second-best person.

    A probe holding NaN or infinity (a blank or broken frame) matches nobody.
    """
    if len(names) == 0 or len(matrix) == 0:
        return NO_MATCH
    probe = np.asarray(probe, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(probe)):
        return Match(None, math.nan, math.nan, None, math.nan)
    distances = person_distances(matrix, person_index, len(names), probe)
    if len(names) == 1:
        return Match(names[0], float(distances[0]), math.inf, None, math.inf)
    first, second = np.argpartition(distances, 1)[:2]
    if distances[second] < distances[first]:
        first, second = second, first
    best, runner_up = float(distances[first]), float(distances[second])
    return Match(names[first], best, runner_up - best, names[second], runner_up)
