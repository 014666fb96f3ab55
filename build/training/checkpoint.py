"""Checkpoints of trained models: arch id, constructor config, contract, weights,
and (while training) the optimizer state and epoch for --resume.

Every model module in edge_build.models exposes ``load_checkpoint(path) ->
(module in eval mode, contract)``; the build step dispatches on ``arch``
(edge_build.targets) and never looks inside the weights to guess a shape.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import torch

from edge.exc import ModelError
from edge_build.checkpoints import read_checkpoint

CHIP = 150  # the pipeline's aligned chip side, what every engine receives


def save_arch_checkpoint(path, arch: str, module: torch.nn.Module, contract: dict, **extra) -> Path:
    """Write atomically: a run killed while saving keeps the previous epoch's file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"arch": arch, "config": dict(getattr(module, "config", {})), "contract": copy.deepcopy(contract),
            "state_dict": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}, **extra}
    partial = path.with_name(path.name + ".partial")
    torch.save(data, partial)
    partial.replace(path)
    return path


def load_arch_checkpoint(path, arch: str, build: Callable[[dict], torch.nn.Module]):
    data = read_checkpoint(path)
    if data["arch"] != arch:
        raise ModelError(f"checkpoint {path} is a {data['arch']!r} checkpoint, not {arch!r}")
    contract = data.get("contract")
    if not isinstance(contract, dict) or contract.get("model") != arch:
        raise ModelError(f"checkpoint {path} has no {arch} contract")
    module = build(data.get("config") or {})
    if contract.get("embedding_size") != module.embedding_size:
        raise ModelError(f"checkpoint {path} contract embedding_size {contract.get('embedding_size')!r} "
                         f"does not fit the network ({module.embedding_size})")
    try:
        module.load_state_dict(data["state_dict"], strict=True)
    except (KeyError, RuntimeError) as error:
        raise ModelError(f"checkpoint {path} weights do not fit {arch}: {error}") from error
    return module.eval(), contract


def resized_chip_contract(arch: str, net_input: int, embedding_size: int, **extra) -> dict:
    """The contract of a trained network that takes the pipeline's 150x150 chip and
    resizes it inside its own graph to ``net_input`` (so the runtime stays unchanged)."""
    return {
        "model": arch,
        "input_name": "chip",
        "output_name": "embedding",
        "size": [CHIP, CHIP],
        "net_input": [net_input, net_input],
        "resize": f"in-graph bilinear {CHIP}->{net_input}",
        "colour": "RGB",
        "layout": "NCHW",
        "mean": [127.5, 127.5, 127.5],
        "std": [128.0, 128.0, 128.0],
        "chip_padding": 0.25,
        "embedding_size": embedding_size,
        "metric": "euclidean",
        **extra,
    }
