"""Constant folding before TensorRT: every Pad reads its pads from an initializer.

The graphs are the ones a TensorRT build hands to the parser: the FP32 exports of
the embedding, the three detector nets and the attribute model (both backbones),
folded; and their Q/DQ INT8 versions made by the build's own quantize stage for
TensorRT (quantize_int8(target="tensorrt"), calibrated on fixture photos), folded.
No TensorRT is needed to check the rule, which is what TensorRT 8.5/8.6's parser
needs (NVIDIA/TensorRT#2088, #2618); the folded graphs also compute the same as
the originals (ONNX Runtime).
"""
from __future__ import annotations

import types

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from buildkit import FACES, photo_batch
from edge.models import registry
from edge_build.backends.tensorrt import backend as tensorrt_backend
from edge_build.models import attributes, dlib_resnet
from edge_build.onnx_export import export_onnx
from edge_build.backends.tensorrt.fold import fold_constants, fold_for_tensorrt, pad_problems
from edge_build.quantize import quantize_int8, tensorrt_qdq_problems

NETS = ("embedding", *registry.DETECTOR_NETS, "attributes-embedding", "attributes-small")
SIDE = {"embedding": 150, "detector-pnet": 48, "detector-rnet": 24, "detector-onet": 48,
        "attributes-embedding": 150, "attributes-small": 150}
PHOTOS = sorted(FACES.glob("*.jpg"))


def attribute_model(backbone: str):
    torch.manual_seed(0)
    if backbone == "small":
        contract = attributes.make_contract(["live", "glasses"])
        return attributes.build_module(contract).eval(), contract
    contract = attributes.make_contract(["live", "glasses"], backbone="embedding")  # glasses read stage2: padding
    module = attributes.build_module(contract)
    module.features = attributes.features_from(dlib_resnet.DlibResNet(), deep=True)
    return module.eval(), contract


@pytest.fixture(scope="module")
def exported(models_ready, tmp_path_factory):
    """{net: FP32 ONNX path}: the fetched exports, and the attribute models exported by the build's stage."""
    folder = tmp_path_factory.mktemp("exports")
    paths = {name: registry.engine_path(name, "fp32", "onnxruntime") for name in ("embedding", *registry.DETECTOR_NETS)}
    for backbone in ("embedding", "small"):
        module, contract = attribute_model(backbone)
        paths[f"attributes-{backbone}"] = export_onnx(module, contract, folder / f"attributes-{backbone}.onnx")
    return paths


def input_name(path) -> str:
    return onnx.load(str(path)).graph.input[0].name


def outputs(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def test_the_exported_embedding_computes_its_padding_until_folded(exported, tmp_path):
    """The bug: F.pad's ConstantOfShape -> ... -> Pad chain, which TensorRT 8.5/8.6 cannot parse."""
    model = onnx.load(str(exported["embedding"]))
    before = pad_problems(model)
    assert len(before) == 5 and all("computed, not an initializer" in line for line in before)
    ops = {node.op_type for node in model.graph.node}
    assert {"ConstantOfShape", "Concat", "Reshape", "Slice", "Cast", "Pad"} <= ops
    folded, count = fold_constants(model)
    assert pad_problems(folded) == [] and count > 0
    assert not {"ConstantOfShape", "Slice", "Cast"} & {node.op_type for node in folded.graph.node}


@pytest.mark.parametrize("net", NETS)
def test_every_fp32_graph_for_tensorrt_has_initializer_pads_and_computes_the_same(exported, tmp_path, net):
    folded = fold_for_tensorrt(exported[net], tmp_path / f"{net}.trt.onnx")
    model = onnx.load(str(folded))
    assert pad_problems(model) == [], net
    x = photo_batch(PHOTOS[:3], (SIDE[net], SIDE[net]))
    for want, got in zip(outputs(exported[net], x), outputs(folded, x)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    pads = sum(node.op_type == "Pad" for node in model.graph.node)
    before = len(pad_problems(onnx.load(str(exported[net]))))
    print(f"\n{net} FP32: {pads} Pad; computed pads before folding {before}, after 0; "
          f"{len(model.graph.node)} nodes after folding")


@pytest.mark.parametrize("net", NETS)
def test_every_qdq_int8_graph_for_tensorrt_has_initializer_pads(exported, tmp_path, net):
    folded = fold_for_tensorrt(exported[net], tmp_path / f"{net}.trt.onnx")
    batches = [photo_batch(PHOTOS[i:i + 4], (SIDE[net], SIDE[net])) for i in (0, 4)]
    qdq = quantize_int8(folded, tmp_path / f"{net}.qdq.onnx", batches, target="tensorrt").path
    parsed = fold_for_tensorrt(qdq, tmp_path / f"{net}.qdq.trt.onnx")
    model = onnx.load(str(parsed))
    ops = [node.op_type for node in model.graph.node]
    assert pad_problems(model) == [], net
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > 0  # Q/DQ kept, never folded
    assert ops.count("DequantizeLinear") == [n.op_type for n in onnx.load(str(qdq)).graph.node].count("DequantizeLinear")
    assert tensorrt_qdq_problems(model) == []
    before = len(pad_problems(onnx.load(str(qdq))))
    print(f"\n{net} Q/DQ INT8: {ops.count('QuantizeLinear')} Q, {ops.count('DequantizeLinear')} DQ, "
          f"{ops.count('Pad')} Pad; computed pads before folding {before}, after 0")


def test_the_tensorrt_build_parses_only_folded_graphs(exported, tmp_path, monkeypatch):
    """build_tensorrt_engine, with TensorRT itself stubbed: the FP32 graph (parsed first,
    even for INT8) and the Q/DQ graph both reach the parser folded."""
    parsed = []

    def build_network(path, trt=None):
        parsed.append(path)
        builder = types.SimpleNamespace(platform_has_fast_fp16=True, platform_has_fast_int8=True)
        return types.SimpleNamespace(builder=builder, inputs=lambda: [("chip", [-1, 3, 150, 150])])

    monkeypatch.setattr(tensorrt_backend, "load_tensorrt", lambda: types.SimpleNamespace(__version__="8.6.2"))
    monkeypatch.setattr(tensorrt_backend, "describe_device",
                        lambda: {"gpu": "Orin", "compute_capability": "8.7", "source": "pycuda"})
    monkeypatch.setattr(tensorrt_backend, "build_network", build_network)
    monkeypatch.setattr(tensorrt_backend, "build_config", lambda *args, **kwargs: (object(), {}))
    monkeypatch.setattr(tensorrt_backend, "build_engine", lambda net, config: b"plan")
    monkeypatch.setattr(tensorrt_backend, "compile_kernels", lambda folder, required=None: folder / "kernels")
    batches = [photo_batch(PHOTOS[i:i + 4], (150, 150)) for i in (0, 4)]
    tensorrt_backend.build_tensorrt_engine(exported["embedding"], tmp_path / "embedding.int8.engine", "int8",
                                           calibration=batches)
    assert [path.name for path in parsed] == ["embedding.int8.trt.onnx", "embedding.int8.qdq.trt.onnx"]
    for path in parsed:
        assert pad_problems(onnx.load(str(path))) == []
