"""TensorRT on a real GPU (Jetson): build, serialise, load, run, calibrate.

Skipped where TensorRT or pycuda is missing (CI and any x86 machine without
JetPack): TensorRT for Jetson comes only with JetPack, pycuda is built on the device.
"""
from __future__ import annotations

import pytest

try:
    import pycuda.driver  # noqa: F401
    import tensorrt  # noqa: F401
except ImportError:
    pytest.skip("TensorRT is not installable here (JetPack only)", allow_module_level=True)

from buildkit import FACES, TINY_CONTRACT, link_photos, photo_batch, photo_inputs, tiny_net
from edge.engines import load_engine
from edge.engines.manifest import read_manifest
from edge_build.gate import cosine_rows, torch_embed
from edge_build.recipe import BuildOptions, Injected, build_part
from edge_build.targets import Part

pytestmark = pytest.mark.gpu


def build(tmp_path, **options):
    photos = sorted(FACES.glob("*.jpg"))
    settings = dict(backend="tensorrt", out_dir=tmp_path / "engines", gate_faces=link_photos(photos[24:], tmp_path / "held"),
                    batch_size=8, min_faces=8, workspace_mb=256)
    if options.get("precision") == "int8":
        settings["calibration"] = link_photos(photos[:24], tmp_path / "cal")
    settings.update(options)
    part = Part("tiny", tiny_net(), dict(TINY_CONTRACT), FACES, "0" * 64)
    return part, build_part(part, BuildOptions(**settings), Injected(faces_from_folder=photo_inputs), echo=print)


@pytest.mark.parametrize("precision, int8_method", [("fp32", None), ("fp16", None), ("int8", "explicit"), ("int8", "calibrator")])
def test_build_load_and_run(tmp_path, precision, int8_method):
    part, result = build(tmp_path, precision=precision, int8_method=int8_method)
    manifest = read_manifest(result["engine"])
    assert manifest["device"]["compute_capability"] and manifest["backend"] == "tensorrt"
    engine = load_engine(result["engine"])
    x = photo_batch(sorted(FACES.glob("*.jpg"))[:5])
    got = engine.run(x)[0]
    assert cosine_rows(torch_embed(part.module)(x), got).mean() > 0.99
    engine.close()


def test_calibrator_writes_a_reusable_cache(tmp_path):
    build(tmp_path, precision="int8", int8_method="calibrator")
    caches = list((tmp_path / "engines" / "calibration-cache").glob("*.cache"))
    assert len(caches) == 1 and caches[0].read_bytes().startswith(b"TRT-")
