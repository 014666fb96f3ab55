"""Training data: a folder per person -> aligned face chips, plus seeded samplers.

Chips come from the product's own pipeline (MTCNN, primary face, the fitted
5-point alignment at 150x150), so a model trains on exactly what the kiosk will
feed it. Detection is the slow part (~20 ms an image on one core), so chips are
cached once in an .npz keyed by a hash of the file list (relative paths and
sizes): adding or removing a photo makes a new cache instead of a stale one.

Chips are stored as uint8 RGB (N, 3, S, S) at ``size`` (112 by default, which
keeps 13k LFW chips under 0.5 GB); models resize whatever they get to their
own input size inside the network (see edge_build.models.koch), so training
on 112 chips and running on the pipeline's 150 chips go through the same
layer.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np
from tqdm import tqdm

from edge.exc import DatasetError, ImageError
from edge.pipeline import FacePipeline
from edge.vision.image import load_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
CACHE_SIZE = 112


@dataclass
class ChipSet:
    chips: np.ndarray  # (N, 3, S, S) uint8 RGB
    labels: np.ndarray  # (N,) int64 person index
    names: list[str]  # person index -> folder name
    paths: list[str]  # relative image path per chip
    dropped: list[str]  # images where no face was found

    def __len__(self) -> int:
        return len(self.chips)

    def subset(self, keep: np.ndarray) -> "ChipSet":
        """The chips at the integer indices ``keep``."""
        keep = np.asarray(keep, dtype=np.int64)
        return ChipSet(self.chips[keep], self.labels[keep], self.names, [self.paths[i] for i in keep], self.dropped)


def list_people(root: str | Path) -> dict[str, list[Path]]:
    """{person: [image paths]} from ROOT/<person>/<image>, sorted for reproducibility."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"training data folder {root} does not exist (expected one sub-folder of photos per person)")
    people = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            people[folder.name] = images
    if len(people) < 2:
        raise DatasetError(f"{root} has {len(people)} person folder(s) with photos; training needs at least 2 people")
    return people


def file_list_key(paths: Iterable[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{Path(path).relative_to(root).as_posix()}\t{Path(path).stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def pipeline_chipper(pipeline, size: int = CACHE_SIZE) -> Callable[[Path], np.ndarray | None]:
    """image path -> uint8 (3, size, size) chip of the primary face, or None when no face."""
    mean = pipeline.mean.reshape(3, 1, 1)
    std = pipeline.std.reshape(3, 1, 1)

    def chip(path: Path):
        try:
            image = load_image(path)
        except ImageError:
            return None  # an unreadable photo is dropped like a photo without a face, and listed
        main = pipeline.main_face(image)
        if main is None:
            return None
        normalised = main.chip[0]
        rgb = np.clip(np.rint(normalised * std + mean), 0, 255).astype(np.uint8).transpose(1, 2, 0)
        if rgb.shape[0] != size:
            rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
        return rgb.transpose(2, 0, 1)

    return chip


def cached_chips(paths: list[Path], root: Path, cache_dir: Path, chipper: Callable | None = None,
                 size: int = CACHE_SIZE, progress: bool = True) -> tuple[np.ndarray, np.ndarray, str]:
    """(chips of the images with a face, bool mask over ``paths``, cache file).

    ``chipper`` is only made (and the pipeline only loaded) when the cache misses.
    """
    root = Path(root)
    key = file_list_key(paths, root)
    cache = Path(cache_dir) / f"chips-{key}-{size}.npz"
    if cache.exists():
        with np.load(cache) as data:
            return data["chips"], data["found"], str(cache)
    if chipper is None:
        chipper = pipeline_chipper(FacePipeline.load(threads=1, flip=False), size)
    chips, found = [], np.zeros(len(paths), dtype=bool)
    for index, path in enumerate(tqdm(paths, desc="aligning faces", unit="img", disable=not progress)):
        chip = chipper(path)
        if chip is not None:
            chips.append(chip)
            found[index] = True
    stacked = np.stack(chips) if chips else np.zeros((0, 3, size, size), dtype=np.uint8)
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial.npz")
    np.savez(partial, chips=stacked, found=found, paths=np.array([str(p.relative_to(root)) for p in paths]))
    partial.replace(cache)  # a killed run never leaves a truncated cache behind
    return stacked, found, str(cache)


def load_folder(root: str | Path, cache_dir: str | Path, chipper: Callable | None = None, size: int = CACHE_SIZE,
                progress: bool = True) -> ChipSet:
    """All people under ROOT as a ChipSet (images without a face are listed in ``dropped``)."""
    root = Path(root)
    people = list_people(root)
    paths = [p for images in people.values() for p in images]
    owners = np.array([i for i, images in enumerate(people.values()) for _ in images], dtype=np.int64)
    chips, found, _ = cached_chips(paths, root, Path(cache_dir), chipper, size, progress)
    relative = [p.relative_to(root).as_posix() for p in paths]
    kept = [r for r, f in zip(relative, found) if f]
    dropped = [r for r, f in zip(relative, found) if not f]
    chip_set = ChipSet(chips, owners[found], list(people), kept, dropped)
    if len(np.unique(chip_set.labels)) < 2:
        raise DatasetError(f"faces were found for fewer than 2 people under {root}")
    return chip_set


# ------------------------------------------------------------------ samplers

def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """One generator per (seed, epoch): a resumed run draws what an unbroken run would."""
    return np.random.default_rng([int(seed), int(epoch)])


def sample_pairs(labels: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first, second, same): ``count`` index pairs, half from one person, half from two."""
    labels = np.asarray(labels)
    by_person = [np.flatnonzero(labels == p) for p in np.unique(labels)]
    repeat = [members for members in by_person if len(members) >= 2]
    if not repeat:
        raise DatasetError("same-person pairs need at least one person with 2 or more faces")
    n_same = count // 2
    first, second = np.empty(count, dtype=np.int64), np.empty(count, dtype=np.int64)
    for k in range(n_same):
        members = repeat[rng.integers(len(repeat))]
        first[k], second[k] = rng.choice(members, size=2, replace=False)
    for k in range(n_same, count):
        a, b = rng.choice(len(by_person), size=2, replace=False)
        first[k], second[k] = rng.choice(by_person[a]), rng.choice(by_person[b])
    same = np.arange(count) < n_same
    order = rng.permutation(count)
    return first[order], second[order], same[order]


def pk_batches(labels: np.ndarray, people_per_batch: int, per_person: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of P people x K faces for batch-hard triplet mining; every person with
    2+ faces opens one batch slot per epoch (faces drawn with replacement when fewer than K)."""
    labels = np.asarray(labels)
    by_person = [np.flatnonzero(labels == p) for p in np.unique(labels)]
    eligible = [members for members in by_person if len(members) >= 2]
    if len(eligible) < 2:
        raise DatasetError("triplet training needs at least 2 people with 2 or more faces each")
    people_per_batch = min(people_per_batch, len(eligible))
    order = rng.permutation(len(eligible))
    batches = []
    for start in range(0, len(order) - people_per_batch + 1, people_per_batch):
        rows = [rng.choice(eligible[p], size=per_person, replace=len(eligible[p]) < per_person)
                for p in order[start:start + people_per_batch]]
        batches.append(np.concatenate(rows))
    return batches


def to_tensor_batch(chips: np.ndarray, indices: np.ndarray, mean, std, rng: np.random.Generator | None = None):
    """uint8 chips -> normalised float32 torch batch; a seeded mirror flip when ``rng`` is given."""
    import torch

    batch = chips[indices].astype(np.float32)
    if rng is not None:
        flip = rng.random(len(indices)) < 0.5
        batch[flip] = batch[flip][..., ::-1]
    batch = (batch - np.asarray(mean, np.float32).reshape(1, 3, 1, 1)) / np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    return torch.from_numpy(np.ascontiguousarray(batch))
