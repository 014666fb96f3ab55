"""The liveness model: which cues a kiosk runs, their settings and the figures they were validated with.

One JSON file, ``$EDGE_VERIFY_HOME/models/liveness.json``, written by
`edge-verify train liveness` (edge_build.training.liveness). Plain numbers: the
texture cue's linear head is a few dozen weights, the context and motion cues
have a threshold or four. The one exception, the optional ``cnn`` cue, is an
ONNX network in a file beside it, named with its SHA-256. Layout::

    {"format": "edge-verify-liveness/1", "created": "...", "trained_on": [...],
     "window": 5,
     "cues": {"texture": {"features": "grey-lbp-fft-v1", "mean": [...], "scale": [...],
                          "weights": [...], "bias": b, "threshold": t, "validated": {...}},
              "cnn":     {"features": "grey-chip-cnn-v1", "file": "liveness-cnn.onnx", "sha256": "...",
                          "input": "chip", "output": "attack_logit", "threshold": t, "validated": {...}},
              "context": {"features": "border-lines-v1", "threshold": t, "validated": {...}},
              "motion":  {"features": "landmark-parallax-v1", "live_parallax": ..., ..., "validated": {...}}}}

Every cue names the feature version it was fitted on; a runtime computing other
features refuses the file (ManifestMismatch) rather than scoring with weights
that mean something else.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from edge import paths
from edge.exc import ManifestMismatch, NoLivenessModel
from edge.liveness import cnn, context, motion, texture

FORMAT = "edge-verify-liveness/1"
FILE_NAME = "liveness.json"
FEATURES = {"texture": texture.FEATURES, "cnn": cnn.FEATURES, "context": context.FEATURES, "motion": motion.FEATURES}
CUES = tuple(FEATURES)  # the cues a liveness model can carry, in the order verdicts name them
DEFAULT_WINDOW = 5


def model_path(models_dir: Path | None = None) -> Path:
    return Path(models_dir or paths.models_dir()) / FILE_NAME


def train_hint() -> str:
    return ("train one with `edge-verify train liveness --data DIR=print --data DIR=screen` "
            "(folders with real/ and fake/ frames)")


def read_model(path: Path | None = None) -> dict:
    """The checked liveness model, or NoLivenessModel / ManifestMismatch saying what to do."""
    path = Path(path) if path is not None else model_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NoLivenessModel(f"no liveness model at {path}; {train_hint()}") from None
    except (OSError, ValueError) as error:
        raise ManifestMismatch(f"liveness model {path} cannot be read ({error}); {train_hint()}") from None
    check_model(data, path)
    return data


def check_model(data: dict, path: Path | str = "liveness model") -> None:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ManifestMismatch(f"{path} is not a {FORMAT} file (format {found!r}); {train_hint()}")
    cues = data.get("cues")
    if not isinstance(cues, dict) or not cues:
        raise ManifestMismatch(f"{path} names no cues; {train_hint()}")
    for name, entry in cues.items():
        if name not in FEATURES:
            raise ManifestMismatch(f"{path}: unknown cue {name!r} (this runtime knows {', '.join(CUES)})")
        if entry.get("features") != FEATURES[name]:
            raise ManifestMismatch(f"{path}: the {name} cue was fitted on features {entry.get('features')!r}, this "
                                   f"runtime computes {FEATURES[name]!r}; {train_hint()}")
    if "texture" in cues:
        head = cues["texture"]
        for key in ("mean", "scale", "weights"):
            if len(head.get(key) or []) != texture.FEATURE_COUNT:
                raise ManifestMismatch(f"{path}: texture {key} must hold {texture.FEATURE_COUNT} numbers")
    for name in ("texture", "cnn", "context"):
        if name in cues and not _finite(cues[name].get("threshold")):
            raise ManifestMismatch(f"{path}: the {name} cue states no threshold")
    if "cnn" in cues:
        check_cnn_entry(cues["cnn"], path)
    window = data.get("window", DEFAULT_WINDOW)
    if not isinstance(window, int) or not 1 <= window <= 100:
        raise ManifestMismatch(f"{path}: window must be a whole number of frames from 1 to 100, got {window!r}")


def check_cnn_entry(entry: dict, path: Path | str) -> None:
    """The cnn cue's network file: a plain name beside the model, its SHA-256, the runtime's tensor names."""
    name = entry.get("file")
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise ManifestMismatch(f"{path}: the cnn cue must name its network file beside the model, got {name!r}")
    digest = entry.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ManifestMismatch(f"{path}: the cnn cue states no SHA-256 of {name}")
    if (entry.get("input"), entry.get("output")) != (cnn.INPUT, cnn.OUTPUT):
        raise ManifestMismatch(f"{path}: the cnn cue's network takes {entry.get('input')!r} and gives "
                               f"{entry.get('output')!r}; this runtime feeds {cnn.INPUT!r} and reads {cnn.OUTPUT!r}")


def cnn_network(entry: dict, model_file: Path, threads: int = 1) -> cnn.Network:
    """The cnn cue's network, from the file beside ``model_file``, checked against ``entry``."""
    return cnn.Network(Path(model_file).parent / entry["file"], entry, threads)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def texture_head(entry: dict) -> dict:
    """The texture cue's linear head as numpy arrays."""
    return {"mean": np.asarray(entry["mean"], dtype=np.float64), "scale": np.asarray(entry["scale"], dtype=np.float64),
            "weights": np.asarray(entry["weights"], dtype=np.float64), "bias": float(entry["bias"])}


def write_model(data: dict, path: Path | None = None) -> Path:
    """Check and write atomically (a half-written model must never be read by a running kiosk)."""
    path = Path(path) if path is not None else model_path()
    check_model(data, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    scratch.replace(path)
    return path
