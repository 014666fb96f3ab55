"""MTCNN's three stages (P-, R-, O-Net) as PyTorch modules, for export to ONNX.

The weights are the state dicts shipped in the facenet-pytorch 2.6.0 wheel (MIT),
converted there from the original Caffe MTCNN. What those weights expect, read
from that package's reference pipeline, then checked on real faces (100 LFW
photos through edge.vision.mtcnn; tests/test_detect.py keeps checking):

* input: float32 NCHW, RGB channel order, ``(pixel - 127.5) / 128``
  (fed BGR, 2 of the 100 faces are lost and the eyes land 50% further from dlib's);
* images in ordinary (row, column) orientation (fed transposed, 80 of 100 faces
  are lost). The original MATLAB/Caffe MTCNN ran on transposed images; the only
  trace of that left in these weights is the flatten order in front of the first
  dense layer of R-/O-Net, which walks (width, height, channel): the permute in
  ``_flatten``;
* PNet is fully convolutional: each output cell sees a 12x12 window, stride 2;
* ``prob`` is a softmax over (background, face): channel 1 is the face score;
* ``reg`` holds (dx1, dy1, dx2, dy2), box-edge offsets in units of box width/height;
* ``landmarks`` (O-Net) holds x1..x5 then y1..y5 as fractions of the box,
  in the order: image-left eye, image-right eye, nose tip, image-left mouth
  corner, image-right mouth corner.

Our output order is fixed as (prob, reg[, landmarks]) — the reference modules
return (reg, prob) — so that every engine backend and the runtime agree on it
through CONTRACT and the engine manifests, not through tensor shapes.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
from torch import nn

from edge.exc import ModelError

ARCH = "mtcnn"
NETS = ("pnet", "rnet", "onet")

PREPROCESS = {"colour": "RGB", "layout": "NCHW", "mean": [127.5, 127.5, 127.5], "std": [128.0, 128.0, 128.0]}

# One entry per net. size None = any spatial size (PNet slides over the pyramid).
# Shapes use -1 for dynamic axes, as the engine manifests do.
CONTRACT = {
    "pnet": {
        "name": "detector-pnet",
        "model": "mtcnn_pnet",
        "input": "image",
        "input_shape": [-1, 3, -1, -1],
        "size": None,
        "outputs": ["prob", "reg"],
        "output_shapes": [[-1, 2, -1, -1], [-1, 4, -1, -1]],
        "window": 12,
        "stride": 2,
        **PREPROCESS,
    },
    "rnet": {
        "name": "detector-rnet",
        "model": "mtcnn_rnet",
        "input": "image",
        "input_shape": [-1, 3, 24, 24],
        "size": [24, 24],
        "outputs": ["prob", "reg"],
        "output_shapes": [[-1, 2], [-1, 4]],
        **PREPROCESS,
    },
    "onet": {
        "name": "detector-onet",
        "model": "mtcnn_onet",
        "input": "image",
        "input_shape": [-1, 3, 48, 48],
        "size": [48, 48],
        "outputs": ["prob", "reg", "landmarks"],
        "output_shapes": [[-1, 2], [-1, 4], [-1, 10]],
        **PREPROCESS,
    },
}


class PReLU(nn.Module):
    """Per-channel PReLU, same parameter name (``weight``) as nn.PReLU, computed as
    relu(x) + slope * min(x, 0) — exactly PReLU, bit for bit. Why not nn.PReLU:
    ONNX Runtime's PRelu kernel broadcasts the slopes slowly (it was 40% of RNet's
    CPU time); Relu, Min, Mul and Add are vectorised kernels there, and TensorRT
    fuses them into one pointwise layer."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), 0.25))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        slope = self.weight.view((1, -1) + (1,) * (x.dim() - 2))
        return torch.relu(x) + slope * torch.clamp(x, max=0.0)


def _flatten(x: torch.Tensor) -> torch.Tensor:
    # The dense weights were laid out for a (width, height, channel) walk; see module docstring.
    return x.permute(0, 3, 2, 1).flatten(1)


class PNet(nn.Module):
    """Proposal net: fully convolutional, 12x12 window, stride 2. Returns (prob, reg)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(image)))
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return torch.softmax(self.conv4_1(x), dim=1), self.conv4_2(x)


class RNet(nn.Module):
    """Refinement net on 24x24 crops. Returns (prob, reg)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(image)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(_flatten(x)))
        return torch.softmax(self.dense5_1(x), dim=1), self.dense5_2(x)


class ONet(nn.Module):
    """Output net on 48x48 crops. Returns (prob, reg, landmarks)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(image)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(_flatten(x)))
        return torch.softmax(self.dense6_1(x), dim=1), self.dense6_2(x), self.dense6_3(x)


MODULES = {"pnet": PNet, "rnet": RNet, "onet": ONet}


def build_net(key: str, state_dict: dict) -> nn.Module:
    """A net in eval mode with ``state_dict`` loaded strictly (a missing or extra key is an error)."""
    if key not in MODULES:
        raise ValueError(f"unknown MTCNN net {key!r}; expected one of {', '.join(NETS)}")
    net = MODULES[key]()
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:  # torch reports missing/unexpected keys and shape mismatches this way
        raise ModelError(f"these weights do not fit MTCNN's {key}: {' '.join(str(error).split())}") from error
    return net.eval()


def load_mtcnn(pnet_path: str | os.PathLike, rnet_path: str | os.PathLike, onet_path: str | os.PathLike) -> dict[str, nn.Module]:
    """The three nets from the original state-dict files, as {"pnet", "rnet", "onet"}."""
    paths = {"pnet": pnet_path, "rnet": rnet_path, "onet": onet_path}
    return {key: build_net(key, read_weights(path)) for key, path in paths.items()}


def read_weights(path: str | os.PathLike):
    """torch.load with weights_only (a weights file must not be able to run code)."""
    if not Path(path).is_file():
        raise ModelError(f"MTCNN weights {path} not found; run `edge-verify models fetch`")
    try:
        return torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError) as error:
        raise ModelError(f"{path} is not a readable torch weights file ({error})") from error


def save_checkpoint(path: str | os.PathLike, nets: dict[str, nn.Module]) -> None:
    """Store the three nets with their contracts, so a build never has to re-derive them."""
    payload = {
        "arch": ARCH,
        "contracts": copy.deepcopy(CONTRACT),
        "state_dicts": {key: {name: value.detach().cpu() for name, value in nets[key].state_dict().items()} for key in NETS},
    }
    torch.save(payload, os.fspath(path))


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, nn.Module], dict]:
    """Read a checkpoint written by save_checkpoint: (nets, contracts)."""
    payload = read_weights(path)
    if not isinstance(payload, dict) or payload.get("arch") != ARCH:
        found = payload.get("arch") if isinstance(payload, dict) else type(payload).__name__
        raise ModelError(f"{path}: not an MTCNN checkpoint (arch {found!r})")
    missing = [key for key in NETS if key not in payload.get("state_dicts", {})]
    if missing:
        raise ModelError(f"{path}: MTCNN checkpoint lacks {', '.join(missing)}")
    nets = {key: build_net(key, payload["state_dicts"][key]) for key in NETS}
    return nets, payload["contracts"]
