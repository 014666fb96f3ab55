"""What skipping the finest pyramid levels costs and saves, when only faces of min_face_px or more count.

The daemon judges only faces whose box is at least ``[decision] min_face_px`` (80) on its
shorter side, but the detector used to search every face down to its 40 px ``min_face``. With
``smallest`` the detector leaves out the levels whose window is under SEARCH_MARGIN x smallest
(edge.vision.mtcnn). This runs the detector both ways over the same frames, one thread, twice in
alternation, and reports:

- detection time per frame (p50 / p95 / mean, ms), each way;
- the main face (edge.pipeline.choose_main_face at min_face_px) found one way and not the other;
- for frames where both find it: how far the boxes and landmarks moved (px) and how far the
  face's embedding moved (the distance between the two embeddings, against the door's thresholds
  of about 0.25-0.35).

    python benchmarks/detector_smallest.py --folder ../shared/datasets/replay_dev/real \\
        --folder ../shared/datasets/replay_dev/fake --folder ../shared/datasets/nuaa_train/real \\
        --folder ../shared/datasets/nuaa_train/fake --limit 300 [--json out.json]
    python benchmarks/detector_smallest.py --lfw ../shared/datasets/lfw --pasted 600

Frames are each folder's .jpg/.png images in name order, resized to 640x480 as the daemon's
latency benchmark does (benchmarks/daemon_latency.py --frames-from).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from edge.demo import FRAME_SIZE as FRAME  # the daemon benchmarks' 640x480


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, action="append", default=[],
                        help="a folder of frames (repeatable)")
    parser.add_argument("--lfw", type=Path, help="LFW folder: also measure door-like frames pasted from its photos")
    parser.add_argument("--pasted", type=int, default=600, help="with --lfw, how many door-like frames (default 600)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many frames per folder (0: all)")
    parser.add_argument("--min-face-px", type=float, default=80.0)
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


def frames_of(folder: Path, limit: int) -> list:
    import cv2

    paths = sorted(path for path in folder.rglob("*") if path.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if limit:
        paths = paths[:: max(1, len(paths) // limit)][:limit]
    frames = []
    for path in paths:
        image = cv2.imread(str(path))
        if image is not None:
            frames.append(cv2.cvtColor(cv2.resize(image, FRAME, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    return frames


def pasted_frames(lfw: Path, count: int, seed: int = 7) -> list:
    """Door-like 640x480 frames: a random LFW photo scaled to 170-420 px (faces of ~75-190 px) at a
    random place on a noisy grey background, under a light level of x0.55-1.35, sensor noise of
    sigma 2-8, half of them blurred, saved and read back as JPEG (quality 90)."""
    import cv2

    rng = np.random.default_rng(seed)
    people = sorted(path for path in (lfw / "images").iterdir() if path.is_dir())
    frames = []
    while len(frames) < count:
        photos = sorted(people[rng.integers(len(people))].glob("*.jpg"))
        photo = cv2.imread(str(photos[rng.integers(len(photos))]))
        if photo is None:
            continue
        side = int(rng.uniform(170, 420))
        photo = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA if side < 250 else cv2.INTER_LINEAR)
        canvas = np.full((FRAME[1], FRAME[0], 3), int(rng.integers(60, 180)), np.uint8)
        canvas += rng.integers(0, 40, (FRAME[1], FRAME[0], 1), dtype=np.uint8)
        x, y = int(rng.integers(0, FRAME[0] - side)), int(rng.integers(0, max(1, FRAME[1] - side)))
        height = min(side, FRAME[1] - y)
        canvas[y:y + height, x:x + side] = photo[:height]
        noise = rng.normal(0, rng.uniform(2, 8), canvas.shape)
        canvas = np.clip(canvas.astype(np.float32) * rng.uniform(0.55, 1.35) + noise, 0, 255).astype(np.uint8)
        if rng.random() < 0.5:
            size = int(rng.integers(1, 3)) * 2 + 1
            canvas = cv2.GaussianBlur(canvas, (size, size), 0)
        encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
        frames.append(cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    return frames


def timed_pass(detector, frames: list, smallest: float, min_face_px: float) -> tuple[np.ndarray, list]:
    from edge.pipeline import choose_main_face

    times, mains = [], []
    for frame in frames:
        start = time.perf_counter()
        faces = detector.detect(frame, smallest)
        times.append((time.perf_counter() - start) * 1e3)
        mains.append(choose_main_face(faces, frame.shape, min_face_px))
    return np.array(times), mains


def summary(times: np.ndarray) -> dict:
    return {"p50": round(float(np.median(times)), 2), "p95": round(float(np.percentile(times, 95)), 2),
            "mean": round(float(times.mean()), 2)}


def agreement(pipeline, frames: list, every: list, skipped: list) -> dict:
    both = [(index, a, b) for index, (a, b) in enumerate(zip(every, skipped)) if a is not None and b is not None]
    moved = {"box": [], "landmarks": [], "embedding": []}
    for index, a, b in both:
        moved["box"].append(float(np.abs(np.array(a.box) - np.array(b.box)).max()))
        moved["landmarks"].append(float(np.abs(a.landmarks - b.landmarks).max()))
        chips = pipeline.align(frames[index], [a, b])
        pair = pipeline.embed(chips)
        moved["embedding"].append(float(np.linalg.norm(pair[0] - pair[1])))
    return {
        "main face, both": len(both),
        "main face, only when every level is scanned": sum(a is not None and b is None for a, b in zip(every, skipped)),
        "main face, only when levels are skipped": sum(a is None and b is not None for a, b in zip(every, skipped)),
        "identical": sum(value == 0.0 for value in moved["landmarks"]),
        **{f"{key} moved p50 / p99 / max": [round(float(v), 4) for v in np.percentile(values, [50, 99, 100])]
           for key, values in moved.items() if values},
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    from edge.pipeline import FacePipeline

    pipeline = FacePipeline.load(threads=1)
    frames = [frame for folder in args.folder for frame in frames_of(folder, args.limit)]
    if args.lfw is not None:
        frames += pasted_frames(args.lfw, args.pasted)
    if not frames:
        raise SystemExit("no readable frames: give --folder DIR (images) or --lfw DIR")
    print(f"{len(frames)} frames", file=sys.stderr)
    times = {"every level": [], "skipped": []}
    mains = {}
    for _ in range(2):  # alternate, so a slow spell of the machine hits both
        for way, smallest in (("every level", 0.0), ("skipped", args.min_face_px)):
            spent, mains[way] = timed_pass(pipeline.detector, frames, smallest, args.min_face_px)
            times[way].append(spent)
    report = {
        "frames": len(frames), "min_face_px": args.min_face_px,
        "detect ms, one thread": {way: summary(np.concatenate(runs)) for way, runs in times.items()},
        "agreement": agreement(pipeline, frames, mains["every level"], mains["skipped"]),
    }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
