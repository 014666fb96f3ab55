"""1:N identification on LFW: the figure the enrollment issue asks for.

Protocol:
  * enrolled: every LFW person with at least 10 images; templates from images
    1-5 (by number), probes from images 6-10 (the next five);
  * strangers: 1,000 people with exactly one LFW image, never enrolled (the
    first 1,000 alphabetically, or a seeded random 1,000 with --seed);
  * every image goes through the real pipeline (MTCNN, alignment, the dlib
    ResNet engine, flip averaging), main face only.
The gallery is the template matrix searched with edge.gallery.search, the same
search the kiosk uses; the templates are not written through the gallery file
and the enrollment quality gates are not applied (LFW enrollment images are
taken as they are, which makes the figure slightly pessimistic).

Reported at the shipped 1:N threshold (edge.gallery.threshold.gallery_threshold
with this gallery's template count) and, for comparison, at 0.6 and at the
model's 1:1 threshold. 0.6 is face_recognition's tolerance on raw dlib
embeddings; when the manifest says the embeddings are unit-length
("embedding_normalization": "l2") distances are smaller and 0.6 is far looser:
  rank-1             probes whose nearest person is the right one (no threshold)
  accepted right     probes at or below the threshold and nearest the right person
  accepted wrong     probes at or below the threshold but nearest another person
  strangers accepted strangers at or below the threshold from anyone
An image with no detected face counts as a probe the kiosk rejects (or a
stranger it rejects); such images are counted in the report.

Embeddings are cached (keyed by the engine file's hash, flip averaging and the
manifest's embedding normalisation) in
--cache (default /work/cache/runs if it exists, else $EDGE_VERIFY_HOME/cache),
so a rerun only recomputes the figures.

    EDGE_VERIFY_HOME=... python benchmarks/identification.py --lfw ../shared/datasets/lfw --json out.json
"""
from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ENROLL = range(1, 6)
PROBES = range(6, 11)
FACE_RECOGNITION_TOLERANCE = 0.6


def plan(lfw: Path, strangers: int, seed: int | None) -> dict:
    """Relative image paths: {"enroll": {person: [..]}, "probe": {person: [..]}, "strangers": [..]}."""
    folders = sorted(path for path in (lfw / "images").iterdir() if path.is_dir())
    counts = {folder.name: len(list(folder.glob("*.jpg"))) for folder in folders}
    enrolled = [name for name, count in counts.items() if count >= 10]
    singles = [name for name, count in counts.items() if count == 1]
    if seed is not None:
        random.Random(seed).shuffle(singles)
    if len(singles) < strangers:
        raise SystemExit(f"only {len(singles)} one-image people in {lfw}; asked for {strangers}")

    def image(name: str, number: int) -> str:
        return f"{name}/{name}_{number:04d}.jpg"

    return {"enroll": {name: [image(name, n) for n in ENROLL] for name in enrolled},
            "probe": {name: [image(name, n) for n in PROBES if (lfw / "images" / image(name, n)).exists()]
                      for name in enrolled},
            "strangers": [image(name, 1) for name in singles[:strangers]]}


def cache_file(folder: Path, pipeline) -> Path:
    # everything that changes an embedding: the engine, flip averaging, the manifest's normalisation
    normalisation = pipeline.manifest.get("embedding_normalization") or "raw"
    tag = f"{pipeline.manifest['engine_sha256'][:12]}_{'flip' if pipeline.flip else 'noflip'}_{normalisation}"
    return folder / f"identification_embeddings_{tag}.npz"


def embed_all(pipeline, lfw: Path, names: list[str], cache: Path) -> dict:
    """{relative path: embedding or None (no face)}, computing only what the cache lacks."""
    from edge.vision.image import load_image

    known: dict = {}
    if cache.exists():
        data = np.load(cache)
        known = {str(name): (vector if found else None)
                 for name, vector, found in zip(data["names"], data["embeddings"], data["found"])}
    todo = [name for name in names if name not in known]
    start = time.perf_counter()
    for count, name in enumerate(todo, start=1):
        described = pipeline.describe(load_image(lfw / "images" / name))
        known[name] = described.embeddings[0] if described.faces else None
        if count % 200 == 0 or count == len(todo):
            print(f"embedded {count}/{len(todo)} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    if todo:
        cache.parent.mkdir(parents=True, exist_ok=True)
        ordered = sorted(known)
        dim = next(len(v) for v in known.values() if v is not None)
        blank = np.zeros(dim, np.float32)
        np.savez(cache, names=np.array(ordered),
                 embeddings=np.stack([blank if known[n] is None else known[n] for n in ordered]),
                 found=np.array([known[n] is not None for n in ordered]))
    return known


def gallery_matrix(layout: dict, vectors: dict) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    names, index, rows, missing = [], [], [], 0
    for person, images in layout["enroll"].items():
        found = [vectors[image] for image in images if vectors.get(image) is not None]
        missing += len(images) - len(found)
        if not found:
            continue
        names.append(person)
        index.extend([len(names) - 1] * len(found))
        rows.extend(found)
    return names, np.asarray(index, dtype=np.intp), np.stack(rows).astype(np.float32), missing


def nearest(names, index, matrix, probes: list) -> list:
    from edge.gallery.search import search

    return [None if vector is None else search(matrix, index, names, vector) for vector in probes]


def score(truth: list, matches: list, strangers: list, threshold: float) -> dict:
    def accepted(match) -> bool:
        return match is not None and match.distance <= threshold

    right = sum(1 for who, match in zip(truth, matches) if accepted(match) and match.person == who)
    wrong = [(who, match.person, round(match.distance, 4)) for who, match in zip(truth, matches)
             if accepted(match) and match.person != who]
    let_in = sum(1 for match in strangers if accepted(match))
    return {"threshold": round(float(threshold), 4), "accepted_right": right,
            "accepted_right_rate": round(right / len(truth), 4), "accepted_wrong": len(wrong),
            "accepted_wrong_examples": wrong[:10], "strangers_accepted": let_in,
            "strangers_accepted_rate": round(let_in / len(strangers), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, required=True, help="LFW folder (with images/)")
    parser.add_argument("--strangers", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None, help="draw strangers at random with this seed "
                        "(default: the first ones alphabetically)")
    parser.add_argument("--target-rate", type=float, default=1e-3)
    default_cache = Path("/work/cache/runs") if Path("/work/cache/runs").is_dir() else None
    parser.add_argument("--cache", type=Path, default=default_cache, help="folder for the embedding cache")
    parser.add_argument("--json", type=Path, help="write the report here too")
    parser.add_argument("--sweep", action="store_true",
                        help="also report the figures at thresholds 0.30, 0.32, ... 0.60 (the trade-off)")
    args = parser.parse_args()

    from edge import paths
    from edge.gallery.threshold import choose_threshold
    from edge.pipeline import FacePipeline

    pipeline = FacePipeline.load(threads=1)
    layout = plan(args.lfw, args.strangers, args.seed)
    every = sorted({image for group in ("enroll", "probe") for images in layout[group].values() for image in images}
                   | set(layout["strangers"]))
    vectors = embed_all(pipeline, args.lfw, every, cache_file(args.cache or paths.home() / "cache", pipeline))

    names, index, matrix, enroll_missing = gallery_matrix(layout, vectors)
    truth = [person for person in names for _ in layout["probe"][person]]
    probe_vectors = [vectors[image] for person in names for image in layout["probe"][person]]
    matches = nearest(names, index, matrix, probe_vectors)
    strangers = nearest(names, index, matrix, [vectors[image] for image in layout["strangers"]])
    rank1 = sum(1 for who, match in zip(truth, matches) if match is not None and match.person == who)

    choice = choose_threshold(pipeline.manifest, len(matrix), args.target_rate)
    thresholds = {"shipped_1toN": choice.threshold, "tolerance_0.6": FACE_RECOGNITION_TOLERANCE,
                  "model_1to1": float(pipeline.manifest["threshold"])}
    strangers_from = f"seed {args.seed}" if args.seed is not None else "first alphabetically"
    report = {
        "protocol": "LFW people with >= 10 images: templates from images 1-5, probes from 6-10; strangers: "
                    f"{args.strangers} one-image people ({strangers_from}); search on the template matrix with "
                    "edge.gallery.search (not through the gallery file), no quality gates",
        "engine": pipeline.manifest.get("engine_sha256", "")[:12], "flip": pipeline.flip,
        "embedding_normalization": pipeline.manifest.get("embedding_normalization"),
        "people": len(names), "templates": int(len(matrix)), "enroll_images_without_face": enroll_missing,
        "probes": len(truth), "probes_without_face": sum(1 for match in matches if match is None),
        "strangers": len(strangers), "strangers_without_face": sum(1 for match in strangers if match is None),
        "rank1": rank1, "rank1_rate": round(rank1 / len(truth), 4),
        "threshold_rule": choice.as_dict(),
        "at": {label: score(truth, matches, strangers, value) for label, value in thresholds.items()},
    }
    if args.sweep:
        report["sweep"] = [{key: value for key, value in score(truth, matches, strangers, value).items()
                            if key != "accepted_wrong_examples"} for value in np.arange(0.30, 0.6001, 0.02)]
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
