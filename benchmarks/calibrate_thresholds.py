"""Choose the starter embedding's thresholds on LFW View 1 (never on View 2).

- 1:1 threshold: the distance that best separates the matched and mismatched
  pairs of pairsDevTrain.txt.
- impostor tail: distances between photos of different people, all pairs among
  the View 1 photos (millions of pairs; LFW's faces filed under two names,
  benchmarks/lfw_same_faces.py, are one person); the smallest few thousand are shipped
  in the manifest with the total count, so the 1:N threshold can hold the
  strangers' accept rate for any gallery size without LFW on the device.

Writes these figures into build/models/dlib_resnet_calibration.json (keeping what else it holds,
such as benchmarks/door_calibrate.py's combined tail); then `edge-verify models fetch --force`
puts the figures in the checkpoint's contract and the engine manifests.

    python benchmarks/calibrate_thresholds.py --lfw ../shared/datasets/lfw
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import lfw_same_faces

TAIL = 5000
OUT = Path(__file__).resolve().parent.parent / "build" / "models" / "dlib_resnet_calibration.json"


def embed_images(pipeline, images_dir: Path, names: list[str]) -> dict[str, np.ndarray]:
    from edge.bench import runner

    found, _, _ = runner.describe_all(pipeline, [images_dir / n for n in names], "View 1")
    return {n: found[images_dir / n] for n in names if found[images_dir / n] is not None}


def impostor_tail(embeddings: dict[str, np.ndarray]) -> dict:
    names = sorted(embeddings)
    person = lfw_same_faces.face_ids(n.split("/")[0] for n in names)
    matrix = np.stack([embeddings[n] for n in names]).astype(np.float64)
    smallest, count = [], 0
    for start in range(0, len(names), 512):  # block-wise: the full matrix would not fit comfortably
        block = matrix[start:start + 512]
        squared = (block**2).sum(1)[:, None] + (matrix**2).sum(1)[None] - 2 * block @ matrix.T
        distances = np.sqrt(np.maximum(squared, 0))
        rows = np.arange(start, start + len(block))[:, None]
        keep = (np.arange(len(names))[None] > rows) & (person[start:start + len(block)][:, None] != person[None])
        values = distances[keep]
        count += values.size
        smallest = np.sort(np.concatenate([smallest, np.partition(values, min(TAIL, values.size - 1))[:TAIL]]))[:TAIL]
    return {"count": int(count), "distances": [round(float(v), 6) for v in smallest],
            "source": f"all different-person pairs among {len(names)} LFW View 1 photos (pairsDevTrain + pairsDevTest)"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    from edge.bench import lfw, metrics
    from edge.pipeline import FacePipeline

    pipeline = FacePipeline.load(threads=1)
    train = lfw.read_pairs(args.lfw / "pairsDevTrain.txt")
    test = lfw.read_pairs(args.lfw / "pairsDevTest.txt")
    names = sorted(set(lfw.unique_images(train)) | set(lfw.unique_images(test)))
    embeddings = embed_images(pipeline, args.lfw / "images", names)
    distances = lfw.pair_distances(train, embeddings)
    same = np.array([p.same for p in train])
    threshold = metrics.best_threshold(distances, same)
    test_distances = lfw.pair_distances(test, embeddings)
    test_accuracy = metrics.accuracy(test_distances, np.array([p.same for p in test]), threshold)
    tail = impostor_tail(embeddings)
    figures = {
        "threshold": round(threshold, 4),
        "threshold_source": (f"best accuracy on LFW pairsDevTrain.txt ({metrics.accuracy(distances, same, threshold):.4f}); "
                             f"pairsDevTest.txt at it: {test_accuracy:.4f}; flip-averaged, unit-length embeddings"),
        "impostor_tail": tail,
    }
    kept = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.write_text(json.dumps({**kept, **figures}, indent=1) + "\n")
    print(f"threshold {threshold:.4f} (DevTest accuracy {test_accuracy:.4f}); impostor pairs {tail['count']}, "
          f"smallest {tail['distances'][0]:.4f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
