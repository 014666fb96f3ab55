"""Fit the alignment template for MTCNN's five points to dlib's face chips.

The dlib ResNet was trained on chips made from dlib's own 5-point landmarks
(eye corners and nose base). MTCNN gives different points (eye centres, nose
tip, mouth corners). Rather than derive their template from a mean face, we
measure it: on LFW photos of people who appear in no pairs file (never scored),
make dlib's chip transform from dlib's landmarks, map MTCNN's points into that
chip, and average. Chips aligned with the fitted template then sit where dlib's
would. Prints the template as the unit-box constant used in edge/vision/mtcnn.py.

    python benchmarks/fit_template.py --lfw ../shared/datasets/lfw --count 1500
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edge_build.sources import weight_path
from edge.pipeline import FacePipeline
from edge.vision import align
from edge.vision.image import load_image
from edge_calibration.lfw_default_set import default_set


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, required=True)
    parser.add_argument("--count", type=int, default=1500)
    args = parser.parse_args()

    import dlib  # the test extra, only for the comparison

    _, images = default_set(args.lfw)
    detector = dlib.get_frontal_face_detector()
    shaper = dlib.shape_predictor(str(weight_path("dlib_shape5")))
    pipeline = FacePipeline.load(threads=1)
    size, padding = 150, 0.25
    mapped, residuals = [], []
    for path in images[: args.count]:
        image = load_image(path)
        boxes = detector(image, 1)
        faces = pipeline.detect(image)
        if len(boxes) != 1 or not faces:
            continue  # only unambiguous photos: one dlib face
        shape = shaper(image, boxes[0])
        points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)
        matrix = align.chip_matrix(points, align.DLIB_5PT_TEMPLATE, size, padding)
        face = faces[0] if len(faces) == 1 else faces[min(range(len(faces)), key=lambda i: np.linalg.norm(
            np.array(faces[i].center) - points.mean(axis=0)))]
        inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
        chip_points = face.landmarks.astype(np.float64) @ inverse[:, :2].T + inverse[:, 2]
        mapped.append(chip_points)
    mapped = np.array(mapped)
    # Robust mean: drop the 5 % of faces whose points sit furthest from the median.
    median = np.median(mapped, axis=0)
    spread = np.linalg.norm(mapped - median, axis=2).mean(axis=1)
    keep = spread <= np.percentile(spread, 95)
    chip_template = mapped[keep].mean(axis=0)
    unit = chip_template / size * (1 + 2 * padding) - padding
    residuals = np.linalg.norm(mapped[keep] - chip_template, axis=2)
    print(f"faces used: {keep.sum()} of {len(mapped)} (of {min(args.count, len(images))} photos)")
    print(f"mean residual per point (chip px): {np.round(residuals.mean(axis=0), 2).tolist()}")
    print("edge.vision.mtcnn.FITTED_TEMPLATE (unit box):")
    for x, y in unit:
        print(f"        [{x:.6f}, {y:.6f}],")
    print("old mean-face template in chip px:", np.round(align.template_points(align.MTCNN_TEMPLATE), 2).tolist())
    print("fitted template in chip px:       ", np.round(chip_template, 2).tolist())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
