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
from edge.exc import ConfigError, ImageError
from edge.pipeline import FacePipeline
from edge.verify.api import l2_normalize
from edge.vision.image import load_image


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


def fixed_subset(pairs: list[Pair], per_fold: int) -> list[Pair]:
    """The first ``per_fold`` matched and mismatched pairs of every fold: the same subset on every build."""
    chosen = []
    for fold in sorted({p.fold for p in pairs}):
        in_fold = [p for p in pairs if p.fold == fold]
        chosen += [p for p in in_fold if p.same][:per_fold] + [p for p in in_fold if not p.same][:per_fold]
    return chosen


def lfw_subset_scorer(lfw_dir: Path, per_fold: int = 60, pipeline=None):
    """The build's accuracy gate on LFW: returns ``score(embed) -> 10-fold accuracy in %``.

    Chips of a fixed subset of View 2 pairs (``per_fold`` matched + mismatched per
    fold) are detected and aligned once by the product's pipeline; each embed
    function (PyTorch reference, new engine) is then scored on the same chips, so
    the difference between two scores is the engine's doing alone.
    """
    pairs = fixed_subset(read_pairs(Path(lfw_dir) / "pairs.txt"), per_fold)
    pipeline = pipeline or FacePipeline.load(flip=False)
    names, chips = [], []
    for name in unique_images(pairs):
        try:
            image = load_image(Path(lfw_dir) / "images" / name)
        except ImageError:
            continue  # scored as a missed face: the same for reference and engine
        main = pipeline.main_face(image)
        if main is not None:
            names.append(name)
            chips.append(main.chip[0])
    chips = np.stack(chips)
    normalize = pipeline.normalize

    def score(embed) -> float:
        vectors = np.concatenate([embed(chips[i:i + 32]) for i in range(0, len(chips), 32)])
        vectors = l2_normalize(vectors) if normalize else vectors
        distances = pair_distances(pairs, dict(zip(names, vectors)))
        return 100.0 * score_pairs(pairs, distances)

    return score


def score_pairs(pairs: list[Pair], distances: np.ndarray) -> float:
    same = np.array([p.same for p in pairs])
    return metrics.kfold_accuracy(distances, same, np.array([p.fold for p in pairs]))[0]
