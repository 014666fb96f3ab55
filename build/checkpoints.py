"""Checkpoints: one place to read and write them, weights only.

Every checkpoint this project writes is a dict with an ``arch`` id, the model's
contract and its weights (trained models also keep their constructor config,
and while training the optimizer state and epoch for --resume). ``torch.load``
runs with ``weights_only=True``: a checkpoint is data, and a file passed to the
build step must not be able to run code.

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

CHIP = 150  # the pipeline's aligned chip side, what every engine receives


def read_checkpoint(path, arch: str | None = None) -> dict:
    """The checkpoint's dict; ModelError when missing, unreadable, or (with ``arch``) of another model."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"checkpoint {path} does not exist") from None
    except Exception as error:  # torch raises assorted types for corrupt or non-weights files
        raise ModelError(f"checkpoint {path} cannot be read: {error}") from error
    if not isinstance(data, dict) or "arch" not in data:
        raise ModelError(f"checkpoint {path} has no 'arch' entry; it was not written by edge-verify")
    if arch is not None and data["arch"] != arch:
        raise ModelError(f"checkpoint {path} is not a {arch} checkpoint (it holds {data['arch']!r})")
    return data


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
