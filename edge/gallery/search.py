"""1:N search: which enrolled person is nearest to a probe embedding.

A person's distance is the smallest distance over their templates (several
templates cover glasses, light and pose). The margin is how much nearer the best
person is than the second-best *person*, not the second-best template, which is
usually the same person again and would make every margin look tiny.

Speed: the daemon searches every frame, and a large site holds 100k templates.
Ranking uses ||t||^2 - 2 t.p (the probe's own ||p||^2 is the same for every
template): a matrix-vector product instead of a (templates x dimensions)
difference array. The daemon prepares the matrix once per gallery load
(:func:`prepare`), which keeps the squared norms ||t||^2, so a search is one
pass over the matrix; a plain matrix computes them on the way, in cache-sized
blocks so it is still read from memory once. That shortcut rounds differently
from the direct sum of squared differences, so the few templates within a proven
rounding bound of the nearest are measured again directly: the distances
returned are exactly those of the direct formula.
The nearest person is the owner of the nearest template, and the second person
the owner of the nearest template of anyone else, so no per-person reduction
over all templates is needed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge.exc import GalleryError

# 4,096 rows of 128 float32 = 2 MiB: a block stays in cache between the norm and the
# dot product, so the matrix crosses the memory bus once per search (1,024 to 16,384
# rows measured within 10 % of each other on one core; 4,096 was the fastest).
BLOCK_ROWS = 4096
# Unit roundoff of float32; the rounding bound below is a small multiple of it.
FLOAT32_UNIT = float(np.finfo(np.float32).eps) / 2


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


@dataclass(frozen=True, eq=False)
class PreparedMatrix:
    """A gallery matrix made ready for searching (:func:`prepare`): what does not depend on the probe.

    ``matrix``: the templates as given (their direct distances are the ones returned), read-only;
    ``rows``: the same as float32, C-contiguous (the ranking's matrix-vector product); ``norms``:
    ||t||^2 of each row, rounded as the ranking rounds them; ``largest``: the largest norm (not finite
    when some template is not).
    """

    matrix: np.ndarray
    rows: np.ndarray
    norms: np.ndarray
    largest: float

    def __len__(self) -> int:
        return len(self.matrix)

    @property
    def shape(self) -> tuple:
        return self.matrix.shape


def prepare(matrix) -> PreparedMatrix:
    """The part of every search that is the same for all probes, done once per gallery load.

    The kept norms describe the matrix as it is now: prepare it again after any change (the
    daemon does at each load). The matrix is kept as a read-only view, so nothing writes
    through the prepared matrix; the caller must not change the array it passed either.
    """
    matrix = read_only(np.asarray(matrix))
    rows = read_only(np.ascontiguousarray(matrix, dtype=np.float32))
    if rows.ndim != 2:
        raise GalleryError(f"a gallery matrix has one row per template; this one has {rows.ndim} dimensions")
    norms = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, len(rows))
        squared_norms(rows[start:stop], out=norms[start:stop])
    largest = float(norms.max()) if len(norms) else 0.0
    return PreparedMatrix(matrix, rows, read_only(norms), largest)


def read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def plain(matrix) -> np.ndarray:
    """The template array of a plain or prepared matrix."""
    return matrix.matrix if isinstance(matrix, PreparedMatrix) else matrix


def check_dimensions(matrix: np.ndarray, probe: np.ndarray) -> None:
    if matrix.ndim != 2 or probe.shape[0] != matrix.shape[1]:
        raise GalleryError(f"the probe has {probe.shape[0]} dimensions but the gallery templates have "
                           f"{matrix.shape[1] if matrix.ndim == 2 else '?'} (embedded with another model?)")


def template_distances(matrix: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """Euclidean distance from the probe to each template row, directly from the differences (float64 out)."""
    differences = matrix - probe
    # float32 sums are off by ~1e-7 here, far below any threshold, and twice as fast as float64
    return np.sqrt(np.einsum("ij,ij->i", differences, differences)).astype(np.float64)


def person_distances(matrix: np.ndarray, person_index: np.ndarray, n_people: int, probe) -> np.ndarray:
    """Distance from the probe to each person (min over their templates); inf for a person with no rows."""
    probe = np.asarray(probe, dtype=np.float32).reshape(-1)
    check_dimensions(matrix, probe)
    best = np.full(n_people, np.inf)
    np.minimum.at(best, np.asarray(person_index, dtype=np.intp), template_distances(matrix, probe))
    return best


def search(matrix: np.ndarray | PreparedMatrix, person_index: np.ndarray, names: list[str], probe) -> Match:
    """Best person, their distance, and the margin to the second-best person.

    ``matrix``: the (templates x dimensions) array, or the same made ready by :func:`prepare`
    (the same Match, sooner). A probe holding NaN or infinity (a blank or broken frame) matches
    nobody. Two people at exactly the same distance: the one listed first in ``names`` is taken.
    """
    if len(names) == 0 or len(matrix) == 0:
        return NO_MATCH
    probe = np.asarray(probe, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(probe)):
        return Match(None, math.nan, math.nan, None, math.nan)
    check_dimensions(plain(matrix), probe)
    person_index = np.asarray(person_index)
    estimates, tolerance = squared_estimates(matrix, probe)
    matrix = plain(matrix)
    if not math.isfinite(tolerance):
        # a template holding NaN, infinity or huge values: the shortcut's bound is void, measure all directly
        return search_directly(matrix, person_index, names, probe)
    first, best = nearest_person(matrix, person_index, probe, estimates, tolerance)
    if len(names) == 1:
        return Match(names[first], best, math.inf, None, math.inf)
    estimates[person_index == first] = np.inf
    if not np.isfinite(estimates.min()):
        # nobody else has templates: the runner-up is the first other person listed, infinitely far
        second = 1 if first == 0 else 0
        return Match(names[first], best, math.inf, names[second], math.inf)
    second, runner_up = nearest_person(matrix, person_index, probe, estimates, tolerance)
    return Match(names[first], best, runner_up - best, names[second], runner_up)


def squared_estimates(matrix: np.ndarray | PreparedMatrix, probe: np.ndarray) -> tuple[np.ndarray, float]:
    """(||t||^2 - 2 t.p per template, bound on its error plus that of the direct formula).

    The bound is inf when some template is not finite (or too large to square).
    """
    minus_twice_probe = np.float32(-2) * probe
    if isinstance(matrix, PreparedMatrix):
        rows, largest = matrix.rows, matrix.largest
        estimates = rows @ minus_twice_probe  # one pass: the norms were kept when the matrix was prepared
        estimates += matrix.norms
    else:
        rows = np.ascontiguousarray(matrix, dtype=np.float32)
        estimates = np.empty(len(rows), dtype=np.float32)
        norms = np.empty(len(rows), dtype=np.float32)
        for start in range(0, len(rows), BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, len(rows))
            block = rows[start:stop]
            squared_norms(block, out=norms[start:stop])
            np.dot(block, minus_twice_probe, out=estimates[start:stop])
        estimates += norms
        largest = float(norms.max())
    if not math.isfinite(largest):
        return estimates, math.inf
    # Each of the two ways to get ||t - p||^2 is within (D + 4) u (||t|| + ||p||)^2 of the truth
    # (sums of D rounded products, plus the float32 conversion and the square root); twice that
    # covers both, and the factor 4 leaves room for how the libraries order their sums.
    scale = (math.sqrt(largest) + float(np.linalg.norm(probe))) ** 2
    return estimates, 8 * (rows.shape[1] + 4) * FLOAT32_UNIT * scale


def squared_norms(block: np.ndarray, out: np.ndarray) -> None:
    if hasattr(np, "vecdot"):  # numpy >= 2: a vectorised kernel, ~30 % faster here than einsum
        np.vecdot(block, block, out=out)
    else:
        np.einsum("ij,ij->i", block, block, out=out)


def nearest_person(matrix: np.ndarray, person_index: np.ndarray, probe: np.ndarray, estimates: np.ndarray,
                   tolerance: float) -> tuple[int, float]:
    """(person position, distance) of the nearest template, measured directly among the close candidates.

    Every template whose estimate is within twice the bound of the smallest one may be the
    nearest by the direct formula; the one with the smallest direct distance (first listed
    person on a tie) wins.
    """
    candidates = np.flatnonzero(estimates <= estimates.min() + 2 * tolerance)
    distances = template_distances(matrix[candidates], probe)
    nearest = distances.min()
    owners = np.asarray(person_index[candidates[distances == nearest]], dtype=np.intp)
    return int(owners.min()), float(nearest)


def search_directly(matrix: np.ndarray, person_index: np.ndarray, names: list[str], probe: np.ndarray) -> Match:
    """The reference search: every distance by the direct formula, min per person."""
    distances = person_distances(matrix, person_index, len(names), probe)
    if len(names) == 1:
        return Match(names[0], float(distances[0]), math.inf, None, math.inf)
    first, second = np.argpartition(distances, 1)[:2]
    if distances[second] < distances[first]:
        first, second = second, first
    best, runner_up = float(distances[first]), float(distances[second])
    return Match(names[first], best, runner_up - best, names[second], runner_up)
