"""``dir://folder``: still images read in name order, one per ``read()``.

Useful for installers checking a set of photos through the same pipeline as the
camera, and for tests. A file that cannot be read or decoded gives one ``error``
frame naming it, and the next read moves on to the next file; after the last
file every read returns ``end``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from edge.exc import SourceError
from edge.sources.base import Frame, FrameStatus, Pacer, Source, image_problem

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm"})


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (not hidden), sorted by name."""
    return sorted(
        path
        for path in folder.iterdir()
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()
    )


class StillSource(Source):
    def __init__(self, uri: str, folder: str, timeout: float, rate: Optional[float] = None):
        super().__init__(uri, timeout)
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise SourceError(f"no such folder: {self.folder} (from {uri!r})")
        self.paths = list_images(self.folder)
        if not self.paths:
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            raise SourceError(f"no images in {self.folder} (looked for {suffixes})")
        self.frame_count = len(self.paths)
        self._pacer = Pacer(rate)
        self._next_index = 0

    def _read(self) -> Frame:
        index = self._next_index
        if index >= len(self.paths):
            return self._frame(FrameStatus.END, index=index, detail=f"{self.uri}: no more images")
        self._pacer.wait(index)
        self._next_index += 1
        path = self.paths[index]
        image, problem = _load(path)
        if problem is not None:
            return self._frame(FrameStatus.ERROR, index=index, detail=f"{path.name}: {problem}")
        return self._frame(FrameStatus.OK, image, index)

    def _release(self) -> None:
        self.paths = []


def _load(path: Path):
    try:
        data = path.read_bytes()
    except OSError as error:
        return None, f"cannot read the file ({error.strerror or error})"
    if not data:
        return None, "the file is empty"
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as error:
        return None, f"not a decodable image ({error})"
    if image is None:
        return None, "not a decodable image (corrupt or not an image format OpenCV reads)"
    return image, image_problem(image)
