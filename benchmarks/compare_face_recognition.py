"""Our pipeline beside face_recognition (dlib), same images, same process, one thread.

face_recognition is used as a new user would: HOG detector with one upsample,
5-point landmarks, one jitter. Both pipelines start from the JPEG file and end
with a 128-d embedding of the face; each image is timed for both, alternating,
so that machine noise hits both alike. Prints the medians and the ratio.

Setup (reference packages are test/benchmark-only, never part of the product):
    pip install dlib-bin==20.0.1.post1
    pip install --no-deps face_recognition==1.3.0
    pip install face_recognition_models==0.3.0 'setuptools<81' pillow click
Run:
    python benchmarks/compare_face_recognition.py --lfw ../shared/datasets/lfw --count 300 --json out.json
"""
from __future__ import annotations

import os

# One thread for everybody, set before numpy/onnxruntime/dlib load their pools.
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def pick_images(lfw: Path, count: int, seed: int) -> list[Path]:
    from edge.bench.lfw import read_pairs, unique_images

    names = unique_images(read_pairs(lfw / "pairs.txt"))
    random.Random(seed).shuffle(names)
    return [lfw / "images" / name for name in names[:count]]


def ours(pipeline, path: Path):
    from edge.vision.image import load_image

    described = pipeline.describe(load_image(path))
    return described.embeddings[0] if described.faces else None


def theirs(face_recognition, path: Path):
    image = face_recognition.load_image_file(str(path))
    locations = face_recognition.face_locations(image, number_of_times_to_upsample=1, model="hog")
    if not locations:
        return None
    # The face nearest the centre, as in the peer baseline.
    h, w = image.shape[:2]
    centre = min(locations, key=lambda box: ((box[1] + box[3]) / 2 - w / 2) ** 2 + ((box[0] + box[2]) / 2 - h / 2) ** 2)
    return face_recognition.face_encodings(image, known_face_locations=[centre], num_jitters=1, model="small")[0]


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, (time.perf_counter() - start) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, required=True)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--no-flip", dest="flip", action="store_false")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # face_recognition_models imports pkg_resources
        import face_recognition
    from edge.pipeline import FacePipeline

    pipeline = FacePipeline.load(precision=args.precision, threads=1, flip=args.flip)
    images = pick_images(args.lfw, args.count, args.seed)
    for path in images[:3]:  # warm-up both
        ours(pipeline, path)
        theirs(face_recognition, path)
    ours_ms, theirs_ms, ours_miss, theirs_miss = [], [], 0, 0
    for path in images:
        embedding, ms = timed(ours, pipeline, path)
        ours_ms.append(ms)
        ours_miss += embedding is None
        embedding, ms = timed(theirs, face_recognition, path)
        theirs_ms.append(ms)
        theirs_miss += embedding is None
    result = {
        "images": len(images),
        "ours_ms_median": float(np.median(ours_ms)),
        "face_recognition_ms_median": float(np.median(theirs_ms)),
        "ours_ms_mean": float(np.mean(ours_ms)),
        "face_recognition_ms_mean": float(np.mean(theirs_ms)),
        "ratio_median": float(np.median(ours_ms) / np.median(theirs_ms)),
        "ratio_total": float(np.sum(ours_ms) / np.sum(theirs_ms)),
        "ours_no_face": ours_miss,
        "face_recognition_no_face": theirs_miss,
        "precision": args.precision,
        "flip": args.flip,
    }
    print(f"{len(images)} LFW images, one thread, decode → embedding per image")
    print(f"  edge-verify ({args.precision}{', flip' if args.flip else ''}): median {result['ours_ms_median']:.1f} ms")
    print(f"  face_recognition (HOG, 1 jitter): median {result['face_recognition_ms_median']:.1f} ms")
    print(f"  ratio ours/theirs: {result['ratio_median']:.3f} (median), {result['ratio_total']:.3f} (total time)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
