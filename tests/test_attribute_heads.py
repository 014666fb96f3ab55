"""Attribute heads on the embedding network's stem: folds, fits, leak-free validation, training, export."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edge.exc import ConfigError, ModelError
from edge_build.models import attributes as model
from edge_build.models import dlib_resnet
from edge_build.training import attribute_data
from edge_build.training import attribute_heads as heads

from test_attributes import fake_chips, fake_nuaa


def test_subjects_are_dealt_into_folds_whole():
    subjects = [f"{s:04d}" for s in range(1, 10) for _ in range(3)]
    folds = heads.subject_folds(subjects)
    assert len(set(folds)) == 9  # fewer subjects than folds: leave one subject out
    for subject in set(subjects):
        assert len({f for f, s in zip(folds, subjects) if s == subject}) == 1
    many = [f"p{i:03d}" for i in range(25) for _ in range(2)]
    folds = heads.subject_folds(many, folds=4)
    assert sorted(set(folds)) == [0, 1, 2, 3] and np.bincount(folds).tolist() == [14, 12, 12, 12]
    with pytest.raises(ConfigError, match="at least 3 subjects"):
        heads.subject_folds(["a", "b", "a"])
    with pytest.raises(ConfigError, match="--folds must be at least 3"):
        heads.subject_folds(subjects, folds=2)


def test_logistic_head_separates_a_separable_set_and_needs_both_classes():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 5)) * [1, 10, 0.1, 1, 1] + [0, 50, 3, 0, 0]
    positive = features[:, 2] > 3
    weights, bias = heads.fit_logistic(features, positive)
    assert np.mean((heads.probabilities(features, weights, bias) >= 0.5) == positive) >= 0.95  # regularised: the margin is soft
    assert np.argmax(np.abs(weights) * features.std(axis=0)) == 2  # it leans on the informative feature
    with pytest.raises(ConfigError, match="with and without the attribute"):
        heads.fit_logistic(features, np.ones(200, dtype=bool))


def test_the_feature_taps_are_the_embedding_networks_own_layers():
    torch.manual_seed(0)
    net = dlib_resnet.DlibResNet().eval()
    with torch.no_grad():
        net.affine.gamma.uniform_(0.5, 2)
        net.affine.beta.uniform_(-0.5, 0.5)
    x = torch.randn(3, 3, 150, 150)
    with torch.no_grad():
        maps = torch.nn.functional.max_pool2d(net.affine(net.conv(x)).relu(), 3, 2)
        deeper = net.units[:7](maps)
        spread = lambda m: (m.var((2, 3), correction=0) + 1e-6).sqrt()  # noqa: E731 (the module's guard against 0)
        stem_want = torch.cat([maps.mean((2, 3)), spread(maps)], 1)
        stage2_want = torch.cat([deeper.mean((2, 3)), spread(deeper)], 1)
        stem_only, both = model.features_from(net, deep=False), model.features_from(net, deep=True)
        torch.testing.assert_close(stem_only(x), stem_want, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(both(x), torch.cat([stem_want, stage2_want], 1), atol=1e-5, rtol=1e-4)
    assert maps.shape[1:] == (32, 35, 35) and deeper.shape[1:] == (64, 17, 17)
    assert stem_only.width == 64 and both.width == 192
    assert not any(p.requires_grad for p in both.parameters())


def test_live_reads_the_stem_and_other_attributes_read_stage2():
    contract = model.make_contract(["live", "Eyeglasses"], backbone="embedding")
    assert contract["taps"] == {"live": "stem", "Eyeglasses": "stage2"} and model.needs_stage2(contract)
    live_only = model.make_contract(["live"], backbone="embedding")
    assert not model.needs_stage2(live_only) and model.build_module(live_only).features.units is None
    assert "taps" not in model.make_contract(["live"], backbone="small")
    contract["taps"]["Eyeglasses"] = "stage9"
    with pytest.raises(ModelError, match="no known feature tap .* for Eyeglasses"):
        model.check_contract(contract)


def test_held_out_figures_cannot_come_from_memorising_subjects():
    """Each subject is all real or all attack and its features only say who it is:
    a validation that leaked frames would score 100 %; held-out subjects cannot be guessed."""
    subjects = np.repeat([f"s{i}" for i in range(8)], 20)
    identity = np.eye(8)[np.repeat(np.arange(8), 20)] + np.random.default_rng(1).normal(0, 0.01, (160, 8))
    labels = np.where(np.repeat(np.arange(8), 20) < 4, 1, -1).reshape(-1, 1)
    folds = heads.subject_folds(subjects)
    figures = heads.cross_validate(identity[:, :8], labels, ["live"], subjects, folds, {"live": "stem"}, progress=False)
    assert figures["live"]["accuracy"] <= 0.6
    assert set(figures["live"]["by_subject"]) == {f"s{i}" for i in range(8)}

    rng = np.random.default_rng(2)
    signal = np.c_[labels[:, 0] + rng.normal(0, 0.1, 160), rng.normal(size=(160, 3))]  # a cue every subject shares
    figures = heads.cross_validate(signal, labels, ["live"], subjects, folds, {"live": "stem"}, progress=False)
    live = figures["live"]
    assert live["apcer"] == 0 and live["bpcer"] == 0 and live["attacks"] == 80 and live["real"] == 80


@pytest.fixture()
def random_dlib_home(tmp_path, monkeypatch):
    """A models home whose embedding checkpoint is an untrained DlibResNet (training only reads its stem)."""
    torch.manual_seed(0)
    net = dlib_resnet.DlibResNet()
    dlib_resnet.save_checkpoint(tmp_path / "home" / "models" / "checkpoints" / "dlib_resnet_v1.pt", net)
    monkeypatch.setenv("EDGE_VERIFY_HOME", str(tmp_path / "home"))
    return net


def test_train_attributes_on_the_embedding_stem_validates_by_subject_and_exports(tmp_path, monkeypatch, capsys,
                                                                               random_dlib_home):
    from edge.cli import main
    from edge.engines import load_engine
    from edge_build.recipe import BuildOptions, build_part
    from edge_build.targets import attribute_parts

    monkeypatch.setattr(attribute_data, "compute_chips", fake_chips)
    data = fake_nuaa(tmp_path / "data", subjects=5, frames=6)
    code = main(["train", "attributes", "--data", str(data), "--out", str(tmp_path / "out"), "--threads", "1", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "5 subjects in 5 folds" in out and "59 with a face (1 without" in out
    module, contract = model.load_checkpoint(tmp_path / "out" / "attributes.pt")
    assert isinstance(module, model.EmbeddingAttributes) and contract["backbone"] == "embedding"
    assert module.features.units is None  # a live-only model computes the stem alone
    live = contract["validation"]["test"]["live"]
    assert live["attacks"] == 29 and live["real"] == 30 and live["apcer"] == 0 and live["bpcer"] == 0
    assert sorted(live["by_subject"]) == ["0001", "0002", "0003", "0004", "0005"]
    assert 0 < contract["thresholds"]["live"] < 1
    torch.testing.assert_close(module.features.conv.weight, random_dlib_home.conv.weight)  # the stem, unchanged
    assert main(["train", "attributes", "--data", str(data), "--resume", "--quiet"]) != 0
    assert "--resume applies to --backbone small" in capsys.readouterr().err

    part, = attribute_parts(tmp_path / "out" / "attributes.pt")
    result = build_part(part, BuildOptions(out_dir=tmp_path / "engines", skip_gate=True), echo=lambda line: None)
    engine = load_engine(result["engine"], threads=1)
    chips, _ = fake_chips([data / "real" / "x.jpg", data / "fake" / "y.jpg", data / "real" / "z.jpg"])
    inputs = attribute_data.normalise(chips, contract)
    with torch.no_grad():
        want = module(torch.from_numpy(inputs)).numpy()
    np.testing.assert_allclose(engine.run(inputs)[0], want, atol=1e-4, rtol=1e-4)
    assert engine.manifest["backbone"] == "embedding" and engine.manifest["thresholds"] == contract["thresholds"]
