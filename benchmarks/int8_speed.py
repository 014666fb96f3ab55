"""Benchmark: INT8 against FP32 ONNX Runtime engines, same inputs, same session options.

    python benchmarks/int8_speed.py --fp32 E/embedding.fp32.onnx --int8 E/embedding.int8.onnx \
        [--threads 1] [--batches 1 16] [--rounds 7] [--faces DIR]

Both engines are loaded as the product loads them (manifest checks, the
runtime's session options) and timed in alternating rounds, so a busy machine
slows both alike; the figure is the ratio of the medians. Inputs are the
normalised photos of --faces resized to the input size, or seeded noise.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edge.engines import load_engine
from edge_calibration.sets import list_images


def inputs(shape: list[int], batch: int, faces: Path | None) -> np.ndarray:
    _, channels, height, width = shape
    if faces is None:
        return np.random.default_rng(0).normal(0, 0.5, size=(batch, channels, height, width)).astype(np.float32)
    paths = (list_images(faces) * batch)[:batch]
    images = [cv2.resize(cv2.imread(str(p))[:, :, ::-1], (width, height)) for p in paths]
    return ((np.stack(images).astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2).copy()


def time_once(engine, x: np.ndarray, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        engine.run(x)
    return (time.perf_counter() - start) / repeats * 1e3


def compare(fp32_path: Path, int8_path: Path, threads: int, batch: int, rounds: int, faces: Path | None) -> dict:
    engines = {"fp32": load_engine(fp32_path, threads=threads), "int8": load_engine(int8_path, threads=threads)}
    x = inputs(engines["fp32"].manifest["inputs"][0]["shape"], batch, faces)
    repeats = max(1, 16 // batch)
    for engine in engines.values():  # warm-up
        time_once(engine, x, 2)
    times = {name: [] for name in engines}
    for _ in range(rounds):
        for name, engine in engines.items():
            times[name].append(time_once(engine, x, repeats))
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {"batch": batch, "threads": threads, "ms_fp32": medians["fp32"], "ms_int8": medians["int8"],
            "speedup": medians["fp32"] / medians["int8"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fp32", type=Path, required=True)
    parser.add_argument("--int8", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--faces", type=Path, help="photos to use as inputs (default: seeded noise)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [compare(args.fp32, args.int8, args.threads, batch, args.rounds, args.faces) for batch in args.batches]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'batch':>5} {'threads':>7} {'fp32 ms':>9} {'int8 ms':>9} {'speedup':>8}")
    for row in rows:
        print(f"{row['batch']:>5} {row['threads']:>7} {row['ms_fp32']:>9.2f} {row['ms_int8']:>9.2f} {row['speedup']:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
