"""Stage: the accuracy gate every build passes before its engine is installed.

INT8 (and FP16) can lose accuracy without failing: the engine still returns
128 numbers per face, just worse ones. So after every build, held-out faces
(never in the calibration set) go through the new engine and through the
PyTorch reference, and the build fails unless

* the mean cosine similarity of the two outputs is at least ``min_cosine``
  (default 0.99), and
* when an LFW scorer is given, 10-fold accuracy on its fixed subset of pairs
  drops by at most ``max_lfw_drop`` points (default 0.3);
* when the model makes decisions at thresholds (an attribute model's heads), the
  engine and the reference decide the same on at least ``min_decision_agreement``
  of the held-out faces (default 0.99). Cosine alone cannot see this: for a
  one-logit head it only compares signs.

Everything is injected: ``reference_embed`` and ``engine_embed`` map a
(N, C, H, W) float32 batch to (N, D) outputs; ``lfw_scorer(embed)`` returns an
accuracy in percent for an embed function. The figures go into the manifest.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterable

import numpy as np
import torch

from edge.exc import BuildError, GateFailed
from edge_build.stagelog import stage

Embed = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class GateLimits:
    min_cosine: float = 0.99
    max_lfw_drop: float = 0.3  # accuracy points
    min_decision_agreement: float = 0.99


def batches_of(chips, batch_size: int) -> Iterable[np.ndarray]:
    """Batches from one (N, C, H, W) array or from an iterable of such arrays."""
    if isinstance(chips, np.ndarray):
        chips = [chips]
    for block in chips:
        block = np.asarray(block, dtype=np.float32)
        for start in range(0, len(block), batch_size):
            yield block[start:start + batch_size]


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    # A zero output on either side is no evidence of agreement.
    return np.where(norms > 0, np.sum(a * b, axis=1) / np.maximum(norms, 1e-30), 0.0)


def compare(reference_embed: Embed, engine_embed: Embed, held_out_chips, batch_size: int = 32,
            decide: Callable[[np.ndarray], np.ndarray] | None = None) -> dict:
    cosines, distances, agreements = [], [], []
    for batch in batches_of(held_out_chips, batch_size):
        if not len(batch):
            continue
        want, have = reference_embed(batch), engine_embed(batch)
        if np.shape(want) != np.shape(have):
            raise BuildError(f"engine output shape {np.shape(have)} differs from the reference's {np.shape(want)}")
        cosines.append(cosine_rows(want, have))
        if decide is not None:
            agreements.append(np.all(decide(want) == decide(have), axis=1))
        distances.append(np.linalg.norm(np.reshape(want, (len(batch), -1)) - np.reshape(have, (len(batch), -1)), axis=1))
    if not cosines:
        raise BuildError("the accuracy gate got no held-out faces: pass --gate-faces DIR with photos the calibration never saw")
    cosine, distance = np.concatenate(cosines), np.concatenate(distances)
    figures = {"faces": int(len(cosine)), "mean_cosine": float(cosine.mean()), "min_cosine": float(cosine.min()),
               "mean_l2": float(distance.mean()), "max_l2": float(distance.max())}
    if agreements:
        figures["decision_agreement"] = float(np.concatenate(agreements).mean())
    return figures


def threshold_decisions(contract: dict) -> Callable[[np.ndarray], np.ndarray] | None:
    """For a contract with per-output probability thresholds over logits (the attribute
    model), the function turning outputs into decisions; None for other models."""
    names, thresholds = contract.get("attributes"), contract.get("thresholds")
    if not names or not thresholds or contract.get("output") != "logits":
        return None
    probability = np.array([float(thresholds[name]) for name in names])
    with np.errstate(divide="ignore"):
        logit = np.log(probability) - np.log1p(-probability)  # +inf for 1.0: never true, like the runtime

    def decide(outputs: np.ndarray) -> np.ndarray:
        return np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1) >= logit

    return decide


@stage("accuracy gate", slow=True)
def accuracy_gate(reference_embed: Embed, engine_embed: Embed, held_out_chips, limits: GateLimits = GateLimits(),
                  lfw_scorer: Callable[[Embed], float] | None = None, batch_size: int = 32,
                  decide: Callable[[np.ndarray], np.ndarray] | None = None) -> dict:
    """The gate's figures (for the manifest); raises GateFailed when a limit is broken."""
    figures = compare(reference_embed, engine_embed, held_out_chips, batch_size, decide)
    failures = []
    if not figures["mean_cosine"] >= limits.min_cosine:  # also catches NaN
        failures.append(f"mean cosine to the reference {figures['mean_cosine']:.4f} < {limits.min_cosine}")
    if "decision_agreement" in figures and not figures["decision_agreement"] >= limits.min_decision_agreement:
        failures.append(f"engine and reference decide alike on {figures['decision_agreement']:.2%} of held-out faces "
                        f"< {limits.min_decision_agreement:.0%}")
    if lfw_scorer is not None:
        reference, engine = float(lfw_scorer(reference_embed)), float(lfw_scorer(engine_embed))
        figures["lfw"] = {"reference_accuracy": reference, "engine_accuracy": engine, "drop_points": reference - engine}
        if not reference - engine <= limits.max_lfw_drop:
            failures.append(f"LFW accuracy drops {reference - engine:.2f} points ({reference:.2f}% -> {engine:.2f}%) > {limits.max_lfw_drop}")
    figures["limits"] = asdict(limits)
    figures["passed"] = not failures
    if failures:
        raise GateFailed("accuracy gate failed: " + "; ".join(failures) + " (the engine was not installed)", figures)
    return figures


def torch_embed(module) -> Embed:
    """The PyTorch reference as an Embed: outputs flattened per sample and joined."""
    module = module.eval()

    def embed(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = module(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return np.concatenate([o.numpy().reshape(len(batch), -1) for o in outs], axis=1)

    return embed


def engine_embed(engine) -> Embed:
    """An engine (anything with ``run``) as an Embed, outputs flattened and joined like torch_embed."""

    def embed(batch: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(o).reshape(len(batch), -1) for o in engine.run(batch)], axis=1)

    return embed
