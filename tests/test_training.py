"""Siamese training: losses, architectures, trainer, checkpoints through the build step, CLI."""
from __future__ import annotations

import copy
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge.exc import DatasetError, ModelError  # noqa: E402
from edge_build.models import koch, mobilefacenet  # noqa: E402
from edge_build.training import data, losses, siamese  # noqa: E402


# ---------------------------------------------------------------- losses

def test_contrastive_is_zero_for_identical_same_pairs_and_positive_for_close_strangers():
    f = torch.tensor([[0.1, 0.2, 0.3], [1.0, -1.0, 0.5]])
    assert losses.contrastive_loss(f, f.clone(), torch.tensor([True, True])).item() == 0.0
    close = f + 0.05
    d = 0.05 * np.sqrt(3)
    assert losses.contrastive_loss(f, close, torch.tensor([False, False])).item() == pytest.approx((1 - d) ** 2 / 2, rel=1e-5)
    far = f + 10.0
    assert losses.contrastive_loss(f, far, torch.tensor([False, False])).item() == 0.0


def test_batch_hard_picks_farthest_positive_and_nearest_negative():
    # 1-D embeddings so every distance is obvious
    e = torch.tensor([[0.0], [1.0], [3.0], [3.5], [10.0], [4.0]])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    positive, negative = losses.batch_hard(e, labels)
    expected_positive = [3.0, 2.0, 3.0, 6.5, 6.5, 6.0]  # anchor 3 (3.5): farthest of {10, 4} is 10
    expected_negative = [3.5, 2.5, 0.5, 0.5, 7.0, 1.0]  # anchor 2 (3.0): nearest of {3.5, 10, 4} is 3.5
    np.testing.assert_allclose(positive.numpy(), expected_positive, atol=1e-5)
    np.testing.assert_allclose(negative.numpy(), expected_negative, atol=1e-5)
    loss = losses.triplet_batch_hard_loss(e, labels, margin=0.2)
    want = np.maximum(np.array(expected_positive) - np.array(expected_negative) + 0.2, 0).mean()
    assert loss.item() == pytest.approx(want, abs=1e-5)


def test_triplet_loss_is_zero_when_people_are_well_apart():
    e = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.0, 5.1]])
    assert losses.triplet_batch_hard_loss(e, torch.tensor([0, 0, 1, 1])).item() == 0.0


def test_bce_l1_head_outputs_probabilities_and_learns_from_gradients():
    torch.manual_seed(0)
    head = losses.L1Head(8)
    f1, f2 = torch.randn(16, 8) * 10, torch.randn(16, 8) * 10
    p = head(f1, f2)
    assert p.shape == (16,) and bool(((p > 0) & (p < 1)).all())
    same = torch.zeros(16, dtype=torch.bool)
    loss = losses.bce_l1_loss(head, f1, f2, same)
    loss.backward()
    assert head.linear.weight.grad is not None and float(head.linear.weight.grad.abs().sum()) > 0


def test_cosine_loss_zero_for_parallel_same_pairs_positive_for_parallel_strangers():
    f = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    assert losses.cosine_loss(f, 2 * f, torch.tensor([True, True])).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.cosine_loss(f, 2 * f, torch.tensor([False, False]), margin=0.3).item() == pytest.approx(0.7, abs=1e-5)


def test_pair_sampler_is_balanced_and_seeded():
    labels = np.repeat(np.arange(5), 3)
    a = data.sample_pairs(labels, 40, data.epoch_rng(1, 0))
    b = data.sample_pairs(labels, 40, data.epoch_rng(1, 0))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    first, second, same = a
    assert same.sum() == 20
    np.testing.assert_array_equal(labels[first] == labels[second], same)
    assert not np.any(first[same] == second[same])  # a same pair is two different photos


def test_pk_batches_hold_k_faces_of_p_people():
    labels = np.repeat(np.arange(6), [2, 3, 5, 1, 4, 2])
    batches = data.pk_batches(labels, 2, 4, data.epoch_rng(0, 0))
    assert len(batches) == 2  # person 3 has one face: never an anchor's only positive
    for rows in batches:
        people, counts = np.unique(labels[rows], return_counts=True)
        assert len(people) == 2 and set(counts) == {4}


# ---------------------------------------------------------------- architectures

TINY = [
    (koch.KochNet(width=0.125), koch),
    (mobilefacenet.MobileFaceNet(width=0.25, net_input=32), mobilefacenet),
]


@pytest.mark.parametrize("net,module", TINY, ids=["koch", "mobilefacenet"])
def test_architecture_takes_the_150_chip_and_round_trips_through_onnx(net, module, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from edge_build.onnx_export import export_onnx

    contract = module.contract(net)
    net.eval()
    x = torch.randn(3, 3, 150, 150)
    with torch.no_grad():
        want = net(x).numpy()
    assert want.shape == (3, contract["embedding_size"])
    path = export_onnx(net, contract, tmp_path / "net.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["embedding"], {"chip": x.numpy()})[0]
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)


def test_koch_paper_size_has_the_9216_by_4096_fc():
    net = koch.KochNet(width=1.0)
    assert tuple(net.fc.weight.shape) == (4096, 9216)


def test_mobilefacenet_paper_size_is_about_a_million_weights():
    count = sum(p.numel() for p in mobilefacenet.MobileFaceNet().parameters())
    assert 0.8e6 < count < 1.3e6


def test_dlib_finetune_trains_only_the_last_unit_and_fc():
    from edge_build.models import dlib_resnet, finetune

    net = finetune.freeze_all_but_top(dlib_resnet.DlibResNet())
    trainable = {name.split(".")[0] + ("." + name.split(".")[1] if name.startswith("units.") else "")
                 for name, p in net.named_parameters() if p.requires_grad}
    assert trainable == {f"units.{len(net.units) - 1}", "fc"}
    contract = finetune.contract(threshold=0.5)
    assert contract["model"] == "dlib_resnet_v1" and contract["threshold"] == 0.5 and contract["size"] == [150, 150]


# ---------------------------------------------------------------- trainer

@pytest.fixture(scope="module")
def chip_set(pipeline, face_images, tmp_path_factory):
    """The fixture photos as one folder per person, aligned by the real pipeline."""
    root = tmp_path_factory.mktemp("people")
    for person, paths in face_images.items():
        (root / person).mkdir()
        for path in paths:
            shutil.copy(path, root / person / path.name)
    chipper = data.pipeline_chipper(pipeline)
    return data.load_folder(root, tmp_path_factory.mktemp("cache"), chipper=chipper, progress=False)


def tiny_config(**changes) -> siamese.TrainConfig:
    base = dict(arch="mobilefacenet", loss="triplet", epochs=2, batch=16, lr=3e-3, seed=3, threads=1, width=0.25,
                net_input=32, progress=False, threshold_pairs=200)
    return siamese.TrainConfig(**(base | changes))


def fixed_pairs_loss(net, chip_set, contract, config) -> float:
    """Contrastive loss on 200 fixed pairs of the 32 fixture faces, embedded as one batch
    with batch-norm on batch statistics as in training (32 faces are too few for settled
    running statistics)."""
    first, second, same = data.sample_pairs(chip_set.labels, 200, np.random.default_rng(5))
    net = copy.deepcopy(net).train()
    x = data.to_tensor_batch(chip_set.chips, np.arange(len(chip_set)), contract["mean"], contract["std"])
    with torch.no_grad():
        vectors = siamese.unit(net(x), config)
    return losses.contrastive_loss(vectors[first], vectors[second], torch.from_numpy(same)).item()


def test_chip_cache_is_reused_and_keyed_by_the_file_list(chip_set, tmp_path, face_images):
    assert len(chip_set) == 32 and chip_set.chips.shape[1:] == (3, 112, 112) and chip_set.chips.dtype == np.uint8
    root = tmp_path / "people"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    paths = face_images["Colin_Powell"][:2] + face_images["Tony_Blair"][:1]
    for path in paths[:2]:
        shutil.copy(path, root / "a" / path.name)
    shutil.copy(paths[2], root / "b" / paths[2].name)
    calls = []

    def chipper(path):
        calls.append(path)
        return np.full((3, 112, 112), len(calls), np.uint8)

    data.load_folder(root, tmp_path / "cache", chipper=chipper, progress=False)
    again = data.load_folder(root, tmp_path / "cache", chipper=chipper, progress=False)
    assert len(calls) == 3 and len(again) == 3  # second load came from the cache
    shutil.copy(paths[2], root / "b" / "extra.jpg")
    data.load_folder(root, tmp_path / "cache", chipper=chipper, progress=False)
    assert len(calls) == 3 + 4  # new file list, new cache


def test_two_epochs_lower_the_loss(chip_set, tmp_path):
    config = tiny_config(loss="contrastive", lr=1e-3, pairs_per_epoch=128)
    net, module = siamese.make_net(config)
    contract = module.contract(net)
    before = fixed_pairs_loss(net, chip_set, contract, config)
    result = siamese.train(chip_set, tmp_path / "run", config, echo=lambda m: None)
    after = fixed_pairs_loss(result["net"], chip_set, contract, config)
    assert after < 0.8 * before
    assert len(result["history"]) == 2 and (tmp_path / "run" / "last.pt").exists()


def test_resume_continues_from_the_saved_epoch_with_the_same_draws(chip_set, tmp_path):
    straight = siamese.train(chip_set, tmp_path / "a", tiny_config(loss="bce-l1", arch="koch", width=0.125, batch=8),
                             echo=lambda m: None)
    siamese.train(chip_set, tmp_path / "b", tiny_config(loss="bce-l1", arch="koch", width=0.125, batch=8, epochs=1),
                  echo=lambda m: None)
    said = []
    resumed = siamese.train(chip_set, tmp_path / "b", tiny_config(loss="bce-l1", arch="koch", width=0.125, batch=8),
                            resume=True, echo=said.append)
    assert any("after epoch 1" in line for line in said)
    assert resumed["history"] == straight["history"]
    for key, value in straight["net"].state_dict().items():
        torch.testing.assert_close(resumed["net"].state_dict()[key], value, rtol=0, atol=0)


def test_resume_refuses_a_run_with_other_settings(chip_set, tmp_path):
    from edge.exc import ConfigError

    siamese.train(chip_set, tmp_path / "a", tiny_config(epochs=1), echo=lambda m: None)
    with pytest.raises(ConfigError, match="loss"):
        siamese.train(chip_set, tmp_path / "a", tiny_config(loss="contrastive"), resume=True, echo=lambda m: None)


def test_trained_checkpoint_builds_and_the_manifest_carries_its_contract(chip_set, tmp_path):
    from edge.engines.onnxrt import OnnxRuntimeEngine
    from edge.engines.manifest import read_manifest
    from edge_build.recipe import BuildOptions, build_part
    from edge_build.targets import load_parts

    result = siamese.train(chip_set, tmp_path / "run", tiny_config(epochs=1, loss="cosine"), echo=lambda m: None)
    parts = load_parts("embedding", checkpoint=result["model"])
    assert parts[0].contract == result["contract"]
    built = build_part(parts[0], BuildOptions(skip_gate=True, out_dir=tmp_path / "engines"), echo=lambda m: None)
    manifest = read_manifest(built["engine"])
    contract = result["contract"]
    assert manifest["model"] == "mobilefacenet"
    assert manifest["threshold"] == pytest.approx(contract["threshold"])
    assert manifest["preprocess"]["mean"] == contract["mean"] and manifest["preprocess"]["size"] == [150, 150]
    assert manifest["embedding_normalization"] == "l2"
    assert manifest["outputs"][0]["shape"] == [-1, contract["embedding_size"]]
    # the engine computes what the trained network computes, from the pipeline's 150x150 chip
    chips = np.random.default_rng(0).normal(size=(2, 3, 150, 150)).astype(np.float32)
    engine = OnnxRuntimeEngine(built["engine"], manifest)
    try:
        got = engine.run(chips)[0]
    finally:
        engine.close()
    with torch.no_grad():
        want = parts[0].module(torch.from_numpy(chips)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)


def test_unknown_checkpoint_arch_is_refused_by_the_build(tmp_path):
    from edge_build.targets import load_parts

    torch.save({"arch": "resnet9000", "state_dict": {}}, tmp_path / "x.pt")
    with pytest.raises(ModelError, match="resnet9000"):
        load_parts("embedding", checkpoint=tmp_path / "x.pt")


def test_missing_or_thin_data_gives_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        data.list_people(tmp_path / "absent")
    (tmp_path / "one" / "alice").mkdir(parents=True)
    (tmp_path / "one" / "alice" / "a.jpg").write_bytes(b"x")
    with pytest.raises(DatasetError, match="at least 2 people"):
        data.list_people(tmp_path / "one")


def test_cuda_is_refused_not_downgraded_when_absent():
    from edge.exc import ConfigError

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(ConfigError, match="cuda"):
        siamese.resolve_device("cuda")


# ---------------------------------------------------------------- CLI

def test_train_help_explains_architectures_losses_and_gpu(capsys):
    from edge.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "siamese", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("koch", "mobilefacenet", "dlib-finetune", "batch-hard", "--device", "cuda", "--resume", "model.pt"):
        assert word in text
    with pytest.raises(SystemExit):
        main(["train", "attributes", "--help"])
    assert "--labels" in capsys.readouterr().out


def test_train_cli_missing_data_folder_is_one_clear_error(tmp_path, capsys):
    from edge.cli import main

    code = main(["train", "siamese", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    assert code != 0
    err = capsys.readouterr().err
    assert "nowhere" in err and "no such folder" in err
    assert not (tmp_path / "out").exists()
    tmp_path.joinpath("people").mkdir()
    code = main(["train", "siamese", "--data", str(tmp_path / "people"), "--arch", "koch", "--net-input", "96"])
    assert code != 0 and "--net-input applies to mobilefacenet only" in capsys.readouterr().err
    code = main(["train", "attributes", "--data", str(tmp_path / "nowhere")])
    assert code != 0 and "no such folder" in capsys.readouterr().err
