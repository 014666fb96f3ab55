"""Experiment (issue 14): a recapture cue read at the camera's native resolution, across datasets.

The texture cue shrinks the face to a 64 px grey chip, which removes what gives
a recaptured face away at capture resolution: a screen's pixel grid and moire,
a print's halftone and paper grain, and the noise of a second camera. This cue
looks at the inner face **as captured** (an integer crop of 1.6 inter-ocular
distances around the five landmarks: no resampling, never an upscale; it
abstains below 24 px) and measures, each as a ratio, a correlation or a
normalised spectrum, so gain, offset and per-channel colour gains cancel:

* spectrum of the windowed grey crop: slope of the radial power (mid band),
  excess of the highest band over that slope, the strongest isolated peak
  against its ring (moire, pixel grid; normalised by the number of bins it was
  the maximum of), and axis-against-diagonal anisotropy of the high band;
* noise residual (crop minus its 3x3 median): lag-1 autocorrelation (the first
  camera's noise, blurred by the second, is correlated), kurtosis, and its
  energy against the mid band;
* colour: correlation of the channels' fine detail (a screen's sub-pixels
  decorrelate them) and fine log-chroma energy against fine log-luma energy
  (per-channel gains are additive in log and vanish in a high-pass).

``--relative`` subtracts from each face feature its median over the frame's
corners (patches of the crop's size clear of the face): the camera's own
signature should cancel, the recaptured surface's should not.

Three heads, every setting chosen on the training side by leave-one-group-out
folds: ``logistic`` (L2 weight from the folds, threshold refusing
``target_bpcer`` of held-out real frames); ``real-only`` (squared Mahalanobis
distance from the training reals, covariance shrunk 20 % toward the identity,
threshold at the same share of held-out reals: fitted on real faces only);
``one-feature`` (one feature, one side, threshold on the training reals; the
training attacks only pick the feature and side). Each is added to
texture+context (refused when any cue refuses, the daemon's rule), at the
shipped per-cue budget (2.5 % each) and at the same total budget as
texture+context (5 % / 3 per cue).

Protocols and camera shifts are those of benchmarks/liveness_cross_dataset.py
(the README's table rows); training uses native frames and the two random
camera shifts per frame that `edge-verify train liveness` uses.

    EDGE_VERIFY_HOME=... python benchmarks/liveness_recapture.py \\
        --nuaa ../shared/datasets/nuaa_train --replay ../shared/datasets/replay_dev [--relative] --json recapture.json

Outcome (2026-12, both folders of ../shared/datasets; ~20 min the first time, 2 shared cores): **not shipped**.
Across datasets the cue does not lower APCER at BPCER <= 5 %: NUAA -> replay, texture+context 64.2 % / 2.9 %
(APCER / BPCER), with the cue 63.2 / 2.9 (logistic) and 63.9 / 7.5 (real-only); replay -> NUAA 21.9 / 7.4
unchanged (the cue alone accepts 97-100 % of attacks in both directions). Its features read the camera more
than the surface: on native frames "high band excess" and the noise's lag-1 correlation tell NUAA's real
faces from replay_dev's with AUC 1.00 and 0.97; within a folder the best feature tells real from attack
at 0.87 (NUAA, fine chroma) and 0.80 (replay_dev, noise kurtosis).
``--relative`` narrows that (NUAA -> replay 55.0 / 8.3, but 21-25 % of real faces refused under 240x180,
1280x720 and colour casts). It helps only where the training side has the test side's camera and attack
type: both folders, one replay source out, 56.3 / 2.9 -> 26.2 / 6.2 (32.8 / 5.0 at a shared budget);
one NUAA subject out with --relative 30.3 / 4.0 -> 23.3 / 4.0.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

import liveness_cross_dataset as xd
from edge import paths
from edge.liveness import context
from edge_build.training import liveness as trainer
from edge_build.training import liveness_fit as fit
from edge_build.training import liveness_shifts as shifts
from edge_build.training.liveness_data import file_key
from edge_build.training.liveness_features import shifted

FEATURES = "native-recapture-v1"
NAMES = ("slope", "high_excess", "peak", "anisotropy", "noise_lag1", "noise_kurtosis", "noise_to_mid",
         "channel_corr", "chroma_to_luma")
SIDE = 1.6  # crop side in inter-ocular distances, centred on the five landmarks: eyes, nose, mouth, cheeks
MIN_SIDE = 24  # px: below this there is no native detail to read (the cue abstains)
EPS = 1e-9
HEADS = ("logistic", "real-only", "one-feature")


# -- features --------------------------------------------------------------------------------------

def face_crop(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """The inner face as captured (integer crop, RGB), or None when it is smaller than MIN_SIDE."""
    points = np.asarray(landmarks, dtype=np.float64)
    side = int(round(SIDE * np.hypot(*(points[1] - points[0]))))
    centre = points.mean(axis=0)
    rows, cols = image.shape[:2]
    left = int(np.clip(round(centre[0] - side / 2), 0, cols))
    top = int(np.clip(round(centre[1] - side / 2), 0, rows))
    side = min(side, cols - left, rows - top)
    if side < MIN_SIDE:
        return None
    return image[top:top + side, left:left + side]


_GRIDS: dict = {}


def _grid(size: int):
    if size not in _GRIDS:
        f = np.fft.fftfreq(size)
        fx, fy = np.meshgrid(f, f)
        radius = np.hypot(fx, fy)
        angle = np.abs(np.degrees(np.arctan2(fy, fx))) % 90.0
        axis = (angle < 10.0) | (angle > 80.0)
        diagonal = np.abs(angle - 45.0) < 20.0
        window = np.outer(np.hanning(size), np.hanning(size))
        rings = np.minimum((radius / 0.5 * 20).astype(int), 20)  # 20 rings to Nyquist, the corners in ring 20
        _GRIDS[size] = (radius, axis, diagonal, window, rings)
    return _GRIDS[size]


def spectrum_features(grey: np.ndarray) -> list:
    size = grey.shape[0]
    radius, axis, diagonal, window, rings = _grid(size)
    power = np.abs(np.fft.fft2((grey - grey.mean()) * window)) ** 2 + EPS
    counts = np.bincount(rings.ravel(), minlength=21)
    ring_power = np.bincount(rings.ravel(), power.ravel(), minlength=21) / np.maximum(counts, 1)
    centres = (np.arange(21) + 0.5) * 0.5 / 20
    mid = (centres >= 0.05) & (centres <= 0.25) & (counts > 0)
    slope, intercept = np.polyfit(np.log(centres[mid]), np.log(ring_power[mid]), 1)
    high = (centres >= 0.3) & (centres < 0.5) & (counts > 0)
    excess = float(np.mean(np.log(ring_power[high]) - (intercept + slope * np.log(centres[high]))))
    # each bin against its ring's mean: white noise gives Exp(1), whose maximum over n bins is about ln n
    relative = power / ring_power[rings]
    band = (radius >= 0.1) & (radius < 0.5)
    peak = float(np.log(relative[band].max() / np.log(max(band.sum(), 3))))
    fine = (radius >= 0.25) & (radius < 0.5)
    anisotropy = float(np.log(power[fine & axis].mean() / power[fine & diagonal].mean()))
    return [float(slope), excess, peak, anisotropy]


def noise_features(grey: np.ndarray) -> list:
    smooth = cv2.medianBlur(np.clip(np.rint(grey), 0, 255).astype(np.uint8), 3).astype(np.float32)
    residual = (grey - smooth)[2:-2, 2:-2].astype(np.float64)
    residual -= residual.mean()
    energy = np.mean(residual ** 2) + EPS
    lag = 0.5 * (np.mean(residual[:, 1:] * residual[:, :-1]) + np.mean(residual[1:] * residual[:-1])) / energy
    kurtosis = np.log(np.mean(residual ** 4) / energy ** 2 + EPS)
    band = (cv2.GaussianBlur(grey, (0, 0), 1.0) - cv2.GaussianBlur(grey, (0, 0), 3.0))[2:-2, 2:-2]
    to_mid = np.log(energy / (np.mean(band.astype(np.float64) ** 2) + EPS))
    return [float(lag), float(kurtosis), float(to_mid)]


def _fine(channel: np.ndarray) -> np.ndarray:
    return (channel - cv2.GaussianBlur(channel, (0, 0), 1.5))[2:-2, 2:-2].astype(np.float64)


def colour_features(rgb: np.ndarray) -> list:
    r, g, b = (rgb[..., k].astype(np.float32) for k in range(3))
    fr, fg, fb = _fine(r), _fine(g), _fine(b)

    def corr(u, v):
        u, v = u - u.mean(), v - v.mean()
        return np.sum(u * v) / (np.sqrt(np.sum(u * u) * np.sum(v * v)) + EPS)

    channel = 0.5 * (corr(fr, fg) + corr(fb, fg))
    logs = [np.log(c + 4.0) for c in (r, g, b)]
    luma = _fine((logs[0] + logs[1] + logs[2]) / 3.0)
    chroma = _fine(logs[0] - logs[1]), _fine(logs[2] - logs[1])
    ratio = np.log((np.mean(chroma[0] ** 2) + np.mean(chroma[1] ** 2) + EPS) / (np.mean(luma ** 2) + EPS))
    return [float(np.arctanh(np.clip(channel, -0.999, 0.999))), float(ratio)]


def features(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """The recapture features (order NAMES) of the face with these landmarks in an RGB frame, or None."""
    crop = face_crop(image, landmarks)
    if crop is None:
        return None
    return crop_features(crop)


def crop_features(crop: np.ndarray) -> np.ndarray:
    rgb = crop[..., :3] if crop.ndim == 3 else np.repeat(crop[..., None], 3, axis=2)
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.array(spectrum_features(grey) + noise_features(grey) + colour_features(rgb))


def relative_features(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """The face's features less the median of the same features on the frame's corners (patches of the
    face crop's size that do not overlap it): what the camera does to every patch cancels, what the
    recaptured surface adds to the face does not. None without a usable face or corner."""
    crop = face_crop(image, landmarks)
    if crop is None:
        return None
    side = crop.shape[0]
    points = np.asarray(landmarks, dtype=np.float64)
    centre = points.mean(axis=0)
    rows, cols = image.shape[:2]
    references = []
    for top in (0, rows - side):
        for left in (0, cols - side):
            if top < 0 or left < 0:
                continue
            overlaps = abs(left + side / 2 - centre[0]) < side and abs(top + side / 2 - centre[1]) < side
            if not overlaps:
                references.append(crop_features(image[top:top + side, left:left + side]))
    if not references:
        return None
    return crop_features(crop) - np.median(np.array(references), axis=0)


def folder_features(folder, variant: str, cache: Path, relative: bool = False) -> np.ndarray:
    """(N, len(NAMES)) features of every frame under ``variant``; NaN without a face or too small a face.
    ``relative``: relative_features (the face against the frame's corners)."""
    key = file_key([f.path for f in folder.frames], f"{variant}|{FEATURES}{'|relative' if relative else ''}")
    path = cache / f"recapture-{key}.npy"
    if path.exists():
        return np.load(path)
    out = np.full((len(folder.frames), len(NAMES)), np.nan)
    for index in tqdm(range(len(folder.frames)), desc=f"recapture {folder.name} {variant}", unit="frame",
                      file=sys.stderr, leave=False):
        if not folder.faces.found[index]:
            continue
        shot = shifted(folder.frames[index], folder.faces, index, variant)
        if not shot.inside:
            continue
        values = (relative_features if relative else features)(shot.image, shot.landmarks)
        if values is not None:
            out[index] = values
    np.save(path, out)
    return out


# -- heads, fitted on the training side only --------------------------------------------------------

def real_only_fit(x: np.ndarray) -> dict:
    mean = x.mean(axis=0)
    scale = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
    z = (x - mean) / scale
    covariance = np.cov(z, rowvar=False)
    shrunk = 0.8 * covariance + 0.2 * np.eye(len(mean))  # two small folders: keep the inverse tame
    return {"mean": mean, "scale": scale, "precision": np.linalg.inv(shrunk)}


def real_only_scores(x: np.ndarray, head: dict) -> np.ndarray:
    z = (x - head["mean"]) / head["scale"]
    return np.einsum("ij,jk,ik->i", z, head["precision"], z)


def fit_head(kind: str, x, attack, groups, cells, target: float) -> dict:
    """{kind, head, threshold}: threshold from out-of-group scores of the training groups."""
    if kind == "logistic":
        weights = fit.balanced_weights(cells)
        l2, oof = fit.choose_l2(x, attack, groups, target, weights)
        return {"kind": kind, "l2": l2, "head": fit.fit_logistic(x, attack, l2, weights),
                "threshold": fit.threshold_for_bpcer(oof, attack, target)}
    if kind == "one-feature":
        return fit_one_feature(x, attack, target)
    real = ~attack
    oof = np.zeros(int(real.sum()))
    for group in np.unique(groups[real]):
        held = groups[real] == group
        oof[held] = real_only_scores(x[real][held], real_only_fit(x[real][~held]))
    return {"kind": kind, "head": real_only_fit(x[real]),
            "threshold": fit.threshold_for_bpcer(oof, np.zeros(len(oof), bool), target)}


def fit_one_feature(x, attack, target: float) -> dict:
    """One feature, one side: for each feature and direction the threshold refusing ``target`` of the
    training reals; the training attacks only pick which feature and side accept the fewest of them."""
    best = None
    for k in range(x.shape[1]):
        for sign in (1.0, -1.0):
            scores = sign * x[:, k]
            threshold = fit.threshold_for_bpcer(scores, attack, target)
            apcer = fit.apcer_at(scores, attack, threshold)
            if best is None or apcer < best[0] - 1e-12:
                best = (apcer, {"kind": "one-feature", "feature": NAMES[k], "sign": sign, "threshold": threshold,
                                "head": {"column": k, "sign": sign}})
    return best[1]


def head_scores(entry: dict, x: np.ndarray) -> np.ndarray:
    out = np.full(len(x), np.nan)
    good = np.isfinite(x).all(axis=1)
    if good.any():
        if entry["kind"] == "logistic":
            out[good] = fit.head_scores(x[good], entry["head"])
        elif entry["kind"] == "one-feature":
            out[good] = entry["head"]["sign"] * x[good, entry["head"]["column"]]
        else:
            out[good] = real_only_scores(x[good], entry["head"])
    return out


def training_rows(parts, names, cache: Path, relative: bool) -> dict:
    """Recapture features of the training frames over the variants, with attack, group and cell."""
    out = {key: [] for key in ("x", "attack", "groups", "cells")}
    for folder, mask in parts:
        for name in names:
            x = folder_features(folder, name, cache, relative)
            keep = mask & np.isfinite(x).all(axis=1)
            out["x"].append(x[keep])
            out["attack"].append(folder.attack[keep])
            out["groups"].append(folder.groups[keep])
            out["cells"].append(np.char.add(f"{folder.name}/", np.where(folder.attack[keep], "attack", "real")))
    return {key: np.concatenate(value) for key, value in out.items()}


# -- protocols -------------------------------------------------------------------------------------

BUDGETS = {"2.5% per cue": (0.025, 0.025), "5% shared": (0.025, 0.05 / 3)}  # (texture+context alone, with recapture)


def run_protocol(name: str, train_parts, test_parts, args, report: dict) -> None:
    variants = trainer.variants(xd.AUGMENT)
    tc_rows = trainer.rows(train_parts, variants, args.cache_dir, progress=False)
    rec_rows = training_rows(train_parts, variants, args.cache_dir, args.relative)
    entry = report.setdefault(name, {"settings": {}, "flags": {}})
    for budget, (alone, shared) in BUDGETS.items():
        base_cues = trainer.fit_cues(tc_rows, alone)
        with_cue = trainer.fit_cues(tc_rows, shared) if shared != alone else base_cues
        heads = {kind: fit_head(kind, rec_rows["x"], rec_rows["attack"], rec_rows["groups"], rec_rows["cells"], shared)
                 for kind in HEADS}
        # one entry per fit (the group-out protocols fit once per held-out group)
        entry["settings"].setdefault(budget, []).append(
            {kind: {"threshold": round(h["threshold"], 4),
                    **{key: h[key] for key in ("l2", "feature", "sign") if key in h}} for kind, h in heads.items()})
        for variant in args.shifts:
            for folder, mask in test_parts:
                scores = xd.test_scores(base_cues, folder, variant)
                base = xd.judge(base_cues, scores)
                usable = np.isfinite(scores["texture"])
                shared_scores = xd.test_scores(with_cue, folder, variant)
                shared_flags = xd.judge(with_cue, shared_scores)
                x = folder_features(folder, variant, args.cache_dir, args.relative)
                flags = {"texture+context": base["texture+context"]}
                for kind, head in heads.items():
                    rec = np.nan_to_num(head_scores(head, x), nan=-np.inf) >= head["threshold"]
                    flags[f"recapture {kind}"] = rec
                    flags[f"texture+context+recapture {kind}"] = shared_flags["texture+context"] | rec
                for cue, refused in flags.items():
                    table = entry["flags"].setdefault(budget, {}).setdefault(variant, {}).setdefault(
                        cue, {"refused": [], "attack": [], "usable": []})
                    table["refused"].append(refused[mask])
                    table["attack"].append(folder.attack[mask])
                    table["usable"].append(usable[mask])


def summarise(report: dict) -> dict:
    out = {}
    for name, entry in report.items():
        figures = {"settings": entry["settings"], "budgets": {}}
        for budget, by_variant in entry["flags"].items():
            for variant, cues in by_variant.items():
                for cue, table in cues.items():
                    refused = np.concatenate(table["refused"]).astype(float)
                    figures["budgets"].setdefault(budget, {}).setdefault(variant, {})[cue] = xd.errors(
                        refused, np.concatenate(table["attack"]), 0.5, np.concatenate(table["usable"]))
        out[name] = figures
    return out


def print_tables(summary: dict, shift_names) -> None:
    for name, figures in summary.items():
        for budget, by_variant in figures["budgets"].items():
            print(f"\n### {name}, {budget}  (settings: {json.dumps(figures['settings'][budget])})")
            cues = list(by_variant["native"])
            print("| shift | " + " | ".join(cues) + " |")
            print("|---|" + "---|" * len(cues))
            for variant in shift_names:
                row = by_variant.get(variant)
                if row:
                    print(f"| {variant} | " + " | ".join(
                        f"{xd.percent(row[c]['apcer'])} / {xd.percent(row[c]['bpcer'])}" for c in cues) + " |")


def separability(nuaa, replay, cache: Path, relative: bool) -> None:
    """Per feature, native frames: median of reals and attacks per folder (a first look, no setting is chosen)."""
    print("| feature | NUAA real | NUAA print | replay real | replay screen |")
    print("|---|---|---|---|---|")
    xs = {f.name: folder_features(f, "native", cache, relative) for f in (nuaa, replay)}
    for k, feature in enumerate(NAMES):
        cells = []
        for folder in (nuaa, replay):
            x = xs[folder.name][:, k]
            for attack in (False, True):
                cells.append(f"{np.nanmedian(x[folder.attack == attack]):.3f}")
        print(f"| {feature} | " + " | ".join(cells) + " |")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nuaa", type=Path, required=True, help="NUAA-style folder (prints)")
    parser.add_argument("--replay", type=Path, required=True, help="replay-style folder (phone screens)")
    parser.add_argument("--shifts", nargs="+", default=list(shifts.SHIFTS), choices=shifts.SHIFTS)
    parser.add_argument("--protocols", nargs="+", default=["cross", "both"], choices=["cross", "both"],
                        help="cross: each folder to the other; both: both folders, one group held out")
    parser.add_argument("--cache", type=Path, help="feature cache (default $EDGE_VERIFY_HOME/cache/liveness)")
    parser.add_argument("--relative", action="store_true",
                        help="each feature less its median on the frame's corners (cancels the camera's own signature)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.cache_dir = args.cache or paths.home() / "cache" / "liveness"
    nuaa = xd.Folder(args.nuaa, "print", args.cache_dir)
    replay = xd.Folder(args.replay, "screen", args.cache_dir)
    separability(nuaa, replay, args.cache_dir, args.relative)
    everything = lambda folder: np.ones(len(folder.frames), bool)  # noqa: E731
    report = {}
    if "cross" in args.protocols:
        print("nuaa->replay ...", file=sys.stderr, flush=True)
        run_protocol("nuaa->replay (screens)", [(nuaa, everything(nuaa))], [(replay, everything(replay))], args, report)
        print("replay->nuaa ...", file=sys.stderr, flush=True)
        run_protocol("replay->nuaa (prints)", [(replay, everything(replay))], [(nuaa, everything(nuaa))], args, report)
    if "both" in args.protocols:
        for folder, other, label in ((nuaa, replay, "both, one NUAA subject out (prints)"),
                                     (replay, nuaa, "both, one replay source out (screens)")):
            for group in sorted(set(folder.groups)):
                print(f"{label}: {group} ...", file=sys.stderr, flush=True)
                held = folder.groups == group
                run_protocol(label, [(folder, ~held), (other, everything(other))], [(folder, held)], args, report)
    summary = summarise(report)
    print_tables(summary, args.shifts)
    if args.json:
        args.json.write_text(json.dumps({"features": list(NAMES), "protocols": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
