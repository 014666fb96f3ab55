"""Do an enrollment's frames show one person? The check that keeps a mixed enrollment out.

Photos of two people given under one name (by mistake, or to let a second person
in under the first one's name) must never be stored: every later photo of either
would open the door as that name. The check compares every frame with every
other, on unit-length embeddings (so a template's length cannot hide or fake a
distance), and splits the frames into the two groups that are furthest apart
with average-linkage clustering: frames are merged, nearest groups first, until
two groups are left; the *split distance* is the mean distance between a frame
of one group and a frame of the other. Frames of one person give a split distance
near their usual distance; frames of two people give the distance between two
people, whatever the proportion (1 + 4 or 2 + 3 frames).

When the split distance is above the cut-off:
  * two groups of two frames or more: the enrollment is refused (two people);
  * one frame against the rest: that frame is set aside, like a blurred frame,
    with its distance as the reason, and the rest is checked again. A frame of
    someone else among the person's frames is never stored; a frame where the
    person covered their face or wore sunglasses does not sink the enrollment.

The cut-off, SPLIT_CUTOFF, is a multiple of the embedding's 1:1 threshold, so it
follows the model. It was chosen on LFW people of View 1's training split
(pairsDevTrain.txt): the largest cut-off, to two decimals and 0.01 or more below
the split distance of the closest of 1,200 mixes of two of those people (0.955), so
that none of them is stored; there 1.2 % of 600 genuine 5-photo enrollments are
refused and 4.5 % lose one frame. The figures on other LFW people come from
`python benchmarks/mixed_enrollment.py --lfw ../shared/datasets/lfw`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Split distance / 1:1 threshold above which frames do not show one person (see above).
SPLIT_CUTOFF = 0.94


@dataclass
class OnePerson:
    """The verdict on a set of frames: which rows to keep, which were set aside and why,
    and ``problem`` (one line) when the frames show two people."""

    keep: list = field(default_factory=list)
    odd: list = field(default_factory=list)  # (row, mean distance to the kept frames, limit)
    problem: str | None = None


def unit_rows(matrix) -> np.ndarray:
    """Rows scaled to unit length (float64); an all-zero row stays zero."""
    rows = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def pairwise_distances(units: np.ndarray) -> np.ndarray:
    """Euclidean distance between every two rows, (K, K)."""
    differences = units[:, None, :] - units[None, :, :]
    return np.sqrt(np.maximum(np.einsum("ijk,ijk->ij", differences, differences), 0.0))


def split(matrix) -> tuple[float, list[list[int]]]:
    """(split distance, the two groups of row numbers) by average linkage; (0, [rows]) below two rows."""
    rows = len(matrix)
    if rows < 2:
        return 0.0, [list(range(rows))]
    distances = pairwise_distances(unit_rows(matrix))
    groups = [[row] for row in range(rows)]
    while True:
        linkage = [(float(distances[np.ix_(first, second)].mean()), a, b)
                   for a, first in enumerate(groups) for b, second in enumerate(groups) if a < b]
        nearest, a, b = min(linkage)
        if len(groups) == 2:
            return nearest, groups
        groups[a] = sorted(groups[a] + groups[b])
        del groups[b]


def check_frames(matrix, threshold: float, cutoff: float = SPLIT_CUTOFF) -> OnePerson:
    """Which frames show one person (see the module docstring).

    ``threshold``: the embedding's 1:1 threshold on unit-length embeddings (the manifest's).
    Odd frames are set aside one at a time while at least two frames are left.
    """
    limit = cutoff * float(threshold)
    rows = np.asarray(matrix)
    verdict = OnePerson(keep=list(range(len(rows))))
    while len(verdict.keep) >= 2:
        distance, groups = split(rows[verdict.keep])
        if distance <= limit:
            break
        small, large = sorted(groups, key=len)
        if len(small) > 1 or len(verdict.keep) == 2:
            first, second = (", ".join(str(verdict.keep[row] + 1) for row in group) for group in groups)
            verdict.problem = (f"the frames show two different people: good frames {first} and {second} are "
                               f"{distance:.3f} apart on average (> {limit:.3f})")
            break
        verdict.odd.append((verdict.keep[small[0]], distance, limit))
        verdict.keep = [verdict.keep[row] for row in large]
    return verdict
