"""Reading photos into the RGB arrays the pipeline expects, with clear errors."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edge.exc import ImageError

# A 12-megapixel phone photo is ~4000x3000; anything far beyond that is either a
# mistake or an attempt to exhaust memory on a small device.
MAX_PIXELS = 50_000_000
MIN_SIDE = 16


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3).

    Raises ImageError naming the file when it is missing, unreadable, not an
    image, absurdly large or too small to hold a face.
    """
    import cv2

    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise ImageError(f"{path}: cannot read ({error.strerror or error})") from error
    if data.size == 0:
        raise ImageError(f"{path}: empty file")
    check_declared_size(path, data)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"{path}: not a readable image (corrupt, truncated or not a JPEG/PNG/BMP/WebP file)")
    return to_rgb(image, source=str(path))


def check_declared_size(path: Path, data: np.ndarray) -> None:
    """Refuse decompression bombs before decoding them."""
    import cv2

    # IMREAD_REDUCED_GRAYSCALE_8 decodes at 1/8 scale, a cheap way to learn the size.
    small = cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if small is not None and small.shape[0] * small.shape[1] * 64 > MAX_PIXELS:
        raise ImageError(
            f"{path}: image is about {small.shape[1] * 8}x{small.shape[0] * 8} pixels, over the "
            f"{MAX_PIXELS // 1_000_000} megapixel limit; downscale it first"
        )


def to_rgb(image: np.ndarray, source: str = "frame") -> np.ndarray:
    """Convert an OpenCV BGR/BGRA/grey image to contiguous RGB uint8, validating it."""
    import cv2

    if image is None or not isinstance(image, np.ndarray) or image.size == 0:
        raise ImageError(f"{source}: empty image")
    if image.dtype != np.uint8:
        if not np.isfinite(image).all():
            raise ImageError(f"{source}: image holds NaN or infinite values")
        raise ImageError(f"{source}: expected 8-bit pixels, got {image.dtype}")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    elif image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    else:
        raise ImageError(f"{source}: unsupported image shape {image.shape}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ImageError(f"{source}: image is only {image.shape[1]}x{image.shape[0]} pixels, too small to hold a face")
    return np.ascontiguousarray(image)
