"""The attribute model: a small multi-label CNN on the pipeline's aligned face chips.

Input: the same (N, 3, 150, 150) RGB chips the embedding engine sees, normalised
the same way ((pixel - mean) / 256), so the door computes one chip per face and
feeds it to both engines. The net works at full chip resolution only in its
first, cheap stride-2 layer (print attacks show up as fine texture: paper grain,
halftone dots, blur) and at 75x75 and below after that, which keeps a frame at
about half a millisecond on one CPU core.

Output: one *logit* per attribute, (N, K). The sigmoid is applied by the caller
(edge.liveness), not inside the graph: a logit vector keeps the build step's
cosine gate meaningful, whereas sigmoid outputs are all positive and agree in
direction even when the engine is wrong.

The contract uses the build step's single-output spelling, where
``embedding_size`` is the width of the output vector (here: the number of
attributes) and also tells the build step to calibrate and gate on pipeline
chips rather than detector windows.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from edge.exc import ModelError

ARCH = "attributes_v1"
CHIP_SIZE = 150
# The embedding contract's normalisation: one chip feeds both engines.
CHIP_MEAN = [122.782, 117.001, 104.298]
CHIP_STD = [256.0, 256.0, 256.0]
WIDTHS = (16, 32, 48, 64)


def make_contract(attributes: list[str], thresholds: dict[str, float] | None = None) -> dict:
    """The contract for a model with one output per name in ``attributes``."""
    if not attributes:
        raise ModelError("an attribute model needs at least one attribute")
    if len(set(attributes)) != len(attributes):
        raise ModelError(f"attribute names repeat: {attributes}")
    thresholds = {name: float((thresholds or {}).get(name, 0.5)) for name in attributes}
    return {
        "model": ARCH,
        "name": "attributes",
        "input_name": "chip",
        "output_name": "logits",
        "size": [CHIP_SIZE, CHIP_SIZE],
        "colour": "RGB",
        "layout": "NCHW",
        "mean": list(CHIP_MEAN),
        "std": list(CHIP_STD),
        "chip_padding": 0.25,
        "embedding_size": len(attributes),  # output width (one logit per attribute)
        "output": "logits",  # probability = sigmoid(logit); thresholds apply to probabilities
        "attributes": list(attributes),
        "thresholds": thresholds,
    }


def block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class AttributeNet(nn.Module):
    """150 -> 75 -> 38 -> 19 -> 10 feature maps, global average pool, one linear head."""

    def __init__(self, n_outputs: int):
        super().__init__()
        w1, w2, w3, w4 = WIDTHS
        self.features = nn.Sequential(block(3, w1, 2), block(w1, w2, 2), block(w2, w2, 1), block(w2, w3, 2),
                                      block(w3, w4, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(w4, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))


def build_module(contract: dict) -> AttributeNet:
    return AttributeNet(len(contract["attributes"]))


def check_contract(contract: dict) -> None:
    if contract.get("model") != ARCH:
        raise ModelError(f"checkpoint holds model {contract.get('model')!r}, not {ARCH}")
    names = contract.get("attributes") or []
    if contract.get("embedding_size") != len(names) or not names:
        raise ModelError(f"attribute checkpoint lists {len(names)} attributes but {contract.get('embedding_size')} outputs")
    if list(contract.get("size", [])) != [CHIP_SIZE, CHIP_SIZE]:
        raise ModelError(f"attribute checkpoint input size {contract.get('size')} does not fit {ARCH} ({CHIP_SIZE})")
    missing = [name for name in names if name not in contract.get("thresholds", {})]
    if missing:
        raise ModelError(f"attribute checkpoint has no threshold for {', '.join(missing)}")


def save_checkpoint(path: str | Path, module: nn.Module, contract: dict, extra: dict | None = None) -> Path:
    """Write weights + contract (+ training state in ``extra``) atomically."""
    check_contract(contract)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"arch": ARCH, "contract": copy.deepcopy(contract), "state_dict": module.state_dict()}
    state.update(extra or {})
    scratch = path.with_name(path.name + ".tmp")
    torch.save(state, scratch)
    scratch.replace(path)  # a crash mid-save never leaves a half-written checkpoint
    return path


def read_checkpoint(path: str | Path) -> dict:
    from edge_build.checkpoints import read_checkpoint

    state = read_checkpoint(path, ARCH)
    check_contract(state["contract"])
    return state


def load_checkpoint(path: str | Path) -> tuple[AttributeNet, dict]:
    """(module in eval mode, contract) from a checkpoint written by save_checkpoint."""
    state = read_checkpoint(path)
    module = build_module(state["contract"])
    try:
        module.load_state_dict(state["state_dict"])
    except RuntimeError as error:
        raise ModelError(f"{path}: weights do not fit {ARCH}: {error}") from error
    return module.eval(), state["contract"]
