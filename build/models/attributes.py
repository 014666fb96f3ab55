"""The attribute model: one logit per attribute from the pipeline's aligned face chips.

Two backbones, recorded in the contract's ``backbone``:

* ``embedding`` (the default): the imported dlib ResNet's first stage (7x7/2
  conv, affine, ReLU, 3x3/2 max-pool: 32 maps of 35x35), frozen, summarised per
  channel by its mean and standard deviation, standardised, then one linear
  head per attribute. Those 64 numbers describe colour and fine texture (a
  print's washed-out contrast, colour cast and paper grain); deeper stages of
  the same network describe the person and the session more than the medium,
  and generalised worse to held-out subjects and sessions (README, liveness).
  The head is a regularised logistic regression fitted in one pass, so training
  takes seconds on a CPU and needs no GPU.
* ``small``: a small CNN trained end to end (the first version).

Input: the same (N, 3, 150, 150) RGB chips the embedding engine sees, normalised
the same way ((pixel - mean) / 256), so the door computes one chip per face and
feeds it to both engines. The small CNN works at full chip resolution only in
its first, cheap stride-2 layer and at 75x75 and below after that (about half a
millisecond a frame on one CPU core); the embedding backbone costs one 7x7
convolution.

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
from edge_build.models.dlib_resnet import Affine

ARCH = "attributes_v1"
CHIP_SIZE = 150
# The embedding contract's normalisation: one chip feeds both engines.
CHIP_MEAN = [122.782, 117.001, 104.298]
CHIP_STD = [256.0, 256.0, 256.0]
WIDTHS = (16, 32, 48, 64)


BACKBONES = ("embedding", "small")
STEM_CHANNELS = 32


def make_contract(attributes: list[str], thresholds: dict[str, float] | None = None,
                  backbone: str = "small") -> dict:
    """The contract for a model with one output per name in ``attributes``."""
    if backbone not in BACKBONES:
        raise ModelError(f"unknown attribute backbone {backbone!r}; available: {', '.join(BACKBONES)}")
    if not attributes:
        raise ModelError("an attribute model needs at least one attribute")
    if len(set(attributes)) != len(attributes):
        raise ModelError(f"attribute names repeat: {attributes}")
    thresholds = {name: float((thresholds or {}).get(name, 0.5)) for name in attributes}
    return {
        "model": ARCH,
        "name": "attributes",
        "backbone": backbone,
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


class StemStatistics(nn.Module):
    """The dlib ResNet's first stage, then per-channel mean and standard deviation."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, STEM_CHANNELS, 7, stride=2, padding=0)
        self.affine = Affine(STEM_CHANNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.nn.functional.max_pool2d(self.affine(self.conv(x)).relu(), 3, 2)
        mean = maps.mean(dim=(2, 3))
        spread = (maps - mean[:, :, None, None]).pow(2).mean(dim=(2, 3)).add(1e-6).sqrt()
        return torch.cat([mean, spread], dim=1)


class EmbeddingStemAttributes(nn.Module):
    """Frozen stem statistics -> standardised -> one linear logit per attribute."""

    def __init__(self, n_outputs: int):
        super().__init__()
        self.features = StemStatistics()
        width = 2 * STEM_CHANNELS
        # set from the training faces' features; they travel in the checkpoint
        self.register_buffer("feature_mean", torch.zeros(width))
        self.register_buffer("feature_scale", torch.ones(width))
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head((self.features(x) - self.feature_mean) / self.feature_scale)


def stem_from(embedding_net) -> StemStatistics:
    """StemStatistics holding a copy of a DlibResNet's first conv and affine, frozen."""
    stem = StemStatistics()
    stem.conv.load_state_dict(embedding_net.conv.state_dict())
    stem.affine.load_state_dict(embedding_net.affine.state_dict())
    for parameter in stem.parameters():
        parameter.requires_grad = False
    return stem.eval()


def build_module(contract: dict) -> nn.Module:
    width = len(contract["attributes"])
    if contract.get("backbone", "small") == "embedding":
        return EmbeddingStemAttributes(width)
    return AttributeNet(width)


def check_contract(contract: dict) -> None:
    if contract.get("model") != ARCH:
        raise ModelError(f"checkpoint holds model {contract.get('model')!r}, not {ARCH}")
    if contract.get("backbone", "small") not in BACKBONES:
        raise ModelError(f"attribute checkpoint has backbone {contract.get('backbone')!r}; this version knows "
                         f"{', '.join(BACKBONES)}")
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
    """(module in eval mode, contract) from a checkpoint written by save_checkpoint.
    Checkpoints from before the ``backbone`` field hold the small CNN."""
    state = read_checkpoint(path)
    state["contract"].setdefault("backbone", "small")
    module = build_module(state["contract"])
    try:
        module.load_state_dict(state["state_dict"])
    except RuntimeError as error:
        raise ModelError(f"{path}: weights do not fit {ARCH}: {error}") from error
    return module.eval(), state["contract"]
