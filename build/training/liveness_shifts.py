"""Camera shifts: the same scene as another camera would give it.

A shift changes a whole RGB frame and moves the face's box and landmarks with
it. The named shifts (SHIFTS) are what the cross-dataset benchmark applies to
the test side; ``random_shift`` draws a mixture of the same kinds, with other
strengths, for training augmentation, so a texture head cannot lean on one
camera's resolution, tone curve, colour balance, focus or compression.

Resolutions are frame sizes of common kiosk cameras: a frame of another aspect
ratio is scaled to the target width and cut to its height around the face (a
1280x720 sensor framed on the same person).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SHIFTS = ("native", "240x180", "640x480", "1280x720", "warm", "cool", "low-contrast", "dark", "blur", "jpeg30")


@dataclass
class Shifted:
    image: np.ndarray  # RGB uint8
    box: np.ndarray  # (4,)
    landmarks: np.ndarray  # (5, 2)

    @property
    def inside(self) -> bool:
        """The face's landmarks still lie inside the frame (a crop can cut the face off)."""
        height, width = self.image.shape[:2]
        x, y = self.landmarks[:, 0], self.landmarks[:, 1]
        return bool(np.all((x >= 0) & (x < width) & (y >= 0) & (y < height)))


def resize(shot: Shifted, width: int, height: int) -> Shifted:
    """Scale to ``width``, then cut (or pad by edge repetition) to ``height`` rows around the face."""
    rows, cols = shot.image.shape[:2]
    factor = width / cols
    scaled_rows = max(int(round(rows * factor)), 1)
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    image = cv2.resize(shot.image, (width, scaled_rows), interpolation=interpolation)
    box, landmarks = shot.box * factor, shot.landmarks * factor
    if scaled_rows > height:
        centre = (box[1] + box[3]) / 2
        top = int(np.clip(round(centre - height / 2), 0, scaled_rows - height))
        image = image[top:top + height]
        box, landmarks = box - [0, top, 0, top], landmarks - [0, top]
    elif scaled_rows < height:
        top = (height - scaled_rows) // 2
        image = cv2.copyMakeBorder(image, top, height - scaled_rows - top, 0, 0, cv2.BORDER_REPLICATE)
        box, landmarks = box + [0, top, 0, top], landmarks + [0, top]
    return Shifted(np.ascontiguousarray(image), box, landmarks)


def tone(image: np.ndarray, gains=(1.0, 1.0, 1.0), gamma: float = 1.0, contrast: float = 1.0) -> np.ndarray:
    x = image.astype(np.float32) / 255.0
    x = x * np.asarray(gains, dtype=np.float32)
    x = np.clip(x, 0.0, 1.0) ** gamma
    mean = x.mean()
    x = (x - mean) * contrast + mean
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0 else image


def apply(shot: Shifted, name: str) -> Shifted:
    """One of SHIFTS."""
    image = shot.image
    if name == "native":
        return shot
    if "x" in name:
        width, height = (int(v) for v in name.split("x"))
        return resize(shot, width, height)
    if name == "warm":
        image = tone(image, gains=(1.15, 1.0, 0.8))
    elif name == "cool":
        image = tone(image, gains=(0.85, 1.0, 1.2))
    elif name == "low-contrast":
        image = tone(image, contrast=0.6)
    elif name == "dark":
        image = tone(image, gamma=1.8)
    elif name == "blur":
        image = blur(image, 1.2)
    elif name == "jpeg30":
        image = jpeg(image, 30)
    else:
        raise ValueError(f"unknown shift {name!r}; known: {', '.join(SHIFTS)}")
    return Shifted(image, shot.box, shot.landmarks)


def random_shift(shot: Shifted, rng: np.random.Generator) -> Shifted:
    """A random camera: resolution, colour balance, tone curve, contrast, focus, noise and compression."""
    rows, cols = shot.image.shape[:2]
    width = int(np.clip(cols * np.exp(rng.uniform(np.log(0.4), np.log(2.2))), 200, 1400))
    out = resize(shot, width, int(round(width * rows / cols)))
    image = tone(out.image, gains=rng.uniform(0.8, 1.2, 3), gamma=float(np.exp(rng.uniform(-0.5, 0.6))),
                 contrast=float(rng.uniform(0.55, 1.15)))
    if rng.random() < 0.5:
        image = blur(image, float(rng.uniform(0.3, 1.6)))
    if rng.random() < 0.5:
        noise = rng.normal(0.0, rng.uniform(1.0, 6.0), image.shape)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        image = jpeg(image, int(rng.integers(30, 96)))
    return Shifted(image, out.box, out.landmarks)
