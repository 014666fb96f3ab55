"""Stage: FP32 ONNX -> INT8 ONNX with explicit Q/DQ nodes (static, calibrated).

Two recipes, because the two consumers want different integer types:

* ``target="onnxruntime"`` (the CPU engine). On x86, ONNX Runtime's fast INT8
  convolution is unsigned-activation x signed-weight (U8S8); symmetric signed
  activations (S8S8) ran SLOWER than FP32 here (dlib ResNet, one thread: 6.1 vs
  5.7 ms at batch 1). So: uint8 asymmetric activations, int8 per-channel
  symmetric weights, 8-bit weights on CPUs with VNNI and 7-bit ("reduce_range")
  without, to avoid the 16-bit saturation of the pre-VNNI instruction (the
  engine is therefore made for the kind of CPU it is built on: the manifest
  records it, and the runtime refuses 8-bit weights on x86 without VNNI, see
  edge/engines/cpu.py). On ARM,
  ONNX Runtime's guidance is signed symmetric activations (not measured here).
* ``target="tensorrt"`` (explicit quantization on Jetson). TensorRT accepts only
  int8 with zero point 0 (symmetric) and per-channel scales only on weights
  (shared/notes/tensorrt-pycuda-on-jetson.md, section 3); weights keep their
  float values behind a Q/DQ pair, the form TensorRT's parser folds on 8.5..10.x.

Both keep FP32 the nodes that produce a graph output (the embedding's final
256->128 projection; MTCNN's output heads). Their error lands directly in the
output: on the dlib ResNet keeping the projection FP32 cut the mean L2 error
against PyTorch from 0.045 to 0.038 (cosine 0.99951 -> 0.99964) at no measurable
speed cost (32k of ~400M multiply-adds).

Before quantizing, ``quant_pre_process`` folds dlib's per-channel affine layers
into the convolutions and constant-folds the padding arithmetic, so Q/DQ pairs
sit only between real operators.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from edge.engines.cpu import cpu_kind
from edge.exc import BuildError, CalibrationError
from edge_build.stagelog import stage
from edge_calibration.sets import empty_set_message

log = logging.getLogger("edge_build")
METHODS = ("minmax", "entropy", "percentile")
TARGETS = ("onnxruntime", "tensorrt")
# Calibration keeps every intermediate output of this many batches before
# reducing them to ranges; unbounded, 300 dlib chips would hold ~1 GB.
MAX_INTERMEDIATE_BATCHES = 4


@dataclass(frozen=True)
class QuantRecipe:
    target: str
    activations: str  # "uint8" | "int8"
    symmetric_activations: bool
    per_channel: bool
    reduce_range: bool
    method: str = "minmax"
    keep_outputs_fp32: bool = True
    cpu: str = ""

    def as_dict(self) -> dict:
        return {"format": "QDQ", "weights": "int8", **asdict(self)}


@dataclass
class QuantResult:
    path: Path
    recipe: QuantRecipe
    batches: int
    samples: int
    kept_fp32: list = field(default_factory=list)


def recipe_for(target: str = "onnxruntime", method: str = "minmax", cpu: str | None = None) -> QuantRecipe:
    if method not in METHODS:
        raise BuildError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    if target == "tensorrt":
        return QuantRecipe("tensorrt", "int8", True, True, False, method)
    if target != "onnxruntime":
        raise BuildError(f"unknown quantization target {target!r}; choose one of {', '.join(TARGETS)}")
    cpu = cpu or cpu_kind()
    if cpu == "arm":
        return QuantRecipe(target, "int8", True, True, False, method, cpu=cpu)
    return QuantRecipe(target, "uint8", False, True, cpu != "x86-vnni", method, cpu=cpu)


class ChipReader:
    """onnxruntime CalibrationDataReader (it only needs ``get_next``) over an iterable
    of (N, C, H, W) float32 batches, read once, counted as they pass."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]):
        self.input_name = input_name
        self.iterator: Iterator[np.ndarray] = iter(batches)
        self.batches = 0
        self.samples = 0
        self.first = self.pull()

    def pull(self):
        batch = next(self.iterator, None)
        if batch is None:
            return None
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or not np.isfinite(batch).all():
            raise CalibrationError(f"calibration batch {self.batches + 1} is not a finite (N, C, H, W) array (shape {batch.shape})")
        self.batches += 1
        self.samples += len(batch)
        return {self.input_name: batch}

    def get_next(self):
        if self.first is not None:
            item, self.first = self.first, None
            return item
        return self.pull()


def empty_calibration_error() -> CalibrationError:
    return CalibrationError(empty_set_message())


def single_input_name(model) -> str:
    initializers = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in initializers]
    if len(names) != 1:
        raise BuildError(f"INT8 calibration feeds models with one input; this one has {names}")
    return names[0]


def output_producers(model) -> list[str]:
    outputs = {o.name for o in model.graph.output}
    return [node.name for node in model.graph.node if outputs & set(node.output)]


def prepare(onnx_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Fold affine layers and constant shape arithmetic (onnxruntime's quant_pre_process)."""
    quant_pre_process(os.fspath(onnx_path), os.fspath(out_path))
    model = onnx.load(os.fspath(out_path))
    used = {node.domain for node in model.graph.node}
    kept = [entry for entry in model.opset_import if entry.domain in ("", "ai.onnx") or entry.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)  # drop domains the optimiser declared but no node uses
    onnx.save(model, os.fspath(out_path))
    return Path(out_path)


@stage("quantize", slow=True)
def quantize_int8(onnx_path: str | os.PathLike, out_path: str | os.PathLike, calibration_chips: Iterable[np.ndarray],
                  method: str = "minmax", target: str = "onnxruntime", recipe: QuantRecipe | None = None) -> QuantResult:
    """Calibrate on ``calibration_chips`` and write a Q/DQ INT8 model to ``out_path``."""
    recipe = recipe or recipe_for(target, method)
    out_path = Path(out_path)
    prepared = prepare(onnx_path, out_path.with_suffix(".prepared.onnx"))
    try:
        model = onnx.load(os.fspath(prepared))
        reader = ChipReader(single_input_name(model), calibration_chips)
        if reader.first is None:
            raise empty_calibration_error()
        keep = output_producers(model) if recipe.keep_outputs_fp32 else []
        activation = QuantType.QUInt8 if recipe.activations == "uint8" else QuantType.QInt8
        methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
        extra = {"ActivationSymmetric": recipe.symmetric_activations, "WeightSymmetric": True,
                 "CalibMaxIntermediateOutputs": MAX_INTERMEDIATE_BATCHES}
        if recipe.target == "tensorrt":
            # Float weights behind Q/DQ (TensorRT folds them) and float biases: TensorRT
            # quantizes biases itself and its parser takes no int32 DequantizeLinear.
            extra.update(AddQDQPairToWeight=True, QuantizeBias=False)
        chatter = io.StringIO()
        with contextlib.redirect_stdout(chatter):  # the calibrators print progress to stdout
            quantize_static(
                os.fspath(prepared), os.fspath(out_path), reader, quant_format=QuantFormat.QDQ,
                per_channel=recipe.per_channel, reduce_range=recipe.reduce_range, activation_type=activation,
                weight_type=QuantType.QInt8, nodes_to_exclude=keep, calibrate_method=methods[recipe.method], extra_options=extra,
            )
        log.debug("quantizer output: %s", chatter.getvalue())
    finally:
        prepared.unlink(missing_ok=True)
    if recipe.target == "tensorrt":
        problems = tensorrt_qdq_problems(onnx.load(os.fspath(out_path)))
        if problems:
            raise BuildError("the INT8 model is not one TensorRT can build: " + "; ".join(problems[:5]))
    return QuantResult(out_path, recipe, reader.batches, reader.samples, keep)


def tensorrt_qdq_problems(model) -> list[str]:
    """What TensorRT 8.5's parser would reject in a Q/DQ graph (empty list = fine):
    three inputs, int8 zero points equal to 0, positive scales, per-channel
    scales only on weights and as many as the weight's channel axis."""
    tensors = {t.name: t for t in model.graph.initializer}
    problems = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if len(node.input) != 3 or node.input[2] not in tensors:
            problems.append(f"{node.name}: needs a constant zero point input")
            continue
        scale, zero = tensors.get(node.input[1]), tensors[node.input[2]]
        if zero.data_type != TensorProto.INT8 or np.any(numpy_helper.to_array(zero) != 0):
            problems.append(f"{node.name}: zero point must be int8 0 (symmetric)")
        if scale is None or np.any(numpy_helper.to_array(scale) <= 0):
            problems.append(f"{node.name}: scales must be positive constants")
            continue
        count = numpy_helper.to_array(scale).size
        if count > 1:
            source = tensors.get(node.input[0])
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if node.op_type == "QuantizeLinear" and source is None:
                problems.append(f"{node.name}: per-channel scales on an activation")
            elif source is not None and source.dims[axis] != count:
                problems.append(f"{node.name}: {count} scales for {source.dims[axis]} channels")
    return problems
