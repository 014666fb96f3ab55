"""`edge-verify models fetch`: original weights → our PyTorch checkpoints → FP32 ONNX engines.

The starter models are converted by our own code (build/dlib_format.py,
build/models/), saved as checkpoints that carry their contract, and exported
through the same build stages a kiosk maker's own model would go through.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from edge.engines import load_engine
from edge.engines.manifest import file_sha256, read_manifest
from edge.exc import BuildError, EdgeVerifyError
from edge.models.registry import DETECTOR_NETS, EMBEDDING, engine_path
from edge_build.models import dlib_resnet, mtcnn
from edge_build.recipe import BuildOptions, build_part
from edge_build.sources import fetch_sources
from edge_build.targets import checkpoint_path, load_parts

# Agreement an FP32 export must show with PyTorch before it is installed.
ROUND_TRIP_TOLERANCE = 1e-3


def calibrated_figures() -> dict:
    """Threshold and impostor-distance tail measured on LFW for the starter embedding
    (see benchmarks/calibrate_thresholds.py); shipped so the product needs no LFW."""
    text = resources.files("edge_build.models").joinpath("dlib_resnet_calibration.json").read_text()
    return json.loads(text)


CALIBRATED_KEYS = ("threshold", "impostor_tail", "combined_impostor_tail", "cohort_combined_impostor_tail", "cohort")


def convert_embedding(dat_path: Path, force: bool, log) -> Path:
    target = checkpoint_path("embedding")
    if target.exists() and not force and calibration_current(target):
        return target
    log(f"converting {dat_path.name} → {target.name}")
    module = dlib_resnet.load_dlib_resnet(dat_path)
    payload = dlib_resnet.checkpoint(module)
    figures = calibrated_figures()
    # dlib's own 0.6 was chosen for its pipeline and raw descriptors; ours (MTCNN
    # landmarks, flip averaging, unit-length descriptors) is re-chosen on LFW View 1,
    # never on the View 2 figures we report.
    payload["contract"].update(dlib_threshold=payload["contract"]["threshold"], threshold=figures["threshold"],
                               threshold_source=figures["threshold_source"], impostor_tail=figures["impostor_tail"],
                               embedding_normalization="l2")
    # the door's combined probes, plain and cohort-adjusted (benchmarks/door_calibrate.py, edge.gallery.cohort)
    for key in ("combined_impostor_tail", "cohort_combined_impostor_tail", "cohort"):
        if key in figures:
            payload["contract"][key] = figures[key]
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, target)
    return target


def calibration_current(checkpoint: Path) -> bool:
    """Whether the checkpoint carries the calibrated figures this version ships: figures measured
    later (a new tail, e.g. for the door's combined probes) reach models homes converted before."""
    contract = torch.load(checkpoint, map_location="cpu", weights_only=False).get("contract", {})
    figures = calibrated_figures()
    return all(contract.get(key) == figures.get(key) for key in CALIBRATED_KEYS if key in figures)


def convert_detector(sources: dict, force: bool, log) -> Path:
    target = checkpoint_path("detector")
    if target.exists() and not force:
        return target
    log(f"converting MTCNN P/R/O-Net → {target.name}")
    nets = mtcnn.load_mtcnn(sources["mtcnn_pnet"], sources["mtcnn_rnet"], sources["mtcnn_onet"])
    target.parent.mkdir(parents=True, exist_ok=True)
    mtcnn.save_checkpoint(target, nets)
    return target


def up_to_date(engine: Path, source_sha256: str) -> bool:
    if not engine.exists():
        return False
    try:
        manifest = read_manifest(engine)
    except EdgeVerifyError:  # a missing or unreadable manifest means: rebuild
        return False
    return manifest.get("source_sha256") == source_sha256 and manifest.get("engine_sha256") == file_sha256(engine)


def round_trip(part, engine: Path) -> float:
    """Largest difference between the engine and PyTorch on a random batch."""
    shape = [2] + [dim if dim > 0 else 61 for dim in read_manifest(engine)["inputs"][0]["shape"][1:]]
    example = np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32)
    with torch.no_grad():
        expected = part.module(torch.from_numpy(example))
    expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    got = load_engine(engine).run(example)
    return max(float(np.abs(e.numpy() - g).max()) for e, g in zip(expected, got))


def export_engines(model: str, force: bool, log) -> dict[str, Path]:
    out = {}
    for part in load_parts(model):
        target = engine_path(part.name, "fp32", "onnxruntime")
        if force or not up_to_date(target, part.source_sha256):
            build_part(part, BuildOptions(precision="fp32", backend="onnxruntime", skip_gate=True), echo=log)
            difference = round_trip(part, target)
            if difference > ROUND_TRIP_TOLERANCE:
                target.unlink()
                raise BuildError(f"{part.name}: ONNX export differs from PyTorch by {difference:.2e} (> {ROUND_TRIP_TOLERANCE}); not installed")
            log(f"{part.name}: ONNX Runtime matches PyTorch within {difference:.1e}")
        out[part.name] = target
    return out


def convert_starter_models(sources: dict, force: bool = False, log=print) -> dict:
    convert_embedding(sources["dlib_resnet"], force, log)
    convert_detector(sources, force, log)
    engines = {}
    engines.update(export_engines("embedding", force, log))
    engines.update(export_engines("detector", force, log))
    missing = [name for name in (EMBEDDING, *DETECTOR_NETS) if name not in engines]
    if missing:
        raise BuildError(f"fetch did not produce engines for {', '.join(missing)}")
    return {"engines": engines}


def fetch_and_convert(log: Callable[[str], None] = print, force: bool = False) -> dict:
    """Download the original weights (once) and convert them: what `edge-verify models fetch`
    and the demo's first run do. Registered as the ``starter-models`` build command."""
    return convert_starter_models(fetch_sources(progress=log), force=force, log=log)
