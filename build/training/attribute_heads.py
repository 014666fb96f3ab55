"""Attribute heads on the embedding network's features (backbone ``embedding``).

The features are frozen, so every face becomes 64 numbers (stem) or 192 (stem
and stage2) once, and training is a regularised logistic regression per
attribute on its tap's columns (``edge_build.models.attributes.tap_for``):
deterministic, seconds on a CPU.

Validation never lets a subject's frames sit on both sides. Subjects are dealt
into folds (one per subject up to ``folds``, e.g. leave-one-subject-out on
NUAA's 9). Each held-out fold is scored by heads fitted on the other folds,
at thresholds chosen from *their* out-of-fold scores (an inner round of the
same folds), so the reported APCER/BPCER come from subjects that neither the
weights nor the threshold saw. The shipped heads are then fitted on every
subject, at thresholds chosen from the out-of-fold scores of all of them.

Threshold rule, every attribute `live` included: the equal error rate on those
out-of-fold scores (attacks accepted = real faces rejected).
"""
from __future__ import annotations

import sys

import numpy as np
import torch
from tqdm import tqdm

from edge.exc import ConfigError
from edge_build.models import attributes as model
from edge_build.models import finetune
from edge_build.training.attribute_data import Prepared
from edge_build.training.attribute_metrics import eer_threshold, sigmoid, spoof_errors

# L2 weight on standardised features (mean BCE + L2 * |w|^2). Compared on
# NUAA with leave-one-subject-out and cross-session runs (README, liveness):
# 0.01 and 0.1 were close, 0.3 and 1.0 accepted more attacks from a new session.
HEAD_L2 = 0.03
MAX_FOLDS = 10


def tap_features(extractor, inputs: np.ndarray, batch: int = 128, progress: bool = True) -> np.ndarray:
    """(N, extractor.width) float64 features of normalised NCHW chips."""
    out = []
    steps = range(0, len(inputs), batch)
    with torch.no_grad():
        for start in tqdm(steps, desc="features", unit="batch", file=sys.stderr, disable=not progress, leave=False):
            out.append(extractor(torch.from_numpy(np.ascontiguousarray(inputs[start:start + batch]))).numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, extractor.width))


def standardiser(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) per feature; a constant feature gets scale 1 instead of 0."""
    mean, scale = features.mean(axis=0), features.std(axis=0)
    return mean, np.where(scale > 1e-9, scale, 1.0)


def fit_logistic(features: np.ndarray, positive: np.ndarray, l2: float = HEAD_L2) -> tuple[np.ndarray, float]:
    """(weights, bias) on *raw* features of an L2-regularised logistic regression
    fitted on standardised ones (full batch, L-BFGS, float64)."""
    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        raise ConfigError("an attribute head needs faces with and without the attribute in its training subjects")
    mean, scale = standardiser(features)
    x = torch.tensor((features - mean) / scale, dtype=torch.float64)
    y = torch.tensor(positive, dtype=torch.float64)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def loss():
        optimiser.zero_grad()
        value = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y) + l2 * (w * w).sum()
        value.backward()
        return value

    optimiser.step(loss)
    weights = w.detach().numpy() / scale
    return weights, float(b.item() - weights @ mean)


def probabilities(features: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    return sigmoid(features @ weights + bias)


def subject_folds(subjects, folds: int = MAX_FOLDS) -> np.ndarray:
    """Fold number per face: sorted subjects dealt round-robin into min(folds, #subjects) folds."""
    ordered = sorted(set(subjects))
    if len(ordered) < 3:
        raise ConfigError(f"need at least 3 subjects to hold some out, found {len(ordered)}")
    if folds < 3:
        raise ConfigError("--folds must be at least 3")
    count = min(folds, len(ordered))
    fold_of = {subject: index % count for index, subject in enumerate(ordered)}
    return np.asarray([fold_of[s] for s in subjects], dtype=np.int64)


def out_of_fold(features, positive, folds, l2: float = HEAD_L2) -> np.ndarray:
    """Each face's probability from a head fitted without its fold."""
    scores = np.zeros(len(features))
    for fold in np.unique(folds):
        held = folds == fold
        scores[held] = probabilities(features[held], *fit_logistic(features[~held], positive[~held], l2))
    return scores


def head_threshold(features, positive, folds, l2: float = HEAD_L2) -> float:
    """The equal-error threshold on out-of-fold probabilities."""
    return eer_threshold(out_of_fold(features, positive, folds, l2), positive)


def cross_validate(features, labels, attributes, subjects, folds, taps: dict, l2: float = HEAD_L2,
                   progress: bool = True) -> dict:
    """Per attribute, pooled over held-out folds: n, accuracy (and for `live`
    APCER, BPCER, attack and real counts), plus ``by_subject`` for `live`.
    ``taps``: attribute -> tap name, whose columns of ``features`` its head reads."""
    subjects = np.asarray(subjects)
    figures = {}
    for k, name in enumerate(attributes):
        known = labels[:, k] != 0
        x = features[known][:, model.tap_columns(taps[name])]
        positive, fold, who = labels[known, k] > 0, folds[known], subjects[known]
        accepted = np.zeros(len(x), dtype=bool)
        for held in tqdm(np.unique(fold), desc=f"cross-validating {name}", unit="fold", file=sys.stderr,
                         disable=not progress, leave=False):
            test = fold == held
            threshold = head_threshold(x[~test], positive[~test], fold[~test], l2)
            scores = probabilities(x[test], *fit_logistic(x[~test], positive[~test], l2))
            accepted[test] = scores >= threshold
        entry = {"n": int(len(x)), "accuracy": float(np.mean(accepted == positive))}
        if name == "live":
            entry.update(spoof_errors(accepted, positive))
            entry["by_subject"] = {str(s): spoof_errors(accepted[who == s], positive[who == s]) for s in sorted(set(who))}
        figures[name] = entry
    return figures


def fit_heads(features, labels, attributes, folds, taps: dict, l2: float = HEAD_L2) -> tuple[np.ndarray, np.ndarray, dict]:
    """(weights (K, F) and biases (K,) on standardised features, zero outside each
    head's tap; thresholds) from every subject."""
    mean, scale = standardiser(features)
    standard = (features - mean) / scale
    weights, biases, thresholds = np.zeros((len(attributes), features.shape[1])), [], {}
    for k, name in enumerate(attributes):
        known, columns = labels[:, k] != 0, model.tap_columns(taps[name])
        positive = labels[known, k] > 0
        weights[k, columns], bias = fit_logistic(standard[known][:, columns], positive, l2)
        biases.append(bias)
        thresholds[name] = head_threshold(features[known][:, columns], positive, folds[known], l2)
    return weights, np.asarray(biases), thresholds


def make_module(extractor, contract: dict, features: np.ndarray, weights: np.ndarray, biases: np.ndarray):
    """The EmbeddingAttributes module holding ``extractor``, the standardiser and the heads."""
    module = model.build_module(contract)
    module.features.load_state_dict(extractor.state_dict())
    mean, scale = standardiser(features)
    with torch.no_grad():
        module.feature_mean.copy_(torch.from_numpy(mean))
        module.feature_scale.copy_(torch.from_numpy(scale))
        module.head.weight.copy_(torch.from_numpy(weights))
        module.head.bias.copy_(torch.from_numpy(biases))
    return module.eval()


def train_heads(config, prepared: Prepared, echo):
    """The embedding backbone: frozen stem features, logistic heads, subject-fold
    cross-validation; (module, contract). ``config``: an
    edge_build.training.attributes.AttributeConfig."""
    progress = config.progress
    attributes = prepared.dataset.attributes
    contract = model.make_contract(attributes, backbone="embedding")
    extractor = model.features_from(finetune.pretrained(config.embedding), model.needs_stage2(contract))
    features = tap_features(extractor, prepared.inputs, progress=progress)
    taps = contract["taps"]
    folds = subject_folds(prepared.subjects, config.folds)
    echo(f"{len(set(prepared.subjects))} subjects in {len(set(folds))} folds; each fold is scored by heads that "
         "never saw its subjects, at thresholds chosen without them")
    echo("feature taps: " + ", ".join(f"{name} {tap}" for name, tap in taps.items()))
    figures = cross_validate(features, prepared.labels, attributes, prepared.subjects, folds, taps, progress=progress)
    weights, biases, thresholds = fit_heads(features, prepared.labels, attributes, folds, taps)
    contract = model.make_contract(attributes, thresholds, backbone="embedding")
    contract["validation"] = {
        "protocol": f"{len(set(folds))} subject folds; held-out figures at thresholds chosen on the other folds",
        "test": figures, "faceless_photos": len(prepared.faceless),
        "thresholds_chosen_on": "out-of-fold scores of every subject, equal error rate",
        "l2": HEAD_L2, "data": str(config.data)}
    module = make_module(extractor, contract, features, weights, biases)
    return module, contract
