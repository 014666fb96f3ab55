"""Calibration sets: a folder of face photos -> batches of aligned face chips.

The photos go through the product's own detection and alignment (an injected
``faces_from_folder(folder)`` that yields (N, 3, H, W) float32 chips, normally
edge.pipeline's), so INT8 ranges are measured on exactly what the engine will
see at the door. The set is identified by a sha256 over its sorted relative
file names and their contents; the engine manifest records it.

Batches have exactly ``batch_size`` chips (TensorRT's calibrator needs the
profile's fixed shape); a last partial batch is dropped and counted.
"""
from __future__ import annotations

import hashlib
import os
import sys
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from edge.exc import CalibrationError, EdgeVerifyError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_MIN_FACES = 300
DEFAULT_BATCH = 16

FacesFromFolder = Callable[[Path], Iterable[np.ndarray]]


class SmallCalibrationSet(UserWarning):
    """Fewer faces than recommended: INT8 ranges may not cover real faces."""


def empty_set_message(folder=None, detail: str = "") -> str:
    where = f" in {folder}" if folder else ""
    lead = f"no usable calibration faces{where}"
    if detail:
        lead += f" ({detail})"
    return (
        f"{lead}. Likely causes: the folder is empty or is not the one you meant; "
        f"the images have another extension (accepted: {', '.join(EXTENSIONS)}); "
        "the files are unreadable or not images; no face was detected in them (too small, "
        "profile views, not photos of people); or the batch size is larger than the number of faces "
        "(lower --batch or add photos). See calibration/README.md for the default LFW set"
    )


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted by relative path."""
    folder = Path(folder)
    if not folder.exists():
        raise CalibrationError(f"calibration folder {folder} does not exist")
    if not folder.is_dir():
        raise CalibrationError(f"calibration set {folder} is not a folder")
    try:
        files = [p for p in folder.rglob("*") if p.is_file()]
    except OSError as error:
        raise CalibrationError(f"calibration folder {folder} cannot be read: {error}") from error
    images = sorted((p for p in files if p.suffix.lower() in EXTENSIONS), key=lambda p: p.relative_to(folder).as_posix())
    if not images:
        others = sorted({p.suffix.lower() or "(none)" for p in files})
        detail = f"{len(files)} files, extensions {', '.join(others)}" if files else "the folder is empty"
        raise CalibrationError(empty_set_message(folder, detail))
    return images


def hash_images(folder: str | os.PathLike, images: list[Path]) -> tuple[str, dict[str, str]]:
    """(sha256 of the whole set, {relative path: sha256 of the file})."""
    folder = Path(folder)
    whole = hashlib.sha256()
    digests = {}
    for path in images:
        name = path.relative_to(folder).as_posix()
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as error:
            raise CalibrationError(f"calibration image {path} cannot be read: {error}") from error
        digests[name] = digest
        whole.update(f"{name}\0{digest}\n".encode())
    return whole.hexdigest(), digests


class CalibrationSet:
    """Iterate it once for (batch_size, 3, H, W) float32 batches; then read
    ``faces``, ``batches`` and ``summary()``."""

    def __init__(self, folder: str | os.PathLike, faces_from_folder: FacesFromFolder,
                 batch_size: int = DEFAULT_BATCH, min_faces: int = DEFAULT_MIN_FACES, progress: bool = False):
        if batch_size < 1:
            raise CalibrationError(f"calibration batch size must be at least 1, not {batch_size}")
        self.folder = Path(folder)
        self.images = list_images(self.folder)
        self.sha256, self.file_digests = hash_images(self.folder, self.images)
        self.faces_from_folder = faces_from_folder
        self.batch_size = int(batch_size)
        self.min_faces = int(min_faces)
        self.faces = 0
        self.batches = 0
        self.consumed = False
        self.progress = progress

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.consumed:
            raise CalibrationError("a calibration set is read once; make a new one for a second pass")
        self.consumed = True
        pending: list[np.ndarray] = []
        held = 0
        for chips in self.chip_stream():
            pending.append(chips)
            held += len(chips)
            while held >= self.batch_size:
                stacked = np.concatenate(pending)
                batch, rest = stacked[: self.batch_size], stacked[self.batch_size:]
                pending, held = [rest], len(rest)
                self.batches += 1
                yield np.ascontiguousarray(batch, dtype=np.float32)
        self.finish()

    def chip_stream(self) -> Iterator[np.ndarray]:
        bar = progress_bar(self.progress, f"calibration faces ({len(self.images)} images)")
        try:
            for chips in self.faces_from_folder(self.folder):
                chips = np.asarray(chips, dtype=np.float32)
                if chips.ndim != 4:
                    raise CalibrationError(f"faces_from_folder yielded shape {chips.shape}; expected (N, C, H, W) chips")
                self.faces += len(chips)
                bar.update(len(chips))
                if len(chips):
                    yield chips
        except CalibrationError:
            raise
        except EdgeVerifyError as error:  # an unreadable image, a missing detector engine, ...
            raise CalibrationError(f"{error}; {empty_set_message(self.folder)}") from error
        finally:
            bar.close()

    def finish(self) -> None:
        if self.faces == 0:
            raise CalibrationError(empty_set_message(self.folder, f"{len(self.images)} images, no face found in any"))
        if self.faces < self.batch_size:
            raise CalibrationError(
                f"calibration set {self.folder} gave {self.faces} faces, fewer than one batch of {self.batch_size}; "
                "add photos or lower --batch"
            )
        if self.faces < self.min_faces:
            warnings.warn(
                f"calibration set {self.folder} has {self.faces} faces; at least {self.min_faces} are recommended, "
                "or INT8 ranges may miss real faces (the accuracy gate will tell)",
                SmallCalibrationSet, stacklevel=2,
            )

    @property
    def dropped(self) -> int:
        """Faces left over after the last full batch."""
        return self.faces - self.batches * self.batch_size

    def summary(self, method: str) -> dict:
        """The manifest's ``calibration`` block."""
        return {"sha256": self.sha256, "images": len(self.images), "faces": self.faces,
                "faces_used": self.batches * self.batch_size, "batch_size": self.batch_size, "method": method}


def calibration_set(folder: str | os.PathLike, faces_from_folder: FacesFromFolder, min_faces: int = DEFAULT_MIN_FACES,
                    batch_size: int = DEFAULT_BATCH, progress: bool = False) -> CalibrationSet:
    """A calibration set over ``folder``; fails at once when it holds no images."""
    return CalibrationSet(folder, faces_from_folder, batch_size=batch_size, min_faces=min_faces, progress=progress)


class _NoBar:
    def update(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(enabled: bool, label: str):
    """A tqdm bar on stderr counting faces, or a silent stand-in."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(desc=label, unit="face", file=sys.stderr, leave=False)


def check_disjoint(calibration: CalibrationSet, held_out_folder: str | os.PathLike) -> None:
    """Held-out faces must never be calibration faces: refuse any shared file (by content)."""
    held_images = list_images(held_out_folder)
    _, held = hash_images(held_out_folder, held_images)
    shared = set(held.values()) & set(calibration.file_digests.values())
    if shared:
        raise CalibrationError(
            f"{len(shared)} held-out images in {held_out_folder} are also in the calibration set {calibration.folder}; "
            "the accuracy gate must use faces the calibration never saw"
        )


def held_out(relative_name: str, fraction: float) -> bool:
    """Deterministic, content-independent choice: the same file is always on the same side."""
    digest = hashlib.sha256(relative_name.encode()).digest()
    return int.from_bytes(digest[:4], "big") < fraction * 2**32


def split_folder(folder: str | os.PathLike, into: str | os.PathLike, fraction: float = 0.1) -> tuple[Path, Path]:
    """Split a photo folder into calibration and held-out folders of symlinks.

    Used when no separate held-out folder is given: about ``fraction`` of the
    files (chosen by a hash of their relative path) are held out for the
    accuracy gate and never calibrated on.
    """
    if not 0 < fraction < 1:
        raise CalibrationError(f"held-out fraction must be between 0 and 1, not {fraction}")
    folder, into = Path(folder), Path(into)
    calibrate, hold = into / "calibration", into / "held-out"
    for path in list_images(folder):
        name = path.relative_to(folder).as_posix()
        link = (hold if held_out(name, fraction) else calibrate) / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(path.resolve(), link)
    for side in (calibrate, hold):
        side.mkdir(parents=True, exist_ok=True)
    return calibrate, hold
