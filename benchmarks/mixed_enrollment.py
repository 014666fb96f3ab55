"""Mixed enrollments (two people under one name) against the product's one-person check, on LFW.

Every photo goes through what an enrollment frame goes through: the quality
gates (edge.enroll.quality.assess) and the embedding; photos that fail a gate
would never reach the check and are left out. The sets:

    genuine   5 good photos of one person
    mix 2+3   2 good photos of one person and 3 of another, in random order
    mix 1+4   1 good photo of one person and 4 of another

are judged by edge.enroll.one_person.check_frames with the engine's 1:1
threshold, exactly as `edge-verify enroll` judges them. Outcomes:

    refused      two groups of frames, or fewer than 3 frames left: nothing is stored
    trimmed      one odd frame (or more) set aside, the rest of one person enrolled
    both         frames of both people would be stored: the failure this guards against
    whole        every frame kept

A mix must never end as "both" (a 1+4 mix that ends "trimmed" stored only the four
frames of one person); a genuine enrollment should rarely end "refused".

People are split in two, so that the cut-off is never scored on the people it
was chosen on:
    tuning      people named in View 1's training split (pairsDevTrain.txt);
                `--tune` prints the split distances there (as a multiple of the
                1:1 threshold) and the cut-off they suggest;
    evaluation  every other LFW person; the figures reported (0 mixes accepted,
                at most 1 % of genuine enrollments refused) are theirs.

    EDGE_VERIFY_HOME=... python benchmarks/mixed_enrollment.py --lfw ../shared/datasets/lfw
    EDGE_VERIFY_HOME=... python benchmarks/mixed_enrollment.py --lfw ../shared/datasets/lfw --tune

Embeddings are cached (--cache, default /tmp/edge-verify-mixed-enrollment.npz): a
second run takes seconds.
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

from edge.enroll.capture import MIN_GOOD  # noqa: E402
from edge.enroll.one_person import SPLIT_CUTOFF, check_frames, split  # noqa: E402

PER_PERSON = 10  # photos embedded per person at most (seeded choice): enough for every set drawn here


def view1_train_people(lfw: Path) -> set[str]:
    people = set()
    for line in (lfw / "pairsDevTrain.txt").read_text().splitlines()[1:]:
        fields = line.split("\t")
        people.update(fields[0::2] if len(fields) == 4 else fields[:1])
    return people


def photos_by_person(lfw: Path, least: int) -> dict[str, list[Path]]:
    people = {}
    for folder in sorted((lfw / "images").iterdir()):
        photos = sorted(folder.glob("*.jpg"))
        if len(photos) >= least:
            people[folder.name] = photos
    return people


def embed_photos(pipeline, photos: list[Path], cache: dict, report) -> None:
    """cache[str(path)] = unit embedding, or None when the photo fails a quality gate."""
    from edge.enroll.quality import assess
    from edge.vision.image import load_image

    todo = [path for path in photos if str(path) not in cache]
    started = time.monotonic()
    for number, path in enumerate(todo, start=1):
        verdict = assess(pipeline, load_image(path))
        cache[str(path)] = pipeline.embed(verdict.chip[None])[0] if verdict.ok else None
        if number % 200 == 0 or number == len(todo):
            report(f"embedded {number}/{len(todo)} photos ({time.monotonic() - started:.0f} s)")


def load_cache(path: Path) -> dict:
    if not path.exists():
        return {}
    data = np.load(path, allow_pickle=False)
    cache = {name: vector for name, vector in zip(data["good_names"], data["good_vectors"])}
    cache.update({name: None for name in data["bad_names"]})
    return cache


def save_cache(path: Path, cache: dict) -> None:
    good = {name: vector for name, vector in cache.items() if vector is not None}
    np.savez(path, good_names=np.array(list(good), dtype=str),
             good_vectors=np.stack(list(good.values())) if good else np.zeros((0, 128), np.float32),
             bad_names=np.array([name for name, vector in cache.items() if vector is None], dtype=str))


def good_vectors(people: dict, cache: dict) -> dict[str, list[np.ndarray]]:
    out = {}
    for person, photos in people.items():
        vectors = [cache[str(path)] for path in photos if cache.get(str(path)) is not None]
        if vectors:
            out[person] = vectors
    return out


def draw_genuine(vectors: dict, count: int, rng: random.Random) -> tuple[list[np.ndarray], int]:
    """``count`` distinct 5-photo sets, one per person first, then more from people with many photos."""
    eligible = sorted(person for person, rows in vectors.items() if len(rows) >= 5)
    sets, seen = [], set()
    attempts = 0
    while len(sets) < count and eligible and attempts < 100 * count:
        attempts += 1
        person = eligible[len(sets) % len(eligible)] if len(sets) < len(eligible) else rng.choice(eligible)
        chosen = tuple(sorted(rng.sample(range(len(vectors[person])), 5)))
        if (person, chosen) in seen:
            continue
        seen.add((person, chosen))
        sets.append(np.stack([vectors[person][index] for index in chosen]))
    return sets, len({person for person, _ in seen})


def draw_mixes(vectors: dict, count: int, first: int, second: int, rng: random.Random) -> list[tuple]:
    """``count`` (rows, labels) sets of ``first`` photos of one person (label 0) and ``second`` of another
    (label 1), shuffled."""
    small = sorted(person for person, rows in vectors.items() if len(rows) >= first)
    large = sorted(person for person, rows in vectors.items() if len(rows) >= second)
    sets = []
    while len(sets) < count:
        one, other = rng.choice(small), rng.choice(large)
        if one == other:
            continue
        rows = [(0, row) for row in rng.sample(vectors[one], first)] + [(1, row) for row in rng.sample(vectors[other], second)]
        rng.shuffle(rows)
        sets.append((np.stack([row for _, row in rows]), np.array([label for label, _ in rows])))
    return sets


def ratios(sets: list[np.ndarray], threshold: float) -> np.ndarray:
    return np.array([split(rows)[0] / threshold for rows in sets])


def percentiles(values: np.ndarray) -> dict:
    return {f"p{q:g}": round(float(np.percentile(values, q)), 4) for q in (0, 0.5, 1, 5, 50, 95, 99, 99.5, 100)}


def outcome(rows: np.ndarray, threshold: float, labels=None) -> str:
    """refused, trimmed, both or whole (see the module docstring), as the product decides."""
    verdict = check_frames(rows, threshold)
    if verdict.problem is not None or len(verdict.keep) < MIN_GOOD:
        return "refused"
    if labels is not None and len(set(labels[verdict.keep])) > 1:
        return "both"
    return "trimmed" if verdict.odd else "whole"


def tally(outcomes: list[str]) -> dict:
    return {name: outcomes.count(name) for name in ("refused", "trimmed", "both", "whole")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=Path("../shared/datasets/lfw"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/edge-verify-mixed-enrollment.npz"))
    parser.add_argument("--mixes", type=int, default=200, help="mixes of each kind (2+3 and 1+4)")
    parser.add_argument("--genuine", type=int, default=150, help="genuine 5-photo enrollments")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--tune", action="store_true",
                        help="print split distances on the tuning people (View 1 training split) instead")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    from edge.pipeline import FacePipeline

    def report(message):
        print(message, file=sys.stderr, flush=True)

    tuning = view1_train_people(args.lfw)
    everyone = photos_by_person(args.lfw, least=1)
    chooser = random.Random(args.seed)
    # One photo is all a 1+4 mix needs of the first person; people with two or more cover all sets.
    wanted = {person: sorted(chooser.sample(photos, min(len(photos), PER_PERSON)))
              for person, photos in everyone.items() if len(photos) >= 2 and (person in tuning) == args.tune}
    pipeline = FacePipeline.load(threads=1)
    threshold = float(pipeline.threshold)
    cache = load_cache(args.cache)
    try:
        embed_photos(pipeline, [path for photos in wanted.values() for path in photos], cache, report)
    finally:
        save_cache(args.cache, cache)
    vectors = good_vectors(wanted, cache)
    rng = random.Random(args.seed + 1)
    genuine, genuine_people = draw_genuine(vectors, args.genuine, rng)
    mixes = {"2+3": draw_mixes(vectors, args.mixes, 2, 3, rng), "1+4": draw_mixes(vectors, args.mixes, 1, 4, rng)}
    figures = {
        "people": "tuning: View 1 training split (pairsDevTrain.txt)" if args.tune
                  else "evaluation: LFW people not in View 1's training split",
        "threshold_1to1": threshold, "cutoff": SPLIT_CUTOFF,
        "photos": len([path for photos in wanted.values() for path in photos]),
        "photos_failing_gates": sum(cache[str(path)] is None for photos in wanted.values() for path in photos),
        "genuine": {"sets": len(genuine), "people": genuine_people,
                    **tally([outcome(rows, threshold) for rows in genuine])},
        "mixes": {kind: {"sets": len(sets), **tally([outcome(rows, threshold, labels) for rows, labels in sets])}
                  for kind, sets in mixes.items()},
    }
    if args.tune:
        figures["split_over_threshold"] = {"genuine": percentiles(ratios(genuine, threshold)),
                                           **{kind: percentiles(ratios([rows for rows, _ in sets], threshold))
                                              for kind, sets in mixes.items()}}
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
