"""The attribute model's ``small`` backbone: a small CNN trained end to end.

Subjects are split three ways (sorted; see attribute_data.split_subjects): *fit*
subjects train the weights, *dev* subjects choose each attribute's threshold,
*test* subjects are only measured. ``<out>.resume.pt`` is saved after every
epoch; ``resume`` continues from it with the same split, optimiser and RNG.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from edge.exc import ConfigError
from edge_build.models import attributes as model
from edge_build.training.attribute_data import Prepared, indices_for, split_subjects
from edge_build.training.attribute_metrics import choose_thresholds, evaluate, sigmoid

LR = 2e-3
SHIFT_PX = 6


def resume_path(out: Path) -> Path:
    return out.with_name(out.stem + ".resume.pt")


def augment(batch, generator):
    """Mirror half the faces, move them a few pixels, jitter brightness, contrast
    and colour balance: a print's cues (texture, flatness) survive all of these,
    while a subject's lighting, camera and exact alignment should not matter."""
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
    known = labels != 0
    targets = (labels > 0).float()
    losses = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (losses * known).sum() / known.sum().clamp(min=1)


def train_epoch(module, optimiser, inputs, labels, batch: int, generator, progress: bool, epoch: int) -> float:
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
    module.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch):
            outs.append(module(torch.from_numpy(inputs[start:start + batch])).numpy())
    return sigmoid(np.concatenate(outs)) if outs else np.zeros((0, 0))


def train_small(config, out: Path, prepared: Prepared, echo):
    """The small CNN: fit / dev / test subjects; (module, contract, loss history).
    ``config``: an edge_build.training.attributes.AttributeConfig."""
    contract = model.make_contract(prepared.dataset.attributes, backbone="small")
    split = split_subjects(prepared.subjects, fold=config.fold)
    parts = {name: indices_for(prepared.subjects, chosen) for name, chosen in split.items()}
    echo("subjects: " + "; ".join(f"{name} {','.join(ids)} ({len(parts[name])} faces)" for name, ids in split.items()))
    module, history = fit(config, out, contract, split, prepared.inputs[parts["fit"]], prepared.labels[parts["fit"]], echo)

    dev, test = parts["dev"], parts["test"]
    thresholds = choose_thresholds(predict(module, prepared.inputs[dev]), prepared.labels[dev], contract["attributes"])
    figures = evaluate(predict(module, prepared.inputs[test]), prepared.labels[test], contract["attributes"], thresholds)
    contract = model.make_contract(contract["attributes"], thresholds, backbone="small")
    contract["validation"] = {"split": split, "test": figures, "faceless_photos": len(prepared.faceless),
                              "thresholds_chosen_on": "dev subjects, equal error rate",
                              "epochs": len(history), "seed": config.seed, "data": str(config.data)}
    return module, contract, history


def fit(config, out: Path, contract: dict, split: dict, inputs, labels, echo):
    """(trained module, loss history); the state is saved after every epoch."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    module = model.build_module(contract)
    optimiser = torch.optim.Adam(module.parameters(), lr=LR, weight_decay=1e-4)
    history, first_epoch = [], 1
    if config.resume:
        first_epoch, history = resume(resume_path(out), module, optimiser, generator, contract, split)
        echo(f"resuming from {resume_path(out)} at epoch {first_epoch}")
    for epoch in range(first_epoch, config.epochs + 1):
        loss = train_epoch(module, optimiser, inputs, labels, config.batch, generator, config.progress, epoch)
        history.append({"epoch": epoch, "loss": loss})
        echo(f"epoch {epoch}/{config.epochs}: training loss {loss:.4f}")
        model.save_checkpoint(resume_path(out), module, contract, extra={
            "epoch": epoch, "history": history, "split": split, "optimiser": optimiser.state_dict(),
            "generator": generator.get_state(), "torch_rng": torch.get_rng_state()})
    return module, history


def resume(path: Path, module, optimiser, generator, contract: dict, split: dict) -> tuple[int, list]:
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
