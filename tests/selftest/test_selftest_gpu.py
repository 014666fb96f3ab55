"""The GPU checks on this CPU-only machine: what a GPU without pycuda gets, and the kernel
comparison itself, run with the CPU form of the kernel's maths standing in for the GPU
(the real kernel runs in tests/test_align.py::test_gpu_kernel_matches_reference on a GPU)."""
from __future__ import annotations

import numpy as np
import pytest

import edge.vision.cuda_preprocess as cuda_preprocess
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

    def __init__(self, size, mean, std, bgr=True):
        self.size, self.mean, self.std = size, mean, std

    def run(self, frame, matrices):
        matrices = np.array(matrices, dtype=np.float64)
        matrices[:, :, 2] += self.shift
        return align.preprocess_cpu(np.ascontiguousarray(frame[..., ::-1]), matrices, self.size, self.mean, self.std)


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
    assert check.detail.endswith("over 3 faces (limit 0.001)")


def test_a_kernel_that_samples_half_a_pixel_off_fails(models_ready, monkeypatch):
    monkeypatch.setattr(CpuKernel, "shift", 0.5)
    monkeypatch.setattr(cuda_preprocess, "CudaPreprocessor", CpuKernel)
    check = compute_checks()["compute.cuda_preprocess"]
    assert check.status == "FAIL" and "the GPU gives wrong face chips" in check.detail
