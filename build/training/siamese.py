"""The Siamese trainer behind `edge-verify train siamese`.

Reproducible: numpy and torch draws are seeded per (seed, epoch), so a run resumed
from epoch k's checkpoint draws exactly what the unbroken run drew (with one
thread; several threads may reorder float sums). Every epoch writes
OUT/last.pt (weights, optimizer state, loss head, epoch, loss history); the end
of training writes OUT/model.pt, the buildable checkpoint whose contract carries
the decision threshold chosen on training pairs:

    edge-verify build --model embedding --checkpoint OUT/model.pt
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from edge import paths
from edge.exc import ConfigError, DatasetError
from edge_build.checkpoints import read_checkpoint
from edge_build.models import finetune, koch, mobilefacenet
from edge_build.training import data as data_mod
from edge_build.training.losses import LOSSES, L1Head, pair_loss, triplet_batch_hard_loss

MODEL_MODULES = {"koch": koch, "mobilefacenet": mobilefacenet, "dlib-finetune": finetune}
ARCHS = tuple(MODEL_MODULES)
PER_PERSON = 4  # K of the P x K triplet batches
# Distance losses see unit-length embeddings (FaceNet's choice): the margins then mean the
# same thing for every network, and the runtime compares unit vectors as the manifest says.
UNIT_LENGTH = ("contrastive", "triplet", "cosine")


@dataclass
class TrainConfig:
    arch: str = "mobilefacenet"
    loss: str = "triplet"
    epochs: int = 10
    batch: int = 32
    lr: float = 1e-3
    seed: int = 0
    threads: int = 2
    device: str = "cpu"
    width: float | None = None  # None: 0.25 for koch, 0.5 for mobilefacenet
    net_input: int = 64  # mobilefacenet only
    grey: bool = True  # koch only
    pairs_per_epoch: int | None = None  # None: one pair per face
    margin: float | None = None
    threshold_pairs: int = 2000
    progress: bool = True


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: this torch has no usable CUDA GPU (install a CUDA build of torch, "
                          "or leave --device at cpu)")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"--device {name!r}: choose cpu or cuda")
    return torch.device(name)


def model_module(arch: str):
    if arch not in MODEL_MODULES:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return MODEL_MODULES[arch]


def make_net(config: TrainConfig):
    """(net, model module); koch and mobilefacenet start from the seeded init."""
    module = model_module(config.arch)
    torch.manual_seed(config.seed)
    if config.arch == "koch":
        net = module.KochNet(width=config.width or 0.25, grey=config.grey)
    elif config.arch == "mobilefacenet":
        net = module.MobileFaceNet(width=config.width or 0.5, net_input=config.net_input)
    else:
        net = module.freeze_all_but_top(module.pretrained())
    return net, module


def cache_size(arch: str) -> int:
    return 150 if arch == "dlib-finetune" else data_mod.CACHE_SIZE  # dlib's graph is fixed at 150x150


def embed(net, chips: np.ndarray, contract: dict, device, batch: int = 128) -> np.ndarray:
    """Embeddings of uint8 chips, in eval mode, as the engine will compute them."""
    net.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(chips), batch):
            x = prepare(data_mod.to_tensor_batch(chips, np.arange(start, min(start + batch, len(chips))),
                                                 contract["mean"], contract["std"]), contract, device)
            out.append(net(x).cpu().numpy())
    vectors = np.concatenate(out) if out else np.zeros((0, contract["embedding_size"]), np.float32)
    if contract.get("embedding_normalization") == "l2":
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors


def prepare(x: torch.Tensor, contract: dict, device) -> torch.Tensor:
    size = tuple(contract["size"][::-1])
    if tuple(x.shape[-2:]) != size and contract["model"] == "dlib_resnet_v1":
        x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x.to(device)


def best_threshold(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy): the cut between sorted distances with the most pairs right."""
    order = np.argsort(distances)
    d, s = distances[order], same[order].astype(np.int64)
    # accepting the first i pairs: right = same among them + different among the rest
    right = np.concatenate([[0], np.cumsum(s)]) + np.concatenate([[(~same).sum()], (~same).sum() - np.cumsum(1 - s)])
    best = int(np.argmax(right))
    cuts = np.concatenate([[d[0] - 1e-6], (d[:-1] + d[1:]) / 2, [d[-1] + 1e-6]])
    return float(cuts[best]), float(right[best] / len(d))


def training_threshold(net, chip_set, contract: dict, config: TrainConfig, device) -> dict:
    rng = np.random.default_rng([config.seed, 999_983])
    first, second, same = data_mod.sample_pairs(chip_set.labels, config.threshold_pairs, rng)
    used, where = np.unique(np.concatenate([first, second]), return_inverse=True)
    vectors = embed(net, chip_set.chips[used], contract, device)
    a, b = vectors[where[: len(first)]], vectors[where[len(first):]]
    threshold, accuracy = best_threshold(np.linalg.norm(a - b, axis=1), same)
    return {"threshold": threshold, "threshold_source": f"best accuracy on {len(same)} training pairs "
            f"(seed {config.seed}), euclidean distance", "training_pair_accuracy": round(accuracy, 4)}


def run_epoch(net, head, optimizer, chip_set, contract, config: TrainConfig, epoch: int, device) -> float:
    net.train()
    if config.arch == "dlib-finetune":
        net.eval()  # affine layers have no running stats; eval keeps nothing else from training
    rng = data_mod.epoch_rng(config.seed, epoch)
    torch.manual_seed(config.seed * 100_003 + epoch)
    if config.loss == "triplet":
        batches = data_mod.pk_batches(chip_set.labels, max(2, config.batch // PER_PERSON), PER_PERSON, rng)
    else:
        count = config.pairs_per_epoch or len(chip_set)
        first, second, same = data_mod.sample_pairs(chip_set.labels, count, rng)
        batches = [np.arange(s, min(s + config.batch, count)) for s in range(0, count, config.batch)]
    losses = []
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not config.progress, leave=False)
    for rows in bar:
        if config.loss == "triplet":
            x = prepare(data_mod.to_tensor_batch(chip_set.chips, rows, contract["mean"], contract["std"], rng), contract, device)
            loss = triplet_batch_hard_loss(unit(net(x), config), torch.as_tensor(chip_set.labels[rows], device=device),
                                           0.2 if config.margin is None else config.margin)
        else:
            both = np.concatenate([first[rows], second[rows]])
            x = prepare(data_mod.to_tensor_batch(chip_set.chips, both, contract["mean"], contract["std"], rng), contract, device)
            f = unit(net(x), config)
            f1, f2 = f[: len(rows)], f[len(rows):]
            loss = pair_loss(config.loss, f1, f2, torch.as_tensor(same[rows], device=device), head, config.margin)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses):.4f}")
    return float(np.mean(losses)) if losses else float("nan")


def unit(f: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    return torch.nn.functional.normalize(f, dim=1) if config.loss in UNIT_LENGTH else f


def train(chip_set, out: str | Path, config: TrainConfig, resume: bool = False, echo=print) -> dict:
    """Train on a ChipSet; returns {"model": path, "last": path, "history": [...], "contract": {...}}."""
    if config.loss not in LOSSES:
        raise ConfigError(f"unknown loss {config.loss!r}; choose one of {', '.join(LOSSES)}")
    if config.epochs < 1 or config.batch < 2:
        raise ConfigError("--epochs must be at least 1 and --batch at least 2")
    torch.set_num_threads(max(1, int(config.threads)))
    device = resolve_device(config.device)
    out = Path(out)
    net, module = make_net(config)
    net.to(device)
    extra = {"embedding_normalization": "l2"} if config.loss in UNIT_LENGTH else {}
    contract = module.contract(net, **extra)
    head = L1Head(contract["embedding_size"]).to(device) if config.loss == "bce-l1" else None
    parameters = [p for p in net.parameters() if p.requires_grad] + (list(head.parameters()) if head else [])
    optimizer = torch.optim.Adam(parameters, lr=config.lr)
    start, history = 0, []
    last = out / "last.pt"
    if resume:
        start, history = restore(last, net, head, optimizer, config, module.ARCH)
        echo(f"resuming {last} after epoch {start}")
    for epoch in range(start, config.epochs):
        loss = run_epoch(net, head, optimizer, chip_set, contract, config, epoch, device)
        history.append(loss)
        echo(f"epoch {epoch + 1}/{config.epochs}: {config.loss} loss {loss:.4f}")
        module.save_checkpoint(last, net, contract, epoch=epoch + 1, optimizer=optimizer.state_dict(),
                               head=head.state_dict() if head else None, history=history, train_config=asdict(config))
    chosen = training_threshold(net, chip_set, contract, config, device)
    final = {**contract, **chosen, "training": {"loss": config.loss, "arch": config.arch, "epochs": config.epochs,
                                                "seed": config.seed, "faces": len(chip_set), "people": len(chip_set.names),
                                                "final_loss": history[-1] if history else None}}
    model = module.save_checkpoint(out / "model.pt", net.cpu(), final, head=head.state_dict() if head else None)
    echo(f"threshold {chosen['threshold']:.4f} ({chosen['training_pair_accuracy']:.1%} of training pairs right); wrote {model}")
    return {"model": model, "last": last, "history": history, "contract": final, "net": net, "head": head}


def restore(path: Path, net, head, optimizer, config: TrainConfig, arch: str) -> tuple[int, list]:
    if not path.exists():
        raise ConfigError(f"--resume: no checkpoint at {path}; train without --resume first")
    saved = read_checkpoint(path)
    previous = saved.get("train_config") or {}
    for key in ("arch", "loss", "seed"):
        if previous.get(key) != getattr(config, key):
            raise ConfigError(f"--resume: {path} was trained with {key}={previous.get(key)!r}, not {getattr(config, key)!r}")
    if saved["arch"] != arch:
        raise ConfigError(f"--resume: {path} holds a {saved['arch']} network")
    net.load_state_dict(saved["state_dict"])
    if head is not None:
        head.load_state_dict(saved["head"])
    optimizer.load_state_dict(saved["optimizer"])
    return int(saved["epoch"]), list(saved.get("history") or [])


def train_folder(data: str | Path, out: str | Path, config: TrainConfig, cache_dir: str | Path | None = None,
                 resume: bool = False, echo=print) -> dict:
    """`edge-verify train siamese`: chips of every person under DATA (cached), then train()."""
    cache = Path(cache_dir) if cache_dir else paths.home() / "cache" / "chips"
    chip_set = data_mod.load_folder(data, cache, size=cache_size(config.arch), progress=config.progress)
    if chip_set.dropped:
        echo(f"{len(chip_set.dropped)} photo(s) without a detectable face left out, e.g. {chip_set.dropped[0]}")
    if len(chip_set) < 4:
        raise DatasetError(f"only {len(chip_set)} faces under {data}; training needs more")
    echo(f"{len(chip_set)} faces of {len(chip_set.names)} people")
    return train(chip_set, out, config, resume=resume, echo=echo)
