"""The attribute model: contract, checkpoints, labels, subject split, metrics, a tiny training run."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edge.exc import ConfigError, ModelError
from edge_build.models import attributes as model
from edge_build.training import attribute_cnn as cnn
from edge_build.training import attribute_data
from edge_build.training import attribute_metrics as metrics
from edge_build.training import attributes as training


@pytest.mark.parametrize("backbone", model.BACKBONES)
def test_forward_gives_one_logit_per_attribute_and_the_checkpoint_round_trips(tmp_path, backbone):
    contract = model.make_contract(["live", "Smiling", "Eyeglasses"], {"live": 0.7}, backbone=backbone)
    module = model.build_module(contract).eval()
    x = torch.randn(2, 3, 150, 150)
    with torch.no_grad():
        before = module(x)
    assert before.shape == (2, 3)
    path = model.save_checkpoint(tmp_path / "a.pt", module, contract)
    loaded, loaded_contract = model.load_checkpoint(path)
    with torch.no_grad():
        assert torch.allclose(loaded(x), before)
    assert loaded_contract == contract
    assert loaded_contract["thresholds"] == {"live": 0.7, "Smiling": 0.5, "Eyeglasses": 0.5}
    assert loaded_contract["embedding_size"] == 3 and loaded_contract["output"] == "logits"
    assert loaded_contract["backbone"] == backbone


def test_checkpoints_from_before_the_backbone_field_load_as_the_small_cnn(tmp_path):
    contract = model.make_contract(["live"])
    del contract["backbone"]
    module = model.AttributeNet(1)
    torch.save({"arch": model.ARCH, "contract": contract, "state_dict": module.state_dict()}, tmp_path / "old.pt")
    loaded, loaded_contract = model.load_checkpoint(tmp_path / "old.pt")
    assert isinstance(loaded, model.AttributeNet) and loaded_contract["backbone"] == "small"
    with pytest.raises(ModelError, match="unknown attribute backbone"):
        model.make_contract(["live"], backbone="resnet")


def test_checkpoints_of_other_models_are_refused(tmp_path):
    torch.save({"arch": "something_else", "state_dict": {}}, tmp_path / "x.pt")
    with pytest.raises(ModelError, match="not a attributes_v1 checkpoint"):
        model.load_checkpoint(tmp_path / "x.pt")
    with pytest.raises(ModelError, match="does not exist"):
        model.load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ModelError, match="repeat"):
        model.make_contract(["live", "live"])


def test_celeba_and_csv_label_files(tmp_path):
    celeba = tmp_path / "list_attr.txt"
    celeba.write_text("2\nSmiling Eyeglasses\n000001.jpg  1 -1\n000002.jpg -1  1\n")
    assert attribute_data.read_labels(celeba) == (["Smiling", "Eyeglasses"], {"000001.jpg": [1, -1], "000002.jpg": [-1, 1]})
    plain = tmp_path / "labels.csv"
    plain.write_text("image,live,Smiling\na.jpg,1,0\nb.jpg,-1,1\n")
    assert attribute_data.read_labels(plain) == (["live", "Smiling"], {"a.jpg": [1, 0], "b.jpg": [-1, 1]})
    plain.write_text("image,live\na.jpg,2\n")
    with pytest.raises(ConfigError, match="line 2: labels must be -1, 0 or 1"):
        attribute_data.read_labels(plain)


def test_nuaa_layout_gives_live_labels(tmp_path):
    for folder, name in (("real", "0001_00_00_01_0.jpg"), ("fake", "0002_01_00_01_5.jpg")):
        (tmp_path / folder / name[:4]).mkdir(parents=True)
        (tmp_path / folder / name[:4] / name).write_bytes(b"x")
    data = attribute_data.load_dataset(tmp_path)
    assert data.attributes == ["live"]
    assert data.labels.tolist() == [[1], [-1]] and data.subjects == ["0001", "0002"]
    with pytest.raises(ConfigError, match="--labels"):
        attribute_data.load_dataset(tmp_path / "real")


def test_subject_split_never_puts_one_subject_on_two_sides():
    subjects = [f"{s:04d}" for s in range(1, 10) for _ in range(5)]
    split = attribute_data.split_subjects(subjects)
    assert split == {"fit": ["0001", "0002", "0003", "0004"], "dev": ["0005", "0006"], "test": ["0007", "0008", "0009"]}
    parts = {name: set(attribute_data.indices_for(subjects, ids)) for name, ids in split.items()}
    assert parts["fit"].isdisjoint(parts["dev"]) and parts["fit"].isdisjoint(parts["test"]) and parts["dev"].isdisjoint(parts["test"])
    assert set().union(*parts.values()) == set(range(len(subjects)))
    for name, indices in parts.items():
        assert {subjects[i] for i in indices} == set(split[name])
    assert attribute_data.split_subjects(["b", "a", "c"]) == {"fit": ["a"], "dev": ["b"], "test": ["c"]}
    folds = [attribute_data.split_subjects(subjects, fold=f) for f in range(3)]
    assert folds[1] == {"fit": ["0001", "0007", "0008", "0009"], "dev": ["0002", "0003"], "test": ["0004", "0005", "0006"]}
    assert sorted(s for split in folds for s in split["test"]) == sorted(set(subjects))  # each tested once
    for split in folds:
        assert sorted(split["fit"] + split["dev"] + split["test"]) == sorted(set(subjects))
    with pytest.raises(ConfigError, match="at least 3 subjects"):
        attribute_data.split_subjects(["a", "b", "a"])


def test_apcer_bpcer_and_the_equal_error_threshold():
    scores = [0.9, 0.8, 0.3, 0.1, 0.6]
    live = [True, True, True, False, False]
    assert metrics.apcer_bpcer(scores, live, 0.5) == (0.5, pytest.approx(1 / 3))
    assert metrics.apcer_bpcer(scores, live, 0.95) == (0.0, 1.0)
    assert metrics.apcer_bpcer(scores, live, 0.0) == (1.0, 0.0)
    threshold = metrics.eer_threshold([0.9, 0.8, 0.7, 0.2, 0.1], [True, True, True, False, False])
    assert 0.2 < threshold < 0.7 and threshold == pytest.approx(0.45)
    with pytest.raises(ConfigError, match="both classes"):
        metrics.eer_threshold([0.1, 0.2], [True, True])


def test_every_attribute_threshold_is_its_equal_error_rate():
    labels = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1], [0, 1]])
    scores = np.array([[0.9, 0.8], [0.8, 0.3], [0.2, 0.7], [0.1, 0.2], [0.5, 0.9]])
    chosen = metrics.choose_thresholds(scores, labels, ["live", "Smiling"])
    assert 0.2 < chosen["live"] < 0.8 and 0.3 < chosen["Smiling"] < 0.7
    for k, name in enumerate(["live", "Smiling"]):
        known = labels[:, k] != 0
        assert metrics.apcer_bpcer(scores[known, k], labels[known, k] > 0, chosen[name]) == (0.0, 0.0)
    assert metrics.choose_thresholds(scores, np.ones_like(labels), ["live", "Smiling"]) == {"live": 0.5, "Smiling": 0.5}


def test_evaluate_reports_accuracy_and_spoof_errors():
    probabilities = np.array([[0.9, 0.2], [0.4, 0.8], [0.2, 0.5], [0.7, 0.1]])
    labels = np.array([[1, -1], [1, 1], [-1, 0], [-1, -1]])
    figures = metrics.evaluate(probabilities, labels, ["live", "Smiling"], {"live": 0.5, "Smiling": 0.5})
    assert figures["live"] == {"n": 4, "accuracy": 0.5, "apcer": 0.5, "bpcer": 0.5, "attacks": 2, "real": 2}
    assert figures["Smiling"] == {"n": 3, "accuracy": 1.0}


def fake_nuaa(root, subjects=6, frames=4):
    """A NUAA-style folder of empty files (chips come from fake_chips)."""
    for folder in ("real", "fake"):
        for s in range(1, subjects + 1):
            (root / folder / f"{s:04d}").mkdir(parents=True)
            for i in range(frames):
                (root / folder / f"{s:04d}" / f"{s:04d}_{'00' if i % 2 else '01'}_00_01_{i}.jpg").write_bytes(b"x")
    return root


def fake_chips(paths, pipeline=None, progress=True):
    """Real faces as sharp texture, prints as flat patches; the last photo has no face."""
    rng = np.random.default_rng(0)
    chips = np.empty((len(paths), 150, 150, 3), dtype=np.uint8)
    for index, path in enumerate(paths):
        texture = rng.integers(0, 256, (150, 150, 3)) if "real" in path.parts else np.full((150, 150, 3), 120)
        chips[index] = texture
    found = np.ones(len(paths), dtype=bool)
    found[-1] = False
    return chips, found


def test_tiny_training_lowers_the_loss_and_resumes(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(attribute_data, "compute_chips", lambda *a, **k: calls.append(1) or fake_chips(*a, **k))
    out = tmp_path / "ckpt" / "attributes.pt"
    config = training.AttributeConfig(data=fake_nuaa(tmp_path / "data"), labels=None, out=out, epochs=2, batch=8, seed=3,
                                      resume=False, backbone="small", threads=1, cache=tmp_path / "cache", progress=False)
    lines = []
    validation = training.train(config, echo=lines.append)
    state = torch.load(cnn.resume_path(out), weights_only=False)
    losses = [entry["loss"] for entry in state["history"]]
    assert state["epoch"] == 2 and len(losses) == 2 and losses[1] < losses[0]
    assert validation["split"]["test"] == ["0005", "0006"] and validation["faceless_photos"] == 1
    assert any("47 with a face (1 without" in line for line in lines)
    module, contract = model.load_checkpoint(out)
    assert contract["attributes"] == ["live"] and 0 < contract["thresholds"]["live"] < 1
    assert set(contract["validation"]["test"]["live"]) >= {"apcer", "bpcer", "accuracy"}

    config.epochs, config.resume = 3, True
    assert training.run(config, echo=lines.append) == 0
    state = torch.load(cnn.resume_path(out), weights_only=False)
    assert state["epoch"] == 3 and [e["epoch"] for e in state["history"]] == [1, 2, 3]
    assert any("resuming" in line and "at epoch 3" in line for line in lines)
    assert calls == [1]  # the chips were cached after the first run


def test_resume_refuses_a_changed_dataset(tmp_path, monkeypatch):
    monkeypatch.setattr(attribute_data, "compute_chips", fake_chips)
    out = tmp_path / "attributes.pt"
    config = training.AttributeConfig(data=fake_nuaa(tmp_path / "data"), labels=None, out=out, epochs=1, batch=16, seed=0,
                                      resume=False, backbone="small", threads=1, cache=tmp_path / "cache", progress=False)
    training.train(config, echo=lambda line: None)
    config.data, config.resume, config.epochs = fake_nuaa(tmp_path / "more", subjects=9), True, 2
    with pytest.raises(ConfigError, match="another subject split"):
        training.train(config, echo=lambda line: None)
    config.backbone = "resnet"
    with pytest.raises(ConfigError, match="unknown backbone"):
        training.train(config, echo=lambda line: None)


def test_train_attributes_command_writes_into_the_out_folder(tmp_path, monkeypatch, capsys):
    from edge.cli import main

    monkeypatch.setattr(attribute_data, "compute_chips", fake_chips)
    monkeypatch.setenv("EDGE_VERIFY_HOME", str(tmp_path / "home"))  # the chip cache goes here
    code = main(["train", "attributes", "--data", str(fake_nuaa(tmp_path / "data")), "--out", str(tmp_path / "out"),
                 "--backbone", "small", "--epochs", "1", "--batch", "16", "--threads", "1", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    _, contract = model.load_checkpoint(tmp_path / "out" / "attributes.pt")
    assert contract["validation"]["epochs"] == 1
    assert f"--checkpoint {tmp_path / 'out' / 'attributes.pt'}" in out
