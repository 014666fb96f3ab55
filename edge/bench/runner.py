"""Run the pipeline over many images, timing each stage."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge.exc import ImageError
from edge.vision.image import load_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def progress(iterable, total: int, label: str):
    """A progress bar on stderr (the benchmarks' JSON goes to stdout or a file)."""
    return tqdm(iterable, total=total, desc=label, unit="img", file=sys.stderr, dynamic_ncols=True,
                disable=None if sys.stderr.isatty() else False, mininterval=2.0)


def describe_all(pipeline, paths: list[Path], label: str, decode_ms: bool = True):
    """Embeddings of the primary face per image (None when no face) and per-stage ms lists."""
    embeddings: dict[Path, np.ndarray | None] = {}
    stages: dict[str, list[float]] = {"decode": [], "detect": [], "align": [], "embed": [], "total": []}
    unreadable = []
    for path in progress(paths, len(paths), label):
        t0 = time.perf_counter()
        try:
            image = load_image(path)
        except ImageError as error:
            unreadable.append(str(error))
            embeddings[path] = None
            continue
        decode = (time.perf_counter() - t0) * 1e3
        described = pipeline.describe(image)
        embeddings[path] = described.embeddings[0] if described.faces else None
        stages["decode"].append(decode)
        for key in ("detect", "align", "embed"):
            stages[key].append(described.ms[key])
        stages["total"].append(described.ms["total"] + (decode if decode_ms else 0.0))
    return embeddings, stages, unreadable


def summarise(values: list[float]) -> dict:
    if not values:
        return {"median": None, "p90": None}
    array = np.asarray(values)
    return {"median": float(np.median(array)), "p90": float(np.percentile(array, 90))}
