"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) in PyTorch.

Input: NCHW float32 chips of 150x150 RGB, already normalised as
(pixel - mean) / 256; output: the (N, 128) descriptor exactly as dlib returns it
(not L2-normalised; dlib compares raw descriptors with euclidean distance 0.6).

The architecture comes from ``edge_build.dlib_format`` (the same plan the reader
checks the file against), so the weights can only land in the layer that wrote
them. Every shape is fixed by the 150x150 input, so the two zero-padded
additions of dlib's ``add_prev`` are static ``F.pad`` calls: no shape
arithmetic or branching happens at run time, which keeps the ONNX graph plain
for ONNX Runtime and TensorRT.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge.exc import ModelError
from edge_build.checkpoints import read_checkpoint
from edge_build.dlib_format import (EMBEDDING_SIZE, INPUT_SIZE, RESIDUAL_UNITS,
                                    STEM_FILTERS, DlibNet, read_face_resnet)

ARCH = "dlib_resnet_v1"

CONTRACT = {
    "model": ARCH,
    "input_name": "chip",
    "output_name": "embedding",
    "size": [INPUT_SIZE, INPUT_SIZE],
    "colour": "RGB",
    "layout": "NCHW",
    # shortest decimals that round-trip to the float32 means stored in the .dat
    # (load_dlib_resnet checks this against the file)
    "mean": [122.782, 117.001, 104.298],
    "std": [256.0, 256.0, 256.0],
    "chip_padding": 0.25,
    "embedding_size": EMBEDDING_SIZE,
    "metric": "euclidean",
    "threshold": 0.6,  # dlib's loss_metric distance threshold, also checked against the file
}


class Affine(nn.Module):
    """dlib's affine layer in per-channel mode: y = gamma * x + beta."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


def pad_amounts(have: tuple[int, int, int], want: tuple[int, int, int]) -> tuple[int, ...]:
    """F.pad amounts that grow a CxHxW tensor to ``want`` at the end of each axis.

    dlib's add_prev keeps the smaller input at channel 0 / row 0 / col 0 and
    treats the missing entries as zeros.
    """
    (c, h, w), (wc, wh, ww) = have, want
    return (0, ww - w, 0, wh - h, 0, wc - c)


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return 1 + (size + 2 * padding - kernel) // stride


class ResidualUnit(nn.Module):
    """dlib's ``ares`` (down=False) or ``ares_down`` (down=True) for a fixed input size."""

    def __init__(self, cin: int, cout: int, down: bool, size: int):
        super().__init__()
        stride, padding = (2, 0) if down else (1, 1)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=padding)
        self.affine1 = Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1)
        self.affine2 = Affine(cout)
        self.down = down
        side = conv_out(size, 3, stride, padding)
        block = (cout, side, side)
        short = (cin, size // 2, size // 2) if down else (cin, size, size)
        self.out_shape = tuple(max(a, b) for a, b in zip(block, short))
        self.block_pad = pad_amounts(block, self.out_shape)
        self.short_pad = pad_amounts(short, self.out_shape)

    @property
    def out_size(self) -> int:
        return self.out_shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine1(self.conv1(x)).relu()
        y = self.affine2(self.conv2(y))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return (padded(y, self.block_pad) + padded(shortcut, self.short_pad)).relu()


def padded(x: torch.Tensor, amounts: tuple[int, ...]) -> torch.Tensor:
    # decided at construction time, so this branch is static for export
    return F.pad(x, amounts) if any(amounts) else x


class DlibResNet(nn.Module):
    """(N, 3, 150, 150) normalised RGB -> (N, 128) dlib face descriptor."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, STEM_FILTERS, 7, stride=2, padding=0)
        self.affine = Affine(STEM_FILTERS)
        size = conv_out(conv_out(INPUT_SIZE, 7, 2, 0), 3, 2, 0)
        units, channels = [], STEM_FILTERS
        for filters, down in RESIDUAL_UNITS:
            units.append(ResidualUnit(channels, filters, down, size))
            channels, size = filters, units[-1].out_size
        self.units = nn.Sequential(*units)
        self.fc = nn.Linear(channels, EMBEDDING_SIZE, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.affine(self.conv(x)).relu(), 3, 2)
        x = self.units(x)
        return self.fc(x.mean(dim=(2, 3)))

    def parametric_layers(self) -> list[nn.Module]:
        """Conv, Affine and Linear modules in dlib's forward order."""
        layers: list[nn.Module] = [self.conv, self.affine]
        for unit in self.units:
            layers += [unit.conv1, unit.affine1, unit.conv2, unit.affine2]
        return layers + [self.fc]


# ---------------------------------------------------------------- loading

def copy_param(target: torch.Tensor, array: np.ndarray, what: str) -> None:
    if tuple(target.shape) != array.shape:
        raise ModelError(f"{what}: file has shape {array.shape}, module expects {tuple(target.shape)}")
    with torch.no_grad():
        target.copy_(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)))


def copy_record(module: nn.Module, record, index: int) -> None:
    what = f"layer {index} ({record.tag} at offset {record.offset})"
    if record.kind == "con" and isinstance(module, nn.Conv2d):
        copy_param(module.weight, record.params["weight"], what)
        copy_param(module.bias, record.params["bias"], what)
    elif record.kind == "affine" and isinstance(module, Affine):
        copy_param(module.gamma, record.params["gamma"], what)
        copy_param(module.beta, record.params["beta"], what)
    elif record.kind == "fc" and isinstance(module, nn.Linear) and "bias" not in record.params:
        copy_param(module.weight, record.params["weight"].T, what)  # dlib stores (in, out)
    else:
        raise ModelError(f"{what} does not fit the module's {type(module).__name__}")


def check_contract(net: DlibNet) -> None:
    """The file's own input means, size and threshold must be the contract's."""
    pairs = (("mean", net.input_mean, CONTRACT["mean"]),
             ("size", net.input_size, CONTRACT["size"]),
             ("threshold", [net.loss_threshold], [CONTRACT["threshold"]]))
    for name, got, wanted in pairs:
        if not np.array_equal(np.float32(got), np.float32(wanted)):
            raise ModelError(f"dlib model {name} {list(got)} differs from the contract's {wanted}")


def from_dlib_net(net: DlibNet) -> DlibResNet:
    check_contract(net)
    module = DlibResNet()
    records = [r for r in net.layers if r.params]
    layers = module.parametric_layers()
    if len(records) != len(layers):
        raise ModelError(f"dlib model has {len(records)} weighted layers, module has {len(layers)}")
    for index, (layer, record) in enumerate(zip(layers, records)):
        copy_record(layer, record, index)
    return module.eval()


def load_dlib_resnet(dat_path: str | Path) -> DlibResNet:
    """Read dlib's .dat and return the equivalent module in eval mode."""
    return from_dlib_net(read_face_resnet(dat_path))


# ------------------------------------------------------------- checkpoints

def checkpoint(module: DlibResNet) -> dict:
    """What a build stage needs to rebuild the module: arch id, contract, weights."""
    return {"arch": ARCH, "contract": copy.deepcopy(CONTRACT),
            "state_dict": {k: v.detach().clone() for k, v in module.state_dict().items()}}


def save_checkpoint(path: str | Path, module: DlibResNet) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint(module), path)
    return path


def load_checkpoint(path: str | Path) -> tuple[DlibResNet, dict]:
    """Rebuild the module from a checkpoint alone; returns (module in eval mode, contract)."""
    data = read_checkpoint(path, ARCH)
    contract = data.get("contract")
    if not isinstance(contract, dict) or contract.get("model") != ARCH:
        raise ModelError(f"checkpoint {path} has no {ARCH} contract")
    for key in ("size", "embedding_size"):  # the only values the fixed graph can honour
        if contract.get(key) != CONTRACT[key]:
            raise ModelError(f"checkpoint {path} contract {key} {contract.get(key)!r} "
                             f"does not fit {ARCH} ({CONTRACT[key]!r})")
    module = DlibResNet()
    try:
        module.load_state_dict(data["state_dict"], strict=True)
    except (KeyError, RuntimeError) as error:
        raise ModelError(f"checkpoint {path} weights do not fit {ARCH}: {error}") from error
    return module.eval(), contract
