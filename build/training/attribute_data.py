"""Training data for the attribute model: labels, subjects, and face chips.

Data, either
* a labels file (CelebA style: image name, then -1 or 1 per attribute; a header
  line names the attributes; 0 means unknown and is left out of the loss), or
* a NUAA-style folder with ``real/`` and ``fake/`` (no labels file): ``live`` is
  1 for real/ and -1 for fake/. (NUAA's file names also say whether the subject
  wears glasses, but glasses are constant per subject there: a head trained on
  them learns who the subject is, so it is not derived.)

A photo's subject is the file name up to its first underscore (NUAA: 0001-0009).
Subjects, never frames, separate training from validation (``split_subjects``
for the small CNN; subject folds in edge_build.training.attribute_heads).

Photos become chips once, through the product's own FacePipeline (primary face,
aligned), cached as uint8 in an .npz keyed by the file list; photos with no face
are recorded there and left out.
"""
from __future__ import annotations

import csv
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from edge import paths as edge_paths
from edge.exc import ConfigError, EdgeVerifyError
from edge.pipeline import FacePipeline
from edge.vision.image import load_image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class Dataset:
    paths: list[Path]
    labels: np.ndarray  # (N, K) in {-1, 0, 1}
    attributes: list[str]
    subjects: list[str]


# ------------------------------------------------------------------ labels

def subject_of(path: Path) -> str:
    return Path(path).stem.split("_")[0]


def images_under(folder: Path) -> list[Path]:
    """Image files anywhere below ``folder``, sorted; linked sub-folders are followed
    (a training set is often assembled from links to the original folders)."""
    found = [Path(top) / name for top, _, names in os.walk(folder, followlinks=True) for name in names]
    return sorted(p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS)


def nuaa_dataset(root: Path) -> Dataset:
    paths, labels = [], []
    for folder, live in (("real", 1), ("fake", -1)):
        for path in images_under(root / folder):
            paths.append(path)
            labels.append([live])
    if not paths:
        raise ConfigError(f"{root}: real/ and fake/ hold no images")
    return Dataset(paths, np.asarray(labels, dtype=np.int8), ["live"], [subject_of(p) for p in paths])


def read_labels(labels_file: Path) -> tuple[list[str], dict[str, list[int]]]:
    """(attribute names, {image name: [-1/0/1, ...]}) from a CelebA-style file
    (commas or whitespace; an optional leading line with the image count)."""
    try:
        lines = [line.strip() for line in Path(labels_file).read_text().splitlines() if line.strip()]
    except OSError as error:
        raise ConfigError(f"cannot read labels file {labels_file}: {error}") from error
    rows = [next(csv.reader([line])) if "," in line else line.split() for line in lines]
    if rows and len(rows[0]) == 1 and rows[0][0].isdigit():
        rows = rows[1:]  # CelebA's list_attr file starts with the number of images
    if len(rows) < 2:
        raise ConfigError(f"{labels_file}: needs a header line and at least one image")
    header = [cell.strip() for cell in rows[0]]
    names = header[1:] if len(header) == len(rows[1]) else header  # CelebA's header has no image column
    table = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(names) + 1:
            raise ConfigError(f"{labels_file} line {number}: {len(row)} fields, expected {len(names) + 1}")
        try:
            values = [int(v) for v in row[1:]]
        except ValueError:
            raise ConfigError(f"{labels_file} line {number}: labels must be -1, 0 or 1") from None
        if any(v not in (-1, 0, 1) for v in values):
            raise ConfigError(f"{labels_file} line {number}: labels must be -1, 0 or 1")
        table[row[0].strip()] = values
    return names, table


def labelled_dataset(data: Path, labels_file: Path) -> Dataset:
    names, table = read_labels(labels_file)
    paths, labels, missing = [], [], []
    for image, values in table.items():
        path = data / image
        (paths if path.exists() else missing).append(path)
        if path.exists():
            labels.append(values)
    if missing:
        raise ConfigError(f"{len(missing)} images in {labels_file} are not under {data}, e.g. {missing[0].name}")
    return Dataset(paths, np.asarray(labels, dtype=np.int8), names, [subject_of(p) for p in paths])


def load_dataset(data, labels=None) -> Dataset:
    data = Path(data)
    if not data.is_dir():
        raise ConfigError(f"training data folder {data} does not exist")
    if labels:
        return labelled_dataset(data, Path(labels))
    if (data / "real").is_dir() and (data / "fake").is_dir():
        return nuaa_dataset(data)
    raise ConfigError(f"{data}: pass --labels CSV, or a folder with real/ and fake/ for a liveness-only set")


# ------------------------------------------------------------------ subjects

def split_subjects(subjects, fold: int = 0, test_fraction: float = 1 / 3, dev_fraction: float = 2 / 9) -> dict[str, list[str]]:
    """{"fit", "dev", "test": sorted subject ids}, every subject on exactly one side.

    Fold 0 tests the last third of the sorted ids and uses the ones before them
    as dev; fold f moves the test block f thirds earlier (cyclically), so folds
    0, 1, 2 test every subject once."""
    ordered = sorted(set(subjects))
    if len(ordered) < 3:
        raise ConfigError(f"need at least 3 subjects to hold some out, found {len(ordered)}")
    n_test = max(1, round(len(ordered) * test_fraction))
    n_dev = max(1, round(len(ordered) * dev_fraction))
    n_fit = len(ordered) - n_test - n_dev
    if n_fit < 1:
        n_fit, n_dev = 1, len(ordered) - n_test - 1
    turn = (-fold * n_test) % len(ordered)
    rotated = ordered[turn:] + ordered[:turn]
    return {"fit": sorted(rotated[:n_fit]), "dev": sorted(rotated[n_fit:n_fit + n_dev]),
            "test": sorted(rotated[n_fit + n_dev:])}


def indices_for(subjects, chosen) -> np.ndarray:
    chosen = set(chosen)
    return np.asarray([i for i, s in enumerate(subjects) if s in chosen], dtype=np.int64)


# ------------------------------------------------------------------ chips

def cache_key(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def compute_chips(paths: list[Path], pipeline=None, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (N, 150, 150, 3) RGB chips, bool (N,) face found) via the pipeline."""
    pipeline = pipeline or FacePipeline.load(flip=False, threads=1)
    chips = np.zeros((len(paths), pipeline.size, pipeline.size, 3), dtype=np.uint8)
    found = np.zeros(len(paths), dtype=bool)
    for index, path in enumerate(tqdm(paths, desc="aligning", unit="photo", file=sys.stderr, disable=not progress)):
        try:
            image = load_image(path)
        except EdgeVerifyError:
            continue  # unreadable photos count as faceless; the summary says how many
        main = pipeline.main_face(image)
        if main is None:
            continue
        chip = main.chip[0]
        pixels = chip.transpose(1, 2, 0) * pipeline.std + pipeline.mean
        chips[index], found[index] = np.clip(np.rint(pixels), 0, 255).astype(np.uint8), True
    return chips, found


def cached_chips(paths: list[Path], cache_dir: Path, pipeline=None, progress: bool = True):
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache = cache_dir / f"chips-{cache_key(paths)}.npz"
    if cache.exists():
        with np.load(cache) as stored:
            return stored["chips"], stored["found"], cache
    chips, found = compute_chips(paths, pipeline, progress)
    scratch = cache.with_name(cache.stem + ".tmp.npz")
    np.savez(scratch, chips=chips, found=found, names=np.asarray([str(p) for p in paths]))
    scratch.replace(cache)
    return chips, found, cache


def normalise(chips_uint8: np.ndarray, contract: dict) -> np.ndarray:
    """uint8 NHWC chips -> the contract's normalised float32 NCHW input."""
    mean = np.asarray(contract["mean"], dtype=np.float32)
    std = np.asarray(contract["std"], dtype=np.float32)
    return ((chips_uint8.astype(np.float32) - mean) / std).transpose(0, 3, 1, 2).copy()


@dataclass
class Prepared:
    dataset: Dataset
    inputs: np.ndarray  # normalised chips of photos with a face
    labels: np.ndarray
    subjects: list[str]
    faceless: list[str]
    cache: Path


def prepare(data: Path, labels: Path | None, contract_for: Callable[[list[str]], dict], echo,
            cache: Path | None = None, progress: bool = True) -> Prepared:
    """The dataset under ``data`` as normalised chips (``contract_for(attribute names)``
    says how), photos without a face left out and reported through ``echo``."""
    dataset = load_dataset(data, labels)
    cache_dir = Path(cache or edge_paths.home() / "cache" / "attribute-chips")
    chips, found, cache = cached_chips(dataset.paths, cache_dir, progress=progress)
    faceless = [str(p) for p, ok in zip(dataset.paths, found) if not ok]
    echo(f"{len(dataset.paths)} photos, {int(found.sum())} with a face ({len(faceless)} without, left out); chips in {cache}")
    keep = np.flatnonzero(found)
    contract = contract_for(dataset.attributes)
    return Prepared(dataset, normalise(chips[keep], contract), dataset.labels[keep],
                    [dataset.subjects[i] for i in keep], faceless, cache)
