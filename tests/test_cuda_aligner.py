"""The CUDA aligner against the CPU aligner, with the real kernels run on the CPU.

tests/cuda_host.py builds kernels/align_preprocess.cu as host C++ and plugs it
into the pycuda stand-in, and trt_fakes supplies a TensorRT 10.3 engine whose
input is (-1, 3, 150, 150) and whose "embedding" is [sum, max] of each chip. So
CudaAligner, CudaPreprocessor and TensorRTEngine run their real code: crop and
pyramid levels, pointer offsets into the engine's input buffer, the flipped half
of the batch, the engine's stream, no upload of staged chips. What it cannot
show is GPU rounding, timing and the driver (no GPU in this project's CI).

Parity figures are printed (pytest -s): max |CUDA chip - CPU chip| per face size.
"""
from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

import cuda_host
import trt_fakes
from edge.exc import EngineError
from edge.pipeline import aligner_for
from edge.vision import align
from edge.vision.aligner import CpuAligner
from edge.vision.cuda_aligner import CudaAligner
from edge.vision.cuda_preprocess import KERNEL_IMAGE, kernel_source_sha256, read_kernel_image
from edge.vision.image import load_image
from edge.vision.mtcnn import MtcnnDetector

MEAN, STD, SIZE = (122.782, 117.001, 104.298), (256.0, 256.0, 256.0), 150
ORIN = {"gpu": "Orin", "compute_capability": "8.7", "source": "pycuda"}
TEMPLATE = (MtcnnDetector.template, MtcnnDetector.template_weights)  # the detector's landmark template
TOLERANCE = 1e-3  # the kernel's own limit (and the self-test's)
pytestmark = pytest.mark.skipif(cuda_host.compiler() is None, reason="no host C++ compiler to run the kernels on")


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    return cuda_host.build_library(tmp_path_factory.mktemp("kernels"))


def manifest(version="10.3.0"):
    return {"backend": "tensorrt", "backend_version": version, "device": dict(ORIN, dla_core=None),
            "name": "embedding", "inputs": [{"name": "image", "shape": [-1, 3, SIZE, SIZE]}],
            "outputs": [{"name": "stats", "shape": [-1, 2]}],
            "preprocess": {"size": [SIZE, SIZE], "chip_padding": 0.25, "mean": list(MEAN), "std": list(STD),
                           "colour": "RGB", "layout": "NCHW"}}


def write_kernel_image(folder, archs=("sm_87",), sha=None):
    image = folder / KERNEL_IMAGE
    image.write_bytes(b"\x50\xed\x55\xba fake fatbin")
    (folder / f"{KERNEL_IMAGE}.json").write_text(json.dumps(
        {"kernel_source_sha256": sha or kernel_source_sha256(), "archs": list(archs)}))
    return image


@pytest.fixture
def stack(monkeypatch, tmp_path, kernels):
    """A TensorRT engine (fake, real TensorRTEngine code) with the real kernels behind pycuda."""
    from edge.engines.tensorrt import TensorRTEngine

    trt = trt_fakes.fake_tensorrt("10.3.0", trt_fakes.Engine("10.3.0", max_batch=4, side=SIZE))
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    modules = cuda_host.install_kernels(trt_fakes.fake_pycuda(), kernels)
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    plan = tmp_path / "embedding.fp16.engine"
    plan.write_bytes(b"plan")
    write_kernel_image(tmp_path)
    engine = TensorRTEngine(plan, manifest(), device=dict(ORIN))
    yield types.SimpleNamespace(engine=engine, driver=modules["pycuda.driver"], folder=tmp_path)
    engine.close()


def face_of_side(side: float, centre, angle: float = 0.2):
    """A face whose five MTCNN landmarks span ``side`` pixels, tilted by ``angle``."""
    base = align.template_points(align.MTCNN_TEMPLATE, 1.0, 0.0) - 0.5
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return types.SimpleNamespace(landmarks=base * side @ rotation.T + np.asarray(centre, dtype=np.float64))


@pytest.fixture(scope="module")
def photo():
    """A real photo, upscaled 5x so faces up to ~1000 px fit: sharp edges and smooth skin alike."""
    image = load_image(Path(__file__).parent / "fixtures/faces/Colin_Powell_0001.jpg")
    return cv2.resize(image, None, fx=5, fy=5, interpolation=cv2.INTER_CUBIC)


# ------------------------------------------------------------------ the pyramid kernel alone


@pytest.mark.parametrize("shape", [(9, 9, 3), (41, 30, 3), (64, 77, 3), (301, 250, 3)])
def test_pyramid_kernel_is_dlibs_pyramid_down_byte_for_byte(kernels, shape):
    image = cuda_host.random_image(shape[0] * 1000 + shape[1], shape)
    height, width = (shape[0] - 3) // 2, (shape[1] - 3) // 2
    out = np.full((height, width, 3), 7, np.uint8)
    kernels.launch_pyramid((width + 15) // 16, (height + 15) // 16, 1, 16, 16, image.ctypes.data, 3 * shape[1],
                           out.ctypes.data, width, height, 3 * width)
    assert np.array_equal(out, align.dlib_pyramid_down(image))


# ------------------------------------------------------------------ chips: CUDA aligner vs CPU aligner


@pytest.mark.parametrize("side, levels", [(60, 0), (140, 0), (380, 1), (700, 2), (1100, 3)])
def test_cuda_chips_match_the_cpu_chips_with_the_pyramid(stack, photo, side, levels):
    faces = [face_of_side(side, (photo.shape[1] * 0.5, photo.shape[0] * 0.45)),
             face_of_side(side * 0.8, (photo.shape[1] * 0.3, photo.shape[0] * 0.6), angle=-0.4)]
    cpu = CpuAligner.from_manifest(stack.engine.manifest, *TEMPLATE)
    assert align.pyramid_levels(cpu.matrix(faces[0]), SIZE) == levels
    cuda = CudaAligner(stack.engine, *TEMPLATE, flip=True)
    got = cuda.align(photo, faces)
    expected = cpu.align(photo, faces)
    worst = float(np.abs(got - expected).max())
    # The flipped half of the batch, made by the kernel with mirrored matrices, sits in the engine's input.
    staged = trt_fakes.device_bytes(stack.engine.device_input().device, 4 * 4 * 3 * SIZE * SIZE)
    batch = staged.view(np.float32).reshape(4, 3, SIZE, SIZE)
    worst_flip = float(np.abs(batch[2:] - align.flip_chips(expected)).max())
    print(f"\nface side {side} px, pyramid levels {levels}: max |CUDA - CPU| chip {worst:.2e}, "
          f"flipped {worst_flip:.2e} (limit {TOLERANCE:g}, chip values span "
          f"{float(expected.max() - expected.min()):.2f})")
    assert np.array_equal(batch[:2], got)
    assert worst < TOLERANCE and worst_flip < TOLERANCE


def test_without_the_pyramid_large_faces_would_not_match(stack, photo):
    """What the pyramid step is for: sampling a 700 px face directly differs from dlib's chip."""
    face = face_of_side(700, (photo.shape[1] * 0.5, photo.shape[0] * 0.45))
    cpu = CpuAligner.from_manifest(stack.engine.manifest, *TEMPLATE)
    expected = cpu.align(photo, [face])
    direct = align.preprocess_cpu(photo, cpu.matrix(face)[None], SIZE, cpu.mean, cpu.std)
    print(f"\n700 px face sampled without the pyramid: mean |difference| {float(np.abs(direct - expected).mean()):.2e}, "
          f"max {float(np.abs(direct - expected).max()):.2e}")
    assert float(np.abs(direct - expected).mean()) > TOLERANCE  # on average above the limit the CUDA chips keep at most


def test_a_face_off_the_image_gives_the_same_black_chip(stack, photo):
    face = face_of_side(900, (-2000.0, -2000.0))
    cpu = CpuAligner.from_manifest(stack.engine.manifest, *TEMPLATE)
    got = CudaAligner(stack.engine, *TEMPLATE, flip=False).align(photo, [face])
    assert np.array_equal(got, cpu.align(photo, [face]))


# ------------------------------------------------------------------ wiring into the engine


def test_staged_chips_run_from_the_engine_input_without_an_upload(stack, photo):
    faces = [face_of_side(380, (photo.shape[1] * 0.5, photo.shape[0] * 0.45))]
    cuda = CudaAligner(stack.engine, *TEMPLATE, flip=True)
    chips = cuda.align(photo, faces)
    launches = list(stack.driver.launches)
    assert all(launch[3] is stack.engine.stream for launch in launches)  # kernels on the engine's stream
    assert [name for name, *_ in launches] == ["pyramid_down", "align_preprocess", "pyramid_down", "align_preprocess"]
    copies = len(stack.driver.copies)
    got = cuda.embed(stack.engine, chips, True)
    assert stack.driver.copies[copies:] == ["dtoh"]  # only the outputs come back; the chips never went up again
    assert stack.engine.context.calls == ["v3"]
    expected = CpuAligner.from_manifest(stack.engine.manifest, *TEMPLATE).embed(stack.engine, chips, True)
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-2)


def test_chips_that_were_not_just_aligned_take_the_host_path(stack, photo):
    faces = [face_of_side(140, (photo.shape[1] * 0.5, photo.shape[0] * 0.45))]
    cuda = CudaAligner(stack.engine, *TEMPLATE, flip=False)
    chips = cuda.align(photo, faces)
    copies = len(stack.driver.copies)
    cuda.embed(stack.engine, chips.copy(), False)  # e.g. a chip kept from an earlier frame
    assert "htod" in stack.driver.copies[copies:]
    with pytest.raises(EngineError, match="outside the engine's profile"):
        stack.engine.run_device(9)


def test_more_faces_than_an_engine_batch_still_embed(stack, photo):
    faces = [face_of_side(120, (300 + 150 * i, 500)) for i in range(3)]  # 3 faces + 3 mirrors > 4
    cuda = CudaAligner(stack.engine, *TEMPLATE, flip=True)
    chips = cuda.align(photo, faces)
    cpu = CpuAligner.from_manifest(stack.engine.manifest, *TEMPLATE)
    assert float(np.abs(chips - cpu.align(photo, faces)).max()) < TOLERANCE
    assert cuda.embed(stack.engine, chips, True).shape == (3, 2)


def test_frames_go_up_through_page_locked_memory(stack, photo, monkeypatch):
    pinned = []
    allocate, upload = stack.driver.pagelocked_empty, stack.driver.memcpy_htod_async

    def pagelocked_empty(shape, dtype):
        array = allocate(shape, dtype)
        pinned.append((array.ctypes.data, array.nbytes))
        return array

    def memcpy_htod_async(device, host, stream=None):
        address = host.ctypes.data
        assert any(start <= address < start + size for start, size in pinned), "pageable host memory"
        assert stream is stack.engine.stream
        return upload(device, host, stream)

    monkeypatch.setattr(stack.driver, "pagelocked_empty", pagelocked_empty)
    monkeypatch.setattr(stack.driver, "memcpy_htod_async", memcpy_htod_async)
    CudaAligner(stack.engine, *TEMPLATE, flip=True).align(photo, [face_of_side(380, (500, 500))])
    assert len(pinned) >= 3  # frame, matrices, chips back


def test_the_pipeline_picks_the_cuda_aligner_for_tensorrt_engines(stack):
    assert isinstance(aligner_for(stack.engine, MtcnnDetector, flip=True), CudaAligner)
    onnx = types.SimpleNamespace(manifest=dict(manifest(), backend="onnxruntime"))
    assert isinstance(aligner_for(onnx, MtcnnDetector, flip=True), CpuAligner)


def test_the_aligner_refuses_an_engine_input_it_cannot_write(stack):
    stack.engine.bindings["image"].dtype = np.dtype(np.float16)
    with pytest.raises(EngineError, match="float16"):
        CudaAligner(stack.engine, *TEMPLATE)


# ------------------------------------------------------------------ the precompiled kernel image


def test_the_kernel_image_is_loaded_precompiled_not_compiled(stack, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvcc anywhere: not needed at run time
    CudaAligner(stack.engine, *TEMPLATE)
    assert stack.driver.loaded_images == [(stack.folder / KERNEL_IMAGE).read_bytes()]


def test_a_missing_stale_or_foreign_kernel_image_says_how_to_rebuild(tmp_path):
    with pytest.raises(EngineError, match="edge-verify build --backend tensorrt"):
        read_kernel_image(tmp_path / KERNEL_IMAGE)
    image = write_kernel_image(tmp_path, sha="0" * 64)
    with pytest.raises(EngineError, match="another version of align_preprocess.cu"):
        read_kernel_image(image)
    image = write_kernel_image(tmp_path, archs=("sm_72",))
    with pytest.raises(EngineError, match="not this GPU \\(sm_87\\)"):
        read_kernel_image(image, "8.7")
    assert read_kernel_image(image, "7.2").startswith(b"\x50\xed\x55\xba")
