"""`edge-verify train attributes`: the multi-label attribute model with its `live` head.

Two backbones (edge_build.models.attributes): ``embedding`` (default), logistic
heads on the frozen dlib ResNet's features, cross-validated over subject folds
(attribute_heads.py); ``small``, a small CNN trained end to end on fit / dev /
test subjects (attribute_cnn.py). Data loading, the subject split and the chip
cache are in attribute_data.py; APCER/BPCER and the equal-error thresholds in
attribute_metrics.py.

Every threshold is the equal error rate (for `live`: attacks accepted = real
faces rejected) on faces the weights did not see. The figures go into the
checkpoint's contract, so the built engine's manifest carries them. The small
CNN saves ``<out>.resume.pt`` after every epoch; ``resume`` continues from it
with the same split, optimiser and RNG. (The embedding backbone's fit takes
seconds and has nothing to resume.)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from edge.exc import ConfigError
from edge_build.models import attributes as model
from edge_build.targets import checkpoint_path
from edge_build.training.attribute_cnn import train_small
from edge_build.training.attribute_data import prepare
from edge_build.training.attribute_heads import MAX_FOLDS, train_heads


@dataclass
class AttributeConfig:
    """What `edge-verify train attributes` was asked for."""

    data: Path  # a folder: labelled photos, or real/ and fake/
    labels: Path | None = None  # CelebA-style labels file; None: real/ and fake/ folders, `live` only
    out: Path | None = None  # a .pt file or a folder; None: $EDGE_VERIFY_HOME/models/checkpoints/attributes.pt
    backbone: str = "embedding"  # or "small"
    epochs: int = 10  # small
    batch: int = 32  # small
    seed: int = 0
    resume: bool = False  # small
    threads: int | None = None  # torch CPU threads; None: torch's default
    fold: int = 0  # small: which third of the subjects is held out
    folds: int = MAX_FOLDS  # embedding: subject folds
    embedding: Path | None = None  # embedding: dlib ResNet checkpoint; None: the models home's
    cache: Path | None = None  # chip cache folder; None: $EDGE_VERIFY_HOME/cache/attribute-chips
    progress: bool = True


def run(config: AttributeConfig, echo=print) -> int:
    """`edge-verify train attributes`: train, write the checkpoint, say how to build it; exit code 0."""
    validation = train(config, echo)
    echo(f"build it with: edge-verify build --model attributes --checkpoint {validation['checkpoint']} "
         "--precision int8 --calibration DIR --gate-faces DIR")
    return 0


def checkpoint_out(out) -> Path:
    """``out`` as a checkpoint file: a .pt path as given, a folder gets attributes.pt, None the models home's."""
    if out is None:
        return checkpoint_path("attributes")
    out = Path(out)
    return out if out.suffix == ".pt" else out / "attributes.pt"


def train(config: AttributeConfig, echo=print) -> dict:
    """Train and write the checkpoint; returns the validation figures."""
    if config.backbone not in model.BACKBONES:
        raise ConfigError(f"unknown backbone {config.backbone!r} for attributes; available: {', '.join(model.BACKBONES)}")
    if config.epochs < 1 or config.batch < 1:
        raise ConfigError("--epochs and --batch must be at least 1")
    if config.backbone == "embedding" and config.resume:
        raise ConfigError("--resume applies to --backbone small; the embedding backbone's heads fit in one pass "
                          "(run it again instead)")
    if config.threads:
        torch.set_num_threads(int(config.threads))
    out = checkpoint_out(config.out)
    prepared = prepare(config.data, config.labels, model.make_contract, echo, cache=config.cache, progress=config.progress)
    if config.backbone == "embedding":
        module, contract = train_heads(config, prepared, echo)
        extra = {}
    else:
        module, contract, history = train_small(config, out, prepared, echo)
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
