"""Fitting the liveness cues' settings on training frames only.

Scores are *attack* scores (higher = more like an attack). Every setting is
chosen on the training side: the texture head's L2 weight and both cues'
thresholds come from out-of-group scores (leave one group out: a subject or a
source, never a frame), so the figures a caller then measures on other data
were not used to choose anything.

Thresholds are set for a share of real faces refused (``target_bpcer``) on
those out-of-group scores, not at the equal error rate: the cues refuse
together (any one calling an attack refuses), so each gets a part of the
real-face budget.
"""
from __future__ import annotations

import numpy as np

from edge.exc import ConfigError

L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)
NEWTON_STEPS = 50


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, scale = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(scale > 1e-9, scale, 1.0)


def balanced_weights(cells) -> np.ndarray:
    """Sample weights giving every cell (e.g. (folder, live)) the same total weight, mean 1."""
    cells = [str(c) for c in cells]
    names, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse]
    return weights * (len(weights) / weights.sum())


def fit_logistic(x: np.ndarray, attack: np.ndarray, l2: float, weights: np.ndarray | None = None) -> dict:
    """L2-regularised logistic regression on standardised features by Newton's method (float64,
    deterministic); returns the head {mean, scale, weights, bias} on raw features."""
    attack = np.asarray(attack, dtype=bool)
    if attack.all() or not attack.any():
        raise ConfigError("a liveness head needs real and attack frames among its training groups")
    mean, scale = standardiser(x)
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    y = attack.astype(np.float64)
    beta = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], 2.0 * l2)
    penalty[-1] = 0.0  # the bias is not shrunk
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -60, 60)))
        gradient = z.T @ (w * (p - y)) + penalty * beta
        hessian = (z * (w * p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-12)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return {"mean": mean, "scale": scale, "weights": beta[:-1], "bias": float(beta[-1])}


def head_scores(x: np.ndarray, head: dict) -> np.ndarray:
    logit = ((x - head["mean"]) / head["scale"]) @ head["weights"] + head["bias"]
    return 1.0 / (1.0 + np.exp(-np.clip(logit, -60, 60)))


def out_of_group(x, attack, groups, l2: float, weights=None) -> np.ndarray:
    """Each frame's attack score from a head fitted without its group."""
    groups = np.asarray(groups)
    if len(set(groups)) < 2:
        raise ConfigError("out-of-group scores need at least two groups (subjects or sources)")
    scores = np.zeros(len(x))
    for group in np.unique(groups):
        held = groups == group
        head = fit_logistic(x[~held], attack[~held], l2, None if weights is None else weights[~held])
        scores[held] = head_scores(x[held], head)
    return scores


def threshold_for_bpcer(scores, attack, target: float) -> float:
    """The lowest threshold (attack when score >= threshold) refusing at most ``target`` of the real
    frames among ``scores``."""
    real = np.sort(np.asarray(scores, dtype=np.float64)[~np.asarray(attack, dtype=bool)])
    if len(real) == 0:
        raise ConfigError("choosing a threshold needs real frames")
    allowed = int(np.floor(target * len(real)))  # real frames that may lie at or above the threshold
    above = real[len(real) - allowed - 1]  # the highest real score that must stay below it
    return float(np.nextafter(above, np.inf))


def apcer_at(scores, attack, threshold: float) -> float:
    """The share of attacks accepted: scoring under ``threshold`` (attack when score >= threshold)."""
    attack = np.asarray(attack, dtype=bool)
    return float(np.mean(np.asarray(scores)[attack] < threshold)) if attack.any() else float("nan")


def choose_l2(x, attack, groups, target: float, weights=None, grid=L2_GRID) -> tuple[float, np.ndarray]:
    """The L2 weight whose out-of-group scores accept the fewest attacks at ``target`` BPCER
    (ties: the stronger regularisation); returns it with its out-of-group scores."""
    best = None
    for l2 in sorted(grid, reverse=True):
        scores = out_of_group(x, attack, groups, l2, weights)
        apcer = apcer_at(scores, attack, threshold_for_bpcer(scores, attack, target))
        if best is None or apcer < best[0] - 1e-12:
            best = (apcer, l2, scores)
    return best[1], best[2]
