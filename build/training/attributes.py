"""`edge-verify train attributes`: the multi-label attribute model with its `live` head.

Data, either
* a labels file (CelebA style: image name, then -1 or 1 per attribute; a header
  line names the attributes; 0 means unknown and is left out of the loss), or
* a NUAA-style folder with ``real/`` and ``fake/`` (no labels file): ``live`` is
  1 for real/ and -1 for fake/. (NUAA's file names also say whether the subject
  wears glasses, but glasses are constant per subject there: a head trained on
  them learns who the subject is, so it is not derived.)

A photo's subject is the file name up to its first underscore (NUAA: 0001-0009).
Subjects, never frames, separate training from validation. The ``embedding``
backbone (default) cross-validates over subject folds (see
``edge_build.training.attribute_heads``). The ``small`` CNN splits subjects three
ways (sorted; see ``split_subjects``): *fit* subjects train the weights, *dev*
subjects choose each attribute's threshold, *test* subjects are only measured.
Every threshold is the equal error rate (for `live`: attacks accepted = real
faces rejected) on faces the weights did not see. The figures go into the
checkpoint's contract, so the built engine's manifest carries them.

Photos become chips once, through the product's own FacePipeline (primary face,
aligned), cached as uint8 in an .npz keyed by the file list; photos with no face
are recorded there and left out. The small CNN saves ``<out>.resume.pt`` after
every epoch; ``--resume`` continues from it with the same split, optimiser and
RNG. (The embedding backbone's fit takes seconds and has nothing to resume.)
"""
from __future__ import annotations

import csv
import hashlib
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.exc import ConfigError, EdgeVerifyError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
LR = 2e-3


@dataclass
class Dataset:
    paths: list[Path]
    labels: np.ndarray  # (N, K) in {-1, 0, 1}
    attributes: list[str]
    subjects: list[str]


# ------------------------------------------------------------------ labels

def subject_of(path: Path) -> str:
    return Path(path).stem.split("_")[0]


def images_under(folder: Path) -> list[Path]:
    """Image files anywhere below ``folder``, sorted; linked sub-folders are followed
    (a training set is often assembled from links to the original folders)."""
    found = [Path(top) / name for top, _, names in os.walk(folder, followlinks=True) for name in names]
    return sorted(p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS)


def nuaa_dataset(root: Path) -> Dataset:
    paths, labels = [], []
    for folder, live in (("real", 1), ("fake", -1)):
        for path in images_under(root / folder):
            paths.append(path)
            labels.append([live])
    if not paths:
        raise ConfigError(f"{root}: real/ and fake/ hold no images")
    return Dataset(paths, np.asarray(labels, dtype=np.int8), ["live"], [subject_of(p) for p in paths])


def read_labels(labels_file: Path) -> tuple[list[str], dict[str, list[int]]]:
    """(attribute names, {image name: [-1/0/1, ...]}) from a CelebA-style file
    (commas or whitespace; an optional leading line with the image count)."""
    try:
        lines = [line.strip() for line in Path(labels_file).read_text().splitlines() if line.strip()]
    except OSError as error:
        raise ConfigError(f"cannot read labels file {labels_file}: {error}") from error
    rows = [next(csv.reader([line])) if "," in line else line.split() for line in lines]
    if rows and len(rows[0]) == 1 and rows[0][0].isdigit():
        rows = rows[1:]  # CelebA's list_attr file starts with the number of images
    if len(rows) < 2:
        raise ConfigError(f"{labels_file}: needs a header line and at least one image")
    header = [cell.strip() for cell in rows[0]]
    names = header[1:] if len(header) == len(rows[1]) else header  # CelebA's header has no image column
    table = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(names) + 1:
            raise ConfigError(f"{labels_file} line {number}: {len(row)} fields, expected {len(names) + 1}")
        try:
            values = [int(v) for v in row[1:]]
        except ValueError:
            raise ConfigError(f"{labels_file} line {number}: labels must be -1, 0 or 1") from None
        if any(v not in (-1, 0, 1) for v in values):
            raise ConfigError(f"{labels_file} line {number}: labels must be -1, 0 or 1")
        table[row[0].strip()] = values
    return names, table


def labelled_dataset(data: Path, labels_file: Path) -> Dataset:
    names, table = read_labels(labels_file)
    paths, labels, missing = [], [], []
    for image, values in table.items():
        path = data / image
        (paths if path.exists() else missing).append(path)
        if path.exists():
            labels.append(values)
    if missing:
        raise ConfigError(f"{len(missing)} images in {labels_file} are not under {data}, e.g. {missing[0].name}")
    return Dataset(paths, np.asarray(labels, dtype=np.int8), names, [subject_of(p) for p in paths])


def load_dataset(data, labels=None) -> Dataset:
    data = Path(data)
    if not data.is_dir():
        raise ConfigError(f"training data folder {data} does not exist")
    if labels:
        return labelled_dataset(data, Path(labels))
    if (data / "real").is_dir() and (data / "fake").is_dir():
        return nuaa_dataset(data)
    raise ConfigError(f"{data}: pass --labels CSV, or a folder with real/ and fake/ for a liveness-only set")


# ------------------------------------------------------------------ subjects

def split_subjects(subjects, fold: int = 0, test_fraction: float = 1 / 3, dev_fraction: float = 2 / 9) -> dict[str, list[str]]:
    """{"fit", "dev", "test": sorted subject ids}, every subject on exactly one side.

    Fold 0 tests the last third of the sorted ids and uses the ones before them
    as dev; fold f moves the test block f thirds earlier (cyclically), so folds
    0, 1, 2 test every subject once."""
    ordered = sorted(set(subjects))
    if len(ordered) < 3:
        raise ConfigError(f"need at least 3 subjects to hold some out, found {len(ordered)}")
    n_test = max(1, round(len(ordered) * test_fraction))
    n_dev = max(1, round(len(ordered) * dev_fraction))
    n_fit = len(ordered) - n_test - n_dev
    if n_fit < 1:
        n_fit, n_dev = 1, len(ordered) - n_test - 1
    turn = (-fold * n_test) % len(ordered)
    rotated = ordered[turn:] + ordered[:turn]
    return {"fit": sorted(rotated[:n_fit]), "dev": sorted(rotated[n_fit:n_fit + n_dev]),
            "test": sorted(rotated[n_fit + n_dev:])}


def indices_for(subjects, chosen) -> np.ndarray:
    chosen = set(chosen)
    return np.asarray([i for i, s in enumerate(subjects) if s in chosen], dtype=np.int64)


# ------------------------------------------------------------------ metrics

def apcer_bpcer(scores, live, threshold: float) -> tuple[float, float]:
    """(APCER, BPCER): attacks scored >= threshold, and real faces scored below it.
    ``live`` is truthy for real faces; NaN where a class is absent."""
    scores, live = np.asarray(scores, dtype=np.float64), np.asarray(live, dtype=bool)
    attacks, real = scores[~live], scores[live]
    apcer = float(np.mean(attacks >= threshold)) if len(attacks) else math.nan
    bpcer = float(np.mean(real < threshold)) if len(real) else math.nan
    return apcer, bpcer


def eer_threshold(scores, positive) -> float:
    """The threshold with the smallest max(false accept, false reject) rate; among
    equally good ones, the middle of the range (margin on both sides)."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        raise ConfigError("choosing a threshold needs examples of both classes")
    values = np.unique(scores)
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    worst = np.array([max(apcer_bpcer(scores, positive, t)) for t in candidates])
    best = np.flatnonzero(worst <= worst.min() + 1e-12)
    return float((candidates[best[0]] + candidates[best[-1]]) / 2)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def evaluate(probabilities: np.ndarray, labels: np.ndarray, attributes: list[str], thresholds: dict) -> dict:
    """Per attribute at its threshold: accuracy, and for `live` APCER/BPCER."""
    figures = {}
    for k, name in enumerate(attributes):
        known = labels[:, k] != 0
        if not known.any():
            continue
        scores, positive = probabilities[known, k], labels[known, k] > 0
        predicted = scores >= thresholds[name]
        entry = {"n": int(known.sum()), "accuracy": float(np.mean(predicted == positive))}
        if name == "live":
            entry["apcer"], entry["bpcer"] = apcer_bpcer(scores, positive, thresholds[name])
            entry["attacks"], entry["real"] = int((~positive).sum()), int(positive.sum())
        figures[name] = entry
    return figures


def choose_thresholds(probabilities, labels, attributes) -> dict[str, float]:
    """The equal-error threshold per attribute (0.5 where one class is missing)."""
    chosen = {}
    for k, name in enumerate(attributes):
        known = labels[:, k] != 0
        both = known.any() and len(set(labels[known, k])) == 2
        if not both:
            chosen[name] = 0.5
        else:
            chosen[name] = eer_threshold(probabilities[known, k], labels[known, k] > 0)
    return chosen


# ------------------------------------------------------------------ chips

def cache_key(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def compute_chips(paths: list[Path], pipeline=None, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (N, 150, 150, 3) RGB chips, bool (N,) face found) via the pipeline."""
    from tqdm import tqdm

    from edge.pipeline import FacePipeline
    from edge.vision.image import load_image

    pipeline = pipeline or FacePipeline.load(flip=False, threads=1)
    chips = np.zeros((len(paths), pipeline.size, pipeline.size, 3), dtype=np.uint8)
    found = np.zeros(len(paths), dtype=bool)
    for index, path in enumerate(tqdm(paths, desc="aligning", unit="photo", file=sys.stderr, disable=not progress)):
        try:
            image = load_image(path)
        except EdgeVerifyError:
            continue  # unreadable photos count as faceless; the summary says how many
        main = pipeline.main_face(image)
        if main is None:
            continue
        chip = main.chip[0]
        pixels = chip.transpose(1, 2, 0) * pipeline.std + pipeline.mean
        chips[index], found[index] = np.clip(np.rint(pixels), 0, 255).astype(np.uint8), True
    return chips, found


def cached_chips(paths: list[Path], cache_dir: Path, pipeline=None, progress: bool = True):
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache = cache_dir / f"chips-{cache_key(paths)}.npz"
    if cache.exists():
        with np.load(cache) as stored:
            return stored["chips"], stored["found"], cache
    chips, found = compute_chips(paths, pipeline, progress)
    scratch = cache.with_name(cache.stem + ".tmp.npz")
    np.savez(scratch, chips=chips, found=found, names=np.asarray([str(p) for p in paths]))
    scratch.replace(cache)
    return chips, found, cache


def normalise(chips_uint8: np.ndarray, contract: dict) -> np.ndarray:
    """uint8 NHWC chips -> the contract's normalised float32 NCHW input."""
    mean = np.asarray(contract["mean"], dtype=np.float32)
    std = np.asarray(contract["std"], dtype=np.float32)
    return ((chips_uint8.astype(np.float32) - mean) / std).transpose(0, 3, 1, 2).copy()


# ------------------------------------------------------------------ training

def resume_path(out: Path) -> Path:
    return out.with_name(out.stem + ".resume.pt")


SHIFT_PX = 6


def augment(batch, generator):
    """Mirror half the faces, move them a few pixels, jitter brightness, contrast
    and colour balance: a print's cues (texture, flatness) survive all of these,
    while a subject's lighting, camera and exact alignment should not matter."""
    import torch

    n = len(batch)
    flip = torch.rand(n, generator=generator) < 0.5
    batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(3), batch)
    dy, dx = (int(v) for v in torch.randint(-SHIFT_PX, SHIFT_PX + 1, (2,), generator=generator))
    batch = torch.roll(batch, shifts=(dy, dx), dims=(2, 3))
    gain = 1 + 0.3 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    colour = 1 + 0.1 * (torch.rand(n, 3, 1, 1, generator=generator) - 0.5)
    offset = 0.1 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    return batch * gain * colour + offset


def masked_bce(logits, labels):
    """BCE over known labels only (0 = unknown)."""
    import torch.nn.functional as F

    known = labels != 0
    targets = (labels > 0).float()
    losses = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (losses * known).sum() / known.sum().clamp(min=1)


def train_epoch(module, optimiser, inputs, labels, batch: int, generator, progress: bool, epoch: int) -> float:
    import torch
    from tqdm import tqdm

    module.train()
    order = torch.randperm(len(inputs), generator=generator)
    total, seen = 0.0, 0
    steps = range(0, len(order), batch)
    for start in tqdm(steps, desc=f"epoch {epoch}", unit="batch", file=sys.stderr, leave=False, disable=not progress):
        pick = order[start:start + batch]
        x = augment(torch.from_numpy(inputs[pick.numpy()]), generator)
        y = torch.from_numpy(labels[pick.numpy()].astype(np.float32))
        optimiser.zero_grad()
        loss = masked_bce(module(x), y)
        loss.backward()
        optimiser.step()
        total += loss.item() * len(pick)
        seen += len(pick)
    return total / max(seen, 1)


def predict(module, inputs: np.ndarray, batch: int = 64) -> np.ndarray:
    """Probabilities (N, K) in eval mode."""
    import torch

    module.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch):
            outs.append(module(torch.from_numpy(inputs[start:start + batch])).numpy())
    return sigmoid(np.concatenate(outs)) if outs else np.zeros((0, 0))


@dataclass
class Prepared:
    dataset: Dataset
    inputs: np.ndarray  # normalised chips of photos with a face
    labels: np.ndarray
    subjects: list[str]
    faceless: list[str]
    cache: Path


def prepare(args, contract_for, echo) -> Prepared:
    from edge import paths

    dataset = load_dataset(args.data, args.labels)
    cache_dir = Path(getattr(args, "cache", None) or paths.home() / "cache" / "attribute-chips")
    chips, found, cache = cached_chips(dataset.paths, cache_dir, progress=getattr(args, "progress", True))
    faceless = [str(p) for p, ok in zip(dataset.paths, found) if not ok]
    echo(f"{len(dataset.paths)} photos, {int(found.sum())} with a face ({len(faceless)} without, left out); chips in {cache}")
    keep = np.flatnonzero(found)
    contract = contract_for(dataset.attributes)
    return Prepared(dataset, normalise(chips[keep], contract), dataset.labels[keep],
                    [dataset.subjects[i] for i in keep], faceless, cache)


def run(args, echo=print) -> int:
    """`edge-verify train attributes`: train, write the checkpoint, say how to build it; exit code 0."""
    validation = train(args, echo)
    echo(f"build it with: edge-verify build --model attributes --checkpoint {validation['checkpoint']} "
         "--precision int8 --calibration DIR --gate-faces DIR")
    return 0


def checkpoint_out(out) -> Path:
    """``out`` as a checkpoint file: a .pt path as given, a folder gets attributes.pt, None the models home's."""
    from edge_build.targets import checkpoint_path

    if out is None:
        return checkpoint_path("attributes")
    out = Path(out)
    return out if out.suffix == ".pt" else out / "attributes.pt"


def train(args, echo=print) -> dict:
    """Train and write the checkpoint; returns the validation figures.

    ``args``: data, labels (or None), out (a .pt file or a folder; None:
    $EDGE_VERIFY_HOME/models/checkpoints/attributes.pt), epochs, batch, seed,
    resume (bool), backbone ("embedding", "small" or None = "embedding"),
    threads (or None); optional: fold (0, small), folds (10, embedding),
    embedding (dlib ResNet checkpoint, embedding), cache (chip cache folder),
    progress (True)."""
    import torch

    from edge_build.models import attributes as model

    backbone = getattr(args, "backbone", None) or "embedding"
    if backbone not in model.BACKBONES:
        raise ConfigError(f"unknown backbone {backbone!r} for attributes; available: {', '.join(model.BACKBONES)}")
    if args.epochs < 1 or args.batch < 1:
        raise ConfigError("--epochs and --batch must be at least 1")
    if backbone == "embedding" and args.resume:
        raise ConfigError("--resume applies to --backbone small; the embedding backbone's heads fit in one pass "
                          "(run it again instead)")
    if args.threads:
        torch.set_num_threads(int(args.threads))
    out = checkpoint_out(args.out)
    prepared = prepare(args, model.make_contract, echo)
    if backbone == "embedding":
        module, contract = train_heads(args, prepared, echo)
        extra = {}
    else:
        module, contract, history = train_small(args, out, prepared, echo)
        extra = {"history": history}
    model.save_checkpoint(out, module, contract, extra=extra)
    echo(f"wrote {out}")
    for line in summary_lines(contract):
        echo(line)
    return contract["validation"] | {"checkpoint": str(out)}


def summary_lines(contract: dict) -> list[str]:
    """The held-out figures and thresholds, a line per attribute (and per subject for `live`)."""
    validation = contract["validation"]
    lines = [f"held-out subjects: {', '.join(validation['split']['test'])}"] if "split" in validation else []
    for name, entry in validation["test"].items():
        line = f"held out, {name}: accuracy {entry['accuracy']:.2%} of {entry['n']}, threshold {contract['thresholds'][name]:.4f}"
        if name == "live":
            line += f"; APCER {rate(entry, 'apcer')} BPCER {rate(entry, 'bpcer')}"
        lines.append(line)
        for subject, errors in entry.get("by_subject", {}).items():
            lines.append(f"  subject {subject}: APCER {rate(errors, 'apcer')} BPCER {rate(errors, 'bpcer')}")
    return lines


def rate(entry: dict, key: str) -> str:
    """'1.23 % (4/325)' where counts are known, else the rate alone."""
    value = entry.get(key)
    if value is None:
        return "n/a"
    counts = {"apcer": ("attacks_accepted", "attacks"), "bpcer": ("real_rejected", "real")}[key]
    if all(c in entry for c in counts):
        return f"{value:.2%} ({entry[counts[0]]}/{entry[counts[1]]})"
    return f"{value:.2%}"


def train_small(args, out: Path, prepared: Prepared, echo):
    """The small CNN: fit / dev / test subjects; (module, contract, loss history)."""
    from edge_build.models import attributes as model

    contract = model.make_contract(prepared.dataset.attributes, backbone="small")
    split = split_subjects(prepared.subjects, fold=int(getattr(args, "fold", 0) or 0))
    parts = {name: indices_for(prepared.subjects, chosen) for name, chosen in split.items()}
    echo("subjects: " + "; ".join(f"{name} {','.join(ids)} ({len(parts[name])} faces)" for name, ids in split.items()))
    module, history = fit(args, out, contract, split, prepared.inputs[parts["fit"]], prepared.labels[parts["fit"]], echo)

    dev, test = parts["dev"], parts["test"]
    thresholds = choose_thresholds(predict(module, prepared.inputs[dev]), prepared.labels[dev], contract["attributes"])
    figures = evaluate(predict(module, prepared.inputs[test]), prepared.labels[test], contract["attributes"], thresholds)
    contract = model.make_contract(contract["attributes"], thresholds, backbone="small")
    contract["validation"] = {"split": split, "test": figures, "faceless_photos": len(prepared.faceless),
                              "thresholds_chosen_on": "dev subjects, equal error rate",
                              "epochs": len(history), "seed": args.seed, "data": str(args.data)}
    return module, contract, history


def train_heads(args, prepared: Prepared, echo):
    """The embedding backbone: frozen stem features, logistic heads, subject-fold
    cross-validation; (module, contract)."""
    from edge_build.models import attributes as model
    from edge_build.models import finetune
    from edge_build.training import attribute_heads as heads

    progress = getattr(args, "progress", True)
    attributes = prepared.dataset.attributes
    contract = model.make_contract(attributes, backbone="embedding")
    extractor = model.features_from(finetune.pretrained(getattr(args, "embedding", None)), model.needs_stage2(contract))
    features = heads.tap_features(extractor, prepared.inputs, progress=progress)
    taps = contract["taps"]
    folds = heads.subject_folds(prepared.subjects, int(getattr(args, "folds", None) or heads.MAX_FOLDS))
    echo(f"{len(set(prepared.subjects))} subjects in {len(set(folds))} folds; each fold is scored by heads that "
         "never saw its subjects, at thresholds chosen without them")
    echo("feature taps: " + ", ".join(f"{name} {tap}" for name, tap in taps.items()))
    figures = heads.cross_validate(features, prepared.labels, attributes, prepared.subjects, folds, taps, progress=progress)
    weights, biases, thresholds = heads.fit_heads(features, prepared.labels, attributes, folds, taps)
    contract = model.make_contract(attributes, thresholds, backbone="embedding")
    contract["validation"] = {
        "protocol": f"{len(set(folds))} subject folds; held-out figures at thresholds chosen on the other folds",
        "test": figures, "faceless_photos": len(prepared.faceless),
        "thresholds_chosen_on": "out-of-fold scores of every subject, equal error rate",
        "l2": heads.HEAD_L2, "data": str(args.data)}
    module = heads.make_module(extractor, contract, features, weights, biases)
    return module, contract


def fit(args, out: Path, contract: dict, split: dict, inputs, labels, echo):
    """(trained module, loss history); the state is saved after every epoch."""
    import torch

    from edge_build.models import attributes as model

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    module = model.build_module(contract)
    optimiser = torch.optim.Adam(module.parameters(), lr=LR, weight_decay=1e-4)
    history, first_epoch = [], 1
    if args.resume:
        first_epoch, history = resume(resume_path(out), module, optimiser, generator, contract, split)
        echo(f"resuming from {resume_path(out)} at epoch {first_epoch}")
    for epoch in range(first_epoch, args.epochs + 1):
        loss = train_epoch(module, optimiser, inputs, labels, args.batch, generator, getattr(args, "progress", True), epoch)
        history.append({"epoch": epoch, "loss": loss})
        echo(f"epoch {epoch}/{args.epochs}: training loss {loss:.4f}")
        model.save_checkpoint(resume_path(out), module, contract, extra={
            "epoch": epoch, "history": history, "split": split, "optimiser": optimiser.state_dict(),
            "generator": generator.get_state(), "torch_rng": torch.get_rng_state()})
    return module, history


def resume(path: Path, module, optimiser, generator, contract: dict, split: dict) -> tuple[int, list]:
    import torch

    from edge_build.models import attributes as model

    state = model.read_checkpoint(path)
    if state["contract"]["attributes"] != contract["attributes"]:
        raise ConfigError(f"{path} was trained for attributes {state['contract']['attributes']}, not {contract['attributes']}")
    if state.get("split") != split:
        raise ConfigError(f"{path} was trained with another subject split; the data changed, start without --resume")
    module.load_state_dict(state["state_dict"])
    optimiser.load_state_dict(state["optimiser"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["epoch"]) + 1, list(state["history"])
