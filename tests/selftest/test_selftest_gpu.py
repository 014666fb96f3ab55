"""The GPU checks on this CPU-only machine: what a GPU without pycuda gets, and the kernel
comparison itself, run with the CPU form of the kernel's maths standing in for the GPU
(the real kernel runs in tests/test_align.py::test_gpu_kernel_matches_reference on a GPU)."""
from __future__ import annotations

import numpy as np
import pytest

import edge.vision.cuda_preprocess as cuda_preprocess
from edge.exc import EngineError
from edge.selftest.context import Context
from edge.selftest.runner import run_selftest
from edge.selftest.settings import Settings
from edge.vision import align

ORIN = {"gpu": "Orin", "compute_capability": "8.7", "source": "pycuda"}


def compute_checks(**settings) -> dict:
    context = Context(settings=Settings(latency_budget_ms=1e6, **settings), gpu=lambda: ORIN)
    return {check.name: check for check in run_selftest(context, ("compute",)).checks}


class CpuKernel:
    """CudaPreprocessor's interface, computed by align.preprocess_cpu; ``shift`` moves every sample."""

    shift = 0.0

    def __init__(self, size, mean, std, bgr=True, **kernel):
        self.size, self.mean, self.std = size, mean, std

    def run(self, frame, matrices):
        rgb = np.ascontiguousarray(frame[..., ::-1])
        chips = []
        for matrix in np.array(matrices, dtype=np.float64):
            source, level_matrix = align.pyramid_source(rgb, matrix, self.size)
            level_matrix[:, 2] += self.shift
            chips.append(align.preprocess_cpu(source, level_matrix[None], self.size, self.mean, self.std)[0])
        return np.stack(chips)


@pytest.fixture
def no_pycuda():
    try:
        import pycuda  # noqa: F401
    except ImportError:
        return
    pytest.skip("pycuda is installed here")


def test_a_gpu_without_pycuda_skips_the_kernel_check_on_the_cpu_path(models_ready, no_pycuda):
    checks = compute_checks()
    assert checks["compute.gpu"].detail == "Orin, compute capability 8.7 (from pycuda)"
    assert checks["compute.cuda_preprocess"].status == "SKIP"
    assert "pycuda is not installed" in checks["compute.cuda_preprocess"].detail
    assert checks["compute.cuda_preprocess"].detail.endswith("the onnxruntime engine does not need it")


def test_kernel_comparison_passes_within_the_tolerance(models_ready, monkeypatch):
    monkeypatch.setattr(cuda_preprocess, "CudaPreprocessor", CpuKernel)
    check = compute_checks()["compute.cuda_preprocess"]
    assert check.status == "PASS" and check.detail.startswith("GPU kernel vs CPU reference: max difference ")
    assert check.detail.endswith("over 4 faces (limit 0.001)")


def test_a_kernel_that_samples_half_a_pixel_off_fails(models_ready, monkeypatch):
    monkeypatch.setattr(CpuKernel, "shift", 0.5)
    monkeypatch.setattr(cuda_preprocess, "CudaPreprocessor", CpuKernel)
    check = compute_checks()["compute.cuda_preprocess"]
    assert check.status == "FAIL" and "the GPU gives wrong face chips" in check.detail


def test_the_tensorrt_path_runs_the_precompiled_kernel_without_a_compiler(tmp_path, monkeypatch):
    """No nvcc on the device is no failure: the kernels were compiled at build time.

    The real CudaPreprocessor runs here, over the pycuda stand-in with the kernels built
    as host C++ (tests/cuda_host.py)."""
    import json
    import sys

    import cuda_host
    import trt_fakes
    from edge.selftest.compute import cuda_preprocess_check

    if cuda_host.compiler() is None:
        pytest.skip("no host C++ compiler to run the kernels on")
    for name, module in cuda_host.install_kernels(trt_fakes.fake_pycuda(), cuda_host.build_library(tmp_path)).items():
        monkeypatch.setitem(sys.modules, name, module)
    image = tmp_path / cuda_preprocess.KERNEL_IMAGE
    image.write_bytes(b"fatbin")
    (tmp_path / f"{cuda_preprocess.KERNEL_IMAGE}.json").write_text(json.dumps(
        {"kernel_source_sha256": cuda_preprocess.kernel_source_sha256(), "archs": ["sm_87"]}))
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvcc anywhere
    manifest = {"preprocess": {"size": [150, 150], "chip_padding": 0.25, "mean": [122.782, 117.001, 104.298],
                               "std": [256.0, 256.0, 256.0]}}
    result = cuda_preprocess_check(ORIN, manifest, "tensorrt", image)
    assert result.status == "PASS" and result.detail.endswith("over 4 faces (limit 0.001)"), result.detail
    image.unlink()  # a TensorRT engine without its kernels: the daemon could not align, so this fails
    with pytest.raises(EngineError, match="edge-verify build --backend tensorrt"):
        cuda_preprocess_check(ORIN, manifest, "tensorrt", image)
