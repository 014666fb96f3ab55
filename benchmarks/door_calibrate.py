"""The impostor distances of combined probes: what the 1:N rule needs to judge a track's combined frames.

The daemon follows each face and decides, at every frame, on the combined probe
of the frames so far (edge.daemon.tracking). A stranger's approach is let in if
ANY of those decisions matches: so the impostor distance of one approach to one
template is the least distance over every combined probe the daemon would
decide on during that approach (tracks of at least ``min_frames`` frames). This
script measures those distances on the calibration approaches of
benchmarks/door_clips.py (LFW people who are neither staff nor strangers in the
door measurement, never enrolled at 158 or 1,000), through the daemon's own
tracker, weights and combining, against templates of other people (every photo
of the calibration people and of the people with one photo who are not
distractors at 1,000 enrolled; LFW's few faces filed under two names, listed in
benchmarks/lfw_same_faces.py, are the same person). It keeps the smallest distances and the count,
the form of the manifest's ``impostor_tail``; with ``--write`` it stores them as
``combined_impostor_tail`` in build/models/dlib_resnet_calibration.json, which
`edge-verify models fetch --force` puts into the engine manifest. It also
measures the same least distances cohort-adjusted (edge.gallery.cohort; the
cohort from benchmarks/door_cohort.py) and writes the cohort with their tail,
``cohort_combined_impostor_tail``, which the door then decides with.

For comparison it reports the tail of single photos against the same templates
(one photo = one attempt, the rule the per-frame daemon used) and of single
frames per approach (the least distance over every frame of the approach: what a
per-frame decision faces).

    python benchmarks/door_calibrate.py --door /tmp/door [--write]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import door_clips
import door_cohort
import door_frames
import identification
import lfw_same_faces
from edge.daemon.decision import DEFAULT_MIN_FRAMES
from edge.daemon.tracking import DEFAULT_WINDOW as COMBINE_WINDOW
from edge.gallery.threshold import openset_threshold_from_tail
from edge.pipeline import FacePipeline

TAIL = 5000
CALIBRATION_JSON = Path(__file__).resolve().parent.parent / "build" / "models" / "dlib_resnet_calibration.json"


def template_set(plan: dict, counts: dict, photos: dict) -> tuple[np.ndarray, np.ndarray]:
    """(templates, owner names): every photo of the calibration people and of the one-photo people
    who are not distractors at 1,000 enrolled."""
    split = plan["split"]
    taken = set(door_clips.distractors(split, 1000 - len(split["staff"]), plan["seed"]))
    people = list(split["calibration"]) + [name for name in split["singles"] if name not in taken]
    rows, owners = [], []
    for person in people:
        for number in range(1, counts[person] + 1):
            vector = photos.get(door_clips.image_name(person, number))
            if vector is not None:
                rows.append(vector)
                owners.append(person)
    return np.stack(rows).astype(np.float32), np.array(owners)


def smallest(values: np.ndarray, kept: list, tail: int) -> list:
    if values.size == 0:
        return kept
    part = np.partition(values, min(tail, values.size) - 1)[:tail]
    return list(np.sort(np.concatenate([np.asarray(kept), part]))[:tail])


def distances_to(templates: np.ndarray, probes: np.ndarray) -> np.ndarray:
    squared = (probes**2).sum(1)[:, None] + (templates**2).sum(1)[None] - 2.0 * probes @ templates.T
    return np.sqrt(np.maximum(squared, 0.0))


def measure(plan: dict, counts: dict, photos: dict, frames_dir: Path, pipeline, min_frames: int) -> dict:
    templates, owners = template_set(plan, counts, photos)
    combined, per_frame, single_photo, adjusted = [], [], [], []
    counted = {"combined": 0, "per_frame": 0, "single_photo": 0, "adjusted": 0}
    keys: dict = {}
    cohort, cohort_people, cohort_entry = door_cohort.build(plan, counts, photos, keys)
    template_people = np.array([door_cohort.face_number(keys, owner) for owner in owners])
    items = [item for item in plan["approaches"] if item["kind"] == "calibration"]
    by_clip: dict = {}
    for item in items:
        by_clip.setdefault(item["clip"], []).append(item)
    done = 0
    for clip, group in sorted(by_clip.items()):
        frames = door_frames.records(frames_dir / f"{Path(clip).stem}.npz", pipeline)
        for item in group:
            others = np.array([owner != item["person"] and not lfw_same_faces.same_face(owner, item["person"])
                               for owner in owners])
            span = frames[item["first_frame"]:item["last_frame"] + 1]
            seen = list(door_frames.decisions(span, pipeline))
            decided = [probe for _, _, count, probe, _ in seen if count >= min_frames]
            if decided:
                plain = distances_to(templates[others], np.stack(decided))
                least = plain.min(axis=0)
                combined = smallest(least, combined, TAIL)
                counted["combined"] += least.size
                pairs = door_cohort.PairSpreads(cohort, cohort_people, templates[others], template_people[others])
                least = pairs.adjusted(plain.astype(np.float64), np.stack(decided),
                                       door_cohort.face_number(keys, item["person"])).min(axis=0)
                adjusted = smallest(least, adjusted, TAIL)
                counted["adjusted"] += least.size
            singles = [embedding for *_, embedding in seen]
            if singles:
                least = distances_to(templates[others], np.stack(singles).astype(np.float32)).min(axis=0)
                per_frame = smallest(least, per_frame, TAIL)
                counted["per_frame"] += least.size
            for name in item["photos"]:
                vector = photos.get(name)
                if vector is not None:
                    values = distances_to(templates[others], vector[None].astype(np.float32))[0]
                    single_photo = smallest(values, single_photo, TAIL)
                    counted["single_photo"] += values.size
            done += 1
        print(f"{done}/{len(items)} calibration approaches", file=sys.stderr)

    def tail(values, count, what):
        return {"count": int(count), "distances": [round(float(v), 6) for v in values], "source": what}

    source = (f"{len(items)} door-clip approaches of LFW people outside the door measurement "
              f"(benchmarks/door_clips.py calibration set) against {len(templates)} photos of other people")
    return {
        "combined_impostor_tail": {**tail(combined, counted["combined"],
                                          f"least distance over every combined probe of >= {min_frames} frames the "
                                          f"daemon decides on per approach; {source}"),
                                   "min_frames": min_frames, "window": COMBINE_WINDOW},
        "per_frame_impostor_tail": tail(per_frame, counted["per_frame"],
                                        f"least distance over the single frames of each approach; {source}"),
        "single_photo_impostor_tail": tail(single_photo, counted["single_photo"],
                                           f"each approach photo on its own; {source}"),
        "cohort_combined_impostor_tail": {**tail(adjusted, counted["adjusted"],
                                                 f"as combined_impostor_tail, of cohort-adjusted distances (edge.gallery."
                                                 f"cohort; both people of each pair out of the cohort); {source}"),
                                          "min_frames": min_frames, "window": COMBINE_WINDOW},
        "cohort": cohort_entry,
        "templates": int(len(templates)), "approaches": len(items),
    }


def thresholds(report: dict, sizes=(790, 1000, 5000, 25000), rate: float = 1e-3) -> dict:
    out = {}
    for key in ("combined_impostor_tail", "cohort_combined_impostor_tail", "per_frame_impostor_tail",
                "single_photo_impostor_tail"):
        tail = report[key]
        out[key] = {n: round(openset_threshold_from_tail(tail["distances"], tail["count"], n, rate), 4) for n in sizes}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--door", type=Path, required=True, help="the folder door_clips.py and door_frames.py wrote")
    parser.add_argument("--lfw", type=Path, default=Path("../shared/datasets/lfw"))
    parser.add_argument("--photos", type=Path, help="photo embedding cache folder (default DOOR/photos)")
    parser.add_argument("--min-frames", type=int, default=DEFAULT_MIN_FRAMES)
    parser.add_argument("--write", action="store_true", help=f"store combined_impostor_tail in {CALIBRATION_JSON}")
    parser.add_argument("--json", type=Path, help="write the report here too")
    args = parser.parse_args(argv)

    plan = json.loads((args.door / "plan.json").read_text())
    counts = door_clips.photo_counts(args.lfw)
    pipeline = FacePipeline.load(threads=1)
    cache = identification.cache_file(args.photos or args.door / "photos", pipeline)
    names = sorted({door_clips.image_name(p, n) for group in ("calibration", "singles") for p in plan["split"][group]
                    for n in range(1, counts[p] + 1)})
    photos = identification.embed_all(pipeline, args.lfw, names, cache)
    report = measure(plan, counts, photos, args.door / "frames", pipeline, args.min_frames)
    summary = {"templates": report["templates"], "approaches": report["approaches"],
               "counts": {key: report[key]["count"] for key in report if key.endswith("tail")},
               "smallest": {key: report[key]["distances"][:5] for key in report if key.endswith("tail")},
               "cohort": {key: value for key, value in report["cohort"].items() if key != "float16_base64"},
               "thresholds_at_templates": thresholds(report)}
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({**report, "summary": summary}, indent=1) + "\n")
    if args.write:
        figures = json.loads(CALIBRATION_JSON.read_text())
        for key in ("combined_impostor_tail", "cohort_combined_impostor_tail", "cohort"):
            figures[key] = report[key]
        CALIBRATION_JSON.write_text(json.dumps(figures, indent=1) + "\n")
        print(f"wrote combined_impostor_tail, cohort_combined_impostor_tail and cohort into {CALIBRATION_JSON}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
