"""Shared pieces for the build-step tests: a tiny network with a contract, and
real fixture photos turned into network inputs."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

FACES = Path(__file__).resolve().parent / "fixtures" / "faces"

TINY_CONTRACT = {
    "model": "tiny_net",
    "input_name": "image",
    "output_name": "features",
    "size": [24, 24],
    "colour": "RGB",
    "layout": "NCHW",
    "mean": [127.5, 127.5, 127.5],
    "std": [128.0, 128.0, 128.0],
    "embedding_size": 16,
    "metric": "euclidean",
    "threshold": 0.5,
}


def tiny_net(seed: int = 0):
    """A small conv net with the layer kinds of the real models (conv, BN, ReLU, pooling, dense)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 16),
    )
    with torch.no_grad():  # non-trivial BN statistics so folding is exercised
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


def photo_inputs(folder: Path, size=(24, 24), mean=127.5, std=128.0):
    """faces_from_folder-style: every photo in ``folder`` resized to ``size``, one (1, 3, H, W) block each."""
    import cv2

    from edge_calibration.sets import list_images

    for path in list_images(folder):
        image = cv2.imread(str(path))
        if image is None:
            continue
        image = cv2.resize(image[:, :, ::-1], tuple(size), interpolation=cv2.INTER_AREA)
        yield ((image.astype(np.float32) - mean) / std).transpose(2, 0, 1)[None]


def photo_batch(paths, size=(24, 24)) -> np.ndarray:
    import cv2

    images = [cv2.resize(cv2.imread(str(p))[:, :, ::-1], tuple(size), interpolation=cv2.INTER_AREA) for p in paths]
    return ((np.stack(images).astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2).copy()


def dlib_chips(model_sources, paths) -> np.ndarray:
    """dlib's own aligned 150x150 chips of ``paths`` (test-only reference), normalised per the dlib contract."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(model_sources["dlib_shape5"]))
    mean = np.float32([122.782, 117.001, 104.298])
    chips = []
    for path in paths:
        image = dlib.load_rgb_image(str(path))
        found = detector(image, 1)
        if found:
            chip = dlib.get_face_chip(image, predictor(image, found[0]), 150, 0.25)
            chips.append(((chip.astype(np.float32) - mean) / 256.0).transpose(2, 0, 1))
    return np.stack(chips)


def link_photos(paths, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        (folder / Path(path).name).symlink_to(Path(path).resolve())
    return folder


def load_benchmark(name: str):
    """A script under benchmarks/ as a module (the folder is not a package)."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def constant_cnn(models: Path, logit: float) -> dict:
    """The cnn cue's network exported beside a liveness model in ``models``, made to say ``logit`` for
    every chip (last layer's weights zero, its bias the logit); returns the model's cnn entry."""
    import torch

    from edge.liveness import cnn
    from edge_build.training import liveness_cnn

    net = liveness_cnn.network()
    with torch.no_grad():
        net[-1].weight.zero_()
        net[-1].bias.fill_(logit)
    path = liveness_cnn.export(net.eval(), Path(models) / cnn.FILE_NAME)
    return liveness_cnn.model_entry(path, 0.0, validated={"print": {"apcer": 0.1}})


def cnn_only_liveness(models: Path, logit: float) -> Path:
    """A liveness model in ``models`` with the cnn cue alone, its network saying ``logit`` (>= 0: an attack)
    for every face; returns the model's path."""
    from edge.liveness.model import FORMAT, write_model

    Path(models).mkdir(parents=True, exist_ok=True)
    return write_model({"format": FORMAT, "window": 5, "cues": {"cnn": constant_cnn(models, logit)}},
                       Path(models) / "liveness.json")


def camera_clip(path: Path, stills, repeat: int = 3) -> Path:
    """An MJPG file at 10 fps showing each BGR still ``repeat`` times: a camera for `--camera file://...`."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, stills[0].shape[1::-1])
    for still in stills:
        for _ in range(repeat):
            writer.write(still)
    writer.release()
    return path
