"""Reading checkpoints: one place, weights only.

Every checkpoint this project writes is a dict with an ``arch`` id, the model's
contract and its weights. ``torch.load`` runs with ``weights_only=True``: a
checkpoint is data, and a file passed to the build step must not be able to
run code.
"""
from __future__ import annotations

from pathlib import Path

from edge.exc import ModelError


def read_checkpoint(path, arch: str | None = None) -> dict:
    """The checkpoint's dict; ModelError when missing, unreadable, or (with ``arch``) of another model."""
    import torch

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
