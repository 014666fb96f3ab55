"""The 1:N open-set threshold: keeps strangers out however large the gallery grows.

Why a 1:1 threshold is wrong at a door
--------------------------------------
A verification threshold t is chosen for one comparison: a stranger compared with
one template is accepted with probability F(t), where F is the CDF of impostor
distances (distances between photos of different people). At the door a stranger
is compared with every one of the n templates in the gallery and is let in if ANY
of them is nearer than t. Treating the comparisons as independent, the share of
strangers let in per attempt is

    P(n, t) = 1 - (1 - F(t))^n  ~=  n * F(t)      (for small F(t))

so it grows with the gallery: F(t) = 1 % is a fine 1:1 operating point, yet with
800 templates 1 - 0.99^800 = 99.97 % of strangers match somebody (face_recognition's
0.6 tolerance with 158 LFW people enrolled accepted 722 of 1,000 strangers).

The rule
--------
Hold P(n, t) at or below a target rate r (default 1e-3, one stranger in a thousand
attempts) by requiring

    F(t) <= f_max(n, r) = 1 - (1 - r)^(1/n)        (~ r / n)

and taking the largest such t on the measured impostor distances, so genuine
users lose as little as possible. The result is never looser than the model's 1:1
threshold. It must be recomputed whenever the number of templates changes.

Templates of one person are correlated, so the independence assumption
over-counts the chance of a stranger hitting several of them; the rule errs on the
safe side. The estimate is only as good as the sample: when f_max is below one
over the number of measured impostor distances, t falls below the smallest
distance ever measured, and the sample cannot show the target is met; measure more
impostor pairs (``impostor_support`` says how many are needed).

Where the figures come from
---------------------------
The embedding engine's manifest ships the smallest measured impostor distances
(``impostor_tail``: one photo against one template) and, for the door's combined
probes, ``combined_impostor_tail`` (one stranger's approach against one template:
the least distance over every combined probe the daemon decides on;
benchmarks/door_calibrate.py). ``choose_threshold(manifest, n, rate, tail_key)``
applies the rule to either; edge.daemon.decision.door_threshold picks the tail
and is what the daemon, `identify`, `enroll` and `gallery show` use, recomputed
whenever the gallery's template count changes. Without a tail the rule falls back
to the 1:1 threshold and warns: that threshold does not hold the target rate.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from edge.exc import ManifestMismatch


def allowed_false_match_rate(n_templates: int, target_rate: float = 1e-3) -> float:
    """f_max: the per-comparison false-match rate that keeps 1 - (1 - F)^n <= target_rate."""
    _check_rate(target_rate)
    n = max(int(n_templates), 1)
    return -math.expm1(math.log1p(-target_rate) / n)


def openset_threshold(impostor_distances, n_templates: int, target_rate: float = 1e-3,
                      verification_threshold: float | None = None) -> float:
    """The largest distance threshold t with n_templates * F(t) (exactly 1-(1-F(t))^n) <= target_rate.

    ``impostor_distances``: impostor distances measured offline for the embedding
    model (sorted or not). ``n_templates``: templates in the gallery (at least 1 is
    assumed). ``verification_threshold``: the model's 1:1 threshold, a cap the
    result never exceeds. F is the empirical CDF, F(t) = share of distances <= t.
    """
    distances = _sorted_distances(impostor_distances)
    allowed = int(math.floor(allowed_false_match_rate(n_templates, target_rate) * len(distances)))
    # At most `allowed` measured impostors may be <= t: stop just below the next one.
    threshold = float(np.nextafter(distances[allowed], -np.inf)) if allowed < len(distances) else math.inf
    if verification_threshold is not None:
        threshold = min(threshold, float(verification_threshold))
    return threshold


def stranger_accept_rate(impostor_distances, n_templates: int, threshold: float) -> float:
    """Expected share of strangers let in per attempt at ``threshold``: 1 - (1 - F(t))^n."""
    distances = _sorted_distances(impostor_distances)
    false_match = np.searchsorted(distances, threshold, side="right") / len(distances)
    return -math.expm1(max(int(n_templates), 1) * math.log1p(-false_match)) if false_match < 1 else 1.0


def impostor_support(n_templates: int, target_rate: float = 1e-3) -> int:
    """Impostor distances needed before f_max is resolved at all (one measured impostor below t)."""
    return int(math.ceil(1.0 / allowed_false_match_rate(n_templates, target_rate)))


def _sorted_distances(impostor_distances) -> np.ndarray:
    distances = np.asarray(impostor_distances, dtype=np.float64).reshape(-1)
    if distances.size == 0:
        raise ValueError("the impostor distance sample is empty")
    if not np.all(np.isfinite(distances)):
        raise ValueError("the impostor distance sample holds NaN or infinity")
    if np.any(distances[1:] < distances[:-1]):
        distances = np.sort(distances)
    return distances


def _check_rate(target_rate: float) -> None:
    if not 0.0 < float(target_rate) < 1.0:
        raise ValueError(f"the target stranger rate must be between 0 and 1, got {target_rate}")


def openset_threshold_from_tail(tail_distances, total_count: int, n_templates: int, target_rate: float = 1e-3,
                                verification_threshold: float | None = None) -> float:
    """:func:`openset_threshold` from only the smallest impostor distances of a larger sample.

    An engine manifest ships the ``tail_distances`` (the K smallest, of
    ``total_count`` impostor distances measured offline) instead of the whole
    sample: the rule only ever looks at the low end. While the rule's position
    ``floor(f_max * total_count)`` falls inside the tail the result equals
    ``openset_threshold`` on the whole sample. Past the tail's end the true
    threshold lies somewhere above the tail's largest distance, which is unknown,
    so the result stops just below that distance: never looser than the rule.
    """
    distances = _sorted_distances(tail_distances)
    total = int(total_count)
    if total < len(distances):
        raise ValueError(f"the impostor tail holds {len(distances)} distances but claims only {total} were measured")
    allowed = int(math.floor(allowed_false_match_rate(n_templates, target_rate) * total))
    position = min(allowed, len(distances) - 1)
    threshold = float(np.nextafter(distances[position], -np.inf))
    if verification_threshold is not None:
        threshold = min(threshold, float(verification_threshold))
    return threshold


# ---- the shipped rule: from the embedding engine's manifest ---------------------------------------
#
# Models ship the smallest impostor distances measured offline, not the whole
# sample: manifest "impostor_tail" = {"count": N impostor pairs measured,
# "distances": the K smallest, sorted}. The empirical CDF is exact below the K-th
# distance, F(t) = (#tail distances <= t) / N, and unknown above it, so a
# threshold is never placed beyond the tail (openset_threshold_from_tail).


class ThresholdFallbackWarning(UserWarning):
    """The manifest carries no impostor tail: the 1:1 threshold is used for 1:N as well."""


@dataclass(frozen=True)
class OpenSetChoice:
    """The 1:N threshold and how it was chosen (for `gallery show`, `identify`, selftest, the daemon).

    ``rule``: "impostor tail", "impostor tail (combined_impostor_tail)" or "1:1 fallback". ``expected_stranger_rate``: the
    share of strangers let in per attempt that the measured tail predicts at
    ``threshold`` (None without a tail). ``note``: a warning for the operator, or None.
    """

    threshold: float
    n_templates: int
    target_rate: float
    verification_threshold: float
    rule: str
    impostor_pairs: int | None = None
    expected_stranger_rate: float | None = None
    note: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


SINGLE_TAIL = "impostor_tail"  # probes of one photo or frame
COMBINED_TAIL = "combined_impostor_tail"  # probes combined from the frames of one track (edge.daemon.tracking)


def manifest_entry(manifest: dict, key: str):
    """A calibrated figure the build copied from the model's contract: at the manifest's top level, or in
    its "preprocess" block for engines built before such fields were lifted; None when absent."""
    entry = manifest.get(key)
    return (manifest.get("preprocess") or {}).get(key) if entry is None else entry


def impostor_tail(manifest: dict, key: str = SINGLE_TAIL) -> dict | None:
    """The manifest's impostor tail ``key``, or None when the model ships none.

    Read from the top level; engines built before the field was lifted there carry
    it in the "preprocess" block (the build copies unknown contract keys there).
    A tail that is present but malformed is an error, never a silent fallback.
    """
    tail = manifest_entry(manifest, key)
    if tail is None:
        return None
    try:
        count = int(tail["count"])
        distances = np.asarray(tail["distances"], dtype=np.float64).reshape(-1)
    except (KeyError, TypeError, ValueError) as error:
        raise ManifestMismatch(f"the embedding manifest's {key} is malformed ({error!r}); "
                               "rebuild the engine") from error
    if distances.size == 0 or count < distances.size or not np.all(np.isfinite(distances)) \
            or np.any(distances[1:] < distances[:-1]):
        raise ManifestMismatch(f"the embedding manifest's {key} is malformed: it must hold 1 to count finite "
                               "distances in ascending order; rebuild the engine")
    return {"count": count, "distances": distances}


def choose_threshold(manifest: dict, n_templates: int, target_rate: float = 1e-3,
                     tail_key: str = SINGLE_TAIL) -> OpenSetChoice:
    """The 1:N threshold for a gallery of ``n_templates`` templates under the embedding ``manifest``,
    from the impostor tail ``tail_key`` (SINGLE_TAIL for one-photo probes, COMBINED_TAIL for combined ones)."""
    _check_rate(target_rate)
    n = max(int(n_templates), 1)
    verification = float(manifest["threshold"])
    tail = impostor_tail(manifest, tail_key)
    if tail is None:
        return OpenSetChoice(verification, n, target_rate, verification, "1:1 fallback",
                             note=f"the embedding engine's manifest has no impostor_tail, so the 1:1 threshold "
                                  f"{verification:g} is used for 1:N: with {n} templates, more than {target_rate:g} "
                                  "of strangers may be let in; rebuild the engine with calibrated figures")
    count, distances = tail["count"], tail["distances"]
    threshold = openset_threshold_from_tail(distances, count, n, target_rate, verification)
    false_match = np.searchsorted(distances, threshold, side="right") / count
    expected = -math.expm1(n * math.log1p(-false_match)) if false_match < 1 else 1.0
    note = None
    if allowed_false_match_rate(n, target_rate) * count < 1:
        note = (f"{count} measured impostor pairs cannot show a rate of {target_rate:g} for {n} templates (needs "
                f"{impostor_support(n, target_rate)}); the threshold sits below every measured impostor distance")
    rule = "impostor tail" if tail_key == SINGLE_TAIL else f"impostor tail ({tail_key})"
    return OpenSetChoice(threshold, n, target_rate, verification, rule, count, expected, note)


def gallery_threshold(manifest: dict, n_templates: int, target_rate: float = 1e-3) -> float:
    """The distance threshold the kiosk uses for a gallery of ``n_templates``: at or below it a
    probe is the nearest person; above it, nobody. Warns (ThresholdFallbackWarning) when the
    manifest has no impostor tail and the 1:1 threshold stands in. Recompute on every gallery change.
    """
    choice = choose_threshold(manifest, n_templates, target_rate)
    if choice.rule == "1:1 fallback":
        warnings.warn(choice.note, ThresholdFallbackWarning, stacklevel=2)
    return choice.threshold
