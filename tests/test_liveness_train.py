"""`edge-verify train liveness` end to end on a tiny folder made here, then `edge-verify liveness`
on its photos and on a clip of a flat attack, judged per track as the daemon judges.

Real frames: the committed LFW fixture photos filling a 320x240 frame. Attack frames: the same
photos mounted as a print or a phone and held up to the camera (edge_build.training.liveness_synth).
Eight people, one group each."""
from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.liveness.model import read_model
from edge_build.training import liveness_synth

SIZE = (320, 240)


@pytest.fixture()
def kiosk_home(fetched_home):
    return fetched_home


def real_frame(path) -> np.ndarray:
    """An LFW photo as a camera frame (BGR, face in the middle)."""
    image = cv2.imread(str(path))
    frame = cv2.resize(image, (SIZE[1], SIZE[1]))
    return cv2.copyMakeBorder(frame, 0, 0, 40, 40, cv2.BORDER_REFLECT)


@pytest.fixture()
def folder(tmp_path, face_images):
    root = tmp_path / "kiosk"
    rng = np.random.default_rng(0)
    for kind in ("real", "fake"):
        (root / kind).mkdir(parents=True)
    for person, paths in sorted(face_images.items()):
        group = person.replace("_", "")
        for number, path in enumerate(paths):
            cv2.imwrite(str(root / "real" / f"{group}_{number:04d}.jpg"), real_frame(path))
            mount = "print" if number % 2 else "phone"
            frames, _ = liveness_synth.flat_attack(cv2.imread(str(path))[..., ::-1], rng, 1, size=SIZE, kind=mount,
                                                   card_width_m=0.15, distance_m=0.25)
            cv2.imwrite(str(root / "fake" / f"{group}_{number:04d}.jpg"), frames[0][..., ::-1])
    return root


def test_train_liveness_writes_a_model_with_held_out_figures_and_the_cli_uses_it(kiosk_home, folder, tmp_path,
                                                                               face_images, capsys):
    code = main(["train", "liveness", "--data", f"{folder}=print", "--augment", "1", "--synthetic-clips", "2",
                 "--motion-wait", "8", "--quiet", "--cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 0, err
    model = read_model(kiosk_home / "models" / "liveness.json")
    assert set(model["cues"]) == {"texture", "context", "motion"}
    texture = model["cues"]["texture"]["validated"]
    # every frame of the 8 groups was judged by cues that had not seen its group
    assert texture["print"]["attacks"] == 32 and texture["real"]["real"] == 32
    assert 0.0 <= texture["real"]["bpcer"] <= 1.0 and "leave one group out over 8 groups" in texture["protocol"]
    assert model["cues"]["motion"]["validated"]["synthetic flat"]["clips"] <= 2
    # the longer wait and the settings chosen for it
    assert {k: model["cues"]["motion"][k] for k in ("min_frames", "max_frames", "hold_pairs", "attack_shift")} == \
        {"min_frames": 8, "max_frames": 12, "hold_pairs": 3, "attack_shift": 0.02}
    assert "held out, texture:" in err and "wrote" in err

    photos = [str(folder / "real" / "ColinPowell_0000.jpg"), str(folder / "fake" / "ColinPowell_0001.jpg")]
    assert main(["liveness", *photos, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [sorted(r["scores"]) for r in results] == [["context", "texture"]] * 2  # no motion on one photo
    assert all(r["face"] for r in results)

    rng = np.random.default_rng(5)
    turn = liveness_synth.Motion(yaw_deg=30, pitch_deg=15, roll_deg=3, shift=0.02, depth=0.02)
    image = cv2.imread(str(face_images["Colin_Powell"][2]))[..., ::-1]
    frames, _ = liveness_synth.flat_attack(image, rng, 12, size=SIZE, kind="phone", motion=turn, card_width_m=0.15,
                                           distance_m=0.25)
    clip = tmp_path / "phone.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, SIZE)
    for frame in frames:
        writer.write(frame[..., ::-1])
    writer.release()
    assert main(["liveness", f"file://{clip}", "--json"]) == 0
    result, = json.loads(capsys.readouterr().out)
    assert result["clip"] == f"file://{clip}" and result["frames"] == 12
    tracks = result["tracks"]
    assert sum(t["frames"] for t in tracks) == result["faces"] > 0
    assert all(set(t["refused_by"]) <= {"texture", "context", "motion"} for t in tracks)
    # judged as the daemon judges: every cue scored on every frame, and no frame live before the
    # window (the model's 5 frames) and the motion cue's minimum are reached
    longest = max(tracks, key=lambda t: t["frames"])
    assert set(longest["last"]["scores"]) == {"texture", "context", "motion"}
    assert longest["last"]["scores"]["motion"] in ("live", "attack", "undecided")
    assert longest["live_frames"] <= longest["frames"] - 4, tracks


@pytest.mark.parametrize("members", [1, 2])
def test_train_liveness_cnn_writes_its_network_beside_the_model_and_the_cli_scores_with_it(kiosk_home, folder,
                                                                                         tmp_path, capsys, members):
    code = main(["train", "liveness", "--data", f"{folder}=print", "--augment", "0", "--synthetic-clips", "0",
                 "--cnn", "--cnn-epochs", "1", "--cnn-augment", "1", "--cnn-folds", "2", "--quiet",
                 "--cnn-members", str(members), "--cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 0, err
    model = read_model(kiosk_home / "models" / "liveness.json")
    entry = model["cues"]["cnn"]
    network = kiosk_home / "models" / entry["file"]
    assert network.is_file() and entry["threshold"] == 0.0
    assert entry["sha256"] == hashlib.sha256(network.read_bytes()).hexdigest()
    # every group was judged by a network that had not seen it: 2 folds of the 8 groups
    validated = entry["validated"]
    assert validated["print"]["attacks"] == 32 and validated["real"]["real"] == 32
    assert "2 folds" in validated["protocol"] and "held out, cnn:" in err
    assert err.count("cnn cue, fold") == 2 and "the shipped network on all 128 chips" in err  # as captured and 1 shift
    # with members, each fold's network and the shipped one are that many networks in one file
    assert entry["members"] == members and err.count(f"network {members} of {members}") == (3 if members > 1 else 0)
    assert ("each judged by the mean of 2 networks fitted without it" if members > 1 else
            "each judged by a network fitted without it") in validated["protocol"]

    photo = str(folder / "fake" / "ColinPowell_0001.jpg")
    assert main(["liveness", photo, "--json"]) == 0
    result, = json.loads(capsys.readouterr().out)
    assert sorted(result["scores"]) == ["cnn", "context", "texture"]
    # the CLI's score is the shipped network's logit for that photo's chip
    from edge.liveness import cnn
    from edge.pipeline import FacePipeline
    from edge.vision.image import load_image
    image = load_image(photo)
    main_face = FacePipeline.load(flip=False, threads=1).main_face(image)
    expected = cnn.Network(network, entry).attack_score(cnn.face_chip(image, main_face.landmarks))
    assert result["scores"]["cnn"] == pytest.approx(expected, abs=1e-5)
    assert result["live"] is (not any(result["scores"][c] >= model["cues"][c]["threshold"]
                                      for c in ("texture", "cnn", "context")))
