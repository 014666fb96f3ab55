"""How many genuine pairs the starter embedding accepts at very low false-match rates, on LFW.

The door's 1:N rule asks for a false-match rate per template of about target / templates
(1 stranger in 1,000 approaches against 5,000 templates: ~2e-7). This measures what the model
gives there, one photo against one photo: LFW photos with a face, at most the first 10 of each
person (so a few people with hundreds of photos do not make the genuine pairs), the people split in two
halves by a fixed seed (LFW's faces filed under two names, benchmarks/lfw_same_faces.py, are one
person), all pairs within one half; for each false-match rate, the distance at that share of the
impostor pairs and the share of genuine pairs within it.

    python benchmarks/model_tar_at_far.py --lfw ../shared/datasets/lfw --cache /tmp/door/photos

With ``--door DIR`` (the folder benchmarks/door_clips.py wrote) it leaves out the
door's calibration people, whose photos are the shipped cohort, and reports the
same rates for the cohort-adjusted distance the door uses for combined probes
(edge.gallery.cohort, the cohort from the engine manifest).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import identification
import lfw_same_faces

RATES = (1e-3, 1e-4, 1e-5, 1e-6)
PER_PERSON = 10


def photo_number(name: str) -> int:
    return int(Path(name).stem.rsplit("_", 1)[1])


def person_half(people: np.ndarray, seed: int) -> np.ndarray:
    """Rows whose person is in the measured half: the people (one integer per face) split in two by ``seed``."""
    faces = int(people.max()) + 1
    return np.isin(people, np.random.default_rng(seed).permutation(faces)[: faces // 2])


def accepted_at(embeddings: np.ndarray, people: np.ndarray, rates=RATES, cohort=None) -> dict:
    """{rate: (distance, share of genuine pairs at or within it)} over all pairs of rows (adjusted
    distances with a ``cohort``: edge.gallery.cohort)."""
    units = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    distances = np.sqrt(np.maximum(2.0 - 2.0 * units @ units.T, 0.0))
    if cohort is not None:
        spreads = cohort.spreads(units)
        distances = cohort.adjust(distances, spreads[:, None], spreads[None, :])
    upper = np.triu_indices(len(units), 1)
    same = people[upper[0]] == people[upper[1]]
    pairs = distances[upper]
    genuine, impostor = pairs[same], np.sort(pairs[~same])
    out = {}
    for rate in rates:
        cut = float(impostor[int(rate * len(impostor))])
        out[rate] = (cut, float(np.mean(genuine <= cut)))
    return {"genuine_pairs": int(genuine.size), "impostor_pairs": int(impostor.size), "at": out}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True, help="folder of the photo embedding cache")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--door", type=Path, help="door_clips.py folder: leave out its calibration people (the "
                                                  "cohort) and report cohort-adjusted rates too")
    args = parser.parse_args(argv)
    from edge.gallery.cohort import Cohort
    from edge.pipeline import FacePipeline

    pipeline = FacePipeline.load(threads=1)
    names = sorted(str(path.relative_to(args.lfw / "images")) for path in (args.lfw / "images").glob("*/*.jpg"))
    found = identification.embed_all(pipeline, args.lfw, names, identification.cache_file(args.cache, pipeline))
    names = [name for name in names if found.get(name) is not None and photo_number(name) <= PER_PERSON]
    people = lfw_same_faces.face_ids(name.split("/")[0] for name in names)
    chosen = person_half(people, args.seed)
    if args.door:
        cohort_people = set(json.loads((args.door / "plan.json").read_text())["split"]["calibration"])
        chosen &= np.array([name.split("/")[0] not in cohort_people for name in names])
    rows = np.stack([found[name] for name in names])[chosen].astype(np.float64)
    result = accepted_at(rows, people[chosen])
    if args.door:
        result["cohort_adjusted"] = accepted_at(rows, people[chosen], cohort=Cohort.from_manifest(pipeline.manifest))
    print(json.dumps({"photos": int(chosen.sum()), **result}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
