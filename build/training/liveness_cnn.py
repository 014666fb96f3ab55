"""The ``cnn`` liveness cue: a small grey CNN on the texture cue's chip, trained here.

The hand-made texture features (edge.liveness.texture) catch almost nothing on
a camera they were not fitted on; a learned cue separates better
(benchmarks/liveness_cnn.py). This module holds its recipe, shared by that
benchmark and `edge-verify train liveness --cnn`:

* input: the texture cue's own 64 px grey chip (edge.liveness.cnn.face_chip),
  standardised per chip (mean 0, deviation 1), so gain and offset cannot drive it;
* network: four conv blocks (16-32-64-64 channels, batch norm, max pool),
  global average pool, dropout, one logit (attack positive): 60,465 weights,
  about 0.3 ms a chip in ONNX Runtime on one thread;
* training: every frame as captured and under random camera shifts
  (edge_build.training.liveness_shifts), mirror images and shifts of up to
  3 px; each (folder, real/attack) cell weighs the same, so the loss's decision
  boundary, logit 0, is where a real face and an attack are equally likely
  whatever the folders' sizes;
* threshold: that boundary. A quantile of held-out real frames (what the
  hand-made cues use) did not carry: it follows the one validation person whose
  skin looks most like a print, and training runs end at different logit
  scales (fold thresholds from -4.8 to +4.4 logits; README, "How the cnn cue's
  threshold was chosen").

The trained network goes to ONNX (edge_build.onnx_export) beside the liveness
model; the runtime runs it with ONNX Runtime on the CPU.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from edge.engines.manifest import file_sha256
from edge.liveness import cnn as runtime
from edge_build import onnx_export
from edge_build.training import liveness_fit as fit
from edge_build.training.liveness_data import file_key
from edge_build.training.liveness_features import shifted

CHIPS = "cnn-chips-v1"  # cache name of the chips: change it when they change
BATCH = 64
BOUNDARY = 0.0  # the balanced loss's decision boundary, in logits
CONTRACT = {"model": "liveness-cnn", "input": runtime.INPUT,
            "input_shape": [-1, 1, runtime.CHIP_SIZE, runtime.CHIP_SIZE],
            "outputs": [runtime.OUTPUT], "output_shapes": [[-1, 1]]}


# -- chips --------------------------------------------------------------------------------------

def inner_chip(shot) -> np.ndarray:
    """The runtime's chip of one shifted shot (edge_build.training.liveness_features.Shot)."""
    return runtime.face_chip(shot.image, shot.landmarks)


def chips(folder, variant: str, cache: Path, makers: dict | None = None, progress: bool = False) -> dict:
    """{"ok": (n,) bool, kind: (n, 64, 64) uint8 per chip maker} for every frame's main face under
    ``variant`` (a named shift or augment-<k>), cached. ``makers``: {kind: shot -> chip}, default the
    runtime's chip as "inner"; a cached file serves any request whose kinds it holds."""
    makers = makers or {"inner": inner_chip}
    path = cache / f"{CHIPS}-{file_key([f.path for f in folder.frames], variant)}.npz"
    if path.exists():
        with np.load(path) as stored:
            if all(kind in stored for kind in makers):
                return dict(stored)
    n = len(folder.frames)
    size = runtime.CHIP_SIZE
    out = {"ok": np.zeros(n, bool), **{kind: np.zeros((n, size, size), np.uint8) for kind in makers}}
    for index in tqdm(range(n), desc=f"cnn chips {folder.name} {variant}", unit="frame", file=sys.stderr,
                      disable=not progress, leave=False):
        if not folder.faces.found[index]:
            continue
        shot = shifted(folder.frames[index], folder.faces, index, variant)
        if not shot.inside:
            continue
        out["ok"][index] = True
        for kind, make in makers.items():
            out[kind][index] = make(shot)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp.npz")
    np.savez(scratch, **out)
    scratch.replace(path)
    return out


def standardised(x: np.ndarray) -> torch.Tensor:
    """(n, 1, 64, 64) float32 tensor of uint8 chips, standardised as the runtime does."""
    return torch.from_numpy(runtime.standardise(x))


# -- the network ----------------------------------------------------------------------------------

def network(width: int = 16) -> nn.Module:
    def block(inputs, outputs):
        return [nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU()]
    return nn.Sequential(*block(1, width), nn.MaxPool2d(2), *block(width, 2 * width), nn.MaxPool2d(2),
                         *block(2 * width, 4 * width), nn.MaxPool2d(2), *block(4 * width, 4 * width),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * width, 1))


def train(x: np.ndarray, attack: np.ndarray, weights: np.ndarray, epochs: int, seed: int, echo=None) -> nn.Module:
    """The network fitted on uint8 chips ``x`` (attack: bool per chip, weights per chip)."""
    echo = echo or (lambda text: print(text, file=sys.stderr, flush=True))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = network()
    inputs, target = standardised(x), torch.from_numpy(attack.astype(np.float32))
    weight = torch.from_numpy(weights.astype(np.float32))
    optimiser = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
    steps = (len(inputs) + BATCH - 1) // BATCH
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, 3e-3, total_steps=epochs * steps)
    for epoch in range(epochs):
        net.train()
        order, total = rng.permutation(len(inputs)), 0.0
        for start in range(0, len(inputs), BATCH):
            rows = order[start:start + BATCH]
            batch = inputs[rows]
            if rng.random() < 0.5:
                batch = batch.flip(3)
            dy, dx = (int(v) for v in rng.integers(-3, 4, 2))
            batch = torch.roll(batch, (dy, dx), (2, 3))
            logits = net(batch).squeeze(1)
            losses = nn.functional.binary_cross_entropy_with_logits(logits, target[rows], reduction="none")
            loss = (losses * weight[rows]).sum() / weight[rows].sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(rows)
        echo(f"    epoch {epoch + 1}/{epochs}: loss {total / len(inputs):.4f}")
    return net.eval()


MEMBER_STRIDE = 100  # member m of a network trained from seed s starts from seed s + 100 m


class Ensemble(nn.Module):
    """Networks of one recipe from different seeds, answering as one: the mean of their attack logits.

    One training of the recipe lands far from another on people and sources it never saw (three runs let
    3.0, 4.6 and 6.0 % of a new source's screens through, README); the mean of a few is steadier. Exported
    as one ONNX graph with the cue's tensor names, so the runtime and its contract do not change."""

    def __init__(self, members: list) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, chip: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(chip) for member in self.members]).mean(dim=0)


def member_seeds(seed: int, members: int) -> list[int]:
    """The seeds of ``members`` networks trained from ``seed``: the first is ``seed`` itself."""
    return [seed + MEMBER_STRIDE * m for m in range(members)]


def train_members(x: np.ndarray, attack: np.ndarray, weights: np.ndarray, epochs: int, seed: int, members: int = 1,
                  echo=None) -> nn.Module:
    """The network (``members`` 1), or the Ensemble of ``members`` networks from member_seeds(seed)."""
    if members < 1:
        raise ValueError(f"an ensemble needs at least one network, got {members}")
    echo = echo or (lambda text: print(text, file=sys.stderr, flush=True))
    nets = []
    for m, member_seed in enumerate(member_seeds(seed, members)):
        if members > 1:
            echo(f"  network {m + 1} of {members}")
        nets.append(train(x, attack, weights, epochs, member_seed, echo))
    return as_one(nets)


def as_one(nets: list) -> nn.Module:
    """One trained network as it is; several as their Ensemble (the network the cue ships)."""
    return nets[0] if len(nets) == 1 else Ensemble(nets).eval()


def scores(net: nn.Module, x: np.ndarray) -> np.ndarray:
    """Attack logits of uint8 chips."""
    with torch.no_grad():
        inputs = standardised(x)
        return torch.cat([net(inputs[i:i + 512]).squeeze(1) for i in range(0, len(inputs), 512)]).numpy()


def export(net: nn.Module, path: Path) -> Path:
    """The network as a checked ONNX file (dynamic batch, the runtime's tensor names)."""
    return onnx_export.export_onnx(net, CONTRACT, path)


def model_entry(network_path: Path, threshold: float = BOUNDARY, **extra) -> dict:
    """The liveness model's ``cnn`` entry for the network file at ``network_path`` (named with its SHA-256)."""
    return {"features": runtime.FEATURES, "file": Path(network_path).name, "sha256": file_sha256(network_path),
            "input": runtime.INPUT, "output": runtime.OUTPUT, "threshold": threshold, **extra}


# -- training rows ------------------------------------------------------------------------------------

def rows(parts, variants, cache: Path, progress: bool = False, kind: str = "inner",
         makers: dict | None = None) -> tuple:
    """Chips of ``kind`` (made by ``makers``, see chips), attack flags, balanced weights and attack types
    ("none" for real) of [(Folder, row mask)] over ``variants``."""
    x, attack, cells, types = [], [], [], []
    for folder, mask in parts:
        for variant in variants:
            chip = chips(folder, variant, cache, makers, progress)
            keep = mask & chip["ok"]
            x.append(chip[kind][keep])
            attack.append(folder.attack[keep])
            cells.append(np.char.add(f"{folder.name}/", np.where(folder.attack[keep], "attack", "real")))
            types.append(np.where(folder.attack[keep], folder.attack_type, "none"))
    x, attack, cells, types = (np.concatenate(v) for v in (x, attack, cells, types))
    return x, attack, fit.balanced_weights(cells), types


def fold_of(folder, folds: int) -> np.ndarray:
    """Each frame's fold: a folder's groups (subjects, sources) in name order, dealt round the folds, so every
    fold holds out some groups of every folder that has enough of them."""
    names = sorted(set(folder.groups))
    return np.array([names.index(g) % folds for g in folder.groups])
