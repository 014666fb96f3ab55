"""PyTorch port of dlib's face ResNet against dlib itself on real aligned fixture faces."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from edge.exc import ModelError
from edge_build.dlib_format import read_face_resnet
from edge_build.models.dlib_resnet import (CONTRACT, DlibResNet, checkpoint, from_dlib_net,
                                           load_checkpoint, load_dlib_resnet, save_checkpoint)

dlib = pytest.importorskip("dlib", reason="dlib is the reference implementation (test extra)")

RESNET_PARAMS = 5_614_592


@pytest.fixture(scope="module")
def model(model_sources) -> DlibResNet:
    return load_dlib_resnet(model_sources["dlib_resnet"])


@pytest.fixture(scope="module")
def reference(model_sources, face_images):
    """dlib's own aligned 150x150 chips and descriptors for the fixture faces."""
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(model_sources["dlib_shape5"]))
    recogniser = dlib.face_recognition_model_v1(str(model_sources["dlib_resnet"]))
    chips, descriptors = [], []
    for paths in face_images.values():
        for path in paths:
            image = dlib.load_rgb_image(str(path))
            faces = detector(image, 1)
            if not faces:
                continue
            chip = dlib.get_face_chip(image, predictor(image, faces[0]), 150, 0.25)
            chips.append(chip)
            descriptors.append(np.array(recogniser.compute_face_descriptor(chip), dtype=np.float32))
    assert len(chips) >= 8, f"dlib found faces in only {len(chips)} fixture images"
    return np.stack(chips), np.stack(descriptors)


def to_input(chips: np.ndarray) -> torch.Tensor:
    """uint8 NHWC RGB chips -> the contract's normalised NCHW float32 tensor."""
    mean = np.float32(CONTRACT["mean"])
    std = np.float32(CONTRACT["std"])
    x = (chips.astype(np.float32) - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def embed(model: DlibResNet, chips: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(to_input(chips)).numpy()


def test_matches_dlib_descriptors(model, reference):
    chips, expected = reference
    got = embed(model, chips)
    assert got.shape == (len(chips), 128)
    worst = float(np.abs(got - expected).max())
    # float32 summation order alone gives ~5e-7; far tighter than the 1e-3 budget
    # because leaving out the tiny conv biases still stays under 1e-3 (2.4e-4)
    assert worst < 1e-5, f"max abs difference to dlib {worst:.3g} over {len(chips)} faces"


def test_descriptors_separate_people(model, reference):
    # guards the comparison above against a degenerate reference (e.g. all-zero chips)
    got = embed(model, reference[0])
    norms = np.linalg.norm(got, axis=1)
    assert norms.min() > 1.0
    distances = np.linalg.norm(got[:, None] - got[None], axis=-1)
    assert distances[np.triu_indices(len(got), 1)].max() > CONTRACT["threshold"]


def test_module_shape_and_size(model):
    assert sum(p.numel() for p in model.parameters()) == RESNET_PARAMS
    assert not model.training
    assert model(torch.zeros(2, 3, 150, 150)).shape == (2, 128)


def test_contract_round_trips_file_values(model_sources):
    net = read_face_resnet(model_sources["dlib_resnet"])
    np.testing.assert_array_equal(np.float32(CONTRACT["mean"]), np.float32(net.input_mean))
    assert np.float32(CONTRACT["threshold"]) == np.float32(net.loss_threshold)
    assert CONTRACT["size"] == list(net.input_size)


def test_file_disagreeing_with_contract_is_refused(model_sources):
    net = read_face_resnet(model_sources["dlib_resnet"])
    shifted = dataclasses.replace(net, input_mean=(127.5, 127.5, 127.5))
    with pytest.raises(ModelError, match="mean"):
        from_dlib_net(shifted)
    fewer = dataclasses.replace(net, layers=net.layers[:-1])  # drops the fc record
    with pytest.raises(ModelError, match="weighted layers"):
        from_dlib_net(fewer)


def test_checkpoint_rebuilds_module(model, reference, tmp_path):
    path = save_checkpoint(tmp_path / "dlib_resnet_v1.pt", model)
    rebuilt, contract = load_checkpoint(path)
    assert contract == CONTRACT
    np.testing.assert_array_equal(embed(rebuilt, reference[0][:2]), embed(model, reference[0][:2]))


def test_bad_checkpoints_are_refused(model, tmp_path):
    wrong_arch = dict(checkpoint(model), arch="mobilefacenet")
    torch.save(wrong_arch, tmp_path / "wrong.pt")
    with pytest.raises(ModelError, match="not a dlib_resnet_v1 checkpoint"):
        load_checkpoint(tmp_path / "wrong.pt")
    resized = checkpoint(model)
    resized["contract"]["size"] = [112, 112]
    torch.save(resized, tmp_path / "resized.pt")
    with pytest.raises(ModelError, match="contract size"):
        load_checkpoint(tmp_path / "resized.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot be read"):
        load_checkpoint(tmp_path / "garbage.pt")
    with pytest.raises(ModelError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pt")


def test_onnx_export_matches_pytorch(model, reference, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "dlib_resnet_v1.onnx"
    names = {"input_names": [CONTRACT["input_name"]], "output_names": [CONTRACT["output_name"]]}
    # the TorchScript exporter: the dynamo one needs onnxscript, which is not a dependency
    torch.onnx.export(model, (torch.zeros(1, 3, 150, 150),), str(path), opset_version=17,
                      dynamo=False, dynamic_axes={CONTRACT["input_name"]: {0: "batch"},
                                                  CONTRACT["output_name"]: {0: "batch"}}, **names)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = to_input(reference[0])
    (got,) = session.run(None, {CONTRACT["input_name"]: x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    assert float(np.abs(got - expected).max()) < 1e-4
