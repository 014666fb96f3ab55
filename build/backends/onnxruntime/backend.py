"""Stage: FP32 ONNX -> an ONNX Runtime (CPU) engine at the requested precision.

fp32: the exported file as is. int8: explicit Q/DQ quantization (edge_build.quantize).
fp16: refused. ONNX Runtime's CPU provider has no fast FP16 kernels: an FP16
model either runs through inserted casts at FP32 speed or slower, so calling it
"fp16" would be a lie. With ``allow_fallback`` the engine is FP32 and the
manifest's ``fallback`` says so.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable

import numpy as np

from edge.exc import BuildError, PrecisionUnsupported
from edge_build.backends.result import EngineBuild
from edge_build.quantize import quantize_int8
from edge_build.stagelog import stage

PRECISIONS = ("fp32", "fp16", "int8")
FP16_FALLBACK = "fp16 requested; ONNX Runtime's CPU provider has no fast FP16, so this engine is FP32 (--allow-fallback)"


def resolve_precision(requested: str, allow_fallback: bool) -> tuple[str, str | None]:
    """(precision to build, fallback sentence or None) for the onnxruntime backend."""
    if requested not in PRECISIONS:
        raise BuildError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}")
    if requested == "fp16":
        if not allow_fallback:
            raise PrecisionUnsupported(
                "fp16 is not supported by the onnxruntime backend: its CPU provider has no fast FP16 kernels. "
                "Use --precision int8 (fastest on a CPU) or fp32, --backend tensorrt on a Jetson, "
                "or --allow-fallback to build FP32 and record it"
            )
        return "fp32", FP16_FALLBACK
    return requested, None


@stage("onnxruntime engine")
def build_onnxruntime_engine(fp32_onnx: str | os.PathLike, out_path: str | os.PathLike, precision: str,
                             calibration_chips: Iterable[np.ndarray] | None = None, method: str = "minmax",
                             allow_fallback: bool = False) -> EngineBuild:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    built, fallback = resolve_precision(precision, allow_fallback)
    if built == "int8":
        if calibration_chips is None:
            raise BuildError("int8 needs a calibration set: pass --calibration DIR (see calibration/README.md)")
        result = quantize_int8(fp32_onnx, out_path, calibration_chips, method=method, target="onnxruntime")
        return EngineBuild(out_path, "int8", precision, None, result.recipe.as_dict() | {"kept_fp32": result.kept_fp32})
    if Path(fp32_onnx).resolve() != out_path.resolve():
        shutil.copyfile(fp32_onnx, out_path)
    return EngineBuild(out_path, built, precision, fallback)
