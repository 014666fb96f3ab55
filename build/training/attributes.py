"""`edge-verify train attributes`: the multi-label attribute model with its `live` head.

Data, either
* a labels file (CelebA style: image name, then -1 or 1 per attribute; a header
  line names the attributes; 0 means unknown and is left out of the loss), or
* a NUAA-style folder with ``real/`` and ``fake/`` (no labels file): ``live`` is
  1 for real/ and -1 for fake/, and ``Eyeglasses`` comes from the file name
  ``ID_glasses_pos_session_picNo`` (glasses 00 = with, 01 = without).

A photo's subject is the file name up to its first underscore (NUAA: 0001-0009).
Subjects, never frames, are split three ways (sorted; see ``split_subjects``):
*fit* subjects train the weights, *dev* subjects choose each attribute's
threshold (equal error rate), *test* subjects are only measured. The figures go
into the checkpoint's contract, so the built engine's manifest carries them.

Photos become chips once, through the product's own FacePipeline (primary face,
aligned), cached as uint8 in an .npz keyed by the file list; photos with no face
are recorded there and left out. Training saves ``<out>.resume.pt`` after every
epoch; ``--resume`` continues from it with the same split, optimiser and RNG.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.exc import ConfigError, EdgeVerifyError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
BACKBONES = ("small",)
LR = 2e-3


@dataclass
class Dataset:
    paths: list[Path]
    labels: np.ndarray  # (N, K) in {-1, 0, 1}
    attributes: list[str]
    subjects: list[str]


# ------------------------------------------------------------------ labels

def subject_of(path: Path) -> str:
    return Path(path).stem.split("_")[0]


def nuaa_dataset(root: Path) -> Dataset:
    paths, labels = [], []
    for folder, live in (("real", 1), ("fake", -1)):
        for path in sorted(p for p in (root / folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS):
            fields = path.stem.split("_")
            glasses = {"00": 1, "01": -1}.get(fields[1], 0) if len(fields) > 1 else 0
            paths.append(path)
            labels.append([live, glasses])
    if not paths:
        raise ConfigError(f"{root}: real/ and fake/ hold no images")
    return Dataset(paths, np.asarray(labels, dtype=np.int8), ["live", "Eyeglasses"], [subject_of(p) for p in paths])


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

def split_subjects(subjects, test_fraction: float = 1 / 3, dev_fraction: float = 2 / 9) -> dict[str, list[str]]:
    """{"fit", "dev", "test": sorted subject ids}; test = the last third of the
    sorted ids, dev = the ones before, so every subject is on exactly one side."""
    ordered = sorted(set(subjects))
    if len(ordered) < 3:
        raise ConfigError(f"need at least 3 subjects to hold some out, found {len(ordered)}")
    n_test = max(1, round(len(ordered) * test_fraction))
    n_dev = max(1, round(len(ordered) * dev_fraction))
    n_fit = len(ordered) - n_test - n_dev
    if n_fit < 1:
        n_fit, n_dev = 1, len(ordered) - n_test - 1
    return {"fit": ordered[:n_fit], "dev": ordered[n_fit:n_fit + n_dev], "test": ordered[n_fit + n_dev:]}


def indices_for(subjects, chosen) -> np.ndarray:
    chosen = set(chosen)
    return np.asarray([i for i, s in enumerate(subjects) if s in chosen], dtype=np.int64)


# ------------------------------------------------------------------ metrics

def apcer_bpcer(scores, live, threshold: float) -> tuple[float, float]:
    """(APCER, BPCER): attacks scored >= threshold, and real faces scored below it.
    ``live`` is truthy for real faces; NaN where a class is absent."""
    scores, live = np.asarray(scores, dtype=np.float64), np.asarray(live, dtype=bool)
    attacks, real = scores[~live], scores[live]
    apcer = float(np.mean(attacks >= threshold)) if len(attacks) else math.nan
    bpcer = float(np.mean(real < threshold)) if len(real) else math.nan
    return apcer, bpcer


def eer_threshold(scores, positive) -> float:
    """The threshold with the smallest max(false accept, false reject) rate; among
    equally good ones, the middle of the range (margin on both sides)."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        raise ConfigError("choosing a threshold needs examples of both classes")
    values = np.unique(scores)
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    worst = np.array([max(apcer_bpcer(scores, positive, t)) for t in candidates])
    best = np.flatnonzero(worst <= worst.min() + 1e-12)
    return float((candidates[best[0]] + candidates[best[-1]]) / 2)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def evaluate(probabilities: np.ndarray, labels: np.ndarray, attributes: list[str], thresholds: dict) -> dict:
    """Per attribute at its threshold: accuracy, and for `live` APCER/BPCER."""
    figures = {}
    for k, name in enumerate(attributes):
        known = labels[:, k] != 0
        if not known.any():
            continue
        scores, positive = probabilities[known, k], labels[known, k] > 0
        predicted = scores >= thresholds[name]
        entry = {"n": int(known.sum()), "accuracy": float(np.mean(predicted == positive))}
        if name == "live":
            entry["apcer"], entry["bpcer"] = apcer_bpcer(scores, positive, thresholds[name])
            entry["attacks"], entry["real"] = int((~positive).sum()), int(positive.sum())
        figures[name] = entry
    return figures


def choose_thresholds(probabilities, labels, attributes) -> dict[str, float]:
    chosen = {}
    for k, name in enumerate(attributes):
        known = labels[:, k] != 0
        both = known.any() and len(set(labels[known, k])) == 2
        chosen[name] = eer_threshold(probabilities[known, k], labels[known, k] > 0) if both else 0.5
    return chosen


# ------------------------------------------------------------------ chips

def cache_key(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def compute_chips(paths: list[Path], pipeline=None, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (N, 150, 150, 3) RGB chips, bool (N,) face found) via the pipeline."""
    from tqdm import tqdm

    from edge.pipeline import FacePipeline, primary_face_index
    from edge.vision.image import load_image

    pipeline = pipeline or FacePipeline.load(flip=False, threads=1)
    chips = np.zeros((len(paths), pipeline.size, pipeline.size, 3), dtype=np.uint8)
    found = np.zeros(len(paths), dtype=bool)
    for index, path in enumerate(tqdm(paths, desc="aligning", unit="photo", file=sys.stderr, disable=not progress)):
        try:
            image = load_image(path)
        except EdgeVerifyError:
            continue  # unreadable photos count as faceless; the summary says how many
        faces = pipeline.detect(image)
        if not faces:
            continue
        chip = pipeline.align(image, [faces[primary_face_index(faces, image.shape)]])[0]
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
