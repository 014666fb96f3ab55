"""The TensorRT backend: the stages of builder.py put together.

fold constants -> precision check against this GPU -> (INT8: Q/DQ ONNX, folded
too, or a calibrator) -> parse -> config -> build -> save -> CUDA kernels.
Every graph TensorRT parses has its constants folded first (edge_build.backends.tensorrt.fold:
TensorRT 8.5/8.6 reject the exported padding arithmetic). Returns an EngineBuild
whose ``extra`` holds the manifest's ``device`` block and the TensorRT facts.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from edge.engines.device import describe_device
from edge.engines.manifest import file_sha256
from edge.engines.trt_compat import load_pycuda, load_tensorrt
from edge.exc import BuildError
from edge_build.backends.result import EngineBuild
from edge_build.backends.tensorrt.builder import build_config, build_engine, build_network, save_engine
from edge_build.backends.tensorrt.calibrator import cache_path, calibrator_class
from edge_build.backends.tensorrt.fold import fold_for_tensorrt
from edge_build.backends.tensorrt.kernels import compile_kernels
from edge_build.backends.tensorrt.plan import DEFAULT_BATCH, calibrator_note, device_precision, int8_method
from edge_build.quantize import quantize_int8


def build_tensorrt_engine(onnx_path: str | os.PathLike, out_path: str | os.PathLike, precision: str, *,
                          calibration: Iterable[np.ndarray] | None = None, calibration_sha256: str | None = None,
                          calibration_batch: int = 16, method: str = "minmax", requested_int8_method: str | None = None,
                          allow_fallback: bool = False, workspace_mb: int = 1024, dla_core: int | None = None,
                          gpu_fallback: bool = True, batch: tuple[int, int, int] = DEFAULT_BATCH,
                          cache_dir: str | os.PathLike | None = None) -> EngineBuild:
    trt = load_tensorrt()
    version = trt.__version__
    device = describe_device()
    if device is None:
        raise BuildError("a TensorRT build needs the CUDA GPU that will run the engine; build on the Jetson itself")
    out_path = Path(out_path)
    folded = fold_for_tensorrt(onnx_path, out_path.with_suffix(".trt.onnx"))
    net = build_network(folded, trt)
    fast = {"fp16": getattr(net.builder, "platform_has_fast_fp16", None), "int8": getattr(net.builder, "platform_has_fast_int8", None)}
    plan = device_precision(precision, device, allow_fallback, fast)
    facts: dict = {"version": version}
    quantization, calibrator = None, None
    if plan.precision == "int8":
        if calibration is None:
            raise BuildError("int8 needs a calibration set: pass --calibration DIR (see calibration/README.md)")
        facts["int8_method"] = how = int8_method(version, dla_core, requested_int8_method)
        facts["note"] = calibrator_note(version) if how == "calibrator" else None
        if how == "explicit":
            qdq = out_path.with_suffix(".qdq.onnx")
            result = quantize_int8(folded, qdq, calibration, method=method, target="tensorrt")
            quantization = result.recipe.as_dict() | {"kept_fp32": result.kept_fp32}
            net = build_network(fold_for_tensorrt(qdq, out_path.with_suffix(".qdq.trt.onnx")), trt)
        else:
            calibrator = make_calibrator(trt, net, calibration, calibration_batch, onnx_path, calibration_sha256, cache_dir, version)
            quantization = {"format": "TensorRT calibrator", "method": "entropy2", "cache": str(calibrator.cache_file)}
    config, config_facts = build_config(
        net.builder, plan.precision, workspace_mb, calibrator, dla_core, net=net, batch=batch,
        gpu_fallback=gpu_fallback, calibration_batch=calibration_batch, fp16_ok=bool(fast["fp16"]),
    )
    facts.update(config_facts)
    try:
        serialized = build_engine(net, config)
        if calibrator is not None:
            calibrator.raise_if_failed()
    finally:
        if calibrator is not None:
            calibrator.free()
    save_engine(serialized, out_path)
    # The CUDA aligner the daemon runs with this engine loads its kernels precompiled from here.
    compile_kernels(out_path.parent, required="sm_" + device["compute_capability"].replace(".", ""))
    device_block = {**device, "dla_core": dla_core, "gpu_fallback": bool(gpu_fallback) if dla_core is not None else None}
    return EngineBuild(out_path, plan.precision, precision, plan.fallback, quantization, {"device": device_block, "tensorrt": facts})


def make_calibrator(trt, net, calibration, calibration_batch, onnx_path, calibration_sha256, cache_dir, version):
    (name, shape), = net.inputs()
    if any(size == -1 for size in shape[1:]):
        raise BuildError(f"input {name} has dynamic spatial axes; calibrate it with --int8-method explicit")
    batch_shape = (calibration_batch, *shape[1:])
    cache = None
    if cache_dir and calibration_sha256:
        cache = cache_path(cache_dir, version, file_sha256(onnx_path), calibration_sha256)
    return calibrator_class(trt)(calibration, batch_shape, cache, version, load_pycuda())
