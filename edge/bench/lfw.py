"""The LFW verification protocol over our pipeline.

View 2 (``pairs.txt``): 10 folds of 300 matched then 300 mismatched pairs; each
fold is scored at the threshold chosen on the other nine. A pair where either
image has no detected face gets distance +inf, i.e. it is scored as "different"
(right for mismatched pairs, wrong for matched ones) instead of being dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.bench import metrics
from edge.exc import ConfigError


@dataclass(frozen=True)
class Pair:
    a: str  # image path relative to images/
    b: str
    same: bool
    fold: int


def image_name(person: str, number: str) -> str:
    return f"{person}/{person}_{int(number):04d}.jpg"


def read_pairs(path: Path) -> list[Pair]:
    """Parse pairs.txt (header ``folds n``) or the View 1 files (header ``n``)."""
    try:
        lines = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError as error:
        raise ConfigError(f"cannot read LFW pairs file {path}: {error.strerror or error}") from error
    if not lines or not all(token.isdigit() for token in lines[0]):
        raise ConfigError(f"{path}: not an LFW pairs file (first line should be 'folds n' or 'n')")
    header = [int(token) for token in lines[0]]
    folds, per_fold = (header[0], header[1]) if len(header) == 2 else (1, header[0])
    body = lines[1:]
    if len(body) != folds * per_fold * 2:
        raise ConfigError(f"{path}: expected {folds * per_fold * 2} pairs after the header, found {len(body)}")
    pairs = []
    for index, tokens in enumerate(body):
        fold = index // (2 * per_fold)
        if len(tokens) == 3:
            pairs.append(Pair(image_name(tokens[0], tokens[1]), image_name(tokens[0], tokens[2]), True, fold))
        elif len(tokens) == 4:
            pairs.append(Pair(image_name(tokens[0], tokens[1]), image_name(tokens[2], tokens[3]), False, fold))
        else:
            raise ConfigError(f"{path}: line {index + 2} is neither a matched nor a mismatched pair")
    if folds == 1:
        # View 1 has no folds: interleave ten so a k-fold figure still means something.
        pairs = [Pair(p.a, p.b, p.same, i % 10) for i, p in enumerate(pairs)]
    return pairs


def unique_images(pairs: list[Pair]) -> list[str]:
    return sorted({name for pair in pairs for name in (pair.a, pair.b)})


def pair_distances(pairs: list[Pair], embeddings: dict[str, np.ndarray | None]) -> np.ndarray:
    out = np.empty(len(pairs), dtype=np.float64)
    for index, pair in enumerate(pairs):
        a, b = embeddings.get(pair.a), embeddings.get(pair.b)
        out[index] = np.inf if a is None or b is None else float(np.linalg.norm(a - b))
    return out


def score(pairs: list[Pair], distances: np.ndarray, shipped_threshold: float) -> dict:
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    mean, std, per_fold, thresholds = metrics.kfold_accuracy(distances, same, folds)
    tar, tar_threshold = metrics.tar_at_far(distances, same, 1e-3)
    return {
        "pairs": len(pairs),
        "accuracy_mean": mean,
        "accuracy_std": std,
        "accuracy_folds": per_fold,
        "fold_thresholds": thresholds,
        "accuracy_at_threshold": metrics.accuracy(distances, same, shipped_threshold),
        "threshold": shipped_threshold,
        "best_threshold": metrics.best_threshold(distances, same),
        "auc": metrics.roc_auc(distances, same),
        "tar_at_far_1e-3": tar,
        "threshold_at_far_1e-3": tar_threshold,
    }
