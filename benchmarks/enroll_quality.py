"""The enrollment quality measures on real photos and on crafted bad frames.

Prints, for each measure of edge/enroll/quality.py, its percentiles over the
fixture faces and a seeded sample of LFW photos, and how many of each kind of
crafted bad frame fail which gate. This is what the gate limits were chosen
from (see the comments beside each limit).

    EDGE_VERIFY_HOME=... python benchmarks/enroll_quality.py --lfw ../shared/datasets/lfw --count 600
"""
from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "faces"
MEASURES = ("face_px", "yaw_deg", "pitch", "roll_deg", "brightness", "contrast", "sharpness")


def crafted(rgb: np.ndarray) -> dict:
    """The bad frames the tests use, made from one good photo."""
    import cv2

    height, width = rgb.shape[:2]
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), 40, 1.0)
    small = cv2.resize(rgb, (width * 3 // 10, height * 3 // 10), interpolation=cv2.INTER_AREA)
    canvas = np.full_like(rgb, 128)
    canvas[:small.shape[0], :small.shape[1]] = small
    as_float = rgb.astype(np.float32)
    return {
        "blurred": cv2.GaussianBlur(rgb, (0, 0), 3.0),
        "rotated": cv2.warpAffine(rgb, rotation, (width, height), borderValue=(128, 128, 128)),
        "dark": np.clip(as_float * 0.15, 0, 255).astype(np.uint8),
        "bright": np.clip(as_float * 0.4 + 190, 0, 255).astype(np.uint8),
        "flat": np.clip((as_float - as_float.mean()) * 0.25 + 128, 0, 255).astype(np.uint8),
        "two faces": np.concatenate([rgb, rgb], axis=1),
        "tiny": canvas,
    }


def lfw_sample(lfw: Path, count: int, seed: int) -> list[Path]:
    images = sorted((lfw / "images").glob("*/*.jpg"))
    random.Random(seed).shuffle(images)
    return images[:count]


def measure(pipeline, paths) -> tuple[list[dict], Counter]:
    from edge.enroll.quality import assess
    from edge.vision.image import load_image

    rows, failures = [], Counter()
    for path in paths:
        verdict = assess(pipeline, load_image(path))
        rows.append(verdict.measures)
        for gate in verdict.gates:
            if not gate.ok:
                failures[gate.name] += 1
    return rows, failures


def percentiles(rows: list[dict]) -> dict:
    out = {}
    for key in MEASURES:
        values = np.array([row[key] for row in rows if key in row], dtype=np.float64)
        if values.size:
            out[key] = {f"p{q}": round(float(np.percentile(values, q)), 2) for q in (0, 1, 5, 50, 95, 99, 100)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, required=True)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from edge.enroll.quality import assess
    from edge.pipeline import FacePipeline
    from edge.vision.image import load_image

    pipeline = FacePipeline.load(threads=1)
    report = {}
    sets = (("fixtures", sorted(FIXTURES.glob("*.jpg"))), ("lfw", lfw_sample(args.lfw, args.count, args.seed)))
    for label, paths in sets:
        rows, failures = measure(pipeline, paths)
        report[label] = {"images": len(paths), "failing_gate": dict(failures), "percentiles": percentiles(rows)}
    bad = {}
    for path in sorted(FIXTURES.glob("*.jpg")):
        for kind, frame in crafted(load_image(path)).items():
            failed = [gate.name for gate in assess(pipeline, frame).gates if not gate.ok]
            bad.setdefault(kind, Counter()).update(failed or ["(passed)"])
    report["crafted"] = {kind: dict(counts) for kind, counts in bad.items()}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
