"""Figures for the attribute model: spoof error rates, equal-error thresholds, accuracy.

APCER: attacks (presentations of a print or screen) accepted as live; BPCER:
real faces rejected. Every threshold is the equal error rate on scores of faces
the weights did not see.
"""
from __future__ import annotations

import math

import numpy as np

from edge.exc import ConfigError


def apcer_bpcer(scores, live, threshold: float) -> tuple[float, float]:
    """(APCER, BPCER): attacks scored >= threshold, and real faces scored below it.
    ``live`` is truthy for real faces; NaN where a class is absent."""
    scores, live = np.asarray(scores, dtype=np.float64), np.asarray(live, dtype=bool)
    attacks, real = scores[~live], scores[live]
    apcer = float(np.mean(attacks >= threshold)) if len(attacks) else math.nan
    bpcer = float(np.mean(real < threshold)) if len(real) else math.nan
    return apcer, bpcer


def eer_threshold(scores, positive) -> float:
    """The threshold with the smallest max(false accept, false reject) rate; among
    equally good ones, the middle of the range (margin on both sides)."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        raise ConfigError("choosing a threshold needs examples of both classes")
    values = np.unique(scores)
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    worst = np.array([max(apcer_bpcer(scores, positive, t)) for t in candidates])
    best = np.flatnonzero(worst <= worst.min() + 1e-12)
    return float((candidates[best[0]] + candidates[best[-1]]) / 2)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def evaluate(probabilities: np.ndarray, labels: np.ndarray, attributes: list[str], thresholds: dict) -> dict:
    """Per attribute at its threshold: accuracy, and for `live` APCER/BPCER."""
    figures = {}
    for k, name in enumerate(attributes):
        known = labels[:, k] != 0
        if not known.any():
            continue
        scores, positive = probabilities[known, k], labels[known, k] > 0
        predicted = scores >= thresholds[name]
        entry = {"n": int(known.sum()), "accuracy": float(np.mean(predicted == positive))}
        if name == "live":
            entry["apcer"], entry["bpcer"] = apcer_bpcer(scores, positive, thresholds[name])
            entry["attacks"], entry["real"] = int((~positive).sum()), int(positive.sum())
        figures[name] = entry
    return figures


def choose_thresholds(probabilities, labels, attributes) -> dict[str, float]:
    """The equal-error threshold per attribute (0.5 where one class is missing)."""
    chosen = {}
    for k, name in enumerate(attributes):
        known = labels[:, k] != 0
        both = known.any() and len(set(labels[known, k])) == 2
        if not both:
            chosen[name] = 0.5
        else:
            chosen[name] = eer_threshold(probabilities[known, k], labels[known, k] > 0)
    return chosen


def spoof_errors(accepted, live) -> dict:
    """APCER (attacks accepted) and BPCER (real faces rejected) with their counts; None where a class is absent."""
    accepted, live = np.asarray(accepted, dtype=bool), np.asarray(live, dtype=bool)
    attacks, real = int((~live).sum()), int(live.sum())
    return {"apcer": float(np.mean(accepted[~live])) if attacks else None, "attacks": attacks,
            "attacks_accepted": int(accepted[~live].sum()),
            "bpcer": float(np.mean(~accepted[live])) if real else None, "real": real,
            "real_rejected": int((~accepted[live]).sum())}
