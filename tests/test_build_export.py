"""Export -> ONNX Runtime -> compare with PyTorch, for a tiny net and for every real model."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from buildkit import FACES, TINY_CONTRACT, photo_batch, tiny_net
from edge.exc import BuildError, ModelError
from edge_build import contracts
from edge_build.onnx_export import check_onnx, default_domain_opset, export_onnx
from edge_build.stages import BuildLog


def run_onnx(path, feeds: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def torch_outputs(module, x: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        out = module(torch.from_numpy(x))
    return [o.numpy() for o in (out if isinstance(out, (tuple, list)) else (out,))]


def test_tiny_net_round_trip_on_photos(tmp_path):
    net = tiny_net()
    path = export_onnx(net, TINY_CONTRACT, tmp_path / "tiny.onnx")
    for batch in (1, 5):  # the batch axis is dynamic
        x = photo_batch(sorted(FACES.glob("*.jpg"))[:batch])
        got = run_onnx(path, {"image": x})[0]
        want = torch_outputs(net, x)[0]
        assert got.shape == (batch, 16)
        assert np.abs(got - want).max() < 1e-4


def test_export_uses_the_contract_names_and_opset(tmp_path):
    path = export_onnx(tiny_net(), TINY_CONTRACT, tmp_path / "tiny.onnx", opset=17)
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["features"]
    assert default_domain_opset(model) == 17
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_fixed_batch_export_is_refused_by_the_dynamic_check(tmp_path):
    path = export_onnx(tiny_net(), TINY_CONTRACT, tmp_path / "fixed.onnx", dynamic_batch=False)
    check_onnx(path, TINY_CONTRACT, dynamic_batch=False)
    with pytest.raises(BuildError, match="batch axis"):
        check_onnx(path, TINY_CONTRACT, dynamic_batch=True)


def test_check_refuses_names_that_are_not_the_contract(tmp_path):
    path = export_onnx(tiny_net(), TINY_CONTRACT, tmp_path / "tiny.onnx")
    with pytest.raises(ModelError, match="contract says"):
        check_onnx(path, dict(TINY_CONTRACT, output_name="embedding"))


def test_check_refuses_an_opset_over_the_target_ceiling(tmp_path):
    path = export_onnx(tiny_net(), TINY_CONTRACT, tmp_path / "tiny18.onnx", opset=18)
    with pytest.raises(BuildError, match="parses up to 17"):
        check_onnx(path, TINY_CONTRACT, target="tensorrt-8.5")
    check_onnx(path, TINY_CONTRACT, target="tensorrt-10")


def test_contract_without_output_shape_is_an_error_not_a_guess():
    contract = {k: v for k, v in TINY_CONTRACT.items() if k != "embedding_size"}
    with pytest.raises(ModelError, match="embedding_size"):
        contracts.output_specs(contract)


def test_stage_log_records_time_and_size(tmp_path):
    lines = []
    with BuildLog(echo=lines.append) as log:
        path = export_onnx(tiny_net(), TINY_CONTRACT, tmp_path / "tiny.onnx")
    assert [r.name for r in log.records] == ["export"]
    assert log.records[0].size_bytes == path.stat().st_size > 0
    assert log.records[0].seconds > 0
    assert lines and lines[0].startswith("[export]") and "tiny.onnx" in lines[0]


def test_dlib_resnet_round_trip_on_real_faces(tmp_path, model_sources):
    pytest.importorskip("dlib", reason="dlib aligns the reference chips (test extra)")
    from buildkit import dlib_chips
    from edge_build.models.dlib_resnet import CONTRACT, load_dlib_resnet

    module = load_dlib_resnet(model_sources["dlib_resnet"])
    path = export_onnx(module, CONTRACT, tmp_path / "embedding.onnx")
    chips = dlib_chips(model_sources, sorted(FACES.glob("*_0001.jpg")))
    got = run_onnx(path, {"chip": chips})[0]
    want = torch_outputs(module, chips)[0]
    assert got.shape == (len(chips), 128)
    assert np.abs(got - want).max() < 1e-4


@pytest.mark.parametrize("key", ["pnet", "rnet", "onet"])
def test_mtcnn_round_trip_on_photos(tmp_path, model_sources, key):
    from edge_build.models import mtcnn

    net = mtcnn.load_mtcnn(model_sources["mtcnn_pnet"], model_sources["mtcnn_rnet"], model_sources["mtcnn_onet"])[key]
    contract = mtcnn.CONTRACT[key]
    path = export_onnx(net, contract, tmp_path / f"{key}.onnx")
    size = contract["size"] or [61, 47]  # P-Net takes any size; the export traced another one
    x = photo_batch(sorted(FACES.glob("*.jpg"))[:3], size=size)
    got = run_onnx(path, {"image": x})
    want = torch_outputs(net, x)
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        assert np.abs(g - w).max() < 1e-4
