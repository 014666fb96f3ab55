"""The attribute model: one logit per attribute from the pipeline's aligned face chips.

Two backbones, recorded in the contract's ``backbone``:

* ``embedding`` (the default): the imported dlib ResNet's own layers, frozen,
  summarised per channel by mean and standard deviation, standardised, then one
  linear head per attribute, each reading one *tap* (contract ``taps``):
  ``stem``, the first stage (7x7/2 conv, affine, ReLU, 3x3/2 max-pool: 32 maps
  of 35x35, 64 numbers of colour and fine texture: a print's washed-out
  contrast, colour cast and paper grain), for `live`; ``stage2``, after the
  first seven residual units (64 maps of 17x17, 128 numbers that describe the
  face), for every other attribute. stage2 is only computed when a head
  reads it. On NUAA, `live` on stage2 memorised capture sessions, and
  eyeglasses on the stem were at chance (README, liveness). Each head is a
  regularised logistic regression fitted in one pass: seconds on a CPU.
* ``small``: a small CNN trained end to end (the first version).

Input: the same (N, 3, 150, 150) RGB chips the embedding engine sees, normalised
the same way ((pixel - mean) / 256), so the door computes one chip per face and
feeds it to both engines. The small CNN works at full chip resolution only in
its first, cheap stride-2 layer and at 75x75 and below after that (about half a
millisecond a frame on one CPU core); the embedding backbone costs one 7x7
convolution for `live` alone, about ten times that with stage2.

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
from edge_build import checkpoints
from edge_build.models.dlib_resnet import Affine, DlibResNet

ARCH = "attributes_v1"
CHIP_SIZE = 150
# The embedding contract's normalisation: one chip feeds both engines.
CHIP_MEAN = [122.782, 117.001, 104.298]
CHIP_STD = [256.0, 256.0, 256.0]
WIDTHS = (16, 32, 48, 64)


BACKBONES = ("embedding", "small")
STEM_CHANNELS = 32
STAGE2_UNITS = 7  # dlib's 3 units at 32 channels, the downsampling one and 3 more at 64
TAP_WIDTHS = {"stem": 2 * STEM_CHANNELS, "stage2": 2 * 64}


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
        **({"taps": {name: tap_for(name) for name in attributes}} if backbone == "embedding" else {}),
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


def channel_statistics(maps: torch.Tensor) -> torch.Tensor:
    """(N, 2C): each channel's mean, then each channel's standard deviation."""
    mean = maps.mean(dim=(2, 3))
    spread = (maps - mean[:, :, None, None]).pow(2).mean(dim=(2, 3)).add(1e-6).sqrt()
    return torch.cat([mean, spread], dim=1)


class EmbeddingFeatures(nn.Module):
    """The dlib ResNet's first stage (``stem``) and, when ``deep``, its first seven
    residual units (``stage2``: 64 maps of 17x17), each summarised by channel_statistics.
    Output: stem's 64 numbers, then stage2's 128 when present."""

    def __init__(self, deep: bool):
        super().__init__()
        self.conv = nn.Conv2d(3, STEM_CHANNELS, 7, stride=2, padding=0)
        self.affine = Affine(STEM_CHANNELS)
        self.units = nn.Sequential(*list(DlibResNet().units)[:STAGE2_UNITS]) if deep else None

    @property
    def width(self) -> int:
        return TAP_WIDTHS["stem"] + (TAP_WIDTHS["stage2"] if self.units is not None else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.nn.functional.max_pool2d(self.affine(self.conv(x)).relu(), 3, 2)
        if self.units is None:
            return channel_statistics(maps)
        return torch.cat([channel_statistics(maps), channel_statistics(self.units(maps))], dim=1)


class EmbeddingAttributes(nn.Module):
    """Frozen embedding-network features -> standardised -> one linear logit per
    attribute; a head's weights outside its tap's columns are zero."""

    def __init__(self, n_outputs: int, deep: bool):
        super().__init__()
        self.features = EmbeddingFeatures(deep)
        width = self.features.width
        # set from the training faces' features; they travel in the checkpoint
        self.register_buffer("feature_mean", torch.zeros(width))
        self.register_buffer("feature_scale", torch.ones(width))
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head((self.features(x) - self.feature_mean) / self.feature_scale)


def tap_for(attribute: str) -> str:
    """`live` reads the stem (the medium: colour, contrast, grain); every other
    attribute reads stage2 (what the face looks like). Measured on NUAA: stage2
    let `live` memorise sessions, while the stem alone cannot see glasses."""
    return "stem" if attribute == "live" else "stage2"


def tap_columns(tap: str) -> slice:
    """Which columns of EmbeddingFeatures' output a tap occupies."""
    return slice(0, TAP_WIDTHS["stem"]) if tap == "stem" else slice(TAP_WIDTHS["stem"], TAP_WIDTHS["stem"] + TAP_WIDTHS["stage2"])


def needs_stage2(contract: dict) -> bool:
    return "stage2" in (contract.get("taps") or {}).values()


def features_from(embedding_net, deep: bool) -> EmbeddingFeatures:
    """EmbeddingFeatures holding copies of a DlibResNet's layers, frozen."""
    features = EmbeddingFeatures(deep)
    features.conv.load_state_dict(embedding_net.conv.state_dict())
    features.affine.load_state_dict(embedding_net.affine.state_dict())
    if deep:
        features.units.load_state_dict(nn.Sequential(*list(embedding_net.units)[:STAGE2_UNITS]).state_dict())
    for parameter in features.parameters():
        parameter.requires_grad = False
    return features.eval()


def build_module(contract: dict) -> nn.Module:
    width = len(contract["attributes"])
    if contract.get("backbone", "small") == "embedding":
        return EmbeddingAttributes(width, needs_stage2(contract))
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
    if contract.get("backbone") == "embedding":
        taps = contract.get("taps") or {}
        wrong = [name for name in names if taps.get(name) not in TAP_WIDTHS]
        if wrong:
            raise ModelError(f"attribute checkpoint names no known feature tap ({', '.join(TAP_WIDTHS)}) for "
                             f"{', '.join(wrong)}")
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
    state = checkpoints.read_checkpoint(path, ARCH)
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
