"""Decisions for a TensorRT build, as pure functions (testable without a GPU).

Which precision the device can really run, which INT8 path to take, what
optimisation profile to build. Nothing here imports TensorRT.
"""
from __future__ import annotations

from dataclasses import dataclass

from edge.engines.device import capability_text, fast_fp16, fast_int8
from edge.engines.trt_compat import calibrator_deprecated, supported
from edge.exc import BuildError, PrecisionUnsupported

INT8_METHODS = ("explicit", "calibrator")
DEFAULT_BATCH = (1, 4, 32)  # min, opt, max
DEFAULT_SPATIAL = (12, 240, 1024)  # for a fully convolutional input (MTCNN's PNet)
# A fully convolutional net runs one pyramid level at a time; a 32-image batch of
# 1024x1024 would pin 400 MB of buffers on a board with 8 GB shared memory.
SPATIAL_BATCH = (1, 1, 4)


@dataclass(frozen=True)
class PrecisionPlan:
    precision: str  # what is built
    requested: str
    fallback: str | None


def device_precision(requested: str, device: dict, allow_fallback: bool, builder_fast: dict | None = None) -> PrecisionPlan:
    """What ``device`` can run fast, or PrecisionUnsupported (never a silent downgrade).

    ``builder_fast`` = {"fp16": builder.platform_has_fast_fp16, "int8": ...} when a
    builder exists; it is the device's own answer and wins over the table.
    """
    if requested == "fp32":
        return PrecisionPlan("fp32", "fp32", None)
    if requested not in ("fp16", "int8"):
        raise BuildError(f"unknown precision {requested!r}")
    cc = capability_text(device["compute_capability"])
    fast = {"fp16": fast_fp16(cc), "int8": fast_int8(cc)}
    if builder_fast:
        fast.update({k: bool(v) for k, v in builder_fast.items() if v is not None})
    if fast[requested]:
        return PrecisionPlan(requested, requested, None)
    gpu = device.get("gpu", "this GPU")
    if not allow_fallback:
        raise PrecisionUnsupported(
            f"{requested} is not fast on {gpu} (compute capability {cc}): TensorRT would run it at a fraction of the speed "
            "or not at all. Choose another --precision, or pass --allow-fallback to build the best precision "
            "this GPU supports and record the downgrade in the manifest"
        )
    chosen = "fp16" if requested == "int8" and fast["fp16"] else "fp32"
    return PrecisionPlan(chosen, requested, f"{requested} requested; {gpu} (compute {cc}) has no fast {requested}, built {chosen} (--allow-fallback)")


def int8_method(version: str, dla_core: int | None, requested: str | None = None) -> str:
    """"explicit" (Q/DQ ONNX) or "calibrator" (IInt8EntropyCalibrator2 + cache).

    Explicit quantization is the default: TensorRT parses Q/DQ since 8.0 and
    deprecated the implicit calibrator in 10.1. The DLA is the exception: TensorRT
    8.x's developer guide says the DLA does not take explicit quantization, so a
    DLA engine calibrates (its status for Q/DQ on 10.x is not established).
    """
    supported(version)
    if requested is not None and requested not in INT8_METHODS:
        raise BuildError(f"unknown INT8 method {requested!r}; choose one of {', '.join(INT8_METHODS)}")
    if dla_core is not None:
        if requested == "explicit":
            raise BuildError("the DLA does not take explicitly quantized (Q/DQ) networks; use --int8-method calibrator")
        return "calibrator"
    if requested:
        return requested
    return "explicit"


def calibrator_note(version: str) -> str | None:
    if calibrator_deprecated(version):
        return f"TensorRT {version} deprecates implicit INT8 calibration; prefer --int8-method explicit off the DLA"
    return None


def profile_shapes(shape: list[int], batch: tuple[int, int, int] = DEFAULT_BATCH,
                   spatial: tuple[int, int, int] = DEFAULT_SPATIAL, fixed_batch: int | None = None) -> tuple[tuple, tuple, tuple]:
    """(min, opt, max) shapes for an input of manifest shape ``shape`` (-1 = dynamic).

    ``fixed_batch`` pins every dynamic axis to its opt value: the DLA takes no
    dynamic shapes (min = opt = max), so a DLA engine serves one batch size.
    """
    if not 1 <= batch[0] <= batch[1] <= batch[2]:
        raise BuildError(f"batch profile {batch} must satisfy 1 <= min <= opt <= max")
    if batch == DEFAULT_BATCH and -1 in shape[1:]:
        batch = SPATIAL_BATCH
    lows, opts, highs = [], [], []
    for axis, size in enumerate(shape):
        if size != -1:
            triple = (size, size, size)
        elif axis == 0:
            triple = (fixed_batch,) * 3 if fixed_batch else batch
        else:
            triple = (spatial[1],) * 3 if fixed_batch else spatial
        lows.append(triple[0])
        opts.append(triple[1])
        highs.append(triple[2])
    return tuple(lows), tuple(opts), tuple(highs)
