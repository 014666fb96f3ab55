"""One engine from one model part: the stages in order.

export ONNX -> (calibration set) -> backend engine at the precision -> accuracy
gate against PyTorch -> install the engine and write its manifest. The engine is
built in a scratch folder beside its destination and moved into place only
after the gate passes, so a failed build never replaces a working engine.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge.engines.manifest import running_backend_version
from edge.engines.onnxrt import OnnxRuntimeEngine
from edge.engines.tensorrt import TensorRTEngine
from edge.exc import BuildError, GateFailed
from edge.models.registry import engine_path
from edge_build.backends.onnxruntime.backend import build_onnxruntime_engine
from edge_build.backends.tensorrt.backend import build_tensorrt_engine
from edge_build.gate import GateLimits, accuracy_gate, engine_embed, threshold_decisions, torch_embed
from edge_build.manifests import manifest_for, write_engine_manifest
from edge_build.onnx_export import DEFAULT_OPSET, export_onnx
from edge_build.stagelog import BuildLog
from edge_build.targets import Part
from edge_calibration.samples import SAMPLE_METHODS, pipeline_faces_from_folder, window_samples
from edge_calibration.sets import DEFAULT_BATCH, DEFAULT_MIN_FACES, calibration_set, check_disjoint, split_folder


@dataclass
class BuildOptions:
    precision: str = "fp32"
    backend: str = "onnxruntime"
    calibration: Path | None = None
    gate_faces: Path | None = None
    skip_gate: bool = False
    allow_fallback: bool = False
    workspace_mb: int = 1024
    dla_core: int | None = None
    gpu_fallback: bool = True
    out_dir: Path | None = None  # the engines folder; default $EDGE_VERIFY_HOME/models/engines
    limits: GateLimits = field(default_factory=GateLimits)
    method: str = "percentile"  # see calibration/README.md: closest to FP32 on held-out faces and LFW
    int8_method: str | None = None
    batch_size: int = DEFAULT_BATCH
    min_faces: int = DEFAULT_MIN_FACES
    holdout_fraction: float = 0.1
    max_gate_faces: int = 300
    opset: int = DEFAULT_OPSET
    progress: bool = False


@dataclass
class Injected:
    """What the build borrows from the face pipeline (tests pass their own)."""

    faces_from_folder: Callable | None = None
    lfw_scorer: Callable | None = None


def samples_for(part: Part, injected: Injected) -> tuple[Callable, str]:
    if part.name == "embedding" or part.contract.get("embedding_size"):
        return injected.faces_from_folder or pipeline_faces_from_folder(), "pipeline"
    return window_samples(part.contract), "windows"


def target_path(part: Part, options: BuildOptions) -> Path:
    # Named by the precision asked for: a fallback is stated in the manifest,
    # and the pipeline asking for that precision finds it and can read why.
    if options.out_dir:
        return Path(options.out_dir) / engine_path(part.name, options.precision, options.backend).name
    return engine_path(part.name, options.precision, options.backend)


def build_part(part: Part, options: BuildOptions, injected: Injected | None = None, echo=print) -> dict:
    injected = injected or Injected()
    target = target_path(part, options)
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    echo(f"building {part.name}: {options.precision} {options.backend} -> {target}")
    with BuildLog(echo) as log, tempfile.TemporaryDirectory(prefix=".build-", dir=target.parent) as scratch:
        work = Path(scratch)
        fp32 = export_onnx(part.module, part.contract, work / f"{part.name}.fp32.onnx", opset=options.opset)
        samples, kind = samples_for(part, injected)
        calibration, held_dir = prepare_faces(options, samples, work)
        staging = work / target.name
        build = build_backend(fp32, staging, options, calibration)
        calibration_block = None
        if build.precision == "int8":
            calibration_block = calibration.summary(f"{options.method}; {SAMPLE_METHODS[kind]}")
            calibration_block["dropped"] = calibration.dropped
        fields = dict(name=part.name, contract=part.contract, source_sha256=part.source_sha256, precision=build.precision,
                      requested_precision=options.precision, backend=options.backend, backend_version=backend_version(options.backend),
                      fallback=build.fallback, calibration=calibration_block, device=build.extra.get("device"),
                      quantization=build.quantization, extra={"tensorrt": build.extra["tensorrt"]} if "tensorrt" in build.extra else None)
        figures = run_gate(part, options, injected, staging, manifest_for(staging, **fields), samples, held_dir, target)
        os.replace(staging, target)
        fields.update(accuracy_gate=figures, build_seconds=time.perf_counter() - started)
        write_engine_manifest(target, stages=log.as_list(), **fields)
    return {"engine": str(target), "precision": build.precision, "fallback": build.fallback, "accuracy_gate": figures}


def prepare_faces(options: BuildOptions, samples, work: Path):
    """(calibration set or None, held-out folder or None)."""
    if options.precision == "int8" and options.calibration is None:
        raise BuildError("int8 needs a calibration set: pass --calibration DIR (see calibration/README.md)")
    calibration_dir, held_dir = options.calibration, options.gate_faces
    if options.calibration and not options.gate_faces and not options.skip_gate:
        calibration_dir, held_dir = split_folder(options.calibration, work / "split", options.holdout_fraction)
    calibration = None
    if options.precision == "int8":
        calibration = calibration_set(calibration_dir, samples, min_faces=options.min_faces, batch_size=options.batch_size,
                                      progress=options.progress)
        if options.gate_faces:
            check_disjoint(calibration, options.gate_faces)
    if held_dir is None and not options.skip_gate:
        raise BuildError(
            "the accuracy gate needs held-out faces: pass --gate-faces DIR (photos never used for calibration), "
            "or --calibration DIR to hold out part of it, or --skip-gate to build without a gate (recorded in the manifest)"
        )
    return calibration, held_dir


def build_backend(fp32: Path, staging: Path, options: BuildOptions, calibration):
    if options.backend == "onnxruntime":
        return build_onnxruntime_engine(fp32, staging, options.precision, calibration, method=options.method,
                                        allow_fallback=options.allow_fallback)
    if options.backend == "tensorrt":
        return build_tensorrt_engine(
            fp32, staging, options.precision, calibration=calibration,
            calibration_sha256=calibration.sha256 if calibration else None, calibration_batch=options.batch_size,
            method=options.method, requested_int8_method=options.int8_method, allow_fallback=options.allow_fallback,
            workspace_mb=options.workspace_mb, dla_core=options.dla_core, gpu_fallback=options.gpu_fallback,
            cache_dir=staging.parent.parent / "calibration-cache",
        )
    raise BuildError(f"unknown backend {options.backend!r}")


def backend_version(backend: str) -> str:
    return running_backend_version(backend)


def held_out_chips(samples, folder: Path, limit: int) -> np.ndarray:
    chips, count = [], 0
    for block in samples(folder):
        chips.append(np.asarray(block, dtype=np.float32))
        count += len(block)
        if count >= limit:
            break
    if not chips:
        raise BuildError(f"no held-out faces found in {folder}; the accuracy gate cannot run")
    return np.concatenate(chips)[:limit]


def open_engine(path: Path, manifest: dict):
    if manifest["backend"] == "onnxruntime":
        return OnnxRuntimeEngine(path, manifest)
    return TensorRTEngine(path, manifest)


def run_gate(part: Part, options: BuildOptions, injected: Injected, staging: Path, manifest: dict, samples,
             held_dir: Path | None, target: Path) -> dict:
    if options.skip_gate:
        return {"skipped": True, "reason": "--skip-gate"}
    chips = held_out_chips(samples, held_dir, options.max_gate_faces)
    engine = open_engine(staging, manifest)
    scorer = injected.lfw_scorer if part.name == "embedding" else None
    source = str(options.gate_faces) if options.gate_faces else f"{options.holdout_fraction:.0%} of {options.calibration}, not calibrated on"
    try:
        figures = accuracy_gate(torch_embed(part.module), engine_embed(engine), chips, options.limits, lfw_scorer=scorer,
                                decide=threshold_decisions(part.contract))
        return figures | {"held_out": source}
    except GateFailed as failure:
        report = target.with_name(target.name + ".rejected.json")
        report.write_text(json.dumps({"engine": str(target), "figures": failure.figures}, indent=2) + "\n")
        raise GateFailed(f"{part.name}: {failure} (figures in {report})", failure.figures) from None
    finally:
        engine.close()
