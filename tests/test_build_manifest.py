"""Manifests: written with every field, read back, and the runtime's refusals."""
from __future__ import annotations

import numpy as np
import pytest

from buildkit import FACES, TINY_CONTRACT, link_photos, load_benchmark, photo_batch, photo_inputs, tiny_net
from edge.engines import load_engine
from edge.engines.manifest import (check_file_hash, check_input_contract, check_runtime, read_manifest)
from edge.exc import ManifestMismatch, PrecisionUnsupported
from edge_build.recipe import BuildOptions, Injected, build_part
from edge_build.targets import Part

FIELDS = {"schema", "name", "model", "source_sha256", "engine_sha256", "inputs", "outputs", "preprocess", "precision",
          "requested_precision", "fallback", "calibration", "backend", "backend_version", "device", "threshold", "metric",
          "accuracy_gate", "built_at", "build_seconds"}
ORIN = {"gpu": "Orin", "compute_capability": "8.7", "source": "pycuda", "dla_core": None}


def tiny_part() -> Part:
    return Part("tiny", tiny_net(), dict(TINY_CONTRACT), FACES, "0" * 64)


def build(tmp_path, **options):
    photos = sorted(FACES.glob("*.jpg"))
    calibration = link_photos(photos[:24], tmp_path / "calibration")
    held = link_photos(photos[24:], tmp_path / "held")
    settings = dict(out_dir=tmp_path / "engines", gate_faces=held, batch_size=8, min_faces=8)
    if options.get("precision") == "int8":
        settings["calibration"] = calibration
    settings.update(options)
    return build_part(tiny_part(), BuildOptions(**settings), Injected(faces_from_folder=photo_inputs), echo=lambda line: None)


@pytest.fixture(scope="module")
def int8_engine(tmp_path_factory):
    return build(tmp_path_factory.mktemp("int8"), precision="int8")


def test_int8_manifest_has_every_field_and_reads_back(int8_engine):
    manifest = read_manifest(int8_engine["engine"])
    assert FIELDS <= set(manifest)
    assert manifest["precision"] == manifest["requested_precision"] == "int8"
    assert manifest["fallback"] is None and manifest["device"] is None
    assert manifest["calibration"]["faces"] == 24 and manifest["calibration"]["images"] == 24
    assert len(manifest["calibration"]["sha256"]) == 64
    assert manifest["inputs"][0] == {"name": "image", "shape": [-1, 3, 24, 24], "dtype": "float32", "layout": "NCHW"}
    assert manifest["outputs"][0]["shape"] == [-1, 16]
    assert manifest["preprocess"]["mean"] == [127.5, 127.5, 127.5]
    assert manifest["accuracy_gate"]["passed"] and manifest["accuracy_gate"]["faces"] == 8
    assert [stage["name"] for stage in manifest["stages"]][:2] == ["export", "quantize"]
    check_file_hash(int8_engine["engine"], manifest)


def test_built_engine_loads_and_runs(int8_engine):
    engine = load_engine(int8_engine["engine"], threads=1)
    out = engine.run(photo_batch(sorted(FACES.glob("*.jpg"))[:3]))[0]
    assert out.shape == (3, 16) and np.isfinite(out).all()


def test_runtime_refuses_an_engine_with_an_edited_byte(tmp_path, int8_engine):
    from shutil import copyfile

    engine = tmp_path / "tiny.int8.onnx"
    copyfile(int8_engine["engine"], engine)
    copyfile(int8_engine["engine"] + ".json", str(engine) + ".json")
    data = bytearray(engine.read_bytes())
    data[len(data) // 2] ^= 0x01
    engine.write_bytes(bytes(data))
    with pytest.raises(ManifestMismatch, match="does not match its manifest"):
        load_engine(engine)


def test_runtime_refuses_another_input_contract(int8_engine):
    manifest = read_manifest(int8_engine["engine"])
    check_input_contract(manifest, {"colour": "RGB", "size": [24, 24]})
    with pytest.raises(ManifestMismatch, match="colour"):
        check_input_contract(manifest, {"colour": "BGR"})
    with pytest.raises(ManifestMismatch, match="size"):
        check_input_contract(manifest, {"size": [150, 150]})


def test_fp16_on_onnxruntime_is_refused(tmp_path):
    with pytest.raises(PrecisionUnsupported, match="no fast FP16"):
        build(tmp_path, precision="fp16")
    assert not (tmp_path / "engines" / "tiny.fp16.onnx").exists()


def test_fp16_fallback_is_recorded(tmp_path):
    result = build(tmp_path, precision="fp16", allow_fallback=True)
    manifest = read_manifest(result["engine"])
    assert result["engine"].endswith("tiny.fp16.onnx")
    assert (manifest["precision"], manifest["requested_precision"]) == ("fp32", "fp16")
    assert "no fast FP16" in manifest["fallback"]


def tensorrt_manifest(**changes) -> dict:
    manifest = {"backend": "tensorrt", "backend_version": "8.5.2.2", "device": dict(ORIN)}
    manifest.update(changes)
    return manifest


def test_tensorrt_version_must_be_exact():
    check_runtime(tensorrt_manifest(), running_version="8.5.2", device=dict(ORIN))
    with pytest.raises(ManifestMismatch, match="TensorRT 8.5.2.2, this device runs TensorRT 8.6.2"):
        check_runtime(tensorrt_manifest(), running_version="8.6.2", device=dict(ORIN))
    with pytest.raises(ManifestMismatch, match="exact release"):
        check_runtime(tensorrt_manifest(backend_version="10.3.0"), running_version="10.3.1", device=dict(ORIN))


def test_tensorrt_gpu_must_match():
    xavier = {"gpu": "Xavier", "compute_capability": "7.2", "source": "pycuda"}
    with pytest.raises(ManifestMismatch, match="compute 8.7.*compute 7.2"):
        check_runtime(tensorrt_manifest(), running_version="8.5.2", device=xavier)
    renamed = dict(ORIN, gpu="Orin (nvgpu) 2")
    with pytest.raises(ManifestMismatch, match="rebuild the engine on this device"):
        check_runtime(tensorrt_manifest(), running_version="8.5.2", device=renamed)
    # Names from different probes are not comparable; the capability still is.
    check_runtime(tensorrt_manifest(), running_version="8.5.2",
                  device={"gpu": "NVIDIA Jetson AGX Orin", "compute_capability": "8.7", "source": "device-tree"})
    with pytest.raises(ManifestMismatch, match="no CUDA GPU"):
        check_runtime(tensorrt_manifest(), running_version="8.5.2", device=None)
    with pytest.raises(ManifestMismatch, match="does not name the GPU"):
        check_runtime(tensorrt_manifest(device=None), running_version="8.5.2", device=dict(ORIN))


@pytest.mark.parametrize("built, running, ok", [
    ("1.32.0", "1.32.0", True), ("1.32.0", "1.32.4", True), ("1.32.0", "1.34.1", True),
    ("1.32.0", "1.31.9", False), ("1.32.0", "2.0.0", False), ("2.1.0", "1.40.0", False),
])
def test_onnxruntime_version_policy(built, running, ok):
    manifest = {"backend": "onnxruntime", "backend_version": built}
    if ok:
        check_runtime(manifest, running_version=running)
    else:
        with pytest.raises(ManifestMismatch, match=f"built with onnxruntime {built}"):
            check_runtime(manifest, running_version=running)


def test_runtime_refuses_an_engine_built_by_a_newer_onnxruntime(tmp_path):
    import json

    result = build(tmp_path, precision="fp32")
    sidecar = tmp_path / "engines" / "tiny.fp32.onnx.json"
    manifest = json.loads(sidecar.read_text())
    manifest["backend_version"] = "1.99.0"
    sidecar.write_text(json.dumps(manifest))
    with pytest.raises(ManifestMismatch, match="onnxruntime 1.99.0"):
        load_engine(result["engine"])


def test_contract_notes_reach_the_manifest_top_level(tmp_path):
    from edge_build.manifests import manifest_for
    from edge_build.onnx_export import export_onnx

    engine = export_onnx(tiny_net(), TINY_CONTRACT, tmp_path / "tiny.onnx")
    contract = dict(TINY_CONTRACT, impostor_tail={"count": 3, "distances": [0.1]}, threshold_source="View 1", precision="x")
    manifest = manifest_for(engine, name="tiny", contract=contract, source_sha256="0" * 64, precision="fp32",
                            requested_precision="fp32", backend="onnxruntime", backend_version="1.32.0")
    assert manifest["impostor_tail"] == {"count": 3, "distances": [0.1]} and manifest["threshold_source"] == "View 1"
    assert manifest["precision"] == "fp32" and manifest["contract_notes"] == {"precision": "x"}
    assert "impostor_tail" not in manifest["preprocess"]


def test_int8_speed_benchmark_runs_both_engines(tmp_path, int8_engine):
    compare = load_benchmark("int8_speed").compare
    fp32 = build(tmp_path, precision="fp32")
    row = compare(fp32["engine"], int8_engine["engine"], threads=1, batch=2, rounds=1, faces=FACES)
    assert set(row) == {"batch", "threads", "ms_fp32", "ms_int8", "speedup"}
    assert row["ms_fp32"] > 0 and row["ms_int8"] > 0
