"""Koch, Zemel & Salakhutdinov's Siamese network (ICML 2015 workshop), the seed's architecture.

One twin: conv 64@10x10 - maxpool - 128@7x7 - maxpool - 128@4x4 - maxpool - 256@4x4 -
fc 4096 with a sigmoid, on a 105x105 input (grey in the paper; RGB allowed). The
pair head is Koch's: sigmoid(w . |f1 - f2| + b), kept in the training loss
(edge_build.training.losses.L1Head), not in the engine: the engine exports the
twin's embedding.

``width`` scales every channel count and the fc size. At width 1 the fc is
9216x4096 (38M weights, 151 MB): fine on a GPU, too slow to train on 2 CPU cores,
where width 0.25 (16-32-32-64 channels, 2304x1024 fc, ~2.6M weights) is what we used.

Input contract: the pipeline's 150x150 RGB chip. The module resizes it to 105x105
itself (bilinear ``F.interpolate`` to a fixed size, so the ONNX graph stays static)
and converts to grey when ``colour_in`` is grey, so the runtime pipeline needs
no model-specific preprocessing.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edge_build.checkpoints import load_arch_checkpoint, resized_chip_contract, save_arch_checkpoint

ARCH = "koch_siamese"
NET_INPUT = 105
# ITU-R BT.601 luma on the normalised planes (mean/std are the same for all channels)
GREY = (0.299, 0.587, 0.114)


def scaled(channels: int, width: float) -> int:
    return max(4, int(round(channels * width)))


class KochNet(nn.Module):
    def __init__(self, width: float = 1.0, grey: bool = True, embedding_size: int | None = None):
        super().__init__()
        self.config = {"width": float(width), "grey": bool(grey), "embedding_size": embedding_size}
        c1, c2, c3, c4 = (scaled(c, width) for c in (64, 128, 128, 256))
        self.grey = grey
        self.features = nn.Sequential(
            nn.Conv2d(1 if grey else 3, c1, 10), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # 96 -> 48
            nn.Conv2d(c1, c2, 7), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # 42 -> 21
            nn.Conv2d(c2, c3, 4), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # 18 -> 9
            nn.Conv2d(c3, c4, 4), nn.ReLU(inplace=True),  # 6x6
        )
        self.embedding_size = embedding_size or scaled(4096, width)
        self.fc = nn.Linear(c4 * 6 * 6, self.embedding_size)

    def forward(self, chip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(chip, size=(NET_INPUT, NET_INPUT), mode="bilinear", align_corners=False, antialias=False)
        if self.grey:
            x = GREY[0] * x[:, 0:1] + GREY[1] * x[:, 1:2] + GREY[2] * x[:, 2:3]
        x = self.features(x)
        return torch.sigmoid(self.fc(torch.flatten(x, 1)))


def contract(net: KochNet, **extra) -> dict:
    return resized_chip_contract(ARCH, NET_INPUT, net.embedding_size, net_colour="grey" if net.grey else "RGB", **extra)


def build(config: dict) -> KochNet:
    return KochNet(**config)


def save_checkpoint(path, net: KochNet, contract_: dict, **extra):
    return save_arch_checkpoint(path, ARCH, net, contract_, **extra)


def load_checkpoint(path) -> tuple[KochNet, dict]:
    """(module in eval mode, contract) from a checkpoint alone."""
    return load_arch_checkpoint(path, ARCH, build)
