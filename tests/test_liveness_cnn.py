"""The cnn liveness cue: its network round-trips from torch to ONNX Runtime with the same logits, the
runtime refuses a network its threshold was not chosen for, and the track judge names it."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from buildkit import constant_cnn

from edge.exc import ManifestMismatch
from edge.liveness import cnn
from edge.liveness.judge import load_liveness
from edge.liveness.model import FORMAT, read_model, write_model
from edge_build.training import liveness_cnn


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A network trained a few epochs on chips where attacks are blurred noise and real faces sharp
    noise (the same after standardisation but for their grain), exported."""
    rng = np.random.default_rng(0)
    noise = rng.normal(128, 40, (80, 64, 64)).astype(np.float32)
    blurred = np.stack([cv2.GaussianBlur(n, (0, 0), 2.0) * 6 - 640 for n in noise[:40]])
    x = np.clip(np.concatenate([blurred, noise[40:]]), 0, 255).round().astype(np.uint8)
    attack = np.r_[np.ones(40, bool), np.zeros(40, bool)]
    net = liveness_cnn.train(x, attack, np.ones(80), epochs=6, seed=0, echo=lambda text: None)
    folder = tmp_path_factory.mktemp("cnn")
    path = liveness_cnn.export(net, folder / cnn.FILE_NAME)
    entry = liveness_cnn.model_entry(path, 0.0)
    return net, path, entry, x


def test_onnx_runtime_gives_the_trained_networks_logits(trained):
    net, path, entry, x = trained
    network = cnn.Network(path, entry)
    torch_logits = liveness_cnn.scores(net, x)
    assert np.abs(network.logits(x) - torch_logits).max() < 1e-4
    assert network.attack_score(x[0]) == pytest.approx(float(torch_logits[0]), abs=1e-4)
    # it learned something: attacks score above real chips
    assert torch_logits[:40].min() > torch_logits[40:].max()


def test_a_changed_or_missing_network_is_refused_with_what_to_do(trained, tmp_path):
    _, path, entry, _ = trained
    changed = tmp_path / cnn.FILE_NAME
    changed.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ManifestMismatch, match="SHA-256 differs.*train again"):
        cnn.Network(changed, entry)
    with pytest.raises(ManifestMismatch, match="missing.*train liveness --cnn"):
        cnn.Network(tmp_path / "gone.onnx", entry)


@pytest.mark.parametrize("change, message", [({"file": "../liveness-cnn.onnx"}, "beside the model"),
                                             ({"sha256": "abc"}, "SHA-256"),
                                             ({"output": "logits"}, "this runtime feeds"),
                                             ({"threshold": None}, "states no threshold")])
def test_the_model_file_states_the_networks_contract(trained, tmp_path, change, message):
    _, _, entry, _ = trained
    model = {"format": FORMAT, "cues": {"cnn": {**entry, **change}}}
    (tmp_path / "liveness.json").write_text(json.dumps(model))
    with pytest.raises(ManifestMismatch, match=message):
        read_model(tmp_path / "liveness.json")


def test_chips_are_standardised_per_chip_so_gain_and_offset_do_not_matter(trained):
    _, path, entry, x = trained
    network = cnn.Network(path, entry)
    brighter = np.clip(x[40:].astype(np.float32) * 0.5 + 60, 0, 255).round().astype(np.uint8)
    original = network.logits(x[40:])
    assert np.abs(network.logits(brighter) - original).max() < 0.05 * np.abs(original).max() + 0.05


@pytest.mark.parametrize("logit, refused", [(20.0, True), (-20.0, False)])
def test_the_track_judge_refuses_by_the_cnn_cue_and_names_it(tmp_path, face_images, logit, refused):
    from edge.pipeline import FacePipeline
    from edge.vision.image import load_image

    models = tmp_path / "models"
    models.mkdir()
    entry = constant_cnn(models, logit)
    write_model({"format": FORMAT, "window": 2, "cues": {"cnn": entry}}, models / "liveness.json")
    liveness = load_liveness("auto", models_dir=models)
    assert liveness.cues == ("cnn",)
    assert any(line.startswith("cnn: attack logit >= 0") for line in liveness.describe())
    image = load_image(face_images["Colin_Powell"][0])
    main = FacePipeline.load(flip=False, threads=1).main_face(image)
    judge = liveness.new_track()
    first, second = judge.add(image, main), judge.add(image, main)
    assert first.live is False and first.scores["cnn"] == pytest.approx(logit, abs=1e-4)
    assert second.live is (not refused)
    assert second.refused_by == ("cnn" if refused else None)


def test_an_ensemble_is_the_mean_of_its_members_and_exports_as_one_network(trained, tmp_path):
    """--cnn-members: networks from different seeds answer as one, the mean of their logits, through the
    runtime's unchanged contract."""
    _, _, _, x = trained
    attack = np.r_[np.ones(40, bool), np.zeros(40, bool)]
    ensemble = liveness_cnn.train_members(x, attack, np.ones(80), epochs=2, seed=3, members=3, echo=lambda text: None)
    members = list(ensemble.members)
    assert liveness_cnn.member_seeds(3, 3) == [3, 103, 203] and len(members) == 3
    alone = [liveness_cnn.scores(member, x) for member in members]
    assert np.abs(alone[0] - alone[1]).max() > 1e-3  # each member from its own seed
    assert np.allclose(liveness_cnn.scores(ensemble, x), np.mean(alone, axis=0), atol=1e-5)
    path = liveness_cnn.export(ensemble, tmp_path / cnn.FILE_NAME)
    network = cnn.Network(path, liveness_cnn.model_entry(path, 0.0, members=3))
    assert np.abs(network.logits(x) - np.mean(alone, axis=0)).max() < 1e-4
    single = liveness_cnn.train_members(x, attack, np.ones(80), epochs=2, seed=3, members=1, echo=lambda text: None)
    assert np.allclose(liveness_cnn.scores(single, x), alone[0], atol=1e-6)  # one member: the plain network
    # selftest and `gallery show` say what the cue is
    from edge.liveness.judge import describe_settings
    entry = liveness_cnn.model_entry(path, 0.0, members=3)
    assert describe_settings("cnn", entry).endswith(", the mean of 3 networks)")
    assert "networks" not in describe_settings("cnn", liveness_cnn.model_entry(path, 0.0))
    with pytest.raises(ValueError, match="at least one network"):
        liveness_cnn.train_members(x, attack, np.ones(80), epochs=1, seed=0, members=0)
