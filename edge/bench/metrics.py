"""Verification metrics on scored pairs.

Scores are distances (smaller = more alike); ``same`` marks the genuine pairs.
A pair whose distance is +inf (no face found in one of its images) counts as
"different" at every threshold: it is never silently dropped.
"""
from __future__ import annotations

import numpy as np


def accuracy(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Share of pairs decided correctly when distance <= threshold means same person."""
    predicted = np.asarray(distances) <= threshold
    return float(np.mean(predicted == np.asarray(same, dtype=bool)))


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold with the highest accuracy on these pairs.

    Candidates are the midpoints between consecutive sorted finite distances,
    which covers every distinct decision. Ties go to the smaller threshold
    (fewer false accepts).
    """
    distances = np.asarray(distances, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    finite = np.sort(np.unique(distances[np.isfinite(distances)]))
    if finite.size == 0:
        return 0.0
    candidates = np.concatenate([[finite[0] - 1e-6], (finite[:-1] + finite[1:]) / 2, [finite[-1] + 1e-6]])
    order = np.argsort(distances, kind="stable")
    sorted_d, sorted_same = distances[order], same[order]
    # accuracy(t) = (#same with d<=t + #diff with d>t) / n, computed for all t at once
    accepted = np.searchsorted(sorted_d, candidates, side="right")
    same_cum = np.concatenate([[0], np.cumsum(sorted_same)])
    diff_cum = np.concatenate([[0], np.cumsum(~sorted_same)])
    correct = same_cum[accepted] + (diff_cum[-1] - diff_cum[accepted])
    return float(candidates[int(np.argmax(correct))])


def kfold_accuracy(distances: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[float, float, list[float], list[float]]:
    """LFW protocol: each fold scored at the threshold chosen on the other folds.

    Returns (mean, std, per-fold accuracies, per-fold thresholds). std is the
    population standard deviation over folds, as LFW results usually report.
    """
    distances, same, folds = np.asarray(distances), np.asarray(same, dtype=bool), np.asarray(folds)
    scores, thresholds = [], []
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        threshold = best_threshold(distances[train], same[train])
        thresholds.append(threshold)
        scores.append(accuracy(distances[test], same[test], threshold))
    return float(np.mean(scores)), float(np.std(scores)), scores, thresholds


def roc_auc(distances: np.ndarray, same: np.ndarray) -> float:
    """Probability that a random genuine pair is closer than a random impostor pair (ties count half)."""
    distances = np.asarray(distances, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    # Rank-based (Mann-Whitney) formulation; +inf distances rank last, as they should.
    scores = -np.where(np.isfinite(distances), distances, np.inf)
    ranks = _average_ranks(scores)
    n_pos, n_neg = int(same.sum()), int((~same).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[same].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def tar_at_far(distances: np.ndarray, same: np.ndarray, far: float) -> tuple[float, float]:
    """True-accept rate at the loosest threshold whose false-accept rate is <= ``far``.

    Returns (TAR, threshold). With 3,000 impostor pairs, FAR 1e-3 allows 3 false accepts.
    """
    distances = np.asarray(distances, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    impostor = np.sort(distances[~same])
    allowed = int(np.floor(far * impostor.size))
    # Accept d < impostor[allowed]: exactly `allowed` impostors are below (ties excluded).
    threshold = impostor[allowed] if allowed < impostor.size else np.inf
    tar = float(np.mean(distances[same] < threshold))
    return tar, float(np.nextafter(threshold, -np.inf))
