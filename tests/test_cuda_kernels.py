"""The build step's kernel compile: a fatbin for the Jetson GPUs, with nvcc, no GPU needed.

Compiles for real where nvcc exists (skips, saying so, where it does not). CUDA 13
dropped Volta (sm_72, Xavier): with such an nvcc the sm_72 case skips with that
reason and the fatbin records sm_72 as left out; JetPack's own nvcc (11.4 on
JetPack 5, 12.x on JetPack 6) builds both. On a machine with an NVIDIA GPU and
pycuda, the last test also runs the compiled kernel against the CPU reference.
"""
from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from edge.exc import BuildError, EngineError
from edge.vision import align
from edge.vision.cuda_preprocess import KERNEL_IMAGE, CudaPreprocessor, kernel_source_sha256, read_kernel_image
from edge_build.backends.tensorrt.kernels import JETSON_ARCHS, compile_kernels, gencode_flags, nvcc_archs, nvcc_version

NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc is not installed here: the kernels cannot be compiled")
FATBIN_MAGIC = bytes.fromhex("50ed55ba")  # 0xBA55ED50, little-endian


def targets() -> set:
    return nvcc_archs(NVCC) if NVCC else set()


def test_gencode_flags_carry_ptx_for_orin_only():
    assert gencode_flags(["sm_72", "sm_87"], "sm_87") == [
        "-gencode=arch=compute_72,code=[sm_72]", "-gencode=arch=compute_87,code=[sm_87,compute_87]"]


@needs_nvcc
@pytest.mark.parametrize("arch, board", [("sm_87", "Orin"), ("sm_72", "Xavier")])
def test_kernels_compile_into_a_fatbin_for(tmp_path, arch, board):
    if arch not in targets():
        pytest.skip(f"this nvcc ({nvcc_version(NVCC)}) cannot generate {arch} ({board}): CUDA 13 dropped it; "
                    "JetPack's own nvcc builds it on the device")
    image = compile_kernels(tmp_path, archs=(arch,), required=arch)
    data = image.read_bytes()
    sidecar = json.loads((tmp_path / f"{KERNEL_IMAGE}.json").read_text())
    print(f"\n{arch}: {len(data)} bytes, {sidecar['nvcc']}")
    assert image.name == KERNEL_IMAGE and data[:4] == FATBIN_MAGIC
    assert b"align_preprocess" in data and b"pyramid_down" in data
    assert f"-arch {arch}".encode() in data
    assert sidecar["archs"] == [arch] and sidecar["kernel_source_sha256"] == kernel_source_sha256()
    capability = f"{arch[3]}.{arch[4]}"
    assert read_kernel_image(image, capability) == data


@needs_nvcc
def test_both_jetson_archs_are_asked_for_and_what_nvcc_cannot_do_is_recorded(tmp_path):
    assert JETSON_ARCHS == ("sm_72", "sm_87")
    image = compile_kernels(tmp_path)
    sidecar = json.loads((tmp_path / f"{KERNEL_IMAGE}.json").read_text())
    assert set(sidecar["archs"]) == set(JETSON_ARCHS) & targets()
    assert set(sidecar["skipped"]) == set(JETSON_ARCHS) - targets()
    assert sidecar["ptx"] == ("sm_87" if "sm_87" in targets() else None)
    assert image.exists()


@needs_nvcc
def test_a_device_whose_arch_nvcc_cannot_build_is_a_build_error(tmp_path):
    missing = sorted({"sm_72", "sm_53"} - targets())
    if not missing:
        pytest.skip("this nvcc targets every architecture tried")
    with pytest.raises(BuildError, match=f"must be built for this GPU \\({missing[0]}\\)"):
        compile_kernels(tmp_path, archs=("sm_87",), required=missing[0])
    assert not (tmp_path / KERNEL_IMAGE).exists()


@needs_nvcc
def test_the_compiled_kernel_matches_the_cpu_reference_on_a_gpu(tmp_path):
    """Runs only where pycuda and an NVIDIA GPU exist (none in this project's CI)."""
    try:
        import pycuda.driver as cuda  # noqa: F401  (an optional, GPU-only dependency)
    except ImportError:
        pytest.skip("pycuda is not installed: no GPU run here")
    from edge.engines.device import describe_device

    device = describe_device()
    if device is None:
        pytest.skip("no CUDA GPU here")
    arch = "sm_" + device["compute_capability"].replace(".", "")
    if arch not in targets():
        pytest.skip(f"this nvcc cannot build for the GPU here ({arch})")
    image = compile_kernels(tmp_path, archs=(arch,), required=arch)
    mean, std, size = (122.782, 117.001, 104.298), (256.0, 256.0, 256.0), 150
    preprocessor = CudaPreprocessor(size, mean, std, bgr=False, kernel_image=image, capability=device["compute_capability"])
    rng = np.random.default_rng(0)
    frame = np.clip(rng.normal(128, 60, (1080, 1920, 3)), 0, 255).astype(np.uint8)
    base = align.template_points(align.MTCNN_TEMPLATE, 1.0, 0.0) - 0.5
    matrices = np.stack([align.chip_matrix(base * side + (960, 540), align.MTCNN_TEMPLATE, size, 0.25)
                         for side in (120, 400, 800)])
    got = preprocessor.run(frame, matrices)
    expected = np.stack([_cpu_chip(frame, matrix, size, mean, std) for matrix in matrices])
    started = time.perf_counter()
    for _ in range(20):
        preprocessor.run(frame, matrices)
    ms = (time.perf_counter() - started) / 20 * 1e3
    worst = float(np.abs(got - expected).max())
    print(f"\n{device['gpu']}: max |GPU - CPU| {worst:.2e} over 3 faces (one without, two with the pyramid), "
          f"{ms:.2f} ms per 1080p frame incl. upload")
    assert worst < 1e-3


def _cpu_chip(frame, matrix, size, mean, std):
    source, level_matrix = align.pyramid_source(frame, matrix, size)
    return align.preprocess_cpu(source, level_matrix[None], size, mean, std)[0]


def test_a_preprocessor_without_pycuda_says_so_before_anything_else(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with pytest.raises(EngineError, match="pycuda is not installed"):
        CudaPreprocessor(150, (0, 0, 0), (1, 1, 1), kernel_image=tmp_path / KERNEL_IMAGE)
