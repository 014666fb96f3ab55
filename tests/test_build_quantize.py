"""INT8 (Q/DQ) quantization: it runs, stays close to FP32 on real inputs, and
produces the integer types each target needs."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from buildkit import FACES, TINY_CONTRACT, dlib_chips, photo_batch, tiny_net
from edge.exc import CalibrationError
from edge_build.gate import cosine_rows
from edge_build.onnx_export import default_domain_opset, export_onnx
from edge_build.quantize import cpu_kind, quantize_int8, recipe_for, tensorrt_qdq_problems


def run(path, name, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {name: x})[0]


def in_batches(x: np.ndarray, size: int):
    return [x[i:i + size] for i in range(0, len(x), size)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    net = tiny_net()
    return net, export_onnx(net, TINY_CONTRACT, folder / "tiny.onnx")


def test_tiny_net_int8_stays_close_on_held_out_photos(tmp_path, tiny):
    net, fp32 = tiny
    photos = sorted(FACES.glob("*.jpg"))
    calibrate, held = photo_batch(photos[:24]), photo_batch(photos[24:])
    result = quantize_int8(fp32, tmp_path / "tiny.int8.onnx", in_batches(calibrate, 8))
    assert (result.batches, result.samples) == (3, 24)
    ops = {node.op_type for node in onnx.load(str(result.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    with torch.no_grad():
        want = net(torch.from_numpy(held)).numpy()
    got = run(result.path, "image", held)
    assert cosine_rows(want, got).mean() > 0.99


def test_empty_calibration_data_lists_the_causes(tmp_path, tiny):
    _, fp32 = tiny
    with pytest.raises(CalibrationError) as caught:
        quantize_int8(fp32, tmp_path / "x.onnx", [])
    message = str(caught.value)
    for cause in ("empty", "extension", "unreadable", "no face", "batch size"):
        assert cause in message


def test_tensorrt_recipe_is_symmetric_int8_and_passes_the_parser_rules(tmp_path, tiny):
    _, fp32 = tiny
    calibrate = photo_batch(sorted(FACES.glob("*.jpg"))[:16])
    trt = quantize_int8(fp32, tmp_path / "trt.onnx", in_batches(calibrate, 8), target="tensorrt")
    model = onnx.load(str(trt.path))
    assert tensorrt_qdq_problems(model) == []
    assert default_domain_opset(model) <= 17  # still parseable by TensorRT 8.5
    cpu = quantize_int8(fp32, tmp_path / "cpu.onnx", in_batches(calibrate, 8), recipe=recipe_for("onnxruntime", cpu="x86"))
    problems = tensorrt_qdq_problems(onnx.load(str(cpu.path)))
    assert any("zero point must be int8 0" in p for p in problems)  # uint8 asymmetric: CPU only


def test_recipes_follow_the_cpu():
    assert recipe_for("onnxruntime", cpu="x86-vnni").reduce_range is False
    assert recipe_for("onnxruntime", cpu="x86").reduce_range is True
    assert recipe_for("onnxruntime", cpu="x86").activations == "uint8"
    assert recipe_for("onnxruntime", cpu="arm").activations == "int8"
    assert recipe_for("tensorrt").symmetric_activations is True
    assert cpu_kind("x86_64", {"avx2", "avx512_vnni"}) == "x86-vnni"
    assert cpu_kind("x86_64", {"avx2"}) == "x86"
    assert cpu_kind("aarch64") == "arm"


def test_dlib_resnet_int8_on_real_faces(tmp_path, model_sources):
    pytest.importorskip("dlib", reason="dlib aligns the reference chips (test extra)")
    from edge_build.models.dlib_resnet import CONTRACT, load_dlib_resnet

    module = load_dlib_resnet(model_sources["dlib_resnet"])
    fp32 = export_onnx(module, CONTRACT, tmp_path / "embedding.onnx")
    photos = sorted(FACES.glob("*.jpg"))
    calibrate = dlib_chips(model_sources, [p for p in photos if not p.name.startswith(("Tony", "Hugo"))])
    held = dlib_chips(model_sources, [p for p in photos if p.name.startswith(("Tony", "Hugo"))])
    result = quantize_int8(fp32, tmp_path / "embedding.int8.onnx", in_batches(calibrate, 8))
    assert result.kept_fp32 == ["/fc/MatMul"]  # the final projection stays FP32
    with torch.no_grad():
        want = module(torch.from_numpy(held)).numpy()
    got = run(result.path, "chip", held)
    assert cosine_rows(want, got).mean() >= 0.995
    assert np.linalg.norm(want - got, axis=1).max() < 0.15  # well inside dlib's 0.6 threshold
