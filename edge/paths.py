"""Where the product keeps its files.

Everything lives under one home folder so that a kiosk can be backed up or wiped
as a unit: ``$EDGE_VERIFY_HOME`` if set, else ``$XDG_DATA_HOME/edge-verify``, else
``~/.local/share/edge-verify``.
"""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    explicit = os.environ.get("EDGE_VERIFY_HOME")
    if explicit:
        return Path(explicit).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "edge-verify"


def models_dir() -> Path:
    """Converted checkpoints, engines and their manifests."""
    return home() / "models"


def engines_dir() -> Path:
    return models_dir() / "engines"


def checkpoints_dir() -> Path:
    return models_dir() / "checkpoints"


def downloads_dir() -> Path:
    """Packages fetched from the registry, kept so a second fetch downloads nothing."""
    return home() / "cache" / "downloads"


def gallery_path() -> Path:
    return home() / "gallery.sqlite"
