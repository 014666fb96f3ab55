"""How close our alignment is to dlib's face chips.

For each photo: dlib's HOG box and 5-point landmarks give dlib's chip
(`dlib.get_face_chip(img, shape, 150, 0.25)`). We compare
  1. our geometry on dlib's landmarks (`extract_chip` with the dlib template): pixel difference;
  2. the product's chip (MTCNN landmarks, fitted template, eye-weighted fit): the distance
     between its unit-length embedding and that of dlib's chip, next to the verification
     threshold (a distance that small is the same face for the model).

    python benchmarks/alignment_vs_dlib.py --lfw ../shared/datasets/lfw --count 200
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from edge_build.sources import weight_path
from edge.pipeline import FacePipeline
from edge.verify.api import l2_normalize
from edge.vision import align
from edge.vision.image import load_image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, required=True)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()

    import dlib  # the test extra, only for the comparison

    pipeline = FacePipeline.load(threads=1, flip=False)
    detector = dlib.get_frontal_face_detector()
    shaper = dlib.shape_predictor(str(weight_path("dlib_shape5")))
    paths = sorted((args.lfw / "images").glob("*/*.jpg"))
    random.Random(0).shuffle(paths)
    pixel_max, distances = [], []
    for path in paths:
        if len(distances) >= args.count:
            break
        image = load_image(path)
        boxes = detector(image, 1)
        found = pipeline.main_face(image)
        if len(boxes) != 1 or found is None:
            continue
        shape = shaper(image, boxes[0])
        dlib_chip = np.asarray(dlib.get_face_chip(image, shape, 150, 0.25))
        points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)
        ours = align.extract_chip(image, align.chip_matrix(points, align.DLIB_5PT_TEMPLATE), 150, truncate=True)
        pixel_max.append(int(np.abs(ours.astype(int) - dlib_chip.astype(int)).max()))
        dlib_input = ((dlib_chip.astype(np.float32) - pipeline.mean) / pipeline.std).transpose(2, 0, 1)[None]
        product = found.chip
        a, b = l2_normalize(pipeline.embedder.run(np.concatenate([dlib_input, product]))[0])
        distances.append(float(np.linalg.norm(a - b)))
    distances = np.array(distances)
    result = {"faces": len(distances), "dlib_geometry_max_pixel_difference": max(pixel_max),
              "product_chip_distance_mean": float(distances.mean()), "product_chip_distance_p95": float(np.percentile(distances, 95)),
              "product_chip_distance_max": float(distances.max()), "threshold": pipeline.threshold}
    print(json.dumps(result, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
