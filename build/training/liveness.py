"""`edge-verify train liveness`: fit the texture, context and motion cues on liveness folders.

Input: one or more folders with ``real/`` and ``fake/`` frames, each with the
attack type of its fakes (``DIR=print``, ``DIR=screen``). Faces are found by
the product's pipeline; features are computed by the runtime's own functions
(edge.liveness.texture / context) on every frame as captured and on
``augment`` random camera shifts of it (edge_build.training.liveness_shifts),
all cached.

Settings and figures (edge_build.training.liveness_fit):

* texture: a logistic head on standardised features, classes and folders
  balanced; its L2 weight and threshold come from leave-one-group-out scores (a
  group is a subject or a source); the threshold refuses ``target_bpcer`` of the
  real frames there;
* context: no weights; its threshold refuses ``target_bpcer`` of the real frames;
* motion: the settings validated by benchmarks/liveness_motion_clips.py, checked
  here on the folders' real sequences (clips of 15 frames) and on synthetic flat
  attacks made from their real frames;
* cnn (with ``cnn``): a small grey CNN (edge_build.training.liveness_cnn) fitted
  on every frame, written as ONNX beside the model; its figures come from
  ``cnn_folds`` networks, each fitted without a fold of every folder's groups.

``validated`` figures per cue and attack type come from groups the cue's
settings did not see (each group scored at a threshold chosen on the others),
on frames as captured. The model goes to $EDGE_VERIFY_HOME/models/liveness.json,
where the daemon and `edge-verify liveness` find it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge import paths
from edge.exc import ConfigError
from edge.liveness import cnn, context, motion, texture
from edge.liveness.model import FORMAT, model_path, write_model
from edge.pipeline import FacePipeline
from edge.vision.image import load_image
from edge_build.training import liveness_fit as fit
from edge_build.training import liveness_cnn
from edge_build.training.liveness_clips import MIN_CLIP, captured_clips, measured, synthetic_clips
from edge_build.training.liveness_data import detect_all, load_frames
from edge_build.training.liveness_features import cached

DEFAULT_TARGET_BPCER = 0.025


@dataclass
class LivenessConfig:
    data: list  # [(folder, attack type)]
    out: Path | None = None  # default: $EDGE_VERIFY_HOME/models/liveness.json
    target_bpcer: float = DEFAULT_TARGET_BPCER
    augment: int = 2  # random camera shifts per frame
    window: int = 5
    synthetic_clips: int = 40
    seed: int = 0
    cache: Path | None = None
    progress: bool = True
    motion: motion.MotionSettings = field(default_factory=motion.MotionSettings)
    cnn: bool = False  # also fit the cnn cue (minutes per network on a CPU)
    cnn_epochs: int = 8
    cnn_augment: int = 4  # random camera shifts per frame for the network
    cnn_folds: int = 3  # networks fitted without a fold of groups, for its figures
    # networks from different seeds whose mean logit is the cue (each fold's too): one training lands far from
    # another on new people (prints 6-15 % accepted); the mean of 3 is steadier (README, "Training noise")
    cnn_members: int = 3


@dataclass
class Folder:
    root: Path
    attack_type: str
    frames: list
    faces: object

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def attack(self) -> np.ndarray:
        return np.array([not f.live for f in self.frames])

    @property
    def groups(self) -> np.ndarray:
        return np.array([f"{self.name}/{f.group}" for f in self.frames])


def open_folders(data, cache: Path, progress: bool = True) -> list[Folder]:
    folders = []
    for root, attack in data:
        frames = load_frames(Path(root), attack)
        folders.append(Folder(Path(root), attack, frames, detect_all(frames, cache, progress=progress)))
    return folders


def variants(augment: int) -> tuple:
    return ("native", *(f"augment-{k + 1}" for k in range(augment)))


def rows(parts, names, cache: Path, progress: bool = True) -> dict:
    """Training frames stacked over ``names`` (variants): texture features, context scores, attack,
    group, attack type, and the (folder, class) cell used to balance the head's weights.
    ``parts``: [(Folder, row mask)]."""
    out = {key: [] for key in ("texture", "context", "attack", "groups", "types", "cells")}
    for folder, mask in parts:
        for name in names:
            f = cached(folder.frames, folder.faces, name, cache, progress)
            keep = mask & f.ok
            out["texture"].append(f.texture[keep])
            out["context"].append(np.array([context.attack_score(c) for c in f.context[keep]]).reshape(-1))
            out["attack"].append(folder.attack[keep])
            out["groups"].append(folder.groups[keep])
            out["types"].append(np.where(folder.attack[keep], folder.attack_type, "none"))
            out["cells"].append(np.char.add(f"{folder.name}/", np.where(folder.attack[keep], "attack", "real")))
    return {key: np.concatenate(value) for key, value in out.items()}


def fit_cues(data: dict, target: float) -> dict:
    """Texture head (L2 and threshold from leave-one-group-out scores) and context threshold."""
    weights = fit.balanced_weights(data["cells"])
    l2, oof = fit.choose_l2(data["texture"], data["attack"], data["groups"], target, weights)
    return {"texture": {"head": fit.fit_logistic(data["texture"], data["attack"], l2, weights), "l2": l2,
                        "threshold": fit.threshold_for_bpcer(oof, data["attack"], target)},
            "context": {"threshold": fit.threshold_for_bpcer(data["context"], data["attack"], target)}}


def held_out_figures(folders: list[Folder], config: LivenessConfig, cache: Path) -> dict:
    """Per cue and attack type: each group judged by cues fitted and thresholded without it (native frames)."""
    groups = sorted(set(np.concatenate([folder.groups for folder in folders])))
    refused = {"texture": [], "context": [], "texture+context": []}
    types = []
    for group in groups:
        train = [(folder, folder.groups != group) for folder in folders]
        test = [(folder, folder.groups == group) for folder in folders]
        cues = fit_cues(rows(train, variants(config.augment), cache, config.progress), config.target_bpcer)
        held = rows(test, ("native",), cache, config.progress)
        if not len(held["attack"]):
            continue
        tex = fit.head_scores(held["texture"], cues["texture"]["head"]) >= cues["texture"]["threshold"]
        ctx = held["context"] >= cues["context"]["threshold"]
        refused["texture"].append(tex)
        refused["context"].append(ctx)
        refused["texture+context"].append(tex | ctx)
        types.append(held["types"])
    types = np.concatenate(types)
    protocol = f"leave one group out over {len(groups)} groups (subjects or sources), frames as captured"
    return {cue: by_attack_type(np.concatenate(flags), types, protocol) for cue, flags in refused.items()}


def by_attack_type(refused: np.ndarray, types: np.ndarray, protocol: str) -> dict:
    """A cue's validated entry: APCER per attack type and BPCER of the frames it ``refused`` (bool per frame;
    ``types``: each frame's attack type, "none" for real)."""
    entry = {"protocol": protocol}
    for attack_type in sorted(set(types) - {"none"}):
        attacks = types == attack_type
        entry[attack_type] = {"apcer": float(np.mean(~refused[attacks])), "attacks": int(attacks.sum())}
    real = types == "none"
    entry["real"] = {"bpcer": float(np.mean(refused[real])), "real": int(real.sum())}
    return entry


def cnn_figures(folders: list[Folder], config: LivenessConfig, cache: Path, echo) -> dict:
    """Per attack type: each fold's frames judged by a network fitted without that fold (native frames)."""
    refused, types = [], []
    for k in range(config.cnn_folds):
        train = [(folder, liveness_cnn.fold_of(folder, config.cnn_folds) != k) for folder in folders]
        test = [(folder, liveness_cnn.fold_of(folder, config.cnn_folds) == k) for folder in folders]
        x, attack, weights, _ = liveness_cnn.rows(train, variants(config.cnn_augment), cache, config.progress)
        held, _, _, held_types = liveness_cnn.rows(test, ("native",), cache)
        if not len(held) or len(set(attack)) < 2:
            continue
        echo(f"cnn cue, fold {k + 1}/{config.cnn_folds}: {len(x)} training chips, {len(held)} held out")
        net = liveness_cnn.train_members(x, attack, weights, config.cnn_epochs, config.seed + 1 + k,
                                         config.cnn_members, echo)
        refused.append(liveness_cnn.scores(net, held) >= liveness_cnn.BOUNDARY)
        types.append(held_types)
    if not refused:
        raise ConfigError("the cnn cue's folds left no fold with both real and attack frames to fit on; "
                          "give more groups (subjects or sources) or fewer --cnn-folds")
    return by_attack_type(np.concatenate(refused), np.concatenate(types),
                          f"{config.cnn_folds} folds of every folder's groups (subjects or sources), each judged by "
                          f"{judged_by(config.cnn_members)} fitted without it, frames as captured, threshold at the "
                          "decision boundary")


def judged_by(members: int) -> str:
    return "a network" if members == 1 else f"the mean of {members} networks"


def fit_cnn(folders: list[Folder], config: LivenessConfig, cache: Path, network_path: Path, echo) -> dict:
    """The cnn cue's model entry; its network is written to ``network_path`` (atomically)."""
    validated = cnn_figures(folders, config, cache, echo)
    everything = [(folder, np.ones(len(folder.frames), bool)) for folder in folders]
    x, attack, weights, _ = liveness_cnn.rows(everything, variants(config.cnn_augment), cache, config.progress)
    echo(f"cnn cue: the shipped network on all {len(x)} chips")
    net = liveness_cnn.train_members(x, attack, weights, config.cnn_epochs, config.seed, config.cnn_members, echo)
    scratch = network_path.with_name(network_path.name + ".tmp")
    liveness_cnn.export(net, scratch)
    scratch.replace(network_path)
    return liveness_cnn.model_entry(network_path, epochs=config.cnn_epochs, augment=config.cnn_augment,
                                    members=config.cnn_members, validated=validated)


def tally(calls) -> dict:
    calls = list(calls)
    return {name: sum(1 for c in calls if c == name)
            for name in (motion.LIVE, motion.ATTACK, motion.UNDECIDED, motion.DECIDING)} | {"clips": len(calls)}


def motion_figures(folders: list[Folder], config: LivenessConfig, echo) -> dict:
    """The motion settings on the folders' captured clips and on synthetic flat attacks of their real frames."""
    settings = config.motion
    # the call at the frame a track may first be live: an attack called later comes after a door opened
    judge = lambda clip: motion.passive_call(measured(clip), settings)[0]  # noqa: E731
    figures = {"protocol": f"clips of 15 frames, as called when the door could first open (frame {settings.min_frames}, "
                           f"or up to {settings.max_frames} while a face turns like a plane); "
                           "synthetic: real frames moved as planes (prints and phones)"}
    captured = [c for folder in folders for c in captured_clips(folder.frames, folder.faces)]
    figures["real"] = tally(judge(c) for c in captured if c["live"])
    for attack_type in sorted({c["attack"] for c in captured if not c["live"]}):
        figures[f"captured {attack_type}"] = tally(judge(c) for c in captured if c["attack"] == attack_type)
    if config.synthetic_clips:
        rng = np.random.default_rng(config.seed)
        real = [(folder, i) for folder in folders for i, f in enumerate(folder.frames) if f.live and folder.faces.found[i]]
        picks = rng.choice(len(real), size=min(config.synthetic_clips, len(real)), replace=False)
        pipeline = FacePipeline.load(flip=False, threads=1)
        photos = [(str(real[k][0].frames[real[k][1]].path), load_image(real[k][0].frames[real[k][1]].path),
                   real[k][0].faces.boxes[real[k][1]]) for k in picks]
        echo(f"motion cue: {len(photos)} synthetic flat-attack clips from the folders' real frames")
        clips = [c for c in synthetic_clips(photos, pipeline, rng, progress=config.progress)
                 if len(c["landmarks"]) >= MIN_CLIP]
        figures["synthetic flat"] = tally(judge(c) for c in clips)
    return figures


def train(config: LivenessConfig, echo=print) -> dict:
    if not config.data:
        raise ConfigError("give at least one --data DIR=ATTACK folder")
    if not 0.0 < config.target_bpcer < 0.5:
        raise ConfigError(f"--target-bpcer must be between 0 and 0.5, got {config.target_bpcer:g}")
    if config.augment < 0:
        raise ConfigError("--augment must be 0 or more")
    if config.cnn and (config.cnn_epochs < 1 or config.cnn_augment < 0 or config.cnn_folds < 2
                       or config.cnn_members < 1):
        raise ConfigError("--cnn-epochs must be 1 or more, --cnn-augment 0 or more, --cnn-folds 2 or more and "
                          "--cnn-members 1 or more")
    cache = Path(config.cache or paths.home() / "cache" / "liveness")
    folders = open_folders(config.data, cache, config.progress)
    for folder in folders:
        echo(f"{folder.root}: {len(folder.frames)} frames ({int(folder.faces.found.sum())} with a face), "
             f"{len(set(folder.groups))} groups, attacks: {folder.attack_type}")
    if len(set(np.concatenate([folder.groups for folder in folders]))) < 2:
        raise ConfigError("liveness training needs at least two groups (subjects or sources) to validate on")
    everything = [(folder, np.ones(len(folder.frames), bool)) for folder in folders]
    data = rows(everything, variants(config.augment), cache, config.progress)
    cues = fit_cues(data, config.target_bpcer)
    echo(f"texture head: L2 {cues['texture']['l2']:g}, threshold {cues['texture']['threshold']:.4f}; "
         f"context threshold {cues['context']['threshold']:.4f} (each refusing {config.target_bpcer:.1%} of real frames "
         "held out by group)")
    echo("validating on held-out groups ...")
    validated = held_out_figures(folders, config, cache)
    motion_validated = motion_figures(folders, config, echo)
    out = Path(config.out or model_path())
    out.parent.mkdir(parents=True, exist_ok=True)
    cnn_entry = fit_cnn(folders, config, cache, out.with_name(cnn.FILE_NAME), echo) if config.cnn else None
    head = cues["texture"]["head"]
    model = {
        "format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "window": config.window,
        "trained_on": [{"folder": str(f.root), "attack": f.attack_type, "frames": len(f.frames),
                        "groups": len(set(f.groups))} for f in folders],
        "target_bpcer": config.target_bpcer, "augment": config.augment,
        "cues": {
            "texture": {"features": texture.FEATURES, "mean": head["mean"].tolist(), "scale": head["scale"].tolist(),
                        "weights": head["weights"].tolist(), "bias": head["bias"], "l2": cues["texture"]["l2"],
                        "threshold": cues["texture"]["threshold"], "validated": validated["texture"]},
            "context": {"features": context.FEATURES, "threshold": cues["context"]["threshold"],
                        "validated": validated["context"]},
            "motion": {"features": motion.FEATURES, **config.motion.as_manifest(), "validated": motion_validated},
        },
        "combined_validated": validated["texture+context"],
    }
    if cnn_entry is not None:
        model["cues"]["cnn"] = cnn_entry
    out = write_model(model, out)
    echo(f"wrote {out}")
    for cue in ("texture", "context", "texture+context"):
        echo(f"held out, {cue}: {rates(validated[cue])}")
    echo("held out, motion: " + ", ".join(f"{k} {v}" for k, v in motion_validated.items() if isinstance(v, dict)))
    if cnn_entry is not None:
        echo(f"held out, cnn: {rates(cnn_entry['validated'])}")
    return model


def rates(entry: dict) -> str:
    """'print APCER 1.2%, screen APCER 3.4%; BPCER 5.6%' of a cue's validated figures."""
    attacks = ", ".join(f"{k} APCER {v['apcer']:.1%}" for k, v in entry.items() if isinstance(v, dict) and "apcer" in v)
    return f"{attacks}; BPCER {entry['real']['bpcer']:.1%}"


def run(config: LivenessConfig, echo=print) -> int:
    train(config, echo)
    echo("the daemon uses it at its next start ([decision] liveness = \"auto\" or \"required\"); "
         "check photos or clips with `edge-verify liveness`")
    return 0
