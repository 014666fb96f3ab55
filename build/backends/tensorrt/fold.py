"""Stage: an ONNX file -> the same graph with its constant sub-graphs folded, for TensorRT.

Why: PyTorch exports ``F.pad`` (the dlib ResNet's channel padding in its
downsampling units) as ConstantOfShape -> Concat -> Reshape[-1, 2] -> Slice ->
Transpose -> Reshape -> Cast -> Pad. TensorRT 8.5/8.6's ONNX parser turns the pads
arithmetic into shape-tensor layers and rejects it ("IShuffleLayer applied to shape
tensor must have 0 or 1 reshape dimensions", NVIDIA/TensorRT#2088, #2618). All of
it is constant, so it is evaluated here (onnx's reference evaluator, node by node)
and replaced by initializers: every Pad then reads its pads from an initializer,
which every TensorRT release parses. ``pad_problems`` is the check, run on each
graph before it is handed to TensorRT (the FP32 graph is parsed even for INT8).

Quantize/Dequantize nodes are never folded, even with constant inputs: to
TensorRT they are the quantization itself (explicit Q/DQ), not arithmetic.
ONNX Runtime engines are not built from the folded copy; it is for TensorRT only.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from edge.exc import BuildError
from edge_build.stages import stage

NEVER_FOLD = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
NONDETERMINISTIC = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"}
MAX_FOLDED_BYTES = 64 << 20  # a constant this large is left to TensorRT rather than baked into the file


def constant_values(model) -> dict:
    """{tensor name: numpy array} of the initializers that are not also graph inputs."""
    inputs = {value.name for value in model.graph.input}
    return {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer if tensor.name not in inputs}


def foldable(node, known: dict) -> bool:
    if node.domain not in ("", "ai.onnx") or node.op_type in NEVER_FOLD | NONDETERMINISTIC:
        return False
    if any(attribute.type in (attribute.GRAPH, attribute.GRAPHS) for attribute in node.attribute):
        return False  # If / Loop / Scan: leave control flow alone
    return all(name == "" or name in known for name in node.input)


def evaluate(node, known: dict, opset: int) -> list:
    """The node's outputs computed from constant inputs, with the model's own opset."""
    initializers = [numpy_helper.from_array(np.asarray(known[name]), name) for name in dict.fromkeys(node.input) if name]
    outputs = [helper.make_value_info(name, onnx.TypeProto()) for name in node.output if name]
    graph = helper.make_graph([node], "fold", [], outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return ReferenceEvaluator(model).run(None, {})


def fold_constants(model) -> tuple[object, int]:
    """(model with every foldable node replaced by initializers, how many nodes were folded).

    Nodes are visited in graph order (ONNX graphs are topologically sorted), so a
    chain of constant nodes folds in one pass.
    """
    opset = next((int(entry.version) for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise BuildError("the ONNX model imports no default-domain opset")
    known = constant_values(model)
    graph_outputs = {value.name for value in model.graph.output}
    kept, folded_names, count = [], [], 0
    for node in model.graph.node:
        if not foldable(node, known) or set(node.output) & graph_outputs:
            kept.append(node)
            continue
        values = evaluate(node, known, opset)
        if sum(np.asarray(value).nbytes for value in values) > MAX_FOLDED_BYTES:
            kept.append(node)
            continue
        for name, value in zip([name for name in node.output if name], values):
            known[name] = np.asarray(value)
            folded_names.append(name)
        count += 1
    if count == 0:
        return model, 0
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    del folded.graph.node[:]
    folded.graph.node.extend(kept)
    used = {name for node in kept for name in node.input} | graph_outputs
    old = [tensor for tensor in folded.graph.initializer if tensor.name in used]
    new = [numpy_helper.from_array(known[name], name) for name in folded_names if name in used]
    del folded.graph.initializer[:]
    folded.graph.initializer.extend(old + new)
    # Shape information of tensors that are now initializers would contradict nothing, but is stale.
    stale = set(folded_names)
    kept_info = [value for value in folded.graph.value_info if value.name not in stale]
    del folded.graph.value_info[:]
    folded.graph.value_info.extend(kept_info)
    return folded, count


def pad_problems(model) -> list[str]:
    """One line per Pad whose pads (or constant value) input is not an initializer."""
    initializers = {tensor.name for tensor in model.graph.initializer}
    problems = []
    for node in model.graph.node:
        if node.op_type != "Pad":
            continue
        for slot, name in list(enumerate(node.input))[1:3]:
            if name and name not in initializers:
                what = "pads" if slot == 1 else "constant_value"
                problems.append(f"Pad {node.name or node.output[0]}: {what} input {name!r} is computed, not an initializer")
    return problems


@stage("fold constants")
def fold_for_tensorrt(onnx_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Write ``onnx_path`` with its constants folded to ``out_path``; BuildError if a Pad
    still computes its pads (TensorRT 8.5/8.6 would reject it)."""
    model = onnx.load(os.fspath(onnx_path))
    folded, _count = fold_constants(model)
    problems = pad_problems(folded)
    if problems:
        raise BuildError(f"{onnx_path}: after constant folding, TensorRT would still see computed padding: "
                         + "; ".join(problems))
    try:
        onnx.checker.check_model(folded)
    except onnx.checker.ValidationError as error:
        raise BuildError(f"constant folding broke {onnx_path}: {error}") from error
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    scratch = out_path.with_name(out_path.name + ".tmp")
    onnx.save(folded, os.fspath(scratch))
    os.replace(scratch, out_path)
    return out_path
