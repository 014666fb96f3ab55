"""An INT8 build is reproducible: the same calibration photos give the same engine bytes
and the same manifest, apart from when the build ran and how long it took.

Two builds on one machine, from two calibration folders holding the same photos but
made in opposite orders (so the file system lists them differently): a user who
runs the README's commands twice, or on a copy of the set, gets the same engine.
"""
from __future__ import annotations

import hashlib

import pytest

from buildkit import FACES, TINY_CONTRACT, link_photos, photo_inputs, tiny_net
from edge.engines.manifest import read_manifest
from edge_build.recipe import BuildOptions, Injected, build_part
from edge_build.targets import Part

# When and how long: the only manifest fields allowed to differ between two builds.
TIMING_FIELDS = ("built_at", "build_seconds")


def without_timing(manifest: dict) -> dict:
    kept = {key: value for key, value in manifest.items() if key not in TIMING_FIELDS}
    kept["stages"] = [{key: value for key, value in stage.items() if key != "seconds"} for stage in manifest["stages"]]
    return kept


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def two_builds(tmp_path, part_maker, faces_from_folder, method: str) -> list[tuple[str, dict]]:
    photos = sorted(FACES.glob("*.jpg"))
    held = link_photos(photos[24:], tmp_path / "held")
    results = []
    for run, order in enumerate((photos[:24], photos[:24][::-1])):
        calibration = link_photos(order, tmp_path / f"calibration-{run}")
        options = BuildOptions(precision="int8", calibration=calibration, gate_faces=held, out_dir=tmp_path / f"engines-{run}",
                               batch_size=8, min_faces=8, method=method)
        built = build_part(part_maker(), options, Injected(faces_from_folder=faces_from_folder), echo=lambda line: None)
        results.append((sha256(built["engine"]), read_manifest(built["engine"])))
    return results


@pytest.mark.parametrize("method", ["percentile", "minmax", "entropy"])
def test_tiny_net_int8_builds_are_identical(tmp_path, method):
    part = lambda: Part("tiny", tiny_net(), dict(TINY_CONTRACT), FACES, "0" * 64)  # noqa: E731
    (first_hash, first), (second_hash, second) = two_builds(tmp_path, part, photo_inputs, method)
    assert first_hash == second_hash == first["engine_sha256"]
    assert without_timing(first) == without_timing(second)


def test_dlib_resnet_int8_builds_are_identical(tmp_path, model_sources):
    """The real embedding network and the default (percentile) calibration: histograms over 29 layers."""
    from edge_build.models.dlib_resnet import CONTRACT, load_dlib_resnet

    module = load_dlib_resnet(model_sources["dlib_resnet"])
    part = lambda: Part("embedding", module, dict(CONTRACT), model_sources["dlib_resnet"], "1" * 64)  # noqa: E731
    chips = lambda folder: photo_inputs(folder, size=(150, 150), mean=120.0, std=256.0)  # noqa: E731
    (first_hash, first), (second_hash, second) = two_builds(tmp_path, part, chips, "percentile")
    assert first_hash == second_hash
    assert first["calibration"]["sha256"] == second["calibration"]["sha256"]
    assert without_timing(first) == without_timing(second)
    assert first["built_at"] <= second["built_at"]  # the timing fields are there, and only they were set aside
