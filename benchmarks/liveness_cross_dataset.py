"""Liveness across datasets: train on one folder, test on another, under camera shifts.

The figures that predict a kiosk: the cues are fitted on one folder and judged
on a folder of another camera, place, people and attack type, with the test
frames altered as other cameras would give them (liveness_shifts.SHIFTS:
240x180, 640x480, 1280x720, warm and cool colour casts, low contrast, dark
tone curve, blur, JPEG quality 30).

Protocols (every setting chosen on the training side only, by leave-one-group-
out folds inside it; never on the figures reported):

* ``nuaa->replay``: fit on every NUAA subject (prints), test on replay_dev (screens);
* ``replay->nuaa``: fit on both replay sources, test on NUAA;
* ``both, group out``: fit on both folders less one group (a NUAA subject or a
  replay source), test on that group; pooled per attack type. What
  `edge-verify train liveness` on both folders predicts for a new person or source.

Cues: ``texture`` (grey LBP/spectrum head, trained with camera-shift
augmentation), ``context`` (border lines around the face), ``texture+context``
(refused when either calls an attack: how the daemon combines them), and
``colour``: the shipped attribute head's recipe (`edge-verify train attributes`:
stem colour statistics, logistic L2 0.03, equal-error threshold), trained on the
training folder's native frames.

``--extra-scores FILE`` adds a cue scored outside this benchmark (a third-party model, run in
its own environment: benchmarks/registry_face_models.py writes one): an .npz of ``paths`` (the
frame files, as this benchmark lists them) and ``score`` (higher = more like an attack, NaN
where it found no face). It is not fitted; its threshold refuses ``--target-bpcer`` of the
training side's real frames, as the other cues' do, and it is reported alone and with texture
and context (refused when any of them calls an attack), per frame on the native frames only.

Per frame: APCER (attacks accepted) and BPCER (real faces refused) at the
threshold chosen in training; frames where no face was found are not counted
(their numbers are listed). ``window5``: mean score of 5 consecutive frames of
one sequence (the daemon's window), native frames only.

Per clip: each test sequence cut into clips of 15 frames
(edge_build.training.liveness_clips), judged frame by frame by the daemon's
own judge (edge.liveness.judge.TrackJudge, fed the stored scores and motion
measures): live at a frame once the mean of the last 5 frames' scores
passes texture and context, neither has refused a full window so far, and the
motion cue (the settings of ``--motion-wait``) neither holds it nor has called
an attack so far. An attack clip is accepted if any frame is live; a real clip
is refused if none is. Under each camera shift the frame cues read the shifted
frames and the motion cue the native ones. For comparison, the rule before a
refused window was kept for the track ("frame calls not kept").

    EDGE_VERIFY_HOME=... python benchmarks/liveness_cross_dataset.py \\
        --nuaa ../shared/datasets/nuaa_train --replay ../shared/datasets/replay_dev --json liveness-cross.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edge import paths
from edge.liveness import context, motion, texture
from edge.liveness.judge import FrameCues, Liveness
from edge.vision import align
from edge.vision.mtcnn import FIT_WEIGHTS, FITTED_TEMPLATE
from edge_build.training import liveness as trainer
from edge_build.training import liveness_fit as fit
from edge_build.training import liveness_shifts as shifts
from edge_build.training.liveness_clips import captured_clips, measured
from edge_build.training.liveness_data import detect_all, file_key, load_frames
from edge_build.training.liveness_features import cached, shifted
from edge_build.training.attribute_metrics import eer_threshold

AUGMENT = 2  # random camera shifts per training frame, as `edge-verify train liveness` makes by default
WINDOW = 5
NOT_KEPT = "texture+context+motion, frame calls not kept"  # the judge before a refused window was kept
COLOUR_L2 = 0.03  # the shipped `live` head's L2 (attribute_heads.HEAD_L2)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nuaa", type=Path, required=True, help="NUAA-style folder (prints)")
    parser.add_argument("--replay", type=Path, required=True, help="replay-style folder (phone screens)")
    parser.add_argument("--target-bpcer", type=float, default=0.025,
                        help="real frames each cue may refuse on the training side's held-out groups (default 0.025)")
    parser.add_argument("--shifts", nargs="+", default=list(shifts.SHIFTS), choices=shifts.SHIFTS)
    parser.add_argument("--no-colour", action="store_true", help="leave out the shipped colour head (needs torch)")
    parser.add_argument("--cache", type=Path, help="feature cache (default $EDGE_VERIFY_HOME/cache/liveness)")
    parser.add_argument("--motion-wait", type=int, default=5, choices=sorted(motion.WAITS),
                        help="the motion settings for this wait, as `train liveness --motion-wait` (default 5)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--extra-scores", type=Path, help="per-frame attack scores of another model (.npz of "
                                                          "paths and score; module docstring)")
    parser.add_argument("--extra-name", default="extra", help="the name that model's columns get")
    return parser.parse_args(argv)


class Folder(trainer.Folder):
    """One dataset's frames and faces (edge_build.training.liveness.Folder), with the features
    of each camera shift and the shipped colour head's stem features, cached."""

    def __init__(self, root: Path, attack: str, cache: Path):
        frames = load_frames(root, attack)
        super().__init__(root, attack, frames, detect_all(frames, cache))
        self.cache = cache
        self._features, self._colour, self._clips = {}, {}, None

    def features(self, variant: str):
        if variant not in self._features:
            self._features[variant] = cached(self.frames, self.faces, variant, self.cache)
        return self._features[variant]

    def clips(self) -> list[dict]:
        """The folder's captured clips with the motion cue's measures (computed once: it reads the frames)."""
        if self._clips is None:
            self._clips = captured_clips(self.frames, self.faces)
            for clip in self._clips:
                measured(clip)
        return self._clips

    def colour(self, variant: str, extractor) -> np.ndarray:
        """(N, 64) stem statistics of the shipped head on the frame's 150x150 RGB chip, NaN without a face."""
        if variant not in self._colour:
            self._colour[variant] = colour_features(self, variant, extractor)
        return self._colour[variant]


def colour_features(folder: Folder, variant: str, extractor) -> np.ndarray:
    # the texture version in the key is historical (the colour features do not depend on it): kept so
    # the cached files stay valid
    key = file_key([f.path for f in folder.frames], f"colour|{variant}|{texture.FEATURES}")
    cache = folder.cache / f"colour-{key}.npy"
    if cache.exists():
        return np.load(cache)
    import torch  # the shipped head's features come from the embedding network's torch layers

    from edge_build.models import attributes as model  # imports torch

    contract = model.make_contract(["live"], backbone="embedding")
    mean, std = np.asarray(contract["mean"], np.float32), np.asarray(contract["std"], np.float32)
    out = np.full((len(folder.frames), 64), np.nan)
    rows, batch = [], []

    def flush():
        if batch:
            with torch.no_grad():
                out[rows] = extractor(torch.from_numpy(np.concatenate(batch))).numpy()
            rows.clear()
            batch.clear()

    for index, frame in enumerate(folder.frames):
        if not folder.faces.found[index]:
            continue
        shot = shifted(frame, folder.faces, index, variant)
        if not shot.inside:
            continue
        # the product's chip: the pipeline's alignment of the MTCNN landmarks (FacePipeline.align)
        matrix = align.chip_matrix(shot.landmarks, FITTED_TEMPLATE, 150, 0.25, FIT_WEIGHTS)
        source, matrix = align.pyramid_source(shot.image, matrix, 150)
        chip = np.empty((1, 3, 150, 150), np.float32)
        align.preprocess_cpu(source, matrix[None], 150, mean, std, out=chip)
        rows.append(index)
        batch.append(chip)
        if len(batch) == 128:
            flush()
    flush()
    np.save(cache, out)
    return out


def errors(scores, attack, threshold: float, usable) -> dict:
    scores, attack, usable = np.asarray(scores), np.asarray(attack, bool), np.asarray(usable, bool)
    refused = scores >= threshold
    a, r = attack & usable, ~attack & usable
    return {"apcer": float(np.mean(~refused[a])) if a.any() else None, "attacks": int(a.sum()),
            "attacks_accepted": int((~refused[a]).sum()),
            "bpcer": float(np.mean(refused[r])) if r.any() else None, "real": int(r.sum()),
            "real_refused": int(refused[r].sum()), "no_face": int((~usable).sum())}


def either(first: dict, second: dict) -> np.ndarray:
    return first["refused"] | second["refused"]


# -- the cues, fitted on a training set --------------------------------------------------------

def fit_colour(parts: list[tuple[Folder, np.ndarray]], extractor) -> dict:
    """The shipped recipe: native frames, logistic L2 0.03, equal-error threshold on out-of-group scores."""
    x, attack, groups = [], [], []
    for folder, mask in parts:
        c = folder.colour("native", extractor)
        keep = mask & np.isfinite(c).all(axis=1)
        x.append(c[keep])
        attack.append(folder.attack[keep])
        groups.append(folder.groups[keep])
    x, attack, groups = np.concatenate(x), np.concatenate(attack), np.concatenate(groups)
    oof = fit.out_of_group(x, attack, groups, COLOUR_L2)
    return {"head": fit.fit_logistic(x, attack, COLOUR_L2), "threshold": eer_threshold(oof, attack)}


def test_scores(cues: dict, folder: Folder, variant: str, colour=None, extractor=None) -> dict:
    """{cue: attack scores (NaN where no face)} on one test folder under one shift."""
    f = folder.features(variant)
    out = {}
    tex = np.full(len(folder.frames), np.nan)
    tex[f.ok] = fit.head_scores(f.texture[f.ok], cues["texture"]["head"])
    out["texture"] = tex
    ctx = np.full(len(folder.frames), np.nan)
    ctx[f.ok] = [context.attack_score(c) for c in f.context[f.ok]]
    out["context"] = ctx
    if colour is not None:
        c = folder.colour(variant, extractor)
        good = np.isfinite(c).all(axis=1)
        col = np.full(len(folder.frames), np.nan)
        col[good] = fit.head_scores(c[good], colour["head"])
        out["colour"] = col
    return out


class ExtraScores:
    """Per-frame attack scores of a model run elsewhere, looked up by frame file."""

    def __init__(self, path: Path, name: str):
        data = np.load(path)
        if "paths" not in data or "score" not in data:
            raise SystemExit(f"{path} holds {sorted(data.files)}; --extra-scores needs an .npz of paths and score")
        self.name = name
        self.by_path = dict(zip((str(p) for p in data["paths"]), data["score"].astype(np.float64)))

    def of(self, folder) -> np.ndarray:
        missing = [str(f.path) for f in folder.frames if str(f.path) not in self.by_path]
        if missing:
            raise SystemExit(f"--extra-scores has no score for {len(missing)} frames of {folder.root} (first: "
                             f"{missing[0]}); score every frame of both folders, NaN where no face was found")
        return np.array([self.by_path[str(f.path)] for f in folder.frames])

    def threshold(self, parts, target_bpcer: float) -> float:
        """Refuses ``target_bpcer`` of the training side's real frames, as the fitted cues' thresholds do."""
        real = np.concatenate([self.of(folder)[mask & ~folder.attack] for folder, mask in parts])
        return float(np.nanquantile(real, 1.0 - target_bpcer))


def judge(cues: dict, scores: dict, colour=None) -> dict:
    """{cue: refused (bool per frame)} at the training thresholds, and the combined texture+context."""
    refused = {name: np.nan_to_num(scores[name], nan=-np.inf) >= cues[name]["threshold"]
               for name in ("texture", "context")}
    refused["texture+context"] = refused["texture"] | refused["context"]
    if colour is not None:
        refused["colour"] = np.nan_to_num(scores["colour"], nan=-np.inf) >= colour["threshold"]
    extra = cues.get("extra")
    if extra is not None and extra["name"] in scores:
        refused[extra["name"]] = np.nan_to_num(scores[extra["name"]], nan=-np.inf) >= extra["threshold"]
        refused[f"texture+context+{extra['name']}"] = refused["texture+context"] | refused[extra["name"]]
    return refused


def window_errors(folder: Folder, mask, scores: np.ndarray, threshold: float) -> dict:
    """Mean score over non-overlapping runs of WINDOW consecutive frames of one sequence."""
    by = {}
    for index in np.flatnonzero(mask & np.isfinite(scores)):
        by.setdefault(folder.frames[index].sequence, []).append(index)
    means, attack = [], []
    for sequence, rows in by.items():
        rows.sort(key=lambda i: folder.frames[i].order)
        for start in range(0, len(rows) - WINDOW + 1, WINDOW):
            means.append(np.mean(scores[rows[start:start + WINDOW]]))
            attack.append(folder.attack[rows[0]])
    return errors(np.asarray(means), np.asarray(attack, bool), threshold, np.ones(len(means), bool))


def clip_live_frames(clip: dict, scores: dict, thresholds: dict, settings: motion.MotionSettings | None,
                     keep: bool = True) -> list[bool]:
    """Per frame of a clip: would the daemon call the track live there (texture, context, and motion unless
    ``settings`` is None)? The daemon's own judge (edge.liveness.judge.TrackJudge) decides, fed the stored
    scores and motion measures. ``keep=False`` is the rule before a frame cue's refused window was kept
    for the track (a window that passes again lets it in), for comparison."""
    if not keep:
        return rule_before_kept_calls(clip, scores, thresholds, settings)
    liveness = Liveness(texture={"threshold": thresholds["texture"]} if "texture" in thresholds else None,
                        context=thresholds.get("context"), motion=settings, window=WINDOW)
    judge = liveness.new_track()
    return [judge.record(FrameCues({name: float(scores[name][row]) for name in thresholds}, pairs=pairs,
                                   measured_on=judge.motion_track), None).live
            for row, pairs in zip(clip["rows"], clip["measures"])]


def rule_before_kept_calls(clip: dict, scores: dict, thresholds: dict, settings) -> list[bool]:
    """clip_live_frames under the judge's earlier rule: only the motion cue's attack call was kept."""
    windows = {name: [] for name in thresholds}
    track = motion.MotionTrack(settings) if settings is not None else None
    first = max(WINDOW, settings.min_frames) if settings is not None else WINDOW
    attacked, live = False, []
    for frame, (row, pairs) in enumerate(zip(clip["rows"], clip["measures"]), start=1):
        for name in thresholds:
            windows[name] = (windows[name] + [scores[name][row]])[-WINDOW:]
        call = track.feed(pairs).call if track is not None else motion.UNDECIDED
        attacked = attacked or call == motion.ATTACK
        passes = all(np.nanmean(values) < thresholds[name] for name, values in windows.items())
        live.append(frame >= first and passes and not attacked and call != motion.DECIDING)
    return live


def clip_errors(folder: Folder, mask, scores: dict, thresholds: dict, settings: motion.MotionSettings) -> dict:
    """Per-clip accepted attacks and refused real clips, with and without the motion cue."""
    out = {}
    for label, used, keep in (("texture+context", None, True), ("texture+context+motion", settings, True),
                              ("motion", settings, True), (NOT_KEPT, settings, False)):
        cues = {} if label == "motion" else thresholds
        accepted = attacks = refused = real = 0
        for clip in folder.clips():
            if not mask[clip["rows"][0]]:
                continue
            any_live = any(clip_live_frames(clip, scores, cues, used, keep))
            if clip["live"]:
                real += 1
                refused += not any_live
            else:
                attacks += 1
                accepted += any_live
        out[label] = {"attacks": attacks, "attacks_accepted": accepted, "real": real, "real_refused": refused}
    return out


# -- protocols ----------------------------------------------------------------------------------

def run_protocol(name: str, train_parts, test_parts, args, extractor, report: dict) -> None:
    """Fit on ``train_parts`` [(folder, mask)], measure on ``test_parts`` [(folder, mask)] per shift."""
    rows = trainer.rows(train_parts, trainer.variants(AUGMENT), args.cache_dir, progress=False)
    cues = trainer.fit_cues(rows, args.target_bpcer)
    if args.extra is not None:
        cues["extra"] = {"name": args.extra.name, "threshold": args.extra.threshold(train_parts, args.target_bpcer)}
    colour = fit_colour(train_parts, extractor) if extractor is not None else None
    entry = report.setdefault(name, {"settings": {"texture_l2": cues["texture"]["l2"],
                                                  "texture_threshold": cues["texture"]["threshold"],
                                                  "context_threshold": cues["context"]["threshold"],
                                                  "colour_threshold": colour and colour["threshold"],
                                                  **({"extra_threshold": cues["extra"]["threshold"]}
                                                     if "extra" in cues else {})},
                                     "shifts": {}})
    for variant in args.shifts:
        for folder, mask in test_parts:
            scores = test_scores(cues, folder, variant, colour, extractor)
            if args.extra is not None and variant == "native":  # scored elsewhere, on the frames as captured
                scores[args.extra.name] = args.extra.of(folder)
            refused = judge(cues, scores, colour)
            usable = np.isfinite(scores["texture"])
            for cue, flags in refused.items():
                table = entry["shifts"].setdefault(variant, {}).setdefault(cue, {"refused": [], "attack": [], "usable": []})
                table["refused"].append(flags[mask])
                table["attack"].append(folder.attack[mask])
                table["usable"].append(usable[mask])
            # per clip under every shift: the frame cues read the shifted frames; the motion cue's
            # measures are the native frames' (a shift changes the texture more than the motion)
            thresholds = {cue: cues[cue]["threshold"] for cue in ("texture", "context")}
            entry.setdefault("clips", {}).setdefault(variant, []).append(
                clip_errors(folder, mask, scores, thresholds, motion.WAITS[args.motion_wait]))
            if variant == "native":
                for cue in ("texture", "context"):
                    entry.setdefault("window5", {}).setdefault(cue, []).append(
                        (folder, mask, scores[cue], cues[cue]["threshold"]))


def summarise(report: dict) -> dict:
    """Turn the collected flags into error figures (pooled over the test parts)."""
    out = {}
    for name, entry in report.items():
        figures = {"settings": entry["settings"], "shifts": {}, "window5": {}, "clips": {}}
        for variant, parts in entry.get("clips", {}).items():
            for part in parts:
                for label, counts in part.items():
                    pooled = figures["clips"].setdefault(variant, {}).setdefault(label, dict.fromkeys(counts, 0))
                    for key, value in counts.items():
                        pooled[key] += value
        for variant, cues in entry["shifts"].items():
            for cue, table in cues.items():
                refused = np.concatenate(table["refused"])
                attack, usable = np.concatenate(table["attack"]), np.concatenate(table["usable"])
                figures["shifts"].setdefault(variant, {})[cue] = errors(refused.astype(float), attack, 0.5, usable)
        for cue, parts in entry.get("window5", {}).items():
            pooled = {"refused": 0, "real": 0, "accepted": 0, "attacks": 0}
            for folder, mask, scores, threshold in parts:
                e = window_errors(folder, mask, scores, threshold)
                pooled["refused"] += e["real_refused"]
                pooled["real"] += e["real"]
                pooled["accepted"] += e["attacks_accepted"]
                pooled["attacks"] += e["attacks"]
            figures["window5"][cue] = {
                "apcer": pooled["accepted"] / pooled["attacks"] if pooled["attacks"] else None,
                "attacks": pooled["attacks"], "attacks_accepted": pooled["accepted"],
                "bpcer": pooled["refused"] / pooled["real"] if pooled["real"] else None,
                "real": pooled["real"], "real_refused": pooled["refused"]}
        out[name] = figures
    return out


def percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def print_table(summary: dict, shifts_list, extra: str | None = None) -> None:
    cues = ("texture", "context", "texture+context", "colour") + ((extra, f"texture+context+{extra}") if extra else ())
    for name, figures in summary.items():
        print(f"\n### {name}  (settings: {json.dumps(figures['settings'])})")
        present = [c for c in cues if c in figures["shifts"].get("native", {})]
        print("| shift | " + " | ".join(f"{c} APCER / BPCER %" for c in present) + " | faces (attack/real) |")
        print("|---|" + "---|" * (len(present) + 1))
        for variant in shifts_list:
            row = figures["shifts"].get(variant)
            if not row:
                continue
            cells = [f"{percent(row[c]['apcer'])} / {percent(row[c]['bpcer'])}" if c in row else "–" for c in present]
            first = row[present[0]]
            print(f"| {variant} | " + " | ".join(cells) + f" | {first['attacks']}/{first['real']} |")
        for cue, e in figures["window5"].items():
            print(f"window of {WINDOW} frames, native, {cue}: APCER {percent(e['apcer'])} % ({e['attacks_accepted']}/"
                  f"{e['attacks']}), BPCER {percent(e['bpcer'])} % ({e['real_refused']}/{e['real']})")
        for label, c in figures["clips"].get("native", {}).items():
            print(f"per clip of 15 frames, {label}: attack clips accepted {c['attacks_accepted']}/{c['attacks']}, "
                  f"real clips refused {c['real_refused']}/{c['real']}")
        for variant in shifts_list:
            c, old = (figures["clips"].get(variant, {}).get(label) for label in ("texture+context+motion", NOT_KEPT))
            if c and old:
                print(f"per clip, {variant}: texture+context+motion accepted {c['attacks_accepted']}/{c['attacks']}, "
                      f"real refused {c['real_refused']}/{c['real']} (frame calls not kept: "
                      f"{old['attacks_accepted']} and {old['real_refused']})")


def main(argv=None) -> int:
    args = parse_args(argv)
    cache = args.cache_dir = args.cache or paths.home() / "cache" / "liveness"
    if args.extra_name in ("texture", "context", "colour", "texture+context"):
        raise SystemExit(f"--extra-name {args.extra_name} is one of the benchmark's own cues; choose another")
    args.extra = ExtraScores(args.extra_scores, args.extra_name) if args.extra_scores else None
    nuaa = Folder(args.nuaa, "print", cache)
    replay = Folder(args.replay, "screen", cache)
    extractor = None
    if not args.no_colour:
        import torch  # the shipped colour head reads the embedding network's torch stem

        from edge_build.models import attributes as model
        from edge_build.models import finetune

        torch.set_num_threads(1)
        extractor = model.features_from(finetune.pretrained(), deep=False)
    everything = lambda folder: np.ones(len(folder.frames), bool)  # noqa: E731
    report = {}
    print("nuaa->replay ...", file=sys.stderr, flush=True)
    run_protocol("nuaa->replay (screens)", [(nuaa, everything(nuaa))], [(replay, everything(replay))], args,
                 extractor, report)
    print("replay->nuaa ...", file=sys.stderr, flush=True)
    run_protocol("replay->nuaa (prints)", [(replay, everything(replay))], [(nuaa, everything(nuaa))], args,
                 extractor, report)
    for folder, other, label in ((nuaa, replay, "both, one NUAA subject out (prints)"),
                                 (replay, nuaa, "both, one replay source out (screens)")):
        for group in sorted(set(folder.groups)):
            print(f"{label}: {group} ...", file=sys.stderr, flush=True)
            held = folder.groups == group
            run_protocol(label, [(folder, ~held), (other, everything(other))], [(folder, held)], args, None, report)
    summary = summarise(report)
    print_table(summary, args.shifts, args.extra and args.extra.name)
    if args.json:
        args.json.write_text(json.dumps({"target_bpcer": args.target_bpcer, "protocols": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
