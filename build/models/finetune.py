"""Fine-tuning the imported dlib ResNet: which layers train, and its checkpoint.

By default everything is frozen except the last residual unit and the fc layer:
on a few thousand faces that keeps the pretrained identity space and adapts only
the top, and it is the only variant that trains in minutes on 2 CPU cores.

The fine-tuned net keeps dlib's architecture and contract (150x150 RGB, dlib's
mean and /256 scaling, 128-d), so its checkpoint is an ordinary
``dlib_resnet_v1`` checkpoint that ``edge_build.models.dlib_resnet.load_checkpoint``
reads; only the contract's threshold (chosen on the training pairs) and its
provenance notes change.
"""
from __future__ import annotations

import copy
from pathlib import Path

from edge.exc import ModelError
from edge_build.checkpoints import save_arch_checkpoint
from edge_build.models import dlib_resnet
from edge_build.targets import checkpoint_path, source_file

ARCH = dlib_resnet.ARCH


def pretrained(checkpoint: Path | None = None) -> dlib_resnet.DlibResNet:
    """The imported net, from `models fetch`'s checkpoint or the fetched dlib .dat."""
    path = Path(checkpoint) if checkpoint else checkpoint_path("embedding")
    if path.exists():
        return dlib_resnet.load_checkpoint(path)[0]
    try:
        return dlib_resnet.load_dlib_resnet(source_file("dlib_resnet", path))
    except FileNotFoundError as error:
        raise ModelError(f"no dlib ResNet weights to fine-tune: {error}; run `edge-verify models fetch`") from error


def freeze_all_but_top(net: dlib_resnet.DlibResNet, trainable_units: int = 1):
    for parameter in net.parameters():
        parameter.requires_grad = False
    for module in list(net.units)[-trainable_units:] + [net.fc]:
        for parameter in module.parameters():
            parameter.requires_grad = True
    return net


def contract(net=None, **extra) -> dict:
    return {**copy.deepcopy(dlib_resnet.CONTRACT), **extra}


def save_checkpoint(path, net, contract_: dict, **extra) -> Path:
    return save_arch_checkpoint(path, ARCH, net, contract_, **extra)


def load_checkpoint(path):
    return dlib_resnet.load_checkpoint(path)
