"""Where calibration and gate samples come from, per kind of model.

* Embedding: aligned, normalised face chips from the product's own pipeline
  (``edge.pipeline.faces_from_folder`` when it exists, else an adapter over
  FacePipeline's public detect/align), so INT8 sees what the door sees.
* Detector nets: MTCNN's nets see image windows, not aligned chips. The samples
  here are plain resizes of the photos, normalised by the net's contract:
  P-Net gets the whole photo at 64x64 (faces then sit near its 12-pixel window
  at a typical pyramid level), R-/O-Net the central half of the photo at
  24x24 / 48x48 (the face crop a detection hands them). An approximation of
  the pyramid and box crops, stated as such in the manifest's method.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from edge import pipeline
from edge.exc import EdgeVerifyError, ImageError
from edge.vision.image import load_image
from edge_calibration.sets import list_images

PNET_SIDE = 64


def pipeline_faces_from_folder() -> Callable[[Path], Iterator[np.ndarray]]:
    """Aligned chips of the main face of every readable photo, made by the product's FacePipeline."""

    def faces_from_folder(folder: Path) -> Iterator[np.ndarray]:
        faces = pipeline.FacePipeline.load(flip=False)
        for path in list_images(folder):
            try:
                image = load_image(path)
            except ImageError:
                continue  # one bad photo must not end calibration; the face count shows the loss
            main = faces.main_face(image)
            if main is not None:
                yield main.chip

    return faces_from_folder


def window_samples(contract: dict) -> Callable[[Path], Iterator[np.ndarray]]:
    """A faces_from_folder-style source of detector-net inputs for ``contract``."""
    size = contract.get("size")
    side = (int(size[0]), int(size[1])) if size else (PNET_SIDE, PNET_SIDE)
    crop = bool(size)
    mean = np.asarray(contract["mean"], dtype=np.float32)
    std = np.asarray(contract["std"], dtype=np.float32)
    bgr = contract.get("colour", "RGB") == "BGR"

    def samples(folder: Path) -> Iterator[np.ndarray]:
        for path in list_images(folder):
            try:
                image = load_image(path)
            except EdgeVerifyError:
                continue
            if crop:
                h, w = image.shape[:2]
                image = image[h // 4: h - h // 4, w // 4: w - w // 4]
            image = cv2.resize(image, side, interpolation=cv2.INTER_AREA)
            if bgr:
                image = image[:, :, ::-1]
            chip = (image.astype(np.float32) - mean) / std
            yield chip.transpose(2, 0, 1)[None]

    return samples


SAMPLE_METHODS = {
    "pipeline": "aligned chips from the face pipeline (detect, align, normalise)",
    "windows": "photos resized to the net input (P-Net: whole photo 64x64; R/O-Net: central half)",
}
