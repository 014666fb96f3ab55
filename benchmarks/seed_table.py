"""Reproduce the seed documents' LFW figures with our pipeline and training code.

    python benchmarks/seed_table.py --lfw ../shared/datasets/lfw --cache /work/cache [--threads 2]

Rows (10-fold accuracy on View 2 pairs.txt, threshold chosen on the other 9 folds):
  koch-bce-l1   Koch et al.'s Siamese net (L1 distance + sigmoid head), trained on the
                images of the View 1 DevTrain people; scored with the learned head
  triplet       the same data, batch-hard triplet loss, euclidean distance
  simile-hog    seed 000's simile traits (Kumar et al. 2009): similarity of HOG features of
                face regions to R reference people -> trait vector -> logistic regression on
                |t1 - t2| and t1 * t2, trained on the 2,200 DevTrain pairs
  simile-triplet the same simile classifier over the triplet row's embedding
  simile-dlib   the same simile classifier over the pretrained dlib embedding (labelled: it is
                not a 2009-comparable feature)
  hog-distance  whole-face HOG distance, nothing trained (a floor for the rows above)
  dlib-pretrained  the imported dlib ResNet scored like the trained rows (150x150 chips, one
                per face, no flip, unit-length, euclidean): the baseline of the next row
  dlib-finetune the same net with its last residual unit and fc fine-tuned (batch-hard triplet)
                on the DevTrain people's faces (use with --exclude-view2)
Reference people are the 60 with most photos among people in no line of pairs.txt (2-9 photos
each): every LFW person with 10+ photos appears in View 2, and a reference identity that is
also verified would leak. Images with no detectable face make their pairs count as "different".
All chips come from edge.pipeline (MTCNN + fitted alignment) and are cached once under --cache.

Use --exclude-view2 for the reported Siamese figures: with it no photo of a View 2 pair is
trained on (3,006 faces of 758 DevTrain people). Without it the DevTrain people's photos
include View 2 test photos: the triplet row read 87 % that way (20 epochs) against 77 % clean (30).
Rows already in --out are kept, so rows can be run one at a time; a Siamese row whose run
folder has last.pt but no model.pt resumes (delete model.pt and raise --*-epochs to extend).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def read_pairs(path: Path) -> list[tuple[str, int, str, int]]:
    pairs = []
    for line in path.read_text().splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) == 3:
            pairs.append((parts[0], int(parts[1]), parts[0], int(parts[2])))
        elif len(parts) == 4:
            pairs.append((parts[0], int(parts[1]), parts[2], int(parts[3])))
    return pairs


def image_rel(name: str, number: int) -> str:
    return f"{name}/{name}_{number:04d}.jpg"


def pair_same(pairs) -> np.ndarray:
    return np.array([a == b for a, _, b, _ in pairs])


def reference_people(images: Path, view2, count: int) -> list[str]:
    """The ``count`` people with the most photos among those in no View 2 pair, so no
    reference identity is ever one being verified (LFW's big identities are all in View 2)."""
    in_view2 = {a for a, _, b, _ in view2} | {b for a, _, b, _ in view2}
    sizes = {d.name: len(list(d.glob("*.jpg"))) for d in images.iterdir() if d.is_dir() and d.name not in in_view2}
    return sorted(sizes, key=lambda name: (-sizes[name], name))[:count]


def lfw_image_list(lfw: Path, references: int) -> tuple[list[str], dict]:
    images = lfw / "images"
    view2 = read_pairs(lfw / "pairs.txt")
    train = read_pairs(lfw / "pairsDevTrain.txt")
    train_people = sorted({a for a, _, b, _ in train} | {b for a, _, b, _ in train})
    refs = reference_people(images, view2, references)
    wanted = {image_rel(a, i) for a, i, _, _ in view2 + train} | {image_rel(b, j) for _, _, b, j in view2 + train}
    for name in train_people + refs:
        wanted |= {f"{name}/{p.name}" for p in (images / name).glob("*.jpg")}
    return sorted(wanted), {"view2": view2, "train": train, "train_people": train_people, "references": refs}


def load_lfw_chips(lfw: Path, cache: Path, references: int, size: int):
    from edge_build.training.data import cached_chips

    relative, protocol = lfw_image_list(lfw, references)
    paths = [lfw / "images" / r for r in relative]
    chips, found, cache_file = cached_chips(paths, lfw / "images", cache, size=size)
    index = {}
    position = 0
    for rel, ok in zip(relative, found):
        if ok:
            index[rel] = position
            position += 1
    return chips, index, protocol, cache_file


# ------------------------------------------------------------------ scoring

def view2_folds(view2) -> np.ndarray:
    return np.repeat(np.arange(10), 600)[: len(view2)]


def ten_fold(distances: np.ndarray, view2) -> dict:
    from edge.bench.metrics import kfold_accuracy

    mean, std, folds, _ = kfold_accuracy(distances, pair_same(view2), view2_folds(view2))
    return {"accuracy": mean, "std": std, "folds": folds}


def pair_rows(pairs, index) -> tuple[np.ndarray, np.ndarray]:
    """(row of the first image, row of the second) in the chip array; -1 where no face was found."""
    first = np.array([index.get(image_rel(a, i), -1) for a, i, _, _ in pairs])
    second = np.array([index.get(image_rel(b, j), -1) for _, _, b, j in pairs])
    return first, second


def distances_from(vectors: np.ndarray, pairs, index, metric=None) -> np.ndarray:
    first, second = pair_rows(pairs, index)
    ok = (first >= 0) & (second >= 0)
    d = np.full(len(pairs), np.inf)  # a pair with no face counts as "different", never dropped
    if metric is None:
        d[ok] = np.linalg.norm(vectors[first[ok]] - vectors[second[ok]], axis=1)
    else:
        d[ok] = metric(vectors[first[ok]], vectors[second[ok]])
    return d


# ------------------------------------------------------------------ trained Siamese rows

def training_set(chips, index, protocol, exclude_view2: bool = False):
    """Every cached face of the DevTrain people; with ``exclude_view2`` minus the photos that
    appear in any View 2 pair (the people still overlap, as View 1 and View 2 of LFW do)."""
    from edge_build.training.data import ChipSet

    view2 = protocol["view2"]
    tested = {image_rel(a, i) for a, i, _, _ in view2} | {image_rel(b, j) for _, _, b, j in view2}
    rows, labels = [], []
    by_person = {}
    for rel, row in index.items():
        if exclude_view2 and rel in tested:
            continue
        by_person.setdefault(rel.split("/")[0], []).append(row)
    names = [name for name in protocol["train_people"] if by_person.get(name)]
    for person_id, name in enumerate(names):
        for row in sorted(by_person[name]):
            rows.append(row)
            labels.append(person_id)
    rows = np.array(rows)
    return ChipSet(chips[rows], np.array(labels, dtype=np.int64), names, [str(r) for r in rows], [])


def siamese_row(name: str, chips, index, protocol, work: Path, config, head_score: bool, exclude_view2: bool) -> dict:
    import torch

    from edge_build.training import siamese

    train_set = training_set(chips, index, protocol, exclude_view2)
    started = time.time()
    result = siamese.train(train_set, work / name, config, resume=(work / name / "last.pt").exists()
                           and not (work / name / "model.pt").exists())
    seconds = time.time() - started
    contract = result["contract"]
    vectors = siamese.embed(result["net"], chips, contract, torch.device("cpu"))
    figures = {"euclidean": ten_fold(distances_from(vectors, protocol["view2"], index), protocol["view2"])}
    if head_score:
        head = result["head"].eval()

        def head_distance(a, b):
            with torch.no_grad():
                return -head.logit(torch.from_numpy(a), torch.from_numpy(b)).numpy()

        figures["l1_head"] = ten_fold(distances_from(vectors, protocol["view2"], index, head_distance), protocol["view2"])
    return {"train_faces": len(train_set), "train_people": len(train_set.names), "seconds": round(seconds),
            "config": vars(config), "history": result["history"],
            "threshold": contract["threshold"], **figures}


# ------------------------------------------------------------------ simile traits (Kumar et al. 2009)

# Face regions of the aligned chip (fractions of its side): Kumar et al. score similes per region.
REGIONS = {"eyes": (0.22, 0.50, 0.12, 0.88), "nose": (0.35, 0.68, 0.30, 0.70), "mouth": (0.60, 0.86, 0.25, 0.75),
           "face": (0.12, 0.90, 0.12, 0.88)}


def hog(images: np.ndarray, cell: int = 8, bins: int = 9) -> np.ndarray:
    """Dalal-Triggs HOG of (N, H, W) grey images: unsigned gradients, cell histograms with
    magnitude votes, L2-Hys normalised 2x2-cell blocks (written here: OpenCV 5 has no HOG)."""
    x = images.astype(np.float32)
    gx, gy = np.zeros_like(x), np.zeros_like(x)
    gx[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
    gy[:, 1:-1] = x[:, 2:] - x[:, :-2]
    magnitude = np.hypot(gx, gy)
    angle = np.rad2deg(np.arctan2(gy, gx)) % 180
    which = np.minimum((angle / (180 / bins)).astype(np.int64), bins - 1)
    n, h, w = x.shape
    cy, cx = h // cell, w // cell
    votes = np.zeros((n, cy, cx, bins), np.float32)
    for b in range(bins):
        plane = np.where(which == b, magnitude, 0)[:, :cy * cell, :cx * cell]
        votes[..., b] = plane.reshape(n, cy, cell, cx, cell).sum(axis=(2, 4))
    blocks = np.concatenate([votes[:, :-1, :-1], votes[:, 1:, :-1], votes[:, :-1, 1:], votes[:, 1:, 1:]], axis=-1)
    blocks /= np.sqrt((blocks ** 2).sum(-1, keepdims=True) + 1e-6)
    blocks = np.minimum(blocks, 0.2)
    blocks /= np.sqrt((blocks ** 2).sum(-1, keepdims=True) + 1e-6)
    return blocks.reshape(n, -1)


def hog_features(chips: np.ndarray) -> dict[str, np.ndarray]:
    """{region: (N, D) centred, L2-normalised HOG of the grey chip region}: a generic low-level
    feature, so the simile comparison stays close to the 2009 setting (no learned identity feature)."""
    import cv2

    out = {}
    size = chips.shape[-1]
    grey = (0.299 * chips[:, 0] + 0.587 * chips[:, 1] + 0.114 * chips[:, 2]).astype(np.uint8)
    for region, (y0, y1, x0, x1) in REGIONS.items():
        crops = np.stack([cv2.resize(c, (32, 32), interpolation=cv2.INTER_AREA)
                          for c in grey[:, int(y0 * size):int(y1 * size), int(x0 * size):int(x1 * size)]])
        vectors = hog(crops)
        vectors -= vectors.mean(axis=0)
        out[region] = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
    return out


def simile_traits(features: dict[str, np.ndarray], reference_rows: list[np.ndarray]) -> np.ndarray:
    """(N, regions x R): per region, the best cosine similarity to any photo of each reference person."""
    traits = []
    for vectors in features.values():
        for rows in reference_rows:
            traits.append((vectors @ vectors[rows].T).max(axis=1))
    return np.stack(traits, axis=1).astype(np.float32)


def pair_features(traits: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    a, b = traits[first], traits[second]
    return np.concatenate([np.abs(a - b), a * b], axis=1)


def logistic_regression(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 3000, lr: float = 0.5):
    """Plain full-batch gradient descent on the logistic loss; returns a scorer (higher = same)."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / std
    w, b = np.zeros(z.shape[1]), 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        w -= lr * (z.T @ (p - y) / len(y) + l2 * w)
        b -= lr * float(np.mean(p - y))
    return lambda q: ((q - mean) / std) @ w + b


def simile_row(traits: np.ndarray, index, protocol) -> dict:
    train, view2 = protocol["train"], protocol["view2"]
    f, s = pair_rows(train, index)
    ok = (f >= 0) & (s >= 0)
    scorer = logistic_regression(pair_features(traits, f[ok], s[ok]), pair_same(train)[ok].astype(np.float64))
    train_acc = float(np.mean((scorer(pair_features(traits, f[ok], s[ok])) > 0) == pair_same(train)[ok]))
    f, s = pair_rows(view2, index)
    ok = (f >= 0) & (s >= 0)
    distances = np.full(len(view2), np.inf)
    distances[ok] = -scorer(pair_features(traits, f[ok], s[ok]))
    return {"traits": int(traits.shape[1]), "train_pairs": int(ok.sum()), "train_accuracy": train_acc,
            **ten_fold(distances, view2)}


def reference_rows(index, protocol) -> list[np.ndarray]:
    return [np.array([row for rel, row in index.items() if rel.split("/")[0] == name]) for name in protocol["references"]]


def dlib_embeddings(lfw: Path, index, protocol, known: Path | None) -> np.ndarray:
    """The pretrained pipeline's embeddings of the images the simile row uses, aligned with the
    chip rows; View 2's come from an earlier `bench lfw` run's file when given (same pipeline)."""
    from edge.pipeline import FacePipeline
    from edge.vision.image import load_image

    vectors = np.zeros((len(index), 128), np.float32)
    done = set()
    if known and known.exists():
        with np.load(known) as saved:
            for rel, vector in zip(saved["names"], saved["embeddings"]):
                if rel in index:
                    vectors[index[rel]] = vector
                    done.add(rel)
    wanted = {image_rel(a, i) for a, i, b, j in protocol["train"]} | {image_rel(b, j) for a, i, b, j in protocol["train"]}
    wanted |= {rel for rel in index if rel.split("/")[0] in set(protocol["references"])}
    pipeline = FacePipeline.load(threads=1)
    for rel in sorted(wanted - done):
        if rel in index:
            embedded = pipeline.describe(load_image(lfw / "images" / rel)).embeddings
            if len(embedded):
                vectors[index[rel]] = embedded[0]
    return vectors


SEEDS = [("Seed: SVM (Kumar et al. attribute/simile baselines as quoted)", "66-67 %"),
         ("Seed: VerifNet", "78 %"), ("Seed: CFP", "83 %")]


def table(figures: dict, dlib_reference: Path | None) -> str:
    lines = ["| method | LFW View 2, 10-fold accuracy | what was run |", "|---|---|---|"]
    lines += [f"| {name} | {value} | seed document's figure |" for name, value in SEEDS]
    for name, row in figures.items():
        for key in ("l1_head", "euclidean", None):
            block = row.get(key) if key else row
            if block and "accuracy" in block:
                label = f"{name} ({key.replace('_', ' ')})" if key else name
                lines.append(f"| {label} | {100 * block['accuracy']:.2f} % ± {100 * block['std']:.2f} | {row.get('what', '')} |")
    if dlib_reference and dlib_reference.exists():
        data = json.loads(dlib_reference.read_text())
        lines.append(f"| our pretrained dlib pipeline (fp32) | {100 * data['accuracy_mean']:.2f} % ± "
                     f"{100 * data['accuracy_std']:.2f} | `edge-verify bench lfw` ({dlib_reference.name}) |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path("/work/cache"), help="where chips*.npz and checkpoints go")
    parser.add_argument("--references", type=int, default=60)
    parser.add_argument("--size", type=int, default=112, help="cached chip size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-only", action="store_true", help="only align and cache the chips")
    parser.add_argument("--rows", default="koch-bce-l1,triplet,simile-hog,simile-triplet,simile-dlib")
    parser.add_argument("--out", type=Path, help="figures JSON (rows already in it are kept)")
    parser.add_argument("--exclude-view2", action="store_true",
                        help="train the Siamese rows without any photo used in a View 2 pair")
    parser.add_argument("--pairs", type=int, default=4000, help="Koch training pairs per epoch")
    parser.add_argument("--koch-epochs", type=int, default=4)
    parser.add_argument("--koch-lr", type=float, default=3e-4)
    parser.add_argument("--triplet-epochs", type=int, default=20)
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--finetune-lr", type=float, default=1e-4)
    parser.add_argument("--dlib-embeddings", type=Path, default=Path("/work/cache/runs/emb_v2_fp32.npz"))
    parser.add_argument("--dlib-reference", type=Path, default=Path("/work/cache/runs/lfw_v2_fp32.json"))
    args = parser.parse_args(argv)
    started = time.time()
    chips, index, protocol, cache_file = load_lfw_chips(args.lfw, args.cache, args.references, args.size)
    print(f"{len(chips)} chips from {cache_file} ({time.time() - started:.0f} s)")
    if args.cache_only:
        return 0
    import torch

    from edge_build.training.siamese import TrainConfig

    torch.set_num_threads(args.threads)
    work = args.cache / ("seed_runs_clean" if args.exclude_view2 else "seed_runs")
    wanted = args.rows.split(",")
    figures = json.loads(args.out.read_text()) if args.out and args.out.exists() else {}
    if "koch-bce-l1" in wanted:
        config = TrainConfig(arch="koch", loss="bce-l1", epochs=args.koch_epochs, batch=64, lr=args.koch_lr, seed=0,
                             threads=args.threads, width=0.25, pairs_per_epoch=args.pairs, progress=False)
        figures["koch-bce-l1"] = siamese_row("koch-bce-l1", chips, index, protocol, work, config, head_score=True,
                                             exclude_view2=args.exclude_view2)
        figures["koch-bce-l1"]["what"] = (f"Koch net width 0.25 (16-32-32-64 ch, fc 1024, grey 105x105), Adam lr {args.koch_lr}, "
                                          f"{args.koch_epochs} epochs x {args.pairs} pairs of DevTrain people's faces")
        mark_clean(figures["koch-bce-l1"], args.exclude_view2)
        save(figures, args.out)
    if "triplet" in wanted:
        config = TrainConfig(arch="mobilefacenet", loss="triplet", epochs=args.triplet_epochs, batch=64, lr=2e-3, seed=0,
                             threads=args.threads, width=0.5, net_input=64, progress=False)
        figures["triplet"] = siamese_row("triplet", chips, index, protocol, work, config, head_score=False,
                                          exclude_view2=args.exclude_view2)
        figures["triplet"]["what"] = (f"MobileFaceNet width 0.5 at 64x64, batch-hard triplet (16 people x 4 faces), "
                                      f"{args.triplet_epochs} epochs on DevTrain people's faces")
        mark_clean(figures["triplet"], args.exclude_view2)
        save(figures, args.out)
    if "simile-hog" in wanted or "hog-distance" in wanted:
        features = hog_features(chips)
        whole = features["face"]
        figures["hog-distance"] = {**ten_fold(distances_from(whole, protocol["view2"], index), protocol["view2"]),
                                   "what": "euclidean distance of whole-face HOG, no training"}
        traits = simile_traits(features, reference_rows(index, protocol))
        figures["simile-hog"] = simile_row(traits, index, protocol)
        figures["simile-hog"]["what"] = (f"{len(protocol['references'])} reference people (absent from pairs.txt) x "
                                         f"{len(REGIONS)} regions, max HOG cosine; logistic regression on DevTrain pairs")
        save(figures, args.out)
    if "simile-triplet" in wanted:
        from edge_build.models import mobilefacenet
        from edge_build.training.siamese import embed

        net, contract = mobilefacenet.load_checkpoint(work / "triplet" / "model.pt")
        vectors = embed(net, chips, contract, torch.device("cpu"))
        figures["simile-triplet"] = simile_row(simile_traits({"face": vectors}, reference_rows(index, protocol)), index, protocol)
        figures["simile-triplet"]["what"] = "same simile classifier over our triplet MobileFaceNet's embedding (trained on DevTrain people)"
        save(figures, args.out)
    if "simile-dlib" in wanted:
        vectors = dlib_embeddings(args.lfw, index, protocol, args.dlib_embeddings)
        traits = simile_traits({"face": vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)},
                               reference_rows(index, protocol))
        figures["simile-dlib"] = simile_row(traits, index, protocol)
        figures["simile-dlib"]["what"] = "same simile classifier over the PRETRAINED dlib embedding (not 2009-comparable)"
        save(figures, args.out)
    if "dlib-pretrained" in wanted or "dlib-finetune" in wanted:
        dlib_rows(args, wanted, figures, work)
    print(table(figures, args.dlib_reference))
    return 0


def dlib_rows(args, wanted, figures: dict, work: Path) -> None:
    """The pretrained dlib ResNet and its fine-tuned version, on 150x150 chips, scored alike."""
    import torch

    from edge.verify.api import l2_normalize
    from edge_build.models import finetune
    from edge_build.training.siamese import TrainConfig, embed

    chips, index, protocol, _ = load_lfw_chips(args.lfw, args.cache, args.references, 150)
    view2 = protocol["view2"]
    if "dlib-pretrained" in wanted:
        vectors = l2_normalize(embed(finetune.pretrained(), chips, finetune.contract(), torch.device("cpu")))
        figures["dlib-pretrained"] = {**ten_fold(distances_from(vectors, view2, index), view2),
                                      "what": "imported dlib ResNet, one 150x150 chip per face, no flip, unit-length, euclidean"}
        save(figures, args.out)
    if "dlib-finetune" in wanted:
        config = TrainConfig(arch="dlib-finetune", loss="triplet", epochs=args.finetune_epochs, batch=64,
                             lr=args.finetune_lr, seed=0, threads=args.threads, progress=False)
        row = siamese_row("dlib-finetune", chips, index, protocol, work, config, head_score=False,
                          exclude_view2=args.exclude_view2)
        row["what"] = (f"dlib ResNet, last residual unit + fc trained, batch-hard triplet (16 people x 4 faces), "
                       f"Adam {args.finetune_lr}, {args.finetune_epochs} epochs on DevTrain people's faces")
        figures["dlib-finetune"] = mark_clean(row, args.exclude_view2)
        save(figures, args.out)


def mark_clean(row: dict, exclude_view2: bool) -> dict:
    if exclude_view2:
        row["what"] += "; no photo of any View 2 pair in training"
    else:
        row["what"] += "; NOTE: training photos include View 2 test photos"
    return row


def save(figures: dict, out: Path | None) -> None:
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
