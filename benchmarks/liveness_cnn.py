"""The cnn liveness cue (issue 14) across datasets: a small grey CNN beside the texture cue.

The texture cue is a logistic head on hand-made grey features (LBP, spectrum
bands, blur ratios); across folders it catches almost nothing. This benchmark
measures the learned one (its recipe: edge_build.training.liveness_cnn): a
four-block CNN (16-32-64-64 channels, batch norm, global average pool, 60,465
weights) reads a 64 px grey chip of the face and says attack or real. Two
chips (the shipped cue reads ``inner``):

* ``inner``: the texture cue's own chip (edge.liveness.texture.grey_chip: the
  inner face aligned on the five landmarks, area-shrunk first);
* ``wide``: the face box's centre, 2.2 box widths across, area-shrunk to 64 px:
  the face and what is around it (a phone's bezel, a sheet's edge, fingers).

Each chip is standardised on its own (mean 0, deviation 1), so gain and offset
cannot drive it; training adds four random camera shifts per frame
(edge_build.training.liveness_shifts.random_shift: resolution, colour gains,
tone, contrast, blur, noise, JPEG), mirror images and shifts of up to 3 px,
and weighs each (folder, real/attack) cell equally.

Settings are chosen on the training side only. The threshold refuses
``--target-bpcer`` of the real frames of validation groups kept out of the
CNN's training (the training side's cues use the same budget per cue):

* ``nuaa->replay``: train on NUAA less its last subject (the validation
  group), test on replay_dev (phone screens);
* ``replay->nuaa``: train on the first half (in time) of each replay source's
  real frames and all its attacks, validate on the later halves, test on NUAA (prints);
* ``both, group out``: five folds (NUAA subjects 1,4,7 / 2,5,8 / 3,6,9 and
  each replay source), each trained on both folders less the fold and a
  validation set (one more NUAA subject, and the later half of the real
  frames of each replay source not tested); test frames pooled per attack type.

Reported per frame, native frames, APCER (attacks accepted) / BPCER (real faces
refused): ``cnn`` alone at that validation threshold; ``cnn@boundary`` alone at
``--boundary`` (logit 0, the balanced loss's decision boundary: the shipped cue's
threshold); ``texture+context`` (the shipped cues, fitted on the same training
side by `edge-verify train liveness`'s recipe); and the CNN with them (refused
when any cue refuses: the daemon's rule). ``--diagnostic`` adds the ROC AUC and
the APCER at the test side's own 5 % BPCER threshold, which no kiosk could
choose: they say how far a threshold chosen elsewhere is from what the scores
could separate; on the protocol of several folds it also joins the cnn, texture
and context scores into one cross-fitted logistic score (``fused_figures``).
``--shifts`` judges the tested frames under camera shifts,
``--clips`` judges captured clips of 15 frames with the daemon's track judge
(the CNN at the boundary, texture, context, motion). ``--scores``/``--from-scores``
and ``--networks`` keep a run's scores or networks for such later runs.

    EDGE_VERIFY_HOME=... python benchmarks/liveness_cnn.py --nuaa ../shared/datasets/nuaa_train \\
        --replay ../shared/datasets/replay_dev --kinds inner --networks nets --json liveness-cnn.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from edge import paths
from edge.bench.metrics import roc_auc
from edge.liveness import context, motion, texture
from edge.liveness.judge import FrameCues, Liveness
from edge_build.training import liveness as trainer
from edge_build.training import liveness_cnn as recipe
from edge_build.training import liveness_fit as fit
from edge_build.training import liveness_shifts as shifts
from edge_build.training.liveness_clips import captured_clips, measured
from edge_build.training.liveness_data import follow_all
from edge_build.training.liveness_features import cached

KINDS = ("inner", "wide")
WIDE_SCALE = 2.2  # box widths across the wide chip
PROTOCOLS = ("nuaa->replay", "replay->nuaa", "both, group out")
WINDOW = 5  # frames whose mean score a frame cue judges (the liveness model's default window)
FOLDS = (("nuaa_train", ("0001", "0004", "0007")), ("nuaa_train", ("0002", "0005", "0008")),
         ("nuaa_train", ("0003", "0006", "0009")), ("replay_dev", ("Dracarys261",)),
         ("replay_dev", ("code-with-prabhu",)))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nuaa", type=Path, required=True, help="NUAA-style folder (prints)")
    parser.add_argument("--replay", type=Path, required=True, help="replay-style folder (phone screens)")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS, help="chips to train on")
    parser.add_argument("--augment", type=int, default=4, help="random camera shifts per training frame (default 4)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--target-bpcer", type=float, default=0.025,
                        help="real frames each cue may refuse on the validation groups (default 0.025)")
    parser.add_argument("--cache", type=Path, help="cache (default $EDGE_VERIFY_HOME/cache/liveness)")
    parser.add_argument("--boundary", type=float, default=0.0,
                        help="the fixed threshold of cnn@boundary, in logits (default 0: the decision boundary of "
                             "the balanced training loss)")
    parser.add_argument("--diagnostic", action="store_true",
                        help="add AUC, the test side's own 5 %% threshold and the cues joined into one cross-fitted "
                             "score")
    parser.add_argument("--scores", type=Path, help="write every split's CNN scores of both folders here (.npz)")
    parser.add_argument("--from-scores", type=Path, metavar="NPZ",
                        help="take the networks' scores from an earlier run's --scores instead of training")
    parser.add_argument("--networks", type=Path, metavar="DIR",
                        help="keep each split's network here (KIND-SPLIT.pt) and reuse one that is there")
    parser.add_argument("--shifts", nargs="+", default=[], metavar="SHIFT",
                        choices=[name for name in shifts.SHIFTS if name != "native"],
                        help="also judge the tested frames under these camera shifts (needs the networks: "
                             "trained here or kept with --networks)")
    parser.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS), metavar="NAME",
                        help="run only these protocols (default all: " + ", ".join(PROTOCOLS) + ")")
    parser.add_argument("--members", type=int, default=1,
                        help="networks per split, each from its own seed, judged by their mean logit (default 1); "
                             "each member's own figures at the boundary are printed beside the mean's")
    parser.add_argument("--clips", action="store_true",
                        help="also judge captured clips of 15 frames per track, as the daemon does (motion cue too)")
    parser.add_argument("--motion-wait", type=int, default=5, choices=sorted(motion.WAITS),
                        help="with --clips, the motion cue's settings for this wait, as `train liveness "
                             "--motion-wait` (default 5, the shipped settings)")
    parser.add_argument("--search-every", type=int, metavar="N",
                        help="judge the frames with faces found as the daemon finds them: each sequence in time "
                             "order, the face of the frame before followed and the whole frame searched every N "
                             "frames (edge.pipeline.Follower; 1 searches every frame). Training still reads every "
                             "frame's own search. Default: each frame searched on its own, as before")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    if args.members < 1:
        parser.error("--members must be 1 or more")
    if args.search_every is not None and (args.search_every < 1 or args.shifts or args.from_scores):
        parser.error("--search-every needs N >= 1, and neither --shifts nor --from-scores (their frames were "
                     "judged with each frame searched on its own)")
    return args


# -- chips --------------------------------------------------------------------------------------

def wide_chip(image: np.ndarray, box: np.ndarray, size: int = texture.CHIP_SIZE) -> np.ndarray:
    """(size, size) uint8 grey square around the box's centre, WIDE_SCALE box widths across,
    area-shrunk first like the texture chip; outside the frame is black."""
    source = texture.grey(image)
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * WIDE_SCALE
    left, top = (x0 + x1 - side) / 2, (y0 + y1 - side) / 2
    step = side / size  # frame pixels per chip pixel
    if step > 1.25:
        shrink = (max(int(round(source.shape[1] / step)), 1), max(int(round(source.shape[0] / step)), 1))
        factor = np.array(shrink) / np.array(source.shape[1::-1])
        source = cv2.resize(source, shrink, interpolation=cv2.INTER_AREA)
    else:
        factor = np.ones(2)
    matrix = np.array([[step * factor[0], 0, left * factor[0]], [0, step * factor[1], top * factor[1]]])
    return cv2.warpAffine(source, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def wide_of(shot) -> np.ndarray:
    return wide_chip(shot.image, shot.box)


MAKERS = {"inner": recipe.inner_chip, "wide": wide_of}  # both chips, cached together


def chips(folder, variant: str, cache: Path) -> dict:
    """Both chips of every frame's main face under ``variant`` (named shift or augment-<k>), cached."""
    return recipe.chips(folder, variant, cache, makers=MAKERS)


# -- protocols ----------------------------------------------------------------------------------

def later_half_real(folder) -> np.ndarray:
    """The later half (in time) of each group's real frames."""
    out = np.zeros(len(folder.frames), bool)
    live = ~folder.attack
    for group in np.unique(folder.groups[live]):
        rows = np.where(live & (folder.groups == group))[0]
        rows = rows[np.argsort([folder.frames[i].order for i in rows], kind="stable")]
        out[rows[len(rows) // 2:]] = True
    return out


def splits(folders: dict) -> list[dict]:
    """[{name, test: {folder: mask}, valid: {folder: mask}}]: the protocols' train/validation/test cuts."""
    nuaa, replay = folders["nuaa_train"], folders["replay_dev"]
    none = {name: np.zeros(len(f.frames), bool) for name, f in folders.items()}
    every = {name: np.ones(len(f.frames), bool) for name, f in folders.items()}
    subjects = sorted(np.unique(nuaa.groups))
    out = [{"name": "nuaa->replay", "train_only": "nuaa_train", "test": {**none, "replay_dev": every["replay_dev"]},
            "valid": {**none, "nuaa_train": nuaa.groups == subjects[-1]}},
           {"name": "replay->nuaa", "train_only": "replay_dev", "test": {**none, "nuaa_train": every["nuaa_train"]},
            "valid": {**none, "replay_dev": later_half_real(replay)}}]
    for folder_name, groups in FOLDS:
        tested = {**none, folder_name: np.isin(folders[folder_name].groups, [f"{folder_name}/{g}" for g in groups])}
        spare = next(g for g in subjects if not tested["nuaa_train"][nuaa.groups == g].any())
        other_sources = later_half_real(replay) & ~np.isin(replay.groups, replay.groups[tested["replay_dev"]])
        out.append({"name": "both, group out", "fold": f"{folder_name} {'/'.join(groups)}", "train_only": None,
                    "test": tested, "valid": {"nuaa_train": nuaa.groups == spare, "replay_dev": other_sources}})
    return out


def training_rows(folders: dict, split: dict, kind: str, variants, cache: Path):
    """Chips, attack flags and balanced weights of the split's training side (neither tested nor validation)."""
    parts = [(folder, ~split["test"][name] & ~split["valid"][name]) for name, folder in folders.items()
             if split["train_only"] in (None, name)]
    x, attack, weights, _ = recipe.rows(parts, variants, cache, kind=kind, makers=MAKERS)
    return x, attack, weights


def native_scores(net, folder, kind: str, cache: Path) -> np.ndarray:
    chip = chips(folder, "native", cache)
    out = np.full(len(folder.frames), np.nan)
    out[chip["ok"]] = recipe.scores(net, chip[kind][chip["ok"]])
    return out


def tested(split: dict) -> tuple[str, np.ndarray]:
    """The one folder a split tests, and its test rows."""
    (name, mask), = ((name, mask) for name, mask in split["test"].items() if mask.any())
    return name, mask


def judged(folder, args):
    """The folder with its faces as the judged frames see them (``--search-every``), else as it is."""
    return args.judged_folders.get(folder.name, folder)


def shipped_cues(folders: dict, split: dict, args) -> dict:
    """texture and context scores of the tested folder's frames, fitted on the split's training side (validation
    groups included: the shipped recipe chooses its own settings by leave-one-group-out folds inside it)."""
    parts = [(folder, ~split["test"][name]) for name, folder in folders.items()
             if split["train_only"] in (None, name)]
    cues = trainer.fit_cues(trainer.rows(parts, trainer.variants(2), args.cache_dir, progress=False),
                            args.target_bpcer)
    folder = judged(folders[tested(split)[0]], args)
    features = cached(folder.frames, folder.faces, "native", args.judged_cache, progress=False)
    scores = {"texture": np.array([texture.attack_score(v, cues["texture"]["head"]) if ok else np.nan
                                   for v, ok in zip(features.texture, features.ok)]),
              "context": np.array([context.attack_score(c) if ok else np.nan
                                   for c, ok in zip(features.context, features.ok)])}
    return {"scores": scores, "cues": cues, "thresholds": {"texture": cues["texture"]["threshold"],
                                                           "context": cues["context"]["threshold"]}}


def split_network(folders: dict, split: dict, kind: str, args, seed: int):
    """The split's network: kept in ``--networks`` from an earlier run, or trained here (and kept there)."""
    kept = args.networks / f"{kind}-{seed}.pt" if args.networks is not None else None
    if kept is not None and kept.exists():
        net = recipe.network()
        net.load_state_dict(torch.load(kept))
        return net.eval()
    x, attack, weights = training_rows(folders, split, kind, trainer.variants(args.augment), args.cache_dir)
    print(f"  {split['name']} {split.get('fold', '')} ({kind}): {len(x)} training chips", file=sys.stderr, flush=True)
    net = recipe.train(x, attack, weights, args.epochs, seed)
    if kept is not None:
        kept.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), kept)
    return net


def network_scores(folders: dict, net, kind: str, args, seed: int) -> dict:
    """{folder: CNN score per frame (NaN without a face)} of the split's network, or read from ``--from-scores``."""
    if args.from_scores is not None:
        with np.load(args.from_scores) as saved:
            return {name: saved[f"{kind}/{seed}/{name}"] for name in folders}
    return {name: native_scores(net, judged(folder, args), kind, args.judged_cache)
            for name, folder in folders.items()}


def shifted_parts(folder, mask, nets: list, kind: str, cues: dict, args) -> dict:
    """{shift: {attack, scores: {cnn, texture, context}, members}} of the tested frames under each ``--shifts``;
    ``members``: each network's own cnn scores when there are several (the cue is their mean)."""
    out = {}
    net = recipe.as_one(nets)
    for shift in args.shifts:
        chip = chips(folder, shift, args.cache_dir)
        features = cached(folder.frames, folder.faces, shift, args.cache_dir, progress=False)
        rows = mask & chip["ok"] & features.ok
        tested_chips = chip[kind][rows]
        out[shift] = {"attack": folder.attack[rows], "scores": {
            "cnn": recipe.scores(net, tested_chips),
            "texture": np.array([texture.attack_score(v, cues["texture"]["head"]) for v in features.texture[rows]]),
            "context": np.array([context.attack_score(c) for c in features.context[rows]])},
            "members": [recipe.scores(member, tested_chips) for member in nets] if len(nets) > 1 else []}
    return out


def run_split(folders: dict, split: dict, kind: str, args, seed: int, fitted: dict) -> dict:
    """Test-side scores of every cue and their thresholds for one split; ``fitted`` keeps the shipped cues
    fitted per split (seed), which do not depend on the chip."""
    started = time.time()
    seeds = recipe.member_seeds(seed, args.members)
    nets = ([split_network(folders, split, kind, args, s) for s in seeds]
            if args.from_scores is None or args.shifts else [None] * len(seeds))
    members = [network_scores(folders, net, kind, args, s) for net, s in zip(nets, seeds)]
    cnn = {name: np.mean([m[name] for m in members], axis=0) for name in folders}
    valid = np.concatenate([cnn[name][split["valid"][name]] for name in folders])
    valid_attack = np.concatenate([folders[name].attack[split["valid"][name]] for name in folders])
    found = ~np.isnan(valid)
    if seed not in fitted:
        fitted[seed] = shipped_cues(folders, split, args)
    shipped = fitted[seed]
    thresholds = {"cnn": fit.threshold_for_bpcer(valid[found], valid_attack[found], args.target_bpcer),
                  "cnn@boundary": args.boundary, **shipped["thresholds"]}
    name, mask = tested(split)
    rows = mask & ~np.isnan(cnn[name])
    part = {"folder": name, "attack": folders[name].attack[rows], "type": folders[name].attack_type,
            "scores": {"cnn": cnn[name][rows], "cnn@boundary": cnn[name][rows],
                       **{cue: shipped["scores"][cue][rows] for cue in ("texture", "context")}},
            "thresholds": thresholds, "seconds": round(time.time() - started, 1),
            "all_scores": {s: m for s, m in zip(seeds, members)},
            "members": [m[name][rows] for m in members]}
    if args.shifts:
        part["shifts"] = shifted_parts(folders[name], mask, nets, kind, shipped["cues"], args)
    if args.clips:
        frame_scores = {"cnn": cnn[name], **shipped["scores"]}
        part["clips"] = clip_counts(judged(folders[name], args), mask, frame_scores, thresholds, args.boundary,
                                    motion.WAITS[args.motion_wait])
    return part


SHIFT_COMBINATIONS = (("cnn",), ("texture", "context"), ("cnn", "texture", "context"))


def level(part: dict, cue: str) -> float:
    """The threshold a shifted frame is judged at: the CNN's boundary, the fitted cues' own."""
    return part["thresholds"]["cnn@boundary" if cue == "cnn" else cue]


CLIP_COMBINATIONS = (("texture", "context", "motion"), ("cnn", "motion"), ("cnn", "context", "motion"),
                     ("cnn", "texture", "context", "motion"))
_clips = {}


def folder_clips(folder) -> list[dict]:
    """The folder's captured clips of 15 frames with the motion cue's measures (computed once)."""
    if folder.name not in _clips:
        _clips[folder.name] = captured_clips(folder.frames, folder.faces)
        for clip in _clips[folder.name]:
            measured(clip)
    return _clips[folder.name]


def clip_counts(folder, mask, scores: dict, thresholds: dict, boundary: float,
                motion_settings: motion.MotionSettings = motion.MotionSettings()) -> dict:
    """Per combination of cues: attack clips accepted (live on any frame) and real clips refused (live on
    none) among the tested clips, judged frame by frame by the daemon's own TrackJudge; the CNN at the
    fixed boundary, the other frame cues at their fitted thresholds, motion at ``motion_settings`` (the
    shipped ones unless --motion-wait says otherwise)."""
    levels = {"texture": thresholds["texture"], "context": thresholds["context"], "cnn": boundary}
    out = {}
    for combination in CLIP_COMBINATIONS:
        frame_cues = [c for c in combination if c != "motion"]
        liveness = Liveness(texture={"threshold": levels["texture"]} if "texture" in frame_cues else None,
                            cnn={"threshold": levels["cnn"]} if "cnn" in frame_cues else None,
                            context=levels["context"] if "context" in frame_cues else None,
                            motion=motion_settings if "motion" in combination else None, window=WINDOW)
        counts = dict.fromkeys(("attacks", "attacks_accepted", "real", "real_refused"), 0)
        for clip in folder_clips(folder):
            if not mask[clip["rows"][0]]:
                continue
            judge = liveness.new_track()
            live = [judge.record(FrameCues({c: float(scores[c][row]) for c in frame_cues}, pairs=pairs,
                                           measured_on=judge.motion_track), None).live
                    for row, pairs in zip(clip["rows"], clip["measures"])]
            key = ("real", "real_refused") if clip["live"] else ("attacks", "attacks_accepted")
            counts[key[0]] += 1
            counts[key[1]] += (not any(live)) if clip["live"] else any(live)
        out["+".join(combination)] = counts
    return out


COMBINATIONS = (("cnn",), ("texture", "context"), ("cnn", "context"), ("cnn", "texture", "context"),
                ("cnn@boundary",), ("cnn@boundary", "context"), ("cnn@boundary", "texture", "context"))


def figures(parts: list[dict], diagnostic: bool) -> dict:
    """APCER/BPCER of each combination over the parts (each with its own thresholds), pooled."""
    attack = np.concatenate([p["attack"] for p in parts])
    out = {"attack_frames": int(attack.sum()), "real_frames": int((~attack).sum())}
    for combination in COMBINATIONS:
        refused = np.concatenate([np.any([p["scores"][c] >= p["thresholds"][c] for c in combination], axis=0)
                                  for p in parts])
        out["+".join(combination)] = {"apcer": float(np.mean(~refused[attack])), "bpcer": float(np.mean(refused[~attack]))}
    if diagnostic:
        cnn = np.concatenate([p["scores"]["cnn"] for p in parts])
        own = np.quantile(cnn[~attack], 0.95)  # the test side's own threshold: diagnostic only
        # attack scores read as distances from real: roc_auc is then the chance an attack scores above a real face
        out["cnn_auc"] = roc_auc(-cnn, attack) if len(parts) == 1 else None  # folds' scores are not on one scale
        out["cnn_apcer_at_own_5pct"] = float(np.mean(cnn[attack] < own)) if len(parts) == 1 else None
        out["cnn_auc_per_part"] = [roc_auc(-p["scores"]["cnn"], p["attack"]) for p in parts]
    for shift in parts[0].get("shifts", {}):
        attack = np.concatenate([p["shifts"][shift]["attack"] for p in parts])
        row = {}
        for combination in SHIFT_COMBINATIONS:
            refused = np.concatenate([np.any([p["shifts"][shift]["scores"][c] >= level(p, c) for c in combination],
                                             axis=0) for p in parts])
            row["+".join(combination)] = {"apcer": float(np.mean(~refused[attack])),
                                          "bpcer": float(np.mean(refused[~attack]))}
        if parts[0]["shifts"][shift].get("members"):
            row["members@boundary"] = members_at_boundary(
                [(p["shifts"][shift]["members"], p["shifts"][shift]["attack"], level(p, "cnn")) for p in parts])
        out.setdefault("shifts", {})[shift] = row
    if len(parts[0]["members"]) > 1:  # each member alone at the boundary: how far one training can land
        out["members@boundary"] = members_at_boundary(
            [(p["members"], p["attack"], p["thresholds"]["cnn@boundary"]) for p in parts])
    if all("clips" in p for p in parts):
        out["clips"] = {label: {key: sum(p["clips"][label][key] for p in parts) for key in counts}
                        for label, counts in parts[0]["clips"].items()}
    return out


FUSED = ("cnn", "texture", "context")


def fused_figures(parts: list) -> dict:
    """Diagnostic (--diagnostic, protocols with several folds): the cnn, texture and context scores joined
    into one logistic score instead of each cue at its own threshold. Cross-fitted: each fold is judged by a
    fusion fitted on the other folds' held-out scores (every (folder, real/attack) cell weighing the same,
    as in the cnn's loss), so no frame of the judged fold chooses it. Per attack type: APCER/BPCER at the
    fusion's boundary, and, for the fusion and the cnn alone, the least APCER one threshold reaches with
    BPCER <= 5 % (an oracle: that threshold is read off the judged frames themselves, so no cue that
    ranks frames as these do can do better with any threshold)."""
    scored = []
    for k, part in enumerate(parts):
        others = [q for j, q in enumerate(parts) if j != k]
        x = np.concatenate([np.column_stack([q["scores"][c] for c in FUSED]) for q in others])
        attack = np.concatenate([q["attack"] for q in others])
        cells = np.concatenate([[f"{q['folder']} {flag}" for flag in q["attack"]] for q in others])
        head = fit.fit_logistic(x, attack, l2=1e-3, weights=fit.balanced_weights(cells))
        fused = fit.head_scores(np.column_stack([part["scores"][c] for c in FUSED]), head)
        scored.append((part["type"], fused, part["scores"]["cnn"], part["attack"]))
    out = {}
    for attack_type in sorted({row[0] for row in scored}):
        rows = [row for row in scored if row[0] == attack_type]
        fused, cnn, attack = (np.concatenate([row[i] for row in rows]) for i in (1, 2, 3))
        refused = fused >= 0.5
        out[attack_type] = {"apcer": float(np.mean(~refused[attack])), "bpcer": float(np.mean(refused[~attack])),
                            "oracle_apcer_at_bpcer_5": {"fused": apcer_at_bpcer(fused, attack, 0.05),
                                                        "cnn": apcer_at_bpcer(cnn, attack, 0.05)}}
    return out


def apcer_at_bpcer(scores: np.ndarray, attack: np.ndarray, bpcer: float) -> float:
    """The least share of attacks accepted by a threshold that refuses at most ``bpcer`` of the real frames
    (higher scores: attack), the threshold read off these frames' own real scores."""
    return fit.apcer_at(scores, attack, fit.threshold_for_bpcer(scores, attack, bpcer))


def members_at_boundary(parts: list) -> list[dict]:
    """APCER/BPCER of each member alone, pooled over the parts' (member scores, attack flags, boundary)."""
    attack = np.concatenate([flags for _, flags, _ in parts])
    out = []
    for k in range(len(parts[0][0])):
        refused = np.concatenate([members[k] >= boundary for members, _, boundary in parts])
        out.append({"apcer": float(np.mean(~refused[attack])), "bpcer": float(np.mean(refused[~attack]))})
    return out


def followed(folders: dict, args) -> tuple[dict, Path]:
    """({name: folder with its faces followed as the daemon follows them}, the cache of their chips and features)
    with ``--search-every``; else ({}, the usual cache)."""
    if args.search_every is None:
        return {}, args.cache_dir
    out = {name: trainer.Folder(folder.root, folder.attack_type, folder.frames,
                                follow_all(folder.frames, args.cache_dir, args.search_every))
           for name, folder in folders.items()}
    for name, folder in out.items():
        same = np.mean(np.all(np.isclose(folder.faces.landmarks, folders[name].faces.landmarks), axis=(1, 2))
                       & (folder.faces.found == folders[name].faces.found))
        print(f"  {name}: faces found {folder.faces.found.sum()} followed / {folders[name].faces.found.sum()} "
              f"searched; {same * 100:.1f} % of frames with the same landmarks", file=sys.stderr, flush=True)
    return out, args.cache_dir / f"followed-v2-{args.search_every}"


def main(argv=None) -> int:
    args = parse_args(argv)
    args.cache_dir = args.cache or paths.home() / "cache" / "liveness"
    folders = {f.name: f for f in trainer.open_folders([(args.nuaa, "print"), (args.replay, "screen")],
                                                        args.cache_dir)}
    if set(folders) != {"nuaa_train", "replay_dev"}:
        raise SystemExit("the folds name nuaa_train's subjects and replay_dev's sources: pass those two folders")
    args.judged_folders, args.judged_cache = followed(folders, args)
    report = {"settings": {"augment": args.augment, "epochs": args.epochs, "target_bpcer": args.target_bpcer,
                           "chips": recipe.CHIPS, "wide_scale": WIDE_SCALE,
                           "members": args.members, "search_every": args.search_every,
                           "motion_wait": args.motion_wait}, "protocols": {}}
    fitted, saved = {}, {}
    for kind in args.kinds:
        parts_by = {}
        for seed, split in enumerate(splits(folders)):
            if split["name"] not in args.protocols:
                continue
            part = run_split(folders, split, kind, args, seed, fitted)
            parts_by.setdefault(split["name"], []).append(part)
            for member_seed, scores in part.pop("all_scores").items():
                for folder_name, values in scores.items():
                    saved[f"{kind}/{member_seed}/{folder_name}"] = values
            if args.scores:
                np.savez(args.scores, **saved)
            print(f"  {split['name']} {split.get('fold', '')} ({kind}): {part['seconds']} s; thresholds "
                  + ", ".join(f"{k} {v:.3g}" for k, v in part["thresholds"].items()), file=sys.stderr, flush=True)
        for name, parts in parts_by.items():
            for attack_type in sorted({p["type"] for p in parts}):
                chosen = [p for p in parts if p["type"] == attack_type]
                row = figures(chosen, args.diagnostic)
                report["protocols"].setdefault(f"{name} ({attack_type})", {})[kind] = row
                cells = "  ".join(f"{c} {row[c]['apcer'] * 100:.1f}/{row[c]['bpcer'] * 100:.1f}"
                                  for c in ("+".join(x) for x in COMBINATIONS))
                extra = (f"  AUC {row['cnn_auc']:.3f}, own-5% APCER {row['cnn_apcer_at_own_5pct'] * 100:.1f}"
                         if args.diagnostic and row.get("cnn_auc") is not None else "")
                print(f"{name} ({attack_type}), {kind} chip, APCER/BPCER %: {cells}{extra}", flush=True)
                if row.get("members@boundary"):
                    print("    each member alone, cnn@boundary: " + "  ".join(
                        f"{m['apcer'] * 100:.1f}/{m['bpcer'] * 100:.1f}" for m in row["members@boundary"]), flush=True)
                for shift, cells in row.get("shifts", {}).items():
                    each = cells.get("members@boundary", [])
                    print(f"    {shift}: " + "  ".join(f"{c.replace('cnn', 'cnn@boundary')} {v['apcer'] * 100:.1f}/"
                                                       f"{v['bpcer'] * 100:.1f}" for c, v in cells.items()
                                                       if c != "members@boundary")
                          + ("  each member: " + "  ".join(f"{m['apcer'] * 100:.1f}/{m['bpcer'] * 100:.1f}"
                                                           for m in each) if each else ""), flush=True)
                for label, c in row.get("clips", {}).items():
                    print(f"    per clip, {label}: attack clips accepted {c['attacks_accepted']}/{c['attacks']}, "
                          f"real clips refused {c['real_refused']}/{c['real']}", flush=True)
            if args.diagnostic and len(parts) > 1 and len({p["type"] for p in parts}) > 1:
                fused = fused_figures(parts)
                report["protocols"].setdefault(f"{name} (fused)", {})[kind] = fused
                for attack_type, row in fused.items():
                    oracle = row["oracle_apcer_at_bpcer_5"]
                    print(f"{name} ({attack_type}), {kind} chip, cnn + texture + context as one cross-fitted score: "
                          f"APCER/BPCER % {row['apcer'] * 100:.1f}/{row['bpcer'] * 100:.1f}; with the best one "
                          f"threshold for BPCER <= 5 % (oracle): fused {oracle['fused'] * 100:.1f}, cnn alone "
                          f"{oracle['cnn'] * 100:.1f} % APCER", flush=True)
        if args.json:  # after each chip: a run stopped during the next one keeps these figures
            args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
