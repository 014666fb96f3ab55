"""Calibration sets: listing, hashing, batching, and the errors a user can meet."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from buildkit import FACES, TINY_CONTRACT, link_photos, photo_inputs, tiny_net
from edge.exc import CalibrationError, GateFailed, ImageError
from edge_build.gate import GateLimits
from edge_build.recipe import BuildOptions, Injected, build_part
from edge_build.targets import Part
from edge_calibration.lfw_default_set import default_set, held_out_set
from edge_calibration.sets import (SmallCalibrationSet, calibration_set, check_disjoint, hash_images, list_images,
                                   split_folder)

CAUSES = ("empty", "extension", "unreadable", "no face", "batch size")


def copy_photos(folder, count=12):
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(FACES.glob("*.jpg"))[:count]:
        shutil.copy(path, folder / path.name)
    return folder


def no_faces(folder):
    return iter(())


def test_empty_folder_lists_the_likely_causes(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError) as caught:
        calibration_set(tmp_path / "empty", photo_inputs)
    for cause in CAUSES:
        assert cause in str(caught.value)


def test_wrong_extension_is_reported(tmp_path):
    folder = tmp_path / "webp"
    folder.mkdir()
    (folder / "a.webp").write_bytes(b"x")
    (folder / "b.tiff").write_bytes(b"x")
    with pytest.raises(CalibrationError, match=r"2 files, extensions \.tiff, \.webp"):
        calibration_set(folder, photo_inputs)


def test_missing_folder(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        calibration_set(tmp_path / "nope", photo_inputs)


def test_no_face_found_lists_the_causes(tmp_path):
    calibration = calibration_set(copy_photos(tmp_path / "photos", 4), no_faces, batch_size=2)
    with pytest.raises(CalibrationError, match="4 images, no face found") as caught:
        list(calibration)
    for cause in CAUSES:
        assert cause in str(caught.value)


def test_unreadable_image_error_becomes_a_calibration_error(tmp_path):
    def broken(folder):
        raise ImageError(f"{folder}/x.jpg: not a readable image")
        yield  # pragma: no cover

    calibration = calibration_set(copy_photos(tmp_path / "photos", 2), broken, batch_size=1)
    with pytest.raises(CalibrationError, match="not a readable image.*Likely causes"):
        list(calibration)


def test_fewer_faces_than_a_batch_is_an_error(tmp_path):
    calibration = calibration_set(copy_photos(tmp_path / "photos", 5), photo_inputs, batch_size=8)
    with pytest.raises(CalibrationError, match="5 faces, fewer than one batch of 8"):
        list(calibration)


def test_batches_are_full_and_small_sets_warn(tmp_path):
    calibration = calibration_set(copy_photos(tmp_path / "photos", 12), photo_inputs, batch_size=5, min_faces=300)
    with pytest.warns(SmallCalibrationSet, match="12 faces; at least 300"):
        batches = list(calibration)
    assert [b.shape for b in batches] == [(5, 3, 24, 24)] * 2
    assert batches[0].dtype == np.float32
    assert (calibration.faces, calibration.dropped) == (12, 2)
    summary = calibration.summary("minmax")
    assert summary["images"] == 12 and summary["faces"] == 12 and summary["faces_used"] == 10
    with pytest.raises(CalibrationError, match="read once"):
        list(calibration)


def test_set_hash_covers_names_and_contents(tmp_path):
    folder = copy_photos(tmp_path / "photos", 3)
    first, digests = hash_images(folder, list_images(folder))
    assert hash_images(folder, list_images(folder))[0] == first and len(digests) == 3
    target = sorted(folder.iterdir())[0]
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF
    target.write_bytes(bytes(data))
    assert hash_images(folder, list_images(folder))[0] != first
    target.rename(folder / "renamed.JPG")  # upper-case extensions count too
    assert len(list_images(folder)) == 3


def test_split_is_disjoint_and_deterministic(tmp_path):
    source = copy_photos(tmp_path / "photos", 32)
    calibrate, held = split_folder(source, tmp_path / "a", fraction=0.25)
    again, held_again = split_folder(source, tmp_path / "b", fraction=0.25)
    names = lambda folder: sorted(p.name for p in folder.iterdir())  # noqa: E731
    assert names(held) == names(held_again) and names(calibrate) == names(again)
    assert not set(names(held)) & set(names(calibrate))
    assert len(names(held)) + len(names(calibrate)) == 32 and 0 < len(names(held)) < 32


def test_held_out_faces_may_not_be_calibration_faces(tmp_path):
    photos = sorted(FACES.glob("*.jpg"))
    calibration = calibration_set(link_photos(photos[:10], tmp_path / "cal"), photo_inputs)
    check_disjoint(calibration, link_photos(photos[10:14], tmp_path / "held"))
    copy = tmp_path / "overlap"
    copy.mkdir()
    shutil.copy(photos[3], copy / "renamed.jpg")  # same content under another name
    with pytest.raises(CalibrationError, match="1 held-out images .* also in the calibration set"):
        check_disjoint(calibration, copy)


def test_failed_gate_installs_nothing_and_keeps_the_figures(tmp_path):
    photos = sorted(FACES.glob("*.jpg"))
    options = BuildOptions(precision="fp32", out_dir=tmp_path / "engines", gate_faces=link_photos(photos[:6], tmp_path / "held"),
                           limits=GateLimits(min_cosine=1.5))
    part = Part("tiny", tiny_net(), dict(TINY_CONTRACT), FACES, "0" * 64)
    with pytest.raises(GateFailed, match="mean cosine") as caught:
        build_part(part, options, Injected(faces_from_folder=photo_inputs), echo=lambda line: None)
    assert caught.value.figures["faces"] == 6 and caught.value.figures["passed"] is False
    assert not (tmp_path / "engines" / "tiny.fp32.onnx").exists()
    assert (tmp_path / "engines" / "tiny.fp32.onnx.rejected.json").exists()
    assert [p.name for p in (tmp_path / "engines").iterdir()] == ["tiny.fp32.onnx.rejected.json"]


def write_pairs(path, header, lines):
    path.write_text(header + "\n" + "\n".join("\t".join(map(str, line)) for line in lines) + "\n")


def test_lfw_default_set_excludes_everyone_in_any_pairs_file(tmp_path):
    lfw = tmp_path / "lfw"
    people = {"Ann": 2, "Bob": 1, "Cid": 3, "Dee": 1, "Eve": 1}
    for name, count in people.items():
        (lfw / "images" / name).mkdir(parents=True)
        for i in range(1, count + 1):
            (lfw / "images" / name / f"{name}_{i:04d}.jpg").write_bytes(b"jpeg")
    write_pairs(lfw / "pairs.txt", "1\t1", [("Ann", 1, 2), ("Ann", 1, "Bob", 1)])
    write_pairs(lfw / "pairsDevTrain.txt", "1", [("Cid", 1, 2)])
    write_pairs(lfw / "pairsDevTest.txt", "1", [("Cid", 1, "Dee", 1)])
    assert default_set(lfw)[0] == ["Eve"]
    names, images = default_set(lfw, allow_view1=True)
    assert names == ["Cid", "Dee", "Eve"] and len(images) == 5
    assert [p.name for p in held_out_set(lfw, 5)] == ["Ann_0001.jpg", "Bob_0001.jpg"]
