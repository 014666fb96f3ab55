"""A MobileFaceNet-size embedding network (Chen et al. 2018): ~1M parameters at width 1.

Stem conv 3x3/2 + depthwise 3x3, then inverted-residual bottlenecks (expansion 2,
depthwise-separable), a 1x1 conv to 512, a global depthwise conv over the last
feature map (GDConv: a learned, position-aware pooling), and a linear 1x1 to the
128-d embedding with batch norm. PReLU activations as in the paper.

Input contract: the pipeline's 150x150 RGB chip; the module resizes it to
``net_input`` (112 as in the paper; 64 for the 2-core CPU runs) with a fixed-size
bilinear ``F.interpolate``, so the ONNX graph is static and the runtime pipeline
is unchanged. ``width`` scales channel counts (0.5 for CPU runs).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edge_build.checkpoints import load_arch_checkpoint, resized_chip_contract, save_arch_checkpoint

ARCH = "mobilefacenet"
# (expansion, output channels, repeats, first stride), the paper's table 1
STAGES = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


def scaled(channels: int, width: float) -> int:
    return max(8, int(round(channels * width / 8)) * 8)


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.PReLU(cout))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(conv_bn(cin, hidden, 1), conv_bn(hidden, hidden, 3, stride, groups=hidden),
                                  conv_bn(hidden, cout, 1, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class MobileFaceNet(nn.Module):
    def __init__(self, width: float = 1.0, net_input: int = 112, embedding_size: int = 128):
        super().__init__()
        if net_input % 16:
            raise ValueError(f"net_input must be a multiple of 16, got {net_input}")
        self.config = {"width": float(width), "net_input": int(net_input), "embedding_size": int(embedding_size)}
        self.net_input = net_input
        self.embedding_size = embedding_size
        stem = scaled(64, width)
        layers = [conv_bn(3, stem, 3, 2), conv_bn(stem, stem, 3, groups=stem)]
        cin = stem
        for expansion, channels, repeats, stride in STAGES:
            cout = scaled(channels, width)
            for index in range(repeats):
                layers.append(Bottleneck(cin, cout, stride if index == 0 else 1, expansion))
                cin = cout
        last = scaled(512, width)
        side = net_input // 16
        layers += [conv_bn(cin, last, 1), conv_bn(last, last, side, groups=last, act=False)]
        self.features = nn.Sequential(*layers)
        self.features[-1][0].padding = (0, 0)  # GDConv covers the whole map: no padding
        self.project = nn.Sequential(nn.Conv2d(last, embedding_size, 1, bias=False), nn.BatchNorm2d(embedding_size))

    def forward(self, chip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(chip, size=(self.net_input, self.net_input), mode="bilinear", align_corners=False)
        x = self.project(self.features(x))
        return torch.flatten(x, 1)


def contract(net: MobileFaceNet, **extra) -> dict:
    return resized_chip_contract(ARCH, net.net_input, net.embedding_size, **extra)


def build(config: dict) -> MobileFaceNet:
    return MobileFaceNet(**config)


def save_checkpoint(path, net: MobileFaceNet, contract_: dict, **extra):
    return save_arch_checkpoint(path, ARCH, net, contract_, **extra)


def load_checkpoint(path) -> tuple[MobileFaceNet, dict]:
    """(module in eval mode, contract) from a checkpoint alone."""
    return load_arch_checkpoint(path, ARCH, build)
