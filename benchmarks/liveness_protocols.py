"""Liveness on subjects and sessions the model has not seen, through the training code.

Protocols on a NUAA-style folder (real/, fake/; file names ID_glasses_pos_SESSION_n):

* ``subjects``: leave one subject out, every subject in turn, at a threshold
  chosen by an inner leave-one-subject-out round on the others (what
  `edge-verify train attributes` reports);
* ``s1->s2`` / ``s2->s1``: the same, but heads and thresholds see only one
  capture session and the held-out subject is measured on the other session
  (new person *and* new capture conditions, the closer stand-in for a kiosk);
* ``multi-frame``: the ``subjects`` protocol with the daemon's cue, the mean
  probability of K consecutive frames of one capture (same subject, session,
  class, in frame-number order);
* ``perturbed``: the ``subjects`` protocol with the held-out frames darker,
  brighter, flatter, colour-cast, blurred or JPEG-recompressed.

Backbones: ``embedding`` (what ships: `live` reads the stem, default), or
``deeper`` (stem plus stage2 statistics, the variant that was rejected) to show
why the shipped `live` head stops at the stem.

    EDGE_VERIFY_HOME=... python benchmarks/liveness_protocols.py \\
        --data ../shared/datasets/nuaa_train --json liveness-protocols.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edge_build.training.attribute_metrics import spoof_errors

PERTURBATIONS = ("dark", "bright", "flat", "warm", "cool", "blur", "jpeg50")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="NUAA-style folder with real/ and fake/")
    parser.add_argument("--backbone", choices=("embedding", "deeper"), default="embedding")
    parser.add_argument("--l2", type=float, nargs="+", default=None, help="head L2 weights to compare (default: shipped)")
    parser.add_argument("--frames", type=int, default=5, help="K for the multi-frame cue (default 5)")
    parser.add_argument("--perturb", action="store_true", help="also run the perturbed protocol (slow: features per variant)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    return parser.parse_args(argv)


def session_of(path: Path) -> str:
    parts = Path(path).stem.split("_")
    return parts[3] if len(parts) > 3 else "?"


def frame_of(path: Path) -> int:
    tail = Path(path).stem.split("_")[-1]
    return int(tail) if tail.isdigit() else 0


def held_out_heads(features, live, subjects, train_mask, l2) -> dict:
    """{subject: (weights, bias, threshold)} fitted on the ``train_mask`` faces of
    the other subjects, threshold by an inner leave-one-subject-out round."""
    from edge_build.training import attribute_heads as heads

    fitted = {}
    for subject in sorted(set(subjects)):
        train = train_mask & (subjects != subject)
        threshold = heads.head_threshold(features[train], live[train], heads.subject_folds(subjects[train]), l2)
        fitted[subject] = (*heads.fit_logistic(features[train], live[train], l2), threshold)
    return fitted


def held_out_scores(features, subjects, test_mask, fitted: dict) -> tuple[np.ndarray, np.ndarray]:
    """Each subject's ``test_mask`` faces scored by its held-out heads: (probability
    minus threshold, accepted); NaN/False elsewhere. Centred, so windows can be judged against 0."""
    from edge_build.training import attribute_heads as heads

    centred = np.full(len(features), np.nan)
    for subject, (weights, bias, threshold) in fitted.items():
        test = test_mask & (subjects == subject)
        centred[test] = heads.probabilities(features[test], weights, bias) - threshold
    return centred, centred >= 0


def errors(accepted, live, mask) -> dict:
    return spoof_errors(accepted[mask], live[mask])


def multi_frame(centred, live, subjects, sessions, frames, k: int) -> dict:
    """Mean of K consecutive frames (non-overlapping runs) of one capture vs threshold."""
    accepted, truth = [], []
    keys = sorted({(s, e, bool(l)) for s, e, l in zip(subjects, sessions, live)})
    for subject, session, real in keys:
        rows = np.flatnonzero((subjects == subject) & (sessions == session) & (live == real) & ~np.isnan(centred))
        rows = rows[np.argsort(frames[rows], kind="stable")]
        for start in range(0, len(rows) - k + 1, k):
            accepted.append(float(np.mean(centred[rows[start:start + k]])) >= 0)
            truth.append(real)
    return spoof_errors(np.asarray(accepted), np.asarray(truth))


def perturb(chips: np.ndarray, kind: str) -> np.ndarray:
    import cv2

    c = chips.astype(np.float32)
    if kind == "dark":
        c = c * 0.7
    elif kind == "bright":
        c = c * 1.3
    elif kind == "flat":
        mean = c.mean(axis=(1, 2, 3), keepdims=True)
        c = (c - mean) * 0.7 + mean
    elif kind == "warm":
        c = c * np.array([1.1, 1.0, 0.85], dtype=np.float32)
    elif kind == "cool":
        c = c * np.array([0.9, 1.0, 1.15], dtype=np.float32)
    elif kind == "blur":
        c = np.stack([cv2.GaussianBlur(x, (0, 0), 1.0) for x in c])
    elif kind == "jpeg50":
        c = np.stack([cv2.imdecode(cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, 50])[1], cv2.IMREAD_UNCHANGED)
                      for x in chips])
    return np.clip(np.rint(c), 0, 255).astype(np.uint8)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from edge_build.models import attributes as model
    from edge_build.models import finetune
    from edge_build.training import attribute_heads as heads
    from edge_build.training import attribute_data

    torch.set_num_threads(2)
    dataset = attribute_data.load_dataset(args.data)
    from edge import paths

    chips, found, _ = attribute_data.cached_chips(dataset.paths, paths.home() / "cache" / "attribute-chips")
    keep = np.flatnonzero(found)
    paths_kept = [dataset.paths[i] for i in keep]
    contract = model.make_contract(["live"], backbone="embedding")
    inputs = attribute_data.normalise(chips[keep], contract)
    live = dataset.labels[keep, 0] > 0
    subjects = np.asarray([dataset.subjects[i] for i in keep])
    sessions = np.asarray([session_of(p) for p in paths_kept])
    frames = np.asarray([frame_of(p) for p in paths_kept])
    # "deeper": the live head reading stem and stage2 together
    extractor = model.features_from(finetune.pretrained(), deep=args.backbone == "deeper")

    def features_of(batch_inputs):
        return heads.tap_features(extractor, batch_inputs, progress=False)

    features = features_of(inputs)
    everyone = np.ones(len(live), dtype=bool)
    report = {"data": str(args.data), "backbone": args.backbone, "faces": int(len(live)),
              "faceless": int((~found).sum()), "by_l2": {}}
    shipped = None
    for l2 in args.l2 or [heads.HEAD_L2]:
        entry = {}
        fitted = held_out_heads(features, live, subjects, everyone, l2)
        shipped = fitted if l2 == heads.HEAD_L2 else shipped
        centred, accepted = held_out_scores(features, subjects, everyone, fitted)
        entry["subjects"] = errors(accepted, live, everyone)
        entry["subjects_by_subject"] = {s: errors(accepted, live, subjects == s) for s in sorted(set(subjects))}
        entry[f"subjects_{args.frames}_frames"] = multi_frame(centred, live, subjects, sessions, frames, args.frames)
        for first, second in (("01", "02"), ("02", "01")):
            one_session = held_out_heads(features, live, subjects, sessions == first, l2)
            _, cross = held_out_scores(features, subjects, sessions == second, one_session)
            entry[f"s{int(first)}->s{int(second)}"] = errors(cross, live, sessions == second)
        report["by_l2"][str(l2)] = entry
        print(f"l2 {l2}: " + "  ".join(f"{name}: APCER {e['apcer']:.3%} ({e['attacks_accepted']}/{e['attacks']}) "
                                      f"BPCER {e['bpcer']:.3%} ({e['real_rejected']}/{e['real']})"
                                      for name, e in entry.items() if "apcer" in e), flush=True)
    if args.perturb:
        report["perturbed"] = {}
        # the heads fitted on unaltered faces at the shipped L2 judge the altered ones
        shipped = shipped or held_out_heads(features, live, subjects, everyone, heads.HEAD_L2)
        for kind in PERTURBATIONS:
            varied = features_of(attribute_data.normalise(perturb(chips[keep], kind), contract))
            _, accepted = held_out_scores(varied, subjects, everyone, shipped)
            report["perturbed"][kind] = errors(accepted, live, everyone)
            e = report["perturbed"][kind]
            print(f"perturbed {kind}: APCER {e['apcer']:.3%} BPCER {e['bpcer']:.3%}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
