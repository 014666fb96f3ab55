"""`edge-verify liveness` and the daemon's liveness hook, on an engine built in the test."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from edge.cli import main
from edge.exc import ManifestMismatch
from edge.liveness import LiveWindow, live_scores, liveness_check, load_attributes_engine
from edge.vision.image import load_image
from edge_build.models import attributes as model


def build_engine(engines, attributes, thresholds, seed=0):
    """A tiny (untrained) attribute model through the real build step; returns (engine path, module)."""
    from edge_build.recipe import BuildOptions, build_part
    from edge_build.targets import attribute_parts

    torch.manual_seed(seed)
    contract = model.make_contract(attributes, thresholds)
    module = model.build_module(contract).eval()
    checkpoint = model.save_checkpoint(engines.parent / "checkpoints" / "attributes.pt", module, contract)
    part, = attribute_parts(checkpoint)
    result = build_part(part, BuildOptions(out_dir=engines, skip_gate=True), echo=lambda line: None)
    return result["engine"], part.module


@pytest.fixture()
def kiosk_home(fetched_home):
    """A models home with the fetched detector and embedding engines (linked) and no attribute engine."""
    return fetched_home / "models" / "engines"


@pytest.fixture()
def no_face(tmp_path):
    path = tmp_path / "wall.jpg"
    cv2.imwrite(str(path), np.full((120, 160, 3), 180, dtype=np.uint8))
    return path


def test_liveness_json_scores_the_primary_face_like_pytorch(kiosk_home, face_images, no_face, pipeline, capsys):
    _, module = build_engine(kiosk_home, ["live", "Smiling"], {"live": 0.5})
    photos = [str(face_images["Tony_Blair"][0]), str(face_images["Serena_Williams"][1])]
    code = main(["liveness", *photos, str(no_face), "--json", "--threads", "1"])
    out = capsys.readouterr().out
    assert code == 0
    results = json.loads(out)
    assert [r["image"] for r in results] == photos + [str(no_face)]
    assert results[2] == {"image": str(no_face), "face": False, "live": False, "refused_by": None,
                          "reason": "no face", "scores": {}}
    for result, photo in zip(results[:2], photos):
        chip = pipeline.main_face(load_image(photo)).chip
        with torch.no_grad():
            want = float(torch.sigmoid(module(torch.from_numpy(chip))[0, 0]))
        # the attributes engine alone: the colour cue, its score the probability of `live`
        assert result["face"] is True and result["scores"]["colour"] == pytest.approx(want, abs=1e-4)
        assert result["live"] == (want >= 0.5)
        assert result["refused_by"] == (None if want >= 0.5 else "colour")


def test_plain_output_and_the_threshold_from_the_manifest(kiosk_home, face_images, capsys):
    build_engine(kiosk_home, ["live"], {"live": 0.0})  # every face is live at threshold 0
    code = main(["liveness", str(face_images["Hugo_Chavez"][0])])
    out = capsys.readouterr().out
    assert code == 0 and "cues: colour" in out and ": LIVE (colour 0." in out


def test_without_an_attributes_engine_the_error_says_how_to_make_one(kiosk_home, face_images, capsys):
    code = main(["liveness", str(face_images["Hugo_Chavez"][0])])
    err = capsys.readouterr().err
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "no fp32 onnxruntime attributes engine" in err and "no liveness model" in err
    assert "edge-verify train liveness" in err
    assert "edge-verify train attributes" in err and "edge-verify build --model attributes" in err


def test_unreadable_photo_fails_before_any_model_is_loaded(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a picture")
    code = main(["liveness", str(bad)])
    assert code != 0 and "bad.jpg" in capsys.readouterr().err


def test_an_engine_without_a_live_head_is_refused(tmp_path):
    engine, _ = build_engine(tmp_path / "engines", ["Smiling"], {"Smiling": 0.5})
    with pytest.raises(ManifestMismatch, match="no 'live' output"):
        load_attributes_engine(path=engine)


def test_liveness_check_averages_frames_and_fails_secure(tmp_path):
    path, module = build_engine(tmp_path / "engines", ["Smiling", "live"], {"live": 0.5, "Smiling": 0.5}, seed=1)
    engine = load_attributes_engine(path=path, threads=1)
    chips = np.random.default_rng(0).normal(0, 0.3, (3, 3, 150, 150)).astype(np.float32)
    with torch.no_grad():
        want = torch.sigmoid(module(torch.from_numpy(chips))[:, 1]).numpy()
    np.testing.assert_allclose(live_scores(engine, chips), want, atol=1e-4)
    score, live = liveness_check(engine, chips)
    assert score == pytest.approx(want.mean(), abs=1e-4) and live == (score >= 0.5)
    assert liveness_check(engine, chips[:0]) == (0.0, False)

    window = LiveWindow(3)
    for value in (0.9, 0.9):
        window.add(value)
    assert not window.live(0.5)  # not full yet: no decision from too few frames
    window.add(0.0)
    assert window.live(0.5) and not window.live(0.7)
    window.forget()
    assert not window.live(0.0)


def attribute_module(contract, models_ready, photos=()):
    """An untrained module of the contract's backbone; the embedding one holds the real dlib
    layers, standardised on ``photos`` (resized whole, as stand-ins for chips) as training does."""
    module = model.build_module(contract).eval()
    if contract["backbone"] == "embedding":
        from edge_build.models import finetune

        net = finetune.pretrained(models_ready / "checkpoints" / "dlib_resnet_v1.pt")
        module.features.load_state_dict(model.features_from(net, model.needs_stage2(contract)).state_dict())
        chips = np.stack([cv2.resize(cv2.imread(str(p))[:, :, ::-1], (150, 150)) for p in photos]).astype(np.float32)
        x = torch.from_numpy(((chips - np.float32(contract["mean"])) / 256).transpose(0, 3, 1, 2).copy())
        with torch.no_grad():
            features = module.features(x)
            module.feature_mean.copy_(features.mean(0))
            module.feature_scale.copy_(features.std(0) + 1e-3)
    return module


@pytest.mark.parametrize("backbone", ["small", "embedding"])
def test_int8_build_of_an_attribute_model_passes_the_gate(tmp_path, face_images, backbone, models_ready):
    from edge_build.recipe import BuildOptions, build_part
    from edge_build.targets import attribute_parts

    calibration, held = tmp_path / "calibration", tmp_path / "held"
    calibration.mkdir()
    held.mkdir()
    for person, paths in sorted(face_images.items()):
        for path in paths:  # one person held out for the gate, the other seven calibrate
            ((held if person == "Tony_Blair" else calibration) / path.name).symlink_to(path)
    torch.manual_seed(0)
    contract = model.make_contract(["live", "Smiling"], {"live": 0.5, "Smiling": 0.5}, backbone=backbone)
    module = attribute_module(contract, models_ready, [p for paths in face_images.values() for p in paths])
    if backbone == "small":
        with torch.no_grad():  # give the head a spread of outputs, as trained weights have
            module.head.weight.mul_(20)
    checkpoint = model.save_checkpoint(tmp_path / "attributes.pt", module, contract)
    part, = attribute_parts(checkpoint)
    options = BuildOptions(precision="int8", out_dir=tmp_path / "engines", calibration=calibration, gate_faces=held,
                           min_faces=16, batch_size=4)
    result = build_part(part, options, echo=lambda line: None)
    manifest = json.loads((tmp_path / "engines" / "attributes.int8.onnx.json").read_text())
    assert result["precision"] == "int8" and manifest["accuracy_gate"]["passed"]
    assert manifest["calibration"] is not None and manifest["accuracy_gate"]["faces"] == 4
    assert manifest["attributes"] == ["live", "Smiling"] and manifest["thresholds"]["live"] == 0.5
    assert manifest["backbone"] == backbone
    shutil.rmtree(tmp_path / "engines")
