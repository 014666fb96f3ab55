"""Liveness at run time: is the face at the kiosk a real person or a printed photo?

The attribute engine (``edge-verify train attributes`` then ``edge-verify build
--model attributes``) takes the very chips the embedding engine takes (same
size, colour and normalisation, checked against both manifests) and returns one
logit per attribute; the probability of ``live`` is its sigmoid, compared with
the threshold the training chose on faces of subjects its heads had not seen
(manifest ``thresholds``).

Multi-frame cue: ``liveness_check`` over several chips of one person (the
frames a door decision agreed on) averages their probabilities, so one lucky
frame of a photo cannot open the door alone; ``LiveWindow`` keeps the last K
frames' scores for a daemon that scores frame by frame. The cost is the model's
only: one inference per frame (about 0.8 ms FP32, 1.1 ms INT8 for the
embedding-stem backbone on one x86 core), no extra detection or alignment.
"""
from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from edge.engines import load_engine
from edge.engines.manifest import check_input_contract
from edge.exc import ManifestMismatch, NoAttributesEngine
from edge.models import registry

LIVE = "live"


def attributes_engine_path(precision: str = "fp32", backend: str = "onnxruntime", models_dir: Path | None = None) -> Path:
    """The attributes engine's path, or NoAttributesEngine saying how to make one."""
    path = registry.engine_path(registry.ATTRIBUTES, precision, backend, models_dir)
    if not path.exists():
        raise NoAttributesEngine(
            f"no {precision} {backend} attributes engine at {path}; train one with `edge-verify train attributes`, "
            f"then `edge-verify build --model attributes --precision {precision} --backend {backend}`")
    return path


def load_attributes_engine(precision: str = "fp32", backend: str = "onnxruntime", threads: int | None = None,
                           models_dir: Path | None = None, path: Path | None = None):
    """The attribute engine, checked to carry a `live` output and its threshold."""
    engine = load_engine(path or attributes_engine_path(precision, backend, models_dir), threads=threads)
    check_liveness_manifest(engine.manifest)
    return engine


def check_liveness_manifest(manifest: dict) -> None:
    names = manifest.get("attributes") or []
    if manifest.get("name") != registry.ATTRIBUTES or LIVE not in names:
        raise ManifestMismatch(f"engine {manifest.get('name')} has no {LIVE!r} output (attributes: {names})")
    if LIVE not in (manifest.get("thresholds") or {}):
        raise ManifestMismatch(f"attributes engine manifest states no threshold for {LIVE!r}")
    if manifest.get("output") != "logits":
        raise ManifestMismatch(f"attributes engine output is {manifest.get('output')!r}; this runtime reads logits")


def check_same_chips(attributes_manifest: dict, embedding_manifest: dict) -> None:
    """Refuse an attributes engine that wants other chips than the pipeline makes."""
    pre = embedding_manifest["preprocess"]
    check_input_contract(attributes_manifest, {key: pre[key] for key in ("size", "colour", "mean", "std")})
    if attributes_manifest["preprocess"].get("chip_padding") != pre.get("chip_padding"):
        raise ManifestMismatch("attributes engine and embedding engine were trained on differently padded chips")


def attribute_probabilities(engine, chips: np.ndarray) -> np.ndarray:
    """(N, K) probabilities, columns in manifest ``attributes`` order."""
    if len(chips) == 0:
        return np.zeros((0, len(engine.manifest["attributes"])), dtype=np.float64)
    logits = np.asarray(engine.run(np.asarray(chips, dtype=np.float32))[0], dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-logits))


def live_threshold(engine) -> float:
    return float(engine.manifest["thresholds"][LIVE])


def live_scores(engine, chips: np.ndarray) -> np.ndarray:
    """(N,) probability of `live` per chip."""
    column = engine.manifest["attributes"].index(LIVE)
    return attribute_probabilities(engine, chips)[:, column]


def liveness_check(engine, chips: np.ndarray) -> tuple[float, bool]:
    """(score, live) for one person: chips (N, 3, H, W) of one or more frames of
    the same face; the score is their mean probability of `live`. No chips is
    not live (fail-secure)."""
    scores = live_scores(engine, chips)
    if len(scores) == 0:
        return 0.0, False
    score = float(np.mean(scores))
    return score, bool(score >= live_threshold(engine))


class LiveWindow:
    """The last ``k`` frames' live scores of the face being judged."""

    def __init__(self, k: int):
        self.scores: deque = deque(maxlen=max(1, int(k)))

    def add(self, score: float) -> None:
        self.scores.append(float(score))

    def forget(self) -> None:
        self.scores.clear()

    def live(self, threshold: float) -> bool:
        """True only when the window is full and its mean reaches the threshold."""
        return len(self.scores) == self.scores.maxlen and float(np.mean(self.scores)) >= threshold
