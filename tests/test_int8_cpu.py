"""An ONNX Runtime INT8 engine is made for the kind of CPU it was built on; the runtime
refuses one whose integer kernel would saturate on this CPU.

Found while reproducing the README's INT8 figures: on an AVX2 machine (no VNNI) the
engine quantized with the VNNI recipe (8-bit weights) gave embeddings up to 0.44 from
the reference on 300 held-out faces (threshold 0.41), the AVX2 recipe's (7-bit) 0.086
(benchmarks/int8_choices.py). Such an engine loaded without a word.
"""
from __future__ import annotations

import pytest

from buildkit import FACES, TINY_CONTRACT, link_photos, photo_inputs, tiny_net
from edge.engines import load_engine
from edge.engines.cpu import cpu_kind, int8_cpu_problem
from edge.engines.manifest import check_runtime, read_manifest
from edge.exc import ManifestMismatch
from edge_build import quantize
from edge_build.recipe import BuildOptions, Injected, build_part
from edge_build.targets import Part


def int8_manifest(**quantization) -> dict:
    recipe = {"target": "onnxruntime", "activations": "uint8", "reduce_range": False, "cpu": "x86-vnni",
              "format": "QDQ", "weights": "int8"} | quantization
    return {"backend": "onnxruntime", "backend_version": "1.32.0", "precision": "int8", "quantization": recipe}


def test_eight_bit_weights_are_refused_on_x86_without_vnni():
    with pytest.raises(ManifestMismatch, match="8-bit weights.*VNNI.*Rebuild the engine on this machine"):
        check_runtime(int8_manifest(), running_version="1.32.0", cpu="x86")


@pytest.mark.parametrize("manifest, cpu", [
    (int8_manifest(), "x86-vnni"),                                  # built for this kind of CPU
    (int8_manifest(reduce_range=True, cpu="x86"), "x86"),           # 7-bit weights cannot saturate
    (int8_manifest(reduce_range=True, cpu="x86"), "x86-vnni"),      # and run anywhere on x86
    (int8_manifest(activations="int8", cpu="arm"), "x86"),          # signed activations: another kernel
    ({"backend": "onnxruntime", "backend_version": "1.32.0", "precision": "fp32", "quantization": None}, "x86"),
])
def test_engines_that_run_as_built_are_accepted(manifest, cpu):
    check_runtime(manifest, running_version="1.32.0", cpu=cpu)
    assert int8_cpu_problem(manifest.get("quantization"), cpu) is None


def test_cpu_kind_reads_the_flags():
    assert cpu_kind("x86_64", {"avx2", "avx512_vnni"}) == "x86-vnni"
    assert cpu_kind("x86_64", {"avx2", "avx_vnni"}) == "x86-vnni"
    assert cpu_kind("x86_64", {"avx2", "avx512bw"}) == "x86"
    assert cpu_kind("aarch64") == "arm"
    assert quantize.cpu_kind is cpu_kind  # the build picks its recipe by the same rule the runtime checks


def test_an_engine_built_for_another_cpu_fails_to_load_here(tmp_path, monkeypatch):
    """Built with the recipe of the CPU kind that this machine is not, it must not load here."""
    here = cpu_kind()
    other = "x86" if here == "x86-vnni" else "x86-vnni"
    if here not in ("x86", "x86-vnni"):
        pytest.skip(f"the saturation rule is for x86 CPUs; this one is {here}")
    monkeypatch.setattr(quantize, "cpu_kind", lambda: "x86-vnni")
    photos = sorted(FACES.glob("*.jpg"))
    options = BuildOptions(precision="int8", calibration=link_photos(photos[:16], tmp_path / "cal"), skip_gate=True,
                           out_dir=tmp_path / "engines", batch_size=8, min_faces=8)
    part = Part("tiny", tiny_net(), dict(TINY_CONTRACT), FACES, "0" * 64)
    engine = build_part(part, options, Injected(faces_from_folder=photo_inputs), echo=lambda line: None)["engine"]
    assert read_manifest(engine)["quantization"]["reduce_range"] is False
    if here == "x86":
        with pytest.raises(ManifestMismatch, match="Rebuild the engine on this machine"):
            load_engine(engine)
    else:
        load_engine(engine).close()
        assert int8_cpu_problem(read_manifest(engine)["quantization"], other) is not None
