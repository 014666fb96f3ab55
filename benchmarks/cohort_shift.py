"""Does the cohort adjustment hold on another camera and population? NUAA's webcam subjects.

The cohort (edge.gallery.cohort) is made of LFW press photos of public figures,
and its risk is a site whose people are rarer among them: their spreads come out
larger, so their strangers come nearer each other after adjusting. NUAA's real
frames (../shared/datasets/nuaa_train/real: 9 subjects, a 240x180 webcam, two
sessions, none of them in LFW) are such a site. Probes are combined as the door
combines a track (the quality-weighted mean of 5 frames in a row of one
subject, glasses, position and session; edge.daemon.tracking.combine); templates
are single frames. For each gallery size the door's thresholds for combined
probes (plain and cohort-adjusted, from the engine manifest) are applied to:

  * impostor pairs (a probe against every frame of another subject): the share
    within the threshold, and how many of the 36 subject pairs have any;
  * genuine pairs across sessions (a probe against the same subject's frames of
    the other session): the share within the threshold.

    python benchmarks/cohort_shift.py --nuaa ../shared/datasets/nuaa_train
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

SIZES = (790, 1000, 5000)
RUN = 5  # frames per combined probe


def frame_key(path: Path) -> tuple:
    """(subject, glasses, position, session, picture number) from ID_glasses_pos_session_picNo.jpg."""
    subject, glasses, position, session, number = path.stem.split("_")
    return subject, glasses, position, session, int(number)


def embed_frames(pipeline, folder: Path) -> list:
    """[(key, embedding, weight)] for every frame with a face."""
    from edge.daemon.tracking import frame_weight
    from edge.vision.image import load_image

    out = []
    paths = sorted(folder.glob("*/*.jpg"))
    for count, path in enumerate(paths, start=1):
        scene = pipeline.look(load_image(path))
        if scene.main is not None:
            out.append((frame_key(path), pipeline.embed(scene.main.chip)[0],
                        frame_weight(scene.main, pipeline.mean, pipeline.std, pipeline.padding)))
        if count % 400 == 0:
            print(f"embedded {count}/{len(paths)}", file=sys.stderr)
    return out


def combined_probes(frames: list, unit: bool) -> list:
    """[(subject, session, probe)] of RUN frames in a row of one sequence."""
    from edge.daemon.tracking import combine

    groups: dict = {}
    for key, embedding, weight in frames:
        groups.setdefault(key[:4], []).append((key[4], embedding, weight))
    probes = []
    for (subject, _, _, session), items in sorted(groups.items()):
        items.sort(key=lambda item: item[0])
        for start in range(0, len(items) - RUN + 1, RUN):
            run = items[start:start + RUN]
            probes.append((subject, session, combine([e for _, e, _ in run], [w for *_, w in run], unit=unit)))
    return probes


def pair_figures(distances: np.ndarray, same: np.ndarray, cross_session: np.ndarray, pairs_of: np.ndarray,
                 threshold: float) -> dict:
    impostor = ~same
    within = distances <= threshold
    subject_pairs = {tuple(pair) for pair in pairs_of[impostor & within]}
    return {"threshold": round(float(threshold), 4),
            "impostor_share": float(within[impostor].mean()), "impostor_within": int(within[impostor].sum()),
            "subject_pairs_with_any": len(subject_pairs),
            "genuine_cross_session_share": round(float(within[same & cross_session].mean()), 4)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nuaa", type=Path, default=Path("../shared/datasets/nuaa_train"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from edge.daemon.decision import combined_cohort, door_threshold
    from edge.pipeline import FacePipeline

    pipeline = FacePipeline.load(threads=1)
    cohort = combined_cohort(pipeline.manifest)
    if cohort is None:
        raise SystemExit("the engine manifest ships no cohort: `edge-verify models fetch --force`")
    frames = embed_frames(pipeline, args.nuaa / "real")
    probes = combined_probes(frames, pipeline.normalize)
    templates = np.stack([embedding for _, embedding, _ in frames]).astype(np.float64)
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    vectors = np.stack([probe for *_, probe in probes]).astype(np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    plain = np.sqrt(np.maximum(2 - 2 * vectors @ templates.T, 0))
    adjusted = cohort.adjust(plain, cohort.spreads(vectors)[:, None], cohort.spreads(templates)[None, :])
    probe_subject = np.array([subject for subject, _, _ in probes])
    template_subject = np.array([key[0] for key, _, _ in frames])
    same = probe_subject[:, None] == template_subject[None, :]
    cross = np.array([session for _, session, _ in probes])[:, None] != \
        np.array([key[3] for key, _, _ in frames])[None, :]
    pairs_of = np.array([[tuple(sorted((a, b))) for b in template_subject] for a in probe_subject])
    report = {"frames": len(frames), "probes": len(probes), "subjects": len(set(template_subject.tolist())),
              "impostor_pairs": int((~same).sum()), "genuine_cross_session_pairs": int((same & cross).sum()),
              "spreads_median": {"nuaa_frames": round(float(np.median(cohort.spreads(templates))), 4),
                                 "cohort_offset": cohort.offset},
              "sizes": {}}
    for size in SIZES:
        plain_threshold = door_threshold({k: v for k, v in pipeline.manifest.items() if k != "cohort"}, size,
                                         combined=True).threshold
        adjusted_threshold = door_threshold(pipeline.manifest, size, combined=True).threshold
        report["sizes"][size] = {
            "plain": pair_figures(plain, same, cross, pairs_of, plain_threshold),
            "adjusted": pair_figures(adjusted, same, cross, pairs_of, adjusted_threshold)}
    least = {}
    for a, b in itertools.combinations(sorted(set(template_subject.tolist())), 2):
        mask = (probe_subject[:, None] == a) & (template_subject[None, :] == b) | \
               (probe_subject[:, None] == b) & (template_subject[None, :] == a)
        least[f"{a}-{b}"] = {"plain": round(float(plain[mask].min()), 4), "adjusted": round(float(adjusted[mask].min()), 4)}
    report["least_impostor_per_subject_pair"] = dict(sorted(least.items(), key=lambda item: item[1]["adjusted"])[:8])
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
