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
returned are exactly those of the direct formula. The nearest person is the
owner of the nearest template, and the second person the owner of the nearest
template of anyone else, so no per-person reduction over all templates is needed.

A large prepared gallery of face-like templates (most variance on a few axes)
also keeps its templates projected on 32 principal axes (:class:`Projection`):
the projected distance is a lower bound of the true one, so one pass over the
small projected matrix rules out all but the few templates that could still be
the nearest or the runner-up (9,000 LFW dlib embeddings, 400 other LFW photos as
probes: a median 2.4 % of them, 6 % at the 90th percentile), and only those
are ranked and measured as above. When the bound rules out too few
(random-looking templates, a probe unlike everyone) the full pass runs instead:
the Match is the same either way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from edge.exc import GalleryError

# 4,096 rows of 128 float32 = 2 MiB: a block stays in cache between the norm and the
# dot product, so the matrix crosses the memory bus once per search (1,024 to 16,384
# rows measured within 10 % of each other on one core; 4,096 was the fastest).
BLOCK_ROWS = 4096
# Unit roundoff of float32; the rounding bound below is a small multiple of it.
FLOAT32_UNIT = float(np.finfo(np.float32).eps) / 2
# The lower-bound prune (see Projection): the axes kept, and when it is worth keeping them at all.
PROJECTED_AXES = 32
PRUNE_FROM_ROWS = 16384  # below this one pass is as quick (measured: 10k rows no faster with it, 20k 20 % faster)
PRUNE_FROM_SHARE = 0.5  # of the templates' variance on the kept axes; isotropic 128-d data has 32/128
PRUNE_SAMPLE_ROWS = 16384  # rows the axes are found from (any axes keep the bound exact; these find good ones)
# Beyond this share of the gallery left to measure, one plain pass is the cheaper way (gathering
# scattered rows costs several times more per row than reading them in order).
PRUNE_GIVE_UP_SHARE = 0.2
# The first exact distances come from the template with the least bound in each of the SEED_BLOCKS
# blocks (of SEED_BLOCK_ROWS rows) with the least bounds: usually several people, near the probe.
SEED_BLOCK_ROWS = 64
SEED_BLOCKS = 8


@dataclass(frozen=True)
class Match:
    """The nearest person (None when the gallery is empty or the probe is unusable).

    ``distance`` is Euclidean (smaller = more alike); ``margin`` = second_distance - distance,
    infinite when only one person is enrolled. No threshold is applied here. ``row``: the matrix row
    of the nearest template (-1 when there is none) and ``second_row`` that of the runner-up's nearest,
    for what depends on the template (its cohort spread, edge.gallery.cohort); not compared, as of two
    equally near templates either may be reported.
    """

    person: str | None
    distance: float
    margin: float
    second_person: str | None
    second_distance: float
    row: int = field(default=-1, compare=False)
    second_row: int = field(default=-1, compare=False)


NO_MATCH = Match(None, math.inf, math.inf, None, math.inf)


@dataclass(frozen=True, eq=False)
class Projection:
    """A few principal axes of the gallery and every template projected on them.

    Projecting on orthonormal axes never lengthens a vector, so ||A t - A p|| is a lower bound
    of ||t - p|| for every template t: a template whose bound already exceeds the distance of
    some template of two different people can be neither the nearest nor the runner-up, and is
    never measured. The axes are float32, so only nearly orthonormal: ``stretch`` (>= 1, from
    float64) is the most they lengthen a vector's square. Face embeddings keep most of their
    variance on few axes (LFW dlib embeddings: 77 % on 32 of 128), random vectors do not.
    """

    axes: np.ndarray  # (k, D) float32
    projected: np.ndarray  # (M, k) float32: rows @ axes.T
    norms: np.ndarray  # (M,) float32: ||projected||^2
    stretch: float


@dataclass(frozen=True, eq=False)
class PreparedMatrix:
    """A gallery matrix made ready for searching (:func:`prepare`): what does not depend on the probe.

    ``matrix``: the templates as given (their direct distances are the ones returned), read-only;
    ``rows``: the same as float32, C-contiguous (the ranking's matrix-vector product); ``norms``:
    ||t||^2 of each row, rounded as the ranking rounds them; ``largest``: the largest norm (not finite
    when some template is not); ``projection``: the lower bounds' axes, None where they would not
    save time (a small gallery, or templates without a few dominant axes).
    """

    matrix: np.ndarray
    rows: np.ndarray
    norms: np.ndarray
    largest: float
    projection: Projection | None = None

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
    projection = project(rows) if math.isfinite(largest) else None
    return PreparedMatrix(matrix, rows, read_only(norms), largest, projection)


def project(rows: np.ndarray) -> Projection | None:
    """The gallery's principal axes and its templates projected on them; None when the bound would not pay."""
    if len(rows) < PRUNE_FROM_ROWS or rows.shape[1] < 2 * PROJECTED_AXES:
        return None
    sample = rows[:: max(1, len(rows) // PRUNE_SAMPLE_ROWS)].astype(np.float64)
    sample -= sample.mean(axis=0)
    variances, vectors = np.linalg.eigh(sample.T @ sample)  # ascending
    if variances[-PROJECTED_AXES:].sum() < PRUNE_FROM_SHARE * variances.sum():
        return None
    axes = np.ascontiguousarray(vectors[:, -PROJECTED_AXES:].T, dtype=np.float32)
    # The largest eigenvalue of A A^T (float64, exact to ~1e-15) is the most ||A x||^2 / ||x||^2 can be.
    exact = axes.astype(np.float64)
    stretch = max(1.0, float(np.linalg.eigvalsh(exact @ exact.T)[-1])) * (1 + 1e-9)
    projected = np.ascontiguousarray(rows @ axes.T)
    norms = np.empty(len(projected), dtype=np.float32)
    squared_norms(projected, out=norms)
    return Projection(read_only(axes), read_only(projected), read_only(norms), stretch)


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
    if isinstance(matrix, PreparedMatrix) and matrix.projection is not None and len(names) > 1:
        pruned = search_pruned(matrix, person_index, names, probe)
        if pruned is not None:
            return pruned
    estimates, tolerance = squared_estimates(matrix, probe)
    matrix = plain(matrix)
    if not math.isfinite(tolerance):
        # a template holding NaN, infinity or huge values: the shortcut's bound is void, measure all directly
        return search_directly(matrix, person_index, names, probe)
    return nearest_two(matrix, person_index, names, probe, estimates, tolerance)


def nearest_two(matrix: np.ndarray, person_index: np.ndarray, names: list[str], probe: np.ndarray,
                estimates: np.ndarray, tolerance: float) -> Match:
    """The Match from the ranking ``estimates`` of the rows of ``matrix`` (measured directly where close)."""
    first, best, row = nearest_person(matrix, person_index, probe, estimates, tolerance)
    if len(names) == 1:
        return Match(names[first], best, math.inf, None, math.inf, row)
    estimates[person_index == first] = np.inf
    if not np.isfinite(estimates.min()):
        # nobody else has templates: the runner-up is the first other person listed, infinitely far
        second = 1 if first == 0 else 0
        return Match(names[first], best, math.inf, names[second], math.inf, row)
    second, runner_up, second_row = nearest_person(matrix, person_index, probe, estimates, tolerance)
    return Match(names[first], best, runner_up - best, names[second], runner_up, row, second_row)


def search_pruned(prepared: PreparedMatrix, person_index: np.ndarray, names: list[str],
                  probe: np.ndarray) -> Match | None:
    """The Match from the templates the projection cannot rule out; None when it rules out too few.

    A few templates near the probe by their bound are measured first: the distance ``reach`` of
    the nearest of them that is not the nearest one's person bounds the runner-up's distance
    (whoever turns out nearest, one of those two people is someone else). Every template that
    could be nearest or runner-up is within ``reach``, so its bound is within the bound of
    ``reach`` plus rounding; only those are measured, directly, as the plain search measures.
    """
    projection, matrix = prepared.projection, prepared.matrix
    bounds, probe_part = lower_bounds(projection, probe)
    seeds = seed_rows(bounds)
    if len(seeds) > SEED_BLOCKS * SEED_BLOCK_ROWS:
        return None  # bounds alike for whole blocks (a gallery of copies): nothing to gain
    distances = template_distances(matrix[seeds], probe)
    owners = np.asarray(person_index[seeds], dtype=np.intp)
    others = distances[owners != owners[distances == distances.min()].min()]
    if others.size == 0:
        return None
    reach = float(others.min())
    # A distance the direct formula gives is within ranking_tolerance of the true one.
    direct = ranking_tolerance(matrix.shape[1], prepared.largest, probe)
    limit = projection.stretch * (reach * reach + direct) + bound_rounding(prepared, probe) - probe_part
    if not np.all(bounds[seeds[distances <= reach]] <= np.float64(limit)):
        return None  # cannot happen if the rounding bounds hold; were they wrong, the full pass is still right
    candidates = np.flatnonzero(bounds <= np.float64(limit))
    if len(candidates) > PRUNE_GIVE_UP_SHARE * len(matrix):
        return None
    # The candidates hold the two people of ``reach``, so the runner-up is among them: rank them as
    # the full search ranks every template, and measure the close ones directly.
    rows = prepared.rows[candidates]
    estimates = rows @ (np.float32(-2) * probe)
    estimates += prepared.norms[candidates]
    exact = rows if matrix.dtype == np.float32 else matrix[candidates]  # rows: matrix converted to float32
    found = nearest_two(exact, person_index[candidates], names, probe, estimates, direct)
    return replace(found, row=int(candidates[found.row]),
                   second_row=int(candidates[found.second_row]) if found.second_row >= 0 else -1)


def lower_bounds(projection: Projection, probe: np.ndarray) -> tuple[np.ndarray, float]:
    """(||y - z||^2 - ||z||^2 for every projected template y, and ||z||^2), z the projected probe.

    Up to :func:`bound_rounding`, ||y - z||^2 <= stretch ||t - p||^2. The probe's own part is
    left out of the array (one pass fewer) and returned in float64 for the comparison.
    """
    projected_probe = projection.axes @ probe
    bounds = projection.projected @ (np.float32(-2) * projected_probe)
    bounds += projection.norms
    return bounds, float(projected_probe.astype(np.float64) @ projected_probe)


def bound_rounding(prepared: PreparedMatrix, probe: np.ndarray) -> float:
    """How far a computed bound may exceed the exact one: each projected coordinate is a sum of D
    rounded products (of the template, and of the probe), and the bound a sum of k squares; 4x margin
    for how the libraries order their sums."""
    dim, axes = prepared.rows.shape[1], len(prepared.projection.axes)
    scale = squared_scale(prepared.largest, probe)
    return 4 * (2 * math.sqrt(axes) * (dim + 1) + axes + 4) * FLOAT32_UNIT * prepared.projection.stretch * scale


def seed_rows(bounds: np.ndarray) -> np.ndarray:
    """Rows with bounds no larger than the least bound of the SEED_BLOCKS-th best block (cheaper than a sort)."""
    block_least = np.minimum.reduceat(bounds, np.arange(0, len(bounds), SEED_BLOCK_ROWS))
    if len(block_least) <= SEED_BLOCKS:
        return np.arange(len(bounds))
    cut = np.partition(block_least, SEED_BLOCKS - 1)[SEED_BLOCKS - 1]
    return np.flatnonzero(bounds <= cut)


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
    return estimates, ranking_tolerance(rows.shape[1], largest, probe)


def ranking_tolerance(dim: int, largest: float, probe: np.ndarray) -> float:
    """How far ||t||^2 - 2 t.p + ||p||^2 and the direct formula may each be from ||t - p||^2, together
    (inf when the largest squared norm is not finite)."""
    if not math.isfinite(largest):
        return math.inf
    # Each of the two ways to get ||t - p||^2 is within (D + 4) u (||t|| + ||p||)^2 of the truth
    # (sums of D rounded products, plus the float32 conversion and the square root); twice that
    # covers both, and the factor 4 leaves room for how the libraries order their sums.
    return 8 * (dim + 4) * FLOAT32_UNIT * squared_scale(largest, probe)


def squared_scale(largest: float, probe: np.ndarray) -> float:
    """(largest ||t|| + ||p||)^2: what every rounding bound here is relative to."""
    return (math.sqrt(largest) + float(np.linalg.norm(probe))) ** 2


def squared_norms(block: np.ndarray, out: np.ndarray) -> None:
    if hasattr(np, "vecdot"):  # numpy >= 2: a vectorised kernel, ~30 % faster here than einsum
        np.vecdot(block, block, out=out)
    else:
        np.einsum("ij,ij->i", block, block, out=out)


def nearest_person(matrix: np.ndarray, person_index: np.ndarray, probe: np.ndarray, estimates: np.ndarray,
                   tolerance: float) -> tuple[int, float, int]:
    """(person position, distance, row) of the nearest template, measured directly among the close candidates.

    Every template whose estimate is within twice the bound of the smallest one may be the
    nearest by the direct formula; the one with the smallest direct distance (first listed
    person on a tie) wins.
    """
    candidates = np.flatnonzero(estimates <= estimates.min() + 2 * tolerance)
    distances = template_distances(matrix[candidates], probe)
    nearest = distances.min()
    tied = candidates[distances == nearest]
    owners = np.asarray(person_index[tied], dtype=np.intp)
    person = int(owners.min())
    return person, float(nearest), int(tied[owners == person][0])


def search_directly(matrix: np.ndarray, person_index: np.ndarray, names: list[str], probe: np.ndarray) -> Match:
    """The reference search: every distance by the direct formula, min per person."""
    each = template_distances(matrix, probe)
    distances = np.full(len(names), np.inf)
    np.minimum.at(distances, np.asarray(person_index, dtype=np.intp), each)
    if len(names) == 1:
        return Match(names[0], float(distances[0]), math.inf, None, math.inf, nearest_row(each, person_index, 0))
    first, second = np.argpartition(distances, 1)[:2]
    if distances[second] < distances[first]:
        first, second = second, first
    best, runner_up = float(distances[first]), float(distances[second])
    return Match(names[first], best, runner_up - best, names[second], runner_up,
                 nearest_row(each, person_index, int(first)), nearest_row(each, person_index, int(second)))


def nearest_row(distances: np.ndarray, person_index: np.ndarray, person: int) -> int:
    """The row of ``person``'s nearest template (-1 when no finite one: a broken template)."""
    rows = np.flatnonzero(np.asarray(person_index) == person)
    finite = rows[np.isfinite(distances[rows])]
    return int(finite[np.argmin(distances[finite])]) if finite.size else -1
