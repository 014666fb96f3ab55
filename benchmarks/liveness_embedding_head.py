"""A liveness head on the face-embedding network's own features (issue 14): does a network trained on
millions of faces from many cameras give a cue that carries across cameras where the small cnn cue
does not?

The seed methods include verification on a pretrained CNN's features. Here the embedding engine
(dlib's ResNet, frozen) reads each frame's aligned chip, and four of its stages (the last ReLU of
units 2, 6, 10 and 13) are summarised per channel by mean and standard deviation over the map; a
logistic head reads those numbers. The head is fitted exactly as the texture cue's is
(edge_build.training.liveness_fit): each (folder, real/attack) cell weighs the same, the L2 weight is
chosen by leave-one-group-out scores on the training side, and the threshold refuses
``--target-bpcer`` of those out-of-group real frames. The test side is never used to choose.

Two chips: ``rgb`` (the engine's own input) and ``grey`` (the same chip turned grey and repeated in
the three channels, so no colour cast can drive it, as the shipped cues are grey). Protocols as
benchmarks/liveness_cnn.py's folds: both folders with NUAA subjects held out (3 folds, prints) or a
replay source held out (screens); one folder judged on the other. ``--lfw`` also judges news photos
of real people (LFW, one face each) with the head fitted on both whole folders.

    EDGE_VERIFY_HOME=... python benchmarks/liveness_embedding_head.py --nuaa ../shared/datasets/nuaa_train \\
        --replay ../shared/datasets/replay_dev --lfw ../shared/datasets/lfw --photos 300 --json head.json

Prints per protocol APCER / BPCER % at the chosen threshold and at the head's own boundary (p = 0.5),
and the least APCER any threshold could reach at 5 % BPCER on the test side itself (an oracle no
kiosk can choose: it says how well the scores rank, not what a kiosk would get).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the cnn benchmark's folds and oracle: this head's figures sit beside the cnn cue's in the README
from liveness_cnn import FOLDS, apcer_at_bpcer  # noqa: E402

STAGES = tuple(f"/units/units.{unit}/Relu_1_output_0" for unit in (2, 6, 10, 13))
CHIPS = ("grey", "rgb")
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nuaa", type=Path, required=True, help="NUAA-style folder (prints)")
    parser.add_argument("--replay", type=Path, required=True, help="replay-style folder (phone screens)")
    parser.add_argument("--lfw", type=Path, help="LFW folder: judge its photos of real people too")
    parser.add_argument("--photos", type=int, default=300, help="LFW photos to judge (default 300)")
    parser.add_argument("--target-bpcer", type=float, default=0.025,
                        help="share of out-of-group real frames the threshold refuses (default 0.025, as the cues)")
    parser.add_argument("--chips", nargs="+", default=list(CHIPS), choices=CHIPS)
    parser.add_argument("--json", type=Path, help="write every figure here")
    return parser.parse_args(argv)


def with_stage_outputs(model_bytes: bytes, stages=STAGES) -> bytes:
    """The ONNX model with ``stages`` (tensor names inside it) as extra outputs."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    known = {output for node in model.graph.node for output in node.output}
    missing = [name for name in stages if name not in known]
    if missing:
        raise SystemExit(f"the embedding engine has no tensors {missing}: this benchmark reads dlib's ResNet")
    for name in stages:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return model.SerializeToString()


def summarise(maps: list) -> np.ndarray:
    """Per channel mean and standard deviation of each (1, C, H, W) map, concatenated (float64)."""
    return np.concatenate([np.concatenate([m.mean(axis=(2, 3))[0], m.std(axis=(2, 3))[0]])
                           for m in maps]).astype(np.float64)


def grey_chip(chip: np.ndarray, mean, std) -> np.ndarray:
    """The normalised (1, 3, S, S) RGB chip turned grey in all three channels, normalised again."""
    mean = np.asarray(mean, np.float32)[:, None, None]
    std = np.asarray(std, np.float32)[:, None, None]
    rgb = chip[0] * std + mean
    grey = np.tensordot(GREY_WEIGHTS, rgb, axes=1)
    return ((np.broadcast_to(grey, rgb.shape) - mean) / std)[None].astype(np.float32)


class StageFeatures:
    """The embedding engine with its stages exposed: features of an aligned chip, rgb or grey."""

    def __init__(self, model_path: Path, preprocess: dict):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        self.session = ort.InferenceSession(with_stage_outputs(Path(model_path).read_bytes()), options,
                                            providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.mean, self.std = preprocess["mean"], preprocess["std"]

    def __call__(self, chip: np.ndarray) -> dict:
        return {"rgb": summarise(self.session.run(list(STAGES), {self.input: chip})),
                "grey": summarise(self.session.run(list(STAGES), {self.input: grey_chip(chip, self.mean, self.std)}))}


def folder_features(folder, pipeline, features: StageFeatures, cache: Path) -> dict:
    """{rgb, grey: (N, D) with NaN rows where no face, ok: (N,)} for every frame of a liveness folder, cached."""
    from edge.vision.detector import Face

    path = cache / f"{folder.name}-{len(folder.frames)}.npz"
    if path.exists():
        with np.load(path) as saved:
            return {key: saved[key] for key in ("rgb", "grey", "ok")}
    rows, ok = [], np.zeros(len(folder.frames), bool)
    for index, frame in enumerate(folder.frames):
        image = cv2.imread(str(frame.path)) if folder.faces.found[index] else None
        if image is None:
            rows.append(None)
            continue
        face = Face(folder.faces.boxes[index], float(folder.faces.scores[index]), folder.faces.landmarks[index])
        rows.append(features(pipeline.align(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), [face])))
        ok[index] = True
    width = {key: len(value) for key, value in next(row for row in rows if row is not None).items()}
    out = {key: np.array([row[key] if row is not None else np.full(width[key], np.nan) for row in rows])
           for key in width}
    out["ok"] = ok
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def fit_head(x: np.ndarray, attack: np.ndarray, groups: np.ndarray, cells: np.ndarray, target: float) -> dict:
    """The texture cue's recipe on these features: balanced cells, L2 and threshold from out-of-group scores."""
    from edge_build.training import liveness_fit as fit

    weights = fit.balanced_weights(cells)
    l2, scores = fit.choose_l2(x, attack, groups, target, weights)
    head = fit.fit_logistic(x, attack, l2, weights)
    head["threshold"] = fit.threshold_for_bpcer(scores, attack, target)
    head["l2"] = l2
    return head


def rates(scores: np.ndarray, attack: np.ndarray, threshold: float) -> dict:
    """APCER (attacks under the threshold) and BPCER (real at or over it)."""
    return {"apcer": float(np.mean(scores[attack] < threshold)), "bpcer": float(np.mean(scores[~attack] >= threshold))}


def protocols(data: dict) -> list:
    """[(name, {folder: training rows}, tested folder, tested rows)] as benchmarks/liveness_cnn.py cuts them."""
    every = {name: np.ones(len(d["ok"]), bool) for name, d in data.items()}
    none = {name: np.zeros(len(d["ok"]), bool) for name, d in data.items()}
    out = []
    for folder, groups in FOLDS:
        held = np.isin(data[folder]["groups"], [f"{folder}/{group}" for group in groups])
        label = "both, NUAA subjects out (prints)" if folder == "nuaa_train" else "both, replay source out (screens)"
        out.append((label, {**every, folder: ~held}, folder, held))
    out.append(("NUAA -> replay_dev (screens)", {**none, "nuaa_train": every["nuaa_train"]}, "replay_dev",
                every["replay_dev"]))
    out.append(("replay_dev -> NUAA (prints)", {**none, "replay_dev": every["replay_dev"]}, "nuaa_train",
                every["nuaa_train"]))
    return out


def training_side(data: dict, rows: dict, chip: str) -> tuple:
    """(x, attack, groups, cells) of the training rows with a face."""
    parts = [(name, rows[name] & d["ok"]) for name, d in data.items() if (rows[name] & d["ok"]).any()]
    x = np.concatenate([data[name][chip][keep] for name, keep in parts])
    attack = np.concatenate([data[name]["attack"][keep] for name, keep in parts])
    groups = np.concatenate([data[name]["groups"][keep] for name, keep in parts])
    cells = np.concatenate([np.char.add(f"{name}/", np.where(data[name]["attack"][keep], "attack", "real"))
                            for name, keep in parts])
    return x, attack, groups, cells


def judge(data: dict, chip: str, target: float) -> dict:
    """Per protocol (folds pooled): figures at the chosen threshold, at the boundary, and the oracle's."""
    from edge_build.training import liveness_fit as fit

    pooled = {}
    for label, rows, folder, tested in protocols(data):
        head = fit_head(*training_side(data, rows, chip), target)
        keep = tested & data[folder]["ok"]
        scores = fit.head_scores(data[folder][chip][keep], head)
        part = pooled.setdefault(label, {"scores": [], "attack": [], "thresholds": [], "l2": []})
        part["scores"].append(scores)
        part["attack"].append(data[folder]["attack"][keep])
        part["thresholds"].append(np.full(len(scores), head["threshold"]))
        part["l2"].append(head["l2"])
    out = {}
    for label, part in pooled.items():
        scores, attack = np.concatenate(part["scores"]), np.concatenate(part["attack"])
        thresholds = np.concatenate(part["thresholds"])
        out[label] = {"chosen": {"apcer": float(np.mean(scores[attack] < thresholds[attack])),
                                 "bpcer": float(np.mean(scores[~attack] >= thresholds[~attack]))},
                      "boundary": rates(scores, attack, 0.5), "oracle_apcer_at_bpcer_5": apcer_at_bpcer(scores, attack, 0.05),
                      "l2": part["l2"], "attack_frames": int(attack.sum()), "real_frames": int((~attack).sum())}
    return out


def lfw_features(root: Path, photos: int, pipeline, features: StageFeatures) -> dict:
    """Features of ``photos`` LFW photos (one face each, drawn with seed 1)."""
    paths = sorted((root / "images").rglob("*.jpg")) if (root / "images").is_dir() else sorted(root.rglob("*.jpg"))
    random.Random(1).shuffle(paths)
    rows = []
    for path in paths:
        if len(rows) >= photos:
            break
        main = pipeline.main_face(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
        if main is not None:
            rows.append(features(main.chip))
    return {key: np.array([row[key] for row in rows]) for key in CHIPS}


def main(argv=None) -> int:
    from edge import paths
    from edge.models import registry
    from edge.pipeline import FacePipeline
    from edge_build.training import liveness as trainer
    from edge_build.training import liveness_fit as fit

    args = parse_args(argv)
    cache = paths.home() / "cache"
    pipeline = FacePipeline.load(precision="fp32", flip=False)
    features = StageFeatures(registry.engine_path(registry.EMBEDDING, "fp32", "onnxruntime"),
                             pipeline.manifest["preprocess"])
    folders = trainer.open_folders([(args.nuaa, "print"), (args.replay, "screen")], cache / "liveness")
    data = {}
    for folder in folders:
        data[folder.name] = {**folder_features(folder, pipeline, features, cache / "liveness-embedding"),
                             "attack": folder.attack, "groups": folder.groups}
        print(f"{folder.name}: {int(data[folder.name]['ok'].sum())} faces", file=sys.stderr, flush=True)
    if set(data) != {"nuaa_train", "replay_dev"}:
        raise SystemExit("the folds name nuaa_train's subjects and replay_dev's sources: pass those two folders")
    photos = lfw_features(args.lfw, args.photos, pipeline, features) if args.lfw else None
    report = {"stages": list(STAGES), "target_bpcer": args.target_bpcer, "chips": {}}
    for chip in args.chips:
        row = report["chips"][chip] = judge(data, chip, args.target_bpcer)
        for label, cells in row.items():
            print(f"{chip} chip, {label}: APCER / BPCER % at the chosen threshold {cells['chosen']['apcer'] * 100:.1f} / "
                  f"{cells['chosen']['bpcer'] * 100:.1f}, at the boundary {cells['boundary']['apcer'] * 100:.1f} / "
                  f"{cells['boundary']['bpcer'] * 100:.1f}; oracle APCER at BPCER 5 % "
                  f"{cells['oracle_apcer_at_bpcer_5'] * 100:.1f} (L2 {cells['l2']})", flush=True)
        if photos is not None:
            head = fit_head(*training_side(data, {n: np.ones(len(d["ok"]), bool) for n, d in data.items()}, chip),
                            args.target_bpcer)
            scores = fit.head_scores(photos[chip], head)
            row["lfw"] = {"photos": len(scores), "called_attacks": float(np.mean(scores >= head["threshold"])),
                          "called_attacks_at_boundary": float(np.mean(scores >= 0.5))}
            print(f"{chip} chip, fitted on both folders: {row['lfw']['called_attacks'] * 100:.1f} % of "
                  f"{len(scores)} LFW photos of real people called attacks "
                  f"({row['lfw']['called_attacks_at_boundary'] * 100:.1f} % at the boundary)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
