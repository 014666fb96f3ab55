"""Choosing the cohort adjustment's k and weight (edge.gallery.cohort) on calibration people only.

The calibration people of benchmarks/door_clips.py (never staff, strangers or
distractors) are split in two by a fixed seed: one half is the cohort, the other
half gives the pairs (at most 10 photos per person). For each k (nearest cohort
faces averaged) and weight, the share of genuine pairs accepted at false-match
rates 1e-3 to 1e-5 among those pairs, against the plain distance. No figure the
README reports comes from these pairs.

    python benchmarks/cohort_choice.py --door /tmp/door --lfw ../shared/datasets/lfw
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import door_clips
import identification
import lfw_same_faces

KS = (3, 5, 10, 20, 50)
WEIGHTS = (0.5, 1.0, 1.5)
RATES = (1e-3, 1e-4, 1e-5)


def unit_rows_of(people: list, counts: dict, photos: dict) -> tuple[np.ndarray, np.ndarray]:
    rows, owners = [], []
    for person in people:
        for number in range(1, min(counts[person], 10) + 1):
            vector = photos.get(door_clips.image_name(person, number))
            if vector is not None:
                rows.append(vector)
                owners.append(person)
    rows = np.array(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True), lfw_same_faces.face_ids(owners)


def accepted(matrix: np.ndarray, genuine: np.ndarray, upper) -> dict:
    pairs = matrix[upper]
    impostor = np.sort(pairs[~genuine])
    return {rate: round(float(np.mean(pairs[genuine] <= impostor[int(rate * len(impostor))])), 4) for rate in RATES}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--door", type=Path, required=True, help="the folder door_clips.py wrote (plan.json)")
    parser.add_argument("--lfw", type=Path, default=Path("../shared/datasets/lfw"))
    parser.add_argument("--photos", type=Path, help="photo embedding cache folder (default DOOR/photos)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    from edge.pipeline import FacePipeline

    plan = json.loads((args.door / "plan.json").read_text())
    counts = door_clips.photo_counts(args.lfw)
    people = sorted(plan["split"]["calibration"])
    pipeline = FacePipeline.load(threads=1)
    names = [door_clips.image_name(p, n) for p in people for n in range(1, min(counts[p], 10) + 1)]
    photos = identification.embed_all(pipeline, args.lfw, names,
                                      identification.cache_file(args.photos or args.door / "photos", pipeline))
    order = np.random.default_rng(args.seed).permutation(len(people))
    pairs, owners = unit_rows_of([people[i] for i in order[: len(people) // 2]], counts, photos)
    cohort, _ = unit_rows_of([people[i] for i in order[len(people) // 2:]], counts, photos)
    distances = np.sqrt(np.maximum(2 - 2 * pairs @ pairs.T, 0))
    to_cohort = np.sort(np.sqrt(np.maximum(2 - 2 * pairs @ cohort.T, 0)), axis=1)
    upper = np.triu_indices(len(pairs), 1)
    genuine = owners[upper[0]] == owners[upper[1]]
    print(json.dumps({"pair_photos": len(pairs), "cohort_photos": len(cohort), "genuine_pairs": int(genuine.sum()),
                      "impostor_pairs": int((~genuine).sum())}))
    print("plain", accepted(distances, genuine, upper))
    for k in KS:
        spread = to_cohort[:, :k].mean(axis=1)
        for weight in WEIGHTS:
            adjusted = distances - weight * 0.5 * (spread[:, None] + spread[None, :])
            print(f"k={k} weight={weight}", accepted(adjusted, genuine, upper), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
