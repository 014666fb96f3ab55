"""Reading photos into the RGB arrays the pipeline expects, with clear errors."""
from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import numpy as np

from edge.exc import ImageError

# A 12-megapixel phone photo is ~4000x3000; anything far beyond that is either a
# mistake or an attempt to exhaust memory on a small device.
MAX_PIXELS = 50_000_000
MIN_SIDE = 16
# A photo file larger than this is not a photo of a face at a kiosk.
MAX_FILE_BYTES = 64 * 1024 * 1024
# Enough of the file to find the size in any of the headers read here (JPEG: after EXIF/ICC segments).
HEADER_BYTES = 256 * 1024


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3).

    Raises ImageError naming the file when it is missing, not a regular file (a
    FIFO or a device would block or never end), unreadable, not an image, absurdly
    large or too small to hold a face. The size is taken from the file's header
    (PNG, JPEG, WebP, BMP) before anything is decoded.
    """
    path = Path(path)
    return decode_image(read_regular_file(path), path)


def decode_image(data, source) -> np.ndarray:
    """An encoded image (bytes, e.g. a photo uploaded to the console) as RGB uint8, with the checks of
    :func:`load_image`; ``source`` names it in the errors."""
    import cv2

    data = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if data.size == 0:
        raise ImageError(f"{source}: empty file")
    check_file_size(source, data.size)
    check_declared_size(source, data)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"{source}: not a readable image (corrupt, truncated or not a JPEG/PNG/BMP/WebP file)")
    return to_rgb(image, source=str(source))


def read_regular_file(path: Path) -> np.ndarray:
    """The bytes of a regular file, at most MAX_FILE_BYTES. Opened without blocking and checked on
    the open descriptor, so a FIFO swapped in after a check cannot hang the caller."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except OSError as error:
        raise ImageError(f"{path}: cannot read ({error.strerror or error})") from error
    try:
        info = os.fstat(descriptor)
        if stat.S_ISDIR(info.st_mode):
            raise ImageError(f"{path}: is a folder, not an image")
        if not stat.S_ISREG(info.st_mode):
            raise ImageError(f"{path}: is not a regular file (a pipe, socket or device); give an image file")
        check_file_size(path, info.st_size)
        chunks, left = [], info.st_size
        while left > 0:
            chunk = os.read(descriptor, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as error:
        raise ImageError(f"{path}: cannot read ({error.strerror or error})") from error
    finally:
        os.close(descriptor)
    return np.frombuffer(b"".join(chunks), dtype=np.uint8)


def check_file_size(source, size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise ImageError(f"{source}: {size // (1024 * 1024)} MB is too large for a photo "
                         f"(limit {MAX_FILE_BYTES // (1024 * 1024)} MB)")


def check_declared_size(path: Path, data: np.ndarray) -> None:
    """Refuse decompression bombs before decoding them: the size the header declares."""
    size = declared_size(data[:HEADER_BYTES].tobytes())
    if size is None:
        size = reduced_size(data)  # another format: OpenCV's 1/8-scale decode tells
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise ImageError(f"{path}: image is about {size[0]}x{size[1]} pixels, over the "
                         f"{MAX_PIXELS // 1_000_000} megapixel limit; downscale it first")


def reduced_size(data: np.ndarray) -> tuple[int, int] | None:
    import cv2

    # IMREAD_REDUCED_GRAYSCALE_8 decodes at 1/8 scale: cheap for JPEG, a full decode for others.
    small = cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_8)
    return None if small is None else (small.shape[1] * 8, small.shape[0] * 8)


def declared_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, WebP or BMP header; None for other or unreadable headers."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(head)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_size(head)
    if head.startswith(b"BM") and len(head) >= 26:
        header_size = struct.unpack("<I", head[14:18])[0]
        if header_size == 12:
            return struct.unpack("<HH", head[18:22])
        width, height = struct.unpack("<ii", head[18:26])
        return abs(width), abs(height)
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    """From the first start-of-frame marker (SOF0-15 but DHT, JPG and DAC)."""
    offset = 2
    while offset + 9 <= len(head):
        if head[offset] != 0xFF:
            return None
        marker = head[offset + 1]
        if marker == 0xFF:
            offset += 1  # fill byte
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            offset += 2
            continue
        length = struct.unpack(">H", head[offset + 2:offset + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", head[offset + 5:offset + 9])
            return width, height
        offset += 2 + length
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and head[20:21] == b"\x2f":
        bits = struct.unpack("<I", head[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


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
