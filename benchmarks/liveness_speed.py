"""Cost per frame of each liveness cue, and of the attributes engine, and its figures on a NUAA-style folder.

Cues (--cues-from DIR, frames with a face, e.g. a replay folder's real/): each
enabled cue of the liveness model (`edge-verify train liveness`) timed alone on
one thread over the frames: texture (grey chip, features, head), cnn (grey
chip, network; when the model has it), context (region, edges, lines), motion (one more frame of a track: its face patch and
the dense flow against 2 earlier frames).

Speed: one aligned chip per call (the daemon's case: one face per frame), ONNX
Runtime on one CPU thread, p50/p95 over many calls after a warm-up, for each
attributes engine precision that `edge-verify build --model attributes` made.
Detection and alignment are not counted: the daemon has the chip already (it
aligns once for the embedding engine).

Accuracy (with --data DIR, a folder with real/ and fake/): APCER and BPCER at
the shipped threshold on the subjects given by --subjects (ones the engine was
not trained on: train on a folder of links to the other subjects), through the
product path (pipeline chips -> engine), so they include any INT8 loss.

    OMP_NUM_THREADS=1 EDGE_VERIFY_HOME=... python benchmarks/liveness_speed.py \\
        --data ../shared/datasets/nuaa_train --subjects 0007 0008 0009 --json liveness.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from edge.liveness import live_scores, live_threshold, load_attributes_engine
from edge.liveness.judge import Liveness, load_liveness
from edge.liveness.model import read_model
from edge_build.training.attribute_metrics import apcer_bpcer
from edge.pipeline import FacePipeline
from edge.vision.image import load_image

WARMUP = 20


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="timed calls per engine (default 500)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "int8"], choices=["fp32", "int8"])
    parser.add_argument("--data", type=Path, help="NUAA-style folder (real/, fake/) to measure APCER/BPCER on")
    parser.add_argument("--subjects", nargs="+", default=[], help="subject ids (file-name prefixes) to measure on")
    parser.add_argument("--cues-from", type=Path, help="folder of frames to time the liveness model's cues on")
    parser.add_argument("--json", type=Path, help="write the figures here")
    return parser.parse_args(argv)


def time_cues(folder: Path, limit: int = 60) -> dict:
    """CPU ms per frame of each cue alone on one thread (OpenCV too), over up to ``limit`` frames of
    ``folder``. CPU time of this thread, not wall time: on a shared machine another process's turn on
    the core is not the cue's cost."""
    cv2.setNumThreads(1)
    liveness = load_liveness(",".join(name for name in ("texture", "cnn", "context", "motion")
                                      if name in read_model()["cues"]))
    pipeline = FacePipeline.load(flip=False, threads=1)
    observations = []
    for path in sorted(folder.rglob("*.jpg"))[:limit]:
        image = load_image(path)
        main = pipeline.main_face(image)
        if main is not None:
            observations.append((image, main))
    figures = {"frames": len(observations)}
    for name in liveness.cues:
        others = ("texture", "cnn", "context", "motion", "colour")
        alone = Liveness(**{**liveness.__dict__, **{other: None for other in others if other != name}})
        judge = alone.new_track()
        for image, main in observations[:5]:
            judge.add(image, main)  # warm-up: caches, first allocations
        times = []
        for image, main in observations:
            started = time.thread_time()
            judge.add(image, main)
            times.append((time.thread_time() - started) * 1e3)
        figures[name] = {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}
        print(f"{name}: p50 {figures[name]['p50_ms']:.2f} ms, p95 {figures[name]['p95_ms']:.2f} ms per frame",
              flush=True)
    return figures


def time_engine(engine, calls: int) -> dict:
    chip = np.random.default_rng(0).normal(0, 0.3, (1, 3, 150, 150)).astype(np.float32)
    for _ in range(WARMUP):
        engine.run(chip)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        engine.run(chip)
        times.append((time.perf_counter() - started) * 1e3)
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)), "calls": calls}


def held_out_chips(data: Path, subjects: list[str]):
    """(chips, is_live) of the given subjects' photos with a face, via the product pipeline."""
    pipeline = FacePipeline.load(flip=False, threads=1)
    chips, live = [], []
    for folder, is_live in (("real", True), ("fake", False)):
        for path in sorted((data / folder).rglob("*.jpg")):
            if path.stem.split("_")[0] not in subjects:
                continue
            image = load_image(path)
            found = pipeline.main_face(image)
            if found is not None:
                chips.append(found.chip)
                live.append(is_live)
    return np.concatenate(chips), np.asarray(live)


def main(argv=None) -> int:

    args = parse_args(argv)
    figures = {}
    if args.cues_from:
        figures["cues"] = time_cues(args.cues_from)
    held = held_out_chips(args.data, args.subjects) if args.data else None
    for precision in args.precisions:
        try:
            engine = load_attributes_engine(precision, threads=1)
        except Exception as error:  # a missing engine is reported, the other precisions still run
            figures[precision] = {"missing": str(error)}
            continue
        entry = {"speed_one_thread": time_engine(engine, args.calls), "threshold": live_threshold(engine)}
        if held is not None:
            chips, live = held
            scores = np.concatenate([live_scores(engine, chips[i:i + 64]) for i in range(0, len(chips), 64)])
            apcer, bpcer = apcer_bpcer(scores, live, entry["threshold"])
            entry.update(subjects=args.subjects, attacks=int((~live).sum()), real=int(live.sum()), apcer=apcer, bpcer=bpcer)
        figures[precision] = entry
        print(precision, json.dumps(entry))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
