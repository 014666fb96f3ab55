"""Run a TensorFlow.js graph model (model.json and its weight files) with TensorFlow's own kernels.

For checking third-party models (benchmarks/registry_face_models.py); needs TensorFlow, which is
not a dependency of the product or its tests, so this runs in an environment of its own.

A graph model is a TensorFlow GraphDef written as JSON, its constants' values in binary files
listed by the weights manifest (optionally quantized to float16 or 8/16-bit integers). The
converter fuses a convolution or matrix product with its bias and activation into nodes that are
TensorFlow.js's own (``FusedDepthwiseConv2dNative``) or need attributes it does not write
(``_FusedConv2D``, ``_FusedMatMul``); these are split back into the plain TensorFlow ops.

One converter mistake is undone: where a PReLU was written as ``relu(x) + alpha * (x - |x|) / 2``
after a depthwise convolution, the converter fused the ReLU into the convolution, so the negative
branch (``x - |x|``) saw the ReLU's output and the PReLU became a ReLU. ``relu_fix`` puts the ReLU
back where only the ``Add`` reads it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PLAIN = {"FusedDepthwiseConv2dNative": "DepthwiseConv2dNative", "_FusedConv2D": "Conv2D", "_FusedMatMul": "MatMul"}
FUSION_ATTRS = ("fused_ops", "num_args", "leakyrelu_alpha", "epsilon", "TArgs", "num_host_args", "filter_format")
CONV_ONLY_ATTRS = ("use_cudnn_on_gpu", "strides", "padding", "data_format", "dilations", "explicit_paddings")


def read_weights(model_json: Path) -> tuple[dict, dict]:
    """(the model.json, {constant name: numpy array}), dequantized to float32 where it was quantized."""
    spec = json.loads(model_json.read_text())
    out = {}
    for group in spec["weightsManifest"]:
        data = b"".join((model_json.parent / name).read_bytes() for name in group["paths"])
        offset = 0
        for weight in group["weights"]:
            count = int(np.prod(weight["shape"])) if weight["shape"] else 1
            quantization = weight.get("quantization")
            stored = np.dtype(quantization["dtype"] if quantization else weight["dtype"])
            values = np.frombuffer(data, stored, count, offset)
            offset += count * stored.itemsize
            if quantization and quantization["dtype"] == "float16":
                values = values.astype(np.float32)
            elif quantization:  # affine 8 or 16-bit integers
                values = values.astype(np.float32) * quantization["scale"] + quantization["min"]
            out[weight["name"]] = values.reshape(weight["shape"])
    return spec, out


def graph_def(model_json: Path, relu_fix: bool = True):
    """The model as a tf.compat.v1.GraphDef of plain TensorFlow ops (module docstring)."""
    import tensorflow as tf
    from google.protobuf import json_format

    spec, weights = read_weights(model_json)
    graph = tf.compat.v1.GraphDef()
    json_format.ParseDict({"node": spec["modelTopology"]["node"]}, graph)
    nodes, relu_of = [], {}
    for node in graph.node:
        if node.op == "Const" and node.name in weights:
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(weights[node.name]))
            node.attr["dtype"].type = tf.as_dtype(weights[node.name].dtype).as_datatype_enum
        if node.op not in PLAIN:
            nodes.append(node)
            continue
        fused = [op.decode() for op in node.attr["fused_ops"].list.s]
        if relu_fix and node.op == "FusedDepthwiseConv2dNative" and fused == ["BiasAdd", "Relu"]:
            fused = ["BiasAdd"]
            relu_of[node.name] = node.name + "/relu"
        nodes.extend(split_fused(tf, node, fused))
        if node.name in relu_of:
            nodes.append(plain_node(tf, relu_of[node.name], "Relu", [node.name]))
    for node in nodes:  # the PReLU's Add reads the ReLU; its Abs and Sub read the convolution
        if node.op == "Add":
            for position, name in enumerate(node.input):
                node.input[position] = relu_of.get(name, name)
    del graph.node[:]
    graph.node.extend(nodes)
    return graph


def split_fused(tf, node, fused: list[str]) -> list:
    """The plain op, then its bias and activations; the last one takes the fused node's name."""
    base = tf.compat.v1.NodeDef()
    base.CopyFrom(node)
    base.name, base.op = node.name + "/op", PLAIN[node.op]
    del base.input[2:]
    dropped = FUSION_ATTRS + (CONV_ONLY_ATTRS if node.op == "_FusedMatMul" else ())
    for key in dropped:
        if key in base.attr:
            del base.attr[key]
    out, last = [base], base.name
    for position, op in enumerate(fused):
        name = node.name if position == len(fused) - 1 else f"{node.name}/{op}"
        if op == "BiasAdd":
            out.append(plain_node(tf, name, "BiasAdd", [last, node.input[2]]))
        elif op in ("Relu", "Relu6", "Elu", "Sigmoid", "Tanh"):
            out.append(plain_node(tf, name, op, [last]))
        else:
            raise ValueError(f"{node.name}: fused op {op} is not handled here")
        last = name
    return out


def plain_node(tf, name: str, op: str, inputs: list[str]):
    node = tf.compat.v1.NodeDef()
    node.name, node.op = name, op
    node.input.extend(inputs)
    node.attr["T"].type = tf.float32.as_datatype_enum
    return node


class GraphModel:
    """``model(batch)``: the output ``output`` (a node name) for an NHWC float32 batch."""

    def __init__(self, model_json: Path, output: str, relu_fix: bool = True):
        import tensorflow as tf

        definition = graph_def(Path(model_json), relu_fix)
        self.input = next(node.name for node in definition.node if node.op == "Placeholder") + ":0"
        self.output = output if ":" in output else output + ":0"
        graph = tf.Graph()
        with graph.as_default():
            tf.graph_util.import_graph_def(definition, name="")
        self.session = tf.compat.v1.Session(graph=graph)

    def __call__(self, batch: np.ndarray, rows: int = 128) -> np.ndarray:
        return np.concatenate([self.session.run(self.output, {self.input: batch[start:start + rows]})
                               for start in range(0, len(batch), rows)])
